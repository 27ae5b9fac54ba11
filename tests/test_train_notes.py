"""The note model's training recipe end to end on a tiny dataset, and the material it renders.
TensorFlow and music21 are the optional `train` extra: the tests that need them skip without."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from notesight.device.note_model import NoteModel
from notesight.device.synth import Note
from notesight.dsp.logspec import HOP, N_BINS, SAMPLE_RATE
from notesight.models import note_data, train_notes

needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow not installed (the optional extra: pip install -e '.[train]')",
)
needs_music21 = pytest.mark.skipif(
    importlib.util.find_spec("music21") is None,
    reason="music21 not installed (the optional extra: pip install -e '.[train]')",
)


def test_labels_mark_two_onset_frames_and_the_sounding_span():
    notes = [Note(0.1, 0.5, 60), Note(0.3, 0.2, 21), Note(0.3, 0.2, 108)]
    onsets, sounding = note_data.labels(notes, 60)
    first = int(0.1 * SAMPLE_RATE // HOP)
    assert onsets[:, 60 - 21].nonzero()[0].tolist() == [first, first + 1]
    assert sounding[:, 60 - 21].nonzero()[0].tolist() == list(
        range(first, int(0.6 * SAMPLE_RATE // HOP))
    )
    assert onsets[:, 0].sum() == 2 and onsets[:, 87].sum() == 2
    assert onsets.shape == sounding.shape == (60, 88)


@pytest.mark.parametrize("kind", sorted(note_data.GENERATORS))
def test_generated_material_stays_on_the_keyboard_and_is_seeded(kind):
    make = note_data.GENERATORS[kind]
    notes = make(np.random.default_rng(3), 20.0)
    assert notes == make(np.random.default_rng(3), 20.0)
    assert notes != make(np.random.default_rng(4), 20.0)
    assert all(21 <= n.midi <= 108 and 1 <= n.velocity <= 127 for n in notes)
    assert max(n.onset_s for n in notes) < 20.0


def test_generated_material_reaches_both_ends_of_the_keyboard():
    keys = {
        n.midi
        for seed in range(30)
        for n in note_data.single_notes(np.random.default_rng(seed), 20)
    }
    assert {21, 22, 107, 108} <= keys


def test_detuning_moves_the_notes_with_the_audio():
    audio = np.zeros(SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE // 2] = 1.0
    faster, notes = note_data.detuned(audio, [Note(0.5, 0.2, 60)], 100.0)  # a semitone sharp
    ratio = 2 ** (100 / 1200)
    assert notes[0].onset_s == pytest.approx(0.5 / ratio)
    assert len(faster) == pytest.approx(SAMPLE_RATE / ratio, abs=2)
    assert int(np.argmax(np.abs(faster))) == pytest.approx(SAMPLE_RATE / 2 / ratio, abs=2)


def test_the_split_is_by_score_and_stable():
    assert note_data.split_of("/x/music21/corpus/bach/bwv1.6.mxl") == note_data.split_of(
        "/elsewhere/corpus/bach/bwv1.6.mxl"
    )
    splits = [note_data.split_of(f"/c/corpus/bach/bwv{k}.mxl") for k in range(400)]
    assert 20 < splits.count("eval") < 70


@needs_music21
def test_a_score_becomes_notes_on_the_keyboard(tmp_path):
    from music21 import corpus

    path = str(corpus.getWork("bwv66.6"))
    events = note_data.score_events(path, tmp_path)
    assert (
        len(events) > 50 and (tmp_path / next(iter(p.name for p in tmp_path.iterdir()))).is_file()
    )
    notes = note_data.score_clip_notes(events, np.random.default_rng(1), 10.0)
    assert notes and all(21 <= n.midi <= 108 and n.onset_s < 10.0 for n in notes)
    assert len({n.onset_s for n in notes}) < len(notes)  # chords: four voices at once


@needs_tensorflow
def test_the_recipe_end_to_end_on_a_tiny_dataset(tmp_path):
    mix = {"chords": 1.0, "single": 1.0}
    paths = train_notes.build_dataset(
        tmp_path / "clips", 3, seed=5, workers=1, cache=tmp_path, mix=mix
    )
    assert len(paths) == 3
    with np.load(paths[0]) as data:
        assert data["features"].shape[1:] == (N_BINS, 2)
        assert data["onsets"].sum() > 0
    model = train_notes.train(paths[1:], epochs=1, steps=2, batch=2, seed=1, val_paths=paths[:1])
    out = tmp_path / "notes.tflite"
    train_notes.export_tflite(model, out)
    assert 0 < out.stat().st_size <= 2 * 1024 * 1024
    runner = NoteModel(out, train_notes.CONTEXT)
    with np.load(paths[0]) as data:
        window = data["features"][None, :50].astype(np.float32)
    probabilities = runner(window)
    assert probabilities.shape == (1, 50 - train_notes.CONTEXT + 1, 1, 176)
    np.testing.assert_allclose(probabilities, model.predict(window, verbose=0), atol=1e-3)


@needs_tensorflow
def test_training_can_go_on_from_a_saved_model(tmp_path):
    paths = train_notes.build_dataset(
        tmp_path / "clips", 2, seed=6, workers=1, cache=tmp_path, mix={"single": 1.0}
    )
    first = train_notes.train(paths, epochs=1, steps=1, batch=2, seed=1, val_paths=[])
    saved = tmp_path / "notes.tflite"
    train_notes.save_keras(first, saved)
    # A learning rate too small to move anything: what is left is where training started.
    still = {
        "epochs": 1,
        "steps": 1,
        "batch": 2,
        "seed": 2,
        "val_paths": [],
        "learning_rate": 1e-12,
    }
    warm = train_notes.train(paths, init=saved.with_suffix(".keras"), **still)
    cold = train_notes.train(paths, **still)

    # (Trainable weights only: batch normalisation's running statistics move in any step.)
    def weights(model):
        return [w.numpy() for w in model.trainable_weights]

    for trained, resumed in zip(weights(first), weights(warm), strict=True):
        np.testing.assert_allclose(resumed, trained, atol=1e-6)
    assert not np.allclose(weights(cold)[0], weights(first)[0], atol=1e-3)
