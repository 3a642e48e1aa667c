"""A rotating log file beside stderr, for nodes run without journald (a container, a plain shell).

Size-based rotation in the process (``RotatingFileHandler``) needs no logrotate and no signal to
reopen the file; under systemd leave ``log_file`` unset and let journald keep stderr.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from nodeclient.errors import ConfigError

__all__ = ["LOG_FORMAT", "add_rotating_log"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_rotating_log(path: Path, *, max_bytes: int, backups: int, level: int = logging.INFO) -> RotatingFileHandler:
    """Also log records of ``level`` and above to ``path``, rotated at ``max_bytes`` keeping ``backups`` files."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"log_file {str(path)!r} cannot be opened for writing: {exc.strerror or exc}") from None
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    # The root level gates every handler: lower it so the file gets INFO even when stderr stays at WARNING.
    if root.level > level:
        root.setLevel(level)
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(logging.WARNING)
    return handler
