"""ASGI app of the gunicorn + uvicorn recipe (test/test_recipes.py): 'version=V gen=G pid=P'.

V is the file VERSION in the release directory (this file's real directory), G the generation hupwatch
started (HUPWATCH_GENERATION).
"""

import os

HERE = os.path.dirname(os.path.realpath(__file__))
with open(os.path.join(HERE, "VERSION")) as f:
    VERSION = f.read().strip()
GEN = os.environ.get("HUPWATCH_GENERATION", "?")


async def app(scope, receive, send):
    if scope["type"] != "http":     # lifespan: nothing to set up
        return
    body = ("version=%s gen=%s pid=%d\n" % (VERSION, GEN, os.getpid())).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-generation", GEN.encode())]})
    await send({"type": "http.response.body", "body": body})
