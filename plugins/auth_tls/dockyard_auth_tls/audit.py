"""The audit file: one JSON line per request, appended with one ``write(2)``, rotated by size.

``logging.handlers.RotatingFileHandler`` costs about 40 µs a record (it formats each record
twice and seeks to check the size); this costs about 1 µs, which matters on a path every request
takes. Rotation keeps ``path.1`` ... ``path.N`` (``path.1`` the newest), as logrotate and the
logging module name them; a line is never split across files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("dockyard.auth_tls")


class AuditFile:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = Path(path), max_bytes, backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # records name who did what: not for every local user
        return fd

    def write(self, line: bytes) -> None:
        """Append one line (ending in ``\\n``); an I/O error is logged, never raised into a request."""
        try:
            if self.max_bytes and self.size and self.size + len(line) > self.max_bytes:
                self.rotate()
            os.write(self.fd, line)
            self.size += len(line)
        except OSError as exc:
            log.error("cannot write the audit log %s: %s", self.path, exc)

    def rotate(self) -> None:
        os.close(self.fd)
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.fd = self._open()
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
