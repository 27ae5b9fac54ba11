"""A mistake in the config at the start does not stop the appliance: the daemon starts with its
last good config (kept in the state folder whenever it started or reloaded with a valid one), or
with the built-in defaults, and says exactly what is wrong and which config it used."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto import Broker, Recorder, mosquitto_available, wait_for
from service_fakes import kill_daemon, notified_daemon, received, reload_daemon, stop_daemon

from notesight.device.config import Settings, parse_settings
from notesight.device.lastgood import LAST_GOOD_FILE, save_last_good, startup_settings

BAD_COLOUR = '[leds].colour: must be a colour written "#rrggbb", like "#ff8000" (got 12)'


def config_text(state: Path, colour: str = "#00ff00", led_count: int = 88) -> str:
    text = (
        f'[leds]\ncolour = "{colour}"\nled_count = {led_count}\nc8_led = {led_count - 1}\n'
        f"[mqtt]\nstate_dir = {json.dumps(str(state))}\n"
    )
    parse_settings(text, "test")  # the test's own good config must be valid
    return text


def bad_text(state: Path) -> str:
    return f"[leds]\ncolour = 12\n[mqtt]\nstate_dir = {json.dumps(str(state))}\n"


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_valid_config_is_kept_as_the_last_good_one(tmp_path: Path, caplog) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(config_text(state))
    with caplog.at_level(logging.INFO):
        settings = startup_settings(config)
    assert settings.leds.colour == "#00ff00"
    last_good = state / LAST_GOOD_FILE
    assert last_good.read_text() == config.read_text()  # the file itself, comments and all
    assert f"config saved as the last good one: {last_good}" in messages(caplog, logging.INFO)
    # Unchanged: not written again (SD-card wear), so the file is the very same one.
    inode = last_good.stat().st_ino
    startup_settings(config)
    assert last_good.stat().st_ino == inode
    # Changed: replaced by a rename (a new file), never rewritten in place.
    config.write_text(config_text(state, colour="#0000ff"))
    startup_settings(config)
    assert last_good.read_text() == config.read_text()
    assert last_good.stat().st_ino != inode
    assert sorted(p.name for p in state.iterdir()) == [LAST_GOOD_FILE]  # no temporary left


def test_an_invalid_config_starts_with_the_last_good_one(tmp_path: Path, caplog) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(config_text(state, colour="#00ff00", led_count=88))
    good = startup_settings(config)
    config.write_text(bad_text(state))
    with caplog.at_level(logging.INFO):
        settings = startup_settings(config)
    assert settings == good
    assert settings.leds.led_count == 88 and settings.leds.colour == "#00ff00"
    assert messages(caplog, logging.ERROR) == [f"config not used: {config}: {BAD_COLOUR}"]
    (used,) = messages(caplog, logging.WARNING)
    assert used.startswith(f"starting with the last good config {state / LAST_GOOD_FILE} (saved ")
    # The bad file is not kept: the last good one is still the good one.
    assert (state / LAST_GOOD_FILE).read_text() == config_text(state)


def test_an_invalid_config_without_a_last_good_one_starts_with_the_defaults(
    tmp_path: Path, caplog
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(bad_text(state) + "[audio]\nsample_rate = 22050\n")
    with caplog.at_level(logging.INFO):
        settings = startup_settings(config)
    assert settings == Settings()
    (error,) = messages(caplog, logging.ERROR)
    # Every problem, each exactly as check-config says it, on one log line.
    assert error == (
        f"config not used: {config}: [audio].sample_rate: must be one of 44100, 48000 "
        f"(got 22050); {config}: {BAD_COLOUR}"
    )
    (used,) = messages(caplog, logging.WARNING)
    assert used.startswith(
        "starting with the built-in defaults: there is no last good config "
        f"({state / LAST_GOOD_FILE})"
    )
    assert not (state / LAST_GOOD_FILE).exists()


def test_unreadable_toml_finds_the_last_good_one_in_the_service_state_folder(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    """A file that is not TOML at all names no state_dir: systemd's $STATE_DIRECTORY is used."""
    state = tmp_path / "var-lib-notesight"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    config = tmp_path / "config.toml"
    config.write_text('[leds]\ncolour = "#123456"\n')
    assert startup_settings(config).leds.colour == "#123456"
    assert (state / LAST_GOOD_FILE).exists()
    config.write_text("[leds\ncolour = 1\n")
    with caplog.at_level(logging.INFO):
        settings = startup_settings(config)
    assert settings.leds.colour == "#123456"
    (error,) = messages(caplog, logging.ERROR)
    assert error.startswith(f"config not used: {config}: line 1, column 6: invalid TOML")


def test_a_missing_config_starts_with_the_last_good_one(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    config = tmp_path / "config.toml"
    config.write_text('[leds]\ncolour = "#abcdef"\n')
    startup_settings(config)
    config.unlink()
    with caplog.at_level(logging.INFO):
        assert startup_settings(config).leds.colour == "#abcdef"
    (error,) = messages(caplog, logging.ERROR)
    assert error == f"config not used: config file {config} does not exist: check the path"


def test_a_last_good_config_that_is_no_longer_valid_gives_the_defaults(
    tmp_path: Path, caplog
) -> None:
    """A copy kept by an older notesight whose keys this one no longer knows."""
    state = tmp_path / "state"
    state.mkdir()
    (state / LAST_GOOD_FILE).write_text("[leds]\nshimmer = true\n")
    config = tmp_path / "config.toml"
    config.write_text(bad_text(state))
    with caplog.at_level(logging.INFO):
        assert startup_settings(config) == Settings()
    errors = messages(caplog, logging.ERROR)
    assert errors[0] == f"config not used: {config}: {BAD_COLOUR}"
    assert errors[1].startswith(
        f"last good config not usable either: {state / LAST_GOOD_FILE}: [leds].shimmer: unknown key"
    )
    assert messages(caplog, logging.WARNING)[0].startswith("starting with the built-in defaults")


def test_an_unwritable_state_folder_is_logged_and_the_daemon_goes_on(
    tmp_path: Path, caplog
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = blocker / "state"  # cannot be made: its parent is a file
    config = tmp_path / "config.toml"
    config.write_text(config_text(state))
    with caplog.at_level(logging.INFO):
        settings = startup_settings(config)
    assert settings.leds.colour == "#00ff00"  # it runs with the valid config all the same
    (error,) = messages(caplog, logging.ERROR)
    assert error.startswith("could not save the config as the last good one: ")
    assert str(blocker) in error and "[mqtt].state_dir" in error
    assert "notesight runs on" in error


@contextlib.contextmanager
def full_disk(folder: Path) -> Iterator[Path]:
    """A real, tiny file system (tmpfs), filled up; needs root (skipped otherwise)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        # Unbuffered: the write that finds the disk full raises here, not later in close().
        with (folder / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"x" * 1024)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_logged_clearly_and_nothing_half_written_is_left(
    tmp_path: Path, caplog
) -> None:
    with full_disk(tmp_path / "small") as state:
        with open(state / "probe", "wb", buffering=0) as probe, pytest.raises(OSError) as full:
            probe.write(b"y" * 8192)
        assert full.value.errno == errno.ENOSPC
        (state / "probe").unlink()
        before = sorted(p.name for p in state.iterdir())
        with caplog.at_level(logging.INFO):
            assert save_last_good(config_text(state) * 40, state / LAST_GOOD_FILE) is False
        (error,) = messages(caplog, logging.ERROR)
        assert "no space left on the device holding" in error and "free some space" in error
        assert sorted(p.name for p in state.iterdir()) == before  # no temporary file left


# --- the real command ---------------------------------------------------------------------------


@pytest.mark.skipif(not mosquitto_available(), reason="mosquitto not installed: run ./install.sh")
def test_the_daemon_starts_with_the_last_good_config_and_a_fixed_one_replaces_it(
    tmp_path: Path,
) -> None:
    """`notesight run --wait-for-mic` as the service runs it: the config has a mistake, so it
    runs with the last good one (which publishes to the broker: the defaults would not); the
    caretaker fixes the config and reloads; the fixed one becomes the last good one."""
    broker = Broker(tmp_path / "broker").start()
    state = tmp_path / "var-lib-notesight"
    state.mkdir()
    mqtt = (
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\nhomeassistant = false\n'
    )
    (state / LAST_GOOD_FILE).write_text(mqtt + 'device_id = "lastgood"\n')
    config = tmp_path / "config.toml"
    config.write_text(mqtt + 'device_id = "lastgood"\n[leds]\ncolour = 12\n')
    extra_env = {"STATE_DIRECTORY": str(state), "NOTESIGHT_CONFIG": str(config)}
    args = ["run", "--wait-for-mic", "--simulate", str(tmp_path / "sim")]
    try:
        with Recorder(broker, ["notesight/#"]) as rec:
            proc, sock = notified_daemon(tmp_path, args, extra_env)
            try:
                received(sock, "READY=1")
                wait_for(lambda: rec.on("lastgood/status"), "the last good config's MQTT")
                fixed = mqtt + 'device_id = "lastgood"\n[leds]\ncolour = "#00ff00"\n'
                config.write_text(fixed)
                reload_daemon(proc, sock)
            except BaseException:
                kill_daemon(proc, sock)
                raise
            err = stop_daemon(proc, sock)
            statuses = [m.payload.decode() for m in rec.on("lastgood/status")]
    finally:
        broker.stop()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert f"<3>notesight.device.lastgood: config not used: {config}: {BAD_COLOUR}" in lines
    assert any(
        line.startswith(
            f"<4>notesight.device.lastgood: starting with the last good config "
            f"{state / LAST_GOOD_FILE} (saved "
        )
        for line in lines
    ), err
    assert "Traceback" not in err
    # The reload kept MQTT (the [mqtt] section did not change): one online, one offline.
    assert statuses == ["online", "offline"]
    assert (state / LAST_GOOD_FILE).read_text() == fixed
