"""Email authentication: SPF, DKIM (verify and sign), DMARC, ARC, Authentication-Results.

One module per concern; the plugins share the ``[authentication]`` section
(:class:`~builtin_plugins.auth.config.AuthConfig`) and the core's DNS resolver.
"""
