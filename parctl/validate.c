/* The offline package check: hashes the archive, reads every entry against the extraction
 * rules pard applies, then validates agent.yaml — and reports all problems at once, so an
 * author fixes a package in one round instead of one upload per error. */
#include "validate.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par/archive.h"
#include "par/hash.h"
#include "par/manifest.h"
#include "par/parse.h"
#include "par/strbuf.h"

#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define MANIFEST_MAX (1024 * 1024)

struct problem {
	const char *where;   /* "archive", "agent.yaml", "sha256", "package" */
	char *item;          /* entry path or manifest key; may be NULL */
	char *code;          /* rule name; may be NULL */
	char *message;
};

struct report {
	struct problem *v;
	size_t n;
	char sha256[65];
	char *name;
	char *version;
};

static void add(struct report *r, const char *where, const char *item, const char *code,
		const char *message)
{
	struct problem *v = realloc(r->v, (r->n + 1) * sizeof *v);
	if (!v)
		return;
	r->v = v;
	v[r->n++] = (struct problem){
		.where = where,
		.item = item ? strdup(item) : NULL,
		.code = code ? strdup(code) : NULL,
		.message = strdup(message ? message : ""),
	};
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].item);
		free(r->v[i].code);
		free(r->v[i].message);
	}
	free(r->v);
	free(r->name);
	free(r->version);
}

static void check_manifest(struct report *r, int rc, struct par_manifest *m,
			   struct manifest_problems *mp)
{
	if (rc == 0) {
		r->name = strdup(m->name);
		r->version = strdup(m->version);
		manifest_free(m);
	}
	for (size_t i = 0; i < mp->n; i++)
		add(r, "agent.yaml", mp->v[i].where, NULL, mp->v[i].rule);
	manifest_problems_free(mp);
}

static void check_archive(struct report *r, const char *path, const char *want_sha,
			  uint64_t max_extract_mb)
{
	if (sha256_file(path, r->sha256) != 0) {
		add(r, "package", NULL, "io", strerror(errno));
		return;
	}
	if (want_sha && strcasecmp(want_sha, r->sha256) != 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "expected %s, the file hashes to %s", want_sha, r->sha256);
		add(r, "sha256", NULL, "mismatch", msg);
	}
	struct arch_limits lim = arch_default_limits(max_extract_mb);
	struct arch_problems ap = {0};
	arch_validate(path, &lim, &ap);
	for (size_t i = 0; i < ap.n; i++)
		add(r, "archive", ap.v[i].entry, arch_error_name(ap.v[i].code), ap.v[i].message);
	arch_problems_free(&ap);

	char *yaml = NULL;
	size_t len = 0;
	if (arch_read_file(path, "agent.yaml", MANIFEST_MAX, &yaml, &len) != 0) {
		add(r, "agent.yaml", NULL, "missing",
		    "the archive has no readable agent.yaml at its root (at most 1 MiB)");
		return;
	}
	struct par_manifest m;
	struct manifest_problems mp = {0};
	check_manifest(r, manifest_load_buffer(yaml, len, &m, &mp), &m, &mp);
	free(yaml);
}

static void print_text(const struct report *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct problem *p = &r->v[i];
		printf("%s: %s", path, p->where);
		if (p->item)
			printf(": %s", p->item);
		printf(": %s", p->message);
		if (p->code)
			printf(" [%s]", p->code);
		putchar('\n');
	}
	if (r->n == 0)
		printf("%s: valid package %s %s%s%s\n", path, r->name ? r->name : "?",
		       r->version ? r->version : "?", r->sha256[0] ? ", sha256 " : "", r->sha256);
	else
		printf("%s: %zu problem%s\n", path, r->n, r->n == 1 ? "" : "s");
}

static void print_json(const struct report *r, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"path\":");
	sb_json_str(&sb, path);
	sb_printf(&sb, ",\"ok\":%s,\"sha256\":", r->n ? "false" : "true");
	sb_json_str(&sb, r->sha256[0] ? r->sha256 : NULL);
	sb_puts(&sb, ",\"name\":");
	sb_json_str(&sb, r->name);
	sb_puts(&sb, ",\"version\":");
	sb_json_str(&sb, r->version);
	sb_puts(&sb, ",\"problems\":[");
	for (size_t i = 0; i < r->n; i++) {
		const struct problem *p = &r->v[i];
		sb_puts(&sb, i ? ",{\"where\":" : "{\"where\":");
		sb_json_str(&sb, p->where);
		sb_puts(&sb, ",\"item\":");
		sb_json_str(&sb, p->item);
		sb_puts(&sb, ",\"code\":");
		sb_json_str(&sb, p->code);
		sb_puts(&sb, ",\"message\":");
		sb_json_str(&sb, p->message);
		sb_putc(&sb, '}');
	}
	sb_puts(&sb, "]}\n");
	fwrite(sb.buf, 1, sb.len, stdout);
	sb_free(&sb);
}

static int usage(void)
{
	fprintf(stderr, "usage: parctl validate FILE|DIR [--sha256 HEX] [--max-extract-mb MB]\n");
	return EXIT_USAGE;
}

int validate_main(int argc, char **argv, bool json)
{
	const char *path = NULL, *sha = NULL;
	uint64_t max_mb = 1024;   /* pard's PAR_MAX_EXTRACT_MB default */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sha256") == 0 && i + 1 < argc)
			sha = argv[++i];
		else if (strcmp(argv[i], "--max-extract-mb") == 0 && i + 1 < argc &&
			 parse_uint(argv[i + 1], 1, 1048576, &max_mb) == 0)
			i++;
		else if (argv[i][0] == '-' || path)
			return usage();
		else
			path = argv[i];
	}
	if (!path)
		return usage();
	struct report r = {0};
	struct stat st;
	if (stat(path, &st) != 0) {
		add(&r, "package", NULL, "io", strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		if (sha)
			add(&r, "sha256", NULL, "not-applicable",
			    "--sha256 checks an archive; a directory has no single hash");
		struct par_manifest m;
		struct manifest_problems mp = {0};
		check_manifest(&r, manifest_load_dir(path, &m, &mp), &m, &mp);
	} else {
		check_archive(&r, path, sha, max_mb);
	}
	if (json)
		print_json(&r, path);
	else
		print_text(&r, path);
	int rc = r.n ? EXIT_PROBLEMS : 0;
	report_free(&r);
	return rc;
}
