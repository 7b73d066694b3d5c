"""Content scanning on the ``message`` hook: Rspamd (antispam) and clamd (antivirus).

Each scanner has a protocol client (``rspamd_client``, ``clamd_client``) that reports what the
daemon found, and a plugin (``rspamd``, ``clamav``) that turns the finding into a result
according to the ``[antispam]`` / ``[antivirus]`` section (``config``).
"""
