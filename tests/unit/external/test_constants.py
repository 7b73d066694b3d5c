"""The SDK must not import the server, so both keep the handshake constants: pin them equal."""

from __future__ import annotations

from elemta_core.external import constants as host


def test_sdk_and_host_agree() -> None:
    from elemta_plugin import constants as sdk

    for name in ("CORE_PROTOCOL_VERSION", "APP_PROTOCOL_VERSION", "MAGIC_COOKIE_KEY",
                 "MAGIC_COOKIE_VALUE", "ENV_PROTOCOL_VERSIONS", "ENV_SOCKET_DIR",
                 "ENV_PLUGIN_NAME", "ENV_STATE_DIR", "HEALTH_SERVICE", "ENV_CLIENT_CERT"):
        assert getattr(sdk, name) == getattr(host, name), name


def test_the_proto_declares_the_same_version() -> None:
    from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb

    assert pb.PROTOCOL_VERSION_CURRENT == host.APP_PROTOCOL_VERSION
