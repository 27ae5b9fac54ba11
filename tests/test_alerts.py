"""Alert logic without a model: log-mel features, n-of-m confirmation, cooldown, timeout, the
key gate, and the [alerts] config section (one invalid-config test per rule)."""

from __future__ import annotations

import numpy as np
import pytest

from notesight.device.config import AlertSettings, Settings, parse_settings
from notesight.device.errors import ConfigError
from notesight.dsp.alerts import (
    ALERT_CLASSES,
    CLASSES,
    DEFAULT_THRESHOLDS,
    AlertConfirmer,
    AlertRule,
    KeyGate,
)
from notesight.dsp.events import Alert
from notesight.dsp.features import (
    DB_OFFSET,
    DB_SCALE,
    F_MAX_HZ,
    F_MIN_HZ,
    FLOOR_DB,
    HOP,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    WINDOW,
    log_mel,
    mel_filterbank,
    window_starts,
)

SRC = "/etc/notesight/config.toml"


def probabilities(**scores: float) -> np.ndarray:
    p = np.zeros(len(CLASSES))
    for name, score in scores.items():
        p[CLASSES.index(name)] = score
    return p


# -- features ---------------------------------------------------------------------------------
def test_features_shape_and_silence_floor():
    features = log_mel(np.zeros(WINDOW, np.float32))
    assert features.shape == (N_FRAMES, N_MELS) == (49, 64)
    assert features.dtype == np.float32
    assert np.allclose(features * DB_SCALE + DB_OFFSET, FLOOR_DB)


def test_full_scale_sine_reads_0_db_in_its_band_only():
    t = np.arange(WINDOW) / SAMPLE_RATE
    db = log_mel(np.sin(2 * np.pi * 3000 * t)) * DB_SCALE + DB_OFFSET
    band = int(np.argmax(db.mean(axis=0)))
    centres = mel_filterbank().argmax(axis=1) * SAMPLE_RATE / 512
    assert abs(centres[band] - 3000) < 150
    assert db[:, band].mean() == pytest.approx(0.0, abs=1.5)
    assert db[:, band].mean() - np.median(db.mean(axis=0)) > 40


def test_features_follow_level_in_decibels():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(WINDOW).astype(np.float32) * 0.01
    louder = log_mel(noise * 10) * DB_SCALE - log_mel(noise) * DB_SCALE
    assert np.median(louder) == pytest.approx(20.0, abs=0.1)


def test_short_input_is_padded_at_the_front_and_long_input_uses_its_end():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(WINDOW + 5000).astype(np.float32)
    assert np.array_equal(log_mel(audio), log_mel(audio[-WINDOW:]))
    half = log_mel(audio[: WINDOW // 2])
    assert np.allclose(half[0] * DB_SCALE + DB_OFFSET, FLOOR_DB)
    assert half[-1].mean() > half[0].mean() + 3


def test_filterbank_covers_50_hz_to_8_khz():
    bank = mel_filterbank()
    freqs = np.arange(bank.shape[1]) * SAMPLE_RATE / 512
    assert freqs[bank[0].argmax()] > F_MIN_HZ
    assert freqs[bank[-1].argmax()] < F_MAX_HZ
    # no empty band (the lowest bands are narrower than a 31 Hz FFT bin: they peak near 0.5)
    assert bank.max(axis=1).min() > 0.4
    assert not bank.flags.writeable


def test_window_starts_one_per_hop():
    starts = window_starts(3 * SAMPLE_RATE)
    assert list(starts + WINDOW) == list(range(HOP, 3 * SAMPLE_RATE + 1, HOP))
    half_second = window_starts(3 * SAMPLE_RATE, hop=SAMPLE_RATE // 2)
    assert list(half_second + WINDOW) == [8000, 16000, 24000, 32000, 40000, 48000]


# -- confirmation -----------------------------------------------------------------------------
def rules(**overrides: float) -> dict[str, AlertRule]:
    return {name: AlertRule(threshold=0.5, n=2, m=3, cooldown_s=5.0) for name in ALERT_CLASSES}


def feed_all(confirmer: AlertConfirmer, scores: list[float], label: str = "doorbell"):
    events = []
    for k, score in enumerate(scores):
        events += confirmer.feed(probabilities(**{label: score}), 0.5 * (k + 1))
    return events


def test_one_loud_window_is_not_an_alert():
    confirmer = AlertConfirmer(CLASSES, rules())
    assert feed_all(confirmer, [0.0, 0.99, 0.0, 0.0, 0.1, 0.0]) == []


def test_two_of_three_windows_raise_then_silence_ends_it():
    confirmer = AlertConfirmer(CLASSES, rules())
    events = feed_all(confirmer, [0.0, 0.7, 0.2, 0.9, 0.8, 0.1, 0.0, 0.0, 0.0])
    assert events == [
        Alert("doorbell", 0.9, 2.0, active=True),  # windows 2 and 4 of 2..4
        # three quiet windows after the last hit; its confidence: the best of those windows
        Alert("doorbell", 0.1, 4.0, active=False),
    ]
    assert confirmer.active == ()


def test_threshold_is_inclusive_and_per_class():
    own = rules()
    own["doorbell"] = AlertRule(threshold=0.8, n=2, m=3)
    confirmer = AlertConfirmer(CLASSES, own)
    assert feed_all(confirmer, [0.79, 0.79, 0.79]) == []
    assert [e.active for e in feed_all(AlertConfirmer(CLASSES, own), [0.8, 0.8])] == [True]


def test_cooldown_keeps_one_ringing_doorbell_one_alert():
    confirmer = AlertConfirmer(CLASSES, rules())  # cooldown 5 s
    ring = [0.9, 0.9, 0.0, 0.0, 0.0]
    events = feed_all(confirmer, ring + ring + [0.0] * 6 + ring)
    assert [(e.active, e.stream_s) for e in events] == [
        (True, 1.0),
        (False, 2.5),
        (True, 9.0),  # the second ring (at 3.0 s) fell in the cooldown; the third did not
        (False, 10.5),
    ]


def test_timeout_ends_a_long_alert_and_it_comes_back_after_the_cooldown():
    confirmer = AlertConfirmer(CLASSES, rules(), timeout_s=3.0)
    events = feed_all(confirmer, [0.9] * 38, label="smoke_alarm")
    assert [(e.active, e.stream_s) for e in events] == [
        (True, 1.0),
        (False, 4.0),
        (True, 9.0),
        (False, 12.0),
        (True, 17.0),
    ]


def test_flush_ends_the_alerts_still_up():
    confirmer = AlertConfirmer(CLASSES, rules())
    feed_all(confirmer, [0.9, 0.95], label="siren")
    assert confirmer.active == ("siren",)
    assert confirmer.flush() == [Alert("siren", 0.95, 1.0, active=False)]
    assert confirmer.flush() == []
    assert confirmer.active == ()


def test_peak_needs_one_sure_window_among_the_last_m():
    own = {name: AlertRule(threshold=0.5, n=2, m=3, peak=0.9) for name in ALERT_CLASSES}
    # hovering over the threshold: windows count, but none is sure enough
    assert feed_all(AlertConfirmer(CLASSES, own), [0.6, 0.7, 0.89, 0.6, 0.8, 0.7]) == []
    # one sure window among the last three raises it, even when it is not the newest
    events = feed_all(AlertConfirmer(CLASSES, own), [0.6, 0.95, 0.6])
    assert events == [Alert("doorbell", 0.95, 1.0, active=True)]
    # the sure window alone is not enough either: n still holds
    assert feed_all(AlertConfirmer(CLASSES, own), [0.0, 0.95, 0.0, 0.0]) == []


def test_a_sure_window_that_left_the_last_m_no_longer_counts():
    own = {name: AlertRule(threshold=0.5, n=2, m=3, peak=0.9) for name in ALERT_CLASSES}
    assert feed_all(AlertConfirmer(CLASSES, own), [0.95, 0.3, 0.3, 0.6, 0.6]) == []


def test_classes_without_a_rule_are_never_raised():
    confirmer = AlertConfirmer(CLASSES, rules())
    assert feed_all(confirmer, [1.0] * 6, label="speech") == []
    assert feed_all(confirmer, [1.0] * 6, label="piano") == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: AlertRule(threshold=0.0),
        lambda: AlertRule(threshold=1.5),
        lambda: AlertRule(n=4, m=3),
        lambda: AlertRule(n=0, m=3),
        lambda: AlertRule(cooldown_s=-1),
        lambda: AlertRule(peak=-0.1),
        lambda: AlertRule(peak=1.1),
        lambda: AlertConfirmer(CLASSES, {"fire": AlertRule()}),
        lambda: AlertConfirmer(CLASSES, {}, timeout_s=0),
    ],
)
def test_bad_rules_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_wrong_number_of_probabilities_is_refused():
    with pytest.raises(ValueError, match="expected 12"):
        AlertConfirmer(CLASSES, rules()).feed(np.zeros(5), 0.5)


# -- key gate -------------------------------------------------------------------------------
def test_gate_closes_after_two_windows_of_speech_without_piano():
    gate = KeyGate(CLASSES)
    assert gate.feed(probabilities(speech=0.9))  # one window is not enough
    assert not gate.feed(probabilities(speech=0.8))
    assert not gate.feed(probabilities(other=0.7))
    assert gate.feed(probabilities(speech=0.9, piano=0.6))  # piano opens it at once
    assert gate.feed(probabilities(speech=0.9))
    assert not gate.feed(probabilities(speech=0.9))
    assert gate.feed(probabilities())  # quiet opens it too
    gate.flush()
    assert gate.notes_allowed


def test_gate_ignores_unsure_speech():
    gate = KeyGate(CLASSES, threshold=0.6)
    for _ in range(5):
        assert gate.feed(probabilities(speech=0.59))


# -- [alerts] config --------------------------------------------------------------------------
def error_of(toml: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(toml, SRC)
    return str(info.value)


def test_alert_defaults():
    alerts = Settings().alerts
    assert alerts.enabled and alerts.gate_keys
    assert alerts.thresholds == dict(DEFAULT_THRESHOLDS)
    assert set(alerts.thresholds) == set(ALERT_CLASSES)
    assert (alerts.n, alerts.m, alerts.cooldown_s, alerts.timeout_s) == (3, 4, 10.0, 30.0)
    assert (alerts.hop_s, alerts.peak) == (HOP / SAMPLE_RATE, 0.9) == (0.25, 0.9)
    for route in (alerts.leds, alerts.motor, alerts.oled, alerts.mqtt):
        assert route == list(ALERT_CLASSES)


def test_a_thresholds_table_naming_one_class_changes_only_that_class():
    alerts = parse_settings("[alerts]\nthresholds = { doorbell = 0.8 }", SRC).alerts
    assert alerts.thresholds["doorbell"] == 0.8
    assert alerts.thresholds["smoke_alarm"] == DEFAULT_THRESHOLDS["smoke_alarm"]


def test_routes_can_be_emptied():
    alerts = parse_settings('[alerts]\nleds = []\nmotor = ["smoke_alarm"]', SRC).alerts
    assert alerts.leds == [] and alerts.motor == ["smoke_alarm"]
    assert isinstance(alerts, AlertSettings)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "thresholds = { fire = 0.5 }",
            "[alerts].thresholds: must be a table of alert names and thresholds, like "
            "{ doorbell = 0.6 }: names from smoke_alarm, doorbell, knock, baby_cry, dog_bark, "
            "phone_ring, siren, glass_break, water_running; thresholds from 0.05 to 1.0; "
            '"fire" is not an alert name (got a table)',
        ),
        (
            "thresholds = { doorbell = 1.5 }",
            "thresholds from 0.05 to 1.0; doorbell = 1.5 is out of range (got a table)",
        ),
        ("thresholds = 0.5", "[alerts].thresholds: must be a table of alert names"),
        ("n = 0", "[alerts].n: must be a whole number from 1 to 10 (got 0)"),
        ("m = 11", "[alerts].m: must be a whole number from 1 to 10 (got 11)"),
        (
            "n = 5",
            "[alerts].m: must be at least n (5): an alert needs n of the last m windows (got 4)",
        ),
        ("cooldown_s = -1.0", "[alerts].cooldown_s: must be a number from 0 to 3600 (got -1.0)"),
        ("hop_s = 0.05", "[alerts].hop_s: must be a number from 0.1 to 1 (got 0.05)"),
        ("hop_s = 1.5", "[alerts].hop_s: must be a number from 0.1 to 1 (got 1.5)"),
        ('hop_s = "0.25"', "[alerts].hop_s: must be a number from 0.1 to 1, written without"),
        ("peak = -0.5", "[alerts].peak: must be a number from 0 to 1 (got -0.5)"),
        ("peak = 2.0", "[alerts].peak: must be a number from 0 to 1 (got 2.0)"),
        ("timeout_s = 0.5", "[alerts].timeout_s: must be a number from 1 to 3600 (got 0.5)"),
        (
            'leds = ["doorbel"]',
            '[alerts].leds: must be a list of alert names, like ["smoke_alarm", "doorbell"], '
            "from smoke_alarm, doorbell, knock, baby_cry, dog_bark, phone_ring, siren, "
            'glass_break, water_running; "doorbel" is not an alert name (got ["doorbel"])',
        ),
        ('motor = ["speech"]', "[alerts].motor: must be a list of alert names"),
        ('oled = "doorbell"', "[alerts].oled: must be a list of alert names"),
        ("mqtt = [1]", "[alerts].mqtt: must be a list of alert names"),
        ("gate_threshold = 0.0", "[alerts].gate_threshold: must be a number from 0.05 to 1"),
        ('enabled = "yes"', '[alerts].enabled: must be true or false (got "yes")'),
        ("model = 3", "[alerts].model: must be a string: the path of a .tflite model"),
        ("gate_keys = 1", "[alerts].gate_keys: must be true or false (got 1)"),
        ("window = 2", "[alerts].window: unknown key; allowed keys: enabled, model, thresholds"),
    ],
)
def test_invalid_alerts_config(toml, expected):
    message = error_of(f"[alerts]\n{toml}\n")
    assert message.startswith(f"{SRC}: [alerts].")
    assert expected in message
    assert "\n" not in message
