"""The shipped alert model at run time: LiteRT, the streaming classifier, its thread, the
daemon hook (alerts into the event stream, routing per output, key gating) and `classify`."""

from __future__ import annotations

import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from notesight.device import cli
from notesight.device.classifier import (
    SHIPPED_MODEL,
    AlertHook,
    AlertModel,
    AlertStream,
    ClassifierThread,
    StreamSettings,
    stream_settings,
)
from notesight.device.classify import classify_file
from notesight.device.config import Settings, parse_settings
from notesight.device.daemon import Daemon
from notesight.device.errors import ModelError
from notesight.device.outputs import JsonlEvents
from notesight.dsp.alerts import ALERT_CLASSES, CLASSES, AlertRule
from notesight.dsp.events import Alert, Event, NoteOff, NoteOn
from notesight.dsp.features import SAMPLE_RATE
from notesight.models import alert_data

SHARED_SOUNDS = alert_data.SHARED_DATA / "sounds"
needs_shared = pytest.mark.skipif(
    not SHARED_SOUNDS.is_dir(), reason=f"{SHARED_SOUNDS} (real recordings) not present"
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (./install.sh adds it)"
)
MIC_RATE = 48000


@pytest.fixture(scope="module")
def model() -> AlertModel:
    return AlertModel(SHIPPED_MODEL)


def defaults() -> StreamSettings:
    return stream_settings(Settings().alerts)


def in_room(audio: np.ndarray, level_db: float, seed: int) -> np.ndarray:
    """A sound at `level_db` with 2 s of room noise before it and 2 s after."""
    rng = np.random.default_rng(seed)
    lead = np.zeros(2 * SAMPLE_RATE, np.float32)
    out = np.concatenate([lead, alert_data.set_level(audio, level_db), lead])
    return (out + alert_data.room_noise(len(out), rng) * 10 ** ((level_db - 40) / 20)).astype(
        np.float32
    )


def synth_alarm(seed: int = 424242) -> np.ndarray:
    """A smoke alarm from a seed the training set never used."""
    return alert_data.smoke_alarm(np.random.default_rng(seed))


class Recorder:
    """An output that records every event it is handed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def tick(self, stream_s: float) -> None:
        return None

    def close(self) -> None:
        return None


# -- the model ------------------------------------------------------------------------------
def test_shipped_model_is_small_and_gives_one_probability_per_class(model):
    assert SHIPPED_MODEL.stat().st_size < 1_000_000
    p = model.predict(np.zeros((49, 64), np.float32))
    assert p.shape == (len(CLASSES),)
    assert np.all((p >= 0) & (p <= 1))


def test_missing_model_is_a_model_error_naming_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"does not exist: set \[alerts\]\.model"):
        AlertModel(tmp_path / "nope.tflite")


def test_corrupt_model_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match=r"not a usable \.tflite model"):
        AlertModel(bad)


# -- streaming --------------------------------------------------------------------------------
def test_a_smoke_alarm_is_raised_within_1_5_s_and_ends_after_it(model):
    audio = in_room(synth_alarm(), -25.0, seed=1)
    stream = AlertStream(model, defaults())
    alerts = stream.feed(audio) + stream.flush()
    raised = [a for a in alerts if a.active]
    assert [a.label for a in raised] == ["smoke_alarm"]
    start_s = 2.0 + alert_data.frame_db(synth_alarm()).argmax() * 0  # the alarm starts at 2 s
    assert 0 < raised[0].stream_s - start_s <= 1.5
    assert raised[0].confidence >= Settings().alerts.thresholds["smoke_alarm"]
    ended = [a for a in alerts if not a.active]
    assert [a.label for a in ended] == ["smoke_alarm"]


def test_room_noise_alone_raises_nothing(model):
    rng = np.random.default_rng(3)
    audio = alert_data.room_noise(20 * SAMPLE_RATE, rng) * 10 ** (-60 / 20)
    stream = AlertStream(model, defaults())
    assert stream.feed(audio) + stream.flush() == []
    assert stream.windows == 80  # one per [alerts].hop_s = 0.25 s
    assert stream.notes_allowed


def test_result_does_not_depend_on_how_the_audio_is_cut(model):
    audio = in_room(synth_alarm(7), -25.0, seed=2)
    whole = AlertStream(model, defaults())
    pieces = AlertStream(model, defaults())
    expected = whole.feed(audio)
    got = []
    for start in range(0, len(audio), 1234):
        got += pieces.feed(audio[start : start + 1234])
    assert got == expected and got


# -- the thread ---------------------------------------------------------------------------------
class HeldModel:
    """A model that holds each prediction until released, and records the calls: lets a test
    make the classifier fall behind on purpose."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        self.release.wait()
        return np.zeros(len(CLASSES), np.float32)


def test_feed_never_waits_for_a_slow_classifier_it_drops_blocks():
    held = HeldModel()
    thread = ClassifierThread(
        AlertStream(held, defaults()), SAMPLE_RATE, queue_blocks=2, drop_when_full=True
    )
    one_window = np.zeros(defaults().hop, np.float32)  # each block is one window's new audio
    thread.feed(one_window)
    assert held.entered.wait(timeout=60)  # the thread is inside predict, holding block 1
    for _ in range(5):
        thread.feed(one_window)  # 2 fit in the queue, 3 are dropped, none waits
    assert thread.dropped_blocks == 3
    held.release.set()
    assert thread.close() == []
    assert held.calls == 3


def test_without_dropping_every_block_is_classified_and_alerts_come_out(model):
    audio = in_room(synth_alarm(11), -25.0, seed=4)
    audio_48k = soxr.resample(audio, SAMPLE_RATE, MIC_RATE).astype(np.float32)
    thread = ClassifierThread(AlertStream(model, defaults()), MIC_RATE, drop_when_full=False)
    for start in range(0, len(audio_48k), 512):
        thread.feed(audio_48k[start : start + 512])
    alerts = thread.poll() + thread.close()
    assert thread.dropped_blocks == 0
    assert [(a.label, a.active) for a in alerts] == [("smoke_alarm", True), ("smoke_alarm", False)]


# -- the daemon hook ------------------------------------------------------------------------------
def run_daemon(audio_48k: np.ndarray, outputs, model, *, routes=None, gate_keys=True):
    thread = ClassifierThread(AlertStream(model, defaults()), MIC_RATE, drop_when_full=False)
    routes = (
        routes if routes is not None else {name: ALERT_CLASSES for name in AlertHook.ROUTED_OUTPUTS}
    )
    hook = AlertHook(thread, routes, gate_keys=gate_keys)
    blocks = (audio_48k[i : i + 512] for i in range(0, len(audio_48k), 512))
    stats = Daemon(MIC_RATE, outputs, alerts=hook).run(blocks)
    return stats, hook


def test_daemon_puts_alerts_into_the_event_stream_and_routes_them(model):
    audio = in_room(synth_alarm(13), -25.0, seed=5)
    audio_48k = soxr.resample(audio, SAMPLE_RATE, MIC_RATE).astype(np.float32)
    log = io.StringIO()
    leds, motor = Recorder("leds"), Recorder("motor")
    routes = {"leds": [], "motor": ["smoke_alarm"], "oled": [], "mqtt": []}
    run_daemon(audio_48k, [JsonlEvents(log), leds, motor], model, routes=routes)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    alerts = [line for line in lines if line["event"] == "alert"]
    assert [(a["class"], a["active"]) for a in alerts] == [
        ("smoke_alarm", True),
        ("smoke_alarm", False),
    ]
    assert 2.0 < alerts[0]["stream_s"] <= 3.5
    assert [e for e in motor.events if isinstance(e, Alert)] == [
        Alert(a["class"], a["confidence"], a["stream_s"], a["active"]) for a in alerts
    ]
    assert not [e for e in leds.events if isinstance(e, Alert)]  # routed off the LEDs


def notes_of(events: list[Event]) -> tuple[list[NoteOn], list[NoteOff]]:
    return (
        [e for e in events if isinstance(e, NoteOn)],
        [e for e in events if isinstance(e, NoteOff)],
    )


@needs_espeak
def test_speech_does_not_light_keys_but_piano_does(model):
    voice = alert_data.TEST_VOICES[0]
    text = "could you please bring me a glass of water when you have a moment dinner is ready"
    speech = alert_data.speak(text, voice, 150, 50)
    speech = np.concatenate([speech, alert_data.speak(text, voice, 170, 40)])
    audio = in_room(speech, -25.0, seed=6)
    audio_48k = soxr.resample(audio, SAMPLE_RATE, MIC_RATE).astype(np.float32)
    ungated, gated = Recorder("leds"), Recorder("leds")
    run_daemon(audio_48k, [ungated], model, gate_keys=False)
    _, hook = run_daemon(audio_48k, [gated], model, gate_keys=True)
    on_before, _ = notes_of(ungated.events)
    on_after, off_after = notes_of(gated.events)
    assert len(on_before) >= 5, "the voice lit keys without the gate"
    assert len(on_after) <= len(on_before) / 3
    assert hook.gated_notes == len(on_before) - len(on_after)
    lit = {e.midi for e in on_after}
    assert {e.midi for e in off_after} <= lit  # no note-off for a key that was never lit


def test_piano_is_not_gated(model):
    from notesight.device.synth import find_soundfont, render_notes

    notes = alert_data.piano_piece(77, 12.0)
    piano = render_notes(notes, find_soundfont("MuseScore_General"), MIC_RATE)
    piano = (piano * 10 ** (-6 / 20)).astype(np.float32)
    ungated, gated = Recorder("leds"), Recorder("leds")
    run_daemon(piano, [ungated], model, gate_keys=False)
    _, hook = run_daemon(piano, [gated], model, gate_keys=True)
    assert hook.gated_notes == 0
    assert notes_of(gated.events) == notes_of(ungated.events)


# -- classify ---------------------------------------------------------------------------------
def test_classify_jsonl_prints_one_line_per_confirmed_alert(tmp_path):
    path = tmp_path / "alarm.wav"
    sf.write(path, in_room(synth_alarm(17), -25.0, seed=7), SAMPLE_RATE)
    out = io.StringIO()
    assert classify_file(path, Settings(), out, jsonl=True) == 1
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert set(line) == {"t", "class", "confidence"}
    assert line["class"] == "smoke_alarm"
    assert 2.0 < line["t"] <= 3.5
    assert 0.5 <= line["confidence"] <= 1.0


@needs_shared
def test_classify_hears_a_held_out_real_smoke_alarm(capsys):
    path = SHARED_SOUNDS / "smoke_alarm" / "freesound_325367_fire_house_alarm.flac"
    assert alert_data.HELD_OUT[path.stem] == "smoke_alarm"
    assert cli.main(["classify", str(path), "--jsonl"]) == 0
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [line["class"] for line in lines][:1] == ["smoke_alarm"]


def test_classify_missing_file_is_one_line(tmp_path, capsys):
    assert cli.main(["classify", str(tmp_path / "none.wav")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("notesight: ") and err.count("\n") == 1


def test_classify_with_a_missing_model_names_the_key(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'[alerts]\nmodel = "{tmp_path / "gone.tflite"}"\n')
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert cli.main(["--config", str(config), "classify", str(audio)]) == 1
    err = capsys.readouterr().err
    assert "notesight: alert model" in err and "[alerts].model" in err


def test_config_rules_reach_the_stream(model):
    settings = parse_settings("[alerts]\nn = 10\nm = 10\n", "t")
    assert stream_settings(settings.alerts).rules["smoke_alarm"] == AlertRule(
        0.5, 10, 10, 10.0, 0.9
    )
    audio = in_room(synth_alarm(19), -25.0, seed=8)
    usual = AlertStream(model, defaults()).feed(audio)
    strict = AlertStream(model, stream_settings(settings.alerts)).feed(audio)
    assert usual and usual[0].active
    # ten windows in a row take longer than three of four, if they come at all
    assert not strict or strict[0].stream_s >= usual[0].stream_s + 1.5


def test_daemon_without_the_shipped_model_runs_on(tmp_path):
    from notesight.device.classifier import build_alert_hook

    settings = parse_settings(f'[alerts]\nmodel = "{tmp_path / "gone.tflite"}"\n', "t")
    assert build_alert_hook(settings, MIC_RATE, realtime=True) is None
    off = parse_settings("[alerts]\nenabled = false\n", "t")
    assert build_alert_hook(off, MIC_RATE, realtime=True) is None
    assert Path(SHIPPED_MODEL).is_file()
