"""Second A2A client: Debian's python3-grpcio calling Invoke(echo), sequentially or from N
threads on one channel; prints one JSON line with latencies, throughput and the server's CPU
over exactly the timed loop (read from /proc, so the client's own cost stays out of it)."""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402

import a2a_client  # noqa: E402  (stubs generated from the repo's proto at run time)
from benchlib import cpu_seconds, percentile, tree_pids  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--callers", type=int, default=1)
    ap.add_argument("--calls", type=int, default=0, help="sequential: this many calls")
    ap.add_argument("--duration", type=float, default=10.0, help="concurrent: seconds")
    ap.add_argument("--warmup", type=int, default=200)
    a = ap.parse_args()

    pb2, grpc_mod, _, _ = a2a_client.stubs()
    channel = grpc.insecure_channel("127.0.0.1:%d" % a.port)
    stub = grpc_mod.AgentServiceStub(channel)
    req = pb2.ActionRequest(action="echo", parameters={"text": "hello"}, request_id="")

    for _ in range(a.warmup):
        r = stub.Invoke(req, timeout=10)
        if not r.success:
            raise SystemExit("echo failed: %s" % r.error)

    lat = [[] for _ in range(a.callers)]
    errors = [0] * a.callers
    stop = threading.Event()

    def caller(i, n):
        mine = lat[i]
        clock = time.perf_counter_ns
        done = 0
        while not stop.is_set() and (n == 0 or done < n):
            t = clock()
            try:
                r = stub.Invoke(req, timeout=10)
                ok = r.success
            except grpc.RpcError:
                ok = False
            mine.append(clock() - t)
            if not ok:
                errors[i] += 1
            done += 1

    pids = tree_pids(a.server_pid)
    cpu0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    if a.callers == 1 and a.calls:
        caller(0, a.calls)
    else:
        ts = [threading.Thread(target=caller, args=(i, 0)) for i in range(a.callers)]
        for t in ts:
            t.start()
        time.sleep(a.duration)
        stop.set()
        for t in ts:
            t.join()
    secs = time.perf_counter() - t0
    cpu1 = cpu_seconds(pids)
    channel.close()

    allns = [x for l in lat for x in l]
    calls = len(allns)
    print(json.dumps({
        "client": "python-grpcio", "callers": a.callers, "calls": calls, "errors": sum(errors),
        "seconds": secs, "callsPerSec": calls / secs,
        "p50us": percentile(allns, 50) / 1e3, "p90us": percentile(allns, 90) / 1e3,
        "p99us": percentile(allns, 99) / 1e3, "maxus": max(allns) / 1e3,
        "serverCpuSec": cpu1 - cpu0, "serverCpuPerCallUs": (cpu1 - cpu0) / calls * 1e6,
    }))


if __name__ == "__main__":
    main()
