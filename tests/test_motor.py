"""The vibration motor on gpiozero's MockFactory: taps, metronome and alert patterns, with the
pin's values and the stream times at which they changed (gpiozero's mock clock is pointed at
the stream clock, so `pin.states` records stream time)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import gpiozero.pins.mock
import pytest
from gpiozero import Device, PWMOutputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin

from notesight.device.config import MotorSettings, parse_settings
from notesight.device.errors import ConfigError, OutputError
from notesight.device.motor import GpioMotorSink, JsonlMotorSink, Motor, TempoFollower, open_pwm
from notesight.dsp.events import Alert, NoteOn

BLOCK_S = 256 / 44100


class StreamClock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StreamClock:
    """MockFactory pins with PWM; their state times come from this clock (stream seconds)."""
    stream = StreamClock()
    monkeypatch.setattr(gpiozero.pins.mock, "monotonic", stream)
    factory = MockFactory(pin_class=MockPWMPin)
    monkeypatch.setattr(Device, "pin_factory", factory)
    yield stream
    factory.reset()


def motor(clock: StreamClock, **changes) -> tuple[Motor, MockPWMPin]:
    settings = MotorSettings(enabled=True, **changes)
    sink = GpioMotorSink(settings)
    return Motor(settings, sink), Device.pin_factory.pin(settings.pin)


def run_until(m: Motor, clock: StreamClock, start: float, stop: float, events=()) -> None:
    """Ticks every block from start to stop; each event is handled at the first tick after its
    time, like the daemon hands them over."""
    pending = sorted(events, key=event_time)
    t = start
    while t < stop:
        clock.t = t
        while pending and event_time(pending[0]) <= t:
            m.handle(pending.pop(0))
        m.tick(t)
        t += BLOCK_S


def event_time(event) -> float:
    return event.emitted_s if isinstance(event, NoteOn) else event.stream_s


def changes(pin: MockPWMPin) -> list[tuple[float, float]]:
    """(stream time, value) of each change after the initial state."""
    t = 0.0
    out = []
    for state in pin.states[1:]:
        t += state.timestamp
        out.append((t, state.state))
    return out


def note(t: float, velocity: int = 100, midi: int = 60) -> NoteOn:
    return NoteOn(midi, "C4", 261.6, 0.0, velocity, t - 0.02, t)


def test_onset_tap_strength_follows_velocity_and_lasts_tap_ms(clock: StreamClock) -> None:
    m, pin = motor(clock, tap_ms=40, tap_min=0.3)
    assert pin.frequency == 200
    run_until(m, clock, 0.0, 2.0, [note(0.5, 127), note(1.2, 0)])
    got = changes(pin)
    assert [v for _, v in got] == [1.0, 0.0, 0.3, 0.0]
    on1, off1, on2, off2 = (t for t, _ in got)
    assert on1 == pytest.approx(0.5, abs=BLOCK_S)
    assert off1 - on1 == pytest.approx(0.040, abs=BLOCK_S)
    assert on2 == pytest.approx(1.2, abs=BLOCK_S)
    assert off2 - on2 == pytest.approx(0.040, abs=BLOCK_S)


def test_tap_starts_inside_handle_not_at_the_next_tick(clock: StreamClock) -> None:
    m, pin = motor(clock)
    clock.t = 0.3
    m.handle(note(0.3, 64))
    assert pin.state == pytest.approx(0.3 + 0.7 * 64 / 127, abs=1e-4)


def test_no_tap_when_taps_are_off(clock: StreamClock) -> None:
    m, pin = motor(clock, tap=False)
    run_until(m, clock, 0.0, 1.0, [note(0.5)])
    assert changes(pin) == []


def test_fixed_metronome_accents_the_first_beat_of_the_bar(clock: StreamClock) -> None:
    m, pin = motor(clock, metronome="fixed", bpm=120.0, beats_per_bar=4, beat_ms=30, tap=False)
    run_until(m, clock, 0.0, 2.45)
    got = changes(pin)
    ons = [(t, v) for t, v in got if v > 0]
    offs = [t for t, v in got if v == 0]
    assert [v for _, v in ons] == [1.0, 0.6, 0.6, 0.6, 1.0]
    for i, (t, _) in enumerate(ons):
        assert t == pytest.approx(0.5 * i, abs=BLOCK_S)
        assert offs[i] - t == pytest.approx(0.030, abs=BLOCK_S)


def test_metronome_follows_the_tempo_played(clock: StreamClock) -> None:
    m, pin = motor(clock, metronome="follow", bpm=60.0, tap=False)
    notes = [note(1.0 + 0.4 * i) for i in range(12)]  # 150 BPM
    run_until(m, clock, 0.0, 8.0, notes)
    beats = [t for t, v in changes(pin) if v > 0]
    late = [b for b in beats if b > 4.0]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert gaps and all(g == pytest.approx(0.4, abs=BLOCK_S) for g in gaps)


def test_tempo_follower_folds_octaves() -> None:
    follower = TempoFollower(90.0)
    for i in range(6):
        follower.onset(1.5 * i)  # 40 BPM minims
    assert follower.bpm == pytest.approx(40.0)
    follower = TempoFollower(90.0)
    for i in range(8):
        follower.onset(0.125 * i)  # 480 BPM semiquavers -> 120 BPM
    assert follower.bpm == pytest.approx(120.0)


def pattern_of(got: list[tuple[float, float]]) -> list[int]:
    """The on/off durations in ms (rounded to 10 ms) of a run of changes."""
    return [round((b[0] - a[0]) * 100) * 10 for a, b in itertools.pairwise(got)]


def test_each_alert_class_has_its_own_pattern(clock: StreamClock) -> None:
    m, pin = motor(clock, alert_repeats=1)
    run_until(m, clock, 0.0, 2.0, [Alert("doorbell", 0.9, 0.5)])
    doorbell = changes(pin)
    assert [v for _, v in doorbell] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert doorbell[0][0] == pytest.approx(0.5, abs=BLOCK_S)
    assert pattern_of(doorbell) == [150, 100, 150, 100, 600]

    m2, pin2 = motor(clock, alert_repeats=1, pin=13)
    run_until(m2, clock, 0.0, 4.0, [Alert("smoke_alarm", 0.9, 0.5)])
    assert pattern_of(changes(pin2)) == [700, 150, 700, 150, 700]

    m3, pin3 = motor(clock, alert_repeats=1, pin=16)
    run_until(m3, clock, 0.0, 4.0, [Alert("kettle", 0.9, 0.5)])
    assert pattern_of(changes(pin3)) == [500, 250, 500]  # "default"


def test_alert_repeats_then_stops_and_can_be_cancelled(clock: StreamClock) -> None:
    m, pin = motor(clock, alert_repeats=3, alert_gap_ms=1000)
    run_until(m, clock, 0.0, 10.0, [Alert("knock", 0.9, 0.5)])
    got = changes(pin)
    assert sum(1 for _, v in got if v == 1.0) == 9  # 3 pulses, 3 times
    assert got[-1][1] == 0.0
    starts = [t for t, v in got if v == 1.0][::3]
    assert starts[1] - starts[0] == pytest.approx(0.08 + 0.12 + 0.08 + 0.12 + 0.08 + 1.0, abs=0.02)

    m2, pin2 = motor(clock, alert_repeats=3, pin=13)
    events = [Alert("knock", 0.9, 0.5), Alert("knock", 0.9, 0.6, active=False)]
    run_until(m2, clock, 0.0, 5.0, events)
    assert [v for _, v in changes(pin2)] == [1.0, 0.0]  # the first pulse, then quiet


def test_an_alert_owns_the_motor_while_it_plays(clock: StreamClock) -> None:
    m, pin = motor(clock, alert_repeats=1)
    # notes during a pulse and during the pattern's gap (1.0-1.25 s) do not tap
    events = [Alert("default", 0.9, 0.5), note(0.6, 127), note(1.1, 127)]
    run_until(m, clock, 0.0, 3.0, events)
    assert pattern_of(changes(pin)) == [500, 250, 500]


def test_close_turns_the_motor_off(clock: StreamClock) -> None:
    m, pin = motor(clock, tap_ms=400)
    clock.t = 0.1
    m.handle(note(0.1))
    m.close()
    assert pin.state == 0
    with pytest.raises(Exception):  # noqa: B017 - gpiozero's closed-device error
        m.sink.device.value = 1.0


def test_pin_in_use_names_the_fix(clock: StreamClock) -> None:
    held = PWMOutputDevice(12)  # noqa: F841 - kept open: it holds the pin
    with pytest.raises(OutputError, match=r"GPIO12 is already in use: pick another \[motor\]"):
        open_pwm(12, 200)


def test_no_gpio_on_this_machine_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    if Path("/proc/device-tree/model").exists():
        pytest.skip("this machine has GPIO")
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(OutputError, match=r"no GPIO pins here for GPIO12.*notesight\[pi\]"):
        open_pwm(12, 200)


def test_simulated_motor_writes_each_change(tmp_path: Path) -> None:
    path = tmp_path / "motor.jsonl"
    settings = MotorSettings(tap_ms=40)
    m = Motor(settings, JsonlMotorSink(path))
    m.handle(note(0.5, 127))
    t = 0.5
    while t < 0.7:
        m.tick(t)
        t += BLOCK_S
    m.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"t": 0.5, "value": 1.0}
    assert lines[1]["value"] == 0.0
    assert lines[1]["t"] == pytest.approx(0.54, abs=BLOCK_S)
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[motor]\nalert_patterns = { doorbell = [] }",
            "[motor].alert_patterns: must be a table of alert names and patterns, like "
            "{ doorbell = [200, 150, 200] }: each pattern a list of 1 to 15 milliseconds "
            "(10 to 5000), on, off, on, ...; fix the pattern for doorbell (got a table)",
        ),
        (
            "[motor]\nalert_patterns = { doorbell = [5] }",
            "[motor].alert_patterns: must be a table of alert names and patterns, like "
            "{ doorbell = [200, 150, 200] }: each pattern a list of 1 to 15 milliseconds "
            "(10 to 5000), on, off, on, ...; fix the pattern for doorbell (got a table)",
        ),
        (
            '[motor]\nmetronome = "on"',
            '[motor].metronome: must be one of "off", "fixed", "follow" (got "on")',
        ),
        ("[motor]\nbpm = 10", "[motor].bpm: must be a number from 20 to 300 (got 10)"),
        ("[motor]\npin = 40", "[motor].pin: must be a whole number from 0 to 27 (got 40)"),
        ("[motor]\ntap_min = 2.0", "[motor].tap_min: must be a number from 0 to 1 (got 2.0)"),
    ],
)
def test_motor_config_rules(toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(toml, "c.toml")
    assert str(info.value) == f"c.toml: {expected}"
