"""A swap's steps first: a shorter GIL switch interval, and the event loop standing aside (runner_image.runtime).

While a swap runs, the thread doing it hands the GIL back and forth with the event loop, which is busy
answering requests. Each file operation releases the GIL, and getting it back waits for the loop's thread
to reach the switch interval (5 ms by default): a swap's few dozen file operations cost a hundred ms or
more under load. A shorter interval for the swap's duration makes those waits short; requests are
served as before (the loop only yields more often, for the few tens of ms a swap takes).
(Made urgent from the start of the admin request, the upload included, it measured the same: 83.6 ms median
wall time under load against 87.8 ms, within the noise; so only the swap's own steps are.)

A shorter interval still shares the process: under load the loop takes about half of every turn, and a
swap measured 85-105 ms where it takes 20 ms on an idle runner. So while a swap's steps run in a thread
(the leader's, or a following worker's watcher), the loop also stands aside: it blocks on the swap's end,
for at most a bound (RUNNER_SWAP_PRIORITY_MS, 100 ms by default). Requests wait for those milliseconds in
the socket's queue and none fails; a model that loads for longer shares the CPU after the bound, so a big
load never stalls the traffic for its whole length.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sys
import threading

URGENT_SWITCH_INTERVAL = 0.0005


class _Urgency:
    """How many blocks want the short interval now; the last one out restores the normal one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0
        self.normal = sys.getswitchinterval()

    @contextlib.contextmanager
    def __call__(self):
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> None:
        """For a span no `with` block covers (a following worker between loading a candidate and switching)."""
        with self.lock:
            self.depth += 1
            sys.setswitchinterval(URGENT_SWITCH_INTERVAL)

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                sys.setswitchinterval(self.normal)


urgent = _Urgency()  # `with urgent():` around a swap's steps


class LoopAside:
    """`with aside():` in a thread: the event loop bound here blocks until the block ends, or for at most
    `budget` seconds. The block is a callback on the loop, so it starts at the loop's next turn (the
    requests of the current turn are answered first) and ends as soon as the block does."""

    def __init__(self, budget: float):
        self.budget = budget
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def run(self, fn, *args):
        """fn(*args) in a thread, the calling loop blocked until it returns or the budget has passed. Within the
        budget its result is taken at once, in this same turn: no thread waits for the GIL to start (the loop
        holds none while it waits) and no loop turn of other requests comes between its end and the answer."""
        done, outcome = threading.Event(), {}

        def call():
            try:
                outcome["value"] = fn(*args)
            except BaseException as exc:  # handed to the caller below, in the loop's thread
                outcome["error"] = exc
            finally:
                done.set()

        future = asyncio.get_running_loop().run_in_executor(None, functools.partial(contextvars.copy_context().run,
                                                                                    call))
        if self.budget <= 0 or not done.wait(self.budget):
            await future  # a long step: the loop serves again meanwhile
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    @contextlib.contextmanager
    def __call__(self):
        done = threading.Event()
        loop = self.loop
        if loop is not None and self.budget > 0:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to stand aside
                loop.call_soon_threadsafe(done.wait, self.budget)
        try:
            yield
        finally:
            done.set()
