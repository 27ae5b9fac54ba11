"""`notesight calibrate-leds`: the three anchor lights move with the keys, the result maps A0,
C4 and C8 onto the chosen LEDs, and the config file is edited keeping every comment."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest

from notesight.device import cli
from notesight.device.calibrate import (
    Calibration,
    calibration_target,
    run_calibration,
    updated_config_text,
)
from notesight.device.config import (
    ETC_CONFIG,
    SHIPPED_CONFIG,
    LedSettings,
    load_settings,
    parse_settings,
)
from notesight.device.leds import KeyMap


class Recorder:
    """A backend that keeps every frame it is shown."""

    name = "recorder"
    keepalive_s = None

    def __init__(self) -> None:
        self.frames: list = []

    def show(self, frame, t: float) -> None:
        self.frames.append(frame.copy())

    def close(self) -> None:
        pass


def test_keys_move_the_chosen_light_within_the_strip() -> None:
    cal = Calibration.from_settings(LedSettings())
    assert cal.positions == [0, round(175 * 23 / 51), 175]
    for key in ["right", "right", "D", "3", "left", "A", "2", "+", "\t", "d"]:
        assert cal.key(key)
    assert cal.positions == [12, round(175 * 23 / 51) + 1, 175 - 11 + 1]
    cal.key("1")
    for _ in range(5):
        cal.key("A")
    assert cal.positions[0] == 0  # clamped at the strip's start
    assert not cal.key("s") and cal.saved


def test_frame_lights_the_three_anchors_chosen_one_brightest() -> None:
    cal = Calibration(100, [2, 40, 97], selected=1)
    frame = cal.frame()
    lit = {int(i): tuple(int(c) for c in frame[i]) for i in frame.any(axis=1).nonzero()[0]}
    assert lit == {2: (63, 0, 0), 40: (0, 255, 0), 97: (0, 0, 63)}


def test_result_maps_the_anchors_onto_their_leds() -> None:
    cal = Calibration(176, [3, 90, 170])
    values = cal.result()
    settings = LedSettings(**values)  # type: ignore[arg-type]
    centres = KeyMap.from_settings(settings).centres
    assert round(centres[21]) == 3
    assert round(centres[60]) == 90
    assert round(centres[108]) == 170


def test_run_calibration_draws_each_step_and_reports_saving() -> None:
    backend = Recorder()
    cal = Calibration(50, [0, 20, 49])
    out = StringIO()
    assert run_calibration(cal, iter(["right", "s", "right"]), backend, out)
    assert len(backend.frames) == 2  # the start and after one move; saving stops the keys
    assert cal.positions[0] == 1
    assert "[A0 LED 1]" in out.getvalue()
    assert not run_calibration(Calibration(50, [0, 20, 49]), iter(["q"]), Recorder(), out)


COMMENTED = """# my piano's config
[audio]
# the USB microphone
device = "USB"

[leds]
# the strip
backend = "spi"   # on GPIO10
# LED count
led_count = 150
a0_led = 0  # was a guess
c8_led = 149
"""


def test_config_edit_keeps_comments_and_other_keys() -> None:
    new = updated_config_text(
        COMMENTED, {"a0_led": 4, "c8_led": 146, "leds_per_metre": 0.0, "offsets": {"C4": 2}}
    )
    for line in ("# my piano's config", "# the USB microphone", 'device = "USB"',
                 "# the strip", 'backend = "spi"   # on GPIO10', "# LED count"):  # fmt: skip
        assert line in new.splitlines()
    settings = parse_settings(new, "x")
    assert (settings.leds.a0_led, settings.leds.c8_led) == (4, 146)
    assert settings.leds.offsets == {"C4": 2}
    assert settings.leds.backend == "spi" and settings.leds.led_count == 150
    assert settings.audio.device == "USB"
    # unchanged lines stay exactly as they were
    old_lines = COMMENTED.splitlines()
    assert new.splitlines()[: len(old_lines) - 2] == old_lines[:-2]


def test_config_without_a_leds_section_gets_one() -> None:
    new = updated_config_text('[log]\nlevel = "debug"\n', {"a0_led": 1, "c8_led": 170})
    assert parse_settings(new, "x").leds.c8_led == 170
    assert new.startswith('[log]\nlevel = "debug"\n')


def test_target_is_never_the_documented_defaults(tmp_path: Path) -> None:
    assert calibration_target(None, SHIPPED_CONFIG) == ETC_CONFIG
    assert calibration_target(None, None) == ETC_CONFIG
    mine = tmp_path / "mine.toml"
    assert calibration_target(None, mine) == mine
    assert calibration_target(mine, ETC_CONFIG) == mine


def test_cli_writes_given_anchors_into_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    code = cli.main(["--config", str(config), "calibrate-leds", "--a0", "2", "--c4", "70",
                     "--c8", "147", "--write", str(config)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    settings = load_settings(config)
    centres = KeyMap.from_settings(settings.leds).centres
    assert [round(centres[m]) for m in (21, 60, 108)] == [2, 70, 147]
    assert "# the USB microphone" in config.read_text()
    assert "wrote a0_led = 2, c8_led = 147" in capsys.readouterr().out


def test_cli_new_file_starts_from_the_documented_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "etc" / "config.toml"
    code = cli.main(["calibrate-leds", "--a0", "0", "--c4", "80", "--c8", "175",
                     "--write", str(target)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    text = target.read_text()
    assert "# notesight configuration." in text  # every comment of the shipped file
    assert load_settings(target).leds.offsets == {"C4": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--a0", "0", "--c4", "80"], "give all three of --a0, --c4 and --c8"),
        (["--a0", "0", "--c4", "80", "--c8", "500"], "--c8 500: must be an LED index from 0"),
        (["--a0", "5", "--c4", "80", "--c8", "5"], "A0 and C8 cannot be on the same LED"),
        ([], "calibrate-leds is interactive: run it in a terminal"),
    ],
)
def test_cli_mistakes_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["calibrate-leds", *args, "--write", str(tmp_path / "c.toml")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("notesight: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.toml").exists()
