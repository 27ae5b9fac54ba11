"""The polyphonic note model at run time, and the choice of listening pipeline.

`NoteModel` runs `models/notes.tflite` through LiteRT (or the older tflite_runtime): it takes
a (1, T, N_BINS, 2) window of `dsp.logspec` frames and gives (1, T - CONTEXT + 1, 1, 176)
onset and sounding probabilities; the daemon feeds T = CONTEXT frames, one inference per hop.
`make_listener` builds what [listen].pipeline names: "poly" (this model run every hop) or
"mono" (the monophonic listening core, the default, which also measures tuning finely and asks
this model about a strike only when its own rules name no key: `polynotes.StrikeReading`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notesight.dsp.listener import ListenerParams, NoteListener
from notesight.dsp.logspec import N_BINS, WINDOWS
from notesight.dsp.polynotes import N_KEYS, PolyListener, PolyParams, StrikeReading

from .errors import ModelError
from .litert import open_interpreter

SHIPPED_NOTE_MODEL = Path(__file__).resolve().parent.parent / "models" / "notes.tflite"


class NoteModel:
    """One LiteRT interpreter, called with a feature window. Not thread-safe."""

    def __init__(self, path: Path, context: int, num_threads: int = 1) -> None:
        self.path = Path(path)
        self.context = context
        self._shape = (1, context, N_BINS, len(WINDOWS))
        self._interpreter = open_interpreter(
            self.path, "note model", "[listen].model", num_threads, prepare=self._check_and_size
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def _check_and_size(self, interpreter) -> None:
        """The model must take (1 or free, free, N_BINS, 2) and give (..., 176); its input is
        sized for one daemon window before the tensors are allocated."""
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        # -1 marks a free dimension: the batch and the number of frames may be left free.
        in_shape = tuple(int(d) for d in inputs[0]["shape_signature"]) if len(inputs) == 1 else ()
        out_shape = (
            tuple(int(d) for d in outputs[0]["shape_signature"]) if len(outputs) == 1 else ()
        )
        fits = len(in_shape) == 4 and in_shape[0] in (1, -1) and in_shape[2:] == self._shape[2:]
        fits = fits and len(out_shape) == 4 and out_shape[-1] == 2 * N_KEYS
        if not fits:
            raise ModelError(
                f"note model {self.path} does not fit this notesight: it takes {in_shape} and "
                f"gives {out_shape}, expected (1, frames, {N_BINS}, {len(WINDOWS)}) and "
                f"(1, frames, 1, {2 * N_KEYS}); retrain it with "
                "`python -m notesight.models.train_notes`"
            )
        interpreter.resize_tensor_input(inputs[0]["index"], self._shape)

    def _resize(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            try:
                self._interpreter.resize_tensor_input(self._input, shape)
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"note model {self.path} cannot take {shape}: {exc}") from None
            self._shape = shape

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """(1, T, N_BINS, 2) float32 -> (1, T - context + 1, 1, 176) probabilities."""
        self._resize(tuple(window.shape))
        self._interpreter.set_tensor(self._input, window)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)


@dataclass(frozen=True)
class PolyPipeline:
    """[listen].pipeline = "poly": the note model file and its decoding parameters."""

    model: Path
    params: PolyParams


@dataclass(frozen=True)
class MonoPipeline:
    """[listen].pipeline = "mono": the core's parameters and the note model file it asks
    about strikes its rules cannot name (None: it never asks)."""

    params: ListenerParams
    model: Path | None = SHIPPED_NOTE_MODEL


# A bare ListenerParams is the core without the note model (tests of the rules alone).
ListeningParams = ListenerParams | MonoPipeline | PolyPipeline


def make_listener(sample_rate: int, params: ListeningParams | None) -> NoteListener | PolyListener:
    """The listener the parameters ask for (None: the monophonic core with its defaults and
    the shipped note model)."""
    if params is None:
        params = MonoPipeline(ListenerParams())
    if isinstance(params, PolyPipeline):
        model = NoteModel(params.model, params.params.context)
        return PolyListener(sample_rate, model, params.params)
    if isinstance(params, ListenerParams):
        return NoteListener(sample_rate, params)
    core = params.params
    if params.model is None:
        return NoteListener(sample_rate, core)
    reading = PolyParams(
        a4_hz=core.a4_hz, lowest_midi=core.lowest_midi, highest_midi=core.highest_midi
    )
    reader = StrikeReading(NoteModel(params.model, reading.context), reading)
    return NoteListener(sample_rate, core, reader)
