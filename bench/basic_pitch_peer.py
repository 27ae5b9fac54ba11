"""Spotify's Basic Pitch (Bittner et al., ICASSP 2022) as a bench-only polyphonic peer, run
from its ONNX model with onnxruntime through basic_pitch's own `predict`.

Bench only, never a notesight dependency. Install:

    .venv/bin/pip install -e '.[bench]'               # onnxruntime, librosa, pretty_midi, resampy
    .venv/bin/pip install --no-deps basic-pitch==0.4.0

`--no-deps` (which a pyproject extra can't express, hence the second command) because
basic-pitch 0.4.0 requires tensorflow<2.15.1 on Linux with Python >= 3.11 for its TF
SavedModel, and would downgrade or clash with the `train` extra's tensorflow-cpu. The ONNX
model needs none of it: the wheel ships basic_pitch/saved_models/icassp_2022/nmp.onnx, and on
the ONNX path basic_pitch.inference imports only numpy, librosa, pretty_midi, resampy, scipy
and mir_eval. When TensorFlow happens to be installed, basic_pitch imports it (seconds) and
`Model` first tries it and TFLite on the .onnx file; both refuse it and it lands on ONNX,
which `load_model` checks.

Settings are `predict`'s defaults (what `basic-pitch OUT FILE` does): 2 s windows at
22050 Hz overlapping by 30 frames, onset threshold 0.5, frame threshold 0.3, minimum note
length 127.70 ms, melodia trick on, no frequency limits.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

NoteTuple = tuple[float, float, int]

# What basic_pitch.inference imports on the ONNX path (the package metadata's other
# requirements, tensorflow and scikit-learn, are unused there).
REQUIRED_MODULES = ("basic_pitch", "onnxruntime", "librosa", "pretty_midi", "resampy", "mir_eval")
MODEL_RELATIVE_PATH = Path("saved_models") / "icassp_2022" / "nmp.onnx"
INSTALL_HINT = (
    "install with: .venv/bin/pip install -e '.[bench]' && "
    ".venv/bin/pip install --no-deps basic-pitch==0.4.0"
)


def model_path() -> Path | None:
    """Where the installed basic-pitch wheel keeps nmp.onnx, found without importing
    basic_pitch (whose import pulls in TensorFlow when that is installed)."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / MODEL_RELATIVE_PATH


def available() -> str | None:
    """None when Basic Pitch can run here, else why not (the bench prints "skipped: <why>")."""
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    path = model_path()
    if path is None or not path.is_file():
        return f"the basic-pitch package has no {MODEL_RELATIVE_PATH} ({INSTALL_HINT})"
    return None


@functools.cache  # one InferenceSession per process: loading is not part of transcription time
def load_model() -> Any:
    """basic_pitch's own Model wrapper around an onnxruntime session on nmp.onnx."""
    reason = available()
    if reason is not None:
        raise RuntimeError(f"Basic Pitch is unavailable: {reason}")
    # basic_pitch warns at import about every backend it lacks (CoreML, tflite-runtime) and
    # TensorFlow, when present, warns while refusing the .onnx file: noise for the bench table.
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from basic_pitch.inference import Model

            model = Model(model_path())
    finally:
        logging.disable(logging.NOTSET)
    if model.model_type != Model.MODEL_TYPES.ONNX:
        raise RuntimeError(f"basic_pitch loaded nmp.onnx as {model.model_type}, not ONNX")
    return model


def warm_up() -> None:
    """Load the model and transcribe one second of quiet noise, so that one-time costs
    (onnxruntime's first run, numba compiling librosa/resampy code) fall outside the timed
    calls; the bench measures throughput, as it does for notesight."""
    noise = np.random.default_rng(0).normal(0.0, 1e-3, 22050).astype(np.float32)
    transcribe(noise, 22050)


def transcribe(audio: np.ndarray, sample_rate: int) -> list[NoteTuple]:
    """(onset_s, offset_s, midi) of every note Basic Pitch finds in mono float audio, sorted.

    basic_pitch's `predict` reads a file (librosa.load, resampling to 22050 Hz), so the audio
    goes through a temporary float WAV; that write is part of the time a caller measures
    around this call, as it would be for anyone running Basic Pitch on a recording."""
    model = load_model()
    from basic_pitch.inference import predict

    with tempfile.TemporaryDirectory(prefix="basic_pitch_") as folder:
        wav = Path(folder) / "input.wav"
        sf.write(wav, np.asarray(audio, dtype=np.float32), sample_rate, subtype="FLOAT")
        with contextlib.redirect_stdout(io.StringIO()):  # predict prints "Predicting MIDI..."
            _, _, note_events = predict(wav, model)
    return sorted((float(start), float(end), int(pitch)) for start, end, pitch, *_ in note_events)
