"""The package cache (issue 3 acceptance 7): a pinned package boots the second time with no
network at all; two pards booting at once on one cache both succeed and leave one entry;
eviction keeps the cache under PAR_CACHE_MAX_MB; a corrupt entry is replaced."""
import os
import shutil
import signal
import tempfile
import time
import unittest

from pardtest import EXIT, Pard, PardTestCase, poll
from peers import read_bytes, S3_KEY, S3_SECRET, Origin, S3rver, make_apkg, sha256_file


def meta(p):
    return p.get("/meta").json()


def phase(p, name):
    return next(ph for ph in meta(p)["boot"]["phases"] if ph["name"] == name)


def du(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total


class Cache(PardTestCase):
    def setUp(self):
        super().setUp()
        self.cache = tempfile.mkdtemp(prefix="par-cache-")
        self.addCleanup(shutil.rmtree, self.cache, True)

    def stop(self, p):
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(), 0)

    def test_second_boot_with_the_same_sha_uses_no_network(self):
        s3 = S3rver(self)
        apkg = make_apkg(self, name="cached")
        s3.put("cached.apkg", apkg)
        sha = sha256_file(apkg)
        env = {"AGENT_PACKAGE_PATH": None, "PACKAGE_URL": "s3://mybucket/cached.apkg",
               "PACKAGE_SHA256": sha, "AWS_ENDPOINT_URL_S3": s3.endpoint,
               "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
               "PAR_CACHE_DIR": self.cache}
        first = Pard(self, env=env).start()
        first.wait_ready(20)
        self.assertFalse(meta(first)["package"]["cacheHit"])
        self.stop(first)
        before = s3.request_count()

        second = Pard(self, env=env).start()
        second.wait_ready(20)
        m = meta(second)
        self.assertTrue(m["package"]["cacheHit"])
        self.assertEqual(m["package"]["egress"]["connections"], 0)
        self.assertEqual(phase(second, "fetch")["status"], "skipped")
        self.assertEqual(phase(second, "fetch")["note"], "cache hit")
        self.assertEqual(s3.request_count(), before, "s3rver was asked again")
        self.assertIn("par_cache_hits_total 1", second.get("/metrics").body.decode())
        self.stop(second)
        self.assertEqual(os.listdir(os.path.join(self.cache, "packages")), [sha + ".apkg"])
        self.assertEqual(os.listdir(os.path.join(self.cache, "extracted")), [sha])

    def test_two_pards_at_once_share_one_download(self):
        apkg = make_apkg(self, name="shared", filler=200_000)
        body = read_bytes(apkg)
        sha = sha256_file(apkg)
        o = Origin(self)

        def slow():
            time.sleep(1.0)   # long enough that both pards are waiting on the same entry
            return body
        o.route("/shared.apkg", {"status": 200, "body": slow})
        env = {"AGENT_PACKAGE_PATH": None, "PACKAGE_URL": o.url("/shared.apkg"), "PAR_ALLOW_HTTP": "1",
               "PACKAGE_SHA256": sha, "PAR_CACHE_DIR": self.cache}
        a = Pard(self, env=env).start()
        b = Pard(self, env=env).start()
        a.wait_ready(30)
        b.wait_ready(30)
        self.assertEqual(o.count("/shared.apkg"), 1)
        hits = sorted(meta(x)["package"]["cacheHit"] for x in (a, b))
        self.assertEqual(hits, [False, True])
        self.stop(a)
        self.stop(b)
        self.assertEqual(os.listdir(os.path.join(self.cache, "packages")), [sha + ".apkg"])
        self.assertEqual(os.listdir(os.path.join(self.cache, "extracted")), [sha])
        self.assertEqual(os.listdir(os.path.join(self.cache, "tmp")), [])

    def test_eviction_keeps_the_cache_under_the_cap(self):
        o = Origin(self)
        shas = []
        for i in range(3):
            apkg = make_apkg(self, name="evict%d" % i, filler=300_000)
            o.route("/e%d.apkg" % i, {"status": 200, "body": read_bytes(apkg)})
            shas.append(sha256_file(apkg))
        for i in range(3):
            env = {"AGENT_PACKAGE_PATH": None, "PACKAGE_URL": o.url("/e%d.apkg" % i), "PAR_ALLOW_HTTP": "1",
                   "PACKAGE_SHA256": shas[i], "PAR_CACHE_DIR": self.cache, "PAR_CACHE_MAX_MB": "1"}
            p = Pard(self, env=env).start()
            p.wait_ready(20)
            self.stop(p)
            time.sleep(0.05)  # distinct use times
        size = du(os.path.join(self.cache, "packages")) + du(os.path.join(self.cache, "extracted"))
        self.assertLessEqual(size, 1024 * 1024)
        kept = os.listdir(os.path.join(self.cache, "extracted"))
        self.assertIn(shas[2], kept)
        self.assertNotIn(shas[0], kept)
        p.wait_event("cache.evicted")

    def test_corrupt_entry_is_detected_and_replaced(self):
        apkg = make_apkg(self, name="fragile")
        sha = sha256_file(apkg)
        o = Origin(self)
        o.route("/f.apkg", {"status": 200, "body": read_bytes(apkg)})
        env = {"AGENT_PACKAGE_PATH": None, "PACKAGE_URL": o.url("/f.apkg"), "PAR_ALLOW_HTTP": "1",
               "PACKAGE_SHA256": sha, "PAR_CACHE_DIR": self.cache}
        p = Pard(self, env=env).start()
        p.wait_ready(20)
        self.stop(p)
        # Damage both the archive and the extracted tree.
        with open(os.path.join(self.cache, "packages", sha + ".apkg"), "r+b") as f:
            f.seek(10)
            f.write(b"XXXX")
        os.unlink(os.path.join(self.cache, "extracted", sha, "agent.yaml"))
        p2 = Pard(self, env=env).start()
        p2.wait_ready(20)
        self.assertEqual(o.count("/f.apkg"), 2)
        self.assertEqual(meta(p2)["name"], "fragile")
        corrupt = {e["entry"] for e in p2.events("cache.corrupt")}
        self.assertEqual(corrupt, {"extracted", "package"})
        self.stop(p2)
        self.assertEqual(sha256_file(os.path.join(self.cache, "packages", sha + ".apkg")), sha)

    def test_local_apkg_is_extracted_once(self):
        apkg = make_apkg(self, name="local")
        env = {"AGENT_PACKAGE_PATH": apkg, "PAR_CACHE_DIR": self.cache}
        p = Pard(self, env=env).start()
        p.wait_ready(20)
        self.assertEqual(meta(p)["package"]["source"], "file")
        self.assertFalse(meta(p)["package"]["cacheHit"])
        self.stop(p)
        p = Pard(self, env=env).start()
        p.wait_ready(20)
        self.assertTrue(meta(p)["package"]["cacheHit"])
        self.assertEqual(phase(p, "extract")["note"], "cache hit")
        self.stop(p)

    def test_local_apkg_sha_mismatch(self):
        apkg = make_apkg(self, name="local")
        p = Pard(self, env={"AGENT_PACKAGE_PATH": apkg, "PACKAGE_SHA256": "c" * 64,
                            "PAR_CACHE_DIR": self.cache}).start()
        self.assertEqual(p.wait_exit(), EXIT["fetch"])
        self.assertEqual(p.wait_event("boot.failed")["phase"], "verify")


if __name__ == "__main__":
    unittest.main()
