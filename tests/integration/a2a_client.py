"""gRPC client side of the A2A tests: Python stubs generated at test time from the repo's
protos with Debian's protoc + grpc_python_plugin (the same gRPC release as python3-grpcio),
so the client is written from the wire contract, not from pard's code."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

from pardtest import SOURCE_DIR

PROTOS = ("pixell/agent.proto", "grpc/health/v1/health.proto")
PLUGIN = os.environ.get("GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")

_stubs = None


def _generate():
    out = tempfile.mkdtemp(prefix="par-a2a-stubs-")
    atexit.register(shutil.rmtree, out, True)
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out=" + out, "--grpc_out=" + out,
                    "--plugin=protoc-gen-grpc=" + PLUGIN] + list(PROTOS),
                   check=True, capture_output=True)
    # pixell/ imports as a package from `out`. grpc/ cannot (it is grpcio's name), so the
    # health modules are copied to top-level names, their one import pointed at ours.
    open(os.path.join(out, "pixell", "__init__.py"), "a").close()
    sys.path.insert(0, out)
    import pixell.agent_pb2 as agent_pb2
    import pixell.agent_pb2_grpc as agent_grpc

    hdir = os.path.join(out, "grpc", "health", "v1")
    with open(os.path.join(hdir, "health_pb2_grpc.py")) as f:
        src = f.read().replace("from grpc.health.v1 import health_pb2 as",
                               "import par_health_pb2 as")
    with open(os.path.join(out, "par_health_pb2_grpc.py"), "w") as f:
        f.write(src)
    shutil.copy(os.path.join(hdir, "health_pb2.py"), os.path.join(out, "par_health_pb2.py"))
    shutil.rmtree(os.path.join(out, "grpc"))
    import par_health_pb2 as health_pb2
    import par_health_pb2_grpc as health_grpc
    return agent_pb2, agent_grpc, health_pb2, health_grpc


def stubs():
    """(agent_pb2, agent_pb2_grpc, health_pb2, health_pb2_grpc), generated once per run."""
    global _stubs
    if _stubs is None:
        _stubs = _generate()
    return _stubs


class Client:
    """One channel to pard's A2A port with both services' stubs."""

    def __init__(self, port, options=None):
        self.agent_pb2, agent_grpc, self.health_pb2, health_grpc = stubs()
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % port, options=options or [])
        self.agent = agent_grpc.AgentServiceStub(self.channel)
        self.health = health_grpc.HealthStub(self.channel)

    def close(self):
        self.channel.close()

    def raw(self, method):
        """A unary method with identity (de)serializers: bytes in, bytes out."""
        return self.channel.unary_unary(method, request_serializer=None,
                                        response_deserializer=None)

    def empty(self):
        return self.agent_pb2.Empty()

    def invoke(self, action, params=None, request_id="", timeout=10, **kw):
        req = self.agent_pb2.ActionRequest(action=action, parameters=params or {},
                                           request_id=request_id)
        return self.agent.Invoke(req, timeout=timeout, **kw)

    def check(self, service="", timeout=5):
        return self.health.Check(self.health_pb2.HealthCheckRequest(service=service),
                                 timeout=timeout)

    def status_name(self, status):
        return self.health_pb2.HealthCheckResponse.ServingStatus.Name(status)
