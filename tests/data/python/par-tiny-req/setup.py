# A tiny local project the Python-agent tests build into a wheelhouse: a requirement that can
# only be installed from there, so finding it inside the agent proves the venv is in use.
from setuptools import setup

setup(name="par-tiny-req", version="1.2.3", py_modules=["par_tiny_req"])
