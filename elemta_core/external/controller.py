"""go-plugin's internal services, as the host calls them: grpc.health.v1 (service
``plugin``) to know a plugin is alive, and ``plugin.GRPCController/Shutdown`` to ask it to
exit before it is killed."""

from __future__ import annotations

import grpc

from elemta_core.external.constants import HEALTH_SERVICE
from elemta_core.external.errors import ProtocolError
from elemta_core.external.proto_gen.grpc_health.v1 import health_pb2, health_pb2_grpc
from elemta_core.external.proto_gen.plugin import grpc_controller_pb2, grpc_controller_pb2_grpc

#: Ends of a Shutdown call that mean "exiting": the plugin closed its server first.
SHUTDOWN_ACKS = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


class Controller:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        # The generated stubs are untyped; the calls below are checked against the .pyi.
        self._health = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        self._controller = grpc_controller_pb2_grpc.GRPCControllerStub(  # type: ignore[no-untyped-call]
            channel)

    async def check(self, timeout: float) -> None:
        """Raise ProtocolError unless the plugin says SERVING within ``timeout``."""
        try:
            r = await self._health.Check(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE),
                                         timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise ProtocolError(f"health check failed: {e.code().name} {e.details() or ''}"
                                .rstrip()) from None
        if r.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
            raise ProtocolError(f"health check says {name} for service {HEALTH_SERVICE!r}")

    async def shutdown(self, timeout: float) -> bool:
        """Ask the plugin to exit; False when it did not acknowledge in time.

        go-plugin 1.0.1 stops its gRPC server before it answers Shutdown, so the call ends
        UNAVAILABLE or CANCELLED although the plugin is exiting: that counts as acknowledged
        (the caller then waits the grace period for the exit instead of killing at once).
        """
        try:
            await self._controller.Shutdown(grpc_controller_pb2.Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            return e.code() in SHUTDOWN_ACKS
        return True
