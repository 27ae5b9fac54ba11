"""Talking to systemd: readiness, watchdog and status notifications (`Type=notify`).

systemd passes the address of a datagram socket in $NOTIFY_SOCKET; a service tells it how it is
doing by sending lines such as ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1``
(sd_notify(3)). With ``WatchdogSec=`` set, systemd also passes $WATCHDOG_USEC (and
$WATCHDOG_PID) and restarts the service when no ``WATCHDOG=1`` arrives within that time.

Hand-written rather than a library: the protocol is one `sendto` of a few bytes on an AF_UNIX
datagram socket. The `sdnotify` package has had no release since 2017 and hides send errors;
`systemd-python` needs libsystemd headers and a C build on the Pi. Neither is worth a
dependency for these few lines. Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op,
so `notesight run` behaves the same in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET_VAR = "NOTIFY_SOCKET"
WATCHDOG_USEC_VAR = "WATCHDOG_USEC"
WATCHDOG_PID_VAR = "WATCHDOG_PID"


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when this process was started by systemd (its output then goes to the journal).

    systemd sets $INVOCATION_ID for every service it starts and $JOURNAL_STREAM when stdout or
    stderr is connected to the journal.
    """
    env = os.environ if environ is None else environ
    return bool(env.get("INVOCATION_ID") or env.get("JOURNAL_STREAM"))


def _socket_address(raw: str) -> str | bytes:
    # A leading "@" names a socket in the abstract namespace, spelled with a NUL byte.
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of $WATCHDOG_USEC, or None when there is no watchdog.

    Half the timeout, as sd_watchdog_enabled(3) recommends, so one late block does not get the
    daemon killed. $WATCHDOG_PID, when set, must be this process (not a child it started).
    """
    env = os.environ if environ is None else environ
    usec = env.get(WATCHDOG_USEC_VAR, "")
    pid = env.get(WATCHDOG_PID_VAR, "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring $%s=%r: not a number of microseconds", WATCHDOG_USEC_VAR, usec)
        return None
    return value / 2e6 if value > 0 else None


class Notifier:
    """Sends sd_notify messages; every method is a no-op when not run by systemd.

    A send that fails (systemd restarted, socket gone) is logged once at debug level and
    otherwise ignored: notifications must never stop the daemon.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET_VAR, "")
        self._address = _socket_address(raw) if raw else None
        self._socket: socket.socket | None = None
        self._clock = clock
        self.watchdog_interval_s = watchdog_interval_s(env) if raw else None
        self._next_watchdog = 0.0
        self._ready = False
        self._last_status = ""
        self.sent: list[str] = []  # what was sent, for logs and tests

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of `lines`; True when it was delivered."""
        if self._address is None:
            return False
        message = "\n".join(lines)
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message, exc)
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str = "") -> None:
        """READY=1, once: the service is up (systemd's start job finishes here)."""
        if self._ready:
            return
        self._ready = True
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        self.notify(*lines)

    def status(self, text: str) -> None:
        """STATUS=text (what `systemctl status notesight` shows), sent only when it changes."""
        if text == self._last_status:
            return
        self._last_status = text
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """WATCHDOG=1 if half the watchdog timeout has passed since the last one.

        Cheap enough to call once per audio block: it only reads the clock in between.
        """
        if self.watchdog_interval_s is None:
            return
        now = self._clock()
        if now < self._next_watchdog:
            return
        self._next_watchdog = now + self.watchdog_interval_s
        self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 match the READY=1 that ends the reload.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def reloaded(self, status: str) -> None:
        self._last_status = status
        self.notify("READY=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


# syslog priorities (sd-daemon(3)) of the logging levels.
_PRIORITIES = ((logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """Log lines for the journal: ``<3>notesight.device.run: message``.

    journald stamps each line with the time and the unit itself, so there is no timestamp here,
    and it reads the ``<N>`` prefix as the syslog priority (SyslogLevelPrefix=, on by default),
    so `journalctl -u notesight -p warning` shows the warnings and errors only. Every line of a
    multi-line message gets the prefix, or its continuation lines would be logged as info.
    """

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())
