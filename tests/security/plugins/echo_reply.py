"""A raw gRPC plugin (no SDK) that answers each hook call with the bytes it is given.

The message body of the call is sent back as the serialized HookResponse, byte for byte:
unary ``HandleHook`` returns it as is (random bytes included); the ``Hooks`` stream appends
the request's id as one more ``id`` field (protobuf: the last value wins), so structured
answers reach the right caller. ``ECHO_STREAMING=1`` in the environment offers the stream.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import grpc
from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_plugin._proto.grpc_health.v1 import health_pb2, health_pb2_grpc
from elemta_plugin._proto.plugin import grpc_controller_pb2, grpc_controller_pb2_grpc

STREAMING = os.environ.get("ECHO_STREAMING") == "1"


def echo(req: pb.HookRequest, stream: bool) -> bytes:
    raw = req.context.message.raw
    return raw + pb.HookResponse(id=req.id).SerializeToString() if stream else raw


async def describe(req: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
    return pb.DescribeResponse(
        name="echo_reply", version="0.1", protocol_version=1, streaming=STREAMING,
        hooks=[pb.HookRegistration(hook=pb.HOOK_MESSAGE)],
        failure_policy=pb.FAILURE_POLICY_TEMPFAIL).SerializeToString()


async def configure(req: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
    return pb.ConfigureResponse().SerializeToString()


async def handle(req: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
    return echo(pb.HookRequest.FromString(req), False)


async def hooks(it: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for req in it:
        yield echo(pb.HookRequest.FromString(req), True)


class Health(health_pb2_grpc.HealthServicer):
    async def Check(self, request, context):  # type: ignore[no-untyped-def]
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    async def Shutdown(self, request, context):  # type: ignore[no-untyped-def]
        self.stop.set()
        return grpc_controller_pb2.Empty()


async def main() -> None:
    stop = asyncio.Event()
    ident = bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1),
                                      ("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "elemta.plugin.v1.Plugin", {
            "Describe": grpc.unary_unary_rpc_method_handler(describe, ident, ident),
            "Configure": grpc.unary_unary_rpc_method_handler(configure, ident, ident),
            "HandleHook": grpc.unary_unary_rpc_method_handler(handle, ident, ident),
            "Hooks": grpc.stream_stream_rpc_method_handler(hooks, ident, ident),
        }),))
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(Controller(stop), server)
    path = os.path.join(os.environ["PLUGIN_UNIX_SOCKET_DIR"], "echo.sock")
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    sys.stdout.write(f"1|1|unix|{path}|grpc|\n")
    sys.stdout.flush()
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
