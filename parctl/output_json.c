/* JSON output for scripts (-j): each result is pard's result object on one line, each
 * monitor event one line, each error one object on stderr, so `parctl -j … | jq` works. */
#include "output.h"

#include <stdio.h>
#include <string.h>

#include "par/admin.h"

static void json_line(FILE *f, const cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	fprintf(f, "%s\n", s ? s : "null");
	cJSON_free(s);
	fflush(f);
}

static void json_result(const cJSON *r)
{
	json_line(stdout, r);
}

static void json_done(const char *cmd, const cJSON *r)
{
	(void)cmd;
	json_line(stdout, r);
}

static void json_version(const cJSON *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "parctl", PAR_VERSION);
	cJSON_AddNumberToObject(o, "protocol", ADMIN_PROTO_VERSION);
	cJSON_AddItemToObject(o, "pard", r ? cJSON_Duplicate(r, 1) : cJSON_CreateNull());
	json_line(stdout, o);
	cJSON_Delete(o);
}

static void json_help(const char *topic)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *verbs = cJSON_AddArrayToObject(o, "verbs");
	cJSON *faults = cJSON_AddArrayToObject(o, "faults");

	for (const struct admin_verb *v = admin_verbs; v->cmd; v++) {
		if (topic && strncmp(v->cmd, topic, strlen(topic)) != 0)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "cmd", v->cmd);
		cJSON_AddStringToObject(e, "usage", v->usage);
		cJSON_AddStringToObject(e, "help", v->help);
		cJSON_AddStringToObject(e, "access", v->access == ADMIN_READ ? "read" : "change");
		cJSON_AddItemToArray(verbs, e);
	}
	for (const struct local_verb *v = local_verbs; v->name; v++) {
		if (topic && strncmp(v->name, topic, strlen(topic)) != 0)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "cmd", v->name);
		cJSON_AddStringToObject(e, "usage", v->usage);
		cJSON_AddStringToObject(e, "help", v->help);
		cJSON_AddStringToObject(e, "access", "local");
		cJSON_AddItemToArray(verbs, e);
	}
	for (const struct admin_fault *f = admin_faults; f->name; f++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", f->name);
		if (f->value_kind)
			cJSON_AddStringToObject(e, "value", f->value_kind);
		else
			cJSON_AddNullToObject(e, "value");
		cJSON_AddBoolToObject(e, "probability", f->probability);
		cJSON_AddBoolToObject(e, "oneShot", f->one_shot);
		cJSON_AddStringToObject(e, "help", f->help);
		cJSON_AddItemToArray(faults, e);
	}
	json_line(stdout, o);
	cJSON_Delete(o);
}

static void json_error(const struct ctl_error *e, long line)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(o, "error");

	cJSON_AddStringToObject(err, "code", e->code);
	cJSON_AddStringToObject(err, "message", e->msg);
	cJSON_AddNumberToObject(o, "exit", e->exit);
	if (line > 0)
		cJSON_AddNumberToObject(o, "line", (double)line);
	json_line(stderr, o);
	cJSON_Delete(o);
}

const struct output output_json = {
	.status = json_result,
	.boot = json_result,
	.config = json_result,
	.package = json_result,
	.metrics = json_result,
	.budgets = json_result,
	.faults = json_result,
	.isolation = json_result,
	.version = json_version,
	.ping = json_result,
	.done = json_done,
	.event = json_result,
	.help = json_help,
	.error = json_error,
};
