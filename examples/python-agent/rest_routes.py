"""python-agent's REST routes: mount(app) adds /api/... routes to the worker's FastAPI app."""

import sys
import time

from importlib import metadata

from fastapi import HTTPException, Request

STARTED = time.time()
OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


async def _json_object(request):
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="the body must be JSON")
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="the body must be a JSON object")
    return body


def mount(app):
    @app.get("/api/status")
    async def status():
        uptime = round(time.time() - STARTED, 3)
        return {"status": "ok", "agent": "python-agent", "uptime_s": uptime}

    @app.post("/api/process")
    async def process(request: Request):
        body = await _json_object(request)
        text = body.get("text", "")
        if not isinstance(text, str):
            raise HTTPException(status_code=400, detail="\"text\" must be a string")
        return {"received": body, "word_count": len(text.split())}

    @app.post("/api/calculate")
    async def calculate(request: Request):
        body = await _json_object(request)
        op = body.get("op")
        if op not in OPS:
            raise HTTPException(status_code=400, detail="\"op\" must be one of add, sub, mul, div")
        a, b = body.get("a"), body.get("b")
        for name, value in (("a", a), ("b", b)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HTTPException(status_code=400, detail="\"%s\" must be a number" % name)
        if op == "div" and b == 0:
            raise HTTPException(status_code=400, detail="division by zero")
        return {"op": op, "a": a, "b": b, "result": OPS[op](a, b)}

    @app.get("/api/requirement/{name}")
    async def requirement(name: str):
        # Proves which environment serves the agent: the package's requirements venv, or not.
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise HTTPException(status_code=404, detail="%s is not installed" % name)
        return {"name": name, "version": version}

    @app.get("/api/runtime")
    async def runtime():
        return {"executable": sys.executable, "prefix": sys.prefix}
