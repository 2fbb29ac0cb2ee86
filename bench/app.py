"""WSGI app for the hupwatch benchmark (bench/run.sh).

Deliberately trivial, so that what the benchmark measures is the reload, not
the app. The answer names the release directory, the hupwatch generation and
the worker pid, so a run can tell who served what.
"""
import os

RELEASE = os.path.basename(os.path.dirname(os.path.realpath(__file__)))


def application(environ, start_response):
    body = ("release=%s gen=%s pid=%d\n" % (
        RELEASE, os.environ.get("HUPWATCH_GENERATION", "-"), os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
