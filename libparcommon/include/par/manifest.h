/* The agent package manifest, agent.yaml (SPEC §3): loaded with libcyaml (aliases off) and
 * validated; unknown keys are kept for /meta, never errors. */
#ifndef PAR_MANIFEST_H
#define PAR_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

enum par_runtime { PAR_RUNTIME_NATIVE, PAR_RUNTIME_EXEC, PAR_RUNTIME_PYTHON };

struct par_manifest {
	char *name;
	char *version;
	char *description;       /* NULL when absent */
	char *author;            /* NULL when absent */
	enum par_runtime runtime;
	char *runtime_spec;      /* as written: "python3.11", ">=3.8" (mapping form), "native"… */
	char *entrypoint;        /* NULL when absent (exec, or a REST/UI-only package) */
	char **exec_command;     /* exec: argv, NULL-terminated; NULL otherwise */
	size_t exec_command_count;
	char **exec_env;         /* exec.env as "K=V" strings, NULL-terminated; NULL when absent */
	bool has_a2a;            /* the a2a key is present (even as an empty mapping) */
	char *a2a_service;       /* a2a.service, NULL when absent */
	bool has_rest;
	char *rest_entry;        /* rest.entry, NULL when absent */
	bool has_ui;
	char *ui_path;           /* relative, validated: no "..", not absolute */
	char *ui_base_path;      /* "/" when absent */
	char *json;              /* the whole document as a JSON object text, unknown keys kept */
};

/* One problem: where (a key path like "ui.path", or "agent.yaml" for the whole file, with
 * line:col when the parser knows it) and what rule it broke. */
struct manifest_problem {
	char *where;
	char *rule;
};

struct manifest_problems {
	struct manifest_problem *v;
	size_t n;
};

/* Loads and validates. Every problem found is appended (not just the first); returns 0 when
 * there are none, -1 otherwise (m is then zeroed and needs no free). A missing file, an
 * empty file or a document that is not a mapping is one problem. Files over 1 MiB are
 * refused. */
int manifest_load_file(const char *path, struct par_manifest *m, struct manifest_problems *p);
/* The same for a package directory (reads DIR/agent.yaml). */
int manifest_load_dir(const char *dir, struct par_manifest *m, struct manifest_problems *p);
/* The same from memory (fuzzing, tests). */
int manifest_load_buffer(const char *yaml, size_t len, struct par_manifest *m,
			 struct manifest_problems *p);

void manifest_free(struct par_manifest *m);
void manifest_problems_free(struct manifest_problems *p);

const char *manifest_runtime_name(enum par_runtime r);

/* SPEC §3 name/version rule: [A-Za-z0-9._-]{1,128}, not "." or "..". */
bool manifest_valid_name(const char *s);

#endif
