"""The alert streaming rule (hop, n of m, peak, threshold) on development audio.

    .venv/bin/python bench/alerts_dev.py [--model PATH] [--out bench/out] [--quick]
        [--rule hop_s=0.25,n=3,m=4,peak=0.9,threshold=0.5 ...]

How `[alerts]` hop_s, n, m, peak and the thresholds were chosen (models/alerts.md, "Choosing
the streaming rule"), without the benchmark's held-out audio: the model scores development
audio once, a window every 0.05 s, and each rule is replayed on those scores through the
daemon's own `AlertConfirmer` (a hop that is a multiple of 0.05 s takes every k-th window:
the windows `AlertStream` would classify at that hop, bit for bit).

Development audio is neither training windows nor benchmark audio:

- false alerts: `--minutes` (30) mixed like the benchmark's false-alert stream
  (`bench/alerts.false_alert_stream`) from new pieces on the training soundfonts (seeds
  600000+, GM programs 0, 1, 3), note-generator clips (seeds 800000+) and espeak-ng training
  voices with new utterances (seed 177); and piano alone on a GM program training never used,
  2 (electric grand), on the training soundfonts (seeds 650000+): a stand-in for a piano the
  model has not heard; and `VOICES_MINUTES` (10) of speech alone and over the development
  pianos in espeak-ng voices neither training nor the benchmark uses
  (`alert_data.DEV_VOICES`, seed 277): a stand-in for voices the model has not heard.
- events: the benchmark's event protocol (`bench/alerts.segments`, `event_stream`, `judge`),
  with the development pianos as the bed, on the training split's real recordings (heard in
  training as crops: recall is optimistic, the timing is what matters) and synthesized alerts
  from seed 555 (training uses 1, the benchmark 999).

Prints one row per rule: false alerts on the dev stream, on the unseen timbre (doorbell), in
the unseen voices, latency median / p90 of detected events, the share detected within 1.5 s,
recall alone / with piano; then per-class recall for the default rule. Writes <out>/alerts_dev.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from notesight.device.classifier import AlertModel, model_path
from notesight.device.config import Settings
from notesight.dsp.alerts import ALERT_CLASSES, CLASSES, AlertConfirmer, AlertRule
from notesight.dsp.augment import add_reverb, pink_noise
from notesight.dsp.events import Alert
from notesight.dsp.features import SAMPLE_RATE, WINDOW, log_mel
from notesight.models import alert_data as data
from notesight.models.train_alerts import DEFAULT_CACHE

SR = SAMPLE_RATE
GRID = 800  # samples between scored windows: 0.05 s, so hops of 0.05 s multiples replay exactly
DEV_PIECES, DEV_PIECE_SEED = 8, 600_000  # per training soundfont, programs 0, 1, 3
DEV_CLIPS, DEV_CLIP_SEED = 4, 800_000  # note-generator clips per training soundfont
DEV_SPEECH, DEV_SPEECH_SEED = 120, 177
VOICES, VOICES_SEED, VOICES_MINUTES = 60, 277, 10.0
TIMBRE_PIECES, TIMBRE_SEED, TIMBRE_PROGRAM = 8, 650_000, 2
SYNTH_EVENTS, SYNTH_SEED = 10, 555


def _load_bench():
    # bench/ is a folder of scripts, not a package: load bench/alerts.py itself
    name = "notesight_bench_alerts"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("alerts.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


# -- scoring and replay ---------------------------------------------------------------------
def grid_scores(model: AlertModel, audio: np.ndarray) -> np.ndarray:
    """Probabilities of the 1 s windows ending at GRID, 2 GRID, ... samples (zeros before the
    audio, as a stream that just started): (windows, classes)."""
    padded = np.concatenate([np.zeros(WINDOW, np.float32), np.asarray(audio, np.float32)])
    ends = range(GRID, len(audio) + 1, GRID)
    rows = [model.predict(log_mel(padded[end : end + WINDOW])) for end in ends]
    return np.array(rows, np.float32).reshape(-1, len(CLASSES))


def replay(
    scores: np.ndarray, hop_s: float, rules: dict[str, AlertRule], timeout_s: float = 30.0
) -> list[Alert]:
    """The alerts raised (active ones) when a stream classifying every `hop_s` sees these
    grid scores: every k-th window through an `AlertConfirmer`, at the same stream times."""
    hop = round(hop_s * SR)
    if hop <= 0 or hop % GRID or abs(hop - hop_s * SR) > 1e-6:
        raise ValueError(f"hop_s must be a multiple of {GRID / SR:g} s, got {hop_s}")
    step = hop // GRID
    confirmer = AlertConfirmer(CLASSES, rules, timeout_s)
    raised = []
    for i, probabilities in enumerate(scores[step - 1 :: step]):
        stream_s = (i + 1) * hop / SR  # as AlertStream counts it: samples so far
        raised += [a for a in confirmer.feed(probabilities, stream_s) if a.active]
    return raised


@dataclass(frozen=True)
class StreamRule:
    """One row of the table: a hop and one AlertRule for every alert class (`thresholds`
    per class, or `threshold` for all)."""

    name: str
    hop_s: float
    n: int
    m: int
    peak: float = 0.0
    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)
    cooldown_s: float = 10.0
    timeout_s: float = 30.0

    def rules(self) -> dict[str, AlertRule]:
        return {
            label: AlertRule(
                self.thresholds.get(label, self.threshold),
                self.n,
                self.m,
                self.cooldown_s,
                self.peak,
            )
            for label in ALERT_CLASSES
        }


def default_rule() -> StreamRule:
    """The shipped [alerts] defaults."""
    alerts = Settings().alerts
    return StreamRule(
        f"default: hop {alerts.hop_s:g}, {alerts.n} of {alerts.m}, peak {alerts.peak:g}",
        alerts.hop_s,
        alerts.n,
        alerts.m,
        alerts.peak,
        thresholds=dict(alerts.thresholds),
        cooldown_s=alerts.cooldown_s,
        timeout_s=alerts.timeout_s,
    )


# The rules of the card's table, the default (from the config) among them.
RULES = (
    StreamRule("hop 0.5, 2 of 3 (old)", 0.5, 2, 3),
    StreamRule("hop 0.25, 3 of 3", 0.25, 3, 3),
    StreamRule("hop 0.25, 3 of 4", 0.25, 3, 4),
    StreamRule("hop 0.25, 4 of 6", 0.25, 4, 6),
    StreamRule("hop 0.25, 3 of 3, thresholds 0.7", 0.25, 3, 3, threshold=0.7),
    StreamRule("hop 0.25, 3 of 4, peak 0.95", 0.25, 3, 4, peak=0.95),
    StreamRule("hop 0.1, 7 of 7", 0.1, 7, 7),
)


def parse_rule(text: str) -> StreamRule:
    """`hop_s=0.25,n=3,m=4,peak=0.9,threshold=0.5,doorbell=0.6` (hop_s, n, m required; an
    alert class's name sets its own threshold)."""
    try:
        values = dict(part.split("=", 1) for part in text.split(","))
        rule = StreamRule(
            text,
            float(values.pop("hop_s")),
            int(values.pop("n")),
            int(values.pop("m")),
            float(values.pop("peak", 0.0)),
            float(values.pop("threshold", 0.5)),
            {label: float(values.pop(label)) for label in ALERT_CLASSES if label in values},
        )
    except (KeyError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"bad rule {text!r}: {exc}") from exc
    if values:
        raise argparse.ArgumentTypeError(
            f"bad rule {text!r}: unknown {', '.join(values)}; use hop_s, n, m, peak, threshold "
            f"or an alert class ({', '.join(ALERT_CLASSES)})"
        )
    return rule


# -- development audio ----------------------------------------------------------------------
@dataclass
class DevScores:
    false_stream: np.ndarray  # grid scores of the dev false-alert stream
    false_minutes: float
    timbre: np.ndarray  # grid scores of piano alone on the unseen GM program
    timbre_minutes: float
    voices: np.ndarray  # grid scores of speech in voices neither training nor the bench uses
    voices_minutes: float
    events: list  # (bench Event, condition, sound start s, grid scores)


def dev_pianos(cache: Path) -> list[np.ndarray]:
    pianos = data.rendered_piano(
        data.TRAIN_PIANOS, DEV_PIECES, DEV_PIECE_SEED, cache, programs=(0, 1, 3)
    )
    return pianos + data.varied_piano(data.TRAIN_PIANOS, DEV_CLIPS, DEV_CLIP_SEED, cache)


def timbre_audio(cache: Path, pieces: int) -> np.ndarray:
    """Piano alone on GM program 2 of the training soundfonts, new pieces, in a room."""
    parts = data.rendered_piano(
        data.TRAIN_PIANOS, pieces, TIMBRE_SEED, cache, programs=(TIMBRE_PROGRAM,)
    )
    rng = np.random.default_rng(9)
    audio = np.concatenate([data.set_level(p, float(rng.uniform(-30, -12))) for p in parts])
    audio = add_reverb(audio.astype(np.float32), SR, rt60_s=0.4, wet=0.5, rng=rng)
    return (audio + pink_noise(len(audio), rng) * 10 ** (-70 / 20)).astype(np.float32)


def voices_audio(pianos: list[np.ndarray], minutes: float) -> np.ndarray:
    """Speech alone and over the development pianos, half and half, in voices neither training
    nor the benchmark uses; mixed as the benchmark's false-alert stream."""
    speech = [s.audio for s in data.speech_sources(VOICES, "dev", VOICES_SEED)]
    audio, _ = bench.false_alert_stream(pianos, speech, minutes, shares=(0.0, 0.5, 0.5))
    return audio


def dev_events(every: int = 1) -> list:
    sources = [
        s
        for s in data.real_sources(data.SHARED_DATA / "sounds")
        if s.split == "train" and s.label in ALERT_CLASSES
    ]
    sources += data.synth_sources(SYNTH_EVENTS, "dev", SYNTH_SEED)
    return [e for s in sources for e in bench.segments(s)][::every]


def score_dev(model: AlertModel, cache: Path, minutes: float, quick: bool) -> DevScores:
    started = time.monotonic()
    pianos = dev_pianos(cache)
    speech = [s.audio for s in data.speech_sources(DEV_SPEECH, "train", DEV_SPEECH_SEED)]
    stream, _ = bench.false_alert_stream(pianos, speech, minutes)
    false_stream = grid_scores(model, stream)
    timbre = timbre_audio(cache, 3 if quick else TIMBRE_PIECES)
    timbre_scores = grid_scores(model, timbre)
    voices = voices_audio(pianos, VOICES_MINUTES / 3 if quick else VOICES_MINUTES)
    voices_scores = grid_scores(model, voices)
    print(f"false-alert audio scored ({time.monotonic() - started:.0f} s)", flush=True)
    events = []
    for event in dev_events(3 if quick else 1):
        for condition in ("alone", "piano"):
            audio, start_s = bench.event_stream(event, condition, pianos)
            events.append((event, condition, start_s, grid_scores(model, audio)))
    print(f"{len(events) // 2} events scored ({time.monotonic() - started:.0f} s)", flush=True)
    return DevScores(
        false_stream,
        len(stream) / SR / 60,
        timbre_scores,
        len(timbre) / SR / 60,
        voices_scores,
        len(voices) / SR / 60,
        events,
    )


# -- evaluation -----------------------------------------------------------------------------
@dataclass
class RuleResult:
    rule: StreamRule
    false_alerts: list[Alert]
    timbre_alerts: list[Alert]
    voices_alerts: list[Alert]
    outcomes: list  # bench Outcome per (event, condition)

    @property
    def latencies(self) -> list[float]:
        return [o.latency_s for o in self.outcomes if o.latency_s is not None]

    def recall(self, condition: str, label: str | None = None) -> float:
        chosen = [
            o.detected
            for o in self.outcomes
            if o.condition == condition and (label is None or o.label == label)
        ]
        return float(np.mean(chosen)) if chosen else float("nan")


def evaluate(scores: DevScores, rule: StreamRule) -> RuleResult:
    rules = rule.rules()
    outcomes = [
        bench.judge(event, condition, replay(s, rule.hop_s, rules, rule.timeout_s), start_s)
        for event, condition, start_s, s in scores.events
    ]
    return RuleResult(
        rule,
        replay(scores.false_stream, rule.hop_s, rules, rule.timeout_s),
        replay(scores.timbre, rule.hop_s, rules, rule.timeout_s),
        replay(scores.voices, rule.hop_s, rules, rule.timeout_s),
        outcomes,
    )


def table_row(result: RuleResult) -> str:
    lat = result.latencies
    doorbell = sum(a.label == "doorbell" for a in result.timbre_alerts)
    median = f"{np.median(lat):.2f} / {np.percentile(lat, 90):.2f} s" if lat else "n/a"
    within = f"{np.mean([x <= 1.5 for x in lat]):.2f}" if lat else "n/a"
    return (
        f"| {result.rule.name} | {len(result.false_alerts)} | "
        f"{len(result.timbre_alerts)} ({doorbell}) | {len(result.voices_alerts)} | "
        f"{median} | {within} | "
        f"{result.recall('alone'):.3f} / {result.recall('piano'):.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a .tflite model (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--minutes", type=float, default=30.0, help="dev false-alert audio")
    parser.add_argument(
        "--quick", action="store_true", help="a third of the audio: a smoke run, not the card's"
    )
    parser.add_argument(
        "--rule", type=parse_rule, action="append", default=[], help="another rule to replay"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="piano renders")
    args = parser.parse_args(argv)
    if not (data.SHARED_DATA / "sounds").is_dir():
        print(f"bench/alerts_dev.py: {data.SHARED_DATA / 'sounds'} not found")
        return 1
    model = AlertModel(args.model or model_path(Settings().alerts.model))
    minutes = args.minutes / 3 if args.quick else args.minutes
    started = time.monotonic()
    scores = score_dev(model, args.cache, minutes, args.quick)
    default_row = default_rule()
    rules = [RULES[0], *RULES[1:3], default_row, *RULES[3:], *args.rule]
    results = [evaluate(scores, rule) for rule in rules]

    real = sum(e.name.split("/")[0] != "synth" for e, c, _, _ in scores.events if c == "alone")
    print(f"\nmodel {model.path}; {len(scores.events) // 2} dev events ({real} real)")
    print(
        f"| rule | false, {scores.false_minutes:.1f} min dev | "
        f"false, {scores.timbre_minutes:.1f} min unseen timbre (doorbell) | "
        f"false, {scores.voices_minutes:.1f} min unseen voices | "
        "latency median / p90 | within 1.5 s | recall alone / with piano |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(table_row(result))

    default = next(r for r in results if r.rule is default_row)
    print(f"\nper class, {default.rule.name}: events | recall alone | with piano")
    for label in ALERT_CLASSES:
        count = sum(o.label == label and o.condition == "alone" for o in default.outcomes)
        if count:
            alone, piano = default.recall("alone", label), default.recall("piano", label)
            print(f"{label:<14} | {count:>3} | {alone:.2f} | {piano:.2f}")
    by_class = dict(Counter(alert.label for alert in default.false_alerts))
    print(f"false alerts by class on the dev stream: {by_class or 'none'}")
    in_voices = dict(Counter(alert.label for alert in default.voices_alerts))
    print(f"false alerts by class in the unseen voices: {in_voices or 'none'}")
    print(f"(ran {time.monotonic() - started:.0f} s)")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": str(model.path),
        "quick": args.quick,
        "rules": [
            {
                "rule": r.rule.name,
                "false_alerts": [(a.stream_s, a.label, a.confidence) for a in r.false_alerts],
                "timbre_alerts": [(a.stream_s, a.label, a.confidence) for a in r.timbre_alerts],
                "voices_alerts": [(a.stream_s, a.label, a.confidence) for a in r.voices_alerts],
                "outcomes": [o.__dict__ for o in r.outcomes],
            }
            for r in results
        ],
    }
    (args.out / "alerts_dev.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
