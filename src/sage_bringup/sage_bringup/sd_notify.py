"""systemd's notify protocol (sd_notify): READY=1, WATCHDOG=1, STATUS=..., STOPPING=1.

A service of Type=notify gets $NOTIFY_SOCKET (a unix datagram socket, '@' = abstract
namespace) and, with WatchdogSec=, $WATCHDOG_USEC and $WATCHDOG_PID. Each notification is
one datagram of newline-separated KEY=VALUE lines. No rclpy, no systemd library.
"""
from __future__ import annotations

import os
import socket

ENV_SOCKET = 'NOTIFY_SOCKET'
ENV_WATCHDOG_USEC = 'WATCHDOG_USEC'
ENV_WATCHDOG_PID = 'WATCHDOG_PID'


def socket_address(value: str) -> str:
    """The address to send to: '@name' is the abstract socket '\\0name'."""
    return '\0' + value[1:] if value.startswith('@') else value


class Notifier:
    """Sends notifications to systemd; every call is a no-op outside a notify service.

    Args:
        environ: the environment to read (default os.environ).
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get(ENV_SOCKET, '')
        self.watchdog_s = watchdog_seconds(env)
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str) -> bool:
        """Send KEY=VALUE lines in one datagram; False when not under systemd or it failed.

        A lost notification must not stop the robot: a missing watchdog ping makes systemd
        restart the service, which is the intended outcome of a failure here.
        """
        if self._sock is None:
            return False
        payload = '\n'.join(f'{k}={v}' for k, v in fields.items()).encode()
        try:
            self._sock.sendto(payload, socket_address(self.address))
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY='1', STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG='1')

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def stopping(self, status: str) -> bool:
        return self.notify(STOPPING='1', STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_seconds(environ: dict[str, str]) -> float | None:
    """WatchdogSec in seconds when the watchdog is enabled for this process, else None."""
    usec = environ.get(ENV_WATCHDOG_USEC, '')
    pid = environ.get(ENV_WATCHDOG_PID, '')
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    return int(usec) / 1e6
