"""Training recipe for models/notes.tflite, the polyphonic piano note model (issue 3).

    python -m notesight.models.train_notes --out models/notes.tflite

renders its own data (models/note_data.py: music21 scores and generated chords, runs, single
keys and melodies on three FluidSynth pianos, augmented), computes the features of
`notesight.dsp.logspec`, trains a small convolutional network with Keras and exports it to
TFLite with float16 weights. Needs the `train` extra (tensorflow-cpu, music21); the runtime
needs only LiteRT.

The network is fully convolutional in time: it reads a (T, N_BINS, 2) feature window and
gives T - CONTEXT + 1 frames of 88 onset and 88 sounding probabilities. Output frame i belongs
to input frame i + CONTEXT - 1 - LOOKAHEAD, so each decision has seen LOOKAHEAD frames (16 ms
each) after its own. The daemon feeds exactly CONTEXT frames per hop (one inference, one frame
out); training and bulk evaluation feed long windows, which give the same numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from notesight.dsp.logspec import N_BINS, WINDOWS, log_spectrogram

from . import note_data
from .note_data import N_KEYS

log = logging.getLogger(__name__)

CONTEXT = 7  # input frames per output frame: three 3-frame convolutions
LOOKAHEAD = 1  # frames after the decided one that the network sees
CROP = 64  # output frames per training example
DEFAULT_MIX = {"score": 0.45, "chords": 0.2, "runs": 0.13, "single": 0.12, "melody": 0.1}


# -- data -------------------------------------------------------------------------------------
def _make_clip(job: tuple[int, str, str, bool, str, str]) -> tuple[str, int] | None:
    """Render one clip, compute its features and targets, save them as <out>/<seed>.npz."""
    seed, kind, piano, augment_it, out, cache = job
    target = Path(out) / f"{seed:06d}.npz"
    if target.is_file():
        return str(target), int(np.load(target)["features"].shape[0])
    rng = np.random.default_rng(seed)
    if kind == "score":
        paths = note_data.corpus_paths("train")
        path = paths[int(rng.integers(len(paths)))]
        events = note_data.score_events(path, Path(cache))
        notes = note_data.score_clip_notes(events, rng, note_data.CLIP_S)
        source = "score:" + path.split("/corpus/")[-1]
    else:
        notes = note_data.GENERATORS[kind](rng, note_data.CLIP_S)
        source = kind
    if not notes:
        return None
    clip = note_data.render_clip(notes, piano, rng, source, augment_it)
    features = log_spectrogram(clip.audio)
    onsets, sounding = note_data.labels(clip.notes, features.shape[0])
    partial = target.with_suffix(".part.npz")
    np.savez(partial, features=features.astype(np.float16), onsets=onsets, sounding=sounding)
    partial.replace(target)
    return str(target), features.shape[0]


def build_dataset(
    out: Path, clips: int, seed: int, workers: int, cache: Path, mix: dict[str, float] | None = None
) -> list[Path]:
    """`clips` clips of CLIP_S seconds (rendered once; a rerun reuses them)."""
    mix = mix or DEFAULT_MIX
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(mix), size=clips, p=np.array(list(mix.values())) / sum(mix.values()))
    jobs = [
        (
            seed * 100_000 + k,
            str(kind),
            note_data.TRAIN_PIANOS[k % len(note_data.TRAIN_PIANOS)],
            bool(rng.random() < 0.85),
            str(out),
            str(cache),
        )
        for k, kind in enumerate(kinds)
    ]
    started = time.monotonic()
    with Pool(workers) as pool:
        if any(kind == "score" for kind in kinds):
            # Parsed once up front: otherwise workers parse the same scores again.
            paths = note_data.corpus_paths("train")
            pool.map(_parse_score, [(path, str(cache)) for path in paths], chunksize=4)
            log.info("%d training scores parsed", len(paths))
        done = [r for r in pool.imap_unordered(_make_clip, jobs) if r is not None]
    log.info("%d clips ready in %.0f s", len(done), time.monotonic() - started)
    return [Path(path) for path, _ in sorted(done)]


def _parse_score(job: tuple[str, str]) -> None:
    note_data.score_events(job[0], Path(job[1]))


def load_arrays(paths: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per clip: features (frames, N_BINS, 2) float16 and targets (frames, 2 * 88) uint8."""
    features, targets = [], []
    for path in paths:
        with np.load(path) as data:
            features.append(data["features"])
            targets.append(np.concatenate([data["onsets"], data["sounding"]], axis=1))
    return features, targets


def crops(
    features: list[np.ndarray], targets: list[np.ndarray], batch: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless random batches: inputs (batch, CROP + CONTEXT - 1, N_BINS, 2) and targets
    (batch, CROP, 1, 176) aligned as the model's outputs are."""
    window = CROP + CONTEXT - 1
    usable = [k for k, f in enumerate(features) if f.shape[0] >= window]
    lengths = np.array([features[k].shape[0] - window + 1 for k in usable], float)
    weights = lengths / lengths.sum()
    delay = CONTEXT - 1 - LOOKAHEAD
    while True:
        x = np.empty((batch, window, N_BINS, len(WINDOWS)), np.float32)
        y = np.empty((batch, CROP, 1, 2 * N_KEYS), np.float32)
        for b, k in enumerate(rng.choice(usable, size=batch, p=weights)):
            start = int(rng.integers(features[k].shape[0] - window + 1))
            x[b] = features[k][start : start + window]
            y[b, :, 0] = targets[k][start + delay : start + delay + CROP]
        yield x, y


# -- the network ------------------------------------------------------------------------------
def build_model():
    """Three frequency-local conv blocks, then a dense layer over frequency (as a 1 x F conv so
    the time axis stays free), then 88 onset and 88 sounding sigmoids per frame."""
    import tensorflow as tf
    from tensorflow.keras import layers

    inputs = tf.keras.Input((None, N_BINS, len(WINDOWS)), name="logspec")
    x = layers.Rescaling(0.25)(inputs)
    for filters, pool in ((16, True), (32, True), (32, False)):
        x = layers.ZeroPadding2D(((0, 0), (1, 1)))(x)  # 'same' in frequency, 'valid' in time
        x = layers.Conv2D(filters, (3, 3), use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D((1, 2))(x)
    x = layers.Conv2D(256, (1, x.shape[2]), activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(2 * N_KEYS, (1, 1), activation="sigmoid", name="notes")(x)
    return tf.keras.Model(inputs, x)


# Strikes are rare (two frames per note) and plain cross-entropy leaves the onset outputs shy
# of 0.5 on a clear strike (a first run peaked at 0.3-0.46 on clean chords): positive onset
# frames count ONSET_WEIGHT times.
ONSET_WEIGHT = 6.0


def weighted_loss(tf):
    onset_columns = tf.constant([ONSET_WEIGHT - 1.0] * N_KEYS + [0.0] * N_KEYS)

    def loss(truth, predicted):
        predicted = tf.clip_by_value(predicted, 1e-7, 1 - 1e-7)
        entropy = -(truth * tf.math.log(predicted) + (1 - truth) * tf.math.log(1 - predicted))
        return tf.reduce_mean(entropy * (1.0 + truth * onset_columns))

    return loss


def train(
    paths: list[Path],
    epochs: int,
    steps: int,
    batch: int,
    seed: int,
    val_paths: list[Path],
    init: Path | None = None,
    learning_rate: float = 2e-3,
):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    features, targets = load_arrays(paths)
    rng = np.random.default_rng(seed)
    # A warm start goes on from a saved model (its .keras file beside the work folder's export).
    model = build_model() if init is None else tf.keras.models.load_model(init, compile=False)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps, alpha=0.05)
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss=weighted_loss(tf))
    data = tf.data.Dataset.from_generator(
        lambda: crops(features, targets, batch, rng),
        output_signature=(
            tf.TensorSpec((batch, CROP + CONTEXT - 1, N_BINS, len(WINDOWS)), tf.float32),
            tf.TensorSpec((batch, CROP, 1, 2 * N_KEYS), tf.float32),
        ),
    ).prefetch(2)
    validation = None
    if val_paths:
        vf, vt = load_arrays(val_paths)
        validation = next(crops(vf, vt, 64, np.random.default_rng(seed + 1)))
    model.fit(data, epochs=epochs, steps_per_epoch=steps, validation_data=validation, verbose=2)
    return model


def save_keras(model, out: Path) -> None:
    """The trained Keras model beside the export, for inspection or a warm start."""
    model.save(out.with_suffix(".keras"))


def export_tflite(model, out: Path) -> None:
    """TFLite with float16 weights (half the size; LiteRT's XNNPACK computes in float32), the
    time axis left free so the runtime can feed CONTEXT frames or a long window."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    flatbuffer = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part")
    partial.write_bytes(flatbuffer)
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notesight.models.train_notes")
    parser.add_argument("--out", type=Path, default=Path("models/notes.tflite"))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/notesight/notes")
    parser.add_argument("--clips", type=int, default=600, help=f"{note_data.CLIP_S:.0f} s each")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--init", type=Path, help="go on training this .keras model")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    paths = build_dataset(args.work / "clips", args.clips, args.seed, args.workers, args.work)
    held = max(len(paths) // 20, 1) if len(paths) > 1 else 0
    model = train(
        paths[held:],
        args.epochs,
        args.steps,
        args.batch,
        args.seed,
        paths[:held],
        init=args.init,
        learning_rate=args.learning_rate,
    )
    export_tflite(model, args.out)
    save_keras(model, args.work / args.out.name)
    card = {"clips": len(paths), "epochs": args.epochs, "steps": args.steps, "seed": args.seed}
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("wrote %s (%d bytes)", args.out, args.out.stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
