"""Names and versions of the handshake (go-plugin's constants.go).

The Python SDK keeps its own copy (``elemta_plugin.constants``): it must not import the
server. ``tests/unit/external/test_constants.py`` pins the two equal.
"""

from __future__ import annotations

#: go-plugin's core protocol version: the first field of the handshake line.
CORE_PROTOCOL_VERSION = 1
#: The elemta.plugin.v1 hook protocol: the second field, and Describe's protocol_version.
APP_PROTOCOL_VERSION = 1

MAGIC_COOKIE_KEY = "ELEMTA_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "3f1b7c52e0a94d6c8e2f5a71c4d9b806"

ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
ENV_MIN_PORT = "PLUGIN_MIN_PORT"
ENV_MAX_PORT = "PLUGIN_MAX_PORT"
#: go-plugin's AutoMTLS: the host's client certificate (PEM), set only when mTLS is on.
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"
ENV_PLUGIN_NAME = "ELEMTA_PLUGIN_NAME"
ENV_STATE_DIR = "ELEMTA_PLUGIN_STATE_DIR"

#: The grpc.health.v1 service name go-plugin registers.
HEALTH_SERVICE = "plugin"
