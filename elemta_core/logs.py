"""Structured logging: ``key=value`` text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

from elemta_core.config.model import LogFormat, LoggingConfig


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k in ("plugin", "queue_id", "session"):
            v = getattr(record, k, None)
            if v is not None:
                d[k] = v
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(cfg: LoggingConfig) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler = (logging.FileHandler(cfg.file) if cfg.file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(JSONFormatter() if cfg.format is LogFormat.JSON
                         else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    # aiosmtpd logs every command line at INFO; keep that for debug runs only.
    logging.getLogger("mail.log").setLevel(logging.WARNING if cfg.level.lower() != "debug"
                                           else logging.DEBUG)
