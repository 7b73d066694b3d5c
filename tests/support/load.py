"""Steady SMTP load that records only what the server acknowledged, for crash tests."""

from __future__ import annotations

import smtplib
import threading
import time
from typing import Self

from tests.support.server import ServerProcess


class AckedLoad:
    """``clients`` threads send one message per recipient over reused connections, riding out
    server restarts; ``acked`` holds each recipient whose message got a 250."""

    def __init__(self, srv: ServerProcess, clients: int = 4, prefix: str = "load") -> None:
        self.srv = srv
        self.prefix = prefix
        self._acked: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(clients)]

    def _client(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.srv.port, timeout=5) as s:
                    while not self._stop.is_set():
                        rcpt = f"{self.prefix}{n}x{i}@localhost"
                        i += 1
                        s.sendmail("a@example.org", [rcpt], b"Subject: load\r\n\r\nbody\r\n")
                        with self._lock:
                            self._acked.append(rcpt)  # only after the 250
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    @property
    def acked(self) -> list[str]:
        with self._lock:
            return list(self._acked)

    def missing(self, timeout: float) -> list[str]:
        """Acknowledged recipients whose message has not reached its Maildir by ``timeout``."""
        deadline = time.monotonic() + timeout
        missing = self.acked
        while missing and time.monotonic() < deadline:
            missing = [a for a in missing if not self.srv.maildir_messages(a)]
            time.sleep(0.1)
        return missing
