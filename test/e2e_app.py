"""A tiny WSGI application for hupwatch's end-to-end tests (gunicorn app:application).

Every answer names what served it, so a test can tell releases and generations apart:

    release=R gen=N pid=P

R is the content of the file RELEASE next to this module (each release directory of a deploy test holds
its own copy), or the name of the directory this module lives in; N is HUPWATCH_GENERATION, P the pid
of the gunicorn worker.

Two knobs, read once when the module is imported (with gunicorn --preload that is in the master, before
it tells hupwatch READY=1), so a deploy test can build broken releases out of the same file:

    E2E_APP_BROKEN  file next to this module: if it exists, importing fails (the release's app is broken)
    E2E_APP_HANG    file next to this module: if it exists, importing hangs (the release never comes up)
"""

import os
import time

# Physical directory: gunicorn imports us through $PWD, which may be a `current` symlink.
HERE = os.path.dirname(os.path.realpath(__file__))

if os.path.exists(os.path.join(HERE, "E2E_APP_BROKEN")):
    raise ImportError("e2e_app: this release is broken on purpose (E2E_APP_BROKEN exists)")

if os.path.exists(os.path.join(HERE, "E2E_APP_HANG")):
    while True:  # never ready: hupwatch's --ready-timeout has to stop us
        time.sleep(3600)


def _release():
    try:
        with open(os.path.join(HERE, "RELEASE")) as f:
            return f.read().strip() or os.path.basename(HERE)
    except OSError:
        return os.path.basename(HERE)


RELEASE = _release()
GENERATION = os.environ.get("HUPWATCH_GENERATION", "?")


def application(environ, start_response):
    body = "release=%s gen=%s pid=%d\n" % (RELEASE, GENERATION, os.getpid())
    body = body.encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
