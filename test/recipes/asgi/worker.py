"""gunicorn worker of the gunicorn + uvicorn recipe (test/test_recipes.py): -k worker.DrainingUvicornWorker.

uvicorn (0.17.6, Debian 12) stops by closing its listening socket and then, at once, every connection
on which it has not read a request yet, as if it were an idle keep-alive. Under load that includes
connections it accepted a moment earlier, whose request is already in the socket buffer: closed with
unread data, they are reset (about one request per reload). This server waits 0.2 s between the two,
so those requests are read, answered and their connections closed after the answer.
"""

import asyncio
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn.workers import UvicornWorker


class DrainingServer(Server):
    async def shutdown(self, sockets=None):
        for server in self.servers:
            server.close()          # stop accepting; closing again below is harmless
        await asyncio.sleep(0.2)    # let the connections just accepted deliver their request
        await super().shutdown(sockets)


class DrainingUvicornWorker(UvicornWorker):
    async def _serve(self):         # UvicornWorker._serve, with DrainingServer
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
