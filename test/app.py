"""A tiny WSGI application for test/test_gunicorn.py (gunicorn --chdir test app:application).

Every answer says which generation and which worker served it:

    gen=N pid=P

N is HUPWATCH_GENERATION (the generation hupwatch started this gunicorn as), P the pid of the gunicorn
worker. The format is the one test/child --serve uses, so the harness's Load client counts generations
of both the same way.
"""

import os


def application(environ, start_response):
    body = ("gen=%s pid=%d\n" % (os.environ.get("HUPWATCH_GENERATION", "?"), os.getpid())).encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
