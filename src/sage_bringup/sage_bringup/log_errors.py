"""ERROR lines of a node's log, for the launcher's console (each distinct message once).

Nodes under `sage launch` log into the run folder, so an ERROR a node reports at start (a
database quarantined or read-only) would otherwise reach nobody. No rclpy here: the
launcher reads the log files the nodes write.
"""
from __future__ import annotations

from pathlib import Path
import re

# rclpy's default console format: [SEVERITY] [stamp] [logger]: message
_ROS_ERROR = re.compile(r'^\[(?:ERROR|FATAL)\] \[[0-9.]+\] \[[^\]]*\]: (.*)$')
# Most bytes read per call: a node flooding its log cannot stall the launcher's loop.
_MAX_READ = 1 << 20


class ErrorLines:
    """Follows one log file and returns the ERROR messages it gained, each message once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # What the file already holds (an earlier run into the same folder) is not news.
        try:
            self._offset = path.stat().st_size
        except OSError:
            self._offset = 0
        self._partial = b''
        self._seen: set[str] = set()

    def new(self) -> list[str]:
        """ERROR messages written since the last call and never returned before."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self._offset:  # the file was replaced: start over
            self._offset, self._partial = 0, b''
        if size == self._offset:
            return []
        try:
            with open(self.path, 'rb') as fh:
                fh.seek(self._offset)
                data = fh.read(min(size - self._offset, _MAX_READ))
        except OSError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b'\n')
        self._partial = lines.pop()
        found = []
        for raw in lines:
            match = _ROS_ERROR.match(raw.decode(errors='replace').rstrip())
            if match and match.group(1) not in self._seen:
                self._seen.add(match.group(1))
                found.append(match.group(1))
        return found
