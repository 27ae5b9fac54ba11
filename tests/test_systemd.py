"""systemd integration: the sd_notify client against a real datagram socket, the journal log
format, and the unit file (systemd-analyze verify, the settings the issue asks for)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from notesight.device.systemd import (
    JournalFormatter,
    Notifier,
    under_systemd,
    watchdog_interval_s,
)

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "notesight.service"
INSTALLED_NOTESIGHT = "/opt/notesight/bin/notesight"


@pytest.fixture
def listener(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, str(path)
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


# --------------------------------------------------------------------------------------------
# sd_notify
# --------------------------------------------------------------------------------------------


def test_ready_status_stopping_reach_the_socket(listener) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("listening to USB mic")
    notifier.ready("again")  # READY=1 is sent once
    notifier.status("listening to USB mic")  # unchanged: not sent again
    notifier.status("no microphone: plug in the USB microphone")
    notifier.stopping()
    notifier.close()
    assert drain(sock) == [
        "READY=1\nSTATUS=listening to USB mic",
        "STATUS=no microphone: plug in the USB microphone",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"notesight-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert drain(sock) == ["READY=1"]
    finally:
        sock.close()


def test_watchdog_is_sent_at_half_the_timeout(listener) -> None:
    sock, path = listener
    now = [100.0]
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env, clock=lambda: now[0])
    assert notifier.watchdog_interval_s == 5.0
    for step in range(23):  # 0, 0.5, ..., 11 s: one call per "block"
        now[0] = 100.0 + step * 0.5
        notifier.watchdog()
    assert drain(sock) == ["WATCHDOG=1"] * 3  # at 0, 5 and 10 s


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


def test_without_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.sent == []


def test_a_vanished_socket_never_stops_the_daemon(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.notify("READY=1") is False
    notifier.watchdog()
    notifier.stopping()


def test_under_systemd() -> None:
    assert under_systemd({"INVOCATION_ID": "abc"})
    assert under_systemd({"JOURNAL_STREAM": "8:12345"})
    assert not under_systemd({"TERM": "xterm"})


def test_journal_format_has_priorities_and_no_timestamps() -> None:
    formatter = JournalFormatter()

    def line(level: int, message: str) -> str:
        record = logging.LogRecord("notesight.device.run", level, __file__, 1, message, (), None)
        return formatter.format(record)

    assert (
        line(logging.ERROR, "leds output stopped") == "<3>notesight.device.run: leds output stopped"
    )
    assert line(logging.WARNING, "w") == "<4>notesight.device.run: w"
    assert line(logging.INFO, "i") == "<6>notesight.device.run: i"
    assert line(logging.DEBUG, "d") == "<7>notesight.device.run: d"
    assert line(logging.CRITICAL, "c") == "<2>notesight.device.run: c"
    assert line(logging.ERROR, "a\nb") == "<3>notesight.device.run: a\n<3>b"


# --------------------------------------------------------------------------------------------
# The unit file
# --------------------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    """Key -> values (a key may repeat, like DeviceAllow=), comments and sections skipped."""
    values: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


def test_unit_has_what_the_service_needs() -> None:
    unit = unit_settings()
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "StateDirectory": ["notesight"],
        "ConfigurationDirectory": ["notesight"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "DevicePolicy": ["closed"],
        "User": ["notesight"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert int(unit["WatchdogSec"][0]) > 0
    assert int(unit["StartLimitBurst"][0]) > 0 and int(unit["StartLimitIntervalSec"][0]) > 0
    # "-": a config with a mistake is reported but does not stop the start (last good config).
    assert unit["ExecStartPre"] == [f"-{INSTALLED_NOTESIGHT} check-config"]
    assert unit["ExecStart"] == [f"{INSTALLED_NOTESIGHT} run --wait-for-mic"]
    assert set(unit["RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    devices = {value.split()[0] for value in unit["DeviceAllow"]}
    assert {"char-alsa", "char-spi", "char-i2c", "char-gpiochip"} <= devices


def test_unit_commands_exist_in_the_cli() -> None:
    from notesight.device.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "--wait-for-mic"])
    assert args.wait_for_mic and args.command == "run"
    assert parser.parse_args(["check-config"]).command == "check-config"


def verifiable_copy(tmp_path: Path) -> Path:
    """The unit with /opt/notesight/bin/notesight pointed at this checkout's command, since
    systemd-analyze verify checks that the programs it names exist."""
    notesight = shutil.which("notesight") or str(Path(sys.executable).parent / "notesight")
    if not Path(notesight).exists():
        pytest.skip("the notesight command is not installed in this environment")
    copy = tmp_path / "notesight.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_NOTESIGHT, notesight))
    return copy


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package systemd)",
)


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    copy = verifiable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


@needs_analyze
def test_systemd_analyze_security_rates_it_ok(tmp_path: Path) -> None:
    copy = verifiable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    # systemd's scale: 0-1.9 SAFE, 2-4.9 OK, 5-6.9 MEDIUM, 7-8.9 EXPOSED, 9+ UNSAFE.
    assert float(match[1]) < 5.0, result.stdout
