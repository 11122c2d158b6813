"""An HTTP server on 127.0.0.1 served from its own daemon thread (the fakes' lifecycle)."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (nothing listens there: a closed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServingThread:
    """Serves `server` until stop(); `base_url` is its loopback root URL."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
