"""A local moto server (SQS, Secrets Manager, ...) on a free loopback port, in this process.

`MotoServer` starts and stops one server (also as a context manager); `shared_moto_server()`
starts one for the whole test session on first use and stops it when the process exits, so
every test module that needs AWS shares a single server. Tests keep out of each other's way by
naming their queues and secrets uniquely, not by resetting the server.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from types import TracebackType

from moto.server import ThreadedMotoServer

__all__ = ["MotoServer", "shared_moto_server"]


class MotoServer:
    """One ThreadedMotoServer on 127.0.0.1 and an OS-chosen port."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._url: str | None = None
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        """The endpoint URL, `http://127.0.0.1:<port>`."""
        if self._url is None:
            raise RuntimeError("The moto server is not running.")
        return self._url

    def start(self) -> str:
        if self._server is not None:
            return self.url
        # One access-log line per request on stderr drowns the test output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        started = time.perf_counter()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._url = f"http://{host}:{port}"
        self.start_seconds = time.perf_counter() - started
        return self._url

    def stop(self) -> None:
        server, self._server, self._url = self._server, None, None
        if server is None:
            return
        server.stop()
        # ThreadedMotoServer.stop() ends serve_forever() but leaves the listening socket open:
        # close it, or the port keeps accepting connections that nobody answers.
        wsgi = getattr(server, "_server", None)
        if wsgi is not None:
            wsgi.server_close()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


_shared: MotoServer | None = None
_shared_lock = threading.Lock()


def shared_moto_server() -> MotoServer:
    """The session's server, started on first call and stopped at interpreter exit."""
    global _shared  # one server per process, on purpose
    with _shared_lock:
        if _shared is None:
            server = MotoServer()
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared
