"""Drain under load: 16 REST and 16 gRPC callers keep slow requests in flight against the
slow-agent; once all 32 are in flight this process sends pard SIGTERM itself (so the moment is
known exactly) and keeps calling until refused. Prints one JSON line: every request sent before
the signal must have succeeded; what was sent after may be refused (pard stopped accepting)."""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import grpc  # noqa: E402

import a2a_client  # noqa: E402

# time.perf_counter is CLOCK_MONOTONIC on Linux: the same clock the harness stamps pard's exit with.
clock = time.perf_counter


class RestCaller:
    """Keep-alive HTTP/1.1 GETs of /api/slow on one connection, reconnecting when pard says close."""

    def __init__(self, port, ms):
        self.port, self.ms, self.sock = port, ms, None

    def call(self):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.sock.sendall(b"GET /api/slow?ms=%d HTTP/1.1\r\nHost: bench\r\n\r\n" % self.ms)
        f = self.sock.makefile("rb")
        status_line = f.readline()
        if not status_line:
            raise ConnectionError("closed without a response")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
            elif k.strip().lower() == "connection" and v.strip().lower() == "close":
                close = True
        body = f.read(length)
        f.close()
        if close:
            self.sock.close()
            self.sock = None
        if status != 200 or b'"slept"' not in body:
            raise RuntimeError("status %d %r" % (status, body[:100]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rest-port", type=int, required=True)
    ap.add_argument("--a2a-port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--rest", type=int, default=16)
    ap.add_argument("--grpc", type=int, default=16)
    ap.add_argument("--ms", type=int, default=400, help="how long each slow request takes")
    ap.add_argument("--load-sec", type=float, default=1.0, help="load before the signal")
    a = ap.parse_args()

    pb2, grpc_mod, _, _ = a2a_client.stubs()
    channel = grpc.insecure_channel("127.0.0.1:%d" % a.a2a_port)
    stub = grpc_mod.AgentServiceStub(channel)
    grpc.channel_ready_future(channel).result(timeout=10)

    n = a.rest + a.grpc
    records = []            # (surface, sent, done, ok, detail)
    lock = threading.Lock()
    in_flight = [None] * n  # send time of each caller's outstanding request
    gone = threading.Event()
    t_sig = [None]

    def run(i):
        rest = i < a.rest
        rc = RestCaller(a.rest_port, a.ms) if rest else None
        req = pb2.ActionRequest(action="slow", parameters={"ms": str(a.ms)}, request_id="drain-%d" % i)
        while not gone.is_set():
            sent = clock()
            in_flight[i] = sent
            ok, detail = True, ""
            try:
                if rest:
                    rc.call()
                else:
                    r = stub.Invoke(req, timeout=60)
                    if not r.success:
                        ok, detail = False, "in-band: " + r.error
            except grpc.RpcError as e:
                ok, detail = False, "%s %s" % (e.code().name, e.details())
            except (OSError, RuntimeError, ValueError) as e:
                ok, detail = False, "%s: %s" % (type(e).__name__, e)
                if rc.sock is not None:
                    rc.sock.close()
                    rc.sock = None
            done = clock()
            in_flight[i] = None
            with lock:
                records.append(("rest" if rest else "grpc", sent, done, ok, detail))
            if not ok and t_sig[0] is not None:
                return   # refused after the signal: pard is going away, as it should
        if rc and rc.sock:
            rc.sock.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(a.load_sec)
    # Signal only when every caller has a request in flight that left well before (its bytes
    # have reached pard, so "sent before SIGTERM" means "accepted before SIGTERM").
    deadline = clock() + 10
    while True:
        now = clock()
        snap = list(in_flight)
        if all(s is not None and now - s > 0.02 for s in snap) or now > deadline:
            break
        time.sleep(0.001)
    t_sig[0] = clock()
    os.kill(a.pid, signal.SIGTERM)
    in_flight_at_signal = sum(1 for s in snap if s is not None)

    # pard exits once everything drained; then the callers' next calls fail and they stop.
    for t in threads:
        t.join(60)
    gone.set()
    channel.close()

    before = [r for r in records if r[1] < t_sig[0]]
    after = [r for r in records if r[1] >= t_sig[0]]
    straddling = [r for r in before if r[2] >= t_sig[0]]
    print(json.dumps({
        "signalAt": t_sig[0],
        "inFlightAtSignal": in_flight_at_signal,
        "sentBefore": len(before),
        "failedBefore": sum(1 for r in before if not r[3]),
        "failures": [r[4] for r in before if not r[3]][:10],
        "straddlingOk": sum(1 for r in straddling if r[3]),
        "straddling": len(straddling),
        "lastInFlightDone": max((r[2] for r in straddling), default=t_sig[0]),
        "sentAfter": len(after),
        "servedAfter": sum(1 for r in after if r[3]),
        "refusedAfter": sorted(set(r[4].split(":")[0][:40] for r in after if not r[3])),
    }))


if __name__ == "__main__":
    main()
