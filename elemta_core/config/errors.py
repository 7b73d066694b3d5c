"""Configuration errors: one line naming the file, the key and the fix."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, key: str, problem: str, fix: str = "", file: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        self.file = file
        super().__init__(self.line())

    def line(self) -> str:
        where = f"{self.file}: " if self.file else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{where}{self.key}: {self.problem}{fix}"

    def in_file(self, file: str) -> ConfigError:
        return ConfigError(self.key, self.problem, self.fix, file)
