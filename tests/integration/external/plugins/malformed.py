"""A plugin written against the raw protocol stubs that answers malformed replies, chosen by
the recipient's local part (see MALFORMED), to prove the server treats them as errors."""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2_grpc
from elemta_plugin._proto.grpc_health.v1 import health_pb2, health_pb2_grpc

MALFORMED = {
    "action": pb.Result(action=42),
    "code": pb.Result(action=pb.ACTION_REJECT, code=250),
    "enhanced": pb.Result(action=pb.ACTION_REJECT, code=550, enhanced="9.9"),
    "headerop": pb.Result(headers=[pb.HeaderChange(op=0, name="X-A", value="b")]),
    "headername": pb.Result(headers=[pb.HeaderChange(op=pb.HEADER_OP_ADD, name="Bad Name:",
                                                     value="v")]),
    "injection": pb.Result(headers=[pb.HeaderChange(op=pb.HEADER_OP_ADD, name="X-A",
                                                    value="v\r\nBcc: victim@example.org")]),
    "text": pb.Result(action=pb.ACTION_REJECT, code=550, text="a\r\n250 ok"),
    "tags": pb.Result(tags={f"k{i}": "v" for i in range(500)}),
}


class Servicer(plugin_pb2_grpc.PluginServicer):
    async def Describe(self, request, context):
        return pb.DescribeResponse(name="malformed", version="0.1", protocol_version=1,
                                   hooks=[pb.HookRegistration(hook=pb.HOOK_RCPT_TO)],
                                   streaming=True)

    async def Configure(self, request, context):
        return pb.ConfigureResponse()

    async def Hooks(self, request_iterator, context):
        async for req in request_iterator:
            local = req.context.recipient.partition("@")[0]
            if local == "wrongid":
                yield pb.HookResponse(id=req.id + 1000, result=pb.Result())
            elif local == "error":
                yield pb.HookResponse(id=req.id, error="handler exploded")
            elif local in MALFORMED:
                yield pb.HookResponse(id=req.id, result=MALFORMED[local])
            else:
                yield pb.HookResponse(id=req.id, result=pb.Result(tags={"malformed": "ok"}))


class Health(health_pb2_grpc.HealthServicer):
    async def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def main() -> None:
    server = grpc.aio.server()
    plugin_pb2_grpc.add_PluginServicer_to_server(Servicer(), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    path = os.path.join(os.environ["PLUGIN_UNIX_SOCKET_DIR"], "malformed.sock")
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    sys.stdout.write(f"1|1|unix|{path}|grpc|\n")
    sys.stdout.flush()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
