"""python-agent's A2A actions: create_grpc_server() hands pard's worker its custom handlers."""

import math
import sys


async def echo(params):
    return params


def _number(params, name):
    # A2A parameters are always strings; REST /invocations may send real numbers.
    if name not in params:
        raise ValueError("parameter %s is missing" % name)
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("parameter %s must be a number, not %r" % (name, value))
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(
                    "parameter %s must be a number, not %r" % (name, params[name])) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("parameter %s must be a finite number" % name)
    return value


async def add(params):
    return {"sum": _number(params, "a") + _number(params, "b")}


def info(params):
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "prefix": sys.prefix,
        "executable": sys.executable,
    }


class A2AService(object):
    """Stands in for the gRPC server a Pixell package builds: pard serves A2A itself and only
    needs the handlers."""

    def __init__(self, custom_handlers):
        self.custom_handlers = custom_handlers


def create_grpc_server():
    return A2AService({"echo": echo, "add": add, "info": info})
