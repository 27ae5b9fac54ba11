"""Train the household-sound classifier: `python -m notesight.models.train_alerts`.

One command rebuilds `models/alerts.tflite` from the real recordings in ../shared/data, the
synthesized alerts, FluidSynth piano and espeak-ng speech (see `alert_data.py` for what is
mixed how). Needs the optional extra: `pip install -e '.[train]'` (TensorFlow, CPU build).

    python -m notesight.models.train_alerts                 # the shipped model
    python -m notesight.models.train_alerts --extra DIR     # plus a caretaker's recordings
    python -m notesight.models.train_alerts --tiny --out /tmp/x.tflite   # a smoke test

Everything is seeded; features of the mixed windows are cached (build/alerts-cache) so a
second run with the same settings goes straight to training. The shipped model, two networks
of 14 epochs each, took 41 minutes (2482 s with the windows cached; building them takes about 2
more) on the project's 2-core build machine, partly beside other jobs; `--tiny` takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from notesight.dsp.alerts import CLASSES
from notesight.dsp.features import N_FRAMES, N_MELS, log_mel_batch

from . import alert_data as data

log = logging.getLogger("notesight.train_alerts")

DEFAULT_OUT = Path(__file__).resolve().parent / "alerts.tflite"
DEFAULT_CACHE = data.REPO_ROOT / "build" / "alerts-cache"
RECIPE_VERSION = 3
DEV_PIECES = 6  # per training soundfont, for suggest_thresholds
DEV_UTTERANCES = 40  # bump when the data or features change, so cached features are redone


MEMBER_KINDS = ("plain", "spec_augment")  # how a network of Recipe.members is trained


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the training set and the model."""

    per_class: int = 1500  # training windows per class (and as many of room noise alone)
    synth_per_class: int = 60  # synthesized sounds per synthesized class
    speech_utterances: int = 80
    piano_pieces: int = 12  # random pieces per training soundfont
    varied_piano_clips: int = 8  # note-model generator clips (all 88 keys) per soundfont
    epochs: int = 14
    batch: int = 64
    seed: int = 1
    real_data: bool = True  # use ../shared/data when present
    calibrate: bool = True  # suggest per-class thresholds on development audio
    # share of each sound class's windows that hold only the start of the sound, at the end
    # of the window (alert_data.onset_crop): what the stream hears first
    onset_share: float = 0.0
    onset_skip: tuple[str, ...] = ()  # classes that get no onset windows
    # The networks the model file averages, each trained on the same windows from `seed`:
    # "plain", or "spec_augment" (every epoch sees its windows with a few mel bands and frames
    # masked, `spec_augment()`). The two err on different music: their mean raised fewer false
    # alerts in all on development audio than either alone (models/alerts.md, "The model is two
    # networks").
    members: tuple[str, ...] = ("plain", "spec_augment")
    width: float = 1.0  # the conv blocks' filters, as a multiple of 16/32/48/64
    piano_eq: bool = False  # every piano through alert_data.body_eq: more piano timbres

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if not 0.0 <= self.onset_share <= 1.0:
            raise ValueError(f"onset share must be in [0, 1], got {self.onset_share}")
        if not self.members or set(self.members) - set(MEMBER_KINDS):
            raise ValueError(
                f"members must be one or more of {', '.join(MEMBER_KINDS)}, got {self.members}"
            )
        unknown = sorted(set(self.onset_skip) - set(CLASSES))
        if unknown:
            raise ValueError(f"unknown classes {', '.join(unknown)}; use {', '.join(CLASSES)}")

    @classmethod
    def tiny(cls) -> Recipe:
        """Minutes become seconds: a few windows, one epoch. For the test suite."""
        return cls(
            per_class=12,
            synth_per_class=2,
            speech_utterances=2,
            piano_pieces=1,
            varied_piano_clips=1,
            epochs=1,
            batch=32,
            real_data=False,
            calibrate=False,
        )


class TrainingUnavailable(RuntimeError):
    """TensorFlow (the `train` extra) is not installed."""


def require_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise TrainingUnavailable(
            "training needs TensorFlow: install the extra with "
            "`.venv/bin/pip install -e '.[train]'`"
        ) from exc
    return tf


# -- data -----------------------------------------------------------------------------------
def gather_sources(recipe: Recipe, sounds_dir: Path, extra: Path | None) -> list[data.Source]:
    sources: list[data.Source] = []
    if recipe.real_data and sounds_dir.is_dir():
        sources += data.real_sources(sounds_dir)
    elif recipe.real_data:
        log.warning("%s not found: training on synthesized sounds only", sounds_dir)
    sources += data.synth_sources(recipe.synth_per_class, "train", recipe.seed)
    sources += data.speech_sources(recipe.speech_utterances, "train", recipe.seed)
    if extra is not None:
        sources += data.folder_sources(extra)
    return sources


def gather_pianos(recipe: Recipe, cache: Path) -> list[np.ndarray]:
    pianos = data.rendered_piano(
        data.TRAIN_PIANOS, recipe.piano_pieces, 100 * recipe.seed, cache, programs=(0, 1, 3)
    )
    pianos += data.varied_piano(data.TRAIN_PIANOS, recipe.varied_piano_clips, recipe.seed, cache)
    piano_dir = data.SHARED_DATA / "piano"
    if recipe.real_data and piano_dir.is_dir():
        pianos += data.real_piano(piano_dir, "train")
    return pianos


# What only the fitting uses: trainings that differ in these share one cached window set.
_FIT_ONLY = ("epochs", "batch", "calibrate", "members", "width")


def _fingerprint(
    recipe: Recipe, sources: Sequence[data.Source], pianos: Sequence[np.ndarray]
) -> str:
    """Names the cached training windows: everything that shapes them, nothing that only the
    fitting uses."""
    shaping = {k: v for k, v in asdict(recipe).items() if k not in _FIT_ONLY}
    digest = hashlib.sha1(json.dumps([RECIPE_VERSION, shaping]).encode())
    for source in sources:
        digest.update(f"{source.label}|{source.name}|{source.split}|{len(source.audio)}".encode())
    for piano in pianos:
        digest.update(str(len(piano)).encode())
    return digest.hexdigest()[:16]


def training_set(
    recipe: Recipe, sources: Sequence[data.Source], pianos: Sequence[np.ndarray], cache: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the training windows, from the cache when it has them."""
    path = cache / f"train-{_fingerprint(recipe, sources, pianos)}.npz"
    if path.is_file():
        stored = np.load(path)
        return stored["x"], stored["y"]
    train = [s for s in sources if s.split == "train"]
    windows, labels = data.make_windows(
        train,
        pianos,
        recipe.per_class,
        recipe.seed,
        recipe.onset_share,
        recipe.onset_skip,
        recipe.piano_eq,
    )
    features = log_mel_batch(windows)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.npz")
    np.savez(partial, x=features, y=labels)
    partial.replace(path)
    return features, labels


# -- model ----------------------------------------------------------------------------------
def build_model(tf, width: float = 1.0, name: str = "member0"):
    """A small CNN on the (frames, mels) log-mel image: four conv blocks, global average and
    max pooling (an alert may fill the window or be one knock in it), one sigmoid per class
    (an alert and piano can both be there). `width` scales every block's filters."""
    keras = tf.keras
    inputs = keras.Input(shape=(N_FRAMES, N_MELS), name="log_mel")
    x = keras.layers.Reshape((N_FRAMES, N_MELS, 1))(inputs)
    blocks = (16, 32, 48, 64)
    for block, filters in enumerate(blocks):
        x = keras.layers.Conv2D(round(filters * width), 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        if block < len(blocks) - 1:
            x = keras.layers.MaxPooling2D(2)(x)
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)]
    )
    pooled = keras.layers.Dropout(0.3)(pooled)
    outputs = keras.layers.Dense(len(CLASSES), activation="sigmoid", name="classes")(pooled)
    return keras.Model(inputs, outputs, name=name)


def spec_augment(
    features: np.ndarray,
    rng: np.random.Generator,
    max_bands: int = 8,
    max_frames: int = 4,
) -> np.ndarray:
    """A copy of (n, frames, mels) features with one random run of up to `max_bands` mel
    bands and one of up to `max_frames` frames set to each window's mean (SpecAugment, Park et
    al. 2019): the model cannot lean on one partial or one instant. The time mask is short
    (80 ms) so that a knock or a bark is rarely hidden whole while its label stays."""
    out = features.copy()
    n, frames, mels = out.shape
    means = out.mean(axis=(1, 2))
    for axis, size, widest in ((2, mels, max_bands), (1, frames, max_frames)):
        widths = rng.integers(0, widest + 1, n)
        starts = rng.integers(0, size - widths + 1)
        index = np.arange(size)
        masked = (index[None, :] >= starts[:, None]) & (index[None, :] < (starts + widths)[:, None])
        if axis == 2:
            out = np.where(masked[:, None, :], means[:, None, None], out)
        else:
            out = np.where(masked[:, :, None], means[:, None, None], out)
    return out.astype(np.float32)


def fit(tf, recipe: Recipe, x: np.ndarray, y: np.ndarray):
    """The recipe's networks trained on (x, y), averaged into one model when there are more."""
    networks = [
        fit_member(tf, recipe, x, y, kind, name=f"member{k}")
        for k, kind in enumerate(recipe.members)
    ]
    return networks[0] if len(networks) == 1 else average(tf, networks)


def average(tf, networks: Sequence):
    """One model whose output is the mean of the networks' outputs (one .tflite to ship and
    load; the runtime needs no idea of members)."""
    keras = tf.keras
    inputs = keras.Input(shape=(N_FRAMES, N_MELS), name="log_mel")
    outputs = keras.layers.Average(name="classes")([network(inputs) for network in networks])
    return keras.Model(inputs, outputs, name="alerts")


def fit_member(tf, recipe: Recipe, x: np.ndarray, y: np.ndarray, kind: str, name: str):
    """One network, seeded by the recipe alone, so the first member of any recipe with the
    same seed and windows is the same network."""
    tf.keras.utils.set_random_seed(recipe.seed)
    model = build_model(tf, recipe.width, name)
    steps = max(1, int(np.ceil(len(x) / recipe.batch))) * recipe.epochs
    schedule = tf.keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps, alpha=0.05)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[tf.keras.metrics.BinaryAccuracy(name="acc")],
    )
    verbose = 2 if log.isEnabledFor(logging.INFO) else 0
    if kind == "plain":
        model.fit(
            x, y, batch_size=recipe.batch, epochs=recipe.epochs, shuffle=True, verbose=verbose
        )
        return model
    rng = np.random.default_rng(recipe.seed)
    for epoch in range(recipe.epochs):  # new masks every epoch; the schedule runs on
        model.fit(
            spec_augment(x, rng),
            y,
            batch_size=recipe.batch,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=True,
            verbose=verbose,
        )
    return model


def to_tflite(tf, model) -> bytes:
    """Float model with dynamic-range int8 weights: ~4x smaller, same input and output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def suggest_thresholds(model_file: Path, recipe: Recipe, cache: Path) -> dict[str, float]:
    """Per-alert thresholds from development audio that is neither training nor benchmark:
    new pieces on the training pianos and new utterances in the training voices. Each alert's
    threshold is the 99.5th percentile of its score on that audio (piano and speech are never
    alerts), rounded up to 0.05, kept within 0.5..0.95."""
    from notesight.device.classifier import AlertModel
    from notesight.dsp.alerts import ALERT_CLASSES
    from notesight.dsp.features import WINDOW, log_mel, window_starts

    model = AlertModel(model_file)
    pianos = data.rendered_piano(
        data.TRAIN_PIANOS, DEV_PIECES, 500_000 + recipe.seed, cache, programs=(0, 1, 3)
    )
    speech = [s.audio for s in data.speech_sources(DEV_UTTERANCES, "train", 77 + recipe.seed)]
    rng = np.random.default_rng(recipe.seed)
    scores = []
    for audio in [*pianos, *speech]:
        audio = data.set_level(audio, float(rng.uniform(-35, -12)))
        for start in window_starts(len(audio)):
            window = audio[max(start, 0) : start + WINDOW]
            scores.append(model.predict(log_mel(window)))
    matrix = np.array(scores)
    suggested = {}
    for label in ALERT_CLASSES:
        value = float(np.percentile(matrix[:, CLASSES.index(label)], 99.5))
        suggested[label] = float(np.clip(np.ceil(value * 20) / 20, 0.5, 0.95))
    return suggested


def train(
    recipe: Recipe,
    out: Path,
    *,
    sounds_dir: Path = data.SHARED_DATA / "sounds",
    extra: Path | None = None,
    cache: Path = DEFAULT_CACHE,
) -> dict:
    """Build the training set, train, write the .tflite to `out`; returns a summary."""
    tf = require_tensorflow()
    started = time.monotonic()
    sources = gather_sources(recipe, sounds_dir, extra)
    pianos = gather_pianos(recipe, cache)
    x, y = training_set(recipe, sources, pianos, cache)
    log.info("%d training windows (%.0f s to prepare)", len(x), time.monotonic() - started)
    model = fit(tf, recipe, x, y)
    blob = to_tflite(tf, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part")
    partial.write_bytes(blob)
    partial.replace(out)
    thresholds = suggest_thresholds(out, recipe, cache) if recipe.calibrate else {}
    return {
        "thresholds": thresholds,
        "out": str(out),
        "bytes": len(blob),
        "windows": len(x),
        "parameters": int(model.count_params()),
        "sources": len([s for s in sources if s.split == "train"]),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notesight.models.train_alerts")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model file to write")
    parser.add_argument("--extra", type=Path, help="folder of own recordings, one folder per class")
    parser.add_argument("--sounds", type=Path, default=data.SHARED_DATA / "sounds")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke test")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument(
        "--onset-share", type=float, help="override the recipe's share of onset windows"
    )
    parser.add_argument(
        "--onset-skip", default=None, help="comma-separated classes that get no onset windows"
    )
    parser.add_argument(
        "--members",
        help=f"comma-separated networks to train and average ({', '.join(MEMBER_KINDS)})",
    )
    parser.add_argument("--width", type=float, help="scale the conv blocks' filters")
    parser.add_argument(
        "--piano-eq", action="store_true", help="random body resonances on every piano window"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    recipe = Recipe.tiny() if args.tiny else Recipe()
    overrides: dict = {"epochs": args.epochs} if args.epochs else {}
    if args.onset_share is not None:
        overrides["onset_share"] = args.onset_share
    if args.members is not None:
        overrides["members"] = tuple(kind for kind in args.members.split(",") if kind)
    if args.width is not None:
        overrides["width"] = args.width
    if args.piano_eq:
        overrides["piano_eq"] = True
    if args.onset_skip is not None:
        overrides["onset_skip"] = tuple(name for name in args.onset_skip.split(",") if name)
    try:
        recipe = Recipe(**{**asdict(recipe), **overrides})
        summary = train(
            recipe, args.out, sounds_dir=args.sounds, extra=args.extra, cache=args.cache
        )
    except (TrainingUnavailable, ValueError) as exc:
        print(f"train_alerts: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
