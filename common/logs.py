"""JSON logs on stdout, with citizen ID numbers and credit codes masked wherever they appear."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime

# 18-character tokens not embedded in longer alphanumerics: citizen IDs and credit codes alike.
_SUBJECT_CODE = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-HJ-NP-RTUW-Y]{2})[0-9A-HJ-NP-RTUW-Y]{14}([0-9A-HJ-NP-RTUW-Y]{2})(?![0-9A-Za-z])"
)


def mask_identifiers(text: str) -> str:
    return _SUBJECT_CODE.sub(lambda m: f"{m.group(1)}{'*' * 14}{m.group(2)}", text)


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return mask_identifiers(json.dumps(entry, ensure_ascii=False, default=str))


class RepeatFilter(logging.Filter):
    """The drivers log every failed reconnect; during an outage that is thousands of the same line. A line
    of theirs already logged within `window` seconds is counted instead, and the count goes with the next
    one that passes."""

    def __init__(self, loggers: tuple[str, ...], window: float = 60.0) -> None:
        super().__init__()
        self.loggers = loggers
        self.window = window
        self.last: dict[tuple[str, object], float] = {}
        self.suppressed: dict[tuple[str, object], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.loggers):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self.last.get(key, -self.window) < self.window:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self.last[key] = now
        if repeated := self.suppressed.pop(key, 0):
            record.repeated = repeated  # how many like it were left out since the last one
        if len(self.last) > 1000:  # messages with ever-new templates must not grow it without end
            self.last.clear()
        return True


DRIVER_LOGGERS = ("aiokafka", "kafka", "pymongo", "faust", "mode")


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RepeatFilter(DRIVER_LOGGERS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.access").handlers[:] = []
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).propagate = True
        logging.getLogger(name).handlers[:] = []
