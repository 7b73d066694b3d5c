"""What one delivery attempt did for one recipient."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptResult:
    recipient: str
    ok: bool
    permanent: bool = False
    code: int | None = None
    text: str = ""
    destination: str = ""

    @property
    def status(self) -> str:
        return "delivered" if self.ok else ("failed" if self.permanent else "deferred")
