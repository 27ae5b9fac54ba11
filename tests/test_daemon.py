"""The daemon loop: events reach every output in order, levels are rate-limited, a failing
output is dropped with one log line while the others go on, and stop ends the loop."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from notesight.device.daemon import Daemon
from notesight.device.errors import OutputError
from notesight.device.outputs import DeviceStatus, event_dict
from notesight.device.synth import Note
from notesight.device.transcribe import blocks_of, daemon_block_size
from notesight.dsp.events import Level, NoteOff, NoteOn

SR = 44100


class RecordingOutput:
    """Records every call it gets, with the stream time of the last tick."""

    def __init__(self, name: str = "recorder", fail_on_note: bool = False) -> None:
        self.name = name
        self.fail_on_note = fail_on_note
        self.events: list = []
        self.ticks: list[float] = []
        self.closed = 0

    def handle(self, event) -> None:
        if self.fail_on_note and isinstance(event, NoteOn):
            raise OutputError("no /dev/spidev0.0: enable SPI with raspi-config")
        self.events.append(event)

    def tick(self, stream_s: float) -> None:
        self.ticks.append(stream_s)

    def close(self) -> None:
        self.closed += 1


@pytest.fixture(scope="module")
def two_notes(piano) -> np.ndarray:
    return piano((Note(0.2, 0.5, 60, 90), Note(0.9, 0.5, 64, 90)))


def test_every_output_gets_the_notes_ticks_and_levels(two_notes: np.ndarray) -> None:
    a, b = RecordingOutput("a"), RecordingOutput("b")
    stats = Daemon(SR, [a, b]).run(blocks_of(two_notes, daemon_block_size(SR)))
    assert a.events == b.events
    notes = [(type(e).__name__, e.midi) for e in a.events if isinstance(e, NoteOn | NoteOff)]
    assert notes == [("NoteOn", 60), ("NoteOff", 60), ("NoteOn", 64), ("NoteOff", 64)]
    assert stats.notes == 2
    assert a.closed == b.closed == 1
    assert len(a.ticks) == stats.blocks
    assert a.ticks == sorted(a.ticks)
    assert a.ticks[-1] == pytest.approx(len(two_notes) / SR)
    levels = [e for e in a.events if isinstance(e, Level)]
    gaps = np.diff([e.stream_s for e in levels])
    assert gaps.min() >= 0.05 - 1e-9
    assert gaps.max() < 0.05 + 2 * daemon_block_size(SR) / SR
    loud = max(e.dbfs for e in levels)
    assert loud > max(e.floor_dbfs for e in levels) + 20


def test_a_failing_output_is_dropped_and_the_others_go_on(
    two_notes: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = RecordingOutput("good"), RecordingOutput("leds", fail_on_note=True)
    with caplog.at_level(logging.ERROR):
        stats = Daemon(SR, [bad, good]).run(blocks_of(two_notes, daemon_block_size(SR)))
    assert stats.failed_outputs == ["leds"]
    assert bad.closed == 1
    assert sum(isinstance(e, NoteOn) for e in good.events) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["leds output stopped: no /dev/spidev0.0: enable SPI with raspi-config"]


def test_stop_ends_the_loop_and_closes_outputs(two_notes: np.ndarray) -> None:
    stop = threading.Event()
    out = RecordingOutput()
    block = daemon_block_size(SR)

    def blocks():
        for i, b in enumerate(blocks_of(two_notes, block)):
            if i == 10:
                stop.set()
            yield b

    stats = Daemon(SR, [out], stop=stop).run(blocks())
    assert stats.blocks == 10
    assert out.closed == 1


def test_event_dict_names_the_kind() -> None:
    on = NoteOn(60, "C4", 261.6, 0.0, 80, 1.0, 1.02)
    assert event_dict(on)["event"] == "note_on"
    assert event_dict(on)["midi"] == 60


def test_device_status_rejects_unknown_fields_and_snapshots() -> None:
    status = DeviceStatus()
    status.update(mqtt_queued=3)
    snap = status.snapshot()
    status.update(mqtt_queued=4)
    assert snap.mqtt_queued == 3
    with pytest.raises(AttributeError):
        status.update(nonsense=1)


def test_a_simulator_file_that_cannot_be_written_is_one_clear_output_error(tmp_path) -> None:
    from notesight.device.led_backends import SimulatorBackend
    from notesight.device.motor import JsonlMotorSink

    missing = tmp_path / "no-such-folder" / "leds.jsonl"
    for make, who in ((SimulatorBackend, "LED simulator"), (JsonlMotorSink, "motor simulator")):
        with pytest.raises(OutputError) as info:
            make(missing)
        assert str(info.value).startswith(f"{who}: ")
        assert str(missing) in str(info.value)
