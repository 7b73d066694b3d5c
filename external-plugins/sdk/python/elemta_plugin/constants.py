"""Names and versions both ends of the handshake agree on (go-plugin's constants.go).

The server keeps its own copy (``elemta_core.external.constants``); a test pins them equal,
because the SDK must not import the server.
"""

from __future__ import annotations

#: go-plugin's core protocol version (the first field of the handshake line).
CORE_PROTOCOL_VERSION = 1
#: The elemta.plugin.v1 hook protocol (the second field).
APP_PROTOCOL_VERSION = 1

MAGIC_COOKIE_KEY = "ELEMTA_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "3f1b7c52e0a94d6c8e2f5a71c4d9b806"

#: go-plugin's environment: the app protocol versions the host speaks, comma-separated.
ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
#: Where to put the unix socket (newer go-plugin); go-plugin 1.0.1 uses TMPDIR, set too.
ENV_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
#: go-plugin's AutoMTLS: the host's client certificate (PEM); set only when mTLS is on.
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"
ENV_PLUGIN_NAME = "ELEMTA_PLUGIN_NAME"
ENV_STATE_DIR = "ELEMTA_PLUGIN_STATE_DIR"

#: The grpc.health.v1 service name go-plugin registers.
HEALTH_SERVICE = "plugin"

NOT_A_PLUGIN = (
    "This binary is an Elemta plugin. It is not meant to be executed directly: list it in a "
    "[[plugins.external]] catalog entry and the mail server will launch it, or try it with "
    "`elemta plugin test NAME --hook rcpt_to ...`.\n"
)
