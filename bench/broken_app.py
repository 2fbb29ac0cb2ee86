"""A broken release for the hupwatch benchmark: the app fails to import.

bench/run.sh copies this file to releases/broken/app.py. It stands for the
classic bad deploy: a dependency the new code needs is not installed.
"""
import hupwatch_bench_module_that_does_not_exist  # noqa: F401  (ImportError on purpose)


def application(environ, start_response):  # never reached
    start_response("500 Internal Server Error", [])
    return [b""]
