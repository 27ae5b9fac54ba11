"""Note benchmark: notesight's listening core against aubio's own note detector, same audio,
same run. Prints tables (figure | notesight | aubio | ratio | target) and writes the raw
results to bench/out/notes.json.

    .venv/bin/python bench/notes.py [--quick] [--pianos FluidR3_GM,MuseScore_General]

Pianos: TimGM6mb was the development piano (parameters were chosen on it and on FluidR3_GM);
MuseScore_General and the real Salamander and SMD recordings were not used for tuning.
Audio renders are cached in bench/out/cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aubio
import mir_eval
import numpy as np
import soundfile as sf

from notesight.device.synth import Note, find_soundfont, render_notes
from notesight.device.transcribe import transcribe_array
from notesight.dsp.augment import room_version

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "piano"
OUT = ROOT / "bench" / "out"
SR = 44100
KEY_SPACING_S = 3.0
Transcriber = Callable[[np.ndarray, int], list[dict]]


# -- the peer -----------------------------------------------------------------------------
def aubio_transcribe(audio: np.ndarray, sample_rate: int) -> list[dict]:
    """`aubio notes` with its CLI defaults: method default, buf 512, hop 256, silence -70,
    release drop 10. The CLI prints a note-on at the start of the hop that produced it; the
    event left the detector once that hop was consumed (emitted_s)."""
    hop = 256
    detector = aubio.notes("default", 512, hop, sample_rate)
    detector.set_silence(-70)
    detector.set_release_drop(10)
    notes: list[dict] = []
    padded = np.concatenate((audio, np.zeros(-len(audio) % hop, np.float32)))
    for start in range(0, len(padded), hop):
        out = detector(np.ascontiguousarray(padded[start : start + hop]))
        t = start / sample_rate
        if out[2] != 0 and notes and notes[-1]["offset_s"] is None:
            notes[-1]["offset_s"] = t
        if out[0] != 0:
            midi = round(float(out[0]))
            notes.append(
                {
                    "midi": midi,
                    "onset_s": t,
                    "offset_s": None,
                    "emitted_s": (start + hop) / sample_rate,
                    "velocity": int(out[1]),
                }
            )
    for n in notes:
        if n["offset_s"] is None:
            n["offset_s"] = len(audio) / sample_rate
    return notes


def notesight_transcribe(audio: np.ndarray, sample_rate: int) -> list[dict]:
    return transcribe_array(audio, sample_rate)


SYSTEMS: dict[str, Transcriber] = {"notesight": notesight_transcribe, "aubio": aubio_transcribe}


# -- audio ----------------------------------------------------------------------------------
def cached_render(name: str, notes: list[Note], soundfont: str, room: bool) -> np.ndarray:
    cache = OUT / "cache" / f"{name}_{soundfont}_{'room' if room else 'dry'}.wav"
    if cache.exists():
        return sf.read(cache, dtype="float32")[0]
    dry_cache = OUT / "cache" / f"{name}_{soundfont}_dry.wav"
    if dry_cache.exists():
        audio = sf.read(dry_cache, dtype="float32")[0]
    else:
        audio = render_notes(notes, find_soundfont(soundfont), SR)
        dry_cache.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dry_cache, audio, SR, subtype="FLOAT")
    if room:
        audio = room_version(audio, SR, seed=7)
        sf.write(cache, audio, SR, subtype="FLOAT")
    return audio


def key_notes(velocity: int, keys: list[int]) -> list[Note]:
    return [Note(1.0 + KEY_SPACING_S * i, 1.5, m, velocity) for i, m in enumerate(keys)]


def melody(seed: int) -> list[Note]:
    """A legato single line in C3..C6: steps of -5..+5 semitones, 0.15-0.6 s per note."""
    rng = np.random.default_rng(seed)
    notes, t, midi = [], 0.5, int(rng.integers(55, 72))
    while t < 12.0:
        duration = float(rng.uniform(0.15, 0.6))
        notes.append(Note(round(t, 3), round(duration, 3), midi, int(rng.integers(50, 111))))
        t += duration
        midi = int(np.clip(midi + rng.integers(-5, 6), 48, 84))
    return notes


# -- metrics --------------------------------------------------------------------------------
class Timer:
    def __init__(self) -> None:
        self.audio_s: dict[str, float] = {s: 0.0 for s in SYSTEMS}
        self.cpu_s: dict[str, float] = {s: 0.0 for s in SYSTEMS}

    def run(self, system: str, audio: np.ndarray, sample_rate: int) -> list[dict]:
        start = time.process_time()
        notes = SYSTEMS[system](audio, sample_rate)
        self.cpu_s[system] += time.process_time() - start
        self.audio_s[system] += len(audio) / sample_rate
        return notes

    def speed(self, system: str) -> float:
        return self.audio_s[system] / max(self.cpu_s[system], 1e-9)


def first_note_results(found: list[dict], keys: list[int]) -> list[dict]:
    rows = []
    for i, midi in enumerate(keys):
        t0 = 1.0 + KEY_SPACING_S * i
        in_slot = [n for n in found if t0 - 0.1 <= n["onset_s"] < t0 + KEY_SPACING_S - 0.1]
        first = in_slot[0] if in_slot else None
        rows.append(
            {
                "midi": midi,
                "found": first["midi"] if first else None,
                "latency_s": first["emitted_s"] - t0 if first else None,
                "extra": max(0, len(in_slot) - 1),
            }
        )
    return rows


def hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, float) - 69.0) / 12.0)


def note_f1(reference: list[Note], found: list[dict]) -> tuple[float, float, float, list]:
    ref_iv = np.array([[n.onset_s, n.onset_s + n.duration_s] for n in reference])
    ref_hz = hz([n.midi for n in reference])
    if not found:
        return 0.0, 0.0, 0.0, []
    est_iv = np.array([[n["onset_s"], max(n["offset_s"], n["onset_s"] + 0.01)] for n in found])
    est_hz = hz([n["midi"] for n in found])
    kw = {"onset_tolerance": 0.05, "pitch_tolerance": 50.0, "offset_ratio": None}
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, **kw
    )
    pairs = mir_eval.transcription.match_notes(ref_iv, ref_hz, est_iv, est_hz, **kw)
    latencies = [
        (reference[i].midi, found[j]["emitted_s"] - reference[i].onset_s) for i, j in pairs
    ]
    return p, r, f, latencies


# -- datasets -------------------------------------------------------------------------------
def isolated_keys(timer: Timer, pianos: list[str], keys: list[int], results: dict) -> None:
    for piano in pianos:
        for room in (False, True):
            for velocity in (40, 110):
                audio = cached_render(
                    f"keys{len(keys)}_v{velocity}", key_notes(velocity, keys), piano, room
                )
                for system in SYSTEMS:
                    rows = first_note_results(timer.run(system, audio, SR), keys)
                    label = f"{piano}/{'room' if room else 'dry'}"
                    results.setdefault(system, {}).setdefault("keys", {}).setdefault(
                        label, []
                    ).extend(dict(r, velocity=velocity) for r in rows)


def melodies(timer: Timer, pianos: list[str], count: int, results: dict) -> None:
    for piano in pianos:
        for room in (False, True):
            label = f"{piano}/{'room' if room else 'dry'}"
            for k in range(count):
                reference = melody(1000 + k)
                audio = cached_render(f"melody{k}", reference, piano, room)
                for system in SYSTEMS:
                    p, r, f, lat = note_f1(reference, timer.run(system, audio, SR))
                    bucket = results.setdefault(system, {}).setdefault("melody", {})
                    bucket.setdefault(label, []).append({"p": p, "r": r, "f1": f, "latency": lat})


SALAMANDER_NAMES = {"C": 0, "Cs": 1, "D": 2, "Ds": 3, "E": 4, "F": 5, "Fs": 6, "G": 7}
SALAMANDER_NAMES |= {"Gs": 8, "A": 9, "As": 10, "B": 11}


def salamander(timer: Timer, results: dict) -> None:
    folder = SHARED / "salamander"
    if not folder.is_dir():
        print(f"(skipped: {folder} is absent)")
        return
    for path in sorted(folder.glob("*.ogg")):
        stem = path.stem
        midi = 12 * (int(stem[-1]) + 1) + SALAMANDER_NAMES[stem[:-1]]
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        # The attack starts within the first few ms: the first sample above 10 % of the peak.
        t0 = int(np.argmax(np.abs(audio) > 0.1 * np.abs(audio).max())) / rate
        for system in SYSTEMS:
            found = timer.run(system, audio, rate)
            first = found[0] if found else None
            results.setdefault(system, {}).setdefault("salamander", []).append(
                {
                    "file": path.name,
                    "midi": midi,
                    "found": first["midi"] if first else None,
                    "latency_s": first["emitted_s"] - t0 if first else None,
                }
            )


def annotated(timer: Timer, results: dict) -> None:
    folder = SHARED / "annotated"
    sets = []
    smd = folder / "smd_chopin_op28-4_beginning.wav"
    if smd.exists():
        rows = [line.split(";") for line in smd.with_suffix(".csv").read_text().splitlines()[1:]]
        sets.append((smd, [Note(float(r[0]), float(r[1]), int(r[2]), 64) for r in rows if r[0]]))
    madmom = folder / "madmom_stereo_sample.wav"
    if madmom.exists():
        rows = [line.split() for line in madmom.with_suffix(".notes").read_text().splitlines()]
        sets.append(
            (madmom, [Note(float(r[0]), float(r[2]), int(float(r[1])), 64) for r in rows if r])
        )
    for path, reference in sets:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        for system in SYSTEMS:
            p, r, f, _ = note_f1(reference, timer.run(system, audio, rate))
            results.setdefault(system, {}).setdefault("annotated", {})[path.name] = {
                "p": p,
                "r": r,
                "f1": f,
            }


# -- report -----------------------------------------------------------------------------------
def pct(rows: list[dict], low: int = 21, high: int = 108) -> float:
    chosen = [r for r in rows if low <= r["midi"] <= high]
    return 100.0 * sum(r["found"] == r["midi"] for r in chosen) / max(len(chosen), 1)


def latencies(rows_keys: list[dict], melody_runs: list[dict], low: int, high: int) -> list[float]:
    out = [
        r["latency_s"] for r in rows_keys if r["found"] == r["midi"] and low <= r["midi"] <= high
    ]
    for run in melody_runs:
        out += [lat for midi, lat in run["latency"] if low <= midi <= high]
    return out


def stat(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0 if values else float("nan")


def table(title: str, rows: list[tuple[str, float, float, str]], fmt: str = "{:.1f}") -> None:
    print(f"\n{title}")
    print(f"{'figure':<34} {'notesight':>10} {'aubio':>10} {'ratio':>7}  target")
    for name, ours, peer, target in rows:
        ratio = ours / peer if peer and not np.isnan(peer) and peer != 0 else float("nan")
        print(f"{name:<34} {fmt.format(ours):>10} {fmt.format(peer):>10} {ratio:>7.2f}  {target}")


def report(results: dict, timer: Timer, pianos: list[str]) -> None:
    ns, au = results["notesight"], results["aubio"]
    for label in ns.get("keys", {}):
        k_ns, k_au = ns["keys"][label], au["keys"][label]
        m_ns, m_au = ns["melody"].get(label, []), au["melody"].get(label, [])
        rows = [
            ("isolated keys, all 88 (%)", pct(k_ns), pct(k_au), ">= 97"),
            ("isolated keys, A0-B1 (%)", pct(k_ns, 21, 35), pct(k_au, 21, 35), ">= 85"),
            ("isolated keys, C2-C8 (%)", pct(k_ns, 36, 108), pct(k_au, 36, 108), ">= 99"),
            (
                "melody note F1",
                np.mean([m["f1"] for m in m_ns]),
                np.mean([m["f1"] for m in m_au]),
                ">= 0.95",
            ),
            (
                "melody precision",
                np.mean([m["p"] for m in m_ns]),
                np.mean([m["p"] for m in m_au]),
                "",
            ),
            ("melody recall", np.mean([m["r"] for m in m_ns]), np.mean([m["r"] for m in m_au]), ""),
        ]
        hi_ns, hi_au = latencies(k_ns, m_ns, 48, 108), latencies(k_au, m_au, 48, 108)
        lo_ns, lo_au = latencies(k_ns, [], 21, 47), latencies(k_au, [], 21, 47)
        rows += [
            ("latency >= C3, median (ms)", stat(hi_ns, 50), stat(hi_au, 50), "<= 30"),
            ("latency >= C3, p95 (ms)", stat(hi_ns, 95), stat(hi_au, 95), "<= 50"),
            ("latency A0-B2, p95 (ms)", stat(lo_ns, 95), stat(lo_au, 95), "<= 100"),
            (
                "extra notes on isolated keys",
                sum(r["extra"] for r in k_ns),
                sum(r["extra"] for r in k_au),
                "",
            ),
        ]
        table(f"== {label} (88 keys x velocity 40 and 110; melodies) ==", rows, "{:.3f}")
    if "salamander" in ns:
        s_ns, s_au = ns["salamander"], au["salamander"]
        rows = [
            (
                "right first note (of 30)",
                sum(r["found"] == r["midi"] for r in s_ns),
                sum(r["found"] == r["midi"] for r in s_au),
                ">= 29",
            ),
            (
                "latency >= C3, median (ms)",
                stat(latencies(s_ns, [], 48, 108), 50),
                stat(latencies(s_au, [], 48, 108), 50),
                "<= 30",
            ),
        ]
        table("== Salamander Grand (real Yamaha C5, 30 notes) ==", rows)
        wrong = [(r["file"], r["found"]) for r in s_ns if r["found"] != r["midi"]]
        print(f"notesight misses: {wrong}")
    if "annotated" in ns:
        rows = [
            (
                f"{name} F1",
                ns["annotated"][name]["f1"],
                au["annotated"][name]["f1"],
                "(polyphonic; informational)",
            )
            for name in ns["annotated"]
        ]
        table(
            "== real annotated performances (polyphonic; not what the monophonic core is for) ==",
            rows,
            "{:.3f}",
        )
    table(
        "== speed: x real time, one process, CPU time ==",
        [("x real time", timer.speed("notesight"), timer.speed("aubio"), ">= 150")],
    )
    print(f"(audio per system: {timer.audio_s['notesight']:.0f} s)")


def failing_keys(results: dict) -> dict:
    return {
        label: [(r["velocity"], r["midi"], r["found"]) for r in rows if r["found"] != r["midi"]]
        for label, rows in results["notesight"].get("keys", {}).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 5th key, 3 melodies")
    parser.add_argument("--pianos", default="FluidR3_GM,MuseScore_General")
    args = parser.parse_args(argv)
    pianos = args.pianos.split(",")
    keys = list(range(21, 109, 5)) if args.quick else list(range(21, 109))
    timer, results = Timer(), {}
    isolated_keys(timer, pianos, keys, results)
    melodies(timer, pianos, 3 if args.quick else 10, results)
    salamander(timer, results)
    annotated(timer, results)
    report(results, timer, pianos)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "notes.json").write_text(
        json.dumps({"results": results, "failing": failing_keys(results)})
    )
    print(f"\nraw results: {OUT / 'notes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
