"""Note benchmark: notesight's streaming transcriber against its peers on the same audio in
the same run: aubio's own note detector (the `aubio notes` command with its defaults) and, on
polyphonic music, Spotify's Basic Pitch (offline, its ONNX model; bench/basic_pitch_peer.py).

    .venv/bin/python bench/notes.py [--quick] [--dev] [--out bench/out]

Systems: "notesight" is the default pipeline, the monophonic listening core ([listen].pipeline
= "mono"); "poly" the note model ([listen].pipeline = "poly"). Prints one table per figure
(metric | each system | ratio | target; ratio = ours / the table's peer: notesight / aubio, or
poly / Basic Pitch for polyphonic music), the isolated keys notesight got wrong, and writes
every clip's raw result to <out>/notes.json. Renders are cached in <out>/cache.
bench/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aubio
import mir_eval
import numpy as np
import piano_sets as sets  # bench/ is on sys.path when this file is run as a script
from piano_sets import Clip

from notesight.device.synth import Note
from notesight.dsp.music import midi_to_freq, midi_to_name

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
LATENCY_PAIRING_S = 0.1  # notes are paired for latency within 100 ms: see _pair_for_latency
# Finger legato: the "overlap" melodies hold each key this long into the next (informational).
LEGATO_OVERLAP_S = 0.08
LOW_SPLIT = (21, 35)  # A0-B1: the keys whose fundamental is weak or missing
HIGH_SPLIT = (36, 108)  # C2-C8
BASS_LATENCY = (21, 47)  # A0-B2: a bass period is long, so it is allowed more latency
TREBLE_LATENCY = (48, 108)  # C3 and up

Transcriber = Callable[[np.ndarray, int], list[dict]]


# -- the systems --------------------------------------------------------------------------
POLY_ONLY = ("basic-pitch",)  # run on the polyphonic sets only (offline, and slow)
POLY_DATASETS = ("pieces", "annotated")


def load_notesight() -> dict[str, Transcriber]:
    """notesight's default pipeline (the monophonic core) and the note model, or {} while
    notesight can't be imported (the bench then runs the peers alone and says so)."""
    try:
        from notesight.device.config import ListenSettings
        from notesight.device.transcribe import listener_params, transcribe_array
    except ImportError as exc:
        print(f"notesight is unavailable ({exc}); running the peers only")
        return {}
    default = listener_params(ListenSettings())
    poly = listener_params(ListenSettings(pipeline="poly"))
    return {
        "notesight": lambda audio, rate: transcribe_array(audio, rate, default),
        "poly": lambda audio, rate: transcribe_array(audio, rate, poly),
    }


def load_basic_pitch() -> dict[str, Transcriber]:
    import basic_pitch_peer as peer  # bench/ is on sys.path

    reason = peer.available()
    if reason is not None:
        print(f"Basic Pitch skipped: {reason}")
        return {}
    peer.warm_up()  # loading the ONNX model is not part of any clip's time

    def transcribe(audio: np.ndarray, rate: int) -> list[dict]:
        # Offline: a note is known only once the whole recording has been read.
        end = len(audio) / rate
        return [
            {"midi": m, "name": midi_to_name(m), "onset_s": on, "offset_s": off, "emitted_s": end}
            for on, off, m in peer.transcribe(audio, rate)
        ]

    return {"basic-pitch": transcribe}


# What `aubio notes` uses when given no options (aubio 0.4.9-0.4.12, python/lib/aubio/cmd.py):
# buf_size 512 and hop_size 256 (add_buf_hop_size defaults), silence -70 dB and release drop
# 10 dB (add_silence, add_release_drop); the notes subcommand has no --method or --minioi, so
# aubio.notes keeps its own defaults (method "default", minioi 30 ms). The file is read at its
# own sample rate (-r 0) in hops of 256, the last one zero-padded.
AUBIO_BUF_SIZE = 512
AUBIO_HOP_SIZE = 256
AUBIO_SILENCE_DB = -70.0
AUBIO_RELEASE_DROP_DB = 10.0


def aubio_transcribe(audio: np.ndarray, sample_rate: int) -> list[dict]:
    """`aubio notes` on mono float audio, as note dicts like notesight's. Times are what the
    CLI prints: a note-on at the start of the hop whose processing produced it (onset_s), a
    note-off likewise (offset_s; the end of the audio when none came). aubio.notes reports no
    detection delay to subtract, and the CLI subtracts none. emitted_s is when the note-on
    left the detector: after that hop was consumed."""
    detector = aubio.notes("default", AUBIO_BUF_SIZE, AUBIO_HOP_SIZE, sample_rate)
    detector.set_silence(AUBIO_SILENCE_DB)
    detector.set_release_drop(AUBIO_RELEASE_DROP_DB)
    hop = AUBIO_HOP_SIZE
    # aubio.source returns a short (zero-padded) last read and the CLI stops after it; when the
    # length is a multiple of the hop that last read is empty: one hop of zeros.
    padded = np.zeros((len(audio) // hop + 1) * hop, dtype=aubio.float_type)
    padded[: len(audio)] = audio
    notes: list[dict] = []
    for start in range(0, len(padded), hop):
        on_midi, velocity, off_midi = detector(padded[start : start + hop])
        t = start / sample_rate
        if off_midi != 0 and notes and notes[-1]["offset_s"] is None:
            notes[-1]["offset_s"] = t
        if on_midi != 0:
            notes.append(_aubio_note(float(on_midi), float(velocity), t, start + hop, sample_rate))
    for note in notes:
        if note["offset_s"] is None:
            note["offset_s"] = len(audio) / sample_rate
    return notes


def _aubio_note(midi_float: float, velocity: float, t: float, consumed: int, rate: int) -> dict:
    midi = round(midi_float)
    return {
        "midi": midi,
        "name": midi_to_name(midi),
        "onset_s": t,
        "offset_s": None,
        "emitted_s": consumed / rate,
        "velocity": int(np.clip(round(velocity), 0, 127)),
        "cents": 100.0 * (midi_float - midi),
        "freq_hz": midi_to_freq(midi_float),
    }


# -- running -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One system on one clip: what it found, how long it took, and how that scores."""

    notes: list[dict]
    wall_s: float
    figures: dict = field(default_factory=dict)


@dataclass
class Result:
    clip: Clip
    outcomes: dict[str, Outcome]


def run_clip(clip: Clip, systems: dict[str, Transcriber]) -> Result:
    outcomes = {}
    for name, transcribe in systems.items():
        if name in POLY_ONLY and clip.dataset not in POLY_DATASETS:
            continue
        start = time.perf_counter()
        notes = transcribe(clip.audio, clip.sample_rate)
        wall = time.perf_counter() - start
        outcome = Outcome(sorted(notes, key=lambda n: n["emitted_s"]), wall)
        outcome.figures = score(clip, outcome.notes)
        outcomes[name] = outcome
    return Result(clip, outcomes)


def score(clip: Clip, notes: list[dict]) -> dict:
    if clip.dataset in ("keys", "salamander"):
        return first_note_figures(clip.reference[0], notes)
    if clip.dataset == "under":
        return struck_under_figures(clip.reference[0], notes)
    return note_figures(clip.reference, notes)


def first_note_figures(reference: Note, notes: list[dict]) -> dict:
    """Isolated keys and Salamander: is the FIRST note out the right key, and how late."""
    first = notes[0] if notes else None
    right = first is not None and first["midi"] == reference.midi
    return {
        "midi": reference.midi,
        "found": first["midi"] if first else None,
        "right": right,
        "latency_s": first["emitted_s"] - reference.onset_s if right else None,
        "count": len(notes),
    }


def struck_under_figures(reference: Note, notes: list[dict]) -> dict:
    """A bass key struck under a ringing one: is the first note out from its strike on (an
    onset no earlier than the tolerance before it) the bass key, and how late."""
    since = [n for n in notes if n["onset_s"] >= reference.onset_s - ONSET_TOLERANCE_S]
    return first_note_figures(reference, since)


def _intervals_and_hz(notes: Iterable[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    rows = list(notes)
    intervals = np.array([[on, max(off, on + 0.001)] for on, off, _ in rows]).reshape(-1, 2)
    return intervals, np.array([midi_to_freq(m) for _, _, m in rows])


def note_f1(
    reference: Iterable[tuple[float, float, int]], found: Iterable[tuple[float, float, int]]
) -> tuple[float, float, float]:
    """(precision, recall, F1) of (onset_s, offset_s, midi) notes: onset within 50 ms, pitch
    within 50 cents, offsets ignored, one found note per reference note."""
    ref_iv, ref_hz = _intervals_and_hz(reference)
    if len(ref_iv) == 0:
        raise ValueError("note_f1 needs at least one reference note")
    est_iv, est_hz = _intervals_and_hz(found)
    return _prf(ref_iv, ref_hz, est_iv, est_hz, ONSET_TOLERANCE_S)


def note_figures(reference: tuple[Note, ...], notes: list[dict]) -> dict:
    """Melodies and performances: mir_eval note P/R/F1 on onsets (50 ms) and pitch (50 cents),
    offsets ignored, plus the latency of every paired note."""
    ref_iv, ref_hz = _intervals_and_hz((n.onset_s, n.offset_s, n.midi) for n in reference)
    est_iv, est_hz = _intervals_and_hz((n["onset_s"], n["offset_s"], n["midi"]) for n in notes)
    p, r, f1 = note_f1(
        [(n.onset_s, n.offset_s, n.midi) for n in reference],
        [(n["onset_s"], n["offset_s"], n["midi"]) for n in notes],
    )
    f1_wide = _prf(ref_iv, ref_hz, est_iv, est_hz, LATENCY_PAIRING_S)[2]
    return {
        "p": p,
        "r": r,
        "f1": f1,
        "f1_100ms": f1_wide,
        "latencies": _pair_for_latency(reference, notes, ref_iv, ref_hz, est_iv, est_hz),
        "count": len(notes),
    }


def _prf(ref_iv, ref_hz, est_iv, est_hz, onset_tolerance: float) -> tuple[float, float, float]:
    if len(est_iv) == 0:
        return 0.0, 0.0, 0.0
    with warnings.catch_warnings():  # mir_eval warns on empty or odd inputs; scores say enough
        warnings.simplefilter("ignore")
        p, r, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance,
            pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None,
        )  # fmt: skip
    return float(p), float(r), float(f1)


def _pair_for_latency(reference, notes, ref_iv, ref_hz, est_iv, est_hz) -> list[list[float]]:
    """[midi, emitted_s - true onset] for each reference note paired with a found one. The
    pairing window is 100 ms, not the F1's 50 ms: a window no wider than the latencies it
    measures would drop exactly the late notes and make a late system look fast."""
    if len(est_iv) == 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = mir_eval.transcription.match_notes(
            ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=LATENCY_PAIRING_S,
            pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None,
        )  # fmt: skip
    return [[reference[i].midi, notes[j]["emitted_s"] - reference[i].onset_s] for i, j in pairs]


# -- figures -------------------------------------------------------------------------------
def percent_right(results: list[Result], system: str, keys: tuple[int, int]) -> float | None:
    chosen = [
        res.outcomes[system].figures
        for res in results
        if keys[0] <= res.clip.reference[0].midi <= keys[1]
    ]
    return 100.0 * sum(f["right"] for f in chosen) / len(chosen) if chosen else None


def mean_of(results: list[Result], system: str, key: str) -> float | None:
    values = [res.outcomes[system].figures[key] for res in results]
    return float(np.mean(values)) if values else None


def latencies(results: list[Result], system: str, keys: tuple[int, int]) -> list[float]:
    """Latencies (s) of correctly detected first notes of isolated keys and of paired melody
    notes whose key is in `keys`."""
    out = []
    for res in results:
        figures = res.outcomes[system].figures
        if res.clip.dataset == "keys" and figures["right"]:
            out += [figures["latency_s"]] if keys[0] <= figures["midi"] <= keys[1] else []
        elif res.clip.dataset in ("melody", "pieces"):
            out += [lat for midi, lat in figures["latencies"] if keys[0] <= midi <= keys[1]]
    return out


def percentile_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000.0 if values else None


def speed(results: list[Result], system: str) -> float | None:
    ran = [res for res in results if system in res.outcomes]
    audio_s = sum(res.clip.seconds for res in ran)
    wall_s = sum(res.outcomes[system].wall_s for res in ran)
    return audio_s / wall_s if wall_s > 0 else None


# -- tables --------------------------------------------------------------------------------
Row = tuple[str, dict[str, float | None], str]


def _cell(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def _ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer == 0:
        return "n/a"
    return f"{ours / peer:.2f}"


def print_table(
    title: str, rows: list[Row], peer: str = "aubio", decimals: int = 1, ours: str = "notesight"
) -> list[dict]:
    """Print `metric | each system | ratio | target` (ratio: `ours` / `peer`); return the rows
    for the JSON."""
    width = max([len("metric")] + [len(r[0]) for r in rows])
    columns = list(dict.fromkeys(name for _, values, _ in rows for name in values))
    header = " | ".join(f"{name:>11}" for name in columns)
    print(f"\n{title}")
    print(f"{'metric':<{width}} | {header} | {'ratio':>6} | target")
    print("-+-".join(["-" * width] + ["-" * 11] * len(columns) + ["-" * 6, "-" * 8]))
    for metric, values, target in rows:
        cells = " | ".join(f"{_cell(values.get(name), decimals):>11}" for name in columns)
        ratio = _ratio(values.get(ours), values.get(peer))
        print(f"{metric:<{width}} | {cells} | {ratio:>6} | {target}")
    return [{"metric": m, **values, "target": t} for m, values, t in rows]


def by_set(results: list[Result], dataset: str) -> dict[str, list[Result]]:
    """Results of one dataset grouped by "piano condition", in first-seen order."""
    groups: dict[str, list[Result]] = {}
    for res in results:
        if res.clip.dataset == dataset:
            groups.setdefault(res.clip.label, []).append(res)
    return groups


def evaluation_only(results: list[Result]) -> list[Result]:
    return [r for r in results if r.clip.piano not in sets.DEVELOPMENT_PIANOS]


def _tag(label: str) -> str:
    return f"{label} (dev)" if label.split()[0] in sets.DEVELOPMENT_PIANOS else label


def row(metric: str, figure: Callable[[str], float | None], systems: dict, target: str) -> Row:
    """One table row: `figure` computed for each system."""
    return metric, {s: figure(s) for s in systems}, target


def streaming(systems: dict) -> dict:
    """The systems that run on every clip (not the polyphonic-only peers)."""
    return {name: run for name, run in systems.items() if name not in POLY_ONLY}


KEY_SPLITS = (("all", (21, 108), ">= 97"), ("A0-B1", LOW_SPLIT, ">= 85"))
KEY_SPLITS += (("C2-C8", HIGH_SPLIT, ">= 99"),)


def keys_table(results: list[Result], systems: dict) -> list[dict]:
    keys = [r for r in results if r.clip.dataset == "keys"]
    pooled = evaluation_only(keys)
    pianos = "+".join(dict.fromkeys(r.clip.piano for r in pooled))
    groups = {f"{pianos} dry+room": pooled}
    groups |= {_tag(label): group for label, group in by_set(results, "keys").items()}
    rows = [
        row(f"{split}, {label}", lambda s, g=group, k=span: percent_right(g, s, k), systems, goal)
        for label, group in groups.items()
        for split, span, goal in KEY_SPLITS
    ]
    return print_table(f"== isolated keys: first note right (%), {len(keys)} clips ==", rows)


UNDER_SPLITS = (("E1-A1", (28, 33)), ("D2-C3", (38, 48)))


def under_table(results: list[Result], systems: dict) -> list[dict]:
    """Bass keys struck under a ringing one (`piano_sets.struck_under`): right first notes
    and the latency of the right ones, evaluation pianos pooled, then per piano and room."""
    under = [r for r in results if r.clip.dataset == "under"]
    pooled = evaluation_only(under)
    pianos = "+".join(dict.fromkeys(r.clip.piano for r in pooled))

    def right_ms(q: float) -> Callable[[str], float | None]:
        def figure(system: str) -> float | None:
            lat = [r.outcomes[system].figures["latency_s"] for r in pooled]
            return percentile_ms([v for v in lat if v is not None], q)

        return figure

    groups = {f"{pianos} dry+room": pooled}
    groups |= {_tag(label): group for label, group in by_set(results, "under").items()}
    rows = [
        row(f"right %, {label}", lambda s, g=group: percent_right(g, s, (21, 108)), systems, "")
        for label, group in groups.items()
    ]
    rows += [
        row(
            f"right %, {split}, {pianos}",
            lambda s, k=span: percent_right(pooled, s, k),
            systems,
            "",
        )
        for split, span in UNDER_SPLITS
    ]
    rows += [
        row("latency of the right ones, median ms", right_ms(50), systems, ""),
        row("latency of the right ones, p95 ms", right_ms(95), systems, ""),
    ]
    title = f"== a bass key struck under a ringing one: first note right, {len(under)} clips =="
    return print_table(title, rows)


def melody_table(results: list[Result], systems: dict) -> list[dict]:
    pooled = [r for r in evaluation_only(results) if r.clip.dataset == "melody"]

    def mean(key: str, group: list[Result] = pooled) -> Callable[[str], float | None]:
        return lambda system: mean_of(group, system, key)

    rows = [
        row("F1, evaluation pianos dry+room", mean("f1"), systems, ">= 0.95"),
        row("precision", mean("p"), systems, ""),
        row("recall", mean("r"), systems, ""),
        row("F1 with a 100 ms onset window (info)", mean("f1_100ms"), systems, ""),
    ]
    for label, group in by_set(results, "melody").items():
        rows.append(row(f"F1, {_tag(label)}", mean("f1", group), systems, ">= 0.95"))
    held = [r for r in evaluation_only(results) if r.clip.dataset == "overlap"]
    if held:
        hold_ms = round(LEGATO_OVERLAP_S * 1000)
        rows.append(
            row(f"F1, keys held {hold_ms} ms into the next (info)", mean("f1", held), systems, "")
        )
        for label, group in by_set(results, "overlap").items():
            rows.append(row(f"  held {hold_ms} ms, {_tag(label)}", mean("f1", group), systems, ""))
    title = f"== legato melodies: note F1 (onset 50 ms, pitch 50 cents), {len(pooled)} clips =="
    return print_table(title, rows, decimals=3)


def salamander_table(results: list[Result], systems: dict) -> list[dict]:
    group = [r for r in results if r.clip.dataset == "salamander"]
    if not group:
        print(f"\n(Salamander skipped: {SHARED_DATA / 'piano' / 'salamander'} is absent)")
        return []

    def right(system: str) -> float:
        return float(sum(r.outcomes[system].figures["right"] for r in group))

    def median_latency(system: str) -> float | None:
        lat = [r.outcomes[system].figures["latency_s"] for r in group]
        return percentile_ms([v for v in lat if v is not None], 50)

    rows = [
        row(f"first note right (of {len(group)})", right, systems, ">= 29"),
        row("latency of the right ones, median ms (info)", median_latency, systems, ""),
    ]
    return print_table("== Salamander Grand: 30 real notes (Yamaha C5) ==", rows, decimals=0)


def annotated_table(results: list[Result], systems: dict) -> list[dict]:
    group = [r for r in results if r.clip.dataset == "annotated"]
    if not group:
        print(f"\n(annotated performances skipped: {SHARED_DATA / 'piano' / 'annotated'} absent)")
        return []
    names = {"f1": "F1", "p": "precision", "r": "recall"}
    rows = [
        row(
            f"{res.clip.name} {name}", lambda s, x=res, k=key: x.outcomes[s].figures[k], systems, ""
        )
        for res in group
        for key, name in names.items()
    ]
    title = "== real annotated performances: note F1 (polyphonic: informational) =="
    return print_table(title, rows, decimals=3)


def latency_table(results: list[Result], systems: dict) -> list[dict]:
    pooled = [r for r in evaluation_only(results) if r.clip.dataset in ("keys", "melody")]
    keys_only = [r for r in pooled if r.clip.dataset == "keys"]
    melodies_only = [r for r in pooled if r.clip.dataset == "melody"]

    def stat(span: tuple[int, int], q: float, group: list[Result] = pooled) -> Callable:
        return lambda system: percentile_ms(latencies(group, system, span), q)

    def count(span: tuple[int, int]) -> str:
        return "/".join(str(len(latencies(pooled, s, span))) for s in systems)

    rows = [
        row(
            f">= C3, median (n {count(TREBLE_LATENCY)})", stat(TREBLE_LATENCY, 50), systems, "<= 30"
        ),
        row(">= C3, p95", stat(TREBLE_LATENCY, 95), systems, "<= 50"),
        row(f"A0-B2, median (n {count(BASS_LATENCY)})", stat(BASS_LATENCY, 50), systems, ""),
        row("A0-B2, p95", stat(BASS_LATENCY, 95), systems, "<= 100"),
        row(">= C3, median, isolated keys only", stat(TREBLE_LATENCY, 50, keys_only), systems, ""),
        row(">= C3, median, melodies only", stat(TREBLE_LATENCY, 50, melodies_only), systems, ""),
    ]
    title = "== latency, ms: note-on emitted minus true onset (evaluation pianos) =="
    return print_table(title, rows)


def speed_table(results: list[Result], systems: dict) -> list[dict]:
    audio_s = sum(r.clip.seconds for r in results)
    mono_sets = [r for r in results if r.clip.dataset not in POLY_DATASETS]
    rows = [
        row("x real time, all clips (wall clock)", lambda s: speed(results, s), systems, ""),
        row("x real time, one-line sets", lambda s: speed(mono_sets, s), streaming(systems), ""),
    ]
    title = f"== speed: one process, all {audio_s:.0f} s of audio in this run =="
    return print_table(title, rows, decimals=0)


def poly_table(results: list[Result], systems: dict) -> list[dict]:
    """Two-hand music: held-out scores on the unseen piano, dry and in the room, and the real
    Disklavier recording. Basic Pitch reads whole files, so it has no latency."""
    pieces = [r for r in results if r.clip.dataset == "pieces"]
    smd = [r for r in results if r.clip.name == "smd_chopin_op28-4"]
    if not pieces and not smd:
        print("\n(polyphonic sets skipped: music21 missing and no shared recordings)")
        return []

    def mean(group: list[Result], key: str = "f1") -> Callable[[str], float | None]:
        return lambda s: mean_of([r for r in group if s in r.outcomes], s, key)

    def latency(q: float) -> Callable[[str], float | None]:
        def figure(system: str) -> float | None:
            if system in POLY_ONLY:
                return None
            values = [lat for r in pieces for _, lat in r.outcomes[system].figures["latencies"]]
            return percentile_ms(values, q)

        return figure

    rows = []
    for label, group in by_set(results, "pieces").items():
        goal = ">= 0.88" if "dry" in label else ">= 0.85"
        rows += [
            row(f"F1, {label} ({len(group)} excerpts)", mean(group), systems, goal),
            row(f"  precision, {label}", mean(group, "p"), systems, ""),
            row(f"  recall, {label}", mean(group, "r"), systems, ""),
        ]
    if smd:
        rows.append(row("F1, SMD Chopin Op. 28 No. 4 (Disklavier)", mean(smd), systems, ">= 0.80"))
    rows += [
        row("latency median, ms (pieces)", latency(50), systems, "<= 40"),
        row("latency p95, ms (pieces)", latency(95), systems, "<= 60"),
        row("x real time (pieces)", lambda s: speed(pieces, s), systems, ">= 30"),
    ]
    peer = "basic-pitch" if "basic-pitch" in systems else "aubio"
    title = "== polyphonic music: note F1 (onset 50 ms, pitch 50 cents, no offsets) =="
    return print_table(title, rows, peer=peer, decimals=3, ours="poly")


def per_hop_cost(results: list[Result]) -> dict:
    """The note model's whole pipeline per 16 ms hop, in microseconds of this machine's core."""
    pieces = [r for r in results if r.clip.dataset == "pieces" and "poly" in r.outcomes]
    if not pieces:
        return {}
    hops = sum(r.clip.seconds for r in pieces) / 0.016
    wall = sum(r.outcomes["poly"].wall_s for r in pieces)
    cost = {"poly_us_per_hop": 1e6 * wall / hops}
    print(f"\npoly per 16 ms hop (whole pipeline, pieces): {cost['poly_us_per_hop']:.0f} us")
    return cost


def failing_keys(results: list[Result], systems: dict) -> dict:
    """For each system and piano/condition: the isolated keys whose first note was wrong."""
    out: dict = {}
    for system in systems:
        for res in results:
            figures = res.outcomes[system].figures
            if res.clip.dataset == "keys" and not figures["right"]:
                velocity = res.clip.reference[0].velocity
                entry = {"midi": figures["midi"], "velocity": velocity, "found": figures["found"]}
                out.setdefault(system, {}).setdefault(res.clip.label, []).append(entry)
    return out


def print_failing(failing: dict) -> None:
    for system, groups in failing.items():
        print(f"\nisolated keys {system} got wrong (key v<velocity> -> first note found):")
        for label, entries in groups.items():
            shown = ", ".join(
                f"{midi_to_name(e['midi'])}({e['midi']}) v{e['velocity']} -> "
                + (f"{midi_to_name(e['found'])}({e['found']})" if e["found"] else "nothing")
                for e in entries
            )
            print(f"  {_tag(label)} [{len(entries)}]: {shown}")


# -- main ----------------------------------------------------------------------------------
def build_clips(args: argparse.Namespace, cache: Path) -> list[Clip]:
    pianos = list(sets.EVALUATION_PIANOS) + (list(sets.DEVELOPMENT_PIANOS) if args.dev else [])
    keys = list(range(21, 109, 5)) if args.quick else list(range(21, 109))
    count = 5 if args.quick else 20
    clips: list[Clip] = []
    for piano in pianos:
        clips += sets.isolated_keys(piano, keys, cache)
        clips += sets.melodies(piano, count, cache)
        clips += sets.melodies(piano, count // 2, cache, LEGATO_OVERLAP_S)
        clips += sets.struck_under(piano, cache)
    try:
        clips += sets.pieces(4 if args.quick else 16, cache)
    except ImportError as exc:  # music21 is in the train extra
        print(f"polyphonic pieces skipped: {exc} (pip install -e '.[train]')")
    if SHARED_DATA.is_dir():
        clips += sets.salamander(SHARED_DATA) + sets.annotated(SHARED_DATA)
    return clips


def clip_record(res: Result) -> dict:
    clip = res.clip
    return {
        "dataset": clip.dataset,
        "piano": clip.piano,
        "condition": clip.condition,
        "name": clip.name,
        "sample_rate": clip.sample_rate,
        "seconds": clip.seconds,
        "reference": [[n.onset_s, n.duration_s, n.midi, n.velocity] for n in clip.reference],
        "systems": {
            name: {"wall_s": o.wall_s, "figures": o.figures, "notes": o.notes}
            for name, o in res.outcomes.items()
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 5th key and 5 melodies")
    parser.add_argument(
        "--dev", action="store_true", help="also the development piano TimGM6mb (shown apart)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="output folder")
    parser.add_argument("--no-basic-pitch", action="store_true", help="leave Basic Pitch out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems: dict[str, Transcriber] = {**load_notesight(), "aubio": aubio_transcribe}
    if not args.no_basic_pitch:
        systems |= load_basic_pitch()
    started = time.perf_counter()
    clips = build_clips(args, args.out / "cache")
    print(f"{len(clips)} clips ready in {time.perf_counter() - started:.0f} s; transcribing")
    results = [run_clip(clip, systems) for clip in clips]
    one_line = streaming(systems)
    tables = {
        "isolated_keys": keys_table(results, one_line),
        "melodies": melody_table(results, one_line),
        "struck_under": under_table(results, one_line),
        "salamander": salamander_table(results, one_line),
        "annotated": annotated_table(results, systems),
        "polyphonic": poly_table(results, systems),
        "latency": latency_table(results, one_line),
        "speed": speed_table(results, systems),
        "per_hop": per_hop_cost(results),
    }
    failing = failing_keys(results, one_line)
    # The list is for notesight's developer; aubio's (long) list is in the JSON only.
    print_failing({s: failing.get(s, {}) for s in list(systems)[:1]})
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "args": {"quick": args.quick, "dev": args.dev},
        "systems": list(systems),
        "tables": tables,
        "failing_keys": failing,
        "clips": [clip_record(r) for r in results],
    }
    (args.out / "notes.json").write_text(json.dumps(report, default=float))
    print(f"\nraw results: {args.out / 'notes.json'}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
