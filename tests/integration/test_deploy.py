"""The deploy kit (SPEC §9, issue 9) checked against pard itself: ports, health paths and
timings in the ECS task definition and the Kubernetes manifests agree with pard's defaults
and drain rules, the environment they set passes pard's own configuration check, and the task
role allows nothing beyond reading the package."""
import json
import os
import re
import subprocess
import unittest

import yaml

from pardtest import PARD, SOURCE_DIR, free_port

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
FORBIDDEN = ("ecs:", "elasticloadbalancing:", "servicediscovery:", "dynamodb:", "rds:", "iam:")
TASK_ROLE_ACTIONS = {"s3:GetObject", "s3:ListBucket"}
# What pard needs after the grace on top of drain delay + grace: 1 s linger, 5 s agent stop.
PARD_STOP_TAIL_SEC = 6


def pard_defaults():
    """Variable → default, from `pard --help-config` (the table the README is made from)."""
    out = subprocess.run([PARD, "--help-config"], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", out, re.M)
    return {name: value.strip() for name, value in rows}


def as_list(x):
    return x if isinstance(x, list) else [x]


def statements(policy):
    return as_list(policy["Statement"])


class DeployKitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.defaults = pard_defaults()
        with open(os.path.join(DEPLOY, "ecs-task-definition-template.json")) as f:
            cls.taskdef = json.load(f)
        cls.container = cls.taskdef["containerDefinitions"][0]
        cls.ecs_env = {e["name"]: e["value"] for e in cls.container["environment"]}
        cls.k8s = {}
        for name in sorted(os.listdir(os.path.join(DEPLOY, "k8s"))):
            with open(os.path.join(DEPLOY, "k8s", name)) as f:
                for doc in yaml.safe_load_all(f):
                    cls.k8s[doc["kind"]] = doc

    def setting(self, env, name):
        return env.get(name, self.defaults[name])

    def ports(self, env):
        return {int(self.setting(env, n)) for n in ("REST_PORT", "A2A_PORT", "UI_PORT")}

    def test_defaults_were_read(self):
        self.assertEqual(self.defaults["REST_PORT"], "8080")
        self.assertIn("GRACEFUL_SHUTDOWN_TIMEOUT_SEC", self.defaults)

    def test_task_definition_ports_health_and_stop_timeout(self):
        mapped = {p["containerPort"] for p in self.container["portMappings"]}
        self.assertEqual(mapped, self.ports(self.ecs_env))
        self.assertEqual(mapped, {8080, 50051, 3000})
        hc = self.container["healthCheck"]
        self.assertEqual(hc["command"][0], "CMD")   # exec form: no shell, no curl
        self.assertTrue(hc["command"][1].endswith("/pard") and "--probe" in hc["command"])
        delay = int(self.setting(self.ecs_env, "PAR_DRAIN_DELAY_SEC"))
        grace = int(self.setting(self.ecs_env, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC"))
        self.assertGreaterEqual(self.container["stopTimeout"], delay + grace + 5)
        self.assertGreaterEqual(self.container["stopTimeout"], delay + grace + PARD_STOP_TAIL_SEC)
        self.assertLessEqual(self.container["stopTimeout"], 120)   # ECS's maximum
        self.assertIn("logDriver", self.container["logConfiguration"])

    def test_task_definition_cache_on_efs_and_writable_dirs(self):
        cache = self.setting(self.ecs_env, "PAR_CACHE_DIR")
        mounts = {m["containerPath"]: m["sourceVolume"] for m in self.container["mountPoints"]}
        volumes = {v["name"]: v for v in self.taskdef["volumes"]}
        self.assertIn("efsVolumeConfiguration", volumes[mounts[cache]])
        if self.container.get("readonlyRootFilesystem"):
            sock_dir = os.path.dirname(self.setting(self.ecs_env, "PAR_ADMIN_SOCKET"))
            self.assertIn(sock_dir, mounts, "admin socket directory must be writable")

    def test_task_definition_environment_is_valid_for_pard(self):
        unknown = set(self.ecs_env) - set(self.defaults)
        self.assertEqual(unknown, set(), "variables pard does not know")
        # Placeholders filled with plausible values; the package fetch fails fast on a closed
        # local port, so only a configuration error (exit 10) would fail this.
        fill = {"AGENT_APP_ID": "my-agent", "DEPLOYMENT_ID": "d-1", "PACKAGE_BUCKET": "my-packages",
                "PACKAGE_PREFIX": "agents", "PACKAGE_SHA256": "ab" * 32, "AWS_REGION": "eu-west-1"}
        env = {}
        for k, v in self.ecs_env.items():
            env[k] = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: fill[m.group(1)], v)
        tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "par-deploy-%d" % os.getpid())
        env.update({"PATH": os.environ["PATH"], "PAR_CACHE_DIR": tmp + "/cache",
                    "PAR_ADMIN_SOCKET": tmp + "/admin.sock",
                    "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % free_port(),
                    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x",
                    "PAR_FETCH_TIMEOUT_SEC": "1"})
        r = subprocess.run([PARD, "--check"], env=env, capture_output=True, text=True, timeout=60)
        subprocess.run(["rm", "-rf", tmp])
        self.assertNotEqual(r.returncode, 10, r.stdout)
        self.assertEqual(r.returncode, 11, r.stdout)   # got as far as the fetch

    def test_task_role_reads_the_package_and_nothing_else(self):
        with open(os.path.join(DEPLOY, "iam", "task-role-policy.json")) as f:
            policy = json.load(f)
        for st in statements(policy):
            self.assertEqual(st["Effect"], "Allow")
            self.assertNotIn("NotAction", st)
            actions = set(as_list(st["Action"]))
            self.assertLessEqual(actions, TASK_ROLE_ACTIONS, st)
            for r in as_list(st["Resource"]):
                self.assertTrue(r.startswith("arn:aws:s3:::${PACKAGE_BUCKET}"), r)
            if "s3:GetObject" in actions:
                self.assertTrue(all(r.endswith("/*") and "${PACKAGE_PREFIX}" in r
                                    for r in as_list(st["Resource"])))
        with open(os.path.join(DEPLOY, "iam", "execution-role-policy.json")) as f:
            execution = json.load(f)
        for doc in (policy, execution):
            for st in statements(doc):
                for a in as_list(st["Action"]):
                    self.assertFalse(a.lower().startswith(FORBIDDEN) or a == "*", a)

    def test_trust_policies_name_ecs_tasks(self):
        for name in ("task-role-trust-policy.json", "execution-role-trust-policy.json"):
            with open(os.path.join(DEPLOY, "iam", name)) as f:
                st = statements(json.load(f))[0]
            self.assertEqual(st["Principal"], {"Service": "ecs-tasks.amazonaws.com"})
            self.assertEqual(st["Action"], "sts:AssumeRole")

    def test_kubernetes_probes_ports_and_grace(self):
        dep = self.k8s["Deployment"]
        spec = dep["spec"]["template"]["spec"]
        c = spec["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(set(ports.values()), self.ports(env))
        self.assertEqual(ports["rest"], int(self.setting(env, "REST_PORT")))
        for probe, path in (("startupProbe", "/health"), ("readinessProbe", "/health"),
                            ("livenessProbe", "/livez")):
            get = c[probe]["httpGet"]
            self.assertEqual((get["path"], get["port"]), (path, "rest"), probe)
        delay = int(self.setting(env, "PAR_DRAIN_DELAY_SEC"))
        grace = int(self.setting(env, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC"))
        self.assertGreaterEqual(spec["terminationGracePeriodSeconds"],
                                delay + grace + PARD_STOP_TAIL_SEC)
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertIn(self.setting(env, "PAR_CACHE_DIR"), mounts)
        self.assertIn(os.path.dirname(self.setting(env, "PAR_ADMIN_SOCKET")), mounts)
        svc = {p["name"]: p["targetPort"] for p in self.k8s["Service"]["spec"]["ports"]}
        self.assertEqual(set(svc.values()), set(ports))
        self.assertEqual(self.k8s["PodDisruptionBudget"]["spec"]["selector"],
                         dep["spec"]["selector"])

    def test_health_guide_quotes_the_template_numbers(self):
        with open(os.path.join(DEPLOY, "ALB_HEALTH_CHECK.md")) as f:
            guide = f.read()
        self.assertIn("`stopTimeout` (ECS, %d s)" % self.container["stopTimeout"], guide)
        grace = self.k8s["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertIn("`terminationGracePeriodSeconds` (Kubernetes, %d s)" % grace, guide)
        self.assertIn("BOOT_BUDGET_MS` (%s)" % self.defaults["BOOT_BUDGET_MS"], guide)
        for path in ("/health", "/livez", "/grpc.health.v1.Health/Check"):
            self.assertIn(path, guide)


if __name__ == "__main__":
    unittest.main()
