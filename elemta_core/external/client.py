"""The gRPC side of one running plugin: Describe, Configure and hook calls.

Hook calls go over one long-lived bidirectional stream: each request carries an id, a
single writer task feeds the stream and a single reader task resolves the waiting futures,
so many calls are in flight at once over one HTTP/2 stream. Plugins that do not stream are
called with unary ``HandleHook``. When the stream breaks, every waiting call fails at once
with :class:`PluginUnavailable` (the pipeline applies the failure policy) and
``broken`` is set for the supervisor.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, cast

import grpc

from elemta_core.external.constants import APP_PROTOCOL_VERSION
from elemta_core.external.controller import Controller
from elemta_core.external.convert import context_to_pb, response_result
from elemta_core.external.errors import CallError, LaunchError, ProtocolError
from elemta_core.external.handshake import Handshake
from elemta_core.external.mtls import SERVER_NAME, CertPair, server_cert_pem
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2_grpc
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import PluginUnavailable
from elemta_core.hooks.types import HookResult

log = logging.getLogger("elemta.external")

#: Messages carry whole mails on the message hook: lift gRPC's 4 MiB default.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 0),
]


class PluginClient:
    def __init__(self, name: str, handshake: Handshake, tls: CertPair | None = None) -> None:
        self.name = name
        if tls is not None:  # AutoMTLS: trust exactly the certificate of the handshake
            creds = grpc.ssl_channel_credentials(
                root_certificates=server_cert_pem(handshake.server_cert),
                private_key=tls.key_pem, certificate_chain=tls.cert_pem)
            self.channel = grpc.aio.secure_channel(
                handshake.target, creds,
                options=[*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", SERVER_NAME)])
        else:
            self.channel = grpc.aio.insecure_channel(handshake.target, options=CHANNEL_OPTIONS)
        self.stub = plugin_pb2_grpc.PluginStub(self.channel)  # type: ignore[no-untyped-call]
        self.controller = Controller(self.channel)
        self.description: pb.DescribeResponse | None = None
        self.streaming = False
        self.broken = asyncio.Event()
        self.broken_reason = ""
        self._ids = itertools.count(1)
        self._last_id = 0
        self._pending: dict[int, asyncio.Future[pb.HookResponse]] = {}
        self._outbox: asyncio.Queue[pb.HookRequest] = asyncio.Queue()
        self._call: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError:
            raise LaunchError(f"cannot connect to the plugin's socket within {timeout:g}s") from None
        await self.controller.check(timeout)

    async def describe(self, server_version: str, timeout: float) -> pb.DescribeResponse:
        try:
            d: pb.DescribeResponse = await self.stub.Describe(
                pb.DescribeRequest(protocol_version=APP_PROTOCOL_VERSION,
                                   server_version=server_version), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise ProtocolError(f"Describe failed: {e.code().name} {e.details() or ''}") from None
        if d.protocol_version != APP_PROTOCOL_VERSION:
            raise ProtocolError(f"hook protocol mismatch: the plugin speaks version "
                                f"{d.protocol_version}, this server speaks version "
                                f"{APP_PROTOCOL_VERSION}")
        self.description = d
        return d

    async def configure(self, plugin_name: str, config: dict[str, Any], hostname: str,
                        state_dir: str, timeout: float) -> None:
        req = pb.ConfigureRequest(plugin_name=plugin_name, config_json=json.dumps(config),
                                  server_hostname=hostname, state_dir=state_dir)
        try:
            r = await self.stub.Configure(req, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise ProtocolError(f"Configure failed: {e.code().name} {e.details() or ''}") from None
        if r.error:
            raise ProtocolError(f"the plugin refused its configuration: {r.error[:500]}")

    # -- hook calls --------------------------------------------------------------------------

    def open_stream(self) -> None:
        self.streaming = True
        self._call = self.stub.Hooks()
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read())]

    async def _write(self) -> None:
        call, outbox = self._call, self._outbox
        try:
            while True:
                await call.write(await outbox.get())
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as e:
            self._break(f"hook stream write failed: {e}")

    async def _read(self) -> None:
        pending = self._pending
        reason = "the plugin closed the hook stream"
        try:
            async for resp in self._call:
                fut = pending.pop(resp.id, None)
                if fut is None:
                    if 0 < resp.id <= self._last_id:  # its caller gave up (timeout, hang-up)
                        log.debug("plugin %s answered request %d late", self.name, resp.id)
                    else:
                        log.warning("plugin %s answered request id %d, which was never sent",
                                    self.name, resp.id)
                elif not fut.done():
                    fut.set_result(resp)
        except grpc.aio.AioRpcError as e:
            reason = f"hook stream failed: {e.code().name} {e.details() or ''}".rstrip()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bad frame must not kill the reader silently
            reason = f"hook stream failed: {type(e).__name__}: {e}"
        self._break(reason)

    def _break(self, reason: str) -> None:
        if not self.broken.is_set():
            self.broken_reason = reason
            self.broken.set()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(PluginUnavailable(reason))

    async def call(self, hook: int, ctx: HookContext) -> HookResult:
        self._last_id = rid = next(self._ids)
        req = pb.HookRequest(id=rid, hook=cast(Any, hook), context=context_to_pb(ctx))
        if not self.streaming:
            try:
                resp = await self.stub.HandleHook(req)
            except grpc.aio.AioRpcError as e:
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise PluginUnavailable(e.details() or e.code().name) from None
                raise CallError(f"HandleHook failed: {e.code().name} {e.details() or ''}") from None
            if resp is None:  # grpc.aio's answer when the bytes do not parse
                raise CallError("malformed reply: the answer is not a HookResponse")
            return response_result(resp)
        if self.broken.is_set():
            raise PluginUnavailable(self.broken_reason)
        fut: asyncio.Future[pb.HookResponse] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = fut
        self._outbox.put_nowait(req)
        try:
            resp = await fut
        finally:
            self._pending.pop(req.id, None)  # on timeout (cancellation) too
        return response_result(resp)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def end_stream(self) -> None:
        """Close the hook stream (waiting calls fail) so the plugin can stop at once."""
        for t in self._tasks:
            t.cancel()
        if self._call is not None:
            self._call.cancel()
        self._break("the plugin is stopping")

    async def close(self) -> None:
        self.end_stream()
        await self.channel.close(grace=None)
