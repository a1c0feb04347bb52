"""A webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread of the test, which records every
request it gets and answers each with the next of the answers it was given (the last one repeats)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class Receiver:
    """`with Receiver(Answer(500), Answer(200)) as receiver:` ... `receiver.url`, `receiver.requests`.
    `tls`: an ssl.SSLContext (server side) to serve https instead."""

    def __init__(self, *answers: Answer, tls: ssl.SSLContext | None = None):
        self.answers = list(answers) or [Answer()]
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/hook"

    def _answer(self, received: Received) -> Answer:
        with self._lock:
            self.requests.append(received)
            return self.answers[min(len(self.requests), len(self.answers)) - 1]

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = receiver._answer(Received(self.command, self.path, dict(self.headers.items()), body))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_GET = _any

            def log_message(self, *args):  # quiet: pytest shows what a test asserts
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self._tls is not None:
            self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-receiver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
