"""Configuration errors (SPEC §2, issue 2 acceptance 1): every invalid value gives the
config exit code and one JSON error line naming the variable; valid edge values pass."""
import unittest

from pardtest import EXIT, PardTestCase, free_port, run_pard

SHA = "a" * 64
NO_PKG = {"AGENT_PACKAGE_PATH": None}

# (case name, env overrides, variables the error lines must name)
INVALID = [
    ("app id missing", {"AGENT_APP_ID": None}, {"AGENT_APP_ID"}),
    ("app id empty", {"AGENT_APP_ID": ""}, {"AGENT_APP_ID"}),
    ("app id newline", {"AGENT_APP_ID": "a\nb"}, {"AGENT_APP_ID"}),
    ("app id leading space", {"AGENT_APP_ID": " agent"}, {"AGENT_APP_ID"}),
    ("app id trailing space", {"AGENT_APP_ID": "agent "}, {"AGENT_APP_ID"}),
    ("app id too long", {"AGENT_APP_ID": "x" * 257}, {"AGENT_APP_ID"}),
    ("deployment id tab", {"DEPLOYMENT_ID": "dep\tloy"}, {"DEPLOYMENT_ID"}),
    ("rest port letters", {"REST_PORT": "abc"}, {"REST_PORT"}),
    ("rest port zero", {"REST_PORT": "0"}, {"REST_PORT"}),
    ("rest port too big", {"REST_PORT": "70000"}, {"REST_PORT"}),
    ("rest port sign and space", {"REST_PORT": "+8080 "}, {"REST_PORT"}),
    ("a2a port negative", {"A2A_PORT": "-1"}, {"A2A_PORT"}),
    ("ui port letters", {"UI_PORT": "ui"}, {"UI_PORT"}),
    ("rest equals a2a", {"REST_PORT": "18000", "A2A_PORT": "18000"}, {"A2A_PORT"}),
    ("rest equals ui unmultiplexed", {"REST_PORT": "18001", "UI_PORT": "18001", "MULTIPLEXED": "false"}, {"UI_PORT"}),
    ("multiplexed maybe", {"MULTIPLEXED": "maybe"}, {"MULTIPLEXED"}),
    ("base path double slash", {"BASE_PATH": "/a//b"}, {"BASE_PATH"}),
    ("base path dotdot", {"BASE_PATH": "/a/../b"}, {"BASE_PATH"}),
    ("base path space", {"BASE_PATH": "/a b"}, {"BASE_PATH"}),
    ("sha 63 chars", {"PACKAGE_SHA256": "a" * 63}, {"PACKAGE_SHA256"}),
    ("sha not hex", {"PACKAGE_SHA256": "g" * 64}, {"PACKAGE_SHA256"}),
    ("file url", dict(NO_PKG, PACKAGE_URL="file:///etc/passwd"), {"PACKAGE_URL"}),
    ("ftp url", dict(NO_PKG, PACKAGE_URL="ftp://example.test/a.apkg"), {"PACKAGE_URL"}),
    ("http url without opt-in", dict(NO_PKG, PACKAGE_URL="http://example.test/a.apkg"), {"PACKAGE_URL"}),
    ("s3 url of another bucket", dict(NO_PKG, PACKAGE_URL="s3://other/a.apkg", S3_BUCKET="mine"), {"PACKAGE_URL"}),
    ("sha required", dict(NO_PKG, PACKAGE_URL="s3://bucket/a.apkg", PAR_REQUIRE_SHA256="1"), {"PACKAGE_SHA256"}),
    ("bad bucket", {"S3_BUCKET": "Bad_Bucket"}, {"S3_BUCKET"}),
    ("max package size zero", {"MAX_PACKAGE_SIZE_MB": "0"}, {"MAX_PACKAGE_SIZE_MB"}),
    ("boot budget words", {"BOOT_BUDGET_MS": "fast"}, {"BOOT_BUDGET_MS"}),
    ("hard multiplier below one", {"BOOT_HARD_LIMIT_MULTIPLIER": "0.5"}, {"BOOT_HARD_LIMIT_MULTIPLIER"}),
    ("grace negative", {"GRACEFUL_SHUTDOWN_TIMEOUT_SEC": "-5"}, {"GRACEFUL_SHUTDOWN_TIMEOUT_SEC"}),
    ("drain delay fraction", {"PAR_DRAIN_DELAY_SEC": "1.5"}, {"PAR_DRAIN_DELAY_SEC"}),
    ("log level", {"LOG_LEVEL": "verbose"}, {"LOG_LEVEL"}),
    ("log format", {"LOG_FORMAT": "xml"}, {"LOG_FORMAT"}),
    ("cors wildcard", {"PAR_CORS_ORIGINS": "*"}, {"PAR_CORS_ORIGINS"}),
    ("unknown fault", {"PAR_ENABLE_FAULTS": "1", "PAR_FAULTS": "bogus.fault"}, {"PAR_FAULTS"}),
    ("relative admin socket", {"PAR_ADMIN_SOCKET": "relative/admin.sock"}, {"PAR_ADMIN_SOCKET"}),
    ("cache cap zero", {"PAR_CACHE_MAX_MB": "0"}, {"PAR_CACHE_MAX_MB"}),
    ("allow http maybe", {"PAR_ALLOW_HTTP": "maybe"}, {"PAR_ALLOW_HTTP"}),
    ("no package at all", NO_PKG, {"PACKAGE_URL", "AGENT_PACKAGE_PATH"}),
    ("s3 addressing", {"PAR_S3_ADDRESSING": "sideways"}, {"PAR_S3_ADDRESSING"}),
    ("fetch timeout zero", {"PAR_FETCH_TIMEOUT_SEC": "0"}, {"PAR_FETCH_TIMEOUT_SEC"}),
]


def config_errors(p):
    return [r for r in p.events("config.invalid") if r["level"] == "error"]


class ConfigErrors(PardTestCase):
    def test_each_invalid_value_is_named_and_exits_with_config_code(self):
        self.assertGreaterEqual(len(INVALID), 25)
        for name, env, variables in INVALID:
            with self.subTest(name):
                rc, p = run_pard(self, env=env)
                self.assertEqual(rc, EXIT["config"], "\n".join(p.lines))
                errs = config_errors(p)
                self.assertTrue(errs, "no config.invalid line")
                named = {e["variable"] for e in errs}
                self.assertTrue(named & variables, "errors name %s, expected one of %s" % (named, variables))
                for e in errs:
                    self.assertTrue(e.get("rule"), e)
                    self.assertIn("value", e)
                # Nothing was served: the config phase failed before the listener.
                self.assertFalse(p.events("rest.listening"))

    def test_all_errors_are_reported_not_just_the_first(self):
        rc, p = run_pard(self, env={"REST_PORT": "abc", "MULTIPLEXED": "maybe", "BASE_PATH": "/a//b", "LOG_FORMAT": "xml"})
        self.assertEqual(rc, EXIT["config"])
        named = sorted(e["variable"] for e in config_errors(p))
        self.assertEqual(named, ["BASE_PATH", "LOG_FORMAT", "MULTIPLEXED", "REST_PORT"])

    def test_error_line_carries_the_value(self):
        rc, p = run_pard(self, env={"REST_PORT": "70000"})
        self.assertEqual(rc, EXIT["config"])
        (err,) = config_errors(p)
        self.assertEqual(err["value"], "70000")

    def test_secrets_never_reach_the_log(self):
        env = dict(NO_PKG,
                   PACKAGE_URL="ftp://example.test/a.apkg?X-Amz-Signature=SIGSECRET123",
                   AWS_ACCESS_KEY_ID="AKIDSECRET456",
                   AWS_SECRET_ACCESS_KEY="SECRETKEY789",
                   AWS_SESSION_TOKEN="TOKEN000SECRET")
        rc, p = run_pard(self, env=env)
        self.assertEqual(rc, EXIT["config"])
        out = "\n".join(p.lines)
        for secret in ("SIGSECRET123", "SECRETKEY789", "TOKEN000SECRET"):
            self.assertNotIn(secret, out)
        (err,) = config_errors(p)
        self.assertEqual(err["variable"], "PACKAGE_URL")

    def test_check_mode_reports_without_serving(self):
        rc, p = run_pard(self, env={"REST_PORT": "abc"}, args=["--check"])
        self.assertEqual(rc, EXIT["config"])
        self.assertEqual([e["variable"] for e in config_errors(p)], ["REST_PORT"])
        self.assertFalse(p.events("boot.failed"))


class ConfigValidEdges(PardTestCase):
    # --check also fetches the package: URLs point at a closed loopback port, so nothing leaves
    # the machine and the fetch fails fast (exit 11) — what matters here is no config error.
    CLOSED = "127.0.0.1:%d" % free_port()
    VALID = [
        ("HTTPS scheme upper case", dict(NO_PKG, PACKAGE_URL="HTTPS://%s/agent.apkg" % CLOSED)),
        ("upper-case sha", {"PACKAGE_SHA256": SHA.upper()}),
        ("port 1", {"REST_PORT": "1"}),
        ("port 65535", {"REST_PORT": "65535"}),
        ("rest equals ui multiplexed", {"REST_PORT": "18002", "UI_PORT": "18002", "MULTIPLEXED": "yes"}),
        ("ui disabled", {"UI_PORT": "0"}),
        ("base path normalised", {"BASE_PATH": "agents/x/"}),
        ("http with opt-in", dict(NO_PKG, PACKAGE_URL="http://%s/a.apkg" % CLOSED, PAR_ALLOW_HTTP="1")),
        ("s3 url in its bucket", dict(NO_PKG, PACKAGE_URL="s3://mine/a.apkg", S3_BUCKET="mine",
                                      AWS_ENDPOINT_URL_S3="http://%s" % CLOSED)),
        ("hard limit off", {"BOOT_HARD_LIMIT_MULTIPLIER": "0"}),
        ("text logs", {"LOG_FORMAT": "json", "LOG_LEVEL": "WARN"}),
    ]

    def test_valid_edge_values_pass_check(self):
        for name, env in self.VALID:
            with self.subTest(name):
                rc, p = run_pard(self, env=dict(env, PAR_FETCH_TIMEOUT_SEC="1"), args=["--check"])
                self.assertFalse(config_errors(p))
                if "PACKAGE_URL" in env:
                    self.assertEqual(rc, EXIT["fetch"], "\n".join(p.lines))
                    p.wait_event("check.package.failed")
                else:
                    self.assertEqual(rc, EXIT["ok"], "\n".join(p.lines))

    def test_malformed_boot_failure_count_is_a_warning(self):
        rc, p = run_pard(self, env={"BOOT_FAILURE_COUNT": "lots"}, args=["--check"])
        self.assertEqual(rc, EXIT["ok"])
        warns = [r for r in p.events("config.warning") if r["variable"] == "BOOT_FAILURE_COUNT"]
        self.assertEqual(len(warns), 1)


if __name__ == "__main__":
    unittest.main()
