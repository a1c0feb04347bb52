"""The model's own gRPC service: the `service` its model.proto declares (`/<package>.Model/<method>`), served
from whatever proto is active at the moment of each call.

There is no generated servicer: a generic handler looks the method up in the CURRENT slot's proto on every
call, and the request's raw bytes are parsed with the input class of the slot that answers it. So after a
proto swap the new service and methods are served at once, and each call is answered wholly by the old
model and proto or wholly by the new ones (runner_image.serving chooses the slot once). A connected client
keeps its connection; a call to a method the new proto no longer has gets UNIMPLEMENTED, which lists what
is served now.
"""

from __future__ import annotations

from functools import lru_cache

import grpc

from runner_image import metrics, serving
from runner_image.codec import message_from_bytes
from runner_image.errors import NotReady
from runner_image.grpc_calls import Doors, Exchange, Unimplemented

ROUTE = "grpc_model"
KNOWN_METHODS_KEPT = 256  # handlers kept for method names protos served; names callers make up are not kept


def service_name(proto) -> str:
    """The service's full name as it appears in a gRPC path: `<package>.<Service>`."""
    return f"{proto.package}.{proto.service_name}" if proto.package else proto.service_name


def method_paths(proto) -> list[str]:
    name = service_name(proto)
    return [f"/{name}/{method}" for method in proto.methods]


class ModelService(grpc.GenericRpcHandler):
    """Answers the active proto's methods, and every other method with UNIMPLEMENTED: it is the last handler."""

    def __init__(self, doors: Doors, also_served: str):
        self.doors, self.runtime = doors, doors.runtime
        self.also_served = also_served  # the other service's methods, for the UNIMPLEMENTED listing
        self._handler = lru_cache(maxsize=KNOWN_METHODS_KEPT)(self._make_handler)

    def service(self, handler_call_details):
        path = handler_call_details.method
        slot = self.runtime.slot  # read once: the lookup and the listing see the same proto
        if slot is not None:
            service, _, method = path[1:].partition("/")
            if service == service_name(slot.proto) and method in slot.proto.methods:
                return self._handler(method)
        return self.doors.unary(ROUTE, self._refusal(path, slot))

    def _make_handler(self, method: str):
        async def respond(raw: bytes, exchange: Exchange) -> bytes:
            call = exchange.call(method)
            chosen = serving.choose(self.runtime, call)
            msg = message_from_bytes(chosen[0].rpc(method).input, raw)
            answered = await serving.answer_async(self.runtime, call, msg, chosen)
            metrics.prediction(method)
            return answered.msg.SerializeToString()

        return self.doors.unary(ROUTE, respond, metered=True)

    def _refusal(self, path: str, slot):
        async def respond(raw: bytes, exchange: Exchange) -> bytes:
            if slot is None:
                raise NotReady("no model is loaded yet")
            served = method_paths(slot.proto)
            raise Unimplemented(f"no method {path} here; this runner serves {', '.join(served)} (the model's "
                                f"service) and {self.also_served} (the Open Inference Protocol)",
                                {"method": path, "methods": served})

        return respond
