/* Unit tests: egress ledger, AWS credentials, URI encoding, and fetching from local servers. */
#include <check.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "par/awscreds.h"
#include "par/fetch.h"
#include "par/hash.h"
#include "par/ledger.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"

#define PY "/usr/bin/python3"
#define SERVER_PY PAR_TEST_DATA "/fetch_server.py"
#define SIGV4_PY PAR_TEST_DATA "/../integration/sigv4_check.py"
#define MIB (1024ULL * 1024)

/* ---- helpers: child processes, temp dirs, bodies ----------------------------------------- */

struct child {
	pid_t pid;
	int in_fd;    /* closing it tells the helper to exit */
	FILE *out;
};

static struct child server = {-1, -1, NULL};
static int http_port, https_port;
static char ca_path[PATH_MAX];
static char tmpdir[64];
static char logpath[PATH_MAX];

static int child_start(struct child *c, const char *const argv[])
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
		return -1;
	c->pid = fork();
	if (c->pid < 0)
		return -1;
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in_fd = in[1];
	c->out = fdopen(out[0], "r");
	return c->out ? 0 : -1;
}

static void child_stop(struct child *c)
{
	int i, st;

	if (c->pid <= 0)
		return;
	close(c->in_fd);
	for (i = 0; i < 100 && waitpid(c->pid, &st, WNOHANG) == 0; i++)
		usleep(20000);
	if (i == 100) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &st, 0);
	}
	if (c->out)
		fclose(c->out);
	c->pid = -1;
	c->out = NULL;
}

/* The helper's first stdout line, parsed. */
static cJSON *child_hello(struct child *c)
{
	char line[1024];

	if (!fgets(line, sizeof(line), c->out))
		return NULL;
	return cJSON_Parse(line);
}

static int run_quiet(const char *const argv[])
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void servers_up(void)
{
	const char *argv[] = {PY, SERVER_PY, NULL};
	cJSON *hello;

	if (child_start(&server, argv) != 0 || !(hello = child_hello(&server))) {
		fprintf(stderr, "cannot start %s\n", SERVER_PY);
		exit(1);
	}
	http_port = cJSON_GetObjectItem(hello, "http")->valueint;
	https_port = cJSON_GetObjectItem(hello, "https")->valueint;
	snprintf(ca_path, sizeof(ca_path), "%s", cJSON_GetObjectItem(hello, "ca")->valuestring);
	cJSON_Delete(hello);
}

static void servers_down(void)
{
	child_stop(&server);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	int fd;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/par-fetch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(logpath, sizeof(logpath), "%s.log", tmpdir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	log_set_fd(fd);
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	unlink(logpath);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The SHA-256 of fetch_server.py's N-byte body. */
static void body_sha(size_t n, char hex[65])
{
	unsigned char *b = malloc(n ? n : 1);
	size_t i;

	ck_assert_ptr_nonnull(b);
	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(i % 251);
	sha256_hex(b, n, hex);
	free(b);
}

static char urlbuf[1024];

static const char *http_url(const char *path)
{
	snprintf(urlbuf, sizeof(urlbuf), "http://127.0.0.1:%d%s", http_port, path);
	return urlbuf;
}

static void opts_init(struct fetch_opts *o, const char *url)
{
	memset(o, 0, sizeof(*o));
	o->url = url;
	o->allow_http = true;
	o->max_bytes = 16 * MIB;
	o->tmp_dir = tmpdir;
	o->deadline_ms = 10000;
}

/* ---- ledger ------------------------------------------------------------------------------ */

static struct egress_entry entry(const char *host, int port, const char *purpose, uint64_t bytes)
{
	struct egress_entry e = {.epoch_ms = 1795795200000, .port = port, .status = 200,
				 .bytes = bytes};
	snprintf(e.host, sizeof(e.host), "%s", host);
	snprintf(e.purpose, sizeof(e.purpose), "%s", purpose);
	snprintf(e.method, sizeof(e.method), "GET");
	snprintf(e.ip, sizeof(e.ip), "127.0.0.1");
	return e;
}

START_TEST(test_ledger_record_snapshot)
{
	struct egress_ledger *l = ledger_new(8);
	struct egress_entry e = entry("a.example", 443, "package", 10), *snap;
	size_t n;

	ledger_record(l, &e);
	e = entry("b.example", 80, "credentials", 20);
	snprintf(e.error, sizeof(e.error), "Couldn't connect to server");
	ledger_record(l, &e);
	ck_assert_uint_eq(ledger_count(l), 2);
	n = ledger_snapshot(l, &snap);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(snap[0].host, "a.example");
	ck_assert_str_eq(snap[1].host, "b.example");
	ck_assert_str_eq(snap[1].error, "Couldn't connect to server");
	ck_assert_int_eq(snap[1].port, 80);
	free(snap);
	ledger_free(l);
}
END_TEST

START_TEST(test_ledger_cap_drops_oldest)
{
	struct egress_ledger *l = ledger_new(2);
	struct egress_entry e, *snap;
	struct strbuf sb = STRBUF_INIT;
	char host[16];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(host, sizeof(host), "h%d", i);
		e = entry(host, 443, "package", 1);
		ledger_record(l, &e);
	}
	ck_assert_uint_eq(ledger_snapshot(l, &snap), 2);
	ck_assert_str_eq(snap[0].host, "h3");
	ck_assert_str_eq(snap[1].host, "h4");
	free(snap);
	ledger_summary_json(l, &sb);
	ck_assert_ptr_nonnull(strstr(sb.buf, "\"connections\":5,\"dropped\":3"));
	sb_free(&sb);
	ledger_free(l);
}
END_TEST

START_TEST(test_ledger_summary_json)
{
	struct egress_ledger *l = ledger_new(0);
	struct egress_entry e;
	struct strbuf sb = STRBUF_INIT;
	cJSON *j, *hosts, *h0;

	e = entry("bucket.s3.us-east-1.amazonaws.com", 443, "package", 100);
	ledger_record(l, &e);
	ledger_record(l, &e);
	e = entry("169.254.170.2", 80, "credentials", 7);
	ledger_record(l, &e);
	ledger_summary_json(l, &sb);
	j = cJSON_Parse(sb.buf);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "connections")->valueint, 3);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "dropped")->valueint, 0);
	hosts = cJSON_GetObjectItem(j, "hosts");
	ck_assert_int_eq(cJSON_GetArraySize(hosts), 2);
	h0 = cJSON_GetArrayItem(hosts, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(h0, "host")->valuestring,
			 "bucket.s3.us-east-1.amazonaws.com");
	ck_assert_int_eq(cJSON_GetObjectItem(h0, "port")->valueint, 443);
	ck_assert_str_eq(cJSON_GetObjectItem(h0, "purpose")->valuestring, "package");
	ck_assert_int_eq(cJSON_GetObjectItem(h0, "count")->valueint, 2);
	ck_assert_int_eq(cJSON_GetObjectItem(h0, "bytes")->valueint, 200);
	cJSON_Delete(j);

	sb_reset(&sb);
	ledger_entries_json(l, &sb);
	j = cJSON_Parse(sb.buf);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(cJSON_GetArraySize(j), 3);
	h0 = cJSON_GetArrayItem(j, 2);
	ck_assert_str_eq(cJSON_GetObjectItem(h0, "purpose")->valuestring, "credentials");
	ck_assert_str_eq(cJSON_GetObjectItem(h0, "method")->valuestring, "GET");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(h0, "error")));
	ck_assert_str_eq(cJSON_GetObjectItem(h0, "time")->valuestring, "2026-11-27T16:00:00.000Z");
	cJSON_Delete(j);
	sb_free(&sb);
	ledger_free(l);
}
END_TEST

START_TEST(test_ledger_empty)
{
	struct egress_ledger *l = ledger_new(4);
	struct strbuf sb = STRBUF_INIT;
	struct egress_entry *snap;

	ck_assert_uint_eq(ledger_snapshot(l, &snap), 0);
	free(snap);
	ledger_summary_json(l, &sb);
	ck_assert_str_eq(sb.buf, "{\"connections\":0,\"dropped\":0,\"hosts\":[]}");
	sb_reset(&sb);
	ledger_entries_json(l, &sb);
	ck_assert_str_eq(sb.buf, "[]");
	sb_free(&sb);
	ledger_free(l);
}
END_TEST

/* ---- aws_uri_encode ---------------------------------------------------------------------- */

START_TEST(test_uri_encode_table)
{
	static const struct {
		const char *in;
		bool keep_slash;
		const char *out;
	} t[] = {
		{"", true, ""},
		{"abcXYZ019-._~", false, "abcXYZ019-._~"},
		{"dir/sub/file.apkg", true, "dir/sub/file.apkg"},
		{"dir/sub", false, "dir%2Fsub"},
		{"a b+c", true, "a%20b%2Bc"},
		{"(1)!*'", true, "%281%29%21%2A%27"},
		{"x=y&z?#%", true, "x%3Dy%26z%3F%23%25"},
		{"\xc3\xa9t\xc3\xa9", true, "%C3%A9t%C3%A9"},
		{"../a", true, "../a"},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *s = aws_uri_encode(t[i].in, t[i].keep_slash);
		ck_assert_msg(s && strcmp(s, t[i].out) == 0, "%s -> %s, want %s", t[i].in, s,
			      t[i].out);
		free(s);
	}
}
END_TEST

/* ---- awscreds ---------------------------------------------------------------------------- */

START_TEST(test_creds_env_static)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDSTATIC", "AWS_SECRET_ACCESS_KEY=SECRETSTATIC",
		       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/creds", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_source(p), AWS_CREDS_ENV);
	ck_assert_str_eq(aws_creds_source_name(aws_creds_source(p)), "environment");
	ck_assert(aws_creds_static_long_lived(p));
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.access_key, "AKIDSTATIC");
	ck_assert_str_eq(c.secret_key, "SECRETSTATIC");
	ck_assert_str_eq(c.session_token, "");
	ck_assert_int_eq(c.expires_epoch_ms, 0);
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_creds_env_session)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=ASIATEMP", "AWS_SECRET_ACCESS_KEY=SECRETTEMP",
		       "AWS_SESSION_TOKEN=TOKENTEMP", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_source(p), AWS_CREDS_ENV);
	ck_assert(!aws_creds_static_long_lived(p));
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.session_token, "TOKENTEMP");
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_creds_env_missing_secret)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDLONELY", "AWS_SECRET_ACCESS_KEY=", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_source(p), AWS_CREDS_NONE);
	ck_assert_str_eq(aws_creds_source_name(AWS_CREDS_NONE), "none");
	ck_assert(!aws_creds_static_long_lived(p));
	ck_assert_int_eq(aws_creds_get(p, &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "AWS_SECRET_ACCESS_KEY"));
	ck_assert_ptr_null(strstr(err, "AKIDLONELY"));
	ck_assert_str_eq(c.access_key, "");
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_creds_full_uri_host_rule)
{
	static const struct {
		const char *uri;
		enum aws_creds_source want;
	} t[] = {
		{"http://169.254.170.2/v1/creds", AWS_CREDS_CONTAINER},
		{"http://169.254.170.23/v1/credentials", AWS_CREDS_CONTAINER},
		{"http://[fd00:ec2::23]/v1/credentials", AWS_CREDS_CONTAINER},
		{"http://127.0.0.1:9999/creds", AWS_CREDS_CONTAINER},
		{"http://127.1.2.3/creds", AWS_CREDS_CONTAINER},
		{"http://localhost:1234/creds", AWS_CREDS_CONTAINER},
		{"http://[::1]:1234/creds", AWS_CREDS_CONTAINER},
		{"https://creds.example.com/x", AWS_CREDS_CONTAINER},
		{"http://creds.example.com/x", AWS_CREDS_NONE},
		{"http://10.0.0.1/x", AWS_CREDS_NONE},
		{"http://169.254.169.254/latest", AWS_CREDS_NONE},
		{"ftp://127.0.0.1/x", AWS_CREDS_NONE},
	};
	char var[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *env[] = {var, NULL};
		struct aws_creds_provider *p;
		snprintf(var, sizeof(var), "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", t[i].uri);
		p = aws_creds_provider_new(env, NULL);
		ck_assert_msg(aws_creds_source(p) == t[i].want, "%s", t[i].uri);
		aws_creds_provider_free(p);
	}
}
END_TEST

START_TEST(test_creds_none)
{
	char *env[] = {"HOME=/root", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_source(p), AWS_CREDS_NONE);
	ck_assert_int_eq(aws_creds_get(p, &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no AWS credentials"));
	aws_creds_provider_free(p);
}
END_TEST

static struct aws_creds_provider *container_provider(const char *query, const char *tokvar,
						     struct egress_ledger *l)
{
	static char uri[256], tok[PATH_MAX + 64];
	char *env[] = {uri, tok, NULL};

	snprintf(uri, sizeof(uri), "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/creds%s",
		 http_port, query);
	snprintf(tok, sizeof(tok), "%s", tokvar);
	return aws_creds_provider_new(env, l);
}

START_TEST(test_creds_container_cached)
{
	struct egress_ledger *l = ledger_new(16);
	struct aws_creds_provider *p =
		container_provider("?exp=3600", "AWS_CONTAINER_AUTHORIZATION_TOKEN=AUTHTOKEN42", l);
	struct egress_entry *snap;
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_source(p), AWS_CREDS_CONTAINER);
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.access_key, "AKIDCONTAINER");
	ck_assert_str_eq(c.secret_key, "SECRETCONTAINER");
	ck_assert_str_eq(c.session_token, "tok:AUTHTOKEN42");
	ck_assert_int_gt(c.expires_epoch_ms, time_epoch_ms() + 3500 * 1000LL);
	ck_assert_int_lt(c.expires_epoch_ms, time_epoch_ms() + 3700 * 1000LL);
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(ledger_snapshot(l, &snap), 1); /* the second came from the cache */
	ck_assert_str_eq(snap[0].purpose, "credentials");
	ck_assert_str_eq(snap[0].host, "127.0.0.1");
	ck_assert_int_eq(snap[0].port, http_port);
	ck_assert_int_eq(snap[0].status, 200);
	free(snap);
	ck_assert_ptr_null(strstr(slurp(logpath), "SECRETCONTAINER"));
	ck_assert_ptr_null(strstr(slurp(logpath), "AUTHTOKEN42"));
	aws_creds_provider_free(p);
	ledger_free(l);
}
END_TEST

START_TEST(test_creds_container_refresh_and_token_file)
{
	struct egress_ledger *l = ledger_new(16);
	char path[PATH_MAX], var[PATH_MAX + 64], err[256];
	struct aws_creds_provider *p;
	struct aws_creds c;
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", tmpdir);
	snprintf(var, sizeof(var), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s", path);
	f = fopen(path, "w");
	fputs("first\n", f);
	fclose(f);
	/* 60 s left is inside the 5-minute margin: every get fetches again. */
	p = container_provider("?exp=60", var, l);
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.session_token, "tok:first");
	f = fopen(path, "w");
	fputs("second", f);
	fclose(f);
	ck_assert_msg(aws_creds_get(p, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c.session_token, "tok:second");
	ck_assert_uint_eq(ledger_count(l), 2);
	aws_creds_provider_free(p);
	ledger_free(l);
}
END_TEST

START_TEST(test_creds_container_bad_answer)
{
	struct aws_creds_provider *p = container_provider("?bad=1", "X=1", NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_get(p, &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
	ck_assert_ptr_null(strstr(err, "?bad")); /* the query string is not shown */
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_creds_container_unreachable)
{
	char *env[] = {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/creds", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct aws_creds c;
	char err[256];

	ck_assert_int_eq(aws_creds_get(p, &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "credentials endpoint http://127.0.0.1:1/creds"));
	aws_creds_provider_free(p);
}
END_TEST

/* ---- fetch over http(s) ------------------------------------------------------------------ */

START_TEST(test_fetch_ok_sha)
{
	struct egress_ledger *l = ledger_new(16);
	struct fetch_opts o;
	struct fetch_result r;
	struct egress_entry *snap;
	struct stat st;
	char sha[65];

	body_sha(300000, sha);
	opts_init(&o, http_url("/ok?n=300000"));
	o.expected_sha256 = sha;
	o.ledger = l;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_int_eq(r.status, FETCH_OK);
	ck_assert_str_eq(r.sha256, sha);
	ck_assert_uint_eq(r.bytes, 300000);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_int_eq(r.http_status, 200);
	ck_assert_ptr_nonnull(r.path);
	ck_assert_int_eq(stat(r.path, &st), 0);
	ck_assert_int_eq(st.st_size, 300000);
	ck_assert_int_eq(strncmp(r.path, tmpdir, strlen(tmpdir)), 0);
	ck_assert_uint_eq(ledger_snapshot(l, &snap), 1);
	ck_assert_str_eq(snap[0].host, "127.0.0.1");
	ck_assert_str_eq(snap[0].ip, "127.0.0.1");
	ck_assert_int_eq(snap[0].port, http_port);
	ck_assert_str_eq(snap[0].purpose, "package");
	ck_assert_str_eq(snap[0].method, "GET");
	ck_assert_int_eq(snap[0].status, 200);
	ck_assert_uint_eq(snap[0].bytes, 300000);
	ck_assert_str_eq(snap[0].error, "");
	free(snap);
	fetch_result_free(&r);
	ck_assert_int_eq(count_files(tmpdir), 0); /* fetch_result_free unlinks an unclaimed file */
	ck_assert_ptr_nonnull(strstr(slurp(logpath), "\"event\":\"fetch.done\""));
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_long_status_line)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/longreason"));
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_uint_eq(r.bytes, 100);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_sha_upper_case)
{
	struct fetch_opts o;
	struct fetch_result r;
	char sha[65];
	int i;

	body_sha(1000, sha);
	for (i = 0; sha[i]; i++)
		sha[i] = (char)toupper((unsigned char)sha[i]);
	opts_init(&o, http_url("/ok?n=1000"));
	o.expected_sha256 = sha;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_sha_mismatch)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/ok?n=1000"));
	o.expected_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_SHA_MISMATCH);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_ptr_null(r.path);
	ck_assert_int_eq(count_files(tmpdir), 0);
	ck_assert_ptr_nonnull(strstr(r.message, "mismatch"));
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_content_length_too_large)
{
	struct fetch_opts o;
	struct fetch_result r;
	int64_t t0 = time_mono_ms();

	opts_init(&o, http_url("/bigcl"));
	o.max_bytes = 1 * MIB;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_TOO_LARGE);
	ck_assert_uint_eq(r.bytes, 0);      /* refused before the body */
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_int_lt(time_mono_ms() - t0, 3000); /* the server waits 5 s before any byte */
	ck_assert_int_eq(count_files(tmpdir), 0);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_stream_too_large)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/nocl?n=8388608"));
	o.max_bytes = 1 * MIB;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_TOO_LARGE);
	ck_assert_uint_gt(r.bytes, 1 * MIB);
	ck_assert_uint_le(r.bytes, 1 * MIB + CURL_MAX_WRITE_SIZE);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_int_eq(count_files(tmpdir), 0);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_stream_at_cap_ok)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/nocl?n=1048576"));
	o.max_bytes = 1 * MIB;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_uint_eq(r.bytes, 1 * MIB);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_retry_503_then_ok)
{
	struct egress_ledger *l = ledger_new(16);
	struct fetch_opts o;
	struct fetch_result r;
	char path[128];

	snprintf(path, sizeof(path), "/flaky?key=503-%d&fail=2&code=503&n=5000", getpid());
	opts_init(&o, http_url(path));
	o.ledger = l;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_int_eq(r.attempts, 3);
	ck_assert_uint_eq(r.bytes, 5000);
	ck_assert_uint_eq(ledger_count(l), 3);
	ck_assert_ptr_nonnull(strstr(slurp(logpath), "\"event\":\"fetch.retry\""));
	fetch_result_free(&r);
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_retry_429)
{
	struct fetch_opts o;
	struct fetch_result r;
	char path[128];

	snprintf(path, sizeof(path), "/flaky?key=429-%d&fail=1&code=429&n=10", getpid());
	opts_init(&o, http_url(path));
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_int_eq(r.attempts, 2);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_404_final)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/status?code=404"));
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_NOT_FOUND);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_int_eq(r.http_status, 404);
	ck_assert_ptr_nonnull(strstr(r.message, "NoSuchKey"));
	ck_assert_ptr_null(strstr(r.message, "code=404")); /* no query string */
	ck_assert_str_eq(fetch_status_name(r.status), "not_found");
	ck_assert_int_eq(count_files(tmpdir), 0);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_403_final)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/status?code=403"));
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_DENIED);
	ck_assert_int_eq(r.attempts, 1);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_three_redirects_ok)
{
	struct egress_ledger *l = ledger_new(16);
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/redir?hops=2&n=777"));  /* 3 redirects: hops 2, 1, 0 */
	o.ledger = l;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_uint_eq(r.bytes, 777);
	ck_assert_uint_eq(ledger_count(l), 4);      /* each hop is a connection */
	fetch_result_free(&r);
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_four_redirects_refused)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/redir?hops=3&n=777"));
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_REDIRECT);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_ptr_nonnull(strstr(r.message, "more than 3 redirects"));
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_http_needs_allow)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/ok"));
	o.allow_http = false;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.attempts, 0);
	ck_assert_ptr_nonnull(strstr(r.message, "PAR_ALLOW_HTTP"));
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_https_with_ca)
{
	struct fetch_opts o;
	struct fetch_result r;
	char url[128];

	snprintf(url, sizeof(url), "HTTPS://127.0.0.1:%d/ok?n=4096", https_port);
	opts_init(&o, url);
	o.allow_http = false;
	o.ca_bundle = ca_path;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_uint_eq(r.bytes, 4096);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_https_untrusted)
{
	struct fetch_opts o;
	struct fetch_result r;
	char url[128];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok", https_port);
	opts_init(&o, url);
	o.ca_bundle = "/etc/ssl/certs/ca-certificates.crt"; /* does not hold the test CA */
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_TLS);
	ck_assert_int_eq(r.attempts, 1);
	fetch_result_free(&r);
}
END_TEST

START_TEST(test_fetch_https_to_http_refused)
{
	struct egress_ledger *l = ledger_new(16);
	struct fetch_opts o;
	struct fetch_result r;
	char url[128];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/tohttp", https_port);
	opts_init(&o, url);
	o.allow_http = true; /* even so */
	o.ca_bundle = ca_path;
	o.ledger = l;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_REDIRECT);
	ck_assert_ptr_nonnull(strstr(r.message, "downgraded"));
	ck_assert_uint_eq(ledger_count(l), 1); /* the http:// target was never contacted */
	fetch_result_free(&r);
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_fault_error_gives_up)
{
	struct par_faults f = {.fetch_error = true};
	struct egress_ledger *l = ledger_new(16);
	struct fetch_opts o;
	struct fetch_result r;
	int64_t t0 = time_mono_ms();

	opts_init(&o, http_url("/ok"));
	o.faults = &f;
	o.deadline_ms = 1000;
	o.ledger = l;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_GAVE_UP);
	ck_assert_int_ge(r.attempts, 2);
	ck_assert_int_lt(time_mono_ms() - t0, 2000);
	ck_assert_uint_eq(ledger_count(l), 0);
	ck_assert_ptr_nonnull(strstr(r.message, "fetch.error"));
	fetch_result_free(&r);
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_connect_refused_gives_up)
{
	struct egress_ledger *l = ledger_new(16);
	struct egress_entry *snap;
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, "http://127.0.0.1:1/pkg.apkg");
	o.deadline_ms = 1000;
	o.ledger = l;
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_GAVE_UP);
	ck_assert_int_ge(r.attempts, 2);
	ck_assert_uint_eq(ledger_snapshot(l, &snap), (size_t)r.attempts);
	ck_assert_int_eq(snap[0].port, 1);
	ck_assert_str_ne(snap[0].error, "");
	free(snap);
	fetch_result_free(&r);
	ledger_free(l);
}
END_TEST

START_TEST(test_fetch_fault_delay)
{
	struct par_faults f = {.fetch_delay_ms = 300};
	struct fetch_opts o;
	struct fetch_result r;
	int64_t t0 = time_mono_ms();

	opts_init(&o, http_url("/ok?n=10"));
	o.faults = &f;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	ck_assert_int_ge(time_mono_ms() - t0, 300);
	fetch_result_free(&r);
}
END_TEST

struct canceller {
	atomic_bool *flag;
	int after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;

	usleep((useconds_t)c->after_ms * 1000);
	atomic_store(c->flag, true);
	return NULL;
}

static void fetch_cancel_case(const char *path, const struct par_faults *f)
{
	atomic_bool flag = false;
	struct canceller cc = {&flag, 300};
	struct fetch_opts o;
	struct fetch_result r;
	int64_t t0 = time_mono_ms();
	pthread_t t;

	opts_init(&o, http_url(path));
	o.cancel = &flag;
	o.faults = f;
	ck_assert_int_eq(pthread_create(&t, NULL, cancel_later, &cc), 0);
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	pthread_join(t, NULL);
	ck_assert_int_eq(r.status, FETCH_ERR_CANCELLED);
	ck_assert_int_lt(time_mono_ms() - t0, 2500);
	ck_assert_int_eq(count_files(tmpdir), 0);
	fetch_result_free(&r);
}

START_TEST(test_fetch_cancel_mid_transfer)
{
	fetch_cancel_case("/slow", NULL);
}
END_TEST

START_TEST(test_fetch_cancel_during_delay)
{
	struct par_faults f = {.fetch_delay_ms = 10000};

	fetch_cancel_case("/ok", &f);
}
END_TEST

START_TEST(test_fetch_logs_without_query)
{
	struct fetch_opts o;
	struct fetch_result r;
	const char *log;

	opts_init(&o, http_url("/ok?n=10&X-Amz-Signature=SIGSECRET99&X-Amz-Security-Token=TOK77"));
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	fetch_result_free(&r);
	opts_init(&o, http_url("/status?code=404&X-Amz-Signature=SIGSECRET99"));
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_ptr_null(strstr(r.message, "SIGSECRET99"));
	fetch_result_free(&r);
	log = slurp(logpath);
	ck_assert_ptr_nonnull(strstr(log, "\"event\":\"fetch.attempt\""));
	ck_assert_ptr_nonnull(strstr(log, "\"event\":\"fetch.failed\""));
	ck_assert_ptr_nonnull(strstr(log, "\"url\":\"http://127.0.0.1:"));
	ck_assert_ptr_null(strstr(log, "SIGSECRET99"));
	ck_assert_ptr_null(strstr(log, "TOK77"));
}
END_TEST

START_TEST(test_fetch_no_tmp_dir)
{
	struct fetch_opts o;
	struct fetch_result r;

	opts_init(&o, http_url("/ok"));
	o.tmp_dir = "/nonexistent/par-fetch";
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_IO);
	fetch_result_free(&r);
}
END_TEST

/* ---- s3:// against the SigV4 capturing server --------------------------------------------- */

struct sigv4 {
	struct child c;
	int port;
	char log[PATH_MAX];
};

static void sigv4_start(struct sigv4 *s, const char *body)
{
	const char *argv[] = {PY, SIGV4_PY, "serve", "--body", body, "--log", s->log, NULL};
	cJSON *hello;

	snprintf(s->log, sizeof(s->log), "%s/sigv4.jsonl", tmpdir);
	ck_assert_int_eq(child_start(&s->c, argv), 0);
	hello = child_hello(&s->c);
	ck_assert_ptr_nonnull(hello);
	s->port = cJSON_GetObjectItem(hello, "port")->valueint;
	cJSON_Delete(hello);
}

static int sigv4_verify(struct sigv4 *s, const char *ak, const char *sk, const char *region)
{
	const char *argv[] = {PY,	    SIGV4_PY, "verify", "--log",    s->log, "--access-key",
			      ak,	    "--secret", sk,	  "--region", region, NULL};

	return run_quiet(argv);
}

static void s3_opts(struct fetch_opts *o, const char *url, const char *endpoint,
		    struct aws_creds_provider *p, const char *body, char sha[65])
{
	opts_init(o, url);
	o->allow_http = false; /* an http endpoint is the operator's explicit choice */
	o->region = "eu-west-1";
	o->s3_endpoint = endpoint;
	o->creds = p;
	sha256_hex(body, strlen(body), sha);
	o->expected_sha256 = sha;
}

START_TEST(test_s3_sigv4_path_style)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDS3TEST", "AWS_SECRET_ACCESS_KEY=sEcReT/with+odd=chars",
		       "AWS_SESSION_TOKEN=SESSIONTOKEN77", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	const char *body = "package bytes from s3";
	struct fetch_opts o;
	struct fetch_result r;
	struct sigv4 s;
	char endpoint[128], sha[65], *log;

	sigv4_start(&s, body);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/", s.port);
	s3_opts(&o, "s3://my-bucket/dir/a+b=c~(1)!.apkg", endpoint, p, body, sha);
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	child_stop(&s.c);
	log = slurp(s.log);
	ck_assert_ptr_nonnull(strstr(log, "\"path\": \"/my-bucket/dir/a%2Bb%3Dc~%281%29%21.apkg\""));
	ck_assert_ptr_nonnull(strstr(log, "UNSIGNED-PAYLOAD"));
	ck_assert_ptr_nonnull(strstr(log, "SESSIONTOKEN77"));
	ck_assert_int_eq(sigv4_verify(&s, "AKIDS3TEST", "sEcReT/with+odd=chars", "eu-west-1"), 0);
	ck_assert_int_eq(sigv4_verify(&s, "AKIDS3TEST", "wrong-secret", "eu-west-1"), 1);
	log = slurp(logpath);
	ck_assert_ptr_null(strstr(log, "sEcReT"));
	ck_assert_ptr_null(strstr(log, "SESSIONTOKEN77"));
	ck_assert_ptr_nonnull(strstr(log, "s3://my-bucket/dir/a+b=c~(1)!.apkg"));
	fetch_result_free(&r);
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_s3_sigv4_virtual_host)
{
	char *env[] = {"AWS_ACCESS_KEY_ID=AKIDVHOST", "AWS_SECRET_ACCESS_KEY=SECRETVHOST", NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	const char *body = "virtual";
	struct fetch_opts o;
	struct fetch_result r;
	struct sigv4 s;
	char endpoint[128], sha[65], *log;

	sigv4_start(&s, body);
	/* curl resolves *.localhost to loopback itself (RFC 6761), so bucket.localhost works. */
	snprintf(endpoint, sizeof(endpoint), "http://localhost:%d", s.port);
	s3_opts(&o, "s3://vbucket/k.apkg", endpoint, p, body, sha);
	o.s3_addressing = S3_ADDR_VIRTUAL;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	child_stop(&s.c);
	log = slurp(s.log);
	ck_assert_ptr_nonnull(strstr(log, "\"path\": \"/k.apkg\""));
	ck_assert_ptr_nonnull(strstr(log, "vbucket.localhost:"));
	ck_assert_ptr_null(strstr(log, "x-amz-security-token"));
	ck_assert_int_eq(sigv4_verify(&s, "AKIDVHOST", "SECRETVHOST", "eu-west-1"), 0);
	fetch_result_free(&r);
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_s3_container_credentials)
{
	struct egress_ledger *l = ledger_new(16);
	struct aws_creds_provider *p =
		container_provider("?exp=3600", "AWS_CONTAINER_AUTHORIZATION_TOKEN=AUTHTOKEN42", l);
	const char *body = "with task role";
	struct egress_entry *snap;
	struct fetch_opts o;
	struct fetch_result r;
	struct sigv4 s;
	char endpoint[128], sha[65], *log;

	sigv4_start(&s, body);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
	s3_opts(&o, "s3://role-bucket/pkg.apkg", endpoint, p, body, sha);
	o.ledger = l;
	ck_assert_msg(fetch_package(&o, &r) == 0, "%s", r.message);
	child_stop(&s.c);
	ck_assert_int_eq(sigv4_verify(&s, "AKIDCONTAINER", "SECRETCONTAINER", "eu-west-1"), 0);
	ck_assert_ptr_nonnull(strstr(slurp(s.log), "tok:AUTHTOKEN42"));
	ck_assert_uint_eq(ledger_snapshot(l, &snap), 2);
	ck_assert_str_eq(snap[0].purpose, "credentials");
	ck_assert_str_eq(snap[1].purpose, "package");
	ck_assert_int_eq(snap[1].port, s.port);
	free(snap);
	log = slurp(logpath);
	ck_assert_ptr_null(strstr(log, "SECRETCONTAINER"));
	ck_assert_ptr_null(strstr(log, "AUTHTOKEN42"));
	fetch_result_free(&r);
	aws_creds_provider_free(p);
	ledger_free(l);
}
END_TEST

START_TEST(test_s3_no_credentials)
{
	char *env[] = {NULL};
	struct aws_creds_provider *p = aws_creds_provider_new(env, NULL);
	struct fetch_opts o;
	struct fetch_result r;
	char sha[65];

	s3_opts(&o, "s3://my-bucket/k", "http://127.0.0.1:1", p, "x", sha);
	ck_assert_int_eq(fetch_package(&o, &r), -1);
	ck_assert_int_eq(r.status, FETCH_ERR_CREDENTIALS);
	ck_assert_int_eq(r.attempts, 1);
	fetch_result_free(&r);
	aws_creds_provider_free(p);
}
END_TEST

START_TEST(test_sigv4_selftest)
{
	const char *argv[] = {PY, SIGV4_PY, "selftest", NULL};

	ck_assert_int_eq(run_quiet(argv), 0);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tl = tcase_create("ledger");
	TCase *tc = tcase_create("creds");
	TCase *tf = tcase_create("fetch");

	tcase_add_test(tl, test_ledger_record_snapshot);
	tcase_add_test(tl, test_ledger_cap_drops_oldest);
	tcase_add_test(tl, test_ledger_summary_json);
	tcase_add_test(tl, test_ledger_empty);
	tcase_add_test(tl, test_uri_encode_table);
	suite_add_tcase(s, tl);

	tcase_add_unchecked_fixture(tc, servers_up, servers_down);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_creds_env_static);
	tcase_add_test(tc, test_creds_env_session);
	tcase_add_test(tc, test_creds_env_missing_secret);
	tcase_add_test(tc, test_creds_full_uri_host_rule);
	tcase_add_test(tc, test_creds_none);
	tcase_add_test(tc, test_creds_container_cached);
	tcase_add_test(tc, test_creds_container_refresh_and_token_file);
	tcase_add_test(tc, test_creds_container_bad_answer);
	tcase_add_test(tc, test_creds_container_unreachable);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tf, servers_up, servers_down);
	tcase_add_checked_fixture(tf, setup, teardown);
	tcase_set_timeout(tf, 20);
	tcase_add_test(tf, test_fetch_ok_sha);
	tcase_add_test(tf, test_fetch_long_status_line);
	tcase_add_test(tf, test_fetch_sha_upper_case);
	tcase_add_test(tf, test_fetch_sha_mismatch);
	tcase_add_test(tf, test_fetch_content_length_too_large);
	tcase_add_test(tf, test_fetch_stream_too_large);
	tcase_add_test(tf, test_fetch_stream_at_cap_ok);
	tcase_add_test(tf, test_fetch_retry_503_then_ok);
	tcase_add_test(tf, test_fetch_retry_429);
	tcase_add_test(tf, test_fetch_404_final);
	tcase_add_test(tf, test_fetch_403_final);
	tcase_add_test(tf, test_fetch_three_redirects_ok);
	tcase_add_test(tf, test_fetch_four_redirects_refused);
	tcase_add_test(tf, test_fetch_http_needs_allow);
	tcase_add_test(tf, test_fetch_https_with_ca);
	tcase_add_test(tf, test_fetch_https_untrusted);
	tcase_add_test(tf, test_fetch_https_to_http_refused);
	tcase_add_test(tf, test_fetch_fault_error_gives_up);
	tcase_add_test(tf, test_fetch_connect_refused_gives_up);
	tcase_add_test(tf, test_fetch_fault_delay);
	tcase_add_test(tf, test_fetch_cancel_mid_transfer);
	tcase_add_test(tf, test_fetch_cancel_during_delay);
	tcase_add_test(tf, test_fetch_logs_without_query);
	tcase_add_test(tf, test_fetch_no_tmp_dir);
	tcase_add_test(tf, test_s3_sigv4_path_style);
	tcase_add_test(tf, test_s3_sigv4_virtual_host);
	tcase_add_test(tf, test_s3_container_credentials);
	tcase_add_test(tf, test_s3_no_credentials);
	tcase_add_test(tf, test_sigv4_selftest);
	suite_add_tcase(s, tf);
	return s;
}
