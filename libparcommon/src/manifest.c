/* agent.yaml (SPEC §3): read into a JSON tree (libyaml) and typed fields (libcyaml), validated. */
#include "par/manifest.h"

#include <cjson/cJSON.h>
#include <cyaml/cyaml.h>
#include <yaml.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Why two passes over the same bytes:
 * - libcyaml maps the keys whose shape is fixed (name, ui.path, exec.command…) into a struct,
 *   but cannot express `runtime` (a scalar or a mapping), exec.env (arbitrary keys) or the
 *   free-form rest of the document that /meta shows. It also takes IGNORE_UNKNOWN_KEYS only
 *   together with NO_ALIAS here: without NO_ALIAS that combination expands alias bombs.
 * - A libyaml event walk builds the whole document as a cJSON tree. It is the gatekeeper: it
 *   refuses anchors/aliases, duplicate keys at any level, non-scalar keys, nesting deeper than
 *   MANIFEST_MAX_DEPTH and more than one document, so libcyaml only ever sees sane input. It
 *   also remembers line:col of the first levels of keys so problems can point at them.
 * In the JSON tree every scalar stays a string ("version: 1.2" is "1.2", "true" is "true"):
 * YAML's implicit typing would turn versions into floats, and /meta only displays it.
 */

#define MANIFEST_MAX_BYTES (1024 * 1024)
#define MANIFEST_MAX_DEPTH 32
#define MANIFEST_POS_DEPTH 3 /* positions are kept for paths like "exec.command[0]" */
#define MANIFEST_MAX_NAME 128
#define MANIFEST_MAX_PROBLEMS 100 /* a generated 1 MiB file must not make a 1 MiB report */
#define MANIFEST_DOC "agent.yaml"
#define MANIFEST_EMPTY "the file is empty: it needs at least name and version"
#define MANIFEST_NOT_MAPPING "the document must be a mapping of keys, not a"

/* ---- problems ------------------------------------------------------------------------ */

#define MANIFEST_PRINTF(f, a) __attribute__((format(printf, f, a)))

struct manifest_pos {
	char *path;
	unsigned line, col; /* 1-based */
};

struct manifest_ctx {
	struct manifest_problems *p;
	size_t n_at_start;
	bool oom; /* an allocation failed: the result is -1 even if no problem could be stored */
	struct manifest_pos *pos;
	size_t npos, cappos;
	cJSON *root;
};

static void manifest_problem_push(struct manifest_ctx *c, char *where, char *rule)
{
	struct manifest_problems *p = c->p;
	struct manifest_problem *v = NULL;
	size_t seen = p->n - c->n_at_start;

	if (seen >= MANIFEST_MAX_PROBLEMS) {
		free(where);
		free(rule);
		if (seen > MANIFEST_MAX_PROBLEMS)
			return;
		where = strdup(MANIFEST_DOC);
		if (asprintf(&rule, "more than %d problems: the rest are not listed",
			     MANIFEST_MAX_PROBLEMS) < 0)
			rule = NULL;
	}
	if (where && rule)
		v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (!v) {
		c->oom = true;
		free(where);
		free(rule);
		return;
	}
	v[p->n].where = where;
	v[p->n].rule = rule;
	p->v = v;
	p->n++;
}

MANIFEST_PRINTF(1, 0)
static char *manifest_vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

static char *manifest_where_at(const char *path, unsigned line, unsigned col)
{
	char *s = NULL;

	if (!line)
		return strdup(path);
	if (asprintf(&s, "%s (line %u, column %u)", path, line, col) < 0)
		return NULL;
	return s;
}

/* A problem at an explicit position (syntax errors, structure refused by the tree walk). */
MANIFEST_PRINTF(5, 6)
static void manifest_problem_at(struct manifest_ctx *c, const char *path, unsigned line,
				unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *rule = manifest_vfmt(fmt, ap);
	va_end(ap);
	manifest_problem_push(c, manifest_where_at(path, line, col), rule);
}

static const struct manifest_pos *manifest_pos_find(const struct manifest_ctx *c,
						     const char *path)
{
	for (size_t i = 0; i < c->npos; i++)
		if (strcmp(c->pos[i].path, path) == 0)
			return &c->pos[i];
	return NULL;
}

/* The key path part of a where: everything before " (line …)". */
static size_t manifest_where_path_len(const char *where)
{
	const char *at = NULL;

	for (const char *p = strstr(where, " (line "); p; p = strstr(p + 1, " (line "))
		at = p;
	return at ? (size_t)(at - where) : strlen(where);
}

/* a is b, or one lies inside the other ("exec" and "exec.command[0]"). */
static bool manifest_paths_related(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), n = alen < blen ? alen : blen;

	if (strncmp(a, b, n) != 0)
		return false;
	if (alen == blen)
		return true;
	char next = alen > blen ? a[n] : b[n];
	return next == '.' || next == '[';
}

/* One problem per subtree: a key pruned for its shape is not then reported as missing too. */
static bool manifest_path_reported(const struct manifest_ctx *c, const char *path)
{
	for (size_t i = c->n_at_start; i < c->p->n; i++) {
		const char *w = c->p->v[i].where;
		if (manifest_paths_related(w, manifest_where_path_len(w), path))
			return true;
	}
	return false;
}

/* A problem about a key path; its line:col comes from the tree walk when it was recorded. */
MANIFEST_PRINTF(3, 4)
static void manifest_problem(struct manifest_ctx *c, const char *path, const char *fmt, ...)
{
	const struct manifest_pos *pos = manifest_pos_find(c, path);
	va_list ap;

	if (manifest_path_reported(c, path))
		return;
	va_start(ap, fmt);
	char *rule = manifest_vfmt(fmt, ap);
	va_end(ap);
	manifest_problem_push(c, manifest_where_at(path, pos ? pos->line : 0, pos ? pos->col : 0),
			      rule);
}

static void manifest_pos_add(struct manifest_ctx *c, const char *path, const yaml_mark_t *m)
{
	if (c->npos == c->cappos) {
		size_t cap = c->cappos ? c->cappos * 2 : 32;
		struct manifest_pos *v = realloc(c->pos, cap * sizeof(*v));
		if (!v) {
			c->oom = true;
			return;
		}
		c->pos = v;
		c->cappos = cap;
	}
	char *dup = strdup(path);
	if (!dup) {
		c->oom = true;
		return;
	}
	c->pos[c->npos++] = (struct manifest_pos){ dup, (unsigned)m->line + 1,
						   (unsigned)m->column + 1 };
}

/* ---- duplicate-key set: (mapping node, key) pairs, so a big mapping stays linear ---- */

struct manifest_keyslot {
	const cJSON *obj;
	const char *key; /* owned by the tree (item->string) */
};

struct manifest_keyset {
	struct manifest_keyslot *v;
	size_t cap, n; /* cap is a power of two */
};

static size_t manifest_key_hash(const cJSON *obj, const char *key)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)obj;

	for (const unsigned char *s = (const unsigned char *)key; *s; s++)
		h = (h ^ *s) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static struct manifest_keyslot *manifest_keyset_slot(struct manifest_keyset *ks,
						     const cJSON *obj, const char *key)
{
	size_t i = manifest_key_hash(obj, key) & (ks->cap - 1);

	while (ks->v[i].obj && !(ks->v[i].obj == obj && strcmp(ks->v[i].key, key) == 0))
		i = (i + 1) & (ks->cap - 1);
	return &ks->v[i];
}

static bool manifest_keyset_has(struct manifest_keyset *ks, const cJSON *obj, const char *key)
{
	return ks->cap && manifest_keyset_slot(ks, obj, key)->obj != NULL;
}

static int manifest_keyset_grow(struct manifest_keyset *ks)
{
	size_t cap = ks->cap ? ks->cap * 2 : 64;
	struct manifest_keyset bigger = { calloc(cap, sizeof(struct manifest_keyslot)), cap, 0 };

	if (!bigger.v)
		return -1;
	for (size_t i = 0; i < ks->cap; i++)
		if (ks->v[i].obj)
			*manifest_keyset_slot(&bigger, ks->v[i].obj, ks->v[i].key) = ks->v[i];
	bigger.n = ks->n;
	free(ks->v);
	*ks = bigger;
	return 0;
}

static int manifest_keyset_add(struct manifest_keyset *ks, const cJSON *obj, const char *key)
{
	if ((ks->n + 1) * 2 > ks->cap && manifest_keyset_grow(ks) < 0)
		return -1;
	*manifest_keyset_slot(ks, obj, key) = (struct manifest_keyslot){ obj, key };
	ks->n++;
	return 0;
}

/* ---- pass 1: libyaml events -> cJSON tree ------------------------------------------ */

struct manifest_frame {
	cJSON *node;
	size_t path_len; /* length of this container's own path in walk.path */
	char *key;       /* mapping: the key read whose value is pending */
	yaml_mark_t key_mark;
	size_t index; /* sequence: index of the next item */
};

struct manifest_walk {
	struct manifest_ctx *c;
	struct manifest_frame stack[MANIFEST_MAX_DEPTH];
	size_t depth;
	char *path;
	size_t path_len, path_cap;
	struct manifest_keyset keys;
	int docs;
	bool done;
};

enum { WALK_OK = 0, WALK_STOP = -1 };

static int manifest_walk_oom(struct manifest_walk *w)
{
	w->c->oom = true;
	return WALK_STOP;
}

MANIFEST_PRINTF(2, 3)
static int manifest_path_append(struct manifest_walk *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *part = manifest_vfmt(fmt, ap);
	va_end(ap);
	if (!part)
		return -1;
	size_t len = strlen(part);
	if (w->path_len + len + 1 > w->path_cap) {
		size_t cap = (w->path_len + len + 1) * 2;
		char *p = realloc(w->path, cap);
		if (!p) {
			free(part);
			return -1;
		}
		w->path = p;
		w->path_cap = cap;
	}
	memcpy(w->path + w->path_len, part, len + 1);
	w->path_len += len;
	free(part);
	return 0;
}

static void manifest_path_cut(struct manifest_walk *w, size_t len)
{
	w->path_len = len;
	if (w->path)
		w->path[len] = '\0';
}

static const char *manifest_path_or_doc(const struct manifest_walk *w)
{
	return w->path_len ? w->path : MANIFEST_DOC;
}

/* Extends the path with the component of the value about to be attached to the top frame
 * and remembers where it starts (the key for mapping entries). */
static int manifest_walk_enter_value(struct manifest_walk *w, const yaml_mark_t *value_mark)
{
	struct manifest_frame *top = &w->stack[w->depth - 1];
	int rc;

	if (cJSON_IsObject(top->node))
		rc = manifest_path_append(w, top->path_len ? ".%s" : "%s", top->key);
	else
		rc = manifest_path_append(w, "[%zu]", top->index);
	if (rc < 0)
		return manifest_walk_oom(w);
	if (w->depth <= MANIFEST_POS_DEPTH)
		manifest_pos_add(w->c, w->path,
				 cJSON_IsObject(top->node) ? &top->key_mark : value_mark);
	return WALK_OK;
}

/* Attaches item to the top frame; takes ownership of item in every case. */
static int manifest_walk_attach(struct manifest_walk *w, cJSON *item)
{
	struct manifest_frame *top = &w->stack[w->depth - 1];

	if (cJSON_IsArray(top->node)) {
		top->index++;
		if (!cJSON_AddItemToArray(top->node, item))
			goto oom;
		return WALK_OK;
	}
	if (!cJSON_AddItemToObject(top->node, top->key, item))
		goto oom;
	free(top->key);
	top->key = NULL;
	if (manifest_keyset_add(&w->keys, top->node, item->string) < 0)
		return manifest_walk_oom(w);
	return WALK_OK;
oom:
	cJSON_Delete(item);
	return manifest_walk_oom(w);
}

static bool manifest_walk_wants_key(const struct manifest_walk *w)
{
	const struct manifest_frame *top = &w->stack[w->depth - 1];

	return cJSON_IsObject(top->node) && top->key == NULL;
}

static int manifest_walk_refuse_anchor(struct manifest_walk *w, const yaml_char_t *anchor,
				       const yaml_mark_t *m)
{
	if (!anchor)
		return WALK_OK;
	manifest_problem_at(w->c, manifest_path_or_doc(w), m->line + 1, m->column + 1,
			    "YAML anchors and aliases are not allowed (&%s)", (const char *)anchor);
	return WALK_STOP;
}

static int manifest_walk_key(struct manifest_walk *w, const yaml_event_t *ev)
{
	struct manifest_frame *top = &w->stack[w->depth - 1];
	const char *key = (const char *)ev->data.scalar.value;

	if (manifest_keyset_has(&w->keys, top->node, key)) {
		size_t keep = w->path_len;
		if (manifest_path_append(w, top->path_len ? ".%s" : "%s", key) < 0)
			return manifest_walk_oom(w);
		manifest_problem_at(w->c, w->path, ev->start_mark.line + 1,
				    ev->start_mark.column + 1,
				    "duplicate key '%s': a key may appear once per mapping", key);
		manifest_path_cut(w, keep);
		return WALK_STOP;
	}
	top->key = strdup(key);
	if (!top->key)
		return manifest_walk_oom(w);
	top->key_mark = ev->start_mark;
	return WALK_OK;
}

/* Anchors and NULs are refused wherever they sit; w->path is the node's path (a key's mapping). */
static int manifest_walk_refuse_scalar(struct manifest_walk *w, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;

	if (manifest_walk_refuse_anchor(w, ev->data.scalar.anchor, m) < 0)
		return WALK_STOP;
	if (strlen((const char *)ev->data.scalar.value) == ev->data.scalar.length)
		return WALK_OK;
	manifest_problem_at(w->c, manifest_path_or_doc(w), m->line + 1, m->column + 1,
			    "a scalar contains a NUL byte");
	return WALK_STOP;
}

static int manifest_walk_scalar(struct manifest_walk *w, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;

	if (w->depth == 0) {
		manifest_problem_at(w->c, MANIFEST_DOC, m->line + 1, m->column + 1, "%s",
				    ev->data.scalar.length ? MANIFEST_NOT_MAPPING " scalar"
							   : MANIFEST_EMPTY);
		return WALK_STOP;
	}
	if (manifest_walk_wants_key(w)) {
		if (manifest_walk_refuse_scalar(w, ev) < 0)
			return WALK_STOP;
		return manifest_walk_key(w, ev);
	}
	size_t keep = w->stack[w->depth - 1].path_len;
	if (manifest_walk_enter_value(w, m) < 0 || manifest_walk_refuse_scalar(w, ev) < 0)
		return WALK_STOP;
	manifest_path_cut(w, keep);
	cJSON *item = cJSON_CreateString((const char *)ev->data.scalar.value);
	if (!item)
		return manifest_walk_oom(w);
	return manifest_walk_attach(w, item);
}

static int manifest_walk_open_root(struct manifest_walk *w, const yaml_char_t *anchor,
				   const yaml_mark_t *m, bool mapping)
{
	if (!mapping) {
		manifest_problem_at(w->c, MANIFEST_DOC, m->line + 1, m->column + 1,
				    MANIFEST_NOT_MAPPING " sequence");
		return WALK_STOP;
	}
	if (manifest_walk_refuse_anchor(w, anchor, m) < 0)
		return WALK_STOP;
	w->c->root = cJSON_CreateObject();
	if (!w->c->root)
		return manifest_walk_oom(w);
	w->stack[w->depth++] = (struct manifest_frame){ .node = w->c->root, .path_len = 0 };
	return WALK_OK;
}

static int manifest_walk_open(struct manifest_walk *w, const yaml_event_t *ev, bool mapping)
{
	const yaml_mark_t *m = &ev->start_mark;
	const yaml_char_t *anchor = mapping ? ev->data.mapping_start.anchor
					    : ev->data.sequence_start.anchor;

	if (w->depth == 0)
		return manifest_walk_open_root(w, anchor, m, mapping);
	if (manifest_walk_wants_key(w)) {
		manifest_problem_at(w->c, manifest_path_or_doc(w), m->line + 1, m->column + 1,
				    "mapping keys must be scalars, not a %s",
				    mapping ? "mapping" : "sequence");
		return WALK_STOP;
	}
	if (manifest_walk_enter_value(w, m) < 0 || manifest_walk_refuse_anchor(w, anchor, m) < 0)
		return WALK_STOP;
	if (w->depth == MANIFEST_MAX_DEPTH) {
		manifest_problem_at(w->c, w->path, m->line + 1, m->column + 1,
				    "nesting is deeper than %d levels", MANIFEST_MAX_DEPTH);
		return WALK_STOP;
	}
	cJSON *node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
	if (!node)
		return manifest_walk_oom(w);
	if (manifest_walk_attach(w, node) < 0)
		return WALK_STOP;
	w->stack[w->depth++] = (struct manifest_frame){ .node = node, .path_len = w->path_len };
	return WALK_OK;
}

static void manifest_walk_close(struct manifest_walk *w)
{
	w->depth--;
	free(w->stack[w->depth].key);
	w->stack[w->depth].key = NULL;
	manifest_path_cut(w, w->depth ? w->stack[w->depth - 1].path_len : 0);
}

static int manifest_walk_event(struct manifest_walk *w, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (w->docs++ == 0)
			return WALK_OK;
		manifest_problem_at(w->c, MANIFEST_DOC, m->line + 1, m->column + 1,
				    "only one YAML document is allowed");
		return WALK_STOP;
	case YAML_ALIAS_EVENT:
		/* Report it at the key it was meant for. */
		if (w->depth && !manifest_walk_wants_key(w) && manifest_walk_enter_value(w, m) < 0)
			return WALK_STOP;
		manifest_problem_at(w->c, manifest_path_or_doc(w), m->line + 1, m->column + 1,
				    "YAML anchors and aliases are not allowed (*%s)",
				    (const char *)ev->data.alias.anchor);
		return WALK_STOP;
	case YAML_SCALAR_EVENT:
		return manifest_walk_scalar(w, ev);
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		return manifest_walk_open(w, ev, ev->type == YAML_MAPPING_START_EVENT);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		manifest_walk_close(w);
		return WALK_OK;
	case YAML_STREAM_END_EVENT:
		w->done = true;
		return WALK_OK;
	default:
		return WALK_OK;
	}
}

static void manifest_walk_syntax_error(struct manifest_walk *w, const yaml_parser_t *yp)
{
	if (yp->error == YAML_MEMORY_ERROR) {
		w->c->oom = true;
		return;
	}
	if (yp->error == YAML_READER_ERROR) {
		/* Bad encoding: libyaml knows the byte offset, not a line. */
		manifest_problem_at(w->c, MANIFEST_DOC, 0, 0,
				    "not valid UTF-8/UTF-16: %s at byte %zu",
				    yp->problem ? yp->problem : "unreadable", yp->problem_offset);
		return;
	}
	const yaml_mark_t *m = &yp->problem_mark;
	manifest_problem_at(w->c, MANIFEST_DOC, m->line + 1, m->column + 1,
			    "YAML syntax error: %s%s%s", yp->problem ? yp->problem : "unknown",
			    yp->context ? " " : "", yp->context ? yp->context : "");
}

/* Builds c->root from the document; returns 0 when it is a mapping the rest may look at. */
static int manifest_tree_build(struct manifest_ctx *c, const char *yaml, size_t len)
{
	struct manifest_walk w = { .c = c };
	yaml_parser_t yp;
	int rc = WALK_OK;

	if (!yaml_parser_initialize(&yp)) {
		c->oom = true;
		return -1;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
	while (rc == WALK_OK && !w.done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&yp, &ev)) {
			manifest_walk_syntax_error(&w, &yp);
			rc = WALK_STOP;
			break;
		}
		rc = manifest_walk_event(&w, &ev);
		yaml_event_delete(&ev);
	}
	if (rc == WALK_OK && !c->root)
		manifest_problem_at(c, MANIFEST_DOC, 0, 0, MANIFEST_EMPTY);
	while (w.depth)
		manifest_walk_close(&w);
	free(w.path);
	free(w.keys.v);
	yaml_parser_delete(&yp);
	return rc == WALK_OK && c->root && !c->oom ? 0 : -1;
}

/* ---- pass 2: the typed keys, through libcyaml ------------------------------------- */

struct manifest_doc_exec {
	char **command;
	unsigned command_count;
};

struct manifest_doc_a2a {
	char *service;
};

struct manifest_doc_rest {
	char *entry;
};

struct manifest_doc_ui {
	char *path;
	char *base_path;
};

struct manifest_doc {
	char *name;
	char *version;
	char *description;
	char *author;
	char *entrypoint;
	struct manifest_doc_exec *exec;
	struct manifest_doc_a2a *a2a;
	struct manifest_doc_rest *rest;
	struct manifest_doc_ui *ui;
};

#define MANIFEST_OPT (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define MANIFEST_STR(key, type, member) \
	CYAML_FIELD_STRING_PTR(key, MANIFEST_OPT, type, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_value_t manifest_string_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

/* env has arbitrary keys, which a cyaml mapping cannot describe: it is read from the tree. */
static const cyaml_schema_field_t manifest_exec_fields[] = {
	CYAML_FIELD_SEQUENCE("command", MANIFEST_OPT, struct manifest_doc_exec, command,
			     &manifest_string_entry, 0, CYAML_UNLIMITED),
	CYAML_FIELD_IGNORE("env", CYAML_FLAG_OPTIONAL),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t manifest_a2a_fields[] = {
	MANIFEST_STR("service", struct manifest_doc_a2a, service),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t manifest_rest_fields[] = {
	MANIFEST_STR("entry", struct manifest_doc_rest, entry),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t manifest_ui_fields[] = {
	MANIFEST_STR("path", struct manifest_doc_ui, path),
	MANIFEST_STR("basePath", struct manifest_doc_ui, base_path),
	CYAML_FIELD_END
};

/* runtime is a scalar or a mapping and metadata is free-form: both are read from the tree. */
static const cyaml_schema_field_t manifest_fields[] = {
	MANIFEST_STR("name", struct manifest_doc, name),
	MANIFEST_STR("version", struct manifest_doc, version),
	MANIFEST_STR("description", struct manifest_doc, description),
	MANIFEST_STR("author", struct manifest_doc, author),
	MANIFEST_STR("entrypoint", struct manifest_doc, entrypoint),
	CYAML_FIELD_IGNORE("runtime", CYAML_FLAG_OPTIONAL),
	CYAML_FIELD_IGNORE("metadata", CYAML_FLAG_OPTIONAL),
	CYAML_FIELD_MAPPING_PTR("exec", MANIFEST_OPT, struct manifest_doc, exec,
				manifest_exec_fields),
	CYAML_FIELD_MAPPING_PTR("a2a", MANIFEST_OPT, struct manifest_doc, a2a,
				manifest_a2a_fields),
	CYAML_FIELD_MAPPING_PTR("rest", MANIFEST_OPT, struct manifest_doc, rest,
				manifest_rest_fields),
	CYAML_FIELD_MAPPING_PTR("ui", MANIFEST_OPT, struct manifest_doc, ui, manifest_ui_fields),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t manifest_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct manifest_doc, manifest_fields),
};

static const char *manifest_kind(const cJSON *n)
{
	if (cJSON_IsObject(n))
		return "a mapping";
	if (cJSON_IsArray(n))
		return "a sequence";
	return "a scalar";
}

static bool manifest_shape_ok(const cJSON *n, enum cyaml_type t)
{
	switch (t) {
	case CYAML_STRING:
		return cJSON_IsString(n);
	case CYAML_MAPPING:
		return cJSON_IsObject(n);
	case CYAML_SEQUENCE:
		return cJSON_IsArray(n);
	default:
		return true;
	}
}

static bool manifest_shape_value(struct manifest_ctx *c, cJSON *n,
				 const cyaml_schema_value_t *s, const char *path);

static void manifest_shape_mapping(struct manifest_ctx *c, cJSON *obj,
				   const cyaml_schema_field_t *f, const char *path)
{
	for (; f->key; f++) {
		cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, f->key);
		char *sub = NULL;
		if (!n)
			continue;
		if (asprintf(&sub, "%s%s%s", path, *path ? "." : "", f->key) < 0) {
			c->oom = true;
			return;
		}
		if (!manifest_shape_value(c, n, &f->value, sub))
			cJSON_DeleteItemFromObjectCaseSensitive(obj, f->key);
		free(sub);
	}
}

static void manifest_shape_sequence(struct manifest_ctx *c, cJSON *seq,
				    const cyaml_schema_value_t *entry, const char *path)
{
	cJSON *next;
	int i = 0;

	for (cJSON *e = seq->child; e; e = next, i++) {
		char *sub = NULL;
		next = e->next;
		if (asprintf(&sub, "%s[%d]", path, i) < 0) {
			c->oom = true;
			return;
		}
		if (!manifest_shape_value(c, e, entry, sub))
			cJSON_Delete(cJSON_DetachItemViaPointer(seq, e));
		free(sub);
	}
}

/* Reports a known key whose YAML kind is not the schema's; false: the caller prunes it. */
static bool manifest_shape_value(struct manifest_ctx *c, cJSON *n,
				 const cyaml_schema_value_t *s, const char *path)
{
	static const char *const want[] = { [CYAML_STRING] = "a scalar",
					    [CYAML_MAPPING] = "a mapping",
					    [CYAML_SEQUENCE] = "a sequence" };

	if (!manifest_shape_ok(n, s->type)) {
		manifest_problem(c, path, "must be %s, not %s", want[s->type], manifest_kind(n));
		return false;
	}
	if (s->type == CYAML_MAPPING)
		manifest_shape_mapping(c, n, s->mapping.fields, path);
	else if (s->type == CYAML_SEQUENCE)
		manifest_shape_sequence(c, n, s->sequence.entry, path);
	return true;
}

struct manifest_cyaml_log {
	char msg[256];
};

/* Keeps libcyaml's first error line: after the shape check it should never fail, but if it
 * does the user gets its reason instead of silence. */
static void manifest_cyaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct manifest_cyaml_log *l = ctx;

	if (level < CYAML_LOG_ERROR || l->msg[0])
		return;
	vsnprintf(l->msg, sizeof(l->msg), fmt, args);
	l->msg[strcspn(l->msg, "\n")] = '\0';
}

/*
 * The shape check runs first so that every wrong-kind value is reported, not only libcyaml's
 * first. Those values are pruned from the tree and libcyaml then reads the pruned tree as
 * JSON (a subset of YAML), so the value rules still see every other key. The document is
 * failing already then, so a libcyaml error on that text adds nothing and is not reported.
 */
static int manifest_doc_load(struct manifest_ctx *c, const char *yaml, size_t len,
			     struct manifest_doc **out, const cyaml_config_t *cfg)
{
	size_t before = c->p->n;
	cyaml_data_t *data = NULL;
	char *pruned = NULL;
	bool was_pruned;

	manifest_shape_mapping(c, c->root, manifest_fields, "");
	if (c->oom)
		return -1;
	if (c->p->n != before) {
		pruned = cJSON_PrintUnformatted(c->root);
		if (!pruned) {
			c->oom = true;
			return -1;
		}
		yaml = pruned;
		len = strlen(pruned);
	}
	cyaml_err_t err = cyaml_load_data((const uint8_t *)yaml, len, cfg, &manifest_schema,
					  &data, NULL);
	was_pruned = pruned != NULL;
	free(pruned);
	if (err != CYAML_OK) {
		const struct manifest_cyaml_log *l = cfg->log_ctx;
		if (!was_pruned)
			manifest_problem_at(c, MANIFEST_DOC, 0, 0, "rejected by the schema: %s%s%s",
					    cyaml_strerror(err), l->msg[0] ? ": " : "", l->msg);
		return -1;
	}
	/* OK with NULL data means no known key is set: the caller uses an empty struct. */
	*out = data;
	return 0;
}

/* ---- value rules ------------------------------------------------------------------ */

bool manifest_valid_name(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
	if (n == 0 || n > MANIFEST_MAX_NAME || s[n] != '\0')
		return false;
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool manifest_ident_char(char ch, bool first)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_')
		return true;
	return !first && ch >= '0' && ch <= '9';
}

/* A Python dotted name: identifiers joined by single dots; stops at the first other char. */
static const char *manifest_dotted_end(const char *s, bool allow_dots)
{
	bool first = true;

	for (; *s; s++) {
		if (allow_dots && *s == '.' && !first) {
			first = true;
			continue;
		}
		if (!manifest_ident_char(*s, first))
			break;
		first = false;
	}
	return first ? NULL : s;
}

/* "module:function" (function_optional: "module[:function]"), module dotted. */
static bool manifest_valid_callable(const char *s, bool function_optional)
{
	const char *e = manifest_dotted_end(s, true);

	if (!e)
		return false;
	if (*e == '\0')
		return function_optional;
	if (*e != ':')
		return false;
	e = manifest_dotted_end(e + 1, false);
	return e && *e == '\0';
}

/* A path inside the package: relative, no ".." component, no backslash, no control chars. */
static const char *manifest_relpath_error(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (*s == '/')
		return "must be relative to the package root, not absolute";
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			return "must not contain a backslash";
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "must not contain control characters";
	}
	for (const char *p = s; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return "must not contain a '..' component";
	}
	return NULL;
}

static bool manifest_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void manifest_check_name(struct manifest_ctx *c, const char *key, const char *v)
{
	if (!v)
		manifest_problem(c, key, "%s is required", key);
	else if (!manifest_valid_name(v))
		manifest_problem(c, key,
				 "must match [A-Za-z0-9._-]{1,%d} and not be '.' or '..'"
				 " (got '%.64s%s')",
				 MANIFEST_MAX_NAME, v, strlen(v) > 64 ? "..." : "");
}

/* "python", "python3", "python3.11": digits and single dots after the word. */
static bool manifest_python_word(const char *s)
{
	if (strncmp(s, "python", 6) != 0)
		return false;
	s += 6;
	if (*s == '\0')
		return true;
	for (bool digit_needed = true; *s; s++) {
		if (*s >= '0' && *s <= '9')
			digit_needed = false;
		else if (*s == '.' && !digit_needed)
			digit_needed = true;
		else
			return false;
	}
	return s[-1] != '.';
}

/* A PEP 440-ish specifier like ">=3.8", "~=3.11", "3.11.*", ">=3.8,<4". */
static bool manifest_valid_pyspec(const char *s)
{
	size_t n = strspn(s, "0123456789.*<>=!~, ");

	return n > 0 && n <= 64 && s[n] == '\0' && strpbrk(s, "0123456789");
}

struct manifest_runtime {
	bool given;
	bool bad; /* already reported: rules that depend on the runtime are skipped */
	enum par_runtime kind;
	const char *spec; /* points into the tree */
};

static const cJSON *manifest_node(const struct manifest_ctx *c, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(c->root, key);
}

static void manifest_runtime_read(struct manifest_ctx *c, struct manifest_runtime *rt)
{
	const cJSON *n = manifest_node(c, "runtime");
	const char *s;

	if (!n)
		return;
	rt->given = true;
	if (cJSON_IsObject(n)) {
		const cJSON *py = cJSON_GetObjectItemCaseSensitive(n, "python");
		rt->kind = PAR_RUNTIME_PYTHON;
		if (!cJSON_IsString(py) || !manifest_valid_pyspec(py->valuestring)) {
			rt->bad = true;
			manifest_problem(c, py ? "runtime.python" : "runtime",
					 "the mapping form is {python: \"<version spec>\"},"
					 " e.g. {python: \">=3.8\"}");
			return;
		}
		rt->spec = py->valuestring;
		return;
	}
	s = cJSON_IsString(n) ? n->valuestring : "";
	rt->spec = s;
	if (strcmp(s, "native") == 0)
		rt->kind = PAR_RUNTIME_NATIVE;
	else if (strcmp(s, "exec") == 0)
		rt->kind = PAR_RUNTIME_EXEC;
	else if (manifest_python_word(s))
		rt->kind = PAR_RUNTIME_PYTHON;
	else {
		rt->bad = true;
		manifest_problem(c, "runtime", "must be native, exec, python, pythonX[.Y]"
					       " or {python: \"<version spec>\"}");
	}
}

/* Without a runtime key the package says what it is by its other keys (SPEC §3). With no
 * entrypoint and no exec it is a REST/UI-only package: python when rest.entry names Python
 * code to mount, otherwise native with no entrypoint, for which pard runs no agent at all. */
static void manifest_runtime_infer(struct manifest_ctx *c, const struct manifest_doc *d,
				   struct manifest_runtime *rt)
{
	if (d->entrypoint) {
		if (manifest_valid_callable(d->entrypoint, false)) {
			rt->kind = PAR_RUNTIME_PYTHON;
		} else if (manifest_ends_with(d->entrypoint, ".so")) {
			rt->kind = PAR_RUNTIME_NATIVE;
		} else {
			manifest_problem(c, "entrypoint",
					 "without a runtime key, entrypoint must be module:function"
					 " (python) or a relative path to a .so (native)");
			rt->bad = true;
			return;
		}
	} else if (manifest_node(c, "exec")) {
		rt->kind = PAR_RUNTIME_EXEC;
	} else {
		rt->kind = d->rest && d->rest->entry ? PAR_RUNTIME_PYTHON : PAR_RUNTIME_NATIVE;
	}
	rt->spec = manifest_runtime_name(rt->kind);
}

static void manifest_check_exec(struct manifest_ctx *c, const struct manifest_doc *d)
{
	const char *why;

	if (!d->exec || !d->exec->command_count) {
		manifest_problem(c, "exec.command",
				 "runtime exec needs exec.command, a non-empty argv list");
		return;
	}
	why = manifest_relpath_error(d->exec->command[0]);
	if (why)
		manifest_problem(c, "exec.command[0]", "the program %s", why);
}

static bool manifest_valid_env_name(const char *s)
{
	if (!manifest_ident_char(*s, true))
		return false;
	while (*++s)
		if (!manifest_ident_char(*s, false))
			return false;
	return true;
}

/* exec.env from the tree (arbitrary keys), as "K=V"; NULL when absent. */
static char **manifest_exec_env(struct manifest_ctx *c)
{
	const cJSON *exec = manifest_node(c, "exec");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(exec, "env");
	char **v;
	size_t i = 0;

	if (!env)
		return NULL;
	if (!cJSON_IsObject(env)) {
		manifest_problem(c, "exec.env", "must be a mapping of NAME: value, not %s",
				 manifest_kind(env));
		return NULL;
	}
	v = calloc((size_t)cJSON_GetArraySize(env) + 1, sizeof(*v));
	if (!v) {
		c->oom = true;
		return NULL;
	}
	for (const cJSON *e = env->child; e; e = e->next) {
		char *path = NULL;
		if (asprintf(&path, "exec.env.%s", e->string) < 0) {
			c->oom = true;
			break;
		}
		if (!manifest_valid_env_name(e->string))
			manifest_problem(c, path,
					 "an environment name must match [A-Za-z_][A-Za-z0-9_]*");
		else if (!cJSON_IsString(e))
			manifest_problem(c, path, "must be a scalar, not %s", manifest_kind(e));
		else if (asprintf(&v[i], "%s=%s", e->string, e->valuestring) < 0)
			c->oom = true;
		else
			i++;
		free(path);
	}
	return v;
}

static void manifest_check_entry(struct manifest_ctx *c, const struct manifest_doc *d,
				 enum par_runtime kind)
{
	const char *why;

	if (kind == PAR_RUNTIME_PYTHON) {
		if (d->entrypoint && !manifest_valid_callable(d->entrypoint, false))
			manifest_problem(c, "entrypoint",
					 "a python entrypoint must be module:function"
					 " (dotted module, identifier function)");
		if (!d->entrypoint && !(d->a2a && d->a2a->service) && !(d->rest && d->rest->entry))
			manifest_problem(c, "entrypoint", "a python package needs an entrypoint,"
							  " a2a.service or rest.entry");
	} else if (kind == PAR_RUNTIME_NATIVE && d->entrypoint) {
		why = manifest_relpath_error(d->entrypoint);
		if (why)
			manifest_problem(c, "entrypoint", "a native entrypoint (.so path) %s", why);
	} else if (kind == PAR_RUNTIME_EXEC) {
		manifest_check_exec(c, d);
	}
}

static bool manifest_valid_base_path(const char *s)
{
	if (s[0] != '/')
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\' || *p == '?' || *p == '#')
			return false;
	for (const char *p = strstr(s, "/.."); p; p = strstr(p + 1, "/.."))
		if (p[3] == '/' || p[3] == '\0')
			return false;
	return true;
}

static void manifest_check_surfaces(struct manifest_ctx *c, const struct manifest_doc *d)
{
	const char *why;

	if (d->a2a && d->a2a->service && !manifest_valid_callable(d->a2a->service, false))
		manifest_problem(c, "a2a.service", "must be module:function");
	if (d->rest && d->rest->entry && !manifest_valid_callable(d->rest->entry, true))
		manifest_problem(c, "rest.entry", "must be module or module:function");
	if (!manifest_node(c, "ui"))
		return;
	if (!d->ui || !d->ui->path)
		manifest_problem(c, "ui.path", "ui needs path, a directory inside the package");
	else if ((why = manifest_relpath_error(d->ui->path)))
		manifest_problem(c, "ui.path", "the UI directory %s", why);
	if (d->ui && d->ui->base_path && !manifest_valid_base_path(d->ui->base_path))
		manifest_problem(c, "ui.basePath", "must start with '/' and hold no '..' segment,"
						   " spaces, backslash, '?' or '#'");
}

/* ---- assembling the result -------------------------------------------------------- */

static char *manifest_dup(struct manifest_ctx *c, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		c->oom = true;
	return d;
}

static char **manifest_dup_argv(struct manifest_ctx *c, char **v, size_t n)
{
	char **out = calloc(n + 1, sizeof(*out));

	if (!out) {
		c->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = manifest_dup(c, v[i]);
	return out;
}

static void manifest_fill(struct manifest_ctx *c, const struct manifest_doc *d,
			  const struct manifest_runtime *rt, struct par_manifest *m)
{
	m->name = manifest_dup(c, d->name);
	m->version = manifest_dup(c, d->version);
	m->description = manifest_dup(c, d->description);
	m->author = manifest_dup(c, d->author);
	m->runtime = rt->kind;
	m->runtime_spec = manifest_dup(c, rt->spec ? rt->spec : manifest_runtime_name(rt->kind));
	m->entrypoint = manifest_dup(c, d->entrypoint);
	if (rt->kind == PAR_RUNTIME_EXEC) {
		if (d->exec && d->exec->command_count) {
			m->exec_command = manifest_dup_argv(c, d->exec->command,
							    d->exec->command_count);
			m->exec_command_count = m->exec_command ? d->exec->command_count : 0;
		}
		m->exec_env = manifest_exec_env(c);
	}
	/* Presence comes from the tree: "a2a: {}" is present even if libcyaml allocates nothing. */
	m->has_a2a = manifest_node(c, "a2a") != NULL;
	m->a2a_service = manifest_dup(c, d->a2a ? d->a2a->service : NULL);
	m->has_rest = manifest_node(c, "rest") != NULL;
	m->rest_entry = manifest_dup(c, d->rest ? d->rest->entry : NULL);
	m->has_ui = manifest_node(c, "ui") != NULL;
	m->ui_path = manifest_dup(c, d->ui ? d->ui->path : NULL);
	m->ui_base_path = manifest_dup(c, d->ui && d->ui->base_path ? d->ui->base_path : "/");
	m->json = cJSON_PrintUnformatted(c->root);
	if (!m->json)
		c->oom = true;
}

/* Runs the value rules on a loaded doc and fills m (m is wiped by the caller on failure). */
static void manifest_validate(struct manifest_ctx *c, const struct manifest_doc *d,
			      struct manifest_runtime *rt, struct par_manifest *m)
{
	manifest_check_name(c, "name", d->name);
	manifest_check_name(c, "version", d->version);
	if (!rt->given)
		manifest_runtime_infer(c, d, rt);
	if (!rt->bad)
		manifest_check_entry(c, d, rt->kind);
	manifest_check_surfaces(c, d);
	manifest_fill(c, d, rt, m);
}

static void manifest_ctx_free(struct manifest_ctx *c)
{
	for (size_t i = 0; i < c->npos; i++)
		free(c->pos[i].path);
	free(c->pos);
	cJSON_Delete(c->root);
	c->pos = NULL;
	c->npos = c->cappos = 0;
	c->root = NULL;
}

/* Hands the problems found to the caller's list (or drops them when it passed none). */
static int manifest_finish(struct manifest_ctx *c, struct manifest_problems *local,
			   struct par_manifest *m)
{
	bool failed = c->oom || c->p->n > c->n_at_start;

	if (failed && c->oom && c->p->n == c->n_at_start)
		manifest_problem_at(c, MANIFEST_DOC, 0, 0, "out of memory while loading");
	if (c->p == local)
		manifest_problems_free(local);
	if (!failed)
		return 0;
	manifest_free(m);
	return -1;
}

int manifest_load_buffer(const char *yaml, size_t len, struct par_manifest *m,
			 struct manifest_problems *p)
{
	struct manifest_problems local = { 0 };
	struct manifest_ctx c = { .p = p ? p : &local };
	struct manifest_cyaml_log log = { { 0 } };
	const cyaml_config_t cfg = {
		.log_fn = manifest_cyaml_log_fn,
		.log_ctx = &log,
		.mem_fn = cyaml_mem,
		.log_level = CYAML_LOG_ERROR,
		/* Never one without the other: see the comment at the top. */
		.flags = CYAML_CFG_NO_ALIAS | CYAML_CFG_IGNORE_UNKNOWN_KEYS,
	};
	static const struct manifest_doc empty;
	struct manifest_runtime rt = { 0 };
	struct manifest_doc *d = NULL;

	c.n_at_start = c.p->n;
	memset(m, 0, sizeof(*m));
	if (len > MANIFEST_MAX_BYTES) {
		manifest_problem_at(&c, MANIFEST_DOC, 0, 0,
				    "the file is %zu bytes, over the 1 MiB limit", len);
		goto out;
	}
	if (!yaml) {
		yaml = "";
		len = 0;
	}
	if (manifest_tree_build(&c, yaml, len) < 0)
		goto out;
	manifest_runtime_read(&c, &rt);
	if (manifest_doc_load(&c, yaml, len, &d, &cfg) < 0)
		goto out;
	manifest_validate(&c, d ? d : &empty, &rt, m);
out:
	if (d)
		cyaml_free(&cfg, &manifest_schema, d, 0);
	manifest_ctx_free(&c);
	return manifest_finish(&c, &local, m);
}

/* ---- files -------------------------------------------------------------------------- */

/* Reads at most 1 MiB + 1 byte, so a file that grows while being read is still refused. */
static int manifest_read_file(const char *path, char **buf, size_t *len,
			      struct manifest_ctx *c)
{
	struct stat st;
	size_t cap = MANIFEST_MAX_BYTES + 1, n = 0;
	int fd, rc = -1;
	char *b = NULL;

	/* O_NONBLOCK: a FIFO planted as agent.yaml must not hang the open. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		manifest_problem_at(c, path, 0, 0, errno == ENOENT ? "the file does not exist"
								  : "cannot open: %s",
				    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		manifest_problem_at(c, path, 0, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > MANIFEST_MAX_BYTES) {
		manifest_problem_at(c, path, 0, 0, "the file is %lld bytes, over the 1 MiB limit",
				    (long long)st.st_size);
		goto out;
	}
	b = malloc(cap);
	if (!b) {
		c->oom = true;
		goto out;
	}
	while (n < cap) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			manifest_problem_at(c, path, 0, 0, "read failed: %s", strerror(errno));
			goto out;
		}
		n += (size_t)r;
	}
	if (n > MANIFEST_MAX_BYTES) {
		manifest_problem_at(c, path, 0, 0, "the file is over the 1 MiB limit");
		goto out;
	}
	*buf = b;
	*len = n;
	b = NULL;
	rc = 0;
out:
	free(b);
	close(fd);
	return rc;
}

int manifest_load_file(const char *path, struct par_manifest *m, struct manifest_problems *p)
{
	struct manifest_problems local = { 0 };
	struct manifest_ctx c = { .p = p ? p : &local };
	char *buf = NULL;
	size_t len = 0;
	int rc;

	c.n_at_start = c.p->n;
	memset(m, 0, sizeof(*m));
	if (!path) {
		manifest_problem_at(&c, MANIFEST_DOC, 0, 0, "no path given");
		return manifest_finish(&c, &local, m);
	}
	if (manifest_read_file(path, &buf, &len, &c) < 0)
		return manifest_finish(&c, &local, m);
	rc = manifest_load_buffer(buf, len, m, p);
	free(buf);
	return rc;
}

int manifest_load_dir(const char *dir, struct par_manifest *m, struct manifest_problems *p)
{
	char *path = NULL;
	int rc;

	if (asprintf(&path, "%s/agent.yaml", dir) < 0) {
		struct manifest_problems local = { 0 };
		struct manifest_ctx c = { .p = p ? p : &local, .oom = true };
		c.n_at_start = c.p->n;
		memset(m, 0, sizeof(*m));
		return manifest_finish(&c, &local, m);
	}
	rc = manifest_load_file(path, m, p);
	free(path);
	return rc;
}

void manifest_free(struct par_manifest *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->version);
	free(m->description);
	free(m->author);
	free(m->runtime_spec);
	free(m->entrypoint);
	for (size_t i = 0; m->exec_command && i < m->exec_command_count; i++)
		free(m->exec_command[i]);
	free(m->exec_command);
	for (size_t i = 0; m->exec_env && m->exec_env[i]; i++)
		free(m->exec_env[i]);
	free(m->exec_env);
	free(m->a2a_service);
	free(m->rest_entry);
	free(m->ui_path);
	free(m->ui_base_path);
	free(m->json);
	memset(m, 0, sizeof(*m));
}

void manifest_problems_free(struct manifest_problems *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].where);
		free(p->v[i].rule);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

const char *manifest_runtime_name(enum par_runtime r)
{
	switch (r) {
	case PAR_RUNTIME_NATIVE:
		return "native";
	case PAR_RUNTIME_EXEC:
		return "exec";
	case PAR_RUNTIME_PYTHON:
		return "python";
	}
	return "unknown";
}
