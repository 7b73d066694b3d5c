"""Serving a plugin: handshake, gRPC services, parent watch and logging (go-plugin's Serve).

The server starts us with a magic cookie and the protocol versions it speaks in the
environment; we listen on a unix socket in the directory it gave us, print the handshake
line ``1|1|unix|/path|grpc|`` on stdout, and log to stderr, which the server captures.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import TextIO

import grpc

from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2_grpc
from elemta_plugin._proto.grpc_health.v1 import health_pb2, health_pb2_grpc
from elemta_plugin._proto.plugin import grpc_controller_pb2, grpc_controller_pb2_grpc
from elemta_plugin.constants import (
    APP_PROTOCOL_VERSION,
    CORE_PROTOCOL_VERSION,
    ENV_CLIENT_CERT,
    ENV_PROTOCOL_VERSIONS,
    ENV_SOCKET_DIR,
    HEALTH_SERVICE,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    NOT_A_PLUGIN,
)
from elemta_plugin.plugin import Plugin

log = logging.getLogger("elemta_plugin")

#: How often the parent is checked (the server also sets PR_SET_PDEATHSIG; this is the
#: fallback for platforms and launchers without it).
PARENT_POLL_S = 0.5


class PluginServicer(plugin_pb2_grpc.PluginServicer):
    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin

    async def Describe(self, request: pb.DescribeRequest,
                       context: grpc.aio.ServicerContext) -> pb.DescribeResponse:
        if request.protocol_version and request.protocol_version != APP_PROTOCOL_VERSION:
            log.error("server speaks protocol version %d, this plugin speaks %d",
                      request.protocol_version, APP_PROTOCOL_VERSION)
        return self.plugin.describe()

    async def Configure(self, request: pb.ConfigureRequest,
                        context: grpc.aio.ServicerContext) -> pb.ConfigureResponse:
        return pb.ConfigureResponse(error=await self.plugin.apply_config(request))

    async def HandleHook(self, request: pb.HookRequest,
                         context: grpc.aio.ServicerContext) -> pb.HookResponse:
        return self.plugin.handle_now(request) or await self.plugin.handle(request)

    async def Hooks(self, request_iterator: AsyncIterator[pb.HookRequest],
                    context: grpc.aio.ServicerContext) -> AsyncIterator[pb.HookResponse]:
        """Answers go out as they are ready, so a slow call never holds up a quick one."""
        out: asyncio.Queue[pb.HookResponse | None] = asyncio.Queue()
        plugin = self.plugin
        tasks: set[asyncio.Task[None]] = set()

        async def slow(req: pb.HookRequest) -> None:
            out.put_nowait(await plugin.handle(req))

        async def read() -> None:
            try:
                async for req in request_iterator:
                    resp = plugin.handle_now(req)
                    if resp is not None:
                        out.put_nowait(resp)
                    else:
                        t = asyncio.create_task(slow(req))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)
            finally:
                out.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (resp := await out.get()) is not None:
                yield resp
        finally:
            reader.cancel()
            for t in list(tasks):
                t.cancel()


class HealthServicer(health_pb2_grpc.HealthServicer):
    SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", HEALTH_SERVICE):
            return health_pb2.HealthCheckResponse(
                status=health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        return self.SERVING

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext
                    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        yield await self.Check(request, context)
        await asyncio.Event().wait()  # serving until the stream is closed


class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    async def Shutdown(self, request: grpc_controller_pb2.Empty,
                       context: grpc.aio.ServicerContext) -> grpc_controller_pb2.Empty:
        self.stop.set()
        return grpc_controller_pb2.Empty()


def check_environment() -> None:
    """Exit with a clear message unless a server that speaks our protocol launched us."""
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write(NOT_A_PLUGIN)
        sys.exit(1)
    offered = os.environ.get(ENV_PROTOCOL_VERSIONS, str(APP_PROTOCOL_VERSION))
    versions = {v.strip() for v in offered.split(",") if v.strip()}
    if str(APP_PROTOCOL_VERSION) not in versions:
        sys.stderr.write(f"protocol version mismatch: the server speaks {offered}, "
                         f"this plugin speaks {APP_PROTOCOL_VERSION}\n")
        sys.exit(1)


def mtls_credentials(client_cert_pem: bytes) -> tuple[grpc.ServerCredentials, str]:
    """go-plugin's AutoMTLS, plugin side: a fresh key and self-signed ``localhost``
    certificate; only the host's certificate (``PLUGIN_CLIENT_CERT``) may connect. Returns
    the credentials and the handshake's sixth field (our certificate, DER, base64 without
    padding). Needs ``cryptography``."""
    import base64
    import datetime

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        sys.stderr.write("ERROR the server asks for mTLS on the plugin socket (mtls = true), "
                         "which needs the Python package 'cryptography': pip install "
                         "cryptography\n")
        sys.exit(1)
    x509.load_pem_x509_certificate(client_cert_pem)  # fail early on a bad PLUGIN_CLIENT_CERT
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elemta plugin"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    creds = grpc.ssl_server_credentials(
        [(key_pem, cert.public_bytes(serialization.Encoding.PEM))],
        root_certificates=client_cert_pem, require_client_auth=True)
    der = cert.public_bytes(serialization.Encoding.DER)
    return creds, base64.b64encode(der).decode().rstrip("=")


def socket_path() -> str:
    base = os.environ.get(ENV_SOCKET_DIR) or tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="plugin", dir=base)
    os.close(fd)
    os.unlink(path)
    return path


async def watch_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("parent %d is gone; exiting", parent)
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


async def run(plugin: Plugin, handshake: TextIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Whole messages travel on the message hook: lift gRPC's 4 MiB default.
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1),
                                      ("grpc.max_send_message_length", -1)])
    # (the generated registration functions are untyped)
    plugin_pb2_grpc.add_PluginServicer_to_server(  # type: ignore[no-untyped-call]
        PluginServicer(plugin), server)
    health_pb2_grpc.add_HealthServicer_to_server(  # type: ignore[no-untyped-call]
        HealthServicer(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(  # type: ignore[no-untyped-call]
        ControllerServicer(stop), server)
    path = socket_path()
    client_cert = os.environ.get(ENV_CLIENT_CERT, "")
    cert_field = ""
    if client_cert:
        creds, cert_field = mtls_credentials(client_cert.encode())
        server.add_secure_port(f"unix:{path}", creds)
    else:
        server.add_insecure_port(f"unix:{path}")
    await server.start()
    handshake.write(f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{path}|grpc|"
                    f"{cert_field}\n")
    handshake.close()
    watcher = asyncio.create_task(watch_parent(stop))
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        await server.stop(grace=1.0)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def serve(plugin: Plugin) -> None:
    check_environment()
    logging.basicConfig(
        stream=sys.stderr, level=os.environ.get("ELEMTA_PLUGIN_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    # stdout carries the handshake line only: keep it aside and send stray prints to stderr.
    handshake = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(plugin, handshake))
