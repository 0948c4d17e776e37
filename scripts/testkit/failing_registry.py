"""A registry that answers every request with 500: a push that always fails, for tests and benches."""

from __future__ import annotations

import http.server
import threading


class FailingRegistry(http.server.ThreadingHTTPServer):
    """Answers every request with 500, counting them; ``first`` is set by the first."""

    def __init__(self) -> None:
        self.requests = 0
        self.first = threading.Event()
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests += 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                registry.first.set()

            do_HEAD = do_PUT = do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
