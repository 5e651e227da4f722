"""The UI surface (issue 5 acceptance 1–3, 5): static files on UI_PORT and under {BASE}/ui/,
validators, precompressed variants, the SPA fallback, ui-config.json — and a traversal corpus
that never gets a byte from outside the UI root."""
import gzip
import json
import os
import shutil
import socket
import tempfile
import unittest

from pardtest import Pard, PardTestCase, curl

CANARY = b"CANARY-7f3a9c-outside-the-ui-root"


def make_ui_package(test, base_path="/", extra_yaml=""):
    root = tempfile.mkdtemp(prefix="ui-pkg-")
    test.addCleanup(shutil.rmtree, root, True)
    pkg = os.path.join(root, "pkg")
    ui = os.path.join(pkg, "ui")
    os.makedirs(os.path.join(ui, "assets"))
    os.makedirs(os.path.join(ui, "sub"))
    with open(os.path.join(pkg, "agent.yaml"), "w") as f:
        f.write("name: ui-only\nversion: 1.0.0\nui:\n  path: ui\n  basePath: %s\n%s" % (base_path, extra_yaml))
    files = {
        "index.html": b"<!doctype html><title>ui</title><script src=app.js></script>",
        "app.js": b"console.log('app');\n" * 50,
        "style.css": b"body{margin:0}",
        "assets/app.3f2a1b9c.js": b"console.log('hashed');",
        "sub/index.html": b"<p>sub</p>",
        "data.json": b'{"k":1}',
    }
    for name, data in files.items():
        with open(os.path.join(ui, name), "wb") as f:
            f.write(data)
    with gzip.open(os.path.join(ui, "app.js.gz"), "wb") as f:
        f.write(files["app.js"])
    # Secrets outside the UI root, inside and outside the package, and links to them.
    with open(os.path.join(pkg, "secret.txt"), "wb") as f:
        f.write(CANARY)
    with open(os.path.join(root, "canary.txt"), "wb") as f:
        f.write(CANARY)
    os.symlink(os.path.join(root, "canary.txt"), os.path.join(ui, "link.txt"))
    os.symlink(root, os.path.join(ui, "linkdir"))
    os.symlink("../secret.txt", os.path.join(ui, "rel-link.txt"))
    return pkg, files


TRAVERSAL = [
    "/../secret.txt", "/../../canary.txt", "/..", "/../", "/sub/../../secret.txt",
    "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/%2e%2e%2fsecret.txt", "/..%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2fcanary.txt", "/%252e%252e/secret.txt", "/..%252fsecret.txt",
    "/.%2e/secret.txt", "/%2e./secret.txt", "/..\\secret.txt", "/..%5csecret.txt",
    "/%5c..%5csecret.txt", "/app.js%00.png", "/%00../secret.txt", "/./secret.txt",
    "//etc/passwd", "/%2fetc%2fpasswd", "/etc/passwd%00", "/link.txt", "/linkdir/canary.txt",
    "/rel-link.txt", "/linkdir/pkg/secret.txt", "/" + "a" * 300 + "/x.js", "/" + "a/" * 600 + "x.js",
    "/sub/./index.html", "/sub//index.html", "/%c0%ae%c0%ae/secret.txt", "/..;/secret.txt",
]


class Ui(PardTestCase):
    def start(self, env=None, base_path="/"):
        pkg, files = make_ui_package(self, base_path)
        e = {"AGENT_PACKAGE_PATH": pkg}
        e.update(env or {})
        p = Pard(self, env=e).start()
        p.wait_ready(20)
        return p, files

    def ui(self, p, path, **kw):
        return curl("http://127.0.0.1:%d%s" % (p.ui_port, path), **kw)

    def test_ui_only_package_is_ready_and_serves_on_both_mounts(self):
        p, files = self.start(env={"BASE_PATH": "/svc"})
        self.assertEqual(p.get("/health").json()["surfaces"]["ui"], "up")
        r = self.ui(p, "/")
        self.assertEqual((r.status, r.body), (200, files["index.html"]))
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        r = p.get("/svc/ui/app.js")
        self.assertEqual((r.status, r.body), (200, files["app.js"]))
        self.assertEqual(r.header("content-type"), "text/javascript; charset=utf-8")
        self.assertEqual(r.header("x-content-type-options"), "nosniff")
        r = p.get("/svc/ui")
        self.assertEqual((r.status, r.header("location")), (308, "/svc/ui/"))

    def test_missing_asset_404_and_spa_fallback(self):
        p, files = self.start()
        self.assertEqual(self.ui(p, "/missing.js").status, 404)
        r = self.ui(p, "/settings/profile")
        self.assertEqual((r.status, r.body), (200, files["index.html"]))
        self.assertEqual(r.header("cache-control"), "no-cache")
        self.assertEqual(self.ui(p, "/sub/").body, files["sub/index.html"])

    def test_validators_and_head(self):
        p, files = self.start()
        r = self.ui(p, "/style.css")
        etag, lm = r.header("etag"), r.header("last-modified")
        self.assertTrue(etag and lm)
        r = self.ui(p, "/style.css", headers={"If-None-Match": etag})
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.ui(p, "/style.css", headers={"If-Modified-Since": lm})
        self.assertEqual(r.status, 304)
        r = self.ui(p, "/style.css", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(r.header("content-length"), str(len(files["style.css"])))
        self.assertEqual(self.ui(p, "/assets/app.3f2a1b9c.js").header("cache-control"),
                         "public, max-age=31536000, immutable")

    def test_precompressed_gzip(self):
        p, files = self.start()
        r = self.ui(p, "/app.js", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(r.body), files["app.js"])
        r = self.ui(p, "/app.js")
        self.assertIsNone(r.header("content-encoding"))
        self.assertEqual(r.body, files["app.js"])

    def test_ui_config_points_at_a_rest_url_that_answers(self):
        p, _ = self.start(env={"BASE_PATH": "/svc"})
        cfg = self.ui(p, "/ui-config.json").json()
        self.assertEqual(cfg["apiBase"], "http://127.0.0.1:%d/svc/api" % p.rest_port)
        health = curl(cfg["apiBase"].rsplit("/api", 1)[0] + "/health")
        self.assertEqual(health.status, 200)
        cfg = p.get("/svc/ui/ui-config.json").json()
        self.assertEqual(cfg["apiBase"], "/svc/api")

    def test_ui_port_zero_disables_the_listener(self):
        p, files = self.start(env={"UI_PORT": "0"})
        self.assertEqual(self.ui(p, "/").curl_rc, 7)
        self.assertEqual(p.get("/ui/").body, files["index.html"])

    def test_base_path_of_the_manifest(self):
        p, files = self.start(base_path="/app")
        self.assertEqual(p.get("/ui/app/style.css").body, files["style.css"])
        self.assertEqual(p.get("/ui/style.css").status, 404)

    def test_methods(self):
        p, _ = self.start()
        r = self.ui(p, "/index.html", method="POST")
        self.assertEqual((r.status, r.header("allow")), (405, "GET, HEAD"))

    def test_traversal_corpus_never_leaks(self):
        p, _ = self.start()
        self.assertGreaterEqual(len(TRAVERSAL), 30)
        for path in TRAVERSAL:
            for url in ("http://127.0.0.1:%d%s" % (p.ui_port, path),
                        "http://127.0.0.1:%d/ui%s" % (p.rest_port, path)):
                with self.subTest(url=url):
                    r = curl(url)
                    self.assertNotIn(CANARY, r.body)
                    self.assertTrue(400 <= r.status < 500, (path, r.status))
                    raw = self.raw_get(p.ui_port, path)
                    self.assertNotIn(CANARY, raw)

    @staticmethod
    def raw_get(port, path):
        """The request line exactly as written: no client normalises it."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET " + path.encode("latin-1") + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk


if __name__ == "__main__":
    unittest.main()
