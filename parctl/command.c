/* One command, from words to output: parse with the token table, then either a local verb
 * (help, completion, validate) or one request to pard, its answer through the output table. */
#include "command.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "parser.h"
#include "validate.h"

static volatile sig_atomic_t monitor_interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	monitor_interrupted = 1;
}

/* Streams events until Ctrl-C or until pard closes. SIGINT stays blocked except while
 * waiting in ppoll, so it can never land between a check and the wait. */
static int ctl_monitor(struct ctl *ctl, struct parse_result *res, struct ctl_error *err)
{
	struct client *c = &ctl->client;
	struct admin_response resp;
	sigset_t block, old, wait_mask;
	struct sigaction sa = {.sa_handler = on_sigint}, prev;
	int rc, r;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGINT, &sa, &prev);
	wait_mask = old;
	sigdelset(&wait_mask, SIGINT);
	monitor_interrupted = 0;

	rc = client_call(c, res->cmd, res->args, &resp, err);
	res->args = NULL;
	if (rc != CTL_OK)
		goto out;
	admin_response_free(&resp);
	while ((r = client_next_event(c, &wait_mask, &resp, err)) == 1) {
		ctl->out->event(resp.event);
		admin_response_free(&resp);
	}
	if (r < 0)
		rc = err->exit;
	else if (monitor_interrupted && isatty(STDOUT_FILENO))
		putchar('\n');   /* the terminal echoed ^C; the next prompt starts a new line */
	else if (!monitor_interrupted && !ctl->json)
		fprintf(stderr, "parctl: monitor: pard closed the stream\n");
	/* The stream owns the connection; the next command opens a fresh one. */
	client_close(c);
out:
	sigaction(SIGINT, &prev, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* A result that says "ok": false (verify-isolation with a FAIL) ran and reported failure. */
static int result_verdict(const char *cmd, const cJSON *result, struct ctl_error *err)
{
	const cJSON *fails = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(result, "summary"), "fail");

	if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(result, "ok")))
		return CTL_OK;
	if (cJSON_IsNumber(fails))
		ctl_fail(err, CTL_FAILED, ADMIN_E_FAILED, "%s: %d check%s failed", cmd,
			 fails->valueint, fails->valueint == 1 ? "" : "s");
	else
		ctl_fail(err, CTL_FAILED, ADMIN_E_FAILED, "%s reported failure", cmd);
	return CTL_FAILED;
}

static int ctl_admin(struct ctl *ctl, struct parse_result *res, struct ctl_error *err)
{
	struct admin_response resp;
	int rc;

	if (strcmp(res->cmd, "monitor") == 0)
		return ctl_monitor(ctl, res, err);
	/* People read OpenMetrics; scripts get pard's JSON unless they ask for the text. */
	if (strcmp(res->cmd, "show metrics") == 0 && !ctl->json &&
	    !cJSON_HasObjectItem(res->args, "format"))
		cJSON_AddStringToObject(res->args, "format", "openmetrics");
	rc = client_call(&ctl->client, res->cmd, res->args, &resp, err);
	res->args = NULL;
	if (rc != CTL_OK)
		return rc;
	output_result(ctl->out, res->cmd, resp.result);
	fflush(stdout);
	rc = result_verdict(res->cmd, resp.result, err);
	admin_response_free(&resp);
	return rc;
}

static int ctl_help(struct ctl *ctl, const char *topic, struct ctl_error *err)
{
	bool known = !topic;

	for (const struct admin_verb *v = admin_verbs; v->cmd && !known; v++)
		known = strncmp(v->cmd, topic, strlen(topic)) == 0;
	for (const struct local_verb *v = local_verbs; v->name && !known; v++)
		known = strncmp(v->name, topic, strlen(topic)) == 0;
	if (!known) {
		ctl_fail(err, CTL_USAGE, "usage", "unknown argument: %s; help takes a command "
			 "(help lists them)", topic);
		return CTL_USAGE;
	}
	ctl->out->help(topic);
	return CTL_OK;
}

int ctl_run(struct ctl *ctl, int argc, char **argv, struct ctl_error *err)
{
	struct parse_result res;
	char msg[sizeof err->msg];
	int rc = CTL_OK;

	if (parse_command(argc, argv, ctl->shell, &res, msg, sizeof msg) != 0) {
		ctl_fail(err, CTL_USAGE, "usage", "%s", msg);
		return CTL_USAGE;
	}
	switch (res.action) {
	case PA_ADMIN:
		rc = ctl_admin(ctl, &res, err);
		break;
	case PA_HELP:
		rc = ctl_help(ctl, res.rest_argc > 1 ? res.rest_argv[1] : NULL, err);
		break;
	case PA_COMPLETION: {
		const cJSON *shell = cJSON_GetObjectItemCaseSensitive(res.args, "shell");
		fputs(completion_script(shell->valuestring), stdout);
		break;
	}
	case PA_VALIDATE:
		/* validate prints its own report and usage; only a piped line needs a word. */
		rc = validate_main(res.rest_argc, res.rest_argv, ctl->json);
		if (rc != CTL_OK)
			ctl_fail(err, rc, rc == CTL_USAGE ? "usage" : ADMIN_E_FAILED, "%s", "");
		break;
	case PA_QUIT:
		rc = CTL_QUIT;
		break;
	case PA_NONE:
		break;
	}
	parse_result_free(&res);
	fflush(stdout);
	return rc;
}

void ctl_report(const struct ctl *ctl, struct ctl_error *err, long line)
{
	if (!err->msg[0] && line <= 0)
		return;
	if (!err->msg[0])
		snprintf(err->msg, sizeof err->msg, "the command failed (exit %d)", err->exit);
	ctl->out->error(err, line);
}
