"""The household-sound classifier at run time: LiteRT model, streaming windows, its thread.

`AlertModel` runs `models/alerts.tflite` (LiteRT: `ai_edge_litert`, or the older
`tflite_runtime`). `AlertStream` is the synchronous pipeline the `classify` command uses:
16 kHz audio in, one 1 s window classified every hop ([alerts].hop_s), `Alert` events out
(confirmed by `dsp.alerts.AlertConfirmer`), plus the key gate. `ClassifierThread` runs an
`AlertStream` on its own thread for the daemon: the daemon hands it each audio block with
`feed` (never blocks: a bounded queue that drops blocks when the classifier falls behind) and
picks up alerts with `poll`, so classifying never delays a note.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notesight.dsp.alerts import CLASSES, AlertConfirmer, AlertRule, KeyGate
from notesight.dsp.events import Alert, Event, NoteOff, NoteOn
from notesight.dsp.features import HOP_S, N_FRAMES, N_MELS, SAMPLE_RATE, WINDOW, log_mel

from .errors import ModelError
from .litert import open_interpreter

log = logging.getLogger(__name__)

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "alerts.tflite"


def model_path(configured: str) -> Path:
    """The model file [alerts].model names, or the shipped one for ""."""
    return Path(configured).expanduser() if configured else SHIPPED_MODEL


class AlertModel:
    """One LiteRT interpreter: `predict(features)` -> one probability per class in `CLASSES`.
    Not thread-safe: one model per thread."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        path = Path(path)
        self._interpreter = open_interpreter(path, "alert model", "[alerts].model", num_threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        in_shape = tuple(inputs[0]["shape"]) if len(inputs) == 1 else ()
        out_shape = tuple(outputs[0]["shape"]) if len(outputs) == 1 else ()
        if in_shape != (1, N_FRAMES, N_MELS) or out_shape != (1, len(CLASSES)):
            raise ModelError(
                f"alert model {path} does not fit this notesight: it takes {in_shape} and gives "
                f"{out_shape}, expected (1, {N_FRAMES}, {N_MELS}) and (1, {len(CLASSES)}); "
                "retrain it with `notesight models train-alerts`"
            )
        self._input = inputs[0]["index"]
        self._output = outputs[0]["index"]
        self.path = path

    def predict(self, features: np.ndarray) -> np.ndarray:
        batch = np.asarray(features, np.float32).reshape(1, N_FRAMES, N_MELS)
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output)[0], dtype=np.float32)


@dataclass(frozen=True)
class StreamSettings:
    """What `AlertStream` needs from [alerts], so tests and the bench can build one directly."""

    rules: Mapping[str, AlertRule]
    timeout_s: float = 30.0
    gate_threshold: float = 0.6
    hop_s: float = HOP_S  # one window is classified each time this much new audio came in

    @property
    def hop(self) -> int:
        """The hop in samples at 16 kHz."""
        hop = round(self.hop_s * SAMPLE_RATE)
        if not 0 < hop <= WINDOW:
            raise ValueError(f"hop_s must be in (0, {WINDOW / SAMPLE_RATE:g}], got {self.hop_s}")
        return hop


def stream_settings(alerts) -> StreamSettings:
    """StreamSettings from the config's AlertSettings."""
    rules = {
        label: AlertRule(threshold, alerts.n, alerts.m, alerts.cooldown_s, alerts.peak)
        for label, threshold in alerts.thresholds.items()
    }
    return StreamSettings(rules, alerts.timeout_s, alerts.gate_threshold, alerts.hop_s)


class AlertStream:
    """16 kHz mono in, `Alert` events out. A window is classified each time `settings.hop`
    new samples have come in; it covers the last WINDOW samples (zeros before the stream
    began). Alert times are stream seconds at the end of the window that confirmed them, plus
    `start_s` (how far the daemon's clock is ahead of the audio: where the stream began, plus
    gaps)."""

    def __init__(self, model: AlertModel, settings: StreamSettings, start_s: float = 0.0) -> None:
        self._model = model
        self.hop = settings.hop
        self._confirmer = AlertConfirmer(CLASSES, settings.rules, settings.timeout_s)
        self._gate = KeyGate(CLASSES, threshold=settings.gate_threshold)
        self._buffer = np.zeros(WINDOW, np.float32)
        self._pending = 0  # samples since the last classified window
        self._samples = 0
        self.start_s = start_s
        self.last_probabilities = np.zeros(len(CLASSES), np.float32)
        self.windows = 0

    @property
    def stream_s(self) -> float:
        return self.start_s + self._samples / SAMPLE_RATE

    @property
    def notes_allowed(self) -> bool:
        return self._gate.notes_allowed

    def feed(self, audio: np.ndarray) -> list[Alert]:
        audio = np.asarray(audio, np.float32).reshape(-1)
        events: list[Alert] = []
        while len(audio):
            take = min(len(audio), self.hop - self._pending)
            self._buffer = np.concatenate([self._buffer[take:], audio[:take]])
            audio = audio[take:]
            self._pending += take
            self._samples += take
            if self._pending == self.hop:
                self._pending = 0
                events += self._classify()
        return events

    def _classify(self) -> list[Alert]:
        probabilities = self._model.predict(log_mel(self._buffer))
        self.last_probabilities = probabilities
        self.windows += 1
        self._gate.feed(probabilities)
        return self._confirmer.feed(probabilities, self.stream_s)

    def flush(self) -> list[Alert]:
        """End the alerts still up; nothing is classified from a partial window."""
        self._gate.flush()
        return self._confirmer.flush()


class ClassifierThread:
    """An `AlertStream` on its own thread, fed by the daemon without ever blocking it.

    `feed(block, stream_s)` queues a block at the microphone's rate (dropped, and counted,
    when the queue is full: the classifier fell behind, the notes must not); the thread
    resamples to 16 kHz (soxr) and classifies. `poll()` returns the alerts found since the last
    call, with the daemon's stream times. `notes_allowed` is the key gate's latest verdict.
    With `drop_when_full=False` (a file run with --fast, where nothing is live) `feed` waits
    for room instead, so every block is classified.
    """

    def __init__(
        self,
        stream: AlertStream,
        sample_rate: int,
        *,
        queue_blocks: int = 64,
        drop_when_full: bool = True,
    ) -> None:
        import soxr

        self._stream = stream
        self.sample_rate = sample_rate
        self._resampler = (
            soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
            if sample_rate != SAMPLE_RATE
            else None
        )
        self._blocks: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(queue_blocks)
        self._alerts: queue.SimpleQueue[Alert] = queue.SimpleQueue()
        self._drop_when_full = drop_when_full
        self._notes_allowed = True
        self._stop = threading.Event()
        self.dropped_blocks = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="notesight-classifier", daemon=True)
        self._thread.start()

    # -- daemon side ---------------------------------------------------------------------------
    def feed(self, block: np.ndarray, offset_s: float = 0.0) -> None:
        """Queue a block; `offset_s` is how far the daemon's clock is ahead of the audio fed so
        far (time without audio), added to the alerts' times."""
        if self._stop.is_set():
            return
        item = (np.asarray(block, np.float32).reshape(-1).copy(), offset_s)
        if self._drop_when_full:
            try:
                self._blocks.put_nowait(item)
            except queue.Full:
                self.dropped_blocks += 1
        else:
            self._blocks.put(item)

    def poll(self) -> list[Alert]:
        alerts = []
        while True:
            try:
                alerts.append(self._alerts.get_nowait())
            except queue.Empty:
                return alerts

    @property
    def notes_allowed(self) -> bool:
        return self._notes_allowed

    @property
    def windows(self) -> int:
        return self._stream.windows

    @property
    def hop_s(self) -> float:
        """Seconds of audio between two classified windows ([alerts].hop_s)."""
        return self._stream.hop / SAMPLE_RATE

    def close(self) -> list[Alert]:
        """Classify what is queued, stop the thread, and return the alerts not yet polled
        (including the end of any alert still up)."""
        if not self._stop.is_set():
            self._blocks.put(None)  # after every queued block: all of them are classified
            self._thread.join()
            self._stop.set()
            for alert in self._stream.flush():
                self._alerts.put(alert)
        return self.poll()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                item = self._blocks.get()
                if item is None:
                    break
                block, self._stream.start_s = item
                audio = self._resampler.resample_chunk(block) if self._resampler else block
                for alert in self._stream.feed(audio):
                    self._alerts.put(alert)
                self._notes_allowed = self._stream.notes_allowed
        except Exception as exc:  # a broken model must not take the notes down with it
            log.error("alert classifier stopped: %s", exc)
            self.error = exc
            self._notes_allowed = True
            self._stop.set()


class AlertHook:
    """What the daemon does with the classifier, block by block.

    `on_block` feeds the block to the classifier thread, adds the alerts it has found, and
    drops the note-ons the key gate rejects (while the classifier hears speech or other sound
    and no piano), with their note-offs, so a voice does not light keys. `wants` routes alerts:
    an output named leds, motor, oled or mqtt gets only the alerts [alerts] routes to it; every
    other output (the JSONL log) gets them all. `close` ends the thread and returns the last
    alerts.
    """

    ROUTED_OUTPUTS = ("leds", "motor", "oled", "mqtt")

    def __init__(
        self,
        classifier: ClassifierThread,
        routes: Mapping[str, Collection[str]],
        *,
        gate_keys: bool = True,
    ) -> None:
        self.classifier = classifier
        self._routes = {name: frozenset(routes.get(name, ())) for name in self.ROUTED_OUTPUTS}
        self._gate_keys = gate_keys
        self._gated: set[int] = set()  # keys whose note-on was dropped: drop their note-off too
        self._audio_s = 0.0
        self.gated_notes = 0
        self._closed = False

    def on_block(self, block: np.ndarray, events: list[Event], stream_s: float) -> list[Event]:
        self._audio_s += len(block) / self._rate
        self.classifier.feed(block, offset_s=stream_s - self._audio_s)
        return self._gate(events) + list(self.classifier.poll())

    @property
    def _rate(self) -> int:
        return self.classifier.sample_rate

    def _gate(self, events: list[Event]) -> list[Event]:
        if not self._gate_keys:
            return events
        kept: list[Event] = []
        allowed = self.classifier.notes_allowed
        for event in events:
            if isinstance(event, NoteOn) and not allowed:
                self._gated.add(event.midi)
                self.gated_notes += 1
                continue
            if isinstance(event, NoteOn):
                self._gated.discard(event.midi)
            elif isinstance(event, NoteOff) and event.midi in self._gated:
                self._gated.discard(event.midi)
                continue
            kept.append(event)
        return kept

    def wants(self, output_name: str, event: Event) -> bool:
        if not isinstance(event, Alert) or output_name not in self._routes:
            return True
        return event.label in self._routes[output_name]

    def close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        return list(self.classifier.close())


def build_classifier(settings, sample_rate: int, *, realtime: bool) -> ClassifierThread | None:
    """The classifier the config asks for, or None ([alerts].enabled = false, or it could not
    start: logged, and the daemon runs on without alerts)."""
    alerts = settings.alerts
    if not alerts.enabled:
        return None
    try:
        model = AlertModel(model_path(alerts.model))
    except ModelError as exc:
        log.error("alerts are off: %s", exc)
        return None
    return ClassifierThread(
        AlertStream(model, stream_settings(alerts)), sample_rate, drop_when_full=realtime
    )


def build_alert_hook(settings, sample_rate: int, *, realtime: bool) -> AlertHook | None:
    """The daemon's alert hook for this config, or None when alerts are off or cannot start."""
    classifier = build_classifier(settings, sample_rate, realtime=realtime)
    if classifier is None:
        return None
    alerts = settings.alerts
    routes = {"leds": alerts.leds, "motor": alerts.motor, "oled": alerts.oled, "mqtt": alerts.mqtt}
    return AlertHook(classifier, routes, gate_keys=alerts.gate_keys)
