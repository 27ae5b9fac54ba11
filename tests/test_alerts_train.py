"""The training recipe end to end in its --tiny form, the data it mixes, and the
`notesight models train-alerts` command. TensorFlow is an optional extra (`.[train]`): the
training tests skip without it."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import soundfile as sf

from notesight.device import cli
from notesight.device.classifier import AlertModel
from notesight.dsp.alerts import CLASSES
from notesight.dsp.features import SAMPLE_RATE, WINDOW
from notesight.models import alert_data, train_alerts

needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow not installed (the optional extra: pip install -e '.[train]')",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (./install.sh adds it)"
)


# -- material ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(alert_data.SYNTHS))
def test_synthesized_alerts_are_finite_audible_and_seeded(name):
    make = alert_data.SYNTHS[name]
    first = make(np.random.default_rng(5))
    again = make(np.random.default_rng(5))
    other = make(np.random.default_rng(6))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32 and np.all(np.isfinite(first))
    assert len(first) >= SAMPLE_RATE // 2
    assert alert_data.frame_db(first).max() > -40


def test_smoke_alarm_is_a_beep_at_2_4_to_4_khz_with_pauses():
    alarm = alert_data.smoke_alarm(np.random.default_rng(1))
    spectrum = np.abs(np.fft.rfft(alarm))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(alarm)
    assert 2400 <= peak_hz <= 4000
    db = alert_data.frame_db(alarm)
    assert (db < db.max() - 40).any()  # the pattern has silent gaps


def test_mixed_window_has_its_labels_and_piano_is_louder():
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 3000 * t).astype(np.float32)
    piano = [np.sin(2 * np.pi * 220 * t).astype(np.float32)]
    window, labels = alert_data.mix_window([0], tone, piano, rng, piano_probability=1.0)
    assert window.shape == (WINDOW,)
    assert labels[CLASSES.index("smoke_alarm")] == 1 and labels[CLASSES.index("piano")] == 1
    assert labels.sum() == 2
    spectrum = np.abs(np.fft.rfft(window))
    assert spectrum[220] >= spectrum[3000]  # piano 0-20 dB above the alert


def test_crop_keeps_the_sound_in_the_window():
    rng = np.random.default_rng(2)
    audio = np.zeros(10 * SAMPLE_RATE, np.float32)
    audio[6 * SAMPLE_RATE : 7 * SAMPLE_RATE] = 0.5
    for _ in range(10):
        crop = alert_data.crop_with_sound(audio, rng)
        assert crop is None or (np.abs(crop) > 0.1).mean() >= 0.15
    short = alert_data.crop_with_sound(np.full(SAMPLE_RATE // 2, 0.5, np.float32), rng)
    assert short is not None and len(short) == WINDOW and (short > 0.1).sum() >= SAMPLE_RATE // 4


def test_split_never_puts_one_recording_in_both():
    held = set(alert_data.HELD_OUT)
    if alert_data.SHARED_DATA.joinpath("sounds").is_dir():
        sources = alert_data.real_sources(alert_data.SHARED_DATA / "sounds")
        train = {s.name for s in sources if s.split == "train"}
        test = {s.name for s in sources if s.split == "test"}
        assert not train & test
        assert {name.split("/")[-1] for name in test} >= held  # every named file exists
        esc_test = [s.name for s in sources if s.name.startswith("esc10") and s.split == "test"]
        assert {name.split("/")[-1][0] for name in esc_test} == {str(alert_data.ESC_TEST_FOLD)}
    assert not set(alert_data.TRAIN_VOICES) & set(alert_data.TEST_VOICES)
    assert not set(alert_data.TRAIN_PIANOS) & set(alert_data.TEST_PIANOS)


def test_unknown_class_folder_is_refused(tmp_path):
    (tmp_path / "doorbel").mkdir()
    with pytest.raises(ValueError, match="doorbel: not a class name"):
        alert_data.folder_sources(tmp_path)


def test_folder_sources_hold_out_every_fifth_file(tmp_path):
    folder = tmp_path / "doorbell"
    folder.mkdir()
    for k in range(5):
        sf.write(folder / f"ring{k}.wav", np.full(8000, 0.1, np.float32), 8000)
    (folder / "notes.txt").write_text("not audio")
    sources = alert_data.folder_sources(tmp_path)
    assert [(s.label, s.split) for s in sources] == [("doorbell", "train")] * 4 + [
        ("doorbell", "test")
    ]
    assert len(sources[0].audio) == SAMPLE_RATE  # read at 16 kHz


# -- training -------------------------------------------------------------------------------
@needs_tensorflow
@needs_espeak
def test_tiny_recipe_trains_a_model_the_runtime_loads(tmp_path):
    out = tmp_path / "tiny.tflite"
    summary = train_alerts.train(train_alerts.Recipe.tiny(), out, cache=tmp_path / "cache")
    assert out.is_file() and summary["bytes"] == out.stat().st_size
    assert summary["windows"] > 0
    model = AlertModel(out)
    p = model.predict(np.zeros((49, 64), np.float32))
    assert p.shape == (len(CLASSES),) and np.all((p >= 0) & (p <= 1))
    # the second run takes the cached features
    assert list((tmp_path / "cache").glob("train-*.npz"))


@needs_tensorflow
@needs_espeak
def test_train_alerts_command_adds_the_caretakers_recordings(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "doorbell").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for k in range(3):
        ring = alert_data.doorbell(rng)
        sf.write(folder / "doorbell" / f"ring{k}.flac", ring, SAMPLE_RATE)
    out = tmp_path / "mine.tflite"
    assert cli.main(["models", "train-alerts", str(folder), "--out", str(out), "--tiny"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "[alerts].model" in printed
    AlertModel(out)


def test_train_alerts_command_with_a_missing_folder_is_one_line(tmp_path, capsys):
    assert cli.main(["models", "train-alerts", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"notesight: recordings folder {tmp_path / 'none'} does not exist: check the path\n"
    )
