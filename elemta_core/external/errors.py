"""Why an external plugin could not be launched or answered (tree in the package docstring)."""

from __future__ import annotations


class ExternalPluginError(Exception):
    """Base class; the message is the operator-facing explanation."""


class RefusedError(ExternalPluginError):
    """The plugin's files failed verification; it is not launched until they are fixed."""


class LaunchError(ExternalPluginError):
    """The child could not be started, or died or hung before it was ready."""


class HandshakeError(LaunchError):
    """The handshake line was missing or wrong."""


class ProtocolError(ExternalPluginError):
    """The plugin answered something the protocol does not allow."""


class CallError(ExternalPluginError):
    """A hook call failed: the plugin's handler raised, or the reply was malformed."""
