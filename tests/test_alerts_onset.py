"""Onset windows for the alert recipe (`alert_data.onset_crop`, `Recipe.onset_share`): the
start of a sound at the end of a silent window, what a stream's first windows hear."""

from __future__ import annotations

import numpy as np
import pytest

from notesight.dsp.alerts import CLASSES
from notesight.dsp.features import SAMPLE_RATE, WINDOW
from notesight.models import alert_data

SR = SAMPLE_RATE


def tone(seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.cos(2 * np.pi * hz * t)).astype(np.float32)  # no zero at its start


def sound_after_silence(silence_s: float, sound_s: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(silence_s * SR), np.float32), tone(sound_s)])


@pytest.mark.parametrize("seed", range(8))
def test_the_sound_starts_0_2_to_0_6_s_before_the_window_ends(seed):
    source = sound_after_silence(1.3, 2.0)  # up to 6 s: played from its start
    window = alert_data.onset_crop(source, np.random.default_rng(seed))
    assert window is not None and len(window) == WINDOW
    onset = int(np.flatnonzero(window)[0])
    assert 0.2 <= (WINDOW - onset) / SR <= 0.6
    assert not window[:onset].any()
    # the kept part is the sound from its first frame on (1.3 s is a 20 ms frame boundary)
    start = int(1.3 * SR)
    np.testing.assert_array_equal(window[onset:], source[start : start + WINDOW - onset])


def test_a_long_recording_is_started_anywhere_after_silence():
    # a 12 s recording of 1 s sounds with 1 s gaps, started at random points: a start just
    # before a gap has too little sound (None, make_windows draws again); every other window
    # holds silence, then the sound from where the piece started or from the next sound
    source = np.concatenate([sound_after_silence(1.0, 1.0) for _ in range(6)])
    windows = [alert_data.onset_crop(source, np.random.default_rng(seed)) for seed in range(40)]
    kept = [w for w in windows if w is not None]
    assert len(kept) >= 30
    for window in kept:
        onset = int(np.flatnonzero(window)[0])
        assert 0.2 <= (WINDOW - onset) / SR <= 0.6
        assert not window[:onset].any()
        assert alert_data.frame_db(window[onset:]).max() > -10


def test_a_click_alone_is_too_little_sound():
    click = np.zeros(SR, np.float32)
    click[100:300] = 0.5
    assert alert_data.onset_crop(click, np.random.default_rng(0)) is None


def test_onset_share_puts_the_start_of_the_sound_at_the_window_end():
    sources = [
        alert_data.Source("siren", f"tone/{k}", sound_after_silence(1.0, 3.0), "train", "real")
        for k in range(3)
    ]
    windows, labels = alert_data.make_windows(sources, [], per_class=20, seed=3, onset_share=1.0)
    siren = labels[:, CLASSES.index("siren")] == 1
    assert siren.sum() == 20
    for window in windows[siren]:
        head = alert_data.frame_db(window[: WINDOW // 2 - SR // 10])  # up to 0.6 s before the end
        tail = alert_data.frame_db(window[-SR // 5 :])  # the last 0.2 s always hold the sound
        assert tail.min() > head.max() + 15  # room noise before, the tone after


def test_without_onset_share_the_recipe_draws_the_same_windows():
    sources = alert_data.synth_sources(2, "train", 1)
    plain = alert_data.make_windows(sources, [], per_class=6, seed=5)
    zero = alert_data.make_windows(sources, [], per_class=6, seed=5, onset_share=0.0)
    with_onsets = alert_data.make_windows(sources, [], per_class=6, seed=5, onset_share=0.5)
    np.testing.assert_array_equal(plain[0], zero[0])
    assert not np.array_equal(plain[0], with_onsets[0])


def test_onset_skip_leaves_a_class_its_ordinary_crops():
    sources = [
        alert_data.Source("siren", f"tone/{k}", sound_after_silence(1.0, 3.0), "train", "real")
        for k in range(3)
    ]
    windows, labels = alert_data.make_windows(
        sources, [], per_class=20, seed=3, onset_share=1.0, onset_skip=("siren",)
    )
    siren = windows[labels[:, CLASSES.index("siren")] == 1]
    # crops from anywhere in the sound: most hold it from their first frames on
    head_db = [alert_data.frame_db(w[: SR // 10]).max() for w in siren]
    tail_db = [alert_data.frame_db(w[-SR // 5 :]).min() for w in siren]
    assert sum(h > t - 15 for h, t in zip(head_db, tail_db, strict=True)) >= 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--onset-share", "1.5"], "onset share must be in [0, 1], got 1.5"),
        (["--onset-skip", "doorbel"], "unknown classes doorbel; use smoke_alarm, doorbell"),
    ],
)
def test_a_bad_onset_option_is_one_line(argv, message, capsys):
    from notesight.models import train_alerts

    assert train_alerts.main([*argv, "--out", "/nonexistent/x.tflite"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"train_alerts: {message}")
    assert len(err.strip().splitlines()) == 1
