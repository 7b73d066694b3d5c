"""Controller.shutdown: go-plugin 1.0.1 stops its server before it answers Shutdown."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import grpc
import pytest

from elemta_core.external.controller import Controller
from elemta_core.external.proto_gen.plugin import grpc_controller_pb2, grpc_controller_pb2_grpc


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, how: str) -> None:
        self.how = how
        self.server: grpc.aio.Server | None = None
        self.called = asyncio.Event()

    async def Shutdown(self, request: grpc_controller_pb2.Empty,
                       context: grpc.aio.ServicerContext) -> grpc_controller_pb2.Empty:
        self.called.set()
        if self.how == "stop-first":  # what go-plugin 1.0.1 does
            assert self.server is not None
            asyncio.get_running_loop().create_task(self.server.stop(None))
            await asyncio.sleep(3600)
        if self.how == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "transport is closing")
        if self.how == "cancelled":
            await context.abort(grpc.StatusCode.CANCELLED, "grpc: the server has been stopped")
        if self.how == "refuse":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
        if self.how == "hang":
            await asyncio.sleep(3600)
        return grpc_controller_pb2.Empty()


async def _shutdown(how: str, timeout: float = 2.0) -> tuple[bool, bool]:
    with tempfile.TemporaryDirectory(prefix="elemta-ctl-") as d:
        path = Path(d) / "s"
        servicer = _Controller(how)
        server = grpc.aio.server()
        servicer.server = server
        grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        channel = grpc.aio.insecure_channel(f"unix:{path}")
        try:
            acked = await Controller(channel).shutdown(timeout)
        finally:
            await channel.close(grace=None)
            await server.stop(None)
        return acked, servicer.called.is_set()


@pytest.mark.parametrize("how", ["answer", "stop-first", "unavailable", "cancelled"])
async def test_shutdown_is_acknowledged_when_the_plugin_stops_its_server_first(how: str) -> None:
    acked, called = await _shutdown(how)
    assert called
    assert acked is True


@pytest.mark.parametrize("how", ["refuse", "hang"])
async def test_shutdown_not_acknowledged_when_refused_or_silent(how: str) -> None:
    acked, called = await _shutdown(how, timeout=0.5)
    assert called
    assert acked is False
