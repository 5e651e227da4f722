/* The venv of a Python package (SPEC §4.3): keyed, built atomically, reused; see pyenv.h. */
#include "pyenv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "par/fsutil.h"
#include "par/hash.h"
#include "par/log.h"
#include "par/timeutil.h"
#include "subproc.h"

#define PYENV_MARKER ".par-venv.json"
#define PYENV_LOCK_POLL_MS 50
/* Files whose content decides what gets installed: part of the key. */
static const char *const pyenv_inputs[] = {"requirements.txt", "setup.py", "pyproject.toml",
					    "setup.cfg", NULL};

/* Paths under PAR_CACHE_DIR and the package root: pyenv_prepare checks up front that the
 * longest one fits, so the rest can format without a truncation branch each. */
static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, n, fmt, ap);
	va_end(ap);
}

/* ---- version --------------------------------------------------------------------------- */

struct pyenv_capture {
	char first[64];
};

static void pyenv_capture_line(void *ctx, const char *line)
{
	struct pyenv_capture *c = ctx;
	if (!c->first[0])
		snprintf(c->first, sizeof c->first, "%s", line);
}

/* -I -S: no user site, no site module: the version answer costs ~10 ms, not the import of
 * every .pth in the image. */
static int pyenv_probe_version(const struct par_config *cfg, const atomic_bool *cancel,
			       char *version, size_t n, char *err, size_t errlen)
{
	const char *argv[] = {cfg->python, "-I", "-S", "-c",
			      "import sys;print('%d.%d.%d' % sys.version_info[:3])", NULL};
	struct pyenv_capture cap = {{0}};
	struct subproc_opts o = {.argv = argv, .on_line = pyenv_capture_line, .ctx = &cap,
				 .cancel = cancel, .deadline_mono_ms = time_mono_ms() + 30000};
	int status;
	char why[256];
	enum subproc_outcome r = subproc_run(&o, &status, why, sizeof why);
	if (r != SUBPROC_EXITED) {
		snprintf(err, errlen, "PAR_PYTHON=%s: %s", cfg->python, why);
		return -1;
	}
	unsigned a, b, c;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    sscanf(cap.first, "%u.%u.%u", &a, &b, &c) != 3) {
		snprintf(err, errlen, "PAR_PYTHON=%s did not report its version (%s)", cfg->python,
			 cap.first[0] ? cap.first : "no output");
		return -1;
	}
	snprintf(version, n, "%u.%u.%u", a, b, c);
	return 0;
}

/* ---- version constraints ------------------------------------------------------------------ */

static int pyenv_cmp(const unsigned a[3], const unsigned b[3], int parts)
{
	for (int i = 0; i < parts; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static int pyenv_parse_version(const char *s, unsigned v[3])
{
	v[0] = v[1] = v[2] = 0;
	int got = 0;
	char *end;
	while (got < 3) {
		if (*s < '0' || *s > '9')
			break;
		unsigned long x = strtoul(s, &end, 10);
		v[got++] = (unsigned)x;
		s = end;
		if (*s != '.')
			break;
		s++;
	}
	while (*s == ' ')
		s++;
	return got && !*s ? got : 0;
}

/* One clause: OP VERSION with OP one of >= > <= < == != ~= (or none: ==). */
static bool pyenv_clause_ok(const char *clause, const unsigned have[3], bool *valid)
{
	while (*clause == ' ')
		clause++;
	const char *ops[] = {">=", "<=", "==", "!=", "~=", ">", "<", NULL};
	const char *op = "==";
	for (int i = 0; ops[i]; i++)
		if (strncmp(clause, ops[i], strlen(ops[i])) == 0) {
			op = ops[i];
			clause += strlen(ops[i]);
			break;
		}
	while (*clause == ' ')
		clause++;
	unsigned want[3];
	int parts = pyenv_parse_version(clause, want);
	if (!parts) {
		*valid = false;
		return false;
	}
	int c = pyenv_cmp(have, want, 3);
	int cp = pyenv_cmp(have, want, parts);   /* "==3.11" matches 3.11.x */
	if (!strcmp(op, ">="))
		return c >= 0;
	if (!strcmp(op, ">"))
		return c > 0;
	if (!strcmp(op, "<="))
		return cp <= 0;
	if (!strcmp(op, "<"))
		return c < 0;
	if (!strcmp(op, "!="))
		return cp != 0;
	if (!strcmp(op, "~="))   /* compatible release: same prefix but the last part, and ≥ */
		return c >= 0 && pyenv_cmp(have, want, parts > 1 ? parts - 1 : 1) == 0;
	return cp == 0;
}

bool pyenv_version_ok(const char *spec, const char *version, bool *warn_only)
{
	*warn_only = false;
	unsigned have[3];
	if (!spec || !pyenv_parse_version(version, have))
		return true;
	if (strncmp(spec, "python", 6) == 0) {
		/* "python3.11": what the package was built with; other minors usually work. */
		unsigned want[3];
		int parts = spec[6] ? pyenv_parse_version(spec + 6, want) : 0;
		if (parts && pyenv_cmp(have, want, parts) != 0)
			*warn_only = true;
		return true;
	}
	char buf[256];
	snprintf(buf, sizeof buf, "%s", spec);
	bool ok = true, valid = true;
	char *save = NULL;
	for (char *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save))
		ok = pyenv_clause_ok(c, have, &valid) && ok;
	if (!valid) {   /* a constraint we cannot read is not a reason to refuse the package */
		*warn_only = true;
		return true;
	}
	return ok;
}

/* ---- key --------------------------------------------------------------------------------- */

static bool pyenv_is_file(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The venv's name: readable Python version, then the hash of everything that decides its
 * content. */
static int pyenv_key(const struct par_config *cfg, const char *root, const char *version,
		     char *key, size_t n, char *err, size_t errlen)
{
	struct sha256_ctx *h = sha256_new();
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char line[128];
	int k = snprintf(line, sizeof line, "par-venv 1\npython %s\nsystem-site-packages %d\n",
			 version, cfg->python_system_site_packages ? 1 : 0);
	sha256_update(h, line, (size_t)k);
	for (int i = 0; pyenv_inputs[i]; i++) {
		char p[PATH_MAX], hex[65] = "-";
		snprintf(p, sizeof p, "%s/%s", root, pyenv_inputs[i]);
		if (pyenv_is_file(root, pyenv_inputs[i]) && sha256_file(p, hex) != 0) {
			char tmp[65];
			sha256_final_hex(h, tmp);
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return -1;
		}
		k = snprintf(line, sizeof line, "%s %s\n", pyenv_inputs[i], hex);
		sha256_update(h, line, (size_t)k);
	}
	char hex[65];
	sha256_final_hex(h, hex);
	snprintf(key, n, "py%s-%.24s", version, hex);
	return 0;
}

/* ---- pip --------------------------------------------------------------------------------- */

struct pyenv_pip {
	const char *step;
	char unsatisfied[256];   /* the requirement pip named as impossible */
	char last_error[512];    /* the last "ERROR: …" line */
};

static void pyenv_pip_line(void *ctx, const char *line)
{
	struct pyenv_pip *p = ctx;
	static const char *const markers[] = {"No matching distribution found for ",
					      "Could not find a version that satisfies the requirement ",
					      NULL};
	bool error = strncmp(line, "ERROR: ", 7) == 0;
	for (int i = 0; markers[i]; i++) {
		const char *at = strstr(line, markers[i]);
		if (at) {
			at += strlen(markers[i]);
			size_t len = strcspn(at, " ");
			snprintf(p->unsatisfied, sizeof p->unsatisfied, "%.*s", (int)len, at);
		}
	}
	if (error)
		snprintf(p->last_error, sizeof p->last_error, "%s", line + 7);
	log_emit(error ? PAR_LOG_WARN : PAR_LOG_INFO, "python.install.output",
		 LOG_FIELDS(LF_STR("step", p->step)), "%s", line);
}

/* Runs one step of the build; on failure err tells what broke. */
static int pyenv_step(const char *step, const char *const *argv, const char *cwd,
		      const atomic_bool *cancel, struct pyenv_pip *pip, char *err, size_t errlen)
{
	pip->step = step;
	const char *env[] = {"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1",
			     "PIP_NO_CACHE_DIR=1", "PYTHONDONTWRITEBYTECODE=1", NULL};
	struct subproc_opts o = {.argv = argv, .env = env, .cwd = cwd, .on_line = pyenv_pip_line,
				 .ctx = pip, .cancel = cancel};
	int status;
	char why[256];
	int64_t t0 = time_mono_ms();
	enum subproc_outcome r = subproc_run(&o, &status, why, sizeof why);
	log_emit(PAR_LOG_INFO, "python.install.step",
		 LOG_FIELDS(LF_STR("step", step), LF_INT("durationMs", time_mono_ms() - t0),
			    LF_BOOL("ok", r == SUBPROC_EXITED && WIFEXITED(status) &&
						  WEXITSTATUS(status) == 0)),
		 "%s finished", step);
	if (r != SUBPROC_EXITED) {
		snprintf(err, errlen, "%s: %s", step, why);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char how[64];
	if (WIFEXITED(status))
		snprintf(how, sizeof how, "exit %d", WEXITSTATUS(status));
	else
		snprintf(how, sizeof how, "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (pip->unsatisfied[0])
		snprintf(err, errlen, "%s: pip could not satisfy the requirement %s "
			 "(no matching distribution; %s)", step, pip->unsatisfied, how);
	else if (pip->last_error[0])
		snprintf(err, errlen, "%s failed (%s): %s", step, how, pip->last_error);
	else
		snprintf(err, errlen, "%s failed (%s)", step, how);
	return -1;
}

/* pip's index options from the configuration. */
static size_t pyenv_pip_args(const struct par_config *cfg, const char **argv, size_t n)
{
	if (cfg->pip_offline)
		argv[n++] = "--no-index";
	if (cfg->wheelhouse_dir) {
		argv[n++] = "--find-links";
		argv[n++] = cfg->wheelhouse_dir;
	}
	return n;
}

/* pyproject.toml alone may be tool settings only; it makes an installable project when it
 * says how to build it. */
static bool pyenv_is_project(const char *root)
{
	if (pyenv_is_file(root, "setup.py"))
		return true;
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/pyproject.toml", root);
	FILE *f = fopen(p, "re");
	if (!f)
		return false;
	char line[512];
	bool project = false;
	while (!project && fgets(line, sizeof line, f))
		project = !strncmp(line, "[project]", 9) || !strncmp(line, "[build-system]", 14);
	fclose(f);
	return project;
}

/* Scripts in bin/ (pip's entry points, activate) name the directory they were built in;
 * after the rename they must name the final one. */
static int pyenv_relocate(const char *tmp, const char *final)
{
	char bin[PATH_MAX];
	pathf(bin, sizeof bin, "%s/bin", tmp);
	DIR *d = opendir(bin);
	if (!d)
		return -1;
	size_t tl = strlen(tmp);
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;
		pathf(p, sizeof p, "%s/%s", bin, e->d_name);
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20))
			continue;
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		char *buf = malloc((size_t)st.st_size + 1);
		size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
		fclose(f);
		if (!buf)
			return closedir(d), -1;
		buf[got] = '\0';
		if (memchr(buf, '\0', got) || !strstr(buf, tmp)) {   /* binary, or nothing to do */
			free(buf);
			continue;
		}
		FILE *o = fopen(p, "we");
		if (o) {
			char *s = buf, *at;
			for (; (at = strstr(s, tmp)); s = at + tl) {
				fwrite(s, 1, (size_t)(at - s), o);
				fputs(final, o);
			}
			fputs(s, o);
		}
		if (!o || fclose(o) != 0)
			rc = -1;
		free(buf);
	}
	closedir(d);
	return rc;
}

/* ---- build ------------------------------------------------------------------------------- */

static int pyenv_build(const struct par_config *cfg, const char *root, const char *tmp,
		       const char *final, const atomic_bool *cancel, char *err, size_t errlen)
{
	struct pyenv_pip pip = {0};
	bool reqs = pyenv_is_file(root, "requirements.txt");
	bool project = pyenv_is_project(root);
	const char *venv[8];
	size_t n = 0;
	venv[n++] = cfg->python;
	venv[n++] = "-m";
	venv[n++] = "venv";
	if (cfg->python_system_site_packages)
		venv[n++] = "--system-site-packages";
	if (!reqs && !project)   /* nothing to install: no pip, 20 ms instead of seconds */
		venv[n++] = "--without-pip";
	venv[n++] = tmp;
	venv[n] = NULL;
	if (pyenv_step("venv", venv, root, cancel, &pip, err, errlen) < 0)
		return -1;
	char py[PATH_MAX];
	pathf(py, sizeof py, "%s/bin/python", tmp);
	if (reqs) {
		const char *argv[12] = {py, "-m", "pip", "install"};
		n = pyenv_pip_args(cfg, argv, 4);
		argv[n++] = "-r";
		argv[n++] = "requirements.txt";
		argv[n] = NULL;
		/* cwd root: relative paths inside requirements.txt are the package's. */
		if (pyenv_step("pip install -r requirements.txt", argv, root, cancel, &pip, err,
			       errlen) < 0)
			return -1;
	}
	if (project) {
		/* From a copy: pip builds in the source tree, and the package tree in the cache
		 * must stay as verified. */
		char src[PATH_MAX], from[PATH_MAX];
		pathf(src, sizeof src, "%s/.par-src", tmp);
		pathf(from, sizeof from, "%s/.", root);
		const char *cp[] = {"cp", "-R", from, src, NULL};
		if (pyenv_step("copy project", cp, NULL, cancel, &pip, err, errlen) < 0)
			return -1;
		const char *argv[12] = {py, "-m", "pip", "install"};
		n = pyenv_pip_args(cfg, argv, 4);
		argv[n++] = src;
		argv[n] = NULL;
		int r = pyenv_step("pip install (setup.py/pyproject.toml)", argv, root, cancel, &pip,
				   err, errlen);
		fs_remove_tree(src);
		if (r < 0)
			return -1;
	}
	if (pyenv_relocate(tmp, final) < 0) {
		snprintf(err, errlen, "cannot rewrite the scripts in %s/bin: %s", tmp,
			 strerror(errno));
		return -1;
	}
	char marker[PATH_MAX], body[256];
	snprintf(marker, sizeof marker, "%s/" PYENV_MARKER, tmp);
	int k = snprintf(body, sizeof body,
			 "{\"python\":\"%s\",\"requirements\":%s,\"project\":%s,\"createdMs\":%lld}\n",
			 cfg->python, reqs ? "true" : "false", project ? "true" : "false",
			 (long long)time_epoch_ms());
	if (fs_replace_file(tmp, marker, body, (size_t)k, 0644) < 0) {
		snprintf(err, errlen, "%s: %s", marker, strerror(errno));
		return -1;
	}
	return 0;
}

/* Leftovers of a build that died (pard killed mid-pip): only the lock holder builds, so any
 * temp dir of this key is stale once we hold the lock. */
static void pyenv_remove_stale(const char *venvs, const char *key)
{
	DIR *d = opendir(venvs);
	if (!d)
		return;
	char prefix[128];
	snprintf(prefix, sizeof prefix, ".tmp-%s-", key);
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			char p[PATH_MAX];
			pathf(p, sizeof p, "%s/%s", venvs, e->d_name);
			log_emit(PAR_LOG_WARN, "python.venv.stale", LOG_FIELDS(LF_STR("path", p)),
				 "removing %s left by an interrupted build", p);
			fs_remove_tree(p);
		}
	closedir(d);
}

static int pyenv_lock(const char *path, const atomic_bool *cancel)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || (cancel && atomic_load(cancel))) {
			int e = errno;
			close(fd);
			errno = e == EWOULDBLOCK ? ECANCELED : e;
			return -1;
		}
		struct timespec ts = {0, PYENV_LOCK_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	return fd;
}

int pyenv_prepare(const struct par_config *cfg, const struct par_manifest *m, const char *root,
		  const atomic_bool *cancel, struct pyenv *out, char *note, size_t notelen,
		  char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (pyenv_probe_version(cfg, cancel, out->version, sizeof out->version, err, errlen) < 0)
		return -1;
	bool warn;
	if (!pyenv_version_ok(m->runtime_spec, out->version, &warn)) {
		snprintf(err, errlen, "runtime: the package needs python %s, but PAR_PYTHON=%s is %s",
			 m->runtime_spec, cfg->python, out->version);
		return -1;
	}
	if (warn)
		log_emit(PAR_LOG_WARN, "python.version.mismatch",
			 LOG_FIELDS(LF_STR("runtime", m->runtime_spec), LF_STR("python", out->version)),
			 "the package says runtime %s; running it with Python %s", m->runtime_spec,
			 out->version);
	/* The longest path built below is the temp dir's, with a script name under it. */
	if (strlen(cfg->cache_dir) + 256 >= PATH_MAX || strlen(root) + 256 >= PATH_MAX) {
		snprintf(err, errlen, "PAR_CACHE_DIR %s: path too long for a venv", cfg->cache_dir);
		return -1;
	}
	char key[96];
	if (pyenv_key(cfg, root, out->version, key, sizeof key, err, errlen) < 0)
		return -1;
	char venvs[PATH_MAX], lockp[PATH_MAX], tmp[PATH_MAX];
	snprintf(venvs, sizeof venvs, "%s/venvs", cfg->cache_dir);
	pathf(out->dir, sizeof out->dir, "%s/%s", venvs, key);
	pathf(out->python, sizeof out->python, "%s/bin/python", out->dir);
	pathf(lockp, sizeof lockp, "%s/.%s.lock", venvs, key);
	if (fs_mkdir_p(venvs, 0755) < 0) {
		snprintf(err, errlen, "PAR_CACHE_DIR %s: cannot create venvs/: %s", cfg->cache_dir,
			 strerror(errno));
		return -1;
	}
	/* One builder per key, also across pards sharing the cache (EFS); the others wait and
	 * then reuse its venv. */
	int lock = pyenv_lock(lockp, cancel);
	if (lock < 0) {
		snprintf(err, errlen, "%s: %s", lockp,
			 errno == ECANCELED ? "cancelled while waiting for another build"
					    : strerror(errno));
		return -1;
	}
	char marker[PATH_MAX];
	pathf(marker, sizeof marker, "%s/" PYENV_MARKER, out->dir);
	int rc = -1;
	if (access(marker, F_OK) == 0 && access(out->python, X_OK) == 0) {
		out->reused = true;
		snprintf(note, notelen, "venv %s reused", key);
		rc = 0;
		goto unlock;
	}
	pyenv_remove_stale(venvs, key);
	fs_remove_tree(out->dir);   /* incomplete: no marker */
	pathf(tmp, sizeof tmp, "%s/.tmp-%s-%d", venvs, key, (int)getpid());
	log_emit(PAR_LOG_INFO, "python.venv.build",
		 LOG_FIELDS(LF_STR("venv", out->dir), LF_STR("python", out->version),
			    LF_BOOL("systemSitePackages", cfg->python_system_site_packages)),
		 "building venv %s with Python %s", key, out->version);
	if (pyenv_build(cfg, root, tmp, out->dir, cancel, err, errlen) < 0) {
		fs_remove_tree(tmp);
		goto unlock;
	}
	if (rename(tmp, out->dir) != 0) {
		snprintf(err, errlen, "rename %s → %s: %s", tmp, out->dir, strerror(errno));
		fs_remove_tree(tmp);
		goto unlock;
	}
	fs_fsync_dir(venvs);
	snprintf(note, notelen, "venv %s built", key);
	rc = 0;
unlock:
	close(lock);
	return rc;
}
