"""Opening a .tflite model with LiteRT, for the alert classifier and the note model.

LiteRT is `ai_edge_litert`; the older `tflite_runtime` package is accepted too (some Pi images
ship it). Every failure is a ModelError that names the file and the config key that chose it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ModelError

LITERT_HINT = "install LiteRT with `.venv/bin/pip install ai-edge-litert` (or run ./install.sh)"


def interpreter_class(what: str):
    """LiteRT's Interpreter class; `what` names the model in the error when neither package
    is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(f"the {what} needs LiteRT: {LITERT_HINT}") from None
    return Interpreter


def open_interpreter(
    path: Path,
    what: str,
    setting: str,
    num_threads: int = 1,
    prepare: Callable[[Any], None] | None = None,
):
    """An allocated interpreter for the model file at `path`. `prepare(interpreter)` runs
    before the tensors are allocated: it can check the model's shapes (raising ModelError) and
    resize a free input (a model with a free time axis cannot be allocated at its placeholder
    size). `what` ("alert model") and `setting` ("[alerts].model") make the error messages."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{what} {path} does not exist: set {setting} to a .tflite file, "
            'or "" for the shipped model'
        )
    interpreter = interpreter_class(what)
    try:
        opened = interpreter(model_path=str(path), num_threads=num_threads)
        if prepare is not None:
            prepare(opened)
        with _native_stderr_silenced():
            opened.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{what} {path} is not a usable .tflite model: {exc}") from None
    return opened


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the duration. LiteRT's C++ logger writes "INFO:
    Created TensorFlow Lite XNNPACK delegate for CPU." there when an interpreter's tensors are
    first allocated, and its Python API has no setting for that logger; `notesight transcribe`
    and `classify` keep stderr for warnings and errors. Failures still reach the caller as
    exceptions, which carry LiteRT's message."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
