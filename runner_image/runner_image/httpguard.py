"""uvicorn's httptools protocol with deadlines for slow clients (slowloris).

uvicorn (0.55) closes an idle keep-alive connection after `timeout_keep_alive`, but it has no
deadline for a request's headers or body: a connection that sends half a request line, or a
Content-Length it never finishes, is held until the file descriptors run out. This subclass adds
the two deadlines that Apache's mod_reqtimeout has (HttpLimits, from RUNNER_* variables):

- headers: from the connection (or from the first byte of a later request on it) to the end of the
  headers, `header_timeout` seconds;
- body: `body_timeout` seconds from the end of the headers, plus one second per `body_min_rate`
  bytes received, so that a big upload that keeps moving is never cut, and a trickle is.

Time the server itself holds the client back (reading paused because the app has not taken the
body yet, or a client waiting for `100 Continue`) does not count. A client that misses a deadline
gets 408 when no answer has started, and the connection is closed; the app, if it was reading the
body, sees the client disconnect.
"""

from __future__ import annotations

import functools
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runner_image.settings import HttpLimits

log = logging.getLogger("runner_image")

_RECHECK_WHILE_HELD = 1.0  # seconds between looks while the server, not the client, holds the body back


@functools.cache
def _limits() -> HttpLimits:
    return HttpLimits.from_env()  # read once per process; uvicorn's spawned workers inherit the variables


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = _limits()
        self._header_timer = None
        self._body_timer = None
        self._body_started = 0.0
        self._body_received = 0
        self._request_begun = False

    # -------------------------------------------------------------- connection and parser callbacks

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = None
        super().on_headers_complete()
        self._body_started = self.loop.time()
        self._body_received = 0
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._check_body_deadline)

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        self._request_begun = False
        super().on_message_complete()

    # -------------------------------------------------------------- deadlines

    def _arm_header_deadline(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self._request_begun:
            self._give_up("headers", f"the request headers did not arrive within {self.limits.header_timeout:g} s")
        else:
            self._give_up("headers", None)  # connected and sent nothing: just close

    def _check_body_deadline(self) -> None:
        self._body_timer = None
        now = self.loop.time()
        allowed = self._body_started + self.limits.body_timeout + self._body_received / self.limits.body_min_rate
        held_by_server = self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)
        if held_by_server:
            self._body_started += _RECHECK_WHILE_HELD  # none of the client's time
            self._body_timer = self.loop.call_later(_RECHECK_WHILE_HELD, self._check_body_deadline)
        elif now < allowed:
            self._body_timer = self.loop.call_later(allowed - now, self._check_body_deadline)
        else:
            self._give_up("body", f"the request body did not arrive within {self.limits.body_timeout:g} s "
                                  f"(and 1 s more per {self.limits.body_min_rate} bytes received)")

    def _give_up(self, phase: str, reason: str | None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        log.debug("closing a slow connection from %s: %s", self.client, reason or f"no request in {phase} time")
        cycle = self.cycle
        # For headers, `cycle` (if any) is an earlier request's: answer only once that one is done.
        may_answer = (cycle is None or cycle.response_complete) if phase == "headers" else not cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app, if it reads the body, gets http.disconnect
            cycle.message_event.set()
        if reason is not None and may_answer:
            self.transport.write(_timeout_response(reason))
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            self._cancel(timer)
        self._header_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer) -> None:
        if timer is not None:
            timer.cancel()


def _timeout_response(reason: str) -> bytes:
    body = f"Request Timeout: {reason}\n".encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
