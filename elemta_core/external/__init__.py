"""The external plugin host: plugins in any language, run as supervised subprocesses that
speak the ``elemta.plugin.v1`` gRPC hook protocol (HashiCorp go-plugin style).

One concern per module, as in go-plugin:

- :mod:`catalog` — ``[[plugins.external]]`` entries and ``[plugins] include`` files, validated
- :mod:`security` — checksum pinning, file permissions, environment allowlist, rlimits
- :mod:`process` — spawning the child (PR_SET_PDEATHSIG), its stderr into our log, kill
- :mod:`handshake` — the ``CORE|APP|unix|/sock|grpc|`` line and every way it can be wrong
- :mod:`client` — the gRPC connection: Describe, Configure, the hook stream, unary calls
- :mod:`controller` — grpc.health.v1 checks and ``plugin.GRPCController/Shutdown``
- :mod:`convert` — HookContext/HookResult to and from protobuf, validating what comes back
- :mod:`supervisor` — states, restarts with backoff, crash-loop breaker, graceful stop
- :mod:`provider` — the :class:`PluginProvider` the daemon plugs into its plugin manager

Exceptions (:mod:`errors`)::

    ExternalPluginError
     ├── RefusedError         checksum mismatch, unpinned or writable file: never launched
     ├── LaunchError          the child could not be started or exited during start-up
     │    └── HandshakeError  no line, garbage on stdout, bad version, wrong network, no socket
     ├── ProtocolError        Describe/Configure refused, version mismatch, malformed replies
     └── CallError            a hook call failed in the plugin (its error text) or on the wire
"""

import os as _os

# We fork only to exec a plugin at once; gRPC's fork handlers would only log and stall.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
