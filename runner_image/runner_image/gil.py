"""A shorter GIL switch interval while a swap runs (runner_image.runtime).

While a swap runs, the thread doing it hands the GIL back and forth with the event loop, which is busy
answering requests. Each file operation releases the GIL, and getting it back waits for the loop's thread
to reach the switch interval (5 ms by default): a swap's few dozen file operations cost a hundred ms or
more under load. A shorter interval for the swap's duration makes those waits short; requests are
served as before (the loop only yields more often, for the few tens of ms a swap takes).
(Made urgent from the start of the admin request, the upload included, it measured the same: 83.6 ms median
wall time under load against 87.8 ms, within the noise; so only the swap's own steps are.)
"""

from __future__ import annotations

import contextlib
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
        with self.lock:
            self.depth += 1
            sys.setswitchinterval(URGENT_SWITCH_INTERVAL)
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    sys.setswitchinterval(self.normal)


urgent = _Urgency()  # `with urgent():` around a swap's steps
