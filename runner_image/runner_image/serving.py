"""One prediction, whichever door it came in by (REST, OIP over HTTP, OIP over gRPC, the model's own gRPC
service): choose the variant that answers (the live model, or a canary candidate), answer, record the
drift statistics, and hand the request to a shadow candidate. The doors parse and format; this is the
one place a request meets the model, so every door gets canary, shadow, statistics and request ids alike.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

REQUEST_ID_HEADER = "x-request-id"
ROUTING_KEY_HEADER = "x-routing-key"
# A caller's request id is echoed back and later joined with its feedback: keep it short and printable.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id(given: str | None) -> str:
    """The caller's request id when it is a sensible one, else a new one (a caller's junk is not an id)."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Call:
    """What a door knows about one prediction beyond its message."""

    method: str
    request_id: str
    routing_key: str | None = None  # sticky canary routing: the same key goes to the same variant


@dataclass(frozen=True)
class Answer:
    msg: object       # the response message
    slot: object      # the ModelSlot that answered
    variant: str      # "live" or "canary"


def choose(runtime, call: Call):
    """(slot, variant) for this call: the live model, or the canary candidate for its share of traffic."""
    return runtime.variants.choose(call)


def answer(runtime, call: Call, msg, chosen=None) -> Answer:
    """Answer `msg` (an instance of the method's input message) and record what was answered.

    `chosen` is choose()'s (slot, variant) when the door had to pick before parsing (it parses with that
    slot's classes; a candidate shares the live model's interface, so they are the same classes)."""
    slot, variant = chosen or choose(runtime, call)
    out = slot.predict(call.method, msg)
    runtime.stats.record(slot, variant, call, msg, out)
    runtime.variants.after(slot, variant, call, msg, out)
    return Answer(out, slot, variant)


async def answer_async(runtime, call: Call, msg, chosen=None) -> Answer:
    """answer() for the doors on the event loop: the model call may be shared with the other requests the
    worker read in the same turn (runner_image.batching)."""
    slot, variant = chosen or choose(runtime, call)
    out = await runtime.batcher.predict(slot, call.method, msg)
    runtime.stats.record(slot, variant, call, msg, out)
    runtime.variants.after(slot, variant, call, msg, out)
    return Answer(out, slot, variant)
