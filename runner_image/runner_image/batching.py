"""Dynamic batching: the requests a worker reads in one turn of its event loop are answered by one model call.

A worker's event loop reads every request that arrived while it was busy, starts their handlers in one turn,
and each handler used to call the model on its own row. Now the first handler of a turn queues its row and
schedules the batch at the end of the turn (loop.call_soon), the others of that turn join it, and one call
answers them all. Nothing waits for a batch to fill: a lone request is answered in the same turn as before,
and a busy worker batches exactly as much as it fell behind. That is Triton's dynamic batching and MLServer's
adaptive batching without their fixed waiting window.

Only models whose answer for a row depends on that row alone are batched (the tabular flavours: sklearn,
xgboost, lightgbm, onnx); python and mlflow models run arbitrary code and are called one request at a time.
RUNNER_BATCH_MAX_ROWS bounds a batch (1 turns batching off).
"""

from __future__ import annotations

import asyncio

from runner_image import metrics


class Batcher:
    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self._open: dict[tuple, list] = {}  # (slot id, method) -> [(msg, future)] of this turn

    async def predict(self, slot, method: str, msg):
        if self.max_rows <= 1 or not slot.batchable:
            return slot.predict(method, msg)
        loop = asyncio.get_running_loop()
        key = (id(slot), method)
        batch = self._open.get(key)
        if batch is None:  # the first of this turn: its batch is answered once the turn's handlers have joined
            batch = self._open[key] = []
            loop.call_soon(self._answer, key, slot, method, batch)
        future = loop.create_future()
        batch.append((msg, future))
        if len(batch) >= self.max_rows:  # full: closed now (still answered in turn); the next one opens another
            del self._open[key]
        return await future

    def _answer(self, key, slot, method: str, batch: list) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        self._answer_batch(slot, method, batch)

    @staticmethod
    def _answer_batch(slot, method: str, batch: list) -> None:
        waiting = [(msg, future) for msg, future in batch if not future.done()]  # a client that left: no call
        if not waiting:
            return
        metrics.batch(len(waiting))
        if len(waiting) == 1:
            msg, future = waiting[0]
            results = [slot.predict_or_error(method, msg)]
        else:
            try:
                results = slot.predict_batch(method, [msg for msg, _ in waiting])
            except Exception as exc:  # a bug in batching must fail the requests, not the loop
                results = [exc] * len(waiting)
        for (_, future), result in zip(waiting, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
