"""`notesight doctor`: one line per check, what is wrong and how to fix it.

The checks run against real things where this machine has them: a real mosquitto broker, real
files standing in for /dev nodes in a temporary folder, the real user and group database; the
microphone is the recording fake of PortAudio, and systemctl a script that records its calls.
"""

from __future__ import annotations

import grp
import io
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from mosquitto import Broker, free_port, mosquitto_available
from service_fakes import MicHardware

from notesight.device.config import load_settings
from notesight.device.doctor import (
    Probe,
    check_broker,
    check_config,
    check_microphone,
    check_outputs,
    check_permissions,
    check_service,
    doctor,
    run_checks,
    service_state,
)

ME = pwd.getpwuid(os.getuid()).pw_name


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def fake_systemctl(tmp_path: Path, state: str) -> tuple[str, Path]:
    """An executable standing in for systemctl: records its arguments, prints `state`."""
    calls = tmp_path / "systemctl.calls"
    script = tmp_path / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho {state}\n')
    script.chmod(0o755)
    return str(script), calls


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def test_a_valid_config_is_ok(tmp_path: Path) -> None:
    findings, settings = check_config(config_file(tmp_path, '[leds]\ncolour = "#00ff00"\n'))
    assert settings is not None and settings.leds.colour == "#00ff00"
    assert [f.verdict for f in findings] == ["ok"]


def test_each_config_problem_is_one_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[audio]\nsample_rate = 22050\n[leds]\ncolour = "red"\n')
    findings, settings = check_config(path)
    assert settings is None
    assert [f.line() for f in findings] == [
        f"FAIL  config: {path}: [audio].sample_rate: must be one of 44100, 48000 (got 22050)",
        f'FAIL  config: {path}: [leds].colour: must be a colour written "#rrggbb", like '
        '"#ff8000" (got "red")',
    ]


# --------------------------------------------------------------------------------------------
# microphone
# --------------------------------------------------------------------------------------------


def test_microphone_opens(tmp_path: Path) -> None:
    hw = MicHardware()
    settings = load_settings(config_file(tmp_path, ""))
    (finding,) = check_microphone(settings, Probe(pyaudio_factory=hw), service_running=False)
    assert finding.line() == f"ok    mic: '{hw.name}' (device 0) opens at 48000 Hz"
    assert hw.streams[0].closed and hw.sessions[-1].terminated  # tried, then let go


def test_microphone_missing(tmp_path: Path) -> None:
    hw = MicHardware()
    hw.unplug()
    settings = load_settings(config_file(tmp_path, ""))
    (finding,) = check_microphone(settings, Probe(pyaudio_factory=hw), service_running=False)
    assert finding.verdict == "FAIL"
    assert "plug in the USB microphone" in finding.message


def test_microphone_named_in_the_config_is_not_there(tmp_path: Path) -> None:
    hw = MicHardware()
    settings = load_settings(config_file(tmp_path, '[audio]\ndevice = "Scarlett"\n'))
    (finding,) = check_microphone(settings, Probe(pyaudio_factory=hw), service_running=False)
    assert finding.verdict == "FAIL"
    assert "no microphone with 'Scarlett' in its name" in finding.message


def test_microphone_at_another_rate_says_what_to_set(tmp_path: Path) -> None:
    hw = MicHardware(rate=44100)
    settings = load_settings(config_file(tmp_path, ""))
    (finding,) = check_microphone(settings, Probe(pyaudio_factory=hw), service_running=False)
    assert finding.verdict == "warn"
    assert finding.message.endswith("set [audio].sample_rate = 44100")


def test_microphone_in_use_by_the_service_is_not_opened(tmp_path: Path) -> None:
    hw = MicHardware()
    settings = load_settings(config_file(tmp_path, ""))
    (finding,) = check_microphone(settings, Probe(pyaudio_factory=hw), service_running=True)
    assert finding.verdict == "ok" and "the running service is using one" in finding.message
    assert hw.streams == []


# --------------------------------------------------------------------------------------------
# output devices
# --------------------------------------------------------------------------------------------


OUTPUTS_ON = """
[leds]
backend = "spi"
[oled]
enabled = true
[motor]
enabled = true
"""


def test_missing_device_nodes_name_the_fix(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    settings = load_settings(config_file(tmp_path, OUTPUTS_ON))
    lines = [f.line() for f in check_outputs(settings, Probe(dev=dev))]
    assert lines == [
        "FAIL  leds: LED strip (SPI) /dev/spidev0.0 does not exist: enable SPI (sudo raspi-config "
        "nonint do_spi 0) and add the user to group spi",
        "FAIL  oled: OLED (I2C) /dev/i2c-1 does not exist: enable I2C (sudo raspi-config nonint "
        "do_i2c 0) and add the user to group i2c",
        f"FAIL  motor: no GPIO chip in {dev} (gpiochip*): the motor needs a Raspberry Pi's GPIO "
        "pins",
    ]


def test_present_device_nodes_are_ok(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("spidev0.0", "i2c-1", "gpiochip0"):
        (dev / name).write_bytes(b"")
    settings = load_settings(config_file(tmp_path, OUTPUTS_ON))
    assert [f.line() for f in check_outputs(settings, Probe(dev=dev))] == [
        "ok    leds: LED strip (SPI) /dev/spidev0.0 opens",
        "ok    oled: OLED (I2C) /dev/i2c-1 opens",
        "ok    motor: GPIO /dev/gpiochip0 opens",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens any file whatever its mode")
def test_device_node_without_permission(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "spidev0.0").write_bytes(b"")
    (dev / "spidev0.0").chmod(0)
    settings = load_settings(config_file(tmp_path, '[leds]\nbackend = "spi"\n'))
    (finding, *_) = check_outputs(settings, Probe(dev=dev))
    assert finding.line().startswith("FAIL  leds: no permission to open LED strip (SPI)")


def test_outputs_that_are_off_are_skipped(tmp_path: Path) -> None:
    settings = load_settings(config_file(tmp_path, ""))
    verdicts = [(f.what, f.verdict) for f in check_outputs(settings, Probe(dev=tmp_path))]
    assert verdicts == [("leds", "skip"), ("oled", "skip"), ("motor", "skip")]


# --------------------------------------------------------------------------------------------
# broker
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")
def test_broker_reachable_and_not(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    try:
        ok = check_broker("127.0.0.1", broker.port)
    finally:
        broker.stop()
    assert ok.line() == f"ok    broker: MQTT broker 127.0.0.1:{broker.port} accepts connections"
    down = check_broker("localhost", broker.port)
    assert down.verdict == "FAIL"
    assert "Connection refused" in down.message
    assert down.message.endswith("start it (sudo systemctl start mosquitto)")


def test_unknown_broker_host() -> None:
    finding = check_broker("no-such-host.invalid", free_port())
    assert finding.verdict == "FAIL"
    assert finding.message.startswith("cannot find the host no-such-host.invalid")
    assert finding.message.endswith("fix [mqtt].host")


# --------------------------------------------------------------------------------------------
# service and permissions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "verdict"), [("active", "ok"), ("failed", "FAIL"), ("inactive", "warn")]
)
def test_service_state(tmp_path: Path, state: str, verdict: str) -> None:
    systemctl, calls = fake_systemctl(tmp_path, state)
    assert service_state(Probe(systemctl=systemctl)) == state
    assert calls.read_text() == "is-active notesight\n"
    (finding,) = check_service(state)
    assert finding.verdict == verdict


def test_no_systemd_means_not_installed() -> None:
    assert service_state(Probe(systemctl=None)) == ""
    assert check_service("")[0].verdict == "skip"


def test_user_missing_from_device_groups(tmp_path: Path) -> None:
    groups = [g for g in ("audio", "gpio", "spi", "i2c") if _group_exists(g)]
    missing = [g for g in groups if ME not in grp.getgrnam(g).gr_mem]
    if not missing:
        pytest.skip(f"{ME} is in every device group on this machine")
    findings = check_permissions(Probe(service_user=ME, state_dir=tmp_path))
    assert findings[0].line() == (
        f"FAIL  permissions: user {ME} is not in the group(s) {', '.join(missing)}: "
        f"sudo usermod -aG {','.join(missing)} {ME}, then sudo systemctl restart notesight"
    )
    assert findings[1].line() == f"ok    permissions: state folder {tmp_path} belongs to {ME}"


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_no_service_user_is_skipped() -> None:
    (finding,) = check_permissions(Probe(service_user="notesight-nobody-here"))
    assert finding.verdict == "skip"


# --------------------------------------------------------------------------------------------
# the whole report
# --------------------------------------------------------------------------------------------


def test_report_one_line_each_and_exit_status(tmp_path: Path) -> None:
    systemctl, _ = fake_systemctl(tmp_path, "inactive")
    probe = Probe(
        dev=tmp_path,
        pyaudio_factory=MicHardware(),
        systemctl=systemctl,
        service_user="notesight-nobody-here",
    )
    out = io.StringIO()
    assert doctor(config_file(tmp_path, ""), out, probe) == 0
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "ok    config",
        "warn  service",
        "skip  permissions",
        "ok    mic",
        "skip  leds",
        "skip  oled",
        "skip  motor",
        "skip  broker",
    ]
    assert lines[-1] == "no problems found"

    MicHardware.unplug(probe.pyaudio_factory)
    out = io.StringIO()
    assert doctor(config_file(tmp_path, ""), out, probe) == 1
    assert "FAIL  mic: no microphone found" in out.getvalue()
    assert out.getvalue().endswith("1 problem(s) found\n")


def test_bad_config_skips_the_checks_that_need_it(tmp_path: Path) -> None:
    findings = run_checks(
        config_file(tmp_path, "[nonsense]\n"),
        Probe(systemctl=None, service_user="notesight-nobody-here"),
    )
    assert findings[0].verdict == "FAIL" and "unknown section" in findings[0].message
    assert findings[-1].line() == "skip  mic: not checked: fix the config first"


def test_the_command_prints_lines_never_a_traceback(tmp_path: Path) -> None:
    path = config_file(tmp_path, "[audio]\nblock_size = 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "notesight.device.cli", "--config", str(path), "doctor"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"FAIL  config: {path}: [audio].block_size: must be one of" in result.stdout
