"""bench/alerts_dev.py's replay: scores taken once on a 0.05 s grid, replayed at a hop through
`AlertConfirmer`, give exactly the alerts the daemon's `AlertStream` raises on the same audio,
which is what lets the rule be chosen offline."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from notesight.device.classifier import (
    SHIPPED_MODEL,
    AlertModel,
    AlertStream,
    StreamSettings,
    stream_settings,
)
from notesight.device.config import Settings
from notesight.dsp.alerts import ALERT_CLASSES, AlertRule
from notesight.dsp.augment import pink_noise
from notesight.dsp.features import SAMPLE_RATE
from notesight.models import alert_data

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def dev():
    # bench/ is a folder of scripts, not a package: load the file itself
    spec = importlib.util.spec_from_file_location("bench_alerts_dev", BENCH / "alerts_dev.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_alerts_dev"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model() -> AlertModel:
    return AlertModel(SHIPPED_MODEL)


def smoke_alarm_in_a_room(seconds_before: float) -> np.ndarray:
    """A synthesized T3 smoke alarm at -30 dBFS between stretches of room noise."""
    rng = np.random.default_rng(4)
    alarm = alert_data.set_level(alert_data.smoke_alarm(rng), -30.0)
    before = np.zeros(int(seconds_before * SAMPLE_RATE), np.float32)
    after = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([before, alarm, after])
    return (audio + pink_noise(len(audio), rng) * 10 ** (-70 / 20)).astype(np.float32)


def as_tuples(alerts) -> list[tuple]:
    return [(a.label, a.stream_s, a.confidence) for a in alerts if a.active]


@pytest.mark.parametrize(
    "settings",
    [
        stream_settings(Settings().alerts),
        StreamSettings({c: AlertRule(0.5, 2, 3) for c in ALERT_CLASSES}, hop_s=0.5),
        StreamSettings({c: AlertRule(0.5, 7, 7) for c in ALERT_CLASSES}, hop_s=0.1),
    ],
    ids=["default", "hop 0.5, 2 of 3", "hop 0.1, 7 of 7"],
)
@pytest.mark.parametrize("seconds_before", [2.0, 2.13])
def test_replay_of_grid_scores_raises_what_the_stream_raises(dev, model, settings, seconds_before):
    audio = smoke_alarm_in_a_room(seconds_before)
    stream = AlertStream(model, settings)
    expected = as_tuples(stream.feed(audio) + stream.flush())
    replayed = dev.replay(
        dev.grid_scores(model, audio), settings.hop_s, dict(settings.rules), settings.timeout_s
    )
    assert expected, "the alarm must raise an alert for the comparison to mean anything"
    assert as_tuples(replayed) == expected


def test_grid_scores_are_one_window_per_0_05_s_after_leading_silence(dev, model):
    audio = smoke_alarm_in_a_room(2.0)[: 3 * SAMPLE_RATE + 500]
    scores = dev.grid_scores(model, audio)
    assert scores.shape == (60, 12)
    # the first window is 0.05 s of room noise after silence: the same as the stream's first
    first = AlertStream(model, StreamSettings({}, hop_s=0.05))
    first.feed(audio[: dev.GRID])
    np.testing.assert_array_equal(scores[0], first.last_probabilities)


@pytest.mark.parametrize("hop_s", [0.12, 0.0, 0.33])
def test_a_hop_off_the_grid_is_refused(dev, hop_s):
    with pytest.raises(ValueError, match=r"multiple of 0\.05"):
        dev.replay(np.zeros((40, 12), np.float32), hop_s, {})


def test_rule_option_parses_and_names_what_is_missing(dev):
    rule = dev.parse_rule("hop_s=0.25,n=3,m=4,peak=0.9")
    assert (rule.hop_s, rule.n, rule.m, rule.peak, rule.threshold) == (0.25, 3, 4, 0.9, 0.5)
    assert rule.rules()["doorbell"] == AlertRule(0.5, 3, 4, 10.0, 0.9)
    with pytest.raises(argparse.ArgumentTypeError, match="hop_s"):
        dev.parse_rule("n=3,m=4")


def test_rule_option_takes_a_class_threshold_and_refuses_unknown_keys(dev):
    rule = dev.parse_rule("hop_s=0.25,n=3,m=4,threshold=0.6,doorbell=0.7")
    thresholds = {label: r.threshold for label, r in rule.rules().items()}
    assert thresholds["doorbell"] == 0.7
    assert {t for label, t in thresholds.items() if label != "doorbell"} == {0.6}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dorbell"):
        dev.parse_rule("hop_s=0.25,n=3,m=4,dorbell=0.7")


def test_voices_stream_is_speech_alone_or_over_piano_never_piano_alone(dev):
    bench_alerts = dev.bench
    piano = [np.sin(np.arange(40 * SAMPLE_RATE) * 0.05).astype(np.float32)]
    speech = [pink_noise(SAMPLE_RATE, np.random.default_rng(k)) for k in range(3)]
    _, kinds = bench_alerts.false_alert_stream(piano, speech, 2.0, shares=(0.0, 0.5, 0.5))
    assert {kind for _, kind in kinds} == {"speech", "both"}
    # the default shares draw what the benchmark always drew
    audio, kinds = bench_alerts.false_alert_stream(piano, speech, 2.0)
    again, kinds_again = bench_alerts.false_alert_stream(piano, speech, 2.0, shares=(0.6, 0.2, 0.2))
    assert np.array_equal(audio, again) and kinds == kinds_again


def test_dev_voices_are_neither_training_nor_benchmark_voices():
    dev_voices = set(alert_data.DEV_VOICES)
    assert not dev_voices & set(alert_data.TRAIN_VOICES)
    assert not dev_voices & set(alert_data.TEST_VOICES)


def test_default_row_is_the_shipped_config(dev):
    alerts = Settings().alerts
    rule = dev.default_rule()
    assert (rule.hop_s, rule.n, rule.m, rule.peak) == (
        alerts.hop_s,
        alerts.n,
        alerts.m,
        alerts.peak,
    )
    assert {c: r.threshold for c, r in rule.rules().items()} == dict(alerts.thresholds)
