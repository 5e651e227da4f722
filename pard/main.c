/* pard: the agent runtime's entry point — command line, signal mask, logging, configuration,
 * then the daemon loop (or --check / --probe / --version / --help). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "a2a.h"
#include "admin.h"
#include "boot.h"
#include "daemon.h"
#include "lifecycle.h"
#include "par/config.h"
#include "par/exitcodes.h"
#include "par/log.h"
#include "par/manifest.h"
#include "par/metrics.h"
#include "par/timeutil.h"
#include "package.h"
#include "probe.h"
#include "rest.h"
#include "rtfaults.h"
#include "ui.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pard [--check]\n"
		"       pard --probe [URL]\n"
		"       pard --version | --help\n"
		"\n"
		"Boots one agent package and serves it (configuration: environment, see pard(8)).\n"
		"  --check        validate the configuration and the package, then exit\n"
		"  --probe [URL]  exit 0 iff URL (default http://127.0.0.1:$REST_PORT/health)\n"
		"                 answers 200: a container health check without curl\n"
		"  --help-config  print the configuration variables as a Markdown table\n"
		"  --version      print the version\n"
		"\nexit codes:\n");
	for (const struct par_exit_row *r = par_exit_table; r->name; r++)
		fprintf(f, "  %3d  %-9s %s\n", r->code, r->name, r->meaning);
	fprintf(f, "  %3d  %-9s %s\n", 128 + SIGTERM, "forced",
		"a second SIGTERM (or 130: SIGINT) cut the drain short");
}

/* The README's configuration table comes from here, so docs and rules cannot drift. */
static void print_config_table(void)
{
	printf("| variable | default | rule |\n|---|---|---|\n");
	for (const struct cfg_var_doc *d = cfg_var_docs; d->name; d++)
		printf("| `%s` | %s | %s%s |\n", d->name, d->def, d->rule,
		       d->secret ? " (secret: never logged)" : "");
}

static void log_issues(const struct cfg_issues *issues, enum par_log_level level,
		       const char *event)
{
	for (size_t i = 0; i < issues->n; i++) {
		const struct cfg_issue *c = &issues->v[i];
		log_emit(level, event,
			 LOG_FIELDS(LF_STR("variable", c->variable), LF_STR("value", c->value),
				    LF_STR("rule", c->rule)),
			 "%s: %s", c->variable, c->rule);
	}
}

/* --check: the package too, fetched (into the cache) and validated like a boot would. */
static int check_package(const struct par_config *cfg)
{
	struct package_result pr;
	if (package_prepare(cfg, NULL, &pr) != 0) {
		log_emit(PAR_LOG_ERROR, "check.package.failed",
			 LOG_FIELDS(LF_STR("phase", lc_phase_name(pr.phase)),
				    LF_STR("reason", pr.reason)),
			 "package: %s", pr.reason);
		return pr.exit_code;
	}
	struct par_manifest m;
	struct manifest_problems p = {0};
	int rc = PAR_EXIT_OK;
	if (manifest_load_dir(pr.root, &m, &p) == 0) {
		log_emit(PAR_LOG_INFO, "check.package.ok",
			 LOG_FIELDS(LF_STR("name", m.name), LF_STR("version", m.version),
				    LF_STR("source", pr.source),
				    LF_STR("sha256", pr.sha256[0] ? pr.sha256 : NULL)),
			 "package %s %s is valid", m.name, m.version);
		manifest_free(&m);
	} else {
		for (size_t i = 0; i < p.n; i++)
			log_emit(PAR_LOG_ERROR, "package.manifest.invalid",
				 LOG_FIELDS(LF_STR("file", "agent.yaml"),
					    LF_STR("key", p.v[i].where), LF_STR("rule", p.v[i].rule)),
				 "agent.yaml: %s: %s", p.v[i].where, p.v[i].rule);
		rc = PAR_EXIT_LOAD;
	}
	manifest_problems_free(&p);
	package_result_free(&pr);
	return rc;
}

int main(int argc, char **argv)
{
	int64_t start = time_mono_ms();
	/* Before any thread exists (libmicrohttpd's, the boot thread): every thread inherits
	 * the mask, so the stop signals reach only the main loop's sigtimedwait. */
	sigset_t set;
	daemon_signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_init();

	enum { OPT_CHECK = 1, OPT_PROBE, OPT_VERSION, OPT_HELP, OPT_HELP_CONFIG };
	static const struct option opts[] = {
		{"check", no_argument, NULL, OPT_CHECK},
		{"probe", no_argument, NULL, OPT_PROBE},
		{"version", no_argument, NULL, OPT_VERSION},
		{"help", no_argument, NULL, OPT_HELP},
		{"help-config", no_argument, NULL, OPT_HELP_CONFIG},
		{NULL, 0, NULL, 0}};
	bool check = false, probe = false;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case OPT_CHECK: check = true; break;
		case OPT_PROBE: probe = true; break;
		case OPT_VERSION: printf("pard %s\n", PAR_VERSION); return PAR_EXIT_OK;
		case OPT_HELP: usage(stdout); return PAR_EXIT_OK;
		case OPT_HELP_CONFIG: print_config_table(); return PAR_EXIT_OK;
		default: usage(stderr); return PAR_EXIT_USAGE;
		}
	}
	if (probe) {
		if (argc - optind > 1) {
			usage(stderr);
			return PAR_EXIT_USAGE;
		}
		return probe_run(optind < argc ? argv[optind] : NULL);
	}
	if (optind != argc) {
		usage(stderr);
		return PAR_EXIT_USAGE;
	}

	struct metrics *metrics = metrics_new();
	if (!metrics)
		return PAR_EXIT_INTERNAL;
	lc_init(metrics, start);
	/* Before any surface: the fault gauges exist (all 0) from the first scrape. */
	rtfaults_init(metrics);
	lc_phase_begin(PH_CONFIG);

	struct par_config cfg;
	struct cfg_issues errors = {0}, warnings = {0};
	size_t nerr = cfg_load(&cfg, NULL, &errors, &warnings);
	log_set_level(cfg.log_level);
	log_set_format(cfg.log_format);
	log_set_identity(cfg.agent_app_id, cfg.deployment_id);
	log_emit(PAR_LOG_INFO, "process.start",
		 LOG_FIELDS(LF_STR("version", PAR_VERSION), LF_INT("pid", getpid()),
			    LF_BOOL("check", check)),
		 "pard %s starting", PAR_VERSION);
	log_issues(&warnings, PAR_LOG_WARN, "config.warning");
	log_issues(&errors, PAR_LOG_ERROR, "config.invalid");

	int rc;
	if (nerr) {
		char reason[96];
		snprintf(reason, sizeof reason, "%zu configuration error%s", nerr,
			 nerr == 1 ? "" : "s");
		lc_phase_end(PH_CONFIG, PHS_FAILED, reason);
		if (check) {
			rc = PAR_EXIT_CONFIG;
		} else {
			daemon_load_failures(&cfg);
			rc = daemon_fail_exit(&cfg, PAR_EXIT_CONFIG, "config", reason);
		}
		goto out;
	}
	lc_phase_end(PH_CONFIG, PHS_DONE, NULL);
	/* Before any other thread exists (its bind sets the umask for a moment); it answers
	 * from here through boot, backoff and drain to the very end. */
	if (!check)
		admin_start(&cfg, metrics, start);
	if (package_init(&cfg, metrics) != 0) {
		rc = PAR_EXIT_INTERNAL;
		goto out;
	}
	if (check) {
		rc = check_package(&cfg);
		log_emit(rc ? PAR_LOG_ERROR : PAR_LOG_INFO, rc ? "check.failed" : "check.ok",
			 LOG_FIELDS(LF_INT("exitCode", rc)), "check %s",
			 rc ? "failed" : "passed");
		goto out;
	}
	int64_t budget = (int64_t)cfg.boot_budget_ms;
	lc_set_limits((struct lc_boot_limits){
		.budget_ms = budget,
		.hard_limit_ms = (int64_t)((double)budget * cfg.boot_hard_limit_multiplier)});
	daemon_load_failures(&cfg);
	rc = daemon_run(&cfg, metrics, start);
	a2a_stop(time_mono_ms());   /* a boot that failed after the surfaces phase */
	rest_stop();
out:
	/* A boot thread stuck past the hard limit may still use what is freed below: leave
	 * without freeing (the kernel reclaims it) rather than race it. */
	if (!boot_cancel_and_join(2000)) {
		admin_stop();
		_exit(rc);
	}
	admin_stop();
	package_shutdown();
	ui_close();
	cfg_issues_free(&errors);
	cfg_issues_free(&warnings);
	lc_destroy();
	cfg_free(&cfg);
	metrics_free(metrics);
	return rc;
}
