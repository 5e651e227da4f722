/* The install phase of Python packages (SPEC §4.3): the venv their requirements go into,
 * one per (requirements, setup files, Python version, system-site-packages) under
 * PAR_CACHE_DIR/venvs/, built in a temp dir and renamed when complete, reused after. */
#ifndef PARD_PYENV_H
#define PARD_PYENV_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "par/config.h"
#include "par/manifest.h"

struct pyenv {
	char dir[PATH_MAX];      /* the venv */
	char python[PATH_MAX];   /* its interpreter: the worker runs with this */
	char version[32];        /* of PAR_PYTHON, e.g. "3.11.2" */
	bool reused;             /* found complete in the cache */
};

/* Finds or builds the venv for the package at root. 0 ok (note: one line for the phase);
 * -1 with a sentence in err — a requirement pip could not satisfy is named in it — and no
 * venv or temp dir left behind. */
int pyenv_prepare(const struct par_config *cfg, const struct par_manifest *m, const char *root,
		  const atomic_bool *cancel, struct pyenv *out, char *note, size_t notelen,
		  char *err, size_t errlen);

/* A runtime constraint of the manifest checked against a Python version: ">=3.8",
 * ">=3.8,<4", "==3.11", "python3.11" (a warning only when the minor differs; *warn set).
 * true when satisfied. Exposed for the unit tests. */
bool pyenv_version_ok(const char *spec, const char *version, bool *warn_only);

#endif
