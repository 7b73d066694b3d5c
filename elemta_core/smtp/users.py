"""The SMTP AUTH users file: ``user:scrypt$N$r$p$salt$hash`` lines, verified off the loop."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(dk).decode()}"


def verify_password(password: bytes, stored: str) -> bool:
    """Constant-time check; an unknown or malformed hash never matches."""
    try:
        scheme, n, r, p, salt, want = stored.split("$")
        if scheme != "scrypt":
            return False
        dk = hashlib.scrypt(password, salt=base64.b64decode(salt), n=int(n), r=int(r),
                            p=int(p), dklen=len(base64.b64decode(want)), maxmem=128 * 1024 * 1024)
        return hmac.compare_digest(dk, base64.b64decode(want))
    except (ValueError, TypeError):
        return False


# A real hash to spend the same time on unknown users as on known ones.
_DUMMY = hash_password("not-a-password-" + os.urandom(8).hex())


class UsersFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, str] = {}
        self._mtime = -1.0

    def _load(self) -> None:
        st = self.path.stat()
        if st.st_mtime == self._mtime:
            return
        users: dict[str, str] = {}
        for lineno, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, h = line.partition(":")
            if not sep or not h.startswith("scrypt$"):
                raise ValueError(f"{self.path}:{lineno}: expected user:scrypt$... "
                                 "(make one with `elemta user hash`)")
            users[user] = h
        self._users, self._mtime = users, st.st_mtime

    def check(self, user: str, password: bytes) -> bool:
        """Blocking (scrypt): run in an executor."""
        self._load()
        stored = self._users.get(user)
        ok = verify_password(password, stored or _DUMMY)
        return ok and stored is not None
