"""A tiny WSGI application for hupwatch's end-to-end tests (gunicorn app:application).

Every answer names what served it, so a test can tell releases and generations apart:

    release=R gen=N pid=P

R is the content of the file RELEASE next to this module (each release directory of a deploy test holds
its own copy), or the name of the directory this module lives in; N is HUPWATCH_GENERATION, P the pid
of the gunicorn worker.

Knobs, read once when the module is imported (with gunicorn --preload that is in the master, before
it tells hupwatch READY=1; without it, in each worker), so a deploy test can build broken releases out
of the same file:

    E2E_APP_BROKEN  file next to this module: if it exists, importing fails (the release's app is broken)
    E2E_APP_HANG    file next to this module: if it exists, importing hangs (the release never comes up)
    E2E_APP_SLOW    file holding N: importing takes N seconds (a slow boot)
    E2E_APP_HEALTH  file holding a status: what GET /health answers (else 200, like every path)
    E2E_APP_CRASH   file holding N: N seconds after the generation's first 2xx to /health (hupwatch's
                    --ready-http check), the generation ends, by a stop of its own that loses no
                    request: after answering a /health request, a gunicorn worker exits 3 (the arbiter
                    then halts, stops its other workers gracefully and exits 3); under uWSGI the worker
                    sends SIGTERM to its master (the graceful stop of the uWSGI recipe's hook)
"""

import os
import signal
import sys
import time

# Physical directory: gunicorn imports us through $PWD, which may be a `current` symlink.
HERE = os.path.dirname(os.path.realpath(__file__))

if os.path.exists(os.path.join(HERE, "E2E_APP_BROKEN")):
    raise ImportError("e2e_app: this release is broken on purpose (E2E_APP_BROKEN exists)")

if os.path.exists(os.path.join(HERE, "E2E_APP_HANG")):
    while True:  # never ready: hupwatch's --ready-timeout has to stop us
        time.sleep(3600)


def _knob(name, default=None):
    try:
        with open(os.path.join(HERE, name)) as f:
            return f.read().strip()
    except OSError:
        return default


if _knob("E2E_APP_SLOW"):
    time.sleep(float(_knob("E2E_APP_SLOW")))

HEALTH = int(_knob("E2E_APP_HEALTH", "200"))
CRASH = float(_knob("E2E_APP_CRASH", "-1"))


def _release():
    try:
        with open(os.path.join(HERE, "RELEASE")) as f:
            return f.read().strip() or os.path.basename(HERE)
    except OSError:
        return os.path.basename(HERE)


RELEASE = _release()
GENERATION = os.environ.get("HUPWATCH_GENERATION", "?")


_crashing = False


def _crash_due():
    """E2E_APP_CRASH: True once CRASH seconds have passed since this generation's first healthy
    /health answer (the workers share the moment through a file in the release directory)."""
    path = os.path.join(HERE, "crash-at.gen%s" % GENERATION)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            with open(path) as f:
                at = float(f.read() or "inf")
        except (OSError, ValueError):
            return False
        return time.time() >= at
    os.write(fd, ("%f" % (time.time() + CRASH)).encode())
    os.close(fd)
    return False


class _Body(list):
    """The answer to /health; close() runs once it has been sent."""

    def close(self):
        global _crashing
        if CRASH < 0 or _crashing or not _crash_due():
            return
        _crashing = True
        if "uwsgi" in sys.modules:
            os.kill(os.getppid(), signal.SIGTERM)
        else:
            os._exit(3)


def application(environ, start_response):
    body = "release=%s gen=%s pid=%d\n" % (RELEASE, GENERATION, os.getpid())
    body = body.encode("ascii")
    status = "200 OK"
    health = environ.get("PATH_INFO") == "/health"
    if health and HEALTH != 200:
        status = "%d Not Healthy" % HEALTH
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return _Body([body]) if health and HEALTH // 100 == 2 else [body]
