"""Shared fixtures: the real recordings in ../shared/data, soundfonts, cached FluidSynth renders."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import timidity

from notesight.device.synth import Note, SynthError, find_soundfont, render_notes_cached

# The recordings live next to the checkout, never in it (see ../shared/data/README.md).
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not available: {SHARED_DATA} is absent")
    return SHARED_DATA


def _soundfont_or_skip(name: str) -> Path:
    try:
        return find_soundfont(name)
    except SynthError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def soundfont_fluidr3() -> Path:
    return _soundfont_or_skip("FluidR3_GM")


@pytest.fixture(scope="session")
def soundfont_timgm() -> Path:
    return _soundfont_or_skip("TimGM6mb")


Render = Callable[..., np.ndarray]


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """render(notes, soundfont="FluidR3_GM", sample_rate=44100, program=0) -> mono float32:
    `render_notes` with a per-session cache, so tests asking for the same audio share one
    FluidSynth run. `soundfont` is a Path or a soundfont name (skips when not installed)."""
    cache = tmp_path_factory.mktemp("renders")

    def _render(
        notes: Iterable[Note],
        soundfont: Path | str = "FluidR3_GM",
        sample_rate: int = 44100,
        program: int = 0,
    ) -> np.ndarray:
        if shutil.which("fluidsynth") is None:
            pytest.skip("fluidsynth not found: install it with `sudo apt-get install fluidsynth`")
        path = _soundfont_or_skip(soundfont) if isinstance(soundfont, str) else soundfont
        return render_notes_cached(notes, path, cache, sample_rate, program)

    return _render


@pytest.fixture(scope="session")
def freepats() -> Render:
    """freepats(notes) at 44.1 kHz: freepats' grand through TiMidity++ (tests/timidity.py),
    a development piano; skips when either is not installed."""

    def _render(notes: Iterable[Note]) -> np.ndarray:
        if (why := timidity.missing()) is not None:
            pytest.skip(why)
        return timidity.render_freepats(notes)

    return _render


@pytest.fixture(scope="session")
def piano(render: Render) -> Render:
    """piano(notes, soundfont="FluidR3_GM") at 44.1 kHz: the name tests/test_piano.py uses."""
    return render
