"""A short window read with its newest half as YIN's reference (`NoteListener._estimate`).

Every window after a strike starts at the strike, and YIN's reference is the window's first
half: in the first windows that is the string's first milliseconds, where freepats' grand
(tests/timidity.py, a development piano) has not settled its pitch. Its G5 and C6, struck
where the hop grid puts the strike late in a hop, read 0.4-0.8 of a key flat in their first
two windows (6 and 12 ms), both alike, and were named a key down. Read with the newest half
as the reference the 12 ms window gives the key. Latency here is audio time (`emitted_s` -
the onset), not wall-clock time."""

from __future__ import annotations

import numpy as np
import pytest

from notesight.device.synth import Note
from notesight.device.transcribe import transcribe_array
from notesight.dsp.listener import ListenerParams, NoteListener

RATE = 44100
# Without the newest half, and with the 30-cent settling of the time it came in: since 25 cents
# (ListenerParams.settle_cents) those flat first windows wait as well, and name the key alone.
FORWARD_ONLY = ListenerParams(newest_half=False, settle_cents=30.0)
# Where these keys' strikes fall late in a hop (the hop is 5.8 ms from the stream's start)
LATE_IN_A_HOP_S = (0.4986, 0.4988, 0.4990)


def first_note(audio: np.ndarray, params: ListenerParams | None = None) -> dict:
    return transcribe_array(audio, RATE, params)[0]


@pytest.mark.parametrize("velocity", [40, 110])
@pytest.mark.parametrize("midi", [79, 84])
def test_freepats_keys_whose_first_milliseconds_read_flat_are_named_their_key(
    freepats, midi, velocity
):
    named, before = [], []
    for onset in LATE_IN_A_HOP_S:
        audio = freepats([Note(onset, 1.0, midi, velocity)])
        note = first_note(audio)
        assert note["emitted_s"] - onset <= 0.03, note
        named.append(note["midi"])
        before.append(first_note(audio, FORWARD_ONLY)["midi"])
    assert named == [midi] * len(LATE_IN_A_HOP_S)
    assert before == [midi - 1] * len(LATE_IN_A_HOP_S)  # what they were named before


def test_the_newest_half_reading_is_the_time_reversed_window():
    """The same YIN, its reference the newest half: a tone that jumps from 800 to 880 Hz a
    third of the way into the window is read 880 Hz that way and near 800 Hz forward."""
    listener = NoteListener(RATE)
    pitch, rate = listener._pitch, listener.rate
    size = pitch.sizes[3]
    t = np.arange(size) / rate
    jump = size // 3
    tone = np.where(np.arange(size) < jump, np.sin(2 * np.pi * 800 * t), 0.0)
    tone[jump:] = np.sin(2 * np.pi * 880 * t[jump:])
    forward = pitch.estimate(tone.astype(np.float32), 440.0)
    newest = pitch.estimate(tone.astype(np.float32), 440.0, newest_as_reference=True)
    assert abs(newest.freq_hz - 880.0) < 5.0
    assert forward.freq_hz < 860.0
