"""`notesight doctor`: check everything the daemon needs and say, one line each, what is wrong
and how to fix it.

Each check returns `Finding`s; nothing here raises for a problem it finds, so one broken part
never hides the others. The checks read the same config the daemon would, and only look at the
outputs the config turns on. What they touch (the /dev folder, PortAudio, systemctl, the user
database) is injectable through `Probe`, so the tests run them against real folders, a real
broker and a fake PortAudio.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from .config import Settings, default_config_path, load_settings
from .errors import ConfigError, NotesightError, explain_os_error

Verdict = Literal["ok", "warn", "FAIL", "skip"]

SERVICE_USER = "notesight"
SERVICE_NAME = "notesight"
SERVICE_GROUPS = ("audio", "gpio", "spi", "i2c")
STATE_DIR = Path("/var/lib/notesight")


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    what: str  # "mic", "config", "leds", ...
    message: str  # what is wrong and how to fix it (or what is fine)

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.what}: {self.message}"


@dataclass
class Probe:
    """Where the checks look; the defaults are the real machine."""

    dev: Path = Path("/dev")
    pyaudio_factory: Callable[[], Any] | None = None
    systemctl: str | None = field(default_factory=lambda: shutil.which("systemctl"))
    service_user: str = SERVICE_USER
    state_dir: Path = STATE_DIR
    connect_timeout_s: float = 3.0


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


def check_config(path: Path | None) -> tuple[list[Finding], Settings | None]:
    path = path if path is not None else default_config_path()
    where = str(path) if path is not None else "built-in defaults (no config file)"
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return [Finding("FAIL", "config", line) for line in str(exc).splitlines()], None
    return [Finding("ok", "config", f"{where} is valid")], settings


# ---------------------------------------------------------------------------------------------
# microphone
# ---------------------------------------------------------------------------------------------


def check_microphone(settings: Settings, probe: Probe, service_running: bool) -> list[Finding]:
    from .audio import MicrophoneSource, list_input_devices

    wanted = settings.audio.device
    try:
        devices = list_input_devices(probe.pyaudio_factory)
    except NotesightError as exc:
        return [Finding("FAIL", "mic", str(exc))]
    if not devices:
        return [
            Finding("FAIL", "mic", "no microphone found: plug in the USB microphone and try again")
        ]
    if service_running:
        # The service holds the microphone: opening it here would only report "busy".
        names = ", ".join(f"{d.index} '{d.name}'" for d in devices)
        return [Finding("ok", "mic", f"inputs {names}; the running service is using one")]
    try:
        mic = MicrophoneSource(
            wanted or None,
            settings.audio.sample_rate,
            settings.audio.block_size,
            pyaudio_factory=probe.pyaudio_factory,
        )
    except NotesightError as exc:
        return [Finding("FAIL", "mic", str(exc))]
    mic.close()
    name = f"'{mic.device.name}' (device {mic.device.index})"
    if mic.sample_rate != settings.audio.sample_rate:
        return [
            Finding(
                "warn",
                "mic",
                f"{name} does not take {settings.audio.sample_rate} Hz, only {mic.sample_rate} "
                f"Hz: set [audio].sample_rate = {mic.sample_rate}",
            )
        ]
    return [Finding("ok", "mic", f"{name} opens at {mic.sample_rate} Hz")]


# ---------------------------------------------------------------------------------------------
# output devices
# ---------------------------------------------------------------------------------------------


def _device_node(what: str, label: str, probe: Probe, name: str) -> Finding:
    """A device node must exist and be readable and writable by whoever runs the doctor."""
    shown = f"/dev/{name}"  # the name the caretaker knows (and the fixes are keyed on)
    try:
        fd = os.open(probe.dev / name, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return Finding("FAIL", what, explain_os_error(exc, shown, label))
    os.close(fd)
    return Finding("ok", what, f"{label} {shown} opens")


def check_outputs(settings: Settings, probe: Probe) -> list[Finding]:
    findings: list[Finding] = []
    leds = getattr(settings, "leds", None)
    if leds is not None:
        backend = getattr(leds, "backend", "spi")
        if backend == "spi":
            name = Path(leds.spi_device).name
            findings.append(_device_node("leds", "LED strip (SPI)", probe, name))
        else:
            findings.append(Finding("skip", "leds", f'backend = "{backend}" needs no SPI device'))
    oled = getattr(settings, "oled", None)
    if oled is not None:
        if not oled.enabled:
            findings.append(Finding("skip", "oled", "off in the config ([oled].enabled = false)"))
        elif oled.interface == "i2c":
            name = f"i2c-{oled.i2c_port}"
            findings.append(_device_node("oled", "OLED (I2C)", probe, name))
        else:
            name = f"spidev{oled.spi_port}.{oled.spi_device}"
            findings.append(_device_node("oled", "OLED (SPI)", probe, name))
    motor = getattr(settings, "motor", None)
    if motor is not None:
        if not motor.enabled:
            findings.append(Finding("skip", "motor", "off in the config ([motor].enabled = false)"))
        else:
            chips = sorted(probe.dev.glob("gpiochip*"))
            if not chips:
                findings.append(
                    Finding(
                        "FAIL",
                        "motor",
                        f"no GPIO chip in {probe.dev} (gpiochip*): the motor needs a Raspberry "
                        "Pi's GPIO pins",
                    )
                )
            else:
                findings.append(_device_node("motor", "GPIO", probe, chips[0].name))
    return findings


# ---------------------------------------------------------------------------------------------
# broker
# ---------------------------------------------------------------------------------------------


def check_broker(host: str, port: int, timeout_s: float = 3.0) -> Finding:
    """Can a TCP connection to the MQTT broker be made? (Login and TLS are the daemon's.)"""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        return Finding(
            "FAIL", "broker", f"cannot find the host {host} ({exc.strerror}): fix [mqtt].host"
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__.replace("Error", "").lower() or str(exc)
        fix = (
            "start it (sudo systemctl start mosquitto)"
            if host in ("localhost", "127.0.0.1", "::1")
            else "check that the broker runs and [mqtt].host and .port are right"
        )
        return Finding("FAIL", "broker", f"cannot reach the MQTT broker {where} ({reason}): {fix}")
    return Finding("ok", "broker", f"MQTT broker {where} accepts connections")


def check_mqtt(settings: Settings, probe: Probe) -> list[Finding]:
    mqtt = getattr(settings, "mqtt", None)
    if mqtt is None or not mqtt.enabled:
        return [Finding("skip", "broker", "MQTT is off in the config ([mqtt].enabled = false)")]
    return [check_broker(mqtt.host, mqtt.port, probe.connect_timeout_s)]


# ---------------------------------------------------------------------------------------------
# service and permissions
# ---------------------------------------------------------------------------------------------


def service_state(probe: Probe) -> str:
    """`systemctl is-active notesight`: active, inactive, failed, ... or "" without systemd."""
    if probe.systemctl is None:
        return ""
    try:
        result = subprocess.run(
            [probe.systemctl, "is-active", SERVICE_NAME],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def check_service(state: str) -> list[Finding]:
    if state == "active":
        return [Finding("ok", "service", "notesight.service is running")]
    if state in ("", "unknown"):
        return [
            Finding(
                "skip",
                "service",
                "notesight.service is not installed (sudo ./install.sh --service installs it)",
            )
        ]
    if state == "failed":
        return [
            Finding(
                "FAIL",
                "service",
                "notesight.service failed: see sudo journalctl -u notesight -b, fix what it "
                "says, then sudo systemctl restart notesight",
            )
        ]
    return [
        Finding("warn", "service", f"notesight.service is {state}: sudo systemctl start notesight")
    ]


def _existing_groups(names: Iterable[str]) -> list[grp.struct_group]:
    groups = []
    for name in names:
        try:
            groups.append(grp.getgrnam(name))
        except KeyError:
            continue  # not a Raspberry Pi (no gpio/spi/i2c groups): nothing to join
    return groups


def check_permissions(probe: Probe) -> list[Finding]:
    user = probe.service_user
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [
            Finding(
                "skip",
                "permissions",
                f"no user {user}: the service is not installed (sudo ./install.sh --service)",
            )
        ]
    findings = []
    missing = [
        g.gr_name
        for g in _existing_groups(SERVICE_GROUPS)
        if user not in g.gr_mem and g.gr_gid != entry.pw_gid
    ]
    if missing:
        findings.append(
            Finding(
                "FAIL",
                "permissions",
                f"user {user} is not in the group(s) {', '.join(missing)}: "
                f"sudo usermod -aG {','.join(missing)} {user}, then sudo systemctl restart "
                "notesight",
            )
        )
    else:
        findings.append(Finding("ok", "permissions", f"user {user} is in the device groups"))
    state = probe.state_dir
    try:
        info = state.stat()
    except OSError as exc:
        findings.append(
            Finding(
                "warn",
                "permissions",
                explain_os_error(exc, state, "state folder")
                + " (systemd creates it when the service starts)",
            )
        )
        return findings
    if info.st_uid != entry.pw_uid:
        owner = _user_name(info.st_uid)
        findings.append(
            Finding(
                "FAIL",
                "permissions",
                f"state folder {state} belongs to {owner}, not {user}: "
                f"sudo chown -R {user}: {state}",
            )
        )
    else:
        findings.append(Finding("ok", "permissions", f"state folder {state} belongs to {user}"))
    return findings


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# ---------------------------------------------------------------------------------------------
# all of it
# ---------------------------------------------------------------------------------------------


def run_checks(config_path: Path | None, probe: Probe | None = None) -> list[Finding]:
    probe = probe or Probe()
    findings, settings = check_config(config_path)
    state = service_state(probe)
    findings += check_service(state)
    findings += check_permissions(probe)
    if settings is None:
        findings.append(Finding("skip", "mic", "not checked: fix the config first"))
        return findings
    findings += check_microphone(settings, probe, service_running=state == "active")
    findings += check_outputs(settings, probe)
    findings += check_mqtt(settings, probe)
    return findings


def doctor(config_path: Path | None, out: IO[str], probe: Probe | None = None) -> int:
    """Print one line per finding; exit status 1 when anything FAILed."""
    findings = run_checks(config_path, probe)
    for finding in findings:
        out.write(finding.line() + "\n")
    failed = sum(f.verdict == "FAIL" for f in findings)
    out.write(f"{failed} problem(s) found\n" if failed else "no problems found\n")
    return 1 if failed else 0
