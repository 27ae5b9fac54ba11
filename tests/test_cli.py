"""End-to-end tests of the `notesight` command.

Most tests call `notesight.device.cli.main([...])` in-process and read stdout/stderr with capsys;
a few run the real command in a subprocess to prove that a person never sees a traceback and that
the exit status is non-zero. Audio is generated into tmp_path with numpy + soundfile: a
piano-like tone (8 decaying partials with a sharp attack). Nothing here needs a sound card.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import soundfile as sf

from notesight.device.cli import main
from notesight.device.config import CONFIG_ENV_VAR
from notesight.device.synth import Note

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "config" / "notesight.toml"
RATE = 44100
NOTE_KEYS = {"midi", "name", "onset_s", "offset_s", "emitted_s", "velocity", "cents", "freq_hz"}
ONSET_TOLERANCE_S = 0.020


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def piano_tone(f0: float, rate: int, seconds: float) -> np.ndarray:
    """8 decaying partials (k*f0, amplitude 1/k, exp(-t*(1.5+k))) starting at full level."""
    t = np.arange(round(seconds * rate)) / rate
    tone = np.zeros_like(t)
    for k in range(1, 9):
        if k * f0 < 0.45 * rate:  # keep every partial below Nyquist
            tone += np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * (1.5 + k)) / k
    return tone


def piano_clip(
    rate: int = RATE,
    onsets: tuple[float, ...] = (0.5,),
    note_s: float = 1.0,
    total_s: float = 2.0,
    f0: float = 440.0,
    peak: float = 0.5,
) -> np.ndarray:
    """Mono float64 audio with a piano-like strike of f0 at each onset, scaled to `peak`."""
    out = np.zeros(round(total_s * rate))
    for onset in onsets:
        tone = piano_tone(f0, rate, note_s)
        start = round(onset * rate)
        out[start : start + len(tone)] += tone[: len(out) - start]
    return peak * out / np.max(np.abs(out))


def write_audio(path: Path, data: np.ndarray, rate: int = RATE, **kwargs: Any) -> Path:
    sf.write(path, data, rate, **kwargs)
    return path


def a4_wav(tmp_path: Path, name: str = "a4.wav", **kwargs: Any) -> Path:
    return write_audio(tmp_path / name, piano_clip(), RATE, **kwargs)


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run `notesight ARGV` in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m notesight.device.cli ARGV` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "notesight.device.cli", *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def notesight_script() -> str:
    """The installed `notesight` console script, or skip the test."""
    beside = Path(sys.executable).parent / "notesight"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("notesight")
    if found is None:
        pytest.skip("the notesight console script is not installed")
    return found


def jsonl_notes(out: str) -> list[dict]:
    """Parse --jsonl output, insisting that every line is one note object and nothing else."""
    notes = []
    for line in out.splitlines():
        note = json.loads(line)  # a non-JSON line fails the test here
        assert isinstance(note, dict), line
        assert set(note) == NOTE_KEYS, line
        notes.append(note)
    return notes


def transcribe_notes(capsys: pytest.CaptureFixture[str], path: Path) -> list[dict]:
    code, out, err = cli(capsys, "transcribe", path, "--jsonl")
    assert code == 0, err
    assert "Traceback" not in err
    return jsonl_notes(out)


def assert_single_a4(notes: list[dict], onset_s: float = 0.5) -> dict:
    assert [n["name"] for n in notes] == ["A4"], notes
    note = notes[0]
    assert note["midi"] == 69
    assert abs(note["onset_s"] - onset_s) <= ONSET_TOLERANCE_S, note
    assert note["offset_s"] > note["onset_s"], note
    assert note["emitted_s"] >= note["onset_s"], note
    assert 1 <= note["velocity"] <= 127, note
    assert abs(note["cents"]) < 50, note
    return note


def assert_one_line_error(err: str, *names: str) -> str:
    """stderr is exactly one `notesight: ...` line (naming each of `names`), no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("notesight: "), err
    for name in names:
        assert name in lines[0], err
    return lines[0]


@pytest.fixture(autouse=True)
def default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config (all built-in defaults), whatever /etc/notesight holds on this machine.

    monkeypatch changes os.environ, so the subprocesses below inherit it too.
    """
    path = tmp_path / "defaults.toml"
    path.write_text("# empty: every key keeps its built-in default\n")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
    return path


# --------------------------------------------------------------------------------------------
# transcribe: output formats
# --------------------------------------------------------------------------------------------


def test_transcribe_jsonl_prints_only_note_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "transcribe", a4_wav(tmp_path), "--jsonl")
    assert code == 0, err
    assert "Traceback" not in err
    assert out.endswith("\n")
    note = assert_single_a4(jsonl_notes(out))
    assert isinstance(note["midi"], int)
    assert isinstance(note["velocity"], int)
    assert isinstance(note["name"], str)
    assert abs(note["freq_hz"] - 440.0) < 440.0 * (2 ** (50 / 1200) - 1)


def test_transcribe_table_is_human_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "transcribe", a4_wav(tmp_path))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == "1 notes"
    assert len(lines) == 2
    assert "A4" in lines[0]
    assert "vel" in lines[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


def test_transcribe_writes_a_midi_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    midi_path = tmp_path / "out.mid"
    code, out, err = cli(capsys, "transcribe", a4_wav(tmp_path), "--jsonl", "--midi", midi_path)
    assert code == 0, err
    assert len(jsonl_notes(out)) == 1  # --midi adds nothing to stdout
    midi = mido.MidiFile(str(midi_path))
    messages = [m for track in midi.tracks for m in track if not m.is_meta]
    note_ons = [m for m in messages if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in note_ons] == [69]
    assert 1 <= note_ons[0].velocity <= 127
    note_offs = [
        m for m in messages if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)
    ]
    assert [m.note for m in note_offs] == [69]
    # mido's playback length ends at the note-off: about the offset of the note.
    assert 1.0 < midi.length < 2.1


def test_transcribe_midi_into_missing_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "folder" / "out.mid"
    code, _, err = cli(capsys, "transcribe", a4_wav(tmp_path), "--midi", target)
    assert code != 0
    assert_one_line_error(err, str(target))
    assert not target.exists()


def test_transcribe_midi_into_missing_folder_subprocess(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.mid"
    result = cli_subprocess("transcribe", a4_wav(tmp_path), "--jsonl", "--midi", target)
    assert result.returncode != 0
    assert_one_line_error(result.stderr, str(target))


# --------------------------------------------------------------------------------------------
# transcribe: inputs that are not usable audio
# --------------------------------------------------------------------------------------------


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nothing-here.wav"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "a-folder.wav"
    folder.mkdir()
    return folder


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio, it is a shopping list\nmilk\neggs\n")
    return path


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


def _zero_frames(tmp_path: Path) -> Path:
    return write_audio(tmp_path / "zero-frames.wav", np.zeros((0, 1), np.float32), RATE)


def _header_only(tmp_path: Path) -> Path:
    whole = a4_wav(tmp_path, "whole.wav", subtype="PCM_16").read_bytes()
    path = tmp_path / "cut-header.wav"
    path.write_bytes(whole[:30])  # the RIFF header is cut before the fmt chunk ends
    return path


BAD_INPUTS = {
    "missing file": _missing,
    "folder": _folder,
    "empty file": _empty,
    "text file": _text,
    "random bytes": _random_bytes,
    "zero-frame WAV": _zero_frames,
    "WAV cut inside its header": _header_only,
}


@pytest.mark.parametrize("make", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_transcribe_bad_input_is_a_one_line_error(
    make, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    code, out, err = cli(capsys, "transcribe", path, "--jsonl")
    assert code != 0
    assert out == ""
    assert_one_line_error(err, path.name)


@pytest.mark.parametrize(
    "make",
    [_missing, _folder, _empty, _text, _random_bytes, _zero_frames],
    ids=["missing file", "folder", "empty file", "text file", "random bytes", "zero-frame WAV"],
)
def test_transcribe_bad_input_subprocess_has_no_traceback(make, tmp_path: Path) -> None:
    path = make(tmp_path)
    result = cli_subprocess("transcribe", path, "--jsonl")
    assert result.returncode != 0
    assert result.stdout == ""
    assert_one_line_error(result.stderr, path.name)


def test_console_script_reports_a_missing_file(tmp_path: Path) -> None:
    path = _missing(tmp_path)
    result = subprocess.run(
        [notesight_script(), "transcribe", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    line = assert_one_line_error(result.stderr, str(path))
    assert "does not exist" in line


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    cut = int(len(data) * fraction) | 1  # odd: the cut also splits a sample
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[:cut])
    return out


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("a4.wav", {"subtype": "PCM_16"}), ("a4f.wav", {"subtype": "FLOAT"}), ("a4.flac", {})],
)
def test_truncated_file_gives_the_audio_before_the_cut_or_a_clear_error(
    name: str, kwargs: dict, tmp_path: Path
) -> None:
    # 2 s file, A4 from 0.5 s to 1.5 s; cut at 60 % (1.2 s): the strike is before the cut.
    path = _truncate(a4_wav(tmp_path, name, **kwargs), 0.6)
    result = cli_subprocess("transcribe", path, "--jsonl")
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        note = assert_single_a4(jsonl_notes(result.stdout))
        assert note["offset_s"] <= 1.25, note
        # Anything on stderr is a warning about the damage, not a crash.
        assert all(line.startswith("WARNING") for line in result.stderr.splitlines())
    else:
        assert result.stdout == ""
        assert_one_line_error(result.stderr, path.name)


# --------------------------------------------------------------------------------------------
# transcribe: odd but valid audio
# --------------------------------------------------------------------------------------------


def test_silence_gives_zero_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_audio(tmp_path / "silence.wav", np.zeros(2 * RATE, np.float32))
    assert transcribe_notes(capsys, path) == []
    code, out, _ = cli(capsys, "transcribe", path)
    assert code == 0
    assert out.strip() == "0 notes"


def test_clipped_tone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clipped = np.clip(piano_clip() * 20, -1.0, 1.0)
    assert np.mean(np.abs(clipped) == 1.0) > 0.1  # really clipped
    path = write_audio(tmp_path / "clipped.wav", clipped, subtype="PCM_16")
    assert_single_a4(transcribe_notes(capsys, path))


def test_dc_offset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_audio(tmp_path / "dc.wav", piano_clip() + 0.3, subtype="FLOAT")
    assert_single_a4(transcribe_notes(capsys, path))


@pytest.mark.parametrize(
    "rate",
    [
        8000,
        16000,
        22050,
        44100,
        48000,
        96000,
    ],
)
def test_sample_rates(rate: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_audio(tmp_path / f"a4-{rate}.wav", piano_clip(rate), rate, subtype="PCM_16")
    assert_single_a4(transcribe_notes(capsys, path))


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
def test_channel_counts(channels: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.tile(piano_clip()[:, None], (1, channels))
    path = write_audio(tmp_path / f"a4-{channels}ch.wav", data, subtype="PCM_16")
    assert sf.info(str(path)).channels == channels
    assert_single_a4(transcribe_notes(capsys, path))


def test_stereo_with_tone_in_one_channel_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.stack([piano_clip(), np.zeros(2 * RATE)], axis=1)
    path = write_audio(tmp_path / "left-only.wav", data, subtype="PCM_16")
    assert_single_a4(transcribe_notes(capsys, path))


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [
        (".wav", {"subtype": "PCM_16"}),
        (".wav", {"subtype": "PCM_24"}),
        (".wav", {"subtype": "FLOAT"}),
        (".flac", {}),
        (".ogg", {"format": "OGG", "subtype": "VORBIS"}),
    ],
    ids=["wav-int16", "wav-int24", "wav-float32", "flac", "ogg-vorbis"],
)
def test_file_formats(
    suffix: str, kwargs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = a4_wav(tmp_path, "a4" + suffix, **kwargs)
    assert_single_a4(transcribe_notes(capsys, path))


def _mp3(tmp_path: Path) -> Path:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    path = tmp_path / "a4.mp3"
    try:
        sf.write(path, piano_clip(), RATE, format="MP3")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        pytest.skip(f"soundfile cannot write MP3 here: {exc}")
    return path


def test_mp3_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = transcribe_notes(capsys, _mp3(tmp_path))
    assert notes, "no note found in the MP3"
    assert notes[0]["name"] == "A4"
    assert abs(notes[0]["onset_s"] - 0.5) <= ONSET_TOLERANCE_S


def test_mp3_sustained_note_is_one_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_single_a4(transcribe_notes(capsys, _mp3(tmp_path)))


def test_nan_samples_in_a_float_wav_do_not_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = piano_clip()
    data[round(0.2 * RATE) : round(0.2 * RATE) + 50] = np.nan  # in the silence before the note
    data[round(1.8 * RATE)] = np.inf
    data[round(1.9 * RATE)] = -np.inf
    path = write_audio(tmp_path / "nan.wav", data, subtype="FLOAT")
    assert np.isnan(sf.read(str(path))[0]).any()  # the NaNs really are in the file
    code, out, err = cli(capsys, "transcribe", path, "--jsonl")
    assert code == 0, err
    assert "Traceback" not in err
    notes = jsonl_notes(out)
    assert "A4" in [n["name"] for n in notes]
    for note in notes:
        assert all(np.isfinite(note[k]) for k in NOTE_KEYS - {"name"}), note


def test_nan_inside_the_note_subprocess(tmp_path: Path) -> None:
    data = piano_clip()
    data[round(0.8 * RATE) : round(0.8 * RATE) + 10] = np.nan
    path = write_audio(tmp_path / "nan-inside.wav", data, subtype="FLOAT")
    result = cli_subprocess("transcribe", path, "--jsonl")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    notes = jsonl_notes(result.stdout)
    assert notes
    assert notes[0]["name"] == "A4"


# --------------------------------------------------------------------------------------------
# transcribe: repeated and held notes
# --------------------------------------------------------------------------------------------


def test_repeated_key_is_two_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = piano_clip(onsets=(0.5, 1.0), note_s=0.5, total_s=2.0)
    notes = transcribe_notes(capsys, write_audio(tmp_path / "repeat.wav", data))
    assert [n["name"] for n in notes] == ["A4", "A4"], notes
    assert abs(notes[0]["onset_s"] - 0.5) <= ONSET_TOLERANCE_S
    assert abs(notes[1]["onset_s"] - 1.0) <= ONSET_TOLERANCE_S
    assert notes[0]["offset_s"] <= notes[1]["onset_s"] + 1e-6


def test_held_note_is_one_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = piano_clip(note_s=2.0, total_s=3.0)
    notes = transcribe_notes(capsys, write_audio(tmp_path / "held.wav", data))
    note = assert_single_a4(notes)
    assert note["offset_s"] > 1.5, note  # held for most of its 2 s


# --------------------------------------------------------------------------------------------
# check-config and --config
# --------------------------------------------------------------------------------------------

BAD_CONFIG = "[audio]\nsample_rate = 22050\n"


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[audio]\nsample_rate = 44100\n\n[listen]\nlowest_note = "C2"\n')
    code, out, err = cli(capsys, "check-config", good)
    assert code == 0, err
    assert "ok" in out
    assert str(good) in out


def test_check_config_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "check-config", SHIPPED_CONFIG)
    assert code == 0, err
    assert out.strip().endswith("ok")


def test_check_config_without_file_checks_the_one_in_use(
    default_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "check-config")
    assert code == 0, err
    assert out.strip() == f"{default_config}: ok"


def _assert_sample_rate_error(err: str, path: Path) -> None:
    line = assert_one_line_error(err, str(path), "[audio].sample_rate", "22050")
    assert "44100" in line
    assert "48000" in line


def test_check_config_rejects_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    code, out, err = cli(capsys, "check-config", bad)
    assert code == 2
    assert "ok" not in out
    _assert_sample_rate_error(err, bad)


def test_check_config_bad_file_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    result = cli_subprocess("check-config", bad)
    assert result.returncode == 2
    _assert_sample_rate_error(result.stderr, bad)


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err = cli(capsys, "check-config", missing)
    assert code == 2
    assert_one_line_error(err, str(missing))


def test_config_option_rejects_a_bad_file_before_transcribing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    code, out, err = cli(capsys, "--config", bad, "transcribe", a4_wav(tmp_path), "--jsonl")
    assert code == 2
    assert out == ""
    _assert_sample_rate_error(err, bad)


def test_config_env_var_with_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    monkeypatch.setenv(CONFIG_ENV_VAR, str(bad))
    code, out, err = cli(capsys, "transcribe", a4_wav(tmp_path), "--jsonl")
    assert code == 2
    assert out == ""
    _assert_sample_rate_error(err, bad)


def test_config_option_settings_are_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A4 lies outside the configured range, so it must not be reported.
    narrow = tmp_path / "narrow.toml"
    narrow.write_text('[listen]\nlowest_note = "C5"\nhighest_note = "C6"\n')
    code, out, err = cli(capsys, "--config", narrow, "transcribe", a4_wav(tmp_path), "--jsonl")
    assert code == 0, err
    assert "A4" not in [n["name"] for n in jsonl_notes(out)]


# --------------------------------------------------------------------------------------------
# devices, run, demo, usage
# --------------------------------------------------------------------------------------------


def _has_input_device() -> bool:
    from notesight.device.audio import list_input_devices
    from notesight.device.errors import NotesightError

    try:
        return bool(list_input_devices())
    except NotesightError:
        return False


def test_devices_without_microphone_or_with_a_list() -> None:
    result = cli_subprocess("devices")
    assert "Traceback" not in result.stderr
    text = result.stdout + result.stderr
    if result.returncode == 0:
        assert "[audio].device" in result.stdout  # the list and how to use it
    else:
        assert result.returncode == 1
        assert "microphone" in text


def test_run_without_microphone_is_a_one_line_error() -> None:
    if _has_input_device():
        pytest.skip("this machine has an audio input; `run` would run until stopped")
    result = cli_subprocess("run")
    assert result.returncode != 0
    line = assert_one_line_error(result.stderr, "microphone")
    assert "no microphone" in line


def test_demo_fast(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "demo", "--fast")
    assert code == 0, err
    assert "Traceback" not in err
    assert "notes heard" in out


def test_no_command_prints_usage() -> None:
    result = cli_subprocess()
    assert result.returncode == 2
    assert "usage: notesight" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Broken pipe: `notesight transcribe x --jsonl | head`
# --------------------------------------------------------------------------------------------


def _many_notes_wav(tmp_path: Path) -> Path:
    """20 s of short notes, 8 a second: about 160 notes, well over one stdout buffer of JSON."""
    rate = RATE
    out = np.zeros(round(20.5 * rate))
    for i, onset in enumerate(np.arange(0.3, 20.0, 0.125)):
        f0 = 440.0 * 2 ** (((i * 5) % 24 - 12) / 12)
        tone = piano_tone(f0, rate, 0.125)
        start = round(onset * rate)
        out[start : start + len(tone)] += tone
    return write_audio(tmp_path / "many.wav", 0.5 * out / np.max(np.abs(out)), rate)


def test_broken_pipe_to_head_has_no_traceback(tmp_path: Path) -> None:
    path = _many_notes_wav(tmp_path)
    command = (
        f"set -o pipefail; {shlex.quote(sys.executable)} -m notesight.device.cli "
        f"transcribe {shlex.quote(str(path))} --jsonl | head -c 10"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert len(result.stdout) == 10
    assert result.stdout.startswith('{"midi": ')


def test_reader_gone_before_any_output_is_not_an_error(tmp_path: Path) -> None:
    # The read end is closed before the command starts, so its first write fails with EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "notesight.device.cli", "transcribe", str(a4_wav(tmp_path))],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.returncode == 0


def test_run_on_a_file_prints_events_as_jsonl(tmp_path: Path, piano) -> None:
    audio = piano((Note(0.2, 0.5, 60, 90), Note(0.9, 0.5, 67, 90)))
    path = tmp_path / "two.wav"
    sf.write(path, audio, 44100)
    result = cli_subprocess("run", "--input", str(path), "--fast", "--jsonl")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    ons = [e for e in events if e["event"] == "note_on"]
    offs = [e for e in events if e["event"] == "note_off"]
    assert [e["midi"] for e in ons] == [60, 67]
    assert [e["midi"] for e in offs] == [60, 67]
    assert all(e["emitted_s"] >= e["onset_s"] for e in ons)


def test_run_fast_needs_a_file() -> None:
    result = cli_subprocess("run", "--fast")
    assert result.returncode != 0
    assert_one_line_error(result.stderr, "--input")
