"""The Open Inference Protocol over gRPC (KServe v2's inference.GRPCInferenceService): ServerLive,
ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer, what tritonclient.grpc calls.

Its messages come from grpc_predict_v2.proto, compiled when the worker starts with the protoc the runner uses
for models' protos (runner_image.protos), not from a generated, committed _pb2 module: the .proto stays the
one source, and generated code is tied to the protobuf release that wrote it (protobuf 6's refuses to load
under protobuf 5, which the runner allows). It costs one protoc run per worker start.

Tensors meet the model's messages by oip.py's rules, with the same messages as HTTP (each tensor a field by
name, or one [n, k] tensor for k fields); this module only turns the gRPC form of a tensor (`contents` typed
lists, or `raw_input_contents`) into oip.py's, and answers with raw_output_contents as Triton does.
"""

from __future__ import annotations

from importlib import resources

import grpc

from runner_image import __version__, metrics, oip, oip_binary, serving
from runner_image.codec import message_from_bytes
from runner_image.errors import BadRequest, NotFound
from runner_image.grpc_calls import Doors, Exchange
from runner_image.protos import compile_proto

PROTO_FILE = "grpc_predict_v2.proto"
SERVICE = "inference.GRPCInferenceService"
METHOD_HEADER = "x-method"  # ModelMetadata has no field for the method: it may come in the metadata
SERVER_NAME = "acumos-runner"

# Where InferTensorContents keeps each datatype's values; FP16 and BF16 travel only as raw contents.
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def load_proto():
    return compile_proto(resources.files("runner_image").joinpath(PROTO_FILE).read_bytes())


class InferenceService(grpc.GenericRpcHandler):
    def __init__(self, doors: Doors):
        self.doors, self.runtime = doors, doors.runtime
        self.proto = load_proto()
        answers = {"ServerLive": self.server_live, "ServerReady": self.server_ready,
                   "ModelReady": self.model_ready, "ServerMetadata": self.server_metadata,
                   "ModelMetadata": self.model_metadata, "ModelInfer": self.model_infer}
        self._handlers = {f"/{SERVICE}/{name}": self._handler(name, answer) for name, answer in answers.items()}

    @property
    def methods(self) -> str:
        """The methods served, as the UNIMPLEMENTED answer lists them."""
        return f"/{SERVICE}/{{{','.join(path.rsplit('/', 1)[1] for path in self._handlers)}}}"

    def service(self, handler_call_details):
        return self._handlers.get(handler_call_details.method)

    def _handler(self, name: str, answer):
        rpc = self.proto.methods[name]
        infer = name == "ModelInfer"

        async def respond(raw: bytes, exchange: Exchange) -> bytes:
            request = message_from_bytes(rpc.input, raw)
            return (await answer(request, exchange, rpc.output())).SerializeToString()

        return self.doors.unary("grpc_infer" if infer else "grpc_v2", respond, metered=infer)

    # ------------------------------------------------------------ health and metadata

    async def server_live(self, request, exchange, response):
        response.live = True
        return response

    async def server_ready(self, request, exchange, response):
        response.ready = self.runtime.slot is not None
        return response

    async def model_ready(self, request, exchange, response):
        self._served(request.name, request.version)
        response.ready = True
        return response

    async def server_metadata(self, request, exchange, response):
        response.name, response.version = SERVER_NAME, __version__
        return response

    async def model_metadata(self, request, exchange, response):
        slot = self._served(request.name, request.version)
        described = oip.model_metadata(slot, exchange.metadata.get(METHOD_HEADER) or slot.proto.default_method)
        response.name, response.platform = described["name"], described["platform"]
        response.versions.extend(described["versions"])
        for key in ("inputs", "outputs"):
            for spec in described[key]:
                getattr(response, key).add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        return response

    def _served(self, name: str, version: str):
        """The active slot when it is the model (and version) named, else NOT_FOUND."""
        slot = self.runtime.active()
        if name != slot.name:
            raise NotFound(f"no model named {name!r} here; this runner serves {slot.name!r}", {"model": name})
        if version and version != str(slot.generation):  # HTTP's words (v2._oip_slot)
            raise NotFound(f"model {name!r} has no version {version!r} serving here: versions are generations, "
                           f"and this runner serves generation {slot.generation}",
                           {"version": version, "serving": str(slot.generation)})
        return slot

    # ------------------------------------------------------------ inference

    async def model_infer(self, request, exchange, response):
        slot = self._served(request.model_name, request.model_version)
        method = requested_method(request) or slot.proto.default_method
        exchange.identify(request.id)
        call = exchange.call(method)
        # A version asks for the generation serving now: no canary answers it (as over HTTP).
        chosen = (slot, "live") if request.model_version else serving.choose(self.runtime, call)
        msg = request_to_message(request, chosen[0].rpc(method).input)
        answered = await serving.answer_async(self.runtime, call, msg, chosen)
        metrics.prediction(method)
        response.model_name, response.model_version = answered.slot.name, str(answered.slot.generation)
        response.id = request.id
        response.parameters["method"].string_param = method
        for name, datatype, shape, raw in outputs(answered.msg, [o.name for o in request.outputs]):
            response.outputs.add(name=name, datatype=datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response


def requested_method(request) -> str | None:
    """`parameters.method`, as over HTTP; None when not given."""
    if "method" not in request.parameters:
        return None
    parameter = request.parameters["method"]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise BadRequest("'parameters.method' must be a method name (a string_param)", {"field": "parameters.method"})
    return parameter.string_param


# ---------------------------------------------------------------- tensors in

def request_to_message(request, input_cls):
    """A ModelInferRequest's tensors as the method's input message, read by oip.py as HTTP's are."""
    if not request.inputs:
        raise BadRequest("an inference request needs a non-empty 'inputs' list", {"field": "inputs"})
    _check_raw_contents(request)
    return oip.tensors_to_message([_tensor(request, i) for i in range(len(request.inputs))], input_cls)


def _check_raw_contents(request) -> None:
    raw = request.raw_input_contents
    if not raw:
        return
    if len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; give one "
                         "per input, in the order of 'inputs'", {"field": "raw_input_contents"})
    typed = [i for i, tensor in enumerate(request.inputs) if tensor.HasField("contents")]
    if typed:
        raise BadRequest(f"inputs[{typed[0]}] has 'contents' and the request has raw_input_contents: give every "
                         "input's values one way", {"field": f"inputs[{typed[0]}].contents"})


def _tensor(request, i: int):
    """inputs[i] read by oip.read_tensor from its raw contents, or from its typed contents as JSON `data`."""
    tensor = request.inputs[i]
    given = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
    if request.raw_input_contents:
        return oip.read_tensor(i, given, request.raw_input_contents[i])
    return oip.read_tensor(i, {**given, "data": _typed_contents(tensor, given["shape"], f"inputs[{i}]")})


def _typed_contents(tensor, shape: list, where: str) -> list:
    """The values of the InferTensorContents field that holds the tensor's datatype."""
    count = oip_binary.element_count(shape, where)
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        if tensor.datatype in oip_binary.DATATYPES:
            raise BadRequest(f"{where}: {tensor.datatype} values travel only in raw_input_contents",
                             {"field": f"{where}.contents"})
        raise BadRequest(f"{where}: datatype {tensor.datatype!r} is not one this runner reads; it reads "
                         f"{', '.join(oip_binary.DATATYPES)}",
                         {"field": f"{where}.datatype", "allowed": list(oip_binary.DATATYPES)})
    values = list(getattr(tensor.contents, field))
    if len(values) != count:
        raise BadRequest(f"{where}: shape {shape} holds {count} values; contents.{field} (where "
                         f"{tensor.datatype} values go) has {len(values)}", {"field": f"{where}.contents.{field}"})
    return values


# ---------------------------------------------------------------- tensors out

def outputs(msg, requested: list[str]) -> list[tuple[str, str, list[int], bytes]]:
    """(name, datatype, shape, raw contents) of every output tensor, or of the requested ones in their order:
    the tensors HTTP answers with (oip.output_tensors), always as raw bytes, as Triton answers over gRPC."""
    wanted = oip.Wanted(requested or None, dict.fromkeys(requested, True), True)
    return [(output.name, output.datatype, output.shape, oip_binary.encode(output.datatype, output.values))
            for output, _ in oip.choose_outputs(oip.output_tensors(msg), wanted)]
