"""End to end: `notesight run --input WAV --simulate DIR --fast` on a FluidSynth piano render
writes the LED frames, the OLED screens and the motor taps, on audio time, and a real-time run
writes the same files. Missing hardware is logged once and the other outputs go on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from notesight.device import cli
from notesight.device.config import Settings
from notesight.device.feedback import build_feedback_outputs
from notesight.device.leds import KeyMap
from notesight.device.outputs import DeviceStatus
from notesight.device.run import RunOptions
from notesight.device.synth import Note

NOTES = (Note(0.3, 0.5, 60, 100), Note(1.0, 0.5, 64, 70), Note(1.7, 0.5, 67, 110))
CONFIG = """
[leds]
backend = "none"
[motor]
tap_ms = 40
"""


@pytest.fixture(scope="module")
def piano_wav(piano, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "three.wav"
    sf.write(path, piano(NOTES), 44100, subtype="FLOAT")
    return path


def simulate(tmp_path: Path, wav: Path, name: str, *extra: str) -> Path:
    config = tmp_path / "notesight.toml"
    config.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / name
    code = cli.main(
        ["--config", str(config), "run", "--input", str(wav), "--simulate", str(out), *extra]
    )
    assert code == 0
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def fast_run(piano_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("fast"), piano_wav, "sim", "--fast")


def first_frame_lighting(frames: list[dict], leds: set[int], after: float) -> dict:
    return next(f for f in frames if f["t"] >= after and leds <= {x[0] for x in f["lit"]})


def test_leds_light_each_key_at_its_onset_and_fade(fast_run: Path, piano_wav: Path) -> None:
    frames = read_jsonl(fast_run / "leds.jsonl")
    times = [f["t"] for f in frames]
    assert times == sorted(times)
    keymap = KeyMap.from_settings(Settings().leds)
    pitch_class_red = round(255 * 0.5**2.2)  # C at the default brightness 0.5, gamma 2.2
    for note in NOTES:
        leds = set(keymap.leds(note.midi))
        frame = first_frame_lighting(frames, leds, note.onset_s - 0.01)
        # shown within the detection delay: audio time, so this is the same on any machine
        assert note.onset_s <= frame["t"] <= note.onset_s + 0.1, (note, frame["t"])
        before = frames[frames.index(frame) - 1]
        assert not leds & {x[0] for x in before["lit"]}  # dark until then
    c4 = first_frame_lighting(frames, set(keymap.leds(60)), 0.29)
    assert {tuple(x[1:]) for x in c4["lit"]} == {(pitch_class_red, 0, 0)}
    # the light follows the decaying sound: C4 dims before E4 is struck
    c4_leds = set(keymap.leds(60))
    c4_values = [max(x[1] for x in f["lit"] if x[0] in c4_leds) for f in frames
                 if c4["t"] <= f["t"] < 0.95 and c4_leds & {x[0] for x in f["lit"]}]  # fmt: skip
    assert c4_values[-1] < c4_values[0]
    assert frames[-1]["lit"] == []  # dark at the end
    # frames: at most 60 a second of audio, plus one per note-on
    duration = sf.info(str(piano_wav)).duration
    assert len(frames) <= 60 * duration + len(NOTES) + 2


def test_oled_keeps_one_png_per_distinct_screen(fast_run: Path) -> None:
    screens = read_jsonl(fast_run / "oled" / "screens.jsonl")
    pngs = sorted(p.name for p in (fast_run / "oled").glob("*.png"))
    assert pngs == sorted({s["png"] for s in screens})
    assert len(pngs) >= len(NOTES)
    gaps = np.diff([s["t"] for s in screens])
    assert gaps.min() >= 1 / 15 - 0.006  # at most 15 redraws a second of audio, one block slack


def test_motor_taps_each_onset_with_its_velocity(fast_run: Path) -> None:
    changes = read_jsonl(fast_run / "motor.jsonl")
    taps = [c for c in changes if c["value"] > 0]
    assert len(taps) == len(NOTES)
    for tap, note in zip(taps, NOTES, strict=True):
        assert note.onset_s <= tap["t"] <= note.onset_s + 0.1
    # stronger for a harder strike (the velocity is the one heard, not the MIDI one)
    assert taps[1]["value"] < taps[0]["value"] < taps[2]["value"]
    offs = [c for c in changes if c["value"] == 0]
    assert [round(o["t"] - t["t"], 2) for o, t in zip(offs, taps, strict=True)] == [0.04] * 3
    frames = read_jsonl(fast_run / "leds.jsonl")
    keymap = KeyMap.from_settings(Settings().leds)
    for tap, note in zip(taps, NOTES, strict=True):  # the tap and the light come together
        assert first_frame_lighting(frames, set(keymap.leds(note.midi)), note.onset_s - 0.01)[
            "t"
        ] == pytest.approx(tap["t"], abs=1e-3)


def test_real_time_run_writes_the_same_files(
    piano_wav: Path, fast_run: Path, tmp_path: Path
) -> None:
    live = simulate(tmp_path, piano_wav, "live")
    for name in ("leds.jsonl", "motor.jsonl", "oled/screens.jsonl"):
        assert (live / name).read_text() == (fast_run / name).read_text(), name
    for png in (fast_run / "oled").glob("*.png"):
        assert (live / "oled" / png.name).read_bytes() == png.read_bytes()


def test_unwritable_simulation_folder_is_a_one_line_error(
    piano_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli.main(
        ["run", "--input", str(piano_wav), "--simulate", str(blocker / "sim"), "--fast"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("notesight: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_hardware_is_logged_once_and_the_rest_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_validate(
        {
            "leds": {"backend": "spi", "spi_device": "/dev/spidev9.9"},
            "oled": {"enabled": True, "i2c_port": 29},
            "motor": {"enabled": True},
        }
    )
    with caplog.at_level(logging.ERROR):
        outputs = build_feedback_outputs(settings, RunOptions(), DeviceStatus())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert "do_spi 0" in errors[0] and "group spi" in errors[0]
    assert "/dev/i2c-29 does not exist" in errors[1] and "do_i2c 0" in errors[1]
    assert "[motor]" in errors[2]
    assert outputs == []


def test_default_config_without_a_terminal_warns_and_builds_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        outputs = build_feedback_outputs(Settings(), RunOptions(), DeviceStatus())
    assert outputs == []
    assert any("no terminal to draw it in" in r.getMessage() for r in caplog.records)
