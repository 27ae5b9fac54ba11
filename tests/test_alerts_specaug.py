"""Options a training of the alert model may switch on, the default recipe training as before:
SpecAugment (`train_alerts.spec_augment`), wider conv blocks (`Recipe.width`) and random body
resonances on the piano (`alert_data.body_eq`, `Recipe.piano_eq`)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from notesight.dsp.alerts import CLASSES
from notesight.dsp.features import N_FRAMES, N_MELS, SAMPLE_RATE, WINDOW
from notesight.models import alert_data, train_alerts

needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow not installed (the optional extra: pip install -e '.[train]')",
)


def features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_FRAMES, N_MELS)).astype(np.float32)


def labels(n: int, seed: int = 2) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, len(CLASSES))) < 0.2).astype(np.float32)


def test_spec_augment_masks_one_run_of_bands_and_one_of_frames_with_the_window_mean():
    x = features(200)
    out = train_alerts.spec_augment(x, np.random.default_rng(1), max_bands=8, max_frames=4)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.array_equal(x, features(200)), "the input is left as it was"
    changed = out != x
    for window in range(len(x)):
        bands = np.flatnonzero(changed[window].all(axis=0))
        frames = np.flatnonzero(changed[window].all(axis=1))
        assert len(bands) <= 8 and len(frames) <= 4
        if len(bands):  # one run, set to the window's mean
            assert np.array_equal(bands, np.arange(bands[0], bands[-1] + 1))
            assert np.allclose(out[window][:, bands], x[window].mean())
        # everything changed lies in the masked bands or frames
        rows = np.zeros(N_FRAMES, bool)
        rows[frames] = True
        cols = np.zeros(N_MELS, bool)
        cols[bands] = True
        assert not (changed[window] & ~rows[:, None] & ~cols[None, :]).any()
    masked = changed.reshape(len(x), -1).any(axis=1).mean()
    assert masked > 0.8  # widths are drawn from 0..8 and 0..4: most windows get a mask


def test_spec_augment_is_seeded():
    x = features(20)
    first = train_alerts.spec_augment(x, np.random.default_rng(3))
    again = train_alerts.spec_augment(x, np.random.default_rng(3))
    other = train_alerts.spec_augment(x, np.random.default_rng(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        train_alerts.Recipe(width=0.0)


@needs_tensorflow
@pytest.mark.parametrize("width", [1.0, 2.0])
def test_width_scales_the_filters(width):
    import tensorflow as tf

    model = train_alerts.build_model(tf, width)
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [round(f * width) for f in (16, 32, 48, 64)]


@needs_tensorflow
def test_fit_with_spec_augment_trains_every_epoch():
    import dataclasses

    import tensorflow as tf

    recipe = dataclasses.replace(train_alerts.Recipe.tiny(), members=("spec_augment",), epochs=2)
    x = features(64)
    y = labels(64)
    model = train_alerts.fit(tf, recipe, x, y)
    assert model.optimizer.iterations.numpy() == 2 * int(np.ceil(64 / recipe.batch))
    assert model.predict(x[:2], verbose=0).shape == (2, 12)


def spectrum_db(audio: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.abs(np.fft.rfft(audio)) + 1e-9)


def test_body_eq_is_seeded_and_stays_within_three_bands_of_9_db():
    noise = np.random.default_rng(0).normal(size=WINDOW).astype(np.float32)
    first = alert_data.body_eq(noise, np.random.default_rng(1))
    again = alert_data.body_eq(noise, np.random.default_rng(1))
    other = alert_data.body_eq(noise, np.random.default_rng(2))
    assert first.dtype == np.float32 and np.all(np.isfinite(first)) and len(first) == WINDOW
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    change = spectrum_db(first) - spectrum_db(noise)
    freqs = np.fft.rfftfreq(WINDOW, 1.0 / SAMPLE_RATE)
    assert np.abs(change).max() <= 27.0 + 1e-3
    assert np.abs(change[(freqs > 100) & (freqs < 6000)]).max() > 1.0  # it did something


def piano_like() -> np.ndarray:
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    notes = sum(np.sin(2 * np.pi * 220.0 * k * t) / k for k in range(1, 12))
    return (0.2 * notes * np.exp(-(t % 0.5) * 3)).astype(np.float32)


def test_piano_eq_gives_the_piano_windows_other_timbres():
    plain_x, plain_y = alert_data.make_windows([], [piano_like()], per_class=4, seed=3)
    eq_x, eq_y = alert_data.make_windows([], [piano_like()], per_class=4, seed=3, piano_eq=True)
    piano = CLASSES.index("piano")
    alone = eq_y[:, piano] == 1
    assert alone.sum() == alert_data.PIANO_SHARE * 4
    assert np.array_equal(plain_y, eq_y)
    for plain, shaped in zip(plain_x[alone], eq_x[alone], strict=True):
        assert not np.allclose(plain, shaped)


def test_trainings_that_differ_only_in_fitting_share_the_cached_windows():
    import dataclasses

    base = train_alerts.Recipe()
    fingerprint = train_alerts._fingerprint(base, [], [])
    for change in ({"epochs": 3}, {"members": ("plain",)}, {"width": 2.0}, {"batch": 32}):
        assert train_alerts._fingerprint(dataclasses.replace(base, **change), [], []) == fingerprint
    for change in ({"piano_eq": True}, {"per_class": 10}, {"seed": 2}, {"onset_share": 0.2}):
        assert train_alerts._fingerprint(dataclasses.replace(base, **change), [], []) != fingerprint


@pytest.mark.parametrize("members", [(), ("plain", "dropout")])
def test_members_must_be_known_kinds(members):
    with pytest.raises(ValueError, match="plain, spec_augment"):
        train_alerts.Recipe(members=members)


@needs_tensorflow
def test_two_members_are_averaged_into_one_model():
    import dataclasses

    import tensorflow as tf

    recipe = dataclasses.replace(train_alerts.Recipe.tiny(), members=("plain", "spec_augment"))
    x = features(64)
    y = labels(64)
    model = train_alerts.fit(tf, recipe, x, y)
    members = [layer for layer in model.layers if isinstance(layer, tf.keras.Model)]
    assert [m.name for m in members] == ["member0", "member1"]
    each = [m.predict(x[:4], verbose=0) for m in members]
    assert not np.allclose(each[0], each[1]), "the members were trained differently"
    assert np.allclose(model.predict(x[:4], verbose=0), (each[0] + each[1]) / 2, atol=1e-6)


@needs_tensorflow
def test_the_first_member_is_the_network_a_one_member_recipe_trains():
    # So the plain network of a two-member recipe is the model a plain recipe ships (the
    # shipped ensemble's first member is the model shipped before it, bit for bit).
    import dataclasses

    import tensorflow as tf

    x = features(64)
    y = labels(64)
    tiny = train_alerts.Recipe.tiny()
    pair = train_alerts.fit(tf, dataclasses.replace(tiny, members=("plain", "spec_augment")), x, y)
    alone = train_alerts.fit(tf, dataclasses.replace(tiny, members=("plain",)), x, y)
    first = next(layer for layer in pair.layers if layer.name == "member0")
    for a, b in zip(first.get_weights(), alone.get_weights(), strict=True):
        assert np.array_equal(a, b)
