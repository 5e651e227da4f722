/* parctl's grammar as a static token table (bgpctl's parser.c): each table lists what may
 * come next; keywords match by any unique prefix; errors name the valid choices. The walk
 * serves both parsing and completion, so the two can never disagree. */
#include "parser.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "par/parse.h"

enum tok_type {
	T_NONE,     /* ends a table */
	T_ENDOK,    /* the command may end here */
	T_KEYWORD,  /* a word; sets args[key] = word when key is set */
	T_FLAG,     /* --word; sets args[key] = value, or true */
	T_OPTION,   /* --word VALUE; sets args[key] to the value, checked by kind */
	T_FAULT,    /* a runtime fault name of admin_faults; sets args[key] */
	T_VALUE,    /* any word not starting with "--"; sets args[key] */
	T_REST,     /* every remaining word, unparsed; next: the table to suggest from, if any */
};

enum value_kind { VK_NONE, VK_SECONDS, VK_PROBABILITY };

struct token {
	enum tok_type type;
	const char *word;          /* keyword, flag or option */
	const char *hint;          /* T_OPTION, T_VALUE: what the value is, for messages */
	enum parse_action action;  /* what choosing this token makes the command */
	const char *cmd;           /* the admin verb this token completes */
	const char *key;           /* the args member it fills */
	const char *value;         /* T_FLAG: the string it sets (NULL: true) */
	enum value_kind kind;
	bool shell_only;
	const struct token *next;
};

/* Tentative definitions: the tables refer to each other (bgpctl does the same). */
static const struct token t_main[], t_end[], t_show[], t_metrics[], t_drain[], t_health[],
	t_fault[], t_fault_name[], t_fault_opts[], t_fault_opts_valued[], t_fault_clear[],
	t_log[], t_level[], t_verify[], t_validate[], t_completion[], t_help[];

#define ADMIN_VERB(w, c, n) {.type = T_KEYWORD, .word = (w), .action = PA_ADMIN, .cmd = (c), .next = (n)}
#define KEYWORD_ARG(w, k, n) {.type = T_KEYWORD, .word = (w), .key = (k), .next = (n)}
#define ENDOK {.type = T_ENDOK}
#define TABLE_END {.type = T_NONE}

static const struct token t_main[] = {
	ADMIN_VERB("status", "status", t_end),
	ADMIN_VERB("show", NULL, t_show),
	ADMIN_VERB("drain", "drain", t_drain),
	ADMIN_VERB("undrain", "undrain", t_end),
	ADMIN_VERB("health", "health", t_health),
	ADMIN_VERB("fault", NULL, t_fault),
	ADMIN_VERB("log", NULL, t_log),
	ADMIN_VERB("monitor", "monitor", t_end),
	ADMIN_VERB("ping", "ping", t_end),
	ADMIN_VERB("version", "version", t_end),
	ADMIN_VERB("verify-isolation", "verify-isolation", t_verify),
	{.type = T_KEYWORD, .word = "validate", .action = PA_VALIDATE, .next = t_validate},
	{.type = T_KEYWORD, .word = "completion", .action = PA_COMPLETION, .next = t_completion},
	{.type = T_KEYWORD, .word = "help", .action = PA_HELP, .next = t_help},
	{.type = T_KEYWORD, .word = "quit", .action = PA_QUIT, .shell_only = true, .next = t_end},
	{.type = T_KEYWORD, .word = "exit", .action = PA_QUIT, .shell_only = true, .next = t_end},
	TABLE_END,
};

static const struct token t_end[] = {ENDOK, TABLE_END};

static const struct token t_show[] = {
	ADMIN_VERB("boot", "show boot", t_end),
	ADMIN_VERB("config", "show config", t_end),
	ADMIN_VERB("package", "show package", t_end),
	ADMIN_VERB("metrics", "show metrics", t_metrics),
	ADMIN_VERB("budgets", "show budgets", t_end),
	TABLE_END,
};

/* Text output is OpenMetrics anyway; the flag asks for it with -j too. */
static const struct token t_metrics[] = {
	ENDOK,
	{.type = T_FLAG, .word = "--openmetrics", .key = "format", .value = "openmetrics",
	 .next = t_metrics},
	TABLE_END,
};

static const struct token t_drain[] = {
	ENDOK,
	{.type = T_OPTION, .word = "--timeout", .hint = "seconds", .key = "timeout_s",
	 .kind = VK_SECONDS, .next = t_drain},
	{.type = T_FLAG, .word = "--no-exit", .key = "no_exit", .next = t_drain},
	TABLE_END,
};

static const struct token t_health[] = {
	KEYWORD_ARG("fail", "state", t_end),
	KEYWORD_ARG("ok", "state", t_end),
	TABLE_END,
};

static const struct token t_fault[] = {
	ADMIN_VERB("list", "fault list", t_end),
	ADMIN_VERB("set", "fault set", t_fault_name),
	ADMIN_VERB("clear", "fault clear", t_fault_clear),
	TABLE_END,
};

static const struct token t_fault_name[] = {
	{.type = T_FAULT, .key = "name", .next = t_fault_opts},
	TABLE_END,
};

static const struct token t_fault_opts[] = {
	ENDOK,
	{.type = T_OPTION, .word = "--probability", .hint = "a probability in (0, 1]",
	 .key = "probability", .kind = VK_PROBABILITY, .next = t_fault_opts},
	{.type = T_VALUE, .hint = "VALUE", .key = "value", .next = t_fault_opts_valued},
	TABLE_END,
};

/* After the value: only the option may follow, so a second value is an error. */
static const struct token t_fault_opts_valued[] = {
	ENDOK,
	{.type = T_OPTION, .word = "--probability", .hint = "a probability in (0, 1]",
	 .key = "probability", .kind = VK_PROBABILITY, .next = t_fault_opts_valued},
	TABLE_END,
};

static const struct token t_fault_clear[] = {
	ENDOK,
	{.type = T_FAULT, .key = "name", .next = t_end},
	TABLE_END,
};

static const struct token t_log[] = {
	ADMIN_VERB("level", "log level", t_level),
	TABLE_END,
};

static const struct token t_level[] = {
	KEYWORD_ARG("debug", "level", t_end),
	KEYWORD_ARG("info", "level", t_end),
	KEYWORD_ARG("warn", "level", t_end),
	KEYWORD_ARG("error", "level", t_end),
	TABLE_END,
};

static const struct token t_verify[] = {
	ENDOK,
	{.type = T_FLAG, .word = "--strict", .key = "strict", .next = t_verify},
	TABLE_END,
};

/* validate_main parses its own options; completion offers file names. */
static const struct token t_validate[] = {{.type = T_REST}, TABLE_END};

static const struct token t_completion[] = {
	KEYWORD_ARG("bash", "shell", t_end),
	KEYWORD_ARG("zsh", "shell", t_end),
	KEYWORD_ARG("fish", "shell", t_end),
	TABLE_END,
};

static const struct token t_help[] = {{.type = T_REST, .next = t_main}, TABLE_END};

/* --- choices: the words a table offers ------------------------------------------------- */

struct choice {
	const struct token *tok;
	const char *word;
	const struct admin_fault *fault;   /* T_FAULT */
};

#define MAX_CHOICES 48

static size_t table_choices(const struct token *t, bool shell, struct choice *out)
{
	size_t n = 0;

	for (; t->type != T_NONE; t++) {
		if (t->shell_only && !shell)
			continue;
		if (t->type == T_KEYWORD || t->type == T_FLAG || t->type == T_OPTION) {
			if (n < MAX_CHOICES)
				out[n++] = (struct choice){.tok = t, .word = t->word};
		} else if (t->type == T_FAULT) {
			for (const struct admin_fault *f = admin_faults; f->name; f++)
				if (n < MAX_CHOICES)
					out[n++] = (struct choice){.tok = t, .word = f->name,
								   .fault = f};
		}
	}
	return n;
}

static const struct token *table_find(const struct token *t, enum tok_type type)
{
	for (; t->type != T_NONE; t++)
		if (t->type == type)
			return t;
	return NULL;
}

/* "a, b, c" of the table's words, plus what a value there is. */
static void list_choices(const struct token *t, bool shell, char *buf, size_t len)
{
	struct choice c[MAX_CHOICES];
	size_t n = table_choices(t, shell, c), off = 0;
	const struct token *value = table_find(t, T_VALUE);

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", c[i].word);
	if (value && off < len)
		snprintf(buf + off, len - off, "%s%s", n ? ", " : "", value->hint);
}

enum match_rc { M_FOUND, M_VALUE, M_REST, M_AMBIGUOUS, M_UNKNOWN };

/* What word w selects in table t: an exact word, else the only word it is a prefix of. */
static enum match_rc table_match(const struct token *t, const char *w, bool shell,
				 const char *after, struct choice *hit, char *err, size_t errlen)
{
	struct choice c[MAX_CHOICES];
	size_t n = table_choices(t, shell, c), nhit = 0;
	char names[512] = "";
	size_t off = 0;

	for (size_t i = 0; i < n && w[0]; i++) {
		if (strcmp(c[i].word, w) == 0) {
			*hit = c[i];
			return M_FOUND;
		}
	}
	for (size_t i = 0; i < n && w[0]; i++) {
		if (strncmp(c[i].word, w, strlen(w)) != 0)
			continue;
		if (nhit++ == 0)
			*hit = c[i];
		if (off < sizeof names)
			off += (size_t)snprintf(names + off, sizeof names - off, "%s%s",
						off ? ", " : "", c[i].word);
	}
	if (nhit == 1)
		return M_FOUND;
	if (nhit > 1) {
		snprintf(err, errlen, "ambiguous argument: %s (%s)", w, names);
		return M_AMBIGUOUS;
	}
	const struct token *value = table_find(t, T_VALUE);
	if (value && w[0] && strncmp(w, "--", 2) != 0) {
		*hit = (struct choice){.tok = value, .word = w};
		return M_VALUE;
	}
	const struct token *rest = table_find(t, T_REST);
	if (rest) {
		*hit = (struct choice){.tok = rest, .word = w};
		return M_REST;
	}
	char valid[1024];
	list_choices(t, shell, valid, sizeof valid);
	if (valid[0])
		snprintf(err, errlen, "unknown argument: %s; valid: %s", w, valid);
	else
		snprintf(err, errlen, "unknown argument: %s; %s takes no more arguments", w,
			 after);
	return M_UNKNOWN;
}

/* --- parsing --------------------------------------------------------------------------- */

/* The words matched so far, canonical ("fault set"), for messages. */
struct path {
	char text[256];
};

static void path_add(struct path *p, const char *word)
{
	size_t off = strlen(p->text);
	snprintf(p->text + off, sizeof p->text - off, "%s%s", off ? " " : "", word);
}

static int check_value(const struct token *t, const char *v, cJSON *args, char *err,
		       size_t errlen)
{
	char *end = NULL;
	double d;

	errno = 0;
	d = strtod(v, &end);
	bool number = v[0] && end && !*end && errno == 0 && isfinite(d);
	switch (t->kind) {
	case VK_SECONDS:
		if (!number || d < 0 || d > 86400 * 365) {
			snprintf(err, errlen, "bad argument: %s %s: %s must be a number >= 0",
				 t->word, v, t->hint);
			return -1;
		}
		break;
	case VK_PROBABILITY:
		if (!number || !(d > 0 && d <= 1)) {
			snprintf(err, errlen, "bad argument: %s %s: must be a number in (0, 1]",
				 t->word, v);
			return -1;
		}
		break;
	case VK_NONE:
		cJSON_AddStringToObject(args, t->key, v);
		return 0;
	}
	cJSON_AddNumberToObject(args, t->key, d);
	return 0;
}

/* A fault value, by the rule pard applies too, so a typo is caught before it is sent. */
static int check_fault_value(const struct admin_fault *f, const char *v, char *err,
			     size_t errlen)
{
	unsigned ignored;
	char why[200];
	if (admin_fault_value_parse(f, v, &ignored, why, sizeof why) == 0)
		return 0;
	snprintf(err, errlen, "bad argument: %s", why);
	return -1;
}

/* The rules of admin_faults that the grammar alone cannot say: which faults take a value,
 * which one must have it, which take a probability. */
static int check_fault_set(const struct parse_result *res, char *err, size_t errlen)
{
	const struct admin_fault *f = res->fault;
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(res->args, "value");
	bool probability = cJSON_HasObjectItem(res->args, "probability");

	if (!f)
		return 0;
	if (value && !f->value_kind) {
		snprintf(err, errlen, "bad argument: %s: fault %s takes no value",
			 value->valuestring, f->name);
		return -1;
	}
	if (!value && f->value_kind && !f->value_default) {
		snprintf(err, errlen, "missing argument: fault set %s needs a value (%s)",
			 f->name, f->value_kind);
		return -1;
	}
	if (probability && !f->probability) {
		snprintf(err, errlen, "bad argument: --probability: fault %s takes no probability",
			 f->name);
		return -1;
	}
	return value ? check_fault_value(f, value->valuestring, err, errlen) : 0;
}

static void missing(const struct token *t, const struct path *p, bool shell, char *err,
		    size_t errlen)
{
	char valid[1024];
	struct choice c[MAX_CHOICES];

	list_choices(t, shell, valid, sizeof valid);
	if (table_choices(t, shell, c) == 0)
		snprintf(err, errlen, "missing argument: %s needs %s", p->text, valid);
	else
		snprintf(err, errlen, "missing argument: %s needs one of %s", p->text, valid);
}

/* Applies what choosing token t means to the result. */
static void take(struct parse_result *res, const struct choice *c, const char *word)
{
	const struct token *t = c->tok;

	if (t->action != PA_NONE)
		res->action = t->action;
	if (t->cmd)
		res->cmd = t->cmd;
	if (c->fault)
		res->fault = c->fault;
	if (!t->key)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(res->args, t->key);
	if (t->type == T_FLAG && !t->value)
		cJSON_AddTrueToObject(res->args, t->key);
	else
		cJSON_AddStringToObject(res->args, t->key, t->value ? t->value : word);
}

int parse_command(int argc, char **argv, bool shell, struct parse_result *res, char *err,
		  size_t errlen)
{
	const struct token *table = t_main;
	struct path path = {""};
	struct choice c;

	memset(res, 0, sizeof *res);
	res->args = cJSON_CreateObject();
	if (!res->args) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (argc == 0) {
		missing(table, &(struct path){"parctl"}, shell, err, errlen);
		goto fail;
	}
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		switch (table_match(table, w, shell, path.text, &c, err, errlen)) {
		case M_AMBIGUOUS:
		case M_UNKNOWN:
			goto fail;
		case M_REST:
			res->rest_argc = argc - i + 1;
			res->rest_argv = argv + i - 1;
			return 0;
		case M_VALUE:
			take(res, &c, w);
			table = c.tok->next;
			continue;
		case M_FOUND:
			break;
		}
		path_add(&path, c.fault ? c.fault->name : c.word);
		if (c.tok->type == T_OPTION) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "missing argument: %s needs %s", c.word,
					 c.tok->hint);
				goto fail;
			}
			cJSON_DeleteItemFromObjectCaseSensitive(res->args, c.tok->key);
			if (check_value(c.tok, argv[++i], res->args, err, errlen) != 0)
				goto fail;
		} else {
			take(res, &c, c.fault ? c.fault->name : c.word);
		}
		table = c.tok->next;
	}
	if (table_find(table, T_REST)) {
		/* The verb was the last word: validate and help see just themselves. */
		res->rest_argc = 1;
		res->rest_argv = argv + argc - 1;
		return 0;
	}
	if (!table_find(table, T_ENDOK)) {
		missing(table, &path, shell, err, errlen);
		goto fail;
	}
	if (res->cmd && strcmp(res->cmd, "fault set") == 0 && check_fault_set(res, err, errlen))
		goto fail;
	if (res->action == PA_ADMIN && !admin_verb_find(res->cmd)) {
		snprintf(err, errlen, "parctl knows \"%s\" but libparcommon's admin_verbs does not: "
			 "a build mismatch", res->cmd ? res->cmd : path.text);
		goto fail;
	}
	return 0;
fail:
	parse_result_free(res);
	return -1;
}

void parse_result_free(struct parse_result *res)
{
	cJSON_Delete(res->args);
	memset(res, 0, sizeof *res);
}

/* --- completion ------------------------------------------------------------------------ */

int parse_complete(int argc, char **argv, const char *cur, bool shell,
		   void (*emit)(const char *word, void *ctx), void *ctx)
{
	const struct token *table = t_main;
	struct choice c[MAX_CHOICES], hit;
	char err[2048];

	for (int i = 0; i < argc; i++) {
		switch (table_match(table, argv[i], shell, "", &hit, err, sizeof err)) {
		case M_AMBIGUOUS:
		case M_UNKNOWN:
			return 0;
		case M_REST:
			return hit.tok->next ? 0 : 1;
		case M_VALUE:
		case M_FOUND:
			break;
		}
		if (hit.tok->type == T_OPTION && ++i >= argc)
			return 0;   /* cur is the option's value: nothing to offer */
		table = hit.tok->next;
	}
	const struct token *rest = table_find(table, T_REST);
	if (rest && !rest->next)
		return 1;
	if (rest)
		table = rest->next;
	size_t n = table_choices(table, shell, c);
	for (size_t i = 0; i < n; i++)
		if (strncmp(c[i].word, cur, strlen(cur)) == 0)
			emit(c[i].word, ctx);
	return 0;
}

int parse_split(char *line, char **words, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (w[0] == '#')
			break;   /* a comment runs to the end of the line */
		if (n == max)
			return -1;
		words[n++] = w;
	}
	return n;
}
