"""`notesight classify FILE` and `notesight models train-alerts DIR`.

`classify` runs exactly the daemon's alert pipeline (the model, 1 s windows every
[alerts].hop_s, thresholds, n of m, peak, cooldown and timeout) over a file, as fast as it can,
and prints one line per confirmed alert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from notesight.dsp.events import Alert
from notesight.dsp.features import SAMPLE_RATE

from .classifier import AlertModel, AlertStream, model_path, stream_settings
from .config import Settings
from .errors import NotesightError

CHUNK = SAMPLE_RATE // 10  # fed in 0.1 s pieces, like a stream; the result does not depend on it


def classify_audio(audio: np.ndarray, settings: Settings) -> Iterator[Alert]:
    """The confirmed alerts (and their ends) in 16 kHz mono audio, in stream order."""
    stream = AlertStream(
        AlertModel(model_path(settings.alerts.model)), stream_settings(settings.alerts)
    )
    for start in range(0, len(audio), CHUNK):
        yield from stream.feed(audio[start : start + CHUNK])
    yield from stream.flush()


def alert_line(alert: Alert) -> dict:
    return {
        "t": round(alert.stream_s, 2),
        "class": alert.label,
        "confidence": round(alert.confidence, 2),
    }


def classify_file(path: Path, settings: Settings, out: IO[str], *, jsonl: bool) -> int:
    """Print the alerts in an audio file; returns how many were raised."""
    from .audio import read_audio_file

    audio = read_audio_file(path, SAMPLE_RATE)
    raised = 0
    for alert in classify_audio(audio, settings):
        if not alert.active:
            continue
        raised += 1
        if jsonl:
            out.write(json.dumps(alert_line(alert)) + "\n")
        else:
            out.write(f"{alert.stream_s:8.2f}s  {alert.label:<14} {alert.confidence:.2f}\n")
    if not jsonl:
        out.write(f"{raised} alerts in {len(audio) / SAMPLE_RATE:.1f} s\n")
    return raised


def train_alerts(folder: Path, out: Path, *, tiny: bool = False) -> dict:
    """Retrain the classifier with a caretaker's own recordings (one sub-folder per class)
    added to the project's training material; writes a new model file `out`."""
    from notesight.models import train_alerts as recipe

    if not folder.is_dir():
        raise NotesightError(f"recordings folder {folder} does not exist: check the path")
    if out.exists() and out.resolve() == model_path("").resolve():
        raise NotesightError(
            f"{out} is the shipped model: write the new model elsewhere and set [alerts].model"
        )
    try:
        recipe.require_tensorflow()
        chosen = recipe.Recipe.tiny() if tiny else recipe.Recipe()
        return recipe.train(chosen, out, extra=folder)
    except recipe.TrainingUnavailable as exc:
        raise NotesightError(str(exc)) from None
    except ValueError as exc:  # an unknown class folder: its message names the folder
        raise NotesightError(str(exc)) from None
    except RuntimeError as exc:  # soundfile: a file in the folder is not audio
        raise NotesightError(f"could not read a recording in {folder}: {exc}") from None
    except OSError as exc:
        from .errors import explain_os_error

        raise NotesightError(explain_os_error(exc, out, "model file")) from None
