"""WSGI app of the uWSGI and nginx recipes (test/test_recipes.py): 'version=V gen=G pid=P'.

V is the file VERSION in the release directory (this file's real directory), G the generation hupwatch
started (HUPWATCH_GENERATION), also sent as the X-Generation header for readiness probes.
"""

import os

HERE = os.path.dirname(os.path.realpath(__file__))
with open(os.path.join(HERE, "VERSION")) as f:
    VERSION = f.read().strip()
GEN = os.environ.get("HUPWATCH_GENERATION", "?")


def application(environ, start_response):
    body = ("version=%s gen=%s pid=%d\n" % (VERSION, GEN, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Generation", GEN)])
    return [body]
