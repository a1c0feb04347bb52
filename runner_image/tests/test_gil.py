"""A swap's steps first: the short GIL switch interval and the event loop standing aside (runner_image.gil)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from runner_image.gil import URGENT_SWITCH_INTERVAL, LoopAside, urgent


@pytest.fixture
def loop():
    """An event loop running in a thread of its own, as a worker's serves its requests."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(timeout=5)
    running.close()


def loop_reaches(loop, timeout: float = 5.0) -> float:
    """When (time.monotonic) the loop ran a callback posted now."""
    reached = []
    done = threading.Event()
    loop.call_soon_threadsafe(lambda: (reached.append(time.monotonic()), done.set()))
    assert done.wait(timeout), "the loop never ran the callback"
    return reached[0]


def test_the_loop_waits_for_the_block_to_end(loop):
    aside = LoopAside(budget=5.0)
    aside.bind(loop)
    reached = []
    with aside():
        time.sleep(0.05)  # the loop reaches the blocking callback
        loop.call_soon_threadsafe(lambda: reached.append(time.monotonic()))
        time.sleep(0.3)
        ended = time.monotonic()
        assert reached == [], "the loop ran a callback while it was to stand aside"
    assert loop_reaches(loop) >= ended
    assert reached and reached[0] >= ended


def test_the_loop_stands_aside_for_at_most_its_budget(loop):
    aside = LoopAside(budget=0.2)
    aside.bind(loop)
    with aside():
        started = time.monotonic()
        reached = loop_reaches(loop)  # a block longer than the budget: the loop goes on after it
        assert 0.1 < reached - started < 2.0
    assert loop_reaches(loop) - started < 2.5


def test_a_budget_of_zero_never_stops_the_loop(loop):
    aside = LoopAside(budget=0.0)
    aside.bind(loop)
    with aside():
        started = time.monotonic()
        assert loop_reaches(loop) - started < 0.1


def test_an_unbound_or_closed_loop_is_no_hindrance():
    with LoopAside(budget=1.0)():
        pass
    closed = asyncio.new_event_loop()
    closed.close()
    aside = LoopAside(budget=1.0)
    aside.bind(closed)
    with aside():  # RuntimeError from the closed loop is not the block's business
        pass


def test_urgency_nests_and_the_last_one_out_restores_the_interval():
    normal = sys.getswitchinterval()
    with urgent():
        assert sys.getswitchinterval() == pytest.approx(URGENT_SWITCH_INTERVAL)
        urgent.enter()
        with urgent():
            pass
        assert sys.getswitchinterval() == pytest.approx(URGENT_SWITCH_INTERVAL)
        urgent.leave()
        assert sys.getswitchinterval() == pytest.approx(URGENT_SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(normal)


def run_on(loop, coroutine, timeout: float = 10.0):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)


def test_a_step_run_first_answers_in_the_same_turn_and_its_errors_reach_the_caller(loop):
    aside = LoopAside(budget=5.0)
    other = []

    async def step_and_others():
        loop.call_soon(other.append, "another request's callback")
        value = await aside.run(lambda x: x * 2, 21)
        return value, list(other)  # read before the handler gave the loop a turn

    assert run_on(loop, step_and_others()) == (42, [])

    def failing():
        raise ValueError("the candidate failed its sample")

    with pytest.raises(ValueError, match="failed its sample"):
        run_on(loop, aside.run(failing))


def test_a_step_longer_than_the_budget_lets_the_loop_serve_meanwhile(loop):
    aside = LoopAside(budget=0.1)
    release = threading.Event()
    served = []

    async def slow_step():
        return await aside.run(lambda: release.wait(10) and "loaded")

    future = asyncio.run_coroutine_threadsafe(slow_step(), loop)
    time.sleep(0.3)  # past the budget: the loop answers others while the step goes on
    served.append(loop_reaches(loop, timeout=2))
    release.set()
    assert future.result(10) == "loaded" and served
