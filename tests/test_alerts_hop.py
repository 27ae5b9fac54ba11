"""[alerts].hop_s and [alerts].peak with the shipped model: how often a window is classified
(the stream, the classifier thread, the benchmark's CPU figure) and the second, "sure" level
that keeps music the model half-mistakes for an alert from raising it. The invalid-config tests
for both keys are with the rest of [alerts] in test_alerts.py."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from notesight.device.classifier import (
    SHIPPED_MODEL,
    AlertModel,
    AlertStream,
    ClassifierThread,
    StreamSettings,
    stream_settings,
)
from notesight.device.config import Settings, parse_settings
from notesight.dsp.alerts import AlertRule
from notesight.dsp.features import SAMPLE_RATE
from notesight.models import alert_data

MIC_RATE = 48000
# The [alerts] rule before hop_s and peak existed: a window every 0.5 s, 2 of the last 3.
OLD_RULE = "[alerts]\nhop_s = 0.5\nn = 2\nm = 3\npeak = 0.0\n"


@pytest.fixture(scope="module")
def model() -> AlertModel:
    return AlertModel(SHIPPED_MODEL)


def settings_of(toml: str) -> StreamSettings:
    return stream_settings(parse_settings(toml, "t").alerts)


def room_noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = alert_data.room_noise(int(seconds * SAMPLE_RATE), rng) * 10 ** (-60 / 20)
    return noise.astype(np.float32)


def smoke_alarm_in_room(seed: int) -> np.ndarray:
    """An alarm from an unused seed, 2 s into room noise, 2 s of noise after it."""
    alarm = alert_data.set_level(alert_data.smoke_alarm(np.random.default_rng(seed)), -25.0)
    lead = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([lead, alarm, lead])
    return (audio + room_noise(len(audio) / SAMPLE_RATE, seed) * 10 ** (25 / 20)).astype(np.float32)


@pytest.mark.parametrize(
    ("toml", "windows"), [("", 80), (OLD_RULE, 40), ("[alerts]\nhop_s = 0.2", 100)]
)
def test_hop_s_sets_how_often_a_window_is_classified(model, toml, windows):
    stream = AlertStream(model, settings_of(toml))
    stream.feed(room_noise(20.0, seed=1))
    assert stream.windows == windows


def test_the_classifier_thread_classifies_on_the_configured_hop(model):
    # 10 s and a little: the resampler keeps its last few milliseconds back
    audio = soxr.resample(room_noise(10.1, seed=2), SAMPLE_RATE, MIC_RATE).astype(np.float32)
    for toml, hop_s, windows in (("", 0.25, 40), (OLD_RULE, 0.5, 20)):
        thread = ClassifierThread(
            AlertStream(model, settings_of(toml)), MIC_RATE, drop_when_full=False
        )
        for start in range(0, len(audio), 480):
            thread.feed(audio[start : start + 480])
        assert thread.close() == []
        assert (thread.hop_s, thread.windows) == (hop_s, windows)


@pytest.mark.parametrize("hop_s", [0.25, 0.2, 0.5])
def test_alerts_are_raised_on_the_hop(model, hop_s):
    stream = AlertStream(model, settings_of(f"[alerts]\nhop_s = {hop_s}\nn = 2\nm = 3\n"))
    raised = [a for a in stream.feed(smoke_alarm_in_room(31)) if a.active]
    assert [a.label for a in raised] == ["smoke_alarm"]
    steps = raised[0].stream_s / hop_s
    assert steps == pytest.approx(round(steps))
    assert 2.0 < raised[0].stream_s <= 2.0 + 1.5  # the alarm starts at 2 s


def test_a_hop_longer_than_the_window_is_refused(model):
    with pytest.raises(ValueError, match="hop_s must be in"):
        AlertStream(model, StreamSettings({"doorbell": AlertRule()}, hop_s=1.5))


def test_defaults_reach_the_stream():
    settings = stream_settings(Settings().alerts)
    assert settings.hop_s == 0.25 and settings.hop == SAMPLE_RATE // 4
    assert settings.rules["doorbell"] == AlertRule(0.5, 3, 4, 10.0, 0.9)


def test_peak_keeps_a_piano_the_model_half_mistakes_for_a_doorbell_quiet(model, render):
    # An electric grand (GM program 2, a timbre training never used) on a training soundfont,
    # playing a piece from the development seeds (models/alerts.md): the shipped model's
    # doorbell score goes over the threshold in 8 windows of 121 but never reaches 0.9 (0.87).
    # (Seed 650_006 did this for v3, the model's first network alone; the pair does not mistake
    # that piece.)
    notes = alert_data.piano_piece(650_010, 30.0)
    piano = render(notes, "FluidR3_GM", SAMPLE_RATE, program=2)
    audio = (alert_data.set_level(piano, -20.0) + room_noise(len(piano) / SAMPLE_RATE, 6)).astype(
        np.float32
    )

    def raised(toml: str) -> list[str]:
        stream = AlertStream(model, settings_of(toml))
        return [a.label for a in stream.feed(audio) + stream.flush() if a.active]

    assert raised(OLD_RULE) == ["doorbell"]
    assert raised("[alerts]\npeak = 0.0\n") == ["doorbell"]
    assert raised("") == []
