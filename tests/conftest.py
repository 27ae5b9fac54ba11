"""Shared fixtures: the real recordings in ../shared/data and FluidSynth piano renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from notesight.device.synth import SynthError, find_soundfont, render_notes

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def piano():
    """render(notes, soundfont="FluidR3_GM") -> mono float32 at 44.1 kHz, cached per session."""
    cache: dict = {}

    def render(notes, soundfont: str = "FluidR3_GM"):
        key = (tuple(notes), soundfont)
        if key not in cache:
            try:
                path = find_soundfont(soundfont)
            except SynthError as exc:
                pytest.skip(str(exc))
            cache[key] = render_notes(list(notes), path, 44100)
        return cache[key]

    return render
