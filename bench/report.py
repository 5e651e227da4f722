"""Turns the suite's results (report.json) into the Markdown report: every measured figure next to
its target and to the reference measured in the same run, then the phase and profile details."""
import json
import sys

OLD = "the Python runtime this replaces"


def fmt(v, unit="", digits=None):
    if v is None:
        return "–"
    if digits is None:
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return ("%%.%df" % digits) % v + unit


def med(s):
    return s.get("median") if isinstance(s, dict) else s


def rng(s, unit="", digits=None):
    if not isinstance(s, dict) or s.get("n", 0) == 0:
        return "–"
    if s["n"] == 1:
        return "(1 run)"
    return "%s – %s" % (fmt(s["min"], unit, digits), fmt(s["max"], unit, digits))


def verdict(value, limit, higher_is_better=False):
    if value is None or limit is None:
        return ""
    ok = value >= limit if higher_is_better else value <= limit
    return "**met**" if ok else "**MISSED**"


def markdown(res):
    m = res["meta"]
    boot, mem, rest, a2a, drain, pipe = (res.get(k, {}) for k in ("boot", "memory", "rest", "a2a", "drain", "pipeline"))
    out = []
    w = out.append
    w("# PAR benchmark report")
    w("")
    w("%s → %s, %s, %d CPUs, kernel %s%s. Load average (1/5/15 min) before: %s, after: %s%s." % (
        m.get("started"), m.get("finished"), m.get("pardVersion", "pard"), m.get("cpus", 0), m.get("kernel"),
        ", tree %s" % m["gitDescribe"] if m.get("gitDescribe") else "",
        " / ".join("%.2f" % x for x in m.get("loadavgBefore", [])),
        " / ".join("%.2f" % x for x in m.get("loadavgAfter", [])),
        " — **quick mode: fewer, shorter runs**" if m.get("quick") else ""))
    w("")
    w("Median and range (min – max) of n runs; ratios are taken run by run against the reference "
      "measured in the same pass. The last column is what %s measured." % OLD)
    w("")
    w("| area | figure | median | range | n | target | verdict | reference (same run) | Python runtime |")
    w("|---|---|---|---|---|---|---|---|---|")

    def row(area, figure, s, unit, target_txt, limit, higher=False, ref="", old="", digits=None):
        v = med(s)
        n = s.get("n", 1) if isinstance(s, dict) else 1
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            area, figure, fmt(v, unit, digits), rng(s, unit, digits) if isinstance(s, dict) else "", n,
            target_txt, verdict(v, limit, higher), ref, old))

    floor = boot.get("floor-exec-ms", {})
    fl0 = "floor %s (exec → exit of a no-op linked against pard's libraries, %s loaded; %s CPU); `pard --version` %s" % (
        fmt(med(floor), " ms"), boot.get("floor-loaded-libraries", "?"), fmt(med(boot.get("floor-cpu-ms", {})), " ms"),
        fmt(med(boot.get("pard-version-exec-ms", {})), " ms"))
    fl = "floor %s" % fmt(med(floor), " ms")
    if boot.get("s3-warm-1mb"):
        row("boot", "warm cache, `s3://` + `PACKAGE_SHA256` (1 MB native package) → `/health` 200",
            boot["s3-warm-1mb"]["readyMs"], " ms", "≤ 25 ms", 25, ref=fl0, old="500 ms")
        row("boot", "CPU of pard's whole run in that scenario (boot, `/meta`, drain; pard's children excluded)",
            boot["s3-warm-1mb"].get("cpuWholeRunMs", {}), " ms", "", None,
            ref="the floor's CPU %s" % fmt(med(boot.get("floor-cpu-ms", {})), " ms"))
        row("boot", "local path, extracted dir (echo-agent)", boot["native-dir"]["readyMs"], " ms", "≤ 25 ms", 25, ref=fl)
        row("boot", "local path, `.apkg` (hash, cached extract)", boot["native-apkg-warm"]["readyMs"], " ms", "≤ 25 ms", 25, ref=fl)
        row("boot", "cold cache, `s3://` download + extract of %s" % _size(boot.get("coldPackageBytes")),
            boot["s3-cold-1mb"]["readyMs"], " ms", "≤ 60 ms", 60,
            ref="%s; `curl` of the same object from s3rver %s" % (fl, fmt(med(boot.get("curl-s3-1mb-ms", {})), " ms")),
            old="4.4 s")
        if boot.get("s3-cold-1mb-nofsync"):
            row("boot", "diagnostic: the same cold boot with fsync a no-op (libeatmydata)",
                boot["s3-cold-1mb-nofsync"]["readyMs"], " ms", "", None, ref="shows the cost of pard's fsyncs")
        row("boot", "Python example agent, warm venv", boot["python-warm"]["readyMs"], " ms", "≤ 400 ms", 400,
            ref="`python3 -c 'import fastapi, uvicorn'` %s; first boot (venv build) %s" % (
                fmt(med(boot.get("python-import-fastapi-uvicorn-ms", {})), " ms"),
                fmt(boot.get("python-first-boot-venv-build-ms"), " ms")), old="500 ms")
    rb = mem.get("ready-by-scenario", {})
    if mem.get("native-ready"):
        nr = mem["native-ready"]
        row("memory", "RSS at READY, native echo-agent (whole tree)", {"median": nr["rssKiB"] / 1024, "n": 1},
            " MiB", "≤ 16 MiB", 16, ref="PSS %s, anonymous %s, %d threads" % (
                fmt(nr["pssKiB"] / 1024, " MiB"), fmt(nr.get("anonKiB", 0) / 1024, " MiB"), nr.get("threads") or 0),
            old="69 MiB")
        fr = mem.get("floor")
        if fr:
            w("| memory | reference: the floor program parked in `main()` (no-op, pard's libraries) | %s | | 1 | | | PSS %s, anonymous %s | |"
              % (fmt(fr["rssKiB"] / 1024, " MiB"), fmt(fr["pssKiB"] / 1024, " MiB"), fmt(fr.get("anonKiB", 0) / 1024, " MiB")))
    if rb.get("native-dir") and not mem.get("native-ready") and mem.get("floor"):
        fr = mem["floor"]
        w("| memory | reference: the floor program parked in `main()` (no-op, pard's libraries) | %s | | 1 | | | PSS %s, anonymous %s | |"
          % (fmt(fr["rssKiB"] / 1024, " MiB"), fmt(fr["pssKiB"] / 1024, " MiB"), fmt(fr.get("anonKiB", 0) / 1024, " MiB")))
    if rb.get("native-dir"):
        row("memory", "RSS at READY, native, over the boot runs", _div(rb["native-dir"]["rssKiB"], 1024), " MiB",
            "≤ 16 MiB", 16, ref="PSS %s, anonymous %s" % (fmt(med(_div(rb["native-dir"]["pssKiB"], 1024)), " MiB"),
                                                          fmt(med(_div(rb["native-dir"].get("anonKiB", {}), 1024)), " MiB")))
    if mem.get("native-after-load"):
        na = mem["native-after-load"]
        row("memory", "RSS after the REST + A2A loads, native", {"median": na["rssKiB"] / 1024, "n": 1}, " MiB", "", None,
            ref="PSS %s, anonymous %s, %d threads" % (fmt(na["pssKiB"] / 1024, " MiB"),
                                                      fmt(na.get("anonKiB", 0) / 1024, " MiB"), na.get("threads") or 0))
    if rb.get("python-warm"):
        row("memory", "RSS at READY, Python agent (pard + worker)", _div(rb["python-warm"]["rssKiB"], 1024), " MiB", "", None,
            ref="PSS %s, %s processes" % (fmt(med(_div(rb["python-warm"]["pssKiB"], 1024)), " MiB"),
                                          rb["python-warm"].get("processes")))
    if rest.get("pard-health"):
        nw = rest.get("nginxWorkersPrimary")
        ng = rest.get("nginx-%dw" % nw, {})
        ng64 = rest.get("nginx-64w", {})
        row("REST", "`/health` throughput, wrk 64 conns", rest["pard-health"]["rps"], " req/s", "", None,
            ref="nginx %d workers %s; 64 workers %s" % (nw, fmt(med(ng.get("rps")), " req/s"),
                                                       fmt(med(ng64.get("rps")), " req/s")), old="523 req/s")
        row("REST", "`/health` ÷ nginx `return 200` (%d workers)" % nw, rest["health-vs-nginx"], "×", "≥ 0.8×", 0.8,
            higher=True, ref="÷ nginx 64 workers: %s" % fmt(med(rest.get("health-vs-nginx-64w")), "×"))
        row("REST", "`/health` p99", rest["pard-health"]["p99ms"], " ms", "≤ 10 ms", 10,
            ref="nginx %s" % fmt(med(ng.get("p99ms")), " ms"), old="231 ms")
        row("REST", "`/health` server CPU per request", rest["pard-health"]["serverCpuPerReqUs"], " µs", "", None,
            ref="nginx %s" % fmt(med(ng.get("serverCpuPerReqUs")), " µs"))
        row("REST", "native `/api/hello` throughput", rest["pard-api-hello"]["rps"], " req/s", "", None,
            ref="p99 %s, CPU/req %s" % (fmt(med(rest["pard-api-hello"]["p99ms"]), " ms"),
                                        fmt(med(rest["pard-api-hello"]["serverCpuPerReqUs"]), " µs")))
        errs = sum(rest[k].get("errors", 0) for k in rest if isinstance(rest[k], dict) and "errors" in rest[k])
        if errs:
            w("| REST | errors (non-2xx + socket) over all wrk runs | %d | | | 0 | **MISSED** | | |" % errs)
    for name, label in (("python-seq", "python3-grpcio, sequential"), ("h2load-seq", "h2load, sequential"),
                        ("python-16callers", "python3-grpcio, 16 callers on one channel"),
                        ("h2load-16x1conn", "h2load, 16 streams on one connection"),
                        ("h2load-16conns", "h2load, 16 connections")):
        s = a2a.get(name)
        if not s:
            continue
        seq = "seq" in name
        row("A2A", "Invoke(echo) %s: server CPU per call" % label, s["serverCpuPerCallUs"], " µs", "≤ 40 µs", 40,
            old="~180 µs" if name == "python-16callers" else "")
        if seq:
            row("A2A", "Invoke(echo) %s: p50 latency" % label, s["p50us"], " µs",
                "≤ 200 µs" if name == "python-seq" else "", 200 if name == "python-seq" else None,
                ref="p99 %s, %s calls/s" % (fmt(med(s["p99us"]), " µs"), fmt(med(s["callsPerSec"]))))
        else:
            row("A2A", "Invoke(echo) %s: throughput" % label, s["callsPerSec"], " calls/s", "", None,
                ref="p50 %s, p99 %s" % (fmt(med(s["p50us"]), " µs"), fmt(med(s["p99us"]), " µs")),
                old="5.4k calls/s" if name == "python-16callers" else "")
        if s.get("errors"):
            w("| A2A | %s: failed calls | %d | | | 0 | **MISSED** | | |" % (label, s["errors"]))
    idle = drain.get("idle", {})
    if idle.get("native-dir"):
        row("drain", "SIGTERM → exit, nothing in flight, `PAR_DRAIN_DELAY_SEC=0` (native)", idle["native-dir"], " ms",
            "≤ 100 ms", 100, ref="same after the s3 boots: %s" % fmt(med(idle.get("s3-warm-1mb")), " ms"),
            old="never exits")
    if idle.get("python-warm"):
        row("drain", "SIGTERM → exit, nothing in flight (Python agent: worker stopped too)", idle["python-warm"],
            " ms", "≤ 100 ms", 100)
    ul = drain.get("under-load")
    if ul:
        w("| drain | accepted before SIGTERM and failed, 32 in flight (16 REST + 16 gRPC, slow-agent) | %d of %d | | %d "
          "| 0 | %s | exit codes %s | never exits |" % (
              ul["failedBefore"], ul["sentBefore"], len(ul["runs"]), "**met**" if ul["failedBefore"] == 0 else "**MISSED**",
              ",".join(str(c) for c in ul["exitCodes"])))
        row("drain", "SIGTERM → exit under load (in-flight calls take 400 ms)", ul["sigtermToExitMs"], " ms", "", None,
            ref="exit %s after the last in-flight answer" % fmt(med(ul["afterLastInFlightMs"]), " ms"))
    if pipe.get("ratio"):
        row("pipeline", "fetch + verify + extract of %s from s3rver (pard's phases)" % _size(pipe["packageBytes"]),
            pipe["pardFetchVerifyExtractMs"], " ms", "", None,
            ref="`curl \\| sha256sum` %s + `bsdtar -xf` %s" % (fmt(med(pipe["curlSha256sumMs"]), " ms"),
                                                             fmt(med(pipe["bsdtarMs"]), " ms")))
        row("pipeline", "pard ÷ (`curl -s URL \\| sha256sum` + `bsdtar -xf`)", pipe["ratio"], "×", "≤ 1.3×", 1.3,
            ref="baseline %s" % fmt(med(pipe["baselineMs"]), " ms"))
        if pipe.get("ratioNoFsync", {}).get("n"):
            row("pipeline", "diagnostic: pard with fsync a no-op (libeatmydata) ÷ the same baseline",
                pipe["ratioNoFsync"], "×", "", None,
                ref="fetch + verify + extract %s" % fmt(med(pipe["pardNoFsyncMs"]), " ms"))
    w("")

    if boot.get("native-dir"):
        w("## Boot phases (pard's `/meta`, median ms)")
        w("")
        names = ["config", "listen", "fetch", "verify", "extract", "manifest", "install", "load", "surfaces", "probe", "totalMs"]
        w("| scenario | ready (harness) | " + " | ".join(names) + " |")
        w("|---|---|" + "---|" * len(names))
        for k in ("native-dir", "native-apkg-warm", "s3-warm-1mb", "s3-cold-1mb", "s3-cold-1mb-nofsync", "python-warm"):
            if k in boot:
                ph = boot[k]["phasesMs"]
                w("| %s | %s | %s |" % (k, fmt(med(boot[k]["readyMs"])), " | ".join(fmt(ph.get(n)) for n in names)))
        if pipe.get("pardPhasesMs"):
            ph = pipe["pardPhasesMs"]
            w("| s3-cold-50mb (pipeline, last run) | %s | %s |" % (
                fmt(med(pipe["pardReadyMs"])), " | ".join(fmt(ph.get(n)) for n in names)))
        w("")
        w("Phases are whole milliseconds as pard reports them; `ready (harness)` runs from `posix_spawn` to the "
          "first `/health` 200 and includes exec, dynamic linking and everything before `config` starts.")
        w("")

    profs = res.get("profiles") or {}
    if profs:
        w("## Where pard's CPU goes (perf, uncounted extra runs: the kernel's share of self time, then user-space functions by inclusive time)")
        w("")
        for name, lines in profs.items():
            w("`%s`:" % name)
            w("")
            w("```")
            out.extend(lines)
            w("```")
            w("")
    return "\n".join(out) + "\n"


def _div(s, d):
    s = dict(s)
    for k in ("median", "min", "max"):
        if s.get(k) is not None:
            s[k] = s[k] / d
    return s


def _size(b):
    if not b:
        return "?"
    return "%.1f MB" % (b / 1e6)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)))
