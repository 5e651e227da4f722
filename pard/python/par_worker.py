#!/usr/bin/env python3
"""The Python worker pard runs for Pixell Python agent packages (SPEC §4.3).

It serves pard's exec contract (SPEC §4.2) over HTTP/1.1 on the Unix socket named by
PAR_WORKER_SOCKET: GET /ping, GET /capabilities, POST /invoke, and the package's /api/... routes.
The manifest's `entrypoint` is the "default" action, `a2a.service` supplies the named actions,
and `rest.entry` is mounted on a FastAPI app served by uvicorn. Without a REST entry the worker
needs only the standard library and starts in well under a tenth of a second.

    PAR_WORKER_SOCKET=SOCK python -u par_worker.py --root DIR [--entrypoint MOD:FN]
        [--a2a-service MOD:FN] [--rest-entry MOD[:FN]]

Every fatal error ends with one summary line on stderr, starting "par-worker: ", and exit
status 3: pard quotes the last stderr line in its load error. Runs on Python >= 3.8.
"""

import argparse
import base64
import collections
import collections.abc
import datetime
import enum
import importlib
import json
import math
import os
import signal
import stat
import sys
import threading
import time
import traceback

EXIT_FATAL = 3
# How long in-flight requests may run on after SIGTERM before the worker leaves anyway; pard
# drains its own callers before it signals, and SIGKILLs the group after its own grace.
SHUTDOWN_GRACE_S = 5.0
# Request bodies past this are refused: pard never sends more than its own caps.
MAX_BODY = 256 * 1024 * 1024
# pard's limits on what /capabilities may list (pard/worker.c).
MAX_ACTIONS = 1024
MAX_ACTION_LEN = 256
NO_REST = "this agent declares no rest entry"


# ---- messages -------------------------------------------------------------------------------

def _one_line(text):
    """Collapses a message to one line, so the summary line stays the last stderr line."""
    return " ".join(str(text).split())


def _exc_text(e):
    msg = _one_line(e)
    return "%s: %s" % (type(e).__name__, msg) if msg else type(e).__name__


def warn(msg):
    sys.stderr.write("par-worker: %s\n" % _one_line(msg))
    sys.stderr.flush()


def fatal(msg, with_traceback=False):
    """Ends the worker during load. os._exit: no agent thread or atexit hook can keep it alive
    or print after the summary line."""
    try:
        if with_traceback:
            traceback.print_exc()
        sys.stderr.write("par-worker: %s\n" % _one_line(msg))
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(EXIT_FATAL)


def leave(status=0):
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


class _ArgParser(argparse.ArgumentParser):
    # argparse exits 2 with a usage text; pard wants exit 3 and one summary line.
    def error(self, message):
        fatal("bad arguments: %s (usage: par_worker.py --root DIR [--entrypoint MOD:FN] "
              "[--a2a-service MOD:FN] [--rest-entry MOD[:FN]])" % message)


# ---- environment ----------------------------------------------------------------------------

def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    # Unquoted: " #" starts a comment, as python-dotenv reads it.
    cut = value.find(" #")
    return value[:cut].rstrip() if cut >= 0 else value


def load_dotenv(path):
    """KEY=VALUE lines into os.environ, never over a variable already set. Names and values
    are never printed: .env files hold secrets."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return
    except OSError as e:
        warn(".env: cannot read it (%s); ignoring it" % e.strerror)
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        warn(".env: not UTF-8; ignoring it")
        return
    loaded = 0
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not (key[0].isalpha() or key[0] == "_") or \
                not all(c.isalnum() or c in "_." for c in key):
            warn(".env line %d is not KEY=VALUE; skipped" % n)
            continue
        if key in os.environ:
            continue
        os.environ[key] = _unquote(value)
        loaded += 1
    if loaded:
        warn(".env: %d variable%s set" % (loaded, "" if loaded == 1 else "s"))


# ---- loading the package's code -------------------------------------------------------------

def _valid_dotted(name):
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def load_callable(key, spec, default_function=None):
    """`module:function` of the manifest's `key` → the callable. Any failure is fatal, and its
    summary names the manifest key and value."""
    where = "%s %s" % (key, spec)
    mod_name, sep, fn_name = spec.strip().partition(":")
    mod_name, fn_name = mod_name.strip(), fn_name.strip()
    if not sep and default_function:
        fn_name = default_function
    if not _valid_dotted(mod_name) or not _valid_dotted(fn_name):
        fatal("%s: expected module:function%s" %
              (where, "" if default_function is None else " or module"))
    try:
        module = importlib.import_module(mod_name)
    except (Exception, SystemExit) as e:
        # The module itself missing needs no traceback; an error inside it does.
        own = isinstance(e, ImportError) and getattr(e, "name", None) == mod_name
        hint = ""
        if isinstance(e, ImportError) and not own and getattr(e, "name", None):
            hint = " (is it in the package's requirements.txt?)"
        fatal("%s: cannot import module %s: %s%s" % (where, mod_name, _exc_text(e), hint),
              with_traceback=not own)
    obj = module
    for part in fn_name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            fatal("%s: module %s has no function %s" % (where, mod_name, fn_name))
        except Exception as e:
            fatal("%s: cannot read %s.%s: %s" % (where, mod_name, fn_name, _exc_text(e)),
                  with_traceback=True)
    if not callable(obj):
        fatal("%s: %s.%s is %s, not a function" % (where, mod_name, fn_name, _describe(obj)))
    return obj


def _check_action_name(where, name):
    if not isinstance(name, str):
        fatal("%s: custom_handlers has a key %r that is not a string" % (where, name))
    if not name or len(name) > MAX_ACTION_LEN or any(ord(c) < 32 or ord(c) == 127 for c in name):
        fatal("%s: custom handler name %s is not an action name (1-%d characters, no control "
              "characters)" % (where, json.dumps(name), MAX_ACTION_LEN))


def load_custom_handlers(spec, run_awaitable):
    """Calls the a2a.service factory; its result's custom_handlers (attribute or key) maps
    action names to functions."""
    where = "a2a.service %s" % spec
    factory = load_callable("a2a.service", spec)
    try:
        service = factory()
        if isawaitable(service):
            service = run_awaitable(service)
    except (Exception, SystemExit) as e:
        fatal("%s: calling it failed: %s" % (where, _exc_text(e)), with_traceback=True)
    if isinstance(service, collections.abc.Mapping) and "custom_handlers" in service:
        handlers = service["custom_handlers"]
    elif hasattr(service, "custom_handlers"):
        handlers = getattr(service, "custom_handlers")
    else:
        fatal("%s: it returned %s, which has no custom_handlers (an attribute or key mapping "
              "action names to functions)" % (where, _describe(service)))
    if handlers is None:
        handlers = {}
    if not isinstance(handlers, collections.abc.Mapping):
        fatal("%s: custom_handlers is %s, not a mapping of action names to functions" %
              (where, _describe(handlers)))
    out = collections.OrderedDict()
    for name, fn in handlers.items():
        _check_action_name(where, name)
        if not callable(fn):
            fatal("%s: custom handler %s is %s, not a function" %
                  (where, json.dumps(name), _describe(fn)))
        out[name] = fn
    return out


def _a(type_name):
    return ("an " if type_name[:1].lower() in "aeiou" else "a ") + type_name


def isawaitable(obj):
    # What inspect.isawaitable says for everything but legacy generator-based coroutines;
    # inspect and asyncio cost tens of milliseconds to import, so the worker loads them
    # only when an agent has something to await.
    return isinstance(obj, collections.abc.Awaitable)


def _describe(obj):
    return "None" if obj is None else _a(type(obj).__name__)


# ---- results as JSON ------------------------------------------------------------------------

def _is_pydantic(obj):
    return any(c.__name__ == "BaseModel" and c.__module__.split(".")[0] == "pydantic"
               for c in type(obj).__mro__)


def _key(k):
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, (bool, int, float)):
        return json.dumps(k)  # as json.dumps would write it: 1, true, null
    return str(k)


def to_jsonable(obj, _seen=None):
    """Any handler result → plain JSON values (SPEC §12.12: never a language-specific repr).
    Non-finite floats become null: NaN and Infinity are not JSON."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if _seen is None:
        _seen = set()
    if id(obj) in _seen:
        return "<cycle>"
    _seen.add(id(obj))
    try:
        if isinstance(obj, collections.abc.Mapping):
            return {_key(k): to_jsonable(v, _seen) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, collections.deque)):
            return [to_jsonable(v, _seen) for v in obj]
        if isinstance(obj, (set, frozenset)):
            try:
                items = sorted(obj)
            except TypeError:
                items = list(obj)
            return [to_jsonable(v, _seen) for v in items]
        if isinstance(obj, (bytes, bytearray, memoryview)):
            data = bytes(obj)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return base64.b64encode(data).decode("ascii")
        if _is_pydantic(obj):
            dump = getattr(obj, "model_dump", None) or getattr(obj, "dict")
            return to_jsonable(dump(), _seen)
        if hasattr(type(obj), "__dataclass_fields__"):  # a dataclass instance
            import dataclasses
            return {f.name: to_jsonable(getattr(obj, f.name), _seen)
                    for f in dataclasses.fields(obj)}
        if isinstance(obj, enum.Enum):
            return to_jsonable(obj.value, _seen)
        if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
            return obj.isoformat()
        return str(obj)
    finally:
        _seen.discard(id(obj))


def dumps(obj):
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8; \u escapes can.
        return json.dumps(obj, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


# ---- the agent: actions and invocations -----------------------------------------------------

class BadRequest(Exception):
    pass


def parse_invoke(body):
    """The /invoke body → (action, parameters, request_id); BadRequest for a 400."""
    try:
        req = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest("the request body is not JSON: %s" % _one_line(e))
    if not isinstance(req, dict):
        raise BadRequest("the request body must be a JSON object")
    action = req.get("action")
    if not isinstance(action, str):
        raise BadRequest("\"action\" must be a string")
    params = req.get("parameters")
    if params is None:
        params = {}
    rid = req.get("request_id")
    return action, params, rid if isinstance(rid, str) else ""


def failure(error):
    return {"success": False, "result": None, "error": error}


async def _guarded(awaitable):
    """Awaits in an event loop, catching what a handler raises here rather than in the loop:
    asyncio re-raises SystemExit out of the loop itself."""
    try:
        result = await awaitable
        while isawaitable(result):
            result = await result
        return True, result, None
    except (Exception, SystemExit) as e:
        return False, e, traceback.format_exc()


class Agent(object):
    def __init__(self, entrypoint, custom):
        self.handlers = collections.OrderedDict()
        if entrypoint is not None:
            if "default" in custom:
                warn("a2a.service has a custom handler named \"default\"; the entrypoint "
                     "serves action \"default\"")
            self.handlers["default"] = entrypoint
        for name, fn in custom.items():
            self.handlers.setdefault(name, fn)
        names = sorted(n for n in custom if n != "default" or entrypoint is None)
        self.actions = names + (["default"] if entrypoint is not None else [])
        if len(self.actions) > MAX_ACTIONS:
            fatal("a2a.service: %d actions; pard takes at most %d" %
                  (len(self.actions), MAX_ACTIONS))
        # No entrypoint: the first handler the service defined is the default.
        self.default = "default" if "default" in self.handlers else next(iter(custom), None)

    def capabilities(self):
        caps = {"actions": self.actions}
        if self.default is not None:
            caps["default"] = self.default
        return caps

    def lookup(self, action):
        fn = self.handlers.get(action)
        if fn is None and action in ("", "default") and self.default is not None:
            fn = self.handlers[self.default]
        return fn

    def envelope(self, action, rid, ok, value, tb):
        if not ok:
            sys.stderr.write("par-worker: action %s (request %s) failed:\n%s" %
                             (json.dumps(action), rid or "-", tb))
            sys.stderr.flush()
            return failure(_exc_text(value))
        try:
            return {"success": True, "result": to_jsonable(value), "error": None}
        except Exception as e:
            return failure("the result of action %s is not convertible to JSON: %s" %
                           (action, _exc_text(e)))


# ---- the standard-library server (no REST entry) --------------------------------------------

def serve_stdlib(agent, sock_path, loop_runner):
    import http.server
    import socketserver

    active = [0]
    active_lock = threading.Lock()

    def invoke(fn, params):
        try:
            result = fn(params)  # an async handler's coroutine is awaited below
        except (Exception, SystemExit) as e:
            return False, e, traceback.format_exc()
        if isawaitable(result):
            return loop_runner.run(result)
        return True, result, None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: pard's libcurl reuses connections

        def version_string(self):
            return "par-worker"

        def log_message(self, fmt, *args):
            pass

        def log_error(self, fmt, *args):
            warn("http: " + (fmt % args))

        def address_string(self):
            return "pard"  # a Unix socket peer has no address

        def _read_body(self):
            """The request body; None when the connection cannot go on (answered already)."""
            te = self.headers.get("Transfer-Encoding")
            if te is not None:
                if te.strip().lower() != "chunked":
                    self._send(501, failure("Transfer-Encoding %s is not supported" % te),
                               close=True)
                    return None
                return self._read_chunked()
            cl = self.headers.get("Content-Length")
            if cl is None:
                return b""
            try:
                n = int(cl)
                if n < 0:
                    raise ValueError
            except ValueError:
                self._send(400, failure("bad Content-Length"), close=True)
                return None
            if n > MAX_BODY:
                self._send(413, failure("request body over %d MiB" % (MAX_BODY >> 20)),
                           close=True)
                return None
            data = self.rfile.read(n)
            if len(data) != n:
                self.close_connection = True
                return None
            return data

        def _read_chunked(self):
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._send(400, failure("bad chunked body"), close=True)
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    self._send(413, failure("request body over %d MiB" % (MAX_BODY >> 20)),
                               close=True)
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)

        def _send(self, status, obj, close=False, headers=()):
            body = dumps(obj)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            if close:
                self.send_header("Connection", "close")  # also sets close_connection
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _dispatch(self):
            with active_lock:
                active[0] += 1
            try:
                self._route()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                with active_lock:
                    active[0] -= 1

        def _route(self):
            body = self._read_body()
            if body is None:
                return
            path = self.path.split("?", 1)[0]
            method = self.command
            if path == "/api" or path.startswith("/api/"):
                self._send(404, {"error": NO_REST})
            elif path == "/ping":
                if method in ("GET", "HEAD"):
                    self._send(200, {"status": "ok"})
                else:
                    self._send(405, {"error": "use GET"}, headers=[("Allow", "GET, HEAD")])
            elif path == "/capabilities":
                if method in ("GET", "HEAD"):
                    self._send(200, agent.capabilities())
                else:
                    self._send(405, {"error": "use GET"}, headers=[("Allow", "GET, HEAD")])
            elif path == "/invoke":
                if method != "POST":
                    self._send(405, {"error": "use POST"}, headers=[("Allow", "POST")])
                    return
                try:
                    action, params, rid = parse_invoke(body)
                except BadRequest as e:
                    self._send(400, failure(str(e)))
                    return
                fn = agent.lookup(action)
                if fn is None:
                    self._send(200, failure("No handler found for action: %s" % action))
                    return
                ok, value, tb = invoke(fn, params)
                self._send(200, agent.envelope(action, rid, ok, value, tb))
            else:
                self._send(404, {"error": "not found"})

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True  # idle keep-alive connections must not hold up the exit
        block_on_close = False
        request_queue_size = 128

    unlink_stale(sock_path)
    try:
        server = Server(sock_path, Handler)
    except OSError as e:
        fatal("cannot listen on PAR_WORKER_SOCKET %s: %s" % (sock_path, e.strerror or e))

    stopping = threading.Event()

    def on_signal(signum, frame):
        if stopping.is_set():
            leave(0)  # a second signal: no more waiting
        stopping.set()
        # shutdown() waits for serve_forever to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announce(agent, sock_path, None)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        unlink_quietly(sock_path)
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    while active[0] > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    leave(0)


class LoopRunner(object):
    """One asyncio event loop on a background thread, for async handlers called from the
    stdlib server's request threads; started by the first thing to await."""

    def __init__(self):
        self.lock = threading.Lock()
        self.loop = None

    def _start(self):
        with self.lock:
            if self.loop is None:
                import asyncio
                loop = asyncio.new_event_loop()

                def run():
                    asyncio.set_event_loop(loop)
                    loop.run_forever()
                threading.Thread(target=run, name="par-worker-asyncio", daemon=True).start()
                self.loop = loop
        return self.loop

    def run(self, awaitable):
        """→ (ok, result or exception, traceback text)."""
        import asyncio
        loop = self.loop or self._start()
        return asyncio.run_coroutine_threadsafe(_guarded(awaitable), loop).result()

    def run_or_raise(self, awaitable):
        ok, value, tb = self.run(awaitable)
        if not ok:
            sys.stderr.write(tb)
            raise value
        return value


# ---- the FastAPI server (REST entry declared) -----------------------------------------------

def import_rest_stack(rest_spec):
    try:
        importlib.import_module("fastapi")
        importlib.import_module("uvicorn")
    except (Exception, SystemExit) as e:
        missing = isinstance(e, ImportError) and getattr(e, "name", None) in ("fastapi",
                                                                               "uvicorn")
        fatal("rest.entry %s needs FastAPI and uvicorn, which are not importable by %s: %s "
              "(put fastapi and uvicorn in requirements.txt, or set "
              "PAR_PYTHON_SYSTEM_SITE_PACKAGES=1 where the image provides them)" %
              (rest_spec, sys.executable, _one_line(e) if missing else _exc_text(e)),
              with_traceback=not missing)


def serve_fastapi(agent, sock_path, rest_spec, mount):
    import fastapi
    import uvicorn
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from inspect import iscoroutinefunction

    def answer(status, obj, headers=None):
        return Response(content=dumps(obj), status_code=status, media_type="application/json",
                        headers=headers)

    async def ping(request):
        return answer(200, {"status": "ok"})

    async def capabilities(request):
        return answer(200, agent.capabilities())

    async def invoke(request):
        try:
            action, params, rid = parse_invoke(await request.body())
        except BadRequest as e:
            return answer(400, failure(str(e)))
        fn = agent.lookup(action)
        if fn is None:
            return answer(200, failure("No handler found for action: %s" % action))
        if iscoroutinefunction(fn):
            ok, value, tb = await _guarded(fn(params))
        else:
            try:
                value = await run_in_threadpool(fn, params)
                ok, tb = True, None
            except (Exception, SystemExit) as e:
                ok, value, tb = False, e, traceback.format_exc()
            if ok and isawaitable(value):
                ok, value, tb = await _guarded(value)
        return answer(200, agent.envelope(action, rid, ok, value, tb))

    app = fastapi.FastAPI()
    # Ours go first, so no agent route can shadow them; plain Starlette routes skip FastAPI's
    # request validation and stay out of the agent's OpenAPI schema.
    app.add_route("/ping", ping, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route("/capabilities", capabilities, methods=["GET", "HEAD"],
                  include_in_schema=False)
    app.add_route("/invoke", invoke, methods=["POST"], include_in_schema=False)
    try:
        mounted = mount(app)
    except (Exception, SystemExit) as e:
        fatal("rest.entry %s: calling it failed: %s" % (rest_spec, _exc_text(e)),
              with_traceback=True)
    if isawaitable(mounted):
        if hasattr(mounted, "close"):
            mounted.close()
        fatal("rest.entry %s: the mount function is async; it must be a plain function that "
              "adds routes to the app it is given" % rest_spec)

    # lifespan "on": the agent's startup/shutdown hooks run, and a failing startup hook stops
    # the worker before it listens (uvicorn logs the traceback; the summary line follows).
    startup_error = []
    router_startup = app.router.startup

    async def startup():
        try:
            await router_startup()
        except BaseException as e:
            startup_error.append(e)
            raise
    app.router.startup = startup

    config = uvicorn.Config(app, uds=sock_path, log_level="warning", access_log=False,
                            lifespan="on")

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # uvicorn waits for open connections and requests without limit; bound the wait.
            if not self.should_exit:
                t = threading.Timer(SHUTDOWN_GRACE_S, lambda: (unlink_quietly(sock_path),
                                                               leave(0)))
                t.daemon = True
                t.start()
            super(Server, self).handle_exit(sig, frame)

        async def startup(self, sockets=None):
            await super(Server, self).startup(sockets)
            if self.started:
                announce(agent, sock_path, rest_spec)

    server = Server(config)
    unlink_stale(sock_path)
    try:
        server.run()
    except (Exception, SystemExit) as e:
        if isinstance(e, OSError):
            fatal("cannot listen on PAR_WORKER_SOCKET %s: %s" % (sock_path, e.strerror or e))
        fatal("rest.entry %s: the server failed: %s" % (rest_spec, _exc_text(e)),
              with_traceback=True)
    finally:
        unlink_quietly(sock_path)
    if not server.started:
        fatal("rest.entry %s: the app's startup failed: %s" % (
            rest_spec, _exc_text(startup_error[0]) if startup_error else "see the error above"))
    leave(0)


# ---- main -----------------------------------------------------------------------------------

def unlink_stale(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        fatal("cannot use PAR_WORKER_SOCKET %s: %s" % (path, e.strerror))
    if stat.S_ISDIR(st.st_mode):
        fatal("cannot use PAR_WORKER_SOCKET %s: it is a directory" % path)
    try:
        os.unlink(path)
    except OSError as e:
        fatal("cannot remove the stale PAR_WORKER_SOCKET %s: %s" % (path, e.strerror))


def unlink_quietly(path):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def announce(agent, sock_path, rest_spec):
    warn("ready on %s: actions %s (default %s)%s; Python %s at %s" % (
        sock_path, ", ".join(agent.actions) or "none", agent.default or "none",
        "; rest.entry %s" % rest_spec if rest_spec else "",
        ".".join(map(str, sys.version_info[:3])), sys.executable))


def watch_parent(sock_path):
    """An orphaned worker would hold its socket and threads forever: leave when pard goes."""
    parent = os.getppid()
    if parent == 1:
        return

    def run():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                warn("pard (pid %d) has gone; exiting" % parent)
                unlink_quietly(sock_path)
                leave(0)

    threading.Thread(target=run, name="par-worker-parent", daemon=True).start()


def main(argv=None):
    p = _ArgParser(prog="par_worker.py", add_help=True,
                   description="The Python worker pard runs for Pixell agent packages.")
    p.add_argument("--root", required=True, help="the package root")
    p.add_argument("--entrypoint", metavar="MOD:FN", help="manifest entrypoint")
    p.add_argument("--a2a-service", metavar="MOD:FN", help="manifest a2a.service")
    p.add_argument("--rest-entry", metavar="MOD[:FN]", help="manifest rest.entry")
    args = p.parse_args(argv)
    # Until a server installs its own handlers, a stop request during load is a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: leave(0))

    if sys.version_info < (3, 8):
        fatal("Python %s at %s is too old: the worker needs Python 3.8 or newer" %
              (".".join(map(str, sys.version_info[:3])), sys.executable))
    sock_path = os.environ.get("PAR_WORKER_SOCKET", "")
    if not sock_path:
        fatal("PAR_WORKER_SOCKET is not set: pard names the socket the worker listens on")
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        fatal("--root %s is not a directory" % args.root)

    # The package's modules come first; the worker's own directory holds nothing to import.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == here:
        sys.path[0] = root
    else:
        sys.path.insert(0, root)
    load_dotenv(os.path.join(root, ".env"))
    watch_parent(sock_path)

    rest_spec = args.rest_entry.strip() if args.rest_entry else None
    if rest_spec:
        import_rest_stack(rest_spec)  # first: the agent's own modules may import FastAPI
        loop_runner = None

        def run_awaitable(aw):
            import asyncio

            async def wait():
                return await aw
            return asyncio.run(wait())
    else:
        loop_runner = LoopRunner()
        run_awaitable = loop_runner.run_or_raise

    entrypoint = load_callable("entrypoint", args.entrypoint) if args.entrypoint else None
    custom = load_custom_handlers(args.a2a_service, run_awaitable) if args.a2a_service else {}
    agent = Agent(entrypoint, custom)

    if rest_spec:
        mount = load_callable("rest.entry", rest_spec, default_function="mount")
        serve_fastapi(agent, sock_path, rest_spec, mount)
    else:
        serve_stdlib(agent, sock_path, loop_runner)


if __name__ == "__main__":
    main()
