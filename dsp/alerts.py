"""From per-window class probabilities to confirmed alerts, and the key gate.

The classifier scores a 1 s window every hop (`[alerts].hop_s`, 0.25 s by default). One loud
window is not an alert: a class must score over its threshold in N of the last M windows, and
one of those M windows must reach `peak` (`AlertRule`), before an `Alert` is raised. Once raised
it stays up until the class has scored under its threshold for M windows in a row (the sound
stopped) or `timeout_s` has passed, whichever is first. After an alert ends the class is quiet
for `cooldown_s`, so one ringing doorbell is one alert, while a smoke alarm that keeps beeping
past the timeout is raised again after the cooldown.

`KeyGate` is the same classifier's other use: while it hears speech or other non-piano sound
and no piano, note-ons are not shown (a voice has a pitch too).

Pure streaming logic: construct with parameters, `feed`, get events, `flush()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .events import Alert

# The classes the alert model knows, in the model's output order. The first nine are alerts;
# speech, piano and other are heard so that they can be told apart from alerts and gate keys.
CLASSES: tuple[str, ...] = (
    "smoke_alarm",
    "doorbell",
    "knock",
    "baby_cry",
    "dog_bark",
    "phone_ring",
    "siren",
    "glass_break",
    "water_running",
    "speech",
    "piano",
    "other",
)
ALERT_CLASSES: tuple[str, ...] = CLASSES[:9]
NON_PIANO_SOUNDS: tuple[str, ...] = ("speech", "other")
# Per-class score an alert window must reach (the config's [alerts].thresholds defaults):
# what models/train_alerts.suggest_thresholds measured for the shipped model on development
# audio (neither training nor benchmark audio); see models/alerts.md.
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        "smoke_alarm": 0.5,
        "doorbell": 0.5,
        "knock": 0.5,
        "baby_cry": 0.5,
        "dog_bark": 0.5,
        "phone_ring": 0.5,
        "siren": 0.5,
        "glass_break": 0.5,
        "water_running": 0.5,
    }
)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When one class becomes an alert: `n` of the last `m` windows at or over `threshold`,
    and the best of those `m` windows at or over `peak` (0: no such condition).

    Two levels, as in a Schmitt trigger: the threshold says which windows count as evidence,
    the peak that the classifier was clearly sure at least once. Music the model half-mistakes
    for an alert (a piano it never heard, read as a doorbell) tends to hover just over the
    threshold; a real alert, even through the music, usually has one clear window.
    """

    threshold: float = 0.5
    n: int = 2
    m: int = 3
    cooldown_s: float = 10.0
    peak: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.n <= self.m:
            raise ValueError(f"need 1 <= n <= m, got n={self.n} m={self.m}")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {self.cooldown_s}")
        if not 0.0 <= self.peak <= 1.0:
            raise ValueError(f"peak must be in [0, 1], got {self.peak}")


@dataclass
class _ClassState:
    rule: AlertRule
    recent: deque[float]  # the last m probabilities
    active: bool = False
    started_s: float = 0.0
    quiet_until_s: float = float("-inf")


class AlertConfirmer:
    """Feed one probability vector per window (in `classes` order) with the stream time at the
    window's end; get `Alert(active=True)` when a class is confirmed and `Alert(active=False)`
    when it stops or times out. Classes without a rule are never raised."""

    def __init__(
        self,
        classes: Sequence[str],
        rules: Mapping[str, AlertRule],
        timeout_s: float = 30.0,
    ) -> None:
        unknown = sorted(set(rules) - set(classes))
        if unknown:
            raise ValueError(f"rules for unknown classes: {', '.join(unknown)}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.classes = tuple(classes)
        self.timeout_s = timeout_s
        self._states = {
            index: _ClassState(rules[name], deque(maxlen=rules[name].m))
            for index, name in enumerate(self.classes)
            if name in rules
        }
        self._last_s = 0.0

    @property
    def active(self) -> tuple[str, ...]:
        """The classes whose alert is up now."""
        return tuple(self.classes[i] for i, s in self._states.items() if s.active)

    def feed(self, probabilities: Sequence[float] | np.ndarray, stream_s: float) -> list[Alert]:
        probabilities = np.asarray(probabilities, dtype=float).reshape(-1)
        if len(probabilities) != len(self.classes):
            raise ValueError(
                f"expected {len(self.classes)} probabilities, got {len(probabilities)}"
            )
        self._last_s = stream_s
        events = []
        for index, state in self._states.items():
            state.recent.append(float(probabilities[index]))
            event = self._step(self.classes[index], state, stream_s)
            if event is not None:
                events.append(event)
        return events

    def _step(self, label: str, state: _ClassState, stream_s: float) -> Alert | None:
        rule = state.rule
        hits = [p for p in state.recent if p >= rule.threshold]
        if state.active:
            timed_out = stream_s - state.started_s >= self.timeout_s
            stopped = len(state.recent) == rule.m and not hits
            if timed_out or stopped:
                state.active = False
                state.quiet_until_s = stream_s + rule.cooldown_s
                return Alert(label, float(max(state.recent)), stream_s, active=False)
            return None
        sure = bool(hits) and max(state.recent) >= rule.peak
        if len(hits) >= rule.n and sure and stream_s >= state.quiet_until_s:
            state.active = True
            state.started_s = stream_s
            return Alert(label, float(max(hits)), stream_s, active=True)
        return None

    def flush(self) -> list[Alert]:
        """End every alert still up (the stream ended); the confirmer starts afresh."""
        events = [
            Alert(self.classes[i], float(max(s.recent, default=0.0)), self._last_s, active=False)
            for i, s in self._states.items()
            if s.active
        ]
        for state in self._states.values():
            state.active = False
            state.recent.clear()
            state.quiet_until_s = float("-inf")
        return events


class KeyGate:
    """Whether note-ons should be shown, from the classifier's latest windows.

    Closed while the last `windows` windows all heard speech or other sound (either at or over
    `threshold`) and none heard piano at or over `piano_threshold`; one window with piano, or
    one without those sounds, opens it again. Requiring agreement keeps one ambiguous window
    from hiding the pianist's notes, and piano winning over speech means talking while playing
    never hides notes.
    """

    def __init__(
        self,
        classes: Sequence[str],
        threshold: float = 0.6,
        piano_threshold: float = 0.3,
        windows: int = 2,
    ) -> None:
        if windows < 1:
            raise ValueError(f"windows must be >= 1, got {windows}")
        self._sounds = [list(classes).index(name) for name in NON_PIANO_SOUNDS]
        self._piano = list(classes).index("piano")
        self.threshold = threshold
        self.piano_threshold = piano_threshold
        self._recent: deque[bool] = deque(maxlen=windows)

    def feed(self, probabilities: Sequence[float] | np.ndarray) -> bool:
        """Take one window's probabilities; returns whether notes are allowed now."""
        p = np.asarray(probabilities, dtype=float).reshape(-1)
        not_piano = max(p[i] for i in self._sounds) >= self.threshold
        self._recent.append(bool(not_piano and p[self._piano] < self.piano_threshold))
        return self.notes_allowed

    @property
    def notes_allowed(self) -> bool:
        closed = len(self._recent) == self._recent.maxlen and all(self._recent)
        return not closed

    def flush(self) -> None:
        self._recent.clear()
