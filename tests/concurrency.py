"""Calls made at one instant, each on its own thread with its own database connection: how the tests
show that two requests at once cannot both pass a check meant for one."""

from __future__ import annotations

import threading

from django.db import connections


def at_once(*calls, timeout: float = 60.0) -> list:
    """Run every call at the same moment; their results (or the exception each raised), in order."""
    start, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int, call) -> None:
        try:
            start.wait()
            results[index] = call()
        except Exception as exc:  # the caller asserts on what each call met
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
