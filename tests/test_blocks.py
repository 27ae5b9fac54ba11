"""`transcribe` feeds the listening core long blocks, the daemon one hop at a time: the same
events must come out, `emitted_s` included, bit for bit. Piano audio is the development piano
(TimGM6mb), rendered at test time, dry and in the room, at the two microphone rates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from notesight.device.synth import Note
from notesight.device.transcribe import (
    TRANSCRIBE_HOPS,
    blocks_of,
    daemon_block_size,
    notes_from_blocks,
    transcribe_array,
    transcribe_block_size,
)
from notesight.dsp.augment import room_version
from notesight.dsp.level import rms_dbfs, rms_dbfs_rows
from notesight.dsp.listener import ListenerParams, NoteListener
from notesight.dsp.onset import OnsetDetector

# Legato and repeated keys over the whole keyboard, soft and loud: onsets while notes ring.
LINE = tuple(
    Note(0.3 + 0.21 * i, 0.25, midi, velocity)
    for i, (midi, velocity) in enumerate(
        [
            *((21, 100), (33, 40), (45, 90), (60, 50), (60, 110), (64, 70), (67, 45), (72, 120)),
            *((76, 60), (84, 90), (96, 40), (108, 110), (59, 80), (47, 35), (38, 100), (62, 64)),
        ]
    )
)


def _events(audio: np.ndarray, rate: int, block: int) -> list[dict]:
    return [n.as_dict() for n in notes_from_blocks(blocks_of(audio, block), rate)]


@pytest.fixture(scope="module", params=[44100, 48000])
def line_audio(request, render) -> tuple[np.ndarray, int]:
    rate = request.param
    return render(LINE, "TimGM6mb", sample_rate=rate), rate


@pytest.mark.parametrize("room", [False, True], ids=["dry", "room"])
def test_long_and_odd_blocks_give_the_daemons_events(line_audio, room) -> None:
    audio, rate = line_audio
    if room:
        audio = room_version(audio, rate, np.random.default_rng(3))
    daemon = _events(audio, rate, daemon_block_size(rate))
    assert len(daemon) >= 12  # the line is heard, so the comparison means something
    for block in (daemon_block_size(rate) * TRANSCRIBE_HOPS, 1000, 4097):
        assert _events(audio, rate, block) == daemon, block


def test_transcribe_uses_long_blocks_for_the_core_and_gives_the_daemons_notes(line_audio):
    audio, rate = line_audio
    assert transcribe_block_size(rate, ListenerParams()) == TRANSCRIBE_HOPS * daemon_block_size(
        rate
    )
    assert transcribe_array(audio, rate) == _events(audio, rate, daemon_block_size(rate))


def test_onset_rises_of_a_block_are_those_of_its_hops_one_by_one() -> None:
    rng = np.random.default_rng(1)
    hop, frame = 128, 512
    # Noise with a strike every 40 hops, so rises and falls both occur.
    audio = (0.01 * rng.standard_normal(hop * 200)).astype(np.float32)
    for start in range(5 * hop, len(audio), 40 * hop):
        audio[start : start + 2000] += np.sin(np.arange(2000) * 0.3).astype(np.float32) * 0.5
    one, many = OnsetDetector(22050, hop, frame), OnsetDetector(22050, hop, frame)
    single = [one.flux(audio[i : i + hop]) for i in range(0, len(audio), hop)]
    batched: list[tuple[float, float]] = []
    # Blocks of several lengths, with single hops between them through both entries (`flux`,
    # as the daemon calls it, and `fluxes` of one row), so the state passes both ways.
    starts = [0, 1, 8, 9, 73, 74, 75, 150, 200]
    for i, (begin, end) in enumerate(itertools.pairwise(starts)):
        block = audio[begin * hop : end * hop].reshape(-1, hop)
        if i in (2, 4):  # one-hop blocks between long ones; 0 and 5 go through `fluxes`
            batched.append(many.flux(block[0]))
        else:
            rises, rises2 = many.fluxes(block)
            batched += zip(rises, rises2, strict=True)
    assert batched == single
    assert max(rise for rise, _ in single) > 0.1


def test_levels_of_rows_are_those_of_each_row() -> None:
    rows = np.random.default_rng(2).standard_normal((50, 128)).astype(np.float32)
    rows[7] = 0.0
    rows[9] *= 1e-7
    assert rms_dbfs_rows(rows) == [rms_dbfs(row) for row in rows]


def test_emitted_s_of_a_long_block_is_when_the_daemon_would_have_decided() -> None:
    rate = 44100
    t = np.arange(int(1.0 * rate)) / rate
    tone = np.where(t >= 0.3, 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-(t - 0.3) * 3), 0.0)
    listener = NoteListener(rate)
    events = listener.feed(tone.astype(np.float32)) + listener.flush()
    note_on = events[0]
    assert note_on.midi == 69
    # Decided within a few hops of the strike, not at the end of the one-second block.
    assert 0.3 < note_on.emitted_s < 0.35


def test_the_note_model_gets_the_daemons_block(tmp_path) -> None:
    """PolyListener emits at the end of each block it is fed: a long block would delay it."""
    from notesight.device.note_model import PolyPipeline
    from notesight.dsp.polynotes import PolyParams

    poly = PolyPipeline(tmp_path / "notes.tflite", PolyParams())
    assert transcribe_block_size(48000, poly) == daemon_block_size(48000)
