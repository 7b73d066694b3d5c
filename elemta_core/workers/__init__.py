"""Several worker processes on one port (SO_REUSEPORT), under one supervisor process.

Each worker is a whole Elemta (SMTP, plugins, external plugin processes, spool writer). Worker 0
is the primary: it alone runs the queue (delivery, retries, recovery at start); the others
store mail and hand the queue id to it. The supervisor owns the admin socket and the metrics
endpoint and merges what the workers report.
"""
