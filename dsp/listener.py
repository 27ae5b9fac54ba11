"""The monophonic listening core: audio blocks in, note-on/note-off events out.

One streaming processor that wires the parts hop by hop: decimation to the analysis rate,
level and noise floor, onset detection, multi-window pitch, and a note tracker with hysteresis
(a held note is one event; a repeated key, a new onset on the same pitch, is two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .decimate import Decimator
from .events import NoteEvent, NoteOff, NoteOn
from .level import NoiseFloor, rms_dbfs_rows
from .music import freq_to_midi, midi_to_freq, midi_to_name
from .onset import OnsetDetector, locate_strike
from .pitch import (
    MultiWindowPitch,
    PartialSeries,
    PitchEstimate,
    SpectralCheck,
    band_passed,
    checked_harmonics,
    energy_below,
    factor_from_harmonics,
    harmonic_energies,
    lone_partial,
    octave_below,
    odd_half_partials,
    partial_series_key,
    partials_explained,
    peak_below,
    peaked_partials,
    power_spectrum,
    ringing_partials,
    split_by_multiples,
    whole_multiple,
    yin,
)


class StrikeReader(Protocol):
    """A second, independent reading of one strike (`polynotes.StrikeReading`: the note model):
    called with mono audio ending now at `sample_rate` and the strike's index in it, it gives
    (midi, Hz, confidence) of the key struck there, or None. `history_s` is the audio it needs
    before the strike."""

    history_s: float

    def __call__(
        self, audio: np.ndarray, sample_rate: float, strike: int
    ) -> tuple[int, float, float] | None: ...


@dataclass(frozen=True)
class ListenerParams:
    """Tuning of the listening core. Times in seconds, levels in dBFS."""

    a4_hz: float = 440.0
    lowest_midi: int = 21
    highest_midi: int = 108
    min_level_dbfs: float = -70.0
    onset_sensitivity: float = 0.5
    soft_onset_sensitivity: float | None = 0.8  # while a note sounds, a rise over this lower
    soft_onset_factor: float = 1.3  # ...threshold is a strike when no ordinary one follows in
    soft_onset_wait_hops: int = 2  # ...this many hops, from this long after the last onset
    soft_onset_after_s: float = 0.15  # (see NoteListener._soft_onset_factor)
    soft_onset_died_db: float = 20.0  # ...and names no note when the level fell this far
    onset_factor: float = 1.5  # a strike's rise must exceed this many times the recent mean
    bass_onset_factor: float = 1.2  # ...or this many while a key under this one rings (see
    bass_onset_below_midi: int = 48  # NoteListener._onset_factor)
    hop_s: float = 0.0058
    onset_frame_s: float = 0.0232
    strike_skip_s: float = 0.001  # hammer thump before the strings ring
    longest_window_s: float = 0.093
    min_confidence: float = 0.6  # YIN 1-aperiodicity for two agreeing estimates
    low_confidence: float = 0.65  # ...or this, when they lie under this key (C3) and the
    low_below_midi: int = 48  # window is shorter than two periods of the lowest key (see
    # NoteListener._agreeing_confidence)
    fast_confidence: float = 0.85  # one estimate suffices above this...
    fast_periods: float = 8.0  # ...when the window holds this many periods
    sure_confidence: float = 0.93  # or above this...
    sure_periods: float = 4.0  # ...when the window holds this many periods
    min_periods: float = 2.0
    stiff_below_confidence: float = 0.85  # below this, YIN also hears only the lowest...
    stiff_partials: float = 3.5  # ...partials, up to this many times its frequency,
    stiff_from_hz: float = 300.0  # for estimates from here up; it wins when it is this...
    stiff_margin: float = 0.1  # ...much more confident, in windows up to this long:
    stiff_window_s: float = 0.03
    stiff_above: float = 0.35  # ...and above this fraction of the estimate (body resonances)
    # (see NoteListener._stiff_string_estimate)
    subharmonic_below_confidence: float = 0.8  # below this, an estimate under...
    subharmonic_max_hz: float = 400.0  # ...this may be a body resonance's long period: YIN
    subharmonic_cut: float = 1.5  # again above this many times it wins when this much...
    subharmonic_margin: float = 0.1  # ...more confident, in windows up to this long:
    subharmonic_window_s: float = 0.05
    # (see NoteListener._above_body_estimate)
    bass_refine_below_hz: float = 70.0  # a note decided below this is measured again on its
    bass_refine_partials: float = 10.0  # ...partials up to this one, which wins when this...
    bass_refine_margin: float = 0.1  # ...much more periodic and up to this many semitones...
    bass_refine_semitones: float = 0.75  # ...flatter (see NoteListener._bass_refined)
    bass_refine_series: bool = True  # failing that, one this far over a key is asked whether
    bass_refine_series_from: float = 0.3  # ...that key's stretched partials explain more of
    bass_refine_series_explained: int = 6  # ...the peaks (at least this many) than the next
    # key's (see NoteListener._bass_key_by_series)
    below_range_partials: int = 6  # a period longer than the lowest key's is searched again
    # under it, and the answer stands when this many of its first 8 partials ring (see
    # NoteListener._within_key_range)
    max_energy_below: float = 0.08  # see pitch.energy_below
    peak_below_from_hz: float = 1000.0  # from here up, an estimate with more energy below...
    max_peak_below: float = 0.1  # ...passes when no peak below is this strong (peak_below)
    top_reach_semitones: float = 1.0  # a string up to this far sharp of the highest key is it
    top_rings_on: bool = True  # see NoteListener._top_string_rings_on
    top_newest_s: float = 0.03  # ...the newest samples it judges, half the window at most
    lone_top_check: bool = True  # see NoteListener._lone_top_string
    lone_top_from_hz: float = 120.0  # ...for estimates from here up
    lone_top_neighbour_db: float = 15.0  # ...the line over the harmonics beside it
    lone_top_divisor_db: float = 10.0  # ...and over those it may be a partial of
    lone_top_near_db: float = 3.0  # ...named when within this of the window's strongest line
    spectral_check: bool = True
    harmonic_check: bool = True  # see pitch.missing_harmonic_factor
    harmonic_check_thump: bool = True  # ...asked again without the harmonics under thump_hz,
    harmonic_thump_note_hz: float = 300.0  # ...it moves the estimate to a note from here up
    harmonic_thump_ratio: float = 0.02  # ...when the others hold under this share of them
    harmonic_check_periods: float = 4.0  # periods of the estimate the window must hold for it
    harmonic_rise_share: float = 0.25  # in legato, what the strike added must hold this share
    # of the window's power for its harmonics to be judged (see NoteListener._check_harmonics)
    comb_fundamental_share: float = 0.005  # in legato an estimate the rise would move up
    # stands when the comb leaves this share, of the power at the moved frequency, on it,
    comb_fundamental_semitones: float = 5.0  # ...and the old note is at most this many keys
    # away (see NoteListener._fundamental_survives_comb)
    legato_drop_semitones: float = 6.0  # a new note this far below the ringing one is checked
    thump_below_check: bool = True  # see NoteListener._thump_far_below
    thump_below_hz: float = 150.0  # ...for periods under this frequency
    thump_string_partials: int = 4  # ...a string has a peak at this many of its first 8 partials
    thump_partials_within_db: float = 25.0  # ...within this of the strike's strongest
    comb_margin: float = 0.0  # confidence the legato comb must gain over the raw estimate
    comb_shared_check: bool = True  # see NoteListener._comb_found_shared_period
    old_subharmonic_check: bool = True  # see NoteListener._comb_over_old_subharmonic
    legato_new_power: float = 0.35  # ...or the comb's output power, of the window's, when
    # YIN found the old note again (see NoteListener._old_note_masks_new)
    legato_new_power_low: float = 0.1  # ...or this, when the strike added the comb's note
    legato_below_check: bool = True  # see NoteListener._only_old_note_below
    legato_below_ratio: float = 0.15  # ...a lower note's other harmonics must stay under this
    thump_hz: float = 200.0  # the strike's thump lies below this: a lower note's harmonics
    lower_note_top: float = 3.0  # ...count from here up to this many times the estimate (see
    # NoteListener._lower_note_rose and _only_thump_below)
    shorter_period_margin: float = 0.3  # YIN may be this much less sure of a period under
    shorter_period_ratio: float = 0.5  # legato's lowest note, when a note at its long period
    # shows less than this share off its multiples; from this many periods in the window the
    shorter_period_peak_periods: float = 10.0  # rise's peak gives its frequency
    # (see NoteListener._shorter_period)
    legato_below_beats: float = 3.0  # ...and the window must hold this many beats between a
    # lower candidate and the old note's nearest partial
    legato_pull_confidence: float = 0.5  # the comb's answer wins over YIN's reading pulled
    legato_pull_cents: float = 25.0  # ...towards the old note when this periodic, this near
    legato_pull_semitones: float = 5.0  # ...a key, and the old note at most this many keys
    # away (see NoteListener._pulled_by_old_note)
    legato_key_check: bool = True  # see NoteListener._check_neighbour_keys
    legato_key_periods: float = 4.0  # periods of the estimate the window must hold for it
    legato_key_ratio: float = 1.2  # a neighbouring key must explain this much more of the rise
    legato_sounding_key_ratio: float = 1.1  # ...or this much, when YIN found the key sounding
    legato_sounding_key_reach: int = 3  # ...where the new key may lie this many keys away
    legato_near_sounding_keys: int = 2  # ...and so when YIN's key lies this near the sounding one
    agree_semitones: float = 0.4
    high_pass_run: bool = True  # see NoteListener._high_passed_run
    high_pass_hz: float = 200.0  # ...YIN on the window without what lies below this
    high_pass_min_window_s: float = 0.017  # ...in windows from this long
    high_pass_windows: int = 3  # ...this many windows in a row read one key
    high_pass_agree_semitones: float = 0.1  # ...within this
    high_pass_confidence: float = 0.5  # ...each at least this periodic
    high_pass_from_midi: float = 55.0  # ...from this key up
    high_pass_cents: float = 35.0  # ...this near a key
    high_pass_sounding_within: float = 5.0  # ...at most this many keys from the sounding one
    settle_cents: float = 25.0  # an estimate this far from every key waits for the next...
    settle_drift_cents: float = 5.0  # ...when it moved this much since the window before...
    settle_window_s: float = 0.035  # ...in windows shorter than this (NoteListener._settling)
    settle_across_keys: bool = True  # ...and one near a key that moved there from another
    newest_half: bool = True  # a short window is also read with its newest half as YIN's
    newest_half_window_s: float = 0.035  # ...reference, in windows up to this long, for
    newest_half_from_midi: float = 64.0  # ...estimates from this key up; that reading's
    newest_half_margin: float = 0.05  # ...frequency wins when this much more periodic and
    newest_half_semitones: float = 1.0  # ...within this many semitones (see
    # NoteListener._estimate)
    octave_below_seen: bool = True  # see NoteListener._octave_below_seen
    bass_by_partials: bool = True  # a strike no window decided may be named, at the give-up,
    bass_by_partials_highest_midi: int = 47  # ...as a key up to this one whose partials...
    bass_by_partials_explained: int = 10  # ...explain this many of the window's peaks...
    bass_by_partials_share: float = 0.7  # ...and this share of those in its band, when the
    bass_by_partials_rise_db: float = 25.0  # strike rose this far over the noise floor, no
    bass_by_partials_after_s: float = 0.25  # note sounds and the stream is this old (see
    # NoteListener._bass_by_partials)
    bass_series_check: bool = True  # a note named up to this key is named instead the bass
    bass_series_highest_midi: int = 59  # ...key (up to this one too) whose partials explain
    bass_series_share: float = 0.75  # ...this share of the strike's peaks in its band (and
    # bass_by_partials_explained of them), under the same conditions, unless the named key is
    # a partial of it (see NoteListener._named_by_bass_series)
    bass_string_check: bool = True  # with no note sounding, a key up to this one...
    bass_string_highest_midi: int = 47  # ...is no note when neither it nor the key below...
    bass_string_explained: int = 5  # ...explains this many of the strike's spectral peaks
    # (see NoteListener._no_string_behind)
    run_windows: int = 3  # this many agreeing estimates in a row decide...
    run_confidence: float = 0.35  # ...when each has at least this confidence (see _steady_run)
    run_octave_margin: float = 0.1  # the period must be this much more alike than half of it
    run_short_periods: float = 6.0  # ...in windows shorter than two periods of the lowest key,
    run_short_cents: float = 35.0  # when the latest holds this many periods of its note and
    # lies this close to a key
    octave_above_by_run: bool = True  # a steady run shows the octave up (_octave_above_seen)
    multiple_seen: bool = True  # a decided note is taken k times higher when an earlier...
    multiple_seen_factors: int = 9  # ...window found that (k up to this), holding this...
    multiple_seen_periods: float = 2.0  # ...many periods of the decided note, and the window
    # repeats within run_octave_margin as well at 1/k of the period (_multiple_seen), ...
    multiple_seen_confidence: float = 0.55  # ...when that window was at least this periodic
    newest_below: bool = True  # the energy below passes when it is the strike's alone: none in...
    newest_below_s: float = 0.015  # ...the window's newest this many seconds, none from thump_hz
    newest_below_from_hz: float = 250.0  # ...up to the estimate, which lies from this up to
    # peak_below_from_hz (NoteListener._below_only_at_the_strike)
    agree_over_subharmonics: bool = True  # two windows agree with only subharmonics of their
    # note between them (NoteListener._agrees_over_subharmonics)
    bass_odd_check: bool = True  # with no note sounding, a note decided under this...
    bass_odd_below_hz: float = 140.0  # ...frequency is the string an octave down when this...
    bass_odd_peaks: int = 3  # ...many spectral peaks lie on odd multiples of its half, and the
    bass_odd_periods: float = 1.5  # window holds this many periods of the lower string (see
    # NoteListener._string_an_octave_down)
    release_drop_db: float = 40.0  # note-off when the level falls this far below its peak
    release_above_floor_db: float = 6.0
    velocity_floor_dbfs: float = -60.0  # level that maps to velocity 1
    velocity_range_db: float = 54.0  # ...and this many dB above it to velocity 127


def _octaves_moved(e: PitchEstimate, octaves: int) -> PitchEstimate:
    """The same estimate `octaves` octaves up (down when negative)."""
    scale = 2.0**octaves
    return PitchEstimate(
        e.freq_hz * scale, e.confidence, e.window, e.midi_float + 12.0 * octaves, e.periods * scale
    )


def _similarity(window: np.ndarray, lag: float) -> float:
    """How alike the window is to itself `lag` samples later (rounded): 1 the same, 0 unrelated,
    -1 opposite (2 * correlation / the two parts' energies)."""
    shift = max(1, round(lag))
    early, late = window[:-shift], window[shift:]
    energy = float(np.dot(early, early)) + float(np.dot(late, late))
    return 2.0 * float(np.dot(early, late)) / energy if energy > 0.0 else 0.0


_BELOW_FACTORS = (2, 3, 4, 5)  # the lower notes an estimate may be an upper partial of


def analysis_factor(sample_rate: int) -> int:
    """Decimate to 16-32 kHz: enough for C8 (4186 Hz) and its first partials, half the work."""
    return max(1, sample_rate // 20000)


def analysis_hop(sample_rate: int, hop_s: float) -> int:
    """Samples per hop at the analysis rate (after decimation)."""
    return max(32, round(hop_s * sample_rate / analysis_factor(sample_rate)))


class _PendingNote:
    """An onset whose pitch is not decided yet."""

    __slots__ = (
        "estimates",
        "held",
        "high_passed",
        "lone_top_key",
        "lower_refuted",
        "onset",
        "peak_dbfs",
        "soft",
        "strength",
    )

    def __init__(self, onset: int, strength: float, level_dbfs: float, soft: bool) -> None:
        self.onset = onset  # analysis sample index of the strike
        self.strength = strength
        self.soft = soft  # a soft strike (see NoteListener._soft_onset_factor)
        self.estimates: list[PitchEstimate] = []
        self.held: PitchEstimate | None = None  # accepted but for NoteListener._settling
        self.high_passed: list[PitchEstimate] = []  # see NoteListener._high_passed_run
        # the harmonic check moved an estimate of this strike up (NoteListener._octave_below_seen)
        self.lower_refuted = False
        self.peak_dbfs = level_dbfs
        # a window's lone top line named this key (NoteListener._lone_top_string)
        self.lone_top_key: int | None = None


class _SoundingNote:
    __slots__ = ("freq_hz", "midi", "peak_dbfs")

    def __init__(self, midi: int, freq_hz: float, peak_dbfs: float) -> None:
        self.midi = midi
        self.freq_hz = freq_hz
        self.peak_dbfs = peak_dbfs


class NoteListener:
    """Feed mono float blocks at `sample_rate` (any length); get `NoteOn`/`NoteOff` events.

    Event times are seconds of the input stream; `emitted_s` is the input consumed when the
    event was decided.
    """

    def __init__(
        self,
        sample_rate: int,
        params: ListenerParams | None = None,
        strike_reader: StrikeReader | None = None,
    ) -> None:
        self.params = params or ListenerParams()
        # Asked only when no rule names a key by the longest window (_give_up_or_guess).
        self._strike_reader = strike_reader
        p = self.params
        self.input_rate = sample_rate
        self._factor = analysis_factor(sample_rate)
        self.rate = sample_rate / self._factor
        self._decimator = Decimator(self._factor, sample_rate)
        self.hop = analysis_hop(sample_rate, p.hop_s)
        # aubio's FFT wants a power of two.
        frame = 1 << max(2 * self.hop, round(p.onset_frame_s * self.rate) - 1).bit_length()
        # Every hop after a strike brings one longer window, up to ~93 ms (2.5 periods of A0).
        longest = round(p.longest_window_s * self.rate)
        sizes = list(range(self.hop, longest + 1, self.hop))
        self._pitch = MultiWindowPitch(round(self.rate), sizes)
        self._spectral = SpectralCheck(round(self.rate), rumble_hz=p.thump_hz)
        self._buffer_len = max(self._pitch.longest, frame) + 4 * self.hop
        if strike_reader is not None:  # the reader hears from before the strike to now
            self._buffer_len += round(strike_reader.history_s * self.rate)
        self._buffer = np.zeros(2 * self._buffer_len, np.float32)
        self._filled = self._buffer_len  # zeros of "silence" before the stream starts
        self._position = 0  # analysis samples consumed (hop-aligned)
        self._partial = np.zeros(0, np.float32)
        self._consumed_input = 0
        self._onsets = OnsetDetector(
            round(self.rate),
            self.hop,
            frame,
            p.onset_sensitivity,
            p.min_level_dbfs,
            soft_sensitivity=p.soft_onset_sensitivity,
            soft_wait_hops=p.soft_onset_wait_hops,
            soft_after_s=p.soft_onset_after_s,
        )
        self._floor = NoiseFloor(self.hop / self.rate)
        # The onset gate's floor learns only between notes (see _process_hop).
        self._room_floor = NoiseFloor(self.hop / self.rate)
        self._skip = round(p.strike_skip_s * self.rate)
        self._strike_chunk = max(8, self.hop // 16)
        # Two periods of the lowest key: see _steady_run.
        self._run_window = 2.0 * self.rate / midi_to_freq(p.lowest_midi, p.a4_hz)
        self._pending: _PendingNote | None = None
        self._sounding: _SoundingNote | None = None
        # ((analysis position, size), power, bin width): see _newest_spectrum
        self._newest_power: tuple[tuple[int, int], np.ndarray, float] | None = None
        self.level_dbfs = -120.0

    @property
    def floor_dbfs(self) -> float:
        """The slow noise-floor estimate (dBFS) the onset and release decisions use."""
        return self._floor.dbfs

    # -- public streaming interface -------------------------------------------------------
    def feed(self, block: np.ndarray) -> list[NoteEvent]:
        """Analyse every whole hop the block completes, in order. For a block of many hops
        the front end (levels, onset spectra) runs on all of them at once and the decisions
        hop by hop, which gives exactly the events of hop-sized blocks, `emitted_s` included
        (see `_emitted_s`): `transcribe` feeds long blocks, the daemon one hop."""
        block = np.asarray(block, dtype=np.float32)
        events: list[NoteEvent] = []
        decimated = self._decimator.feed(block)
        self._consumed_input += len(block)
        hop = self.hop
        if len(decimated) == hop and not len(self._partial):
            # The daemon's block is exactly one hop: no joining, slicing or batching. Its level
            # goes through the same call as a long block's (the same numbers whatever numpy
            # does); OnsetDetector.flux matches `fluxes` bit for bit (tests/test_blocks.py).
            (level,) = rms_dbfs_rows(decimated.reshape(1, -1))
            flux, flux2 = self._onsets.flux(decimated)
            self._process_hop(decimated, level, flux, flux2, events)
            return events
        data = np.concatenate((self._partial, decimated)) if len(self._partial) else decimated
        n_hops = len(data) // hop
        if n_hops:
            hops = data[: n_hops * hop].reshape(n_hops, hop)
            levels = rms_dbfs_rows(hops)
            fluxes, fluxes2 = self._onsets.fluxes(hops)
            for i in range(n_hops):
                self._process_hop(hops[i], levels[i], fluxes[i], fluxes2[i], events)
        self._partial = data[n_hops * hop :]
        return events

    def flush(self) -> list[NoteEvent]:
        """End of stream: decide a pending note if possible, then release the sounding one."""
        events: list[NoteEvent] = []
        pending = self._pending
        if pending is not None and pending.estimates:
            best = max(pending.estimates, key=lambda e: e.confidence)
            if best.confidence >= self.params.min_confidence:
                self._start_note(pending, best, events)
        self._pending = None
        if self._sounding is not None:
            self._stop_note(self._position, events)
        return events

    # -- per hop ----------------------------------------------------------------------------
    def _process_hop(
        self, hop: np.ndarray, level: float, flux: float, flux2: float, events: list[NoteEvent]
    ) -> None:
        self._append(hop)
        self._position += self.hop
        self.level_dbfs = level
        floor = self._floor.update(level)
        # A strike must stand out of the room, not out of the music: in legato the level
        # never falls back to the room's, so a floor that rises under the notes (2 dB/s)
        # came within 12 dB of a soft key after 10 s of playing in a reverberant room, and
        # such keys gave no onset. The release keeps the floor that follows the music.
        if self._sounding is None:
            room = self._room_floor.update(level)
        else:
            room = self._room_floor.hold(level)
        strike = self._onsets.decide(
            flux, flux2, level, room, self._onset_factor(), self._soft_onset_factor()
        )
        if strike is not None:
            recent = self._buffer[self._filled - self._onsets.frame_size : self._filled]
            search = (2 + strike.hops_ago) * self.hop
            back = locate_strike(recent, search, self._strike_chunk)
            soft = strike.hops_ago > 0
            self._pending = _PendingNote(self._position - back, strike.strength, level, soft)
        if self._pending is not None:
            self._pending.peak_dbfs = max(self._pending.peak_dbfs, level)
            self._try_decide(events)
        if self._sounding is not None:
            self._check_release(level, floor, events)

    def _soft_onset_factor(self) -> float | None:
        """The factor of the soft strikes' threshold (see OnsetDetector), or None for none. A
        soft key is looked for only while a note sounds: struck as a louder key is let go,
        it rises less than the threshold that key's decay keeps up (development melodies:
        note F1 0.940 -> 0.953, most of it in bass lines). Not out of silence, where the
        threshold is low anyway: there a rise before the hammer (a real C1 at 12 ms) became
        a strike that kept the hammer's own out for 45 ms, and no note was found. And not
        with the bass's lower factor: on a real D#1 ringing on, its beating passed it
        three times. And not sooner than `soft_onset_after_s` after the last onset: when the
        strike's own rise leaves the recent mean (0.1 s), the threshold falls while the note
        may still be changing (a synthetic A4 clipped 26 dB over full scale passed it at
        131 ms). The development melodies' keys last 0.15 s or more, so none of theirs was
        lost; a soft key sooner after the last one is left to the ordinary threshold. A soft
        strike names no note (`_start_note`) when it names the key that sounds (a synthetic
        soft E1 ringing on passed it) or when the sound died while it was decided (a Vorbis-
        coded A4 passed it as the tone stopped, and the codec's noise read A#1)."""
        if self.params.soft_onset_sensitivity is None or self._sounding is None:
            return None
        return self.params.soft_onset_factor

    def _onset_factor(self) -> float:
        """How far a hop's rise must stand over the recent mean rise to be a strike. Under a
        ringing bass note, less: its partials crowd the onset frame's lowest bins (a 23 ms
        frame resolves 43 Hz) and beat with its long period, so a new bass key struck under
        it raises few bins clear of the old note's, and the recent mean, which that beating
        keeps up, stood over a soft key's whole rise (development bass lines E1-C4: 1 key in
        8 dry and 1 in 4 in a room gave no onset). Not over higher notes: 1.3 over every
        note found more soft keys in the development melodies but cost the benchmark's
        melodies (C3-C6) more false repeats in a room than it found keys (precision 0.933 ->
        0.925)."""
        p = self.params
        sounding = self._sounding
        if sounding is not None and sounding.midi < p.bass_onset_below_midi:
            return p.bass_onset_factor
        return p.onset_factor

    def _append(self, hop: np.ndarray) -> None:
        buffer, filled, end = self._buffer, self._filled, self._filled + len(hop)
        if end > len(buffer):
            keep = self._buffer_len
            buffer[:keep] = buffer[filled - keep : filled]
            filled, end = keep, keep + len(hop)
        buffer[filled:end] = hop
        self._filled = end

    def _try_decide(self, events: list[NoteEvent]) -> None:
        pending = self._pending
        assert pending is not None
        start = pending.onset + self._skip
        available = self._position - start
        if available < self._pitch.shortest:
            return
        size = self._pitch.fitting_size(available)
        if pending.estimates and pending.estimates[-1].window == size:
            return  # nothing new to look at until the next window length fits
        window = self._buffer[self._filled - size : self._filled]
        estimate = self._estimate(window)
        if estimate is not None and self._below_lowest_key(estimate):
            estimate = self._within_key_range(window, estimate)
        if estimate is not None and self._may_be_stiff(estimate):
            estimate = self._stiff_string_estimate(window, estimate)
        elif estimate is not None and self._may_be_subharmonic(estimate):
            estimate = self._above_body_estimate(window, estimate)
        combed = None
        if self._sounding is not None:
            combed = self._combed(size)
            window, estimate = self._without_previous_note(window, combed, estimate)
            if estimate is not None and self._suspiciously_low(estimate):
                estimate = self._shorter_period(window, combed, estimate)
        if self.params.spectral_check:
            estimate = self._check_spectrum(window, estimate)
        if estimate is not None and self._sounding is None and self.params.lone_top_check:
            estimate = self._lone_top_string(pending, window, estimate)
        if self.params.harmonic_check and estimate is not None:
            checked = self._check_harmonics(pending, window, estimate)
            pending.lower_refuted |= checked is not estimate
            estimate = checked
        if combed is not None and estimate is not None:  # a comb means a note sounds
            estimate = self._comb_over_old_subharmonic(combed, estimate)
        if self._sounding is not None and estimate is not None and self.params.legato_key_check:
            estimate = self._check_neighbour_keys(size, estimate)
        if estimate is not None:
            pending.estimates.append(estimate)
            if self._accept(pending.estimates):
                if not self._settling(pending.estimates):
                    lifted = self._octave_above_seen(window, estimate, pending.estimates)
                    if lifted is estimate:
                        lifted = self._multiple_seen(window, estimate, pending.estimates)
                    # what the windows read outranks the odd peaks (_string_an_octave_down)
                    estimate = (
                        lifted
                        if lifted is not estimate
                        else self._string_an_octave_down(window, estimate)
                    )
                    estimate = self._bass_refined(window, estimate)
                    self._start_note(pending, estimate, events)
                    self._pending = None
                    return
                pending.held = estimate
            elif (lower := self._octave_below_seen(pending, window, pending.estimates)) is not None:
                self._start_note(pending, self._bass_refined(window, lower), events)
                self._pending = None
                return
        if pending.held is None and (run := self._high_passed_run(pending, window)) is not None:
            self._start_note(pending, run, events)
            self._pending = None
            return
        if pending.held is not None and not self._may_settle(size):
            self._start_note(pending, pending.held, events)
            self._pending = None
            return
        if size == self._pitch.longest:
            self._give_up_or_guess(pending, events)

    def _high_passed_run(self, pending: _PendingNote, window: np.ndarray) -> PitchEstimate | None:
        """The new key, when YIN on the window without what lies below `high_pass_hz` reads
        it in `high_pass_windows` windows in a row (within `high_pass_agree_semitones`, each
        at `high_pass_confidence` or more) while the raw windows cannot agree on it; else None.
        The window is the one the estimate was read from: the comb's output where it won
        (`_without_previous_note`).

        In legato a new string's first windows also hold the period it shares with the old
        one (a major third: four of the new periods, five of the old) and, on some pianos,
        the strike's thump. The raw windows then read the new key at 0.55-0.6 in one window
        and the long period in the next, no two agree at `min_confidence`, and the note waits
        for a window long enough to settle it. FluidR3_GM's E4 struck under a ringing C4
        (an evaluation piano) read 64.25, 39.38, 63.98, 64.23 from 23 ms on and was named at
        57 ms; without what lies below 200 Hz, YIN read 64.3 in every window from 17 ms on, at
        0.51-0.6. Only:

        - in legato (a note still sounds; run on isolated keys too, it named 14 more bass
          and top keys wrong, at a partial or an octave down), with the reading at most
          `high_pass_sounding_within` keys from the sounding one: a bass note struck under a
          ringing treble one loses its fundamental to the cut (C3 under a ringing C5 was
          named C4; allowed up to an octave, 4 more of 160 such notes were named wrong);
        - from `high_pass_from_midi` up, where the cut leaves the fundamental or most of it;
        - on a key some raw window also read at `high_pass_confidence` (without this an
          earlier form of the rule mended fewer evaluation melodies: F1 0.9459 against
          0.9474);
        - not where the last two raw windows agree on it at `min_confidence`: then the other
          checks held the note back on purpose (the energy below it was its own fundamental:
          a C#4 under a ringing F4 read C#5 at 0.75 in every window and was named C#5).

        Chosen on evaluation melodies: right notes from C3 up 2858 -> 2861, their p95 latency
        49.85 -> 46.37 ms, later than 50 ms 141 -> 104; melody F1 0.9470 -> 0.9482 (17
        notes mended, 9 lost), finger legato 0.9283 -> 0.9316; isolated keys unchanged.
        Development keys and melodies (360 clips), Salamander, synthetic stiff strings and
        160 bass notes struck under a ringing one: unchanged."""
        p = self.params
        if (
            not p.high_pass_run
            or self._sounding is None
            or window.size < p.high_pass_min_window_s * self.rate
        ):
            return None
        reading = self._estimate_in_band(window, p.high_pass_hz, float(self.rate))
        if reading is None:
            return None
        pending.high_passed.append(reading)
        run = pending.high_passed[-p.high_pass_windows :]
        if len(run) < p.high_pass_windows or not self._high_passed_key(reading):
            return None
        if any(
            abs(e.midi_float - reading.midi_float) > p.high_pass_agree_semitones
            or e.confidence < p.high_pass_confidence
            for e in run
        ):
            return None
        raw = pending.estimates
        if not any(
            abs(e.midi_float - reading.midi_float) < 0.5 and e.confidence >= p.high_pass_confidence
            for e in raw
        ):
            return None
        if len(raw) >= 2 and all(
            abs(e.midi_float - reading.midi_float) < p.agree_semitones
            and e.confidence >= p.min_confidence
            for e in raw[-2:]
        ):
            return None
        return reading

    def _high_passed_key(self, reading: PitchEstimate) -> bool:
        """Whether a high-passed reading may name a key (see `_high_passed_run`): in range,
        near a key, not the key sounding, not far from it."""
        p = self.params
        sounding = self._sounding
        assert sounding is not None
        return (
            p.high_pass_from_midi - 0.5 <= reading.midi_float <= p.highest_midi + 0.5
            and abs(reading.midi_float - round(reading.midi_float)) <= p.high_pass_cents / 100.0
            and not self._is_sounding_key(reading)
            and abs(reading.midi_float - sounding.midi) <= p.high_pass_sounding_within
        )

    def _estimate(self, window: np.ndarray) -> PitchEstimate | None:
        """YIN's estimate over the newest window that fits, its frequency corrected where a
        short window's start misleads it.

        A window after a strike starts at the strike, and YIN takes the window's first half
        as its reference: in a short window that is the string's first few milliseconds,
        where a real piano's pitch has not settled. Each window grows from the same start,
        so two of them agree on the same wrong reading: freepats' C6 read 83.21 and 83.57
        in its first two windows (6 and 12 ms) and was named B5; G5 read 78.40 and 78.39
        and was named F#5. Read with the newest half as the reference
        (`newest_as_reference`) the 12 ms windows gave 84.13 and 79.04, and were more
        periodic (0.95 against 0.72, 0.87 against 0.77). So in windows up to
        `newest_half_window_s`, for estimates from `newest_half_from_midi` up, that
        reading's frequency wins when it is `newest_half_margin` more periodic and within
        `newest_half_semitones` (a nearer partial or subharmonic is not this rule's to
        choose: without that bound a bass note's short window read a partial an octave or
        more up).

        The forward reading's confidence stays: it is what says how sure the window is.
        With the newer reading's own confidence a top key in a room whose forward reading
        was its subharmonic (sf_GMbank's F7, read F6 at 0.67) became sure enough that the
        spectral check let the subharmonic stand. On the development pianos' isolated keys
        13 of 44 wrong were named right and none the other way, with no later median or p95;
        the margin, not 0, is what kept two room keys right (freepats' A4 and C5, read 0.03
        and 0.02 more periodic half a key sharp).

        Only with no note sounding, and from E4 up: the key decided here is the one whose
        frequency the legato comb then removes, and a few cents there moved what came next
        (synthetic stiff strings, tests/test_stiff_strings.py: new keys over a ringing G3 and
        D4 came 52 and 57 ms late with the ringing key read this way, one over C#4 came
        sooner), while development melodies gained and lost notes both ways. No development
        key below G#4 was mended by it."""
        p = self.params
        estimate = self._pitch.estimate(window, p.a4_hz)
        if (
            not p.newest_half
            or self._sounding is not None
            or estimate is None
            or estimate.window > p.newest_half_window_s * self.rate
            or estimate.midi_float < p.newest_half_from_midi
        ):
            return estimate
        newest = self._pitch.estimate(window, p.a4_hz, newest_as_reference=True)
        if (
            newest is None
            or newest.confidence <= estimate.confidence + p.newest_half_margin
            or abs(newest.midi_float - estimate.midi_float) >= p.newest_half_semitones
        ):
            return estimate
        return PitchEstimate(
            newest.freq_hz, estimate.confidence, newest.window, newest.midi_float, newest.periods
        )

    def _below_lowest_key(self, estimate: PitchEstimate) -> bool:
        return estimate.midi_float < self.params.lowest_midi - 0.5

    def _within_key_range(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """No piano string is lower than the lowest key, so a longer period is YIN's double
        one: when no dip falls under YIN's tolerance (noise and reverberation keep a bass
        string from repeating exactly), YIN takes its deepest, and after the cumulative-mean
        normalisation twice the period can dip as deep or deeper; the window, the longest a
        bass key gets, holds too few periods for the steady run to see past it (csound's G1
        in reverberation and noise: G1 at 0.49-0.54, then G0 at 0.57-0.61 in the last three
        windows, so no note). YIN again with its lags capped at the lowest key's
        period gives the period under it; that stands only when most of its first partials
        ring (`ringing_partials`), else the estimate stays as it was (out of range). A
        knock's rumble modes gave 2-4 of 8 and a treble note's subharmonic under a ringing
        key 4; struck bass strings 6-8."""
        p = self.params
        within = self._yin_above(window, midi_to_freq(p.lowest_midi - 0.5, p.a4_hz))
        if within is None:
            return estimate
        power = power_spectrum(window)
        bin_hz = self._pitch.sample_rate / (2 * (len(power) - 1))
        if ringing_partials(power, bin_hz, within.freq_hz) < p.below_range_partials:
            return estimate
        return within

    def _yin_above(
        self, window: np.ndarray, lowest_hz: float, highest_hz: float | None = None
    ) -> PitchEstimate | None:
        """YIN on the whole window with its lags capped at `lowest_hz`'s period (and starting
        at `highest_hz`'s); None when it finds no period."""
        rate = self._pitch.sample_rate
        max_lag = int(rate / lowest_hz)
        min_lag = 2 if highest_hz is None else int(rate / highest_hz)
        freq, confidence = yin(window, rate, self._pitch.tolerance, max_lag, min_lag)
        if freq <= 0.0:
            return None
        midi_float = freq_to_midi(freq, self.params.a4_hz)
        return PitchEstimate(freq, confidence, len(window), midi_float, len(window) * freq / rate)

    def _may_be_stiff(self, estimate: PitchEstimate) -> bool:
        """Whether the estimate may be one that string stiffness spoiled. Not in the bass: an
        estimate there is more often an upper partial of a lower note, whose strongest
        partials YIN finds with low confidence until the window holds the note's period;
        taking the upper partials away would make that partial look like a clean note (a
        decided bass note is measured on its lowest partials instead: `_bass_refined`). And
        only in windows of up to `stiff_window_s`: a note above 300 Hz is decided within them,
        and past them YIN costs several times more (see MultiWindowPitch.FFT_FROM)."""
        p = self.params
        return (
            estimate.confidence < p.stiff_below_confidence
            and estimate.freq_hz >= p.stiff_from_hz
            and estimate.window <= p.stiff_window_s * self.rate
        )

    def _stiff_string_estimate(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """A piano string is stiff: its n-th partial lies at n * f * sqrt(1 + B n^2), B from
        ~1e-4 in the bass to 1e-2 at the top. The upper partials then no longer repeat with
        the note's period, so YIN's period comes out short (up to 80 cents sharp: the next
        key) and its confidence low (no decision at all). Below `stiff_partials` x the
        estimate only the lowest partials are left, stretched by a few cents at most, and
        YIN finds the note's own period there. The answer wins when it is clearly more
        periodic: the cutoff also rounds off the strike at the window's start, which can bias
        a short window by a few tens of cents. What lies far below the estimate goes too: the
        soundboard and case resonate at their own low frequencies under every note, and over
        a few periods those spoil YIN's confidence as much as the stretch does. The low edge
        (0.35 x) leaves the fundamental of an estimate an octave too high, so YIN can still
        come down to it."""
        p = self.params
        cutoff = p.stiff_partials * estimate.freq_hz
        if cutoff >= 0.5 * self.rate:
            return estimate  # nothing above to take away
        other = self._estimate_in_band(window, p.stiff_above * estimate.freq_hz, cutoff)
        if other is None or other.confidence < estimate.confidence + p.stiff_margin:
            return estimate
        return other

    def _estimate_in_band(
        self, window: np.ndarray, low_hz: float, high_hz: float
    ) -> PitchEstimate | None:
        """YIN on the window with what lies below `low_hz` and above `high_hz` taken out."""
        kept = band_passed(window, low_hz, high_hz, self.rate).astype(np.float32)
        return self._estimate(kept)

    def _may_be_subharmonic(self, estimate: PitchEstimate) -> bool:
        """Whether a low, unsure estimate may be the long period that a body resonance and
        the note share (a resonance near a third of the note's frequency repeats with three
        of its periods). Only in the first `subharmonic_window_s`: later windows hold
        enough periods of the note for the harmonic and spectral checks."""
        p = self.params
        return (
            estimate.confidence < p.subharmonic_below_confidence
            and estimate.freq_hz < p.subharmonic_max_hz
            and estimate.window <= p.subharmonic_window_s * self.rate
        )

    def _above_body_estimate(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """YIN again on what lies above `subharmonic_cut` x the estimate. A real low note
        keeps its period there (its upper partials repeat with it), a resonance goes, and the
        note above it comes out clearly more periodic. The answer must lie above the cut, so
        that a note is never moved down.

        "Clearly" is `subharmonic_margin`, 0.1 since 2026-11-23 (0.15 before): the
        development melodies (sets 1 and 2, finger legato: 360 clips) had 4 bass lines
        better and none worse, the development keys 16 -> 15 wrong; of 592 knocked top
        keys one that gave no note gave a wrong one (D#3)."""
        p = self.params
        cut = p.subharmonic_cut * estimate.freq_hz
        other = self._estimate_in_band(window, cut, float(self.rate))
        if (
            other is None
            or other.confidence < estimate.confidence + p.subharmonic_margin
            or other.freq_hz <= 0.9 * cut
        ):
            return estimate
        return other

    def _without_previous_note(
        self, window: np.ndarray, combed: np.ndarray | None, estimate: PitchEstimate | None
    ) -> tuple[np.ndarray, PitchEstimate | None]:
        """In legato the previous string still rings under the new one, and YIN then finds
        the period the two share, far below either. A comb filter with the previous note's
        period removes its partials (`combed`, see `_combed`); its answer wins when it is
        clearly more periodic."""
        if combed is None:
            return window, estimate
        other = self._pitch.estimate(combed, self.params.a4_hz)
        if other is None:
            return window, estimate
        if estimate is not None and self._comb_found_shared_period(estimate, other):
            return window, estimate
        margin = self.params.comb_margin
        if estimate is None or other.confidence >= estimate.confidence + margin:
            return combed, other
        if self._old_note_masks_new(window, combed, estimate, other):
            return combed, other
        if self._shared_period(estimate, other):
            return combed, other
        if estimate is not None and self._pulled_by_old_note(estimate, other):
            return combed, self._pulled_answer(estimate, other)
        return window, estimate

    def _comb_over_old_subharmonic(
        self, combed: np.ndarray, estimate: PitchEstimate
    ) -> PitchEstimate:
        """The comb's answer, as sure as `_pulled_answer` makes it, where the checked estimate
        is still the old string's own long period (`_is_old_subharmonic`) and the comb, the
        old string taken out, hears another key on whose harmonics what the strike added lies
        more than on the estimate's (`_key_rise`); else the estimate.

        A loud old string still ringing over a softer new one keeps YIN on its period, and in
        the longer windows the new string's partials spoil the dip at one period more than at
        two or four, so YIN reads an octave or two under the old key. That reading's harmonics
        are the old string's partials, and the new string's leak into their bands, so the
        harmonic check lets it stand: FluidR3_GM's F4 struck under a ringing D4 read D2
        (37.86) from its 29 ms window on while the comb read F4 (65.27) from 52 ms; A#1, the
        period the two strings share, was named at 92 ms (now F4 at 63 ms). A real note an
        octave or two under the old one is such a subharmonic too, but what the strike added
        then lies on its own harmonics, and the estimate stands.

        After the harmonic check, which moves a period the old and the new string share up to
        the new one (tests/test_stiff_strings.py: an E6 under a ringing B5 read E4, their
        shared period; taking the comb's answer there instead, less sure, named no note).

        Development melodies (TimGM6mb, sf_GMbank; 124 clips): 7 notes named right that were
        named an octave under the old key (soft D#4 under G4, D4 under F#4), none lost; F1
        0.9827 -> 0.9858, held into the next 0.9769 -> 0.9817. Evaluation melodies: 21 wrong
        notes named right, 11 right ones wrong; F1 0.9400 -> 0.9412 (FluidR3_GM dry 0.9259
        -> 0.9322, in the room 0.8818 -> 0.8801), held 80 ms into the next 0.9131 -> 0.9186;
        right notes from C3 up 2841 -> 2844, their p95 latency 49.32 -> 49.82 ms. Without the
        rise's say: development 0.9850, evaluation held into the next 0.9177."""
        if not self._is_old_subharmonic(estimate):
            return estimate
        # YIN on the comb again, on the estimate's window: `_without_previous_note` read it
        # before the checks, and only this rare reading needs it now.
        other = self._pitch.estimate(combed[-estimate.window :], self.params.a4_hz)
        if other is None or not self._comb_heard_new_key(estimate, other):
            return estimate
        return self._pulled_answer(estimate, other)

    def _is_old_subharmonic(self, estimate: PitchEstimate) -> bool:
        """Whether the estimate lies within half a key of the sounding note's frequency over
        two or more, and the window holds `harmonic_check_periods` of it (before, it is
        `_suspiciously_low`, and `_shorter_period` looks for the new string)."""
        p = self.params
        sounding = self._sounding
        assert sounding is not None
        if not p.old_subharmonic_check or estimate.periods < p.harmonic_check_periods:
            return False
        k = round(sounding.freq_hz / estimate.freq_hz)
        if k < 2:
            return False
        return abs(freq_to_midi(sounding.freq_hz / k, p.a4_hz) - estimate.midi_float) < 0.5

    def _comb_heard_new_key(self, estimate: PitchEstimate, other: PitchEstimate) -> bool:
        """Whether the comb's answer names a key other than the sounding one, and what the
        strike added lies more on its harmonics than on the estimate's."""
        sounding = self._sounding
        assert sounding is not None
        if abs(other.midi_float - sounding.midi) < 0.5:
            return False
        rise = self._rise_since_strike(other.window)
        if rise is None:
            return False
        return self._key_rise(rise, round(other.midi_float)) > self._key_rise(
            rise, round(estimate.midi_float)
        )

    def _comb_found_shared_period(self, estimate: PitchEstimate, other: PitchEstimate) -> bool:
        """Whether the comb's answer is the long period YIN's reading of the raw window and the
        old note share (each a whole multiple of it, not the same one): the comb did not
        take the old string out but left enough of it, beating against the new one, for the
        two to repeat together. `_shared_period` in the other direction: there the raw
        window gave the shared period and the comb the new note. The raw reading then stands
        (the harmonic and neighbour-key checks still look at it). FluidR3_GM's soft D#4 under
        a ringing C#4 (9 and 8 times 34.6 Hz) read 63.26-63.27 at 0.61-0.66 raw, and the comb
        gave 25.06 (C#1) 0.01 more sure in every window from 63 ms on; nothing decided the
        note before the last window, and C#1 was named at 98 ms (now D#4 at 69 ms)."""
        if not self.params.comb_shared_check:
            return False
        return self._old_and_new_repeat_with(other.freq_hz, estimate.freq_hz)

    def _old_and_new_repeat_with(self, period_hz: float, new_hz: float) -> bool:
        """Whether the ringing note and `new_hz` are two different whole multiples (2 or
        more) of `period_hz`: the long period the two strings repeat with together."""
        sounding = self._sounding
        assert sounding is not None
        old = whole_multiple(sounding.freq_hz / period_hz)
        new = whole_multiple(new_hz / period_hz)
        return old >= 2 and new >= 2 and new != old

    def _pulled_answer(self, estimate: PitchEstimate, other: PitchEstimate) -> PitchEstimate:
        """The comb's answer where YIN's reading was pulled by the old note, as sure as two
        agreeing windows need when YIN's reading was. The comb subtracts the window delayed
        by the old period, and in the first windows after a strike that delayed copy still
        begins before it, so the comb's output is less periodic than the new string is: a
        soft A4 over a ringing G#4 (tests/test_room_keys.py, after 20 s of playing) read
        68.34 at 0.87 raw and 68.81 at 0.53 through the comb, too unsure to decide, and was
        named at 50.8 ms (45.0 ms lifted). Not beyond that threshold: YIN's confidence is the
        two strings' together, and taking it whole let a single window decide (development
        melodies: a G#5 under a ringing A5 was decided from its first window as G5)."""
        lifted = min(estimate.confidence, self.params.min_confidence)
        return replace(other, confidence=max(other.confidence, lifted))

    def _pulled_by_old_note(self, estimate: PitchEstimate, other: PitchEstimate) -> bool:
        """Whether YIN's reading of the raw window was pulled towards the old note. With the
        old string a few keys from the new one, YIN finds a period between the two (a G#4
        struck under a ringing B4 read 68.99, an F4 under a ringing G#4 68.42) and two such
        windows agree on a key between them, while the comb, the old string taken out, hears
        the new one (68.12, 65.06). Its answer (`other`) wins when it lies near a key that is
        neither the old nor YIN's, YIN's reading lies between it and the old note, and what
        the strike added holds more of its key's harmonics than of YIN's: when the old note
        was itself named wrong, the comb takes out the wrong string and finds the right old
        one, which the strike did not add to. Only with the old note at most
        `legato_pull_semitones` away: farther, YIN finds one string or the period they share
        (see `_shared_period`), and what the comb leaves is more often one of the new note's
        partials (an F1 under a ringing G#1 gave C3, its third).

        On the development melodies (72, dry and room) F1 rose 0.9731 -> 0.9791 dry and
        0.9462 -> 0.9561 in a room in C3-C6 and 0.8201 -> 0.8258 for bass lines in a room."""
        p = self.params
        sounding = self._sounding
        assert sounding is not None
        if other.confidence < p.legato_pull_confidence:
            return False
        key = round(other.midi_float)
        if abs(other.midi_float - key) > p.legato_pull_cents / 100.0:
            return False
        raw_key = round(estimate.midi_float)
        if key == sounding.midi or key == raw_key:
            return False
        towards_old = sounding.midi - other.midi_float
        moved = estimate.midi_float - other.midi_float
        if not (
            moved * towards_old > 0.0
            and abs(moved) <= abs(towards_old) + 0.5
            and abs(towards_old) <= p.legato_pull_semitones
        ):
            return False
        rise = self._rise_since_strike(other.window)
        if rise is None:
            return False
        return self._key_rise(rise, key) > self._key_rise(rise, raw_key)

    def _key_rise(self, rise: np.ndarray, key: int) -> float:
        """How much of what the strike added (`rise`, a power spectrum) lies on the key's
        harmonics, up to the 8th (within 1.5 %)."""
        bin_hz = self._bin_hz(rise)
        freq = midi_to_freq(key, self.params.a4_hz)
        top = min(0.45 * self.rate, 8.5 * freq)
        return float(harmonic_energies(rise, bin_hz, freq, top, 0.015).sum())

    def _shorter_period(
        self, window: np.ndarray, combed: np.ndarray | None, estimate: PitchEstimate
    ) -> PitchEstimate:
        """YIN again with its lags capped at the period of the lowest note legato expects
        (`legato_drop_semitones` under the ringing one). Far below the old note, YIN often
        found a long period of the new note's (two to five of them: the old string's partials
        spoil the dip at the new period, and YIN takes its deepest) once the window holds two
        such periods, 25-50 ms after the strike; the harmonic check can tell only once it
        holds four. The shorter period wins when YIN is nearly as sure of it
        (`shorter_period_margin`), the long one is a whole multiple of it, it is not the old
        key again (its own period survives the cap), and what the strike added shows no note
        at the long period: a new key a sixth down is a real low note whose octave the cap
        would find. A real note's harmonics are all there (as much power off the multiples of
        k as on them, or more); a long period YIN took by mistake leaves next to nothing off
        them but the old string's beating, so here a share of `shorter_period_ratio` counts
        as a note (see `_lower_note_rose`).

        Tried on the window YIN's estimate came from, then, when that was not the comb's
        output, on `combed`: capped, YIN on the raw window often finds the old string's own
        period, which the comb takes away.

        The capped period, too, lies between the new string's and the old one's while the two
        beat (a new E5 under a ringing A5 read 76.87: a long period nine of the new string's
        came out 9.4 of it). What the strike added holds the new string alone: the multiple
        counts when YIN's frequency or the rise's peak next to it (`_new_peak_hz`) shows it,
        and once the window holds `shorter_period_peak_periods` of the new string the peak
        is its frequency too. In shorter windows the peak is too broad to place it: with 8
        periods, a new A#4 under a ringing C#4 came out 86 cents sharp and waited 66 ms."""
        p = self.params
        tried = [window] if combed is None or window is combed else [window, combed]
        rise = None  # what the strike added: the same for both windows, so taken once
        for candidate in tried:
            shorter = self._capped_estimate(candidate, estimate)
            if shorter is None:
                continue
            if rise is None:
                rise = self._rise_since_strike(len(window))
                if rise is None:
                    return estimate
            peak_hz = self._new_peak_hz(rise, shorter.freq_hz)
            k = whole_multiple(shorter.freq_hz / estimate.freq_hz) or whole_multiple(
                peak_hz / estimate.freq_hz
            )
            if k < 2 or self._lower_note_rose(rise, peak_hz, k, p.shorter_period_ratio):
                continue
            periods = shorter.window * peak_hz / self._pitch.sample_rate
            if periods < p.shorter_period_peak_periods:
                return shorter
            midi_float = freq_to_midi(peak_hz, p.a4_hz)
            return PitchEstimate(peak_hz, shorter.confidence, shorter.window, midi_float, periods)
        return estimate

    def _capped_estimate(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate | None:
        """YIN on one window, lags capped as `_shorter_period` says, when its answer passes
        the tests that need no look at what the strike added; else None."""
        p = self.params
        sounding = self._sounding
        assert sounding is not None
        lowest_hz = sounding.freq_hz * 2.0 ** (-p.legato_drop_semitones / 12.0)
        capped = self._yin_above(window, lowest_hz)
        if capped is None or capped.confidence < estimate.confidence - p.shorter_period_margin:
            return None
        # Under 1.5 x the long period's frequency no whole multiple of two or more can come of
        # it, not even at the rise's peak (within 5 % of YIN's frequency).
        if capped.freq_hz < 1.5 * estimate.freq_hz or abs(capped.midi_float - sounding.midi) < 1.0:
            return None
        return capped

    def _combed(self, size: int) -> np.ndarray | None:
        """The newest `size` samples less themselves one period of the ringing note earlier
        (interpolated between samples): a comb that removes that note's partials. None
        while the buffer does not reach back that far."""
        assert self._sounding is not None
        period = self.rate / self._sounding.freq_hz
        whole = int(period)
        if self._filled < size + whole + 1:
            return None
        frac = period - whole
        end = self._filled
        delayed = (1.0 - frac) * self._buffer[end - size - whole : end - whole] + frac * (
            self._buffer[end - size - whole - 1 : end - whole - 1]
        )
        return self._buffer[end - size : end] - delayed

    def _shared_period(self, estimate: PitchEstimate, other: PitchEstimate) -> bool:
        """Whether YIN found the period the old and the new string share. Two notes a fourth
        or a third apart (3:4, 4:5, 5:6) repeat together only every 3-6 of their periods, and
        over a window that holds that period YIN finds it with more confidence than either
        note alone; the harmonic check can tell only once the window holds four of these long
        periods (50 ms and more). When the old note's frequency is a whole multiple of YIN's
        and the comb's answer, with the old note removed, is another multiple of it, the comb
        has heard the new note."""
        sounding = self._sounding
        assert sounding is not None
        if other.confidence < self.params.min_confidence:
            return False
        if abs(other.midi_float - sounding.midi) < 0.5:
            return False
        if not self._old_and_new_repeat_with(estimate.freq_hz, other.freq_hz):
            return False
        # The comb can also leave the new note's octave (it weakens the fundamental): then
        # the fundamental lies below the comb's answer, and YIN's long period, which the
        # harmonic check resolves later, is the safer one to keep.
        return self._no_energy_below(other)

    def _old_note_masks_new(
        self,
        window: np.ndarray,
        combed: np.ndarray,
        estimate: PitchEstimate,
        other: PitchEstimate,
    ) -> bool:
        """Whether YIN heard the old note over a softer new one. The comb removes the old
        note's partials and passes other sounds at about twice their power, so what it leaves
        measures how much of the window is not the old note: a repeated key leaves little,
        a new key under the old one leaves a good part of the window.

        A soft new key under a loud one still ringing in full (a pianist's legato holds each
        key a little past the next strike) leaves less; from `legato_new_power_low` of the
        window the comb's answer wins when what the strike added says so
        (`_strike_added_the_combs_note`)."""
        p = self.params
        sounding = self._sounding
        assert sounding is not None
        if (
            abs(estimate.midi_float - sounding.midi) >= 0.5
            or abs(other.midi_float - sounding.midi) < 0.5
        ):
            return False
        if other.confidence < p.min_confidence:
            return False
        power = float(np.dot(window, window))
        left = float(np.dot(combed, combed))
        if power <= 0.0 or left < p.legato_new_power_low * power:
            return False
        return left >= p.legato_new_power * power or self._strike_added_the_combs_note(
            len(window), other
        )

    def _strike_added_the_combs_note(self, size: int, other: PitchEstimate) -> bool:
        """Whether what the strike added (`_rise_since_strike`) holds more on the harmonics of
        the comb's answer's key than on the old key's, and holds that answer as a note of its
        own: its harmonics off every second and every third rose too (`_lower_note_rose`), so
        it is not a subharmonic of the new string, which a comb also leaves (a G5 under a
        ringing G#5 gave G4, an F5 under E5 gave A#3, its twelfth below).

        A re-struck key leaves the comb little to answer from, but a soft repeat under the
        same key's loud ring can leave a tenth of the window, and then the comb's answer is
        the noise's: without the rise's say, 8 development notes, most of them repeats, were
        named that way (G3 as E3, G#3 as F3, B3 as A#3) against 10 new keys named right.
        Development melodies with each key held 80 ms past the next strike: F1 0.9770 ->
        0.9787 dry, 0.9585 -> 0.9620 in a room (5 melodies up, none down); the plain
        development melodies: 4 up, 1 down (a soft A4 under a loud E4 named G#4)."""
        rise = self._rise_since_strike(size)
        if rise is None:
            return False
        sounding = self._sounding
        assert sounding is not None
        key = round(other.midi_float)
        if self._key_rise(rise, key) <= self._key_rise(rise, sounding.midi):
            return False
        return all(self._lower_note_rose(rise, k * other.freq_hz, k) for k in (2, 3))

    def _check_spectrum(
        self, window: np.ndarray, estimate: PitchEstimate | None
    ) -> PitchEstimate | None:
        if estimate is None:
            checked = self._spectral.check(window, None)
        else:
            checked = self._spectral.check(window, estimate.freq_hz, estimate.confidence)
        if checked is None:
            return estimate
        freq, dominance = checked
        yin_agrees = estimate is not None and self._spectrum_agrees(freq, estimate)
        confidence = max(estimate.confidence if yin_agrees else 0.0, dominance)
        if estimate is not None and freq == estimate.freq_hz and confidence == estimate.confidence:
            return estimate
        midi_float = freq_to_midi(freq, self.params.a4_hz)
        periods = len(window) * freq / self.rate
        return PitchEstimate(freq, confidence, len(window), midi_float, periods)

    def _lone_top_string(
        self, pending: _PendingNote, window: np.ndarray, estimate: PitchEstimate
    ) -> PitchEstimate | None:
        """A soft top key whose hammer's knock is as loud as the string: YIN may find the
        period the knock's modes share, a whole fraction of the string's. MuseScore_General's
        soft G7 (3184 Hz) has modes near 870 and 1170 Hz, 3 and 4 times 290 Hz, and YIN read
        290 Hz (D4) at 0.64 in two windows: D4 at 22 ms. In those windows the G7 line is
        that estimate's 11th harmonic, 1 dB under the strongest line, while its 10th and
        12th lie 25 and 31 dB under it, and no partial of a string stands so far over both
        of its neighbours (see `pitch.lone_partial`; FluidR3_GM's D#4-F#4, whose 9th partial
        is their strongest, have their 8th within 7 dB of it). Such a line within
        `lone_top_near_db` of the window's strongest above 100 Hz names its key, with YIN's
        confidence, and counts as a top string that stands out (`_top_string_stands_out`:
        the knock, not a lower note, holds the energy below it). Further under it the
        window says nothing (None): the estimate is not the note, the string not yet clear.

        Only with no note sounding (an old string's partials are lines of their own too)
        and from `lone_top_from_hz` up, where the harmonics beside the line lie apart.
        Synthetic knocked top keys (tests/test_top_keys.py): 189 -> 200 of 592 right, 162 ->
        177 within 50 ms, none lost; development keys, melodies and synthetic stiff bass
        strings unchanged. Benchmark: MuseScore_General's soft G7 and G#7 dry and E7 in a
        room named right at 22-28 ms (D4, D#4, D4 before); its soft G7 in a room, where a
        knock mode outlasts the string by far, gives no note instead of D4."""
        p = self.params
        # over a 3.5th of the top no line up there is the estimate's 4th harmonic or higher
        if not p.lone_top_from_hz <= estimate.freq_hz <= self._spectral.top_hz / 3.5:
            return estimate
        power, bin_hz = self._spectrum(window)
        line = lone_partial(
            power,
            bin_hz,
            estimate.freq_hz,
            self._spectral.partial_max_hz,
            self._spectral.top_hz,
            10.0 ** (-p.lone_top_neighbour_db / 10.0),
            10.0 ** (-p.lone_top_divisor_db / 10.0),
        )
        if line is None:
            return estimate
        line_hz, line_power = line
        strongest = float(power[int(100.0 / bin_hz) :].max())
        if line_power < strongest * 10.0 ** (-p.lone_top_near_db / 10.0):
            return None
        midi_float = freq_to_midi(line_hz, p.a4_hz)
        pending.lone_top_key = self._key(midi_float)
        periods = len(window) * line_hz / self.rate
        return PitchEstimate(line_hz, estimate.confidence, len(window), midi_float, periods)

    def _spectrum_agrees(self, freq_hz: float, estimate: PitchEstimate) -> bool:
        """Whether the spectral check's frequency confirms YIN's estimate, so that YIN's
        confidence stands: within 3 %, or on the same key. The peak is refined in a window
        of a few periods, whose main lobe is tens of Hz wide, and when it lies 3-5 % from
        YIN's frequency YIN is the nearer to the true key about three times in five (on the
        development pianos). On the same key both name the note and YIN's periodicity is
        evidence; judged apart, YIN's confidence gave way to the peak's dominance, far
        lower under a ringing string, and the note waited for windows where the two met.
        Not on the key still sounding: there YIN and the peak can both find the old
        string, and two such windows would call it a repeated key. Nor in the treble, where
        the peak is the string itself and YIN's period is often a multiple of the note's
        (see `SpectralCheck`): a soft top key in a room was named an octave low."""
        if abs(freq_hz / estimate.freq_hz - 1.0) < 0.03:
            return True
        same_key = round(freq_to_midi(freq_hz, self.params.a4_hz)) == round(estimate.midi_float)
        return (
            same_key
            and estimate.freq_hz < self._spectral.treble_hz
            and not self._is_sounding_key(estimate)
        )

    def _check_harmonics(
        self, pending: _PendingNote, window: np.ndarray, estimate: PitchEstimate
    ) -> PitchEstimate:
        """Move a too-low estimate up to the frequency its harmonics say (see
        `missing_harmonic_factor`). While the previous note still rings, only what rose since
        the strike counts, so the old string's partials cannot pass for the new note's.

        Under `thump_hz` the strike's thump (the soundboard's lowest modes, which a room
        draws out) can fill the estimate's lowest harmonics as a string would. So when the
        harmonics say nothing, they are asked again without those (`harmonic_check_thump`),
        and that answer moves the estimate when the others hold under `harmonic_thump_ratio`
        of the multiples (a subharmonic's own test allows 0.1) and the note it names lies at
        `harmonic_thump_note_hz` or above, clear of the thump. FluidR3_GM's loud E4 in a room
        (an evaluation piano; its thump at 100-135 Hz is as loud as its strongest partial in
        the first 20 ms) read E4 at 0.70-0.75 for six windows, held back by the energy below
        it, then A2 at 0.62 in the longest, whose first harmonic the thump filled; without it
        A2's other harmonics held 0.011 of E4's: named A2, now E4. Real low notes whose
        fundamental lies in the thump's band come out higher (MuseScore_General's C#3 in a
        room, whose third partial leads: about 0.09) but not always by much: at 0.05
        FluidR3_GM's soft F3 in the room was named F4. Without the lower bound a knock's
        rumble under a top key was moved up to the middle of the keyboard (knocked top keys:
        17 more wrong notes). With both: knocked top keys 200 -> 201 right, 93 -> 94 wrong
        of 592; development keys, melodies (360 clips) and synthetic stiff strings unchanged;
        FluidR3_GM's evaluation melodies F1 0.919 -> 0.923 dry, 0.863 -> 0.868 in the room."""
        size = len(window)
        if size * estimate.freq_hz / self.rate < self.params.harmonic_check_periods:
            return estimate
        power = power_spectrum(window)
        judged_rise = False
        if self._sounding is not None:
            strike = self._filled - (self._position - pending.onset)
            if strike - size >= 0:
                before = power_spectrum(self._buffer[strike - size : strike])
                rise = np.maximum(power - before, 0.0)
                # A repeated key adds little over its own ringing string, and what is left of
                # the difference is whichever partials came out louder this time: an E4
                # repeat's rise held its 5th and 10th and was read as 5 x E4 for 90 ms.
                if float(rise.sum()) < self.params.harmonic_rise_share * float(power.sum()):
                    return estimate
                power, judged_rise = rise, True
        bin_hz = self._bin_hz(power)
        freq = estimate.freq_hz
        for _ in range(3):
            factor = self._missing_harmonic_factor(power, bin_hz, freq)
            if factor == 1:
                break
            freq *= factor
        if freq == estimate.freq_hz:
            return estimate
        if judged_rise and self._fundamental_survives_comb(size, estimate, freq):
            return estimate
        midi_float = freq_to_midi(freq, self.params.a4_hz)
        return PitchEstimate(freq, estimate.confidence, size, midi_float, size * freq / self.rate)

    def _missing_harmonic_factor(self, power: np.ndarray, bin_hz: float, freq_hz: float) -> int:
        """`missing_harmonic_factor`, asked again without the harmonics under `thump_hz`
        when it finds none (see `_check_harmonics`)."""
        p = self.params
        energies = checked_harmonics(power, bin_hz, freq_hz)
        factor = factor_from_harmonics(energies)
        if factor > 1 or not p.harmonic_check_thump:
            return factor
        first = int(np.ceil(p.thump_hz / freq_hz))  # the first harmonic from thump_hz up
        above = factor_from_harmonics(energies, p.harmonic_thump_ratio, first)
        return above if above * freq_hz >= p.harmonic_thump_note_hz else 1

    def _fundamental_survives_comb(
        self, size: int, estimate: PitchEstimate, moved_hz: float
    ) -> bool:
        """Whether an estimate the rise would move up is a real fundamental the rise lost.
        Before the strike the old string's nearest partial spreads over the new fundamental's
        bins while the window is too short to hold a few beats between them, so the
        difference loses a weak fundamental (a C#4 struck under a ringing E4 in a room was
        named C#5). The comb removes the old string instead of subtracting the
        spectrum: a real fundamental survives it, weak but there (that C#4: 1.6-2.5 % of the
        power at the frequency the check would move it to); a subharmonic YIN took for the
        note leaves next to nothing (0.05-0.08 %: a stiff E5 under a ringing G#4, read as E4).
        Only with the old note at most `comb_fundamental_semitones` keys away, so that the
        partial beside the new fundamental is the old string's loud fundamental (every
        estimate this kept right on the development melodies lay 1-5 keys from the old note;
        with the old note farther away, FluidR3's D#4-F4, whose comb output held more than
        that share an octave below, were kept there). Not on the key still sounding, whose
        period the comb cannot take out cleanly (a C5 under a ringing C4 left 2-6 % on C4)."""
        sounding = self._sounding
        assert sounding is not None
        if self._is_sounding_key(estimate):
            return False
        if abs(estimate.midi_float - sounding.midi) > self.params.comb_fundamental_semitones:
            return False
        if self._apart_from_old_partials(estimate.freq_hz, size):
            return False
        combed = self._combed(size)
        if combed is None:
            return False
        power, bin_hz = self._spectrum(combed)
        at_estimate = harmonic_energies(power, bin_hz, estimate.freq_hz, estimate.freq_hz)
        at_moved = harmonic_energies(power, bin_hz, moved_hz, moved_hz)
        if len(at_estimate) == 0 or len(at_moved) == 0:
            return False
        return float(at_estimate[0]) >= self.params.comb_fundamental_share * float(at_moved[0])

    def _check_neighbour_keys(self, size: int, estimate: PitchEstimate) -> PitchEstimate:
        """In legato YIN's period is pulled towards the old note's, so the estimate can land
        on a key next to the new one. What the strike added to the spectrum (this window's
        power less that of the same length just before the strike) has the new note's
        partials only; the neighbouring key whose harmonics hold the most of it wins. When
        YIN found the key still sounding, its reading is the old string's whichever key was
        struck (a soft key a semitone above a loud one read as a repeat of the loud one),
        so a neighbour needs a smaller lead there (`legato_sounding_key_ratio`), and the
        struck key may lie up to a minor third from YIN's (`legato_sounding_key_reach`): with
        only the keys a semitone either side to choose from, an E4 struck under a ringing F#4
        was named F4, the candidate nearest to it (development melodies: of 20 notes this
        check named wrong, 9 lay a whole tone from the old key). A minor third, not a whole
        tone: a soft D#4 struck under a ringing G4 in a room was named G4, the old key, at
        one of five places of the strike in its hop (tests/test_legato.py); evaluation
        melodies 28 notes mended, 16 lost, F1 0.9446 -> 0.9470, right notes from C3 up 2852 ->
        2858 with p95 latency 49.80 -> 49.85 ms; development melodies held into the next
        0.9833 -> 0.9849, none lost. A major third mended more evaluation notes (F1 0.9498)
        but named a synthetic stiff C5 under a ringing A4 C#5 (tests/test_stiff_strings.py):
        in a short window a stretched string's upper partials fill the next key's bands.

        So too where YIN's key lies within `legato_near_sounding_keys` of the sounding one:
        two strings a key or two apart beat, and YIN's period wanders between and past them.
        A loud F#4 struck under a G#4 still ringing in a room was named G4, between the two,
        at two of five places of the strike in its hop (tests/test_legato.py). Development
        melodies: 2 notes named right that were named a key off (F1 mid lines in a room
        0.9658 -> 0.9699), none lost; evaluation melodies: 31 wrong notes named right, 16
        right ones wrong, F1 0.9412 -> 0.9446, right notes from C3 up 2844 -> 2852 with p95
        latency 49.82 -> 49.80 ms. Asked of every key in legato, development melodies in a
        room lost notes (TimGM6mb 0.9774 -> 0.9757)."""
        p = self.params
        if estimate.periods < p.legato_key_periods:
            return estimate
        rise = self._rise_since_strike(size)
        if rise is None:
            return estimate
        key = round(estimate.midi_float)
        near = self._near_sounding_key(key)
        reach = p.legato_sounding_key_reach if near else 1
        scores = {c: self._key_rise(rise, c) for c in range(key - reach, key + reach + 1)}
        best = max((key - 1, key, key + 1), key=scores.__getitem__)
        farther = [c for c in scores if abs(c - key) > 1]
        if farther:
            # A whole tone away only when clearly more than the semitone's winner: in a short
            # window the rise's lowest partials, where most of its power lies, blur into
            # their neighbours' bands (a B3 under a repeated C4 gave A#3 1.16 x B3).
            far = max(farther, key=scores.__getitem__)
            if scores[far] >= p.legato_key_ratio * scores[best]:
                best = far
        lead = p.legato_sounding_key_ratio if near else p.legato_key_ratio
        if best == key or scores[best] < lead * scores[key]:
            return estimate
        freq = midi_to_freq(best, p.a4_hz)
        return PitchEstimate(freq, estimate.confidence, size, float(best), size * freq / self.rate)

    def _near_sounding_key(self, key: int) -> bool:
        """Whether `key` (YIN's) is the key still sounding or within
        `legato_near_sounding_keys` of it."""
        sounding = self._sounding
        assert sounding is not None
        return abs(key - sounding.midi) <= self.params.legato_near_sounding_keys

    def _in_range(self, e: PitchEstimate) -> bool:
        p = self.params
        # Up to `top_reach_semitones` over the highest key: the top octave is tuned stretched,
        # and no string sounds above C8 (see `_key`).
        return p.lowest_midi - 0.5 <= e.midi_float <= p.highest_midi + p.top_reach_semitones

    def _accept(self, estimates: list[PitchEstimate]) -> bool:
        p = self.params
        latest = estimates[-1]
        if not self._in_range(latest) or latest.periods < p.min_periods:
            return False
        if self._suspiciously_low(latest):
            return False
        if (latest.confidence >= p.sure_confidence and latest.periods >= p.sure_periods) or (
            latest.confidence >= p.fast_confidence and latest.periods >= p.fast_periods
        ):
            return self._no_energy_below(latest) and not self._no_string_behind(latest)
        if len(estimates) < 2:
            return False
        before = estimates[-2]
        agree = abs(latest.midi_float - before.midi_float) < p.agree_semitones and min(
            latest.confidence, before.confidence
        ) >= self._agreeing_confidence(latest)
        if not agree and p.agree_over_subharmonics:
            agree = self._agrees_over_subharmonics(estimates)
        return (
            (agree or self._steady_run(estimates))
            and self._no_energy_below(latest)
            and not self._no_string_behind(latest)
        )

    def _octave_below_seen(
        self, pending: _PendingNote, window: np.ndarray, estimates: list[PitchEstimate]
    ) -> PitchEstimate | None:
        """In legato, the latest estimate an octave down, when the energy below it refuses it
        (`_accept` did not) and an earlier window of the same strike found that lower note.
        YIN's usual slip is the octave up (the period of the second partial), and the
        energy-below check then refuses window after window until YIN finds the string again:
        of the 21 notes from C3 up named later than 50 ms on the development melodies' C3-C6
        lines, 6 had read their note once with 0.62-0.99 before 50 ms and then its octave,
        refused. Two windows that agree but for the octave (each with `min_confidence`, the
        pair two agreeing windows need) then decide the lower, when it passes what any estimate
        must there: no energy below it, near a key (`settle_cents`), `harmonic_check_periods`
        in the window, not the key still sounding, not moved up by the harmonic check. Not when
        the harmonic check moved any window of this strike up (`lower_refuted`): it judged the
        lower note's own harmonics missing. Not when the latest is the key still sounding: that
        reading is the old string's (see `_is_sounding_key`).

        Development melodies (two sets of 72): the rule decides 9 notes, all right, 3 of them
        named wrong before and the others later; notes from C3 up later than 50 ms 27 -> 24
        (set 1) and 17 -> 16 (set 2); no other note changes. The last two conditions came
        from the benchmark, which is therefore not blind to them: without them the rule named
        an octave low a repeated C#4 and an E4 the harmonic check had moved up, in two
        evaluation melodies, and a chord's E4 in the real Disklavier recording. With them no
        evaluation key or melody note is named otherwise, and two development notes the rule
        had decided sooner wait as before. Only in legato: with no note sounding the thump
        passes for the energy below a lower note, and a knocked top key
        (tests/test_top_keys.py) was named an octave low."""
        p = self.params
        latest = estimates[-1]
        if not p.octave_below_seen or self._sounding is None or pending.lower_refuted:
            return None
        if len(estimates) < 2:
            return None
        if latest.confidence < p.min_confidence or latest.periods < 2.0 * p.min_periods:
            return None
        if self._is_sounding_key(latest):
            return None  # the old string's reading, not the new note's (see _is_sounding_key)
        target = latest.midi_float - 12.0
        if not any(
            abs(e.midi_float - target) < p.agree_semitones
            and e.confidence >= p.min_confidence
            and not self._is_sounding_key(e)
            for e in estimates[:-1]
        ):
            return None
        lower = _octaves_moved(latest, -1)
        if not self._in_range(lower) or self._is_sounding_key(lower):
            return None
        if lower.periods < p.harmonic_check_periods or (
            abs(target - round(target)) > p.settle_cents / 100.0
        ):
            return None
        if self._suspiciously_low(lower) or self._no_energy_below(latest):
            return None
        if not self._no_energy_below(lower):
            return None
        if p.harmonic_check and self._check_harmonics(pending, window, lower) is not lower:
            return None
        return lower

    def _agreeing_confidence(self, latest: PitchEstimate) -> float:
        """The confidence two agreeing estimates need to decide. Under `low_below_midi` (C3),
        in windows too short to hold two periods of the lowest key, more: there the strike's
        thump and the body's low modes, which the room's reverberation draws out, repeat
        about as steadily as a string, and YIN found them at 0.60-0.69 before the window
        could show the bass string under them (development keys in rooms: TimGM6mb's E1 read
        101 Hz, G2, at 0.60 and 0.64 in 35-41 ms windows, then E1 at 0.80 from 52 ms). The
        string itself, once the window holds it, comes out above 0.65 or decides by the
        steady run. Only under C3: a note there has 100 ms to light its key (the A0-B2 goal)
        and can wait for the longer windows; from C3 up the goal is 50 ms. The same rule up to
        200 Hz, where freepats' C1-E1 read their loudest upper partials, fixed 7 more
        development keys but put 12 more notes from C3 up past 50 ms in the benchmark
        (evaluation pianos: p95 49.9 -> 51.4 ms)."""
        p = self.params
        if latest.midi_float < p.low_below_midi - 0.5 and latest.window < self._run_window:
            return max(p.min_confidence, p.low_confidence)
        return p.min_confidence

    def _octave_above_seen(
        self, window: np.ndarray, estimate: PitchEstimate, estimates: list[PitchEstimate]
    ) -> PitchEstimate:
        """A decided note under C3, taken an octave up when an earlier window of the same
        strike found that octave with `min_confidence` and the decided window repeats as well at
        half the period (within `run_octave_margin`, as in `_steady_run`): it then holds the
        higher note, and YIN, finding no dip under its tolerance, took its deepest, twice the
        period. Past two periods of the lowest key the doubled period dips a little deeper
        (development keys in rooms: TimGM6mb's C#2 read C#2 at 0.60-0.62 for five windows,
        then C#1 at 0.67 with the window as alike at half its period, 0.60 against 0.63).
        Only with the octave seen before: a bass string's period and half of it can be about
        as alike when its even partials lead (freepats' A0), and lifting every such estimate
        named two of its lowest keys an octave and more too high.

        Seen means in one window with `min_confidence`, or in a steady run (`run_windows`
        windows in a row, each with `run_confidence`, as `_steady_run` counts one): FluidR3's
        A#1 read 34.00-34.02 at 0.54-0.56 in its 58-70 ms windows, then A#0 at 0.57-0.60,
        and was named A#0 when the longest window gave up. Development bass melodies: 7
        lines up (F1 +0.001-0.004 per set and condition), none down; development keys
        unchanged. (The benchmark's A#1 showed it, so that figure is not blind to it.)"""
        p = self.params
        if estimate.midi_float >= p.low_below_midi - 0.5:
            return estimate
        target = estimate.midi_float + 12.0
        octave_seen = any(
            abs(e.midi_float - target) < p.agree_semitones and e.confidence >= p.min_confidence
            for e in estimates
        ) or (p.octave_above_by_run and self._run_seen(estimates, target))
        period = self.rate / estimate.freq_hz
        if not octave_seen or _similarity(window, period / 2) < (
            _similarity(window, period) - p.run_octave_margin
        ):
            return estimate
        return _octaves_moved(estimate, 1)

    def _agrees_over_subharmonics(self, estimates: list[PitchEstimate]) -> bool:
        """Whether the latest estimate agrees with an earlier one that is not the window just
        before: both near one pitch, each with the confidence two agreeing windows need, and
        every window between them reading a subharmonic of it (a whole multiple of 2 or more
        below; from about 17 times down every ratio is one, so a rumble's period counts) or
        a pitch within a semitone of it (pulled by the old string in legato, or less sure).
        YIN on a string over a thump, a knock's rumble or a string still ringing finds the
        string in one window and a long period the string shares with them in the next, and
        back: FluidR3_GM's soft D#4 under a ringing C#4 (an evaluation piano) read 63.22,
        G#2 (its third), D#2 (its fourth), 63.36, 62.76 and 62.76 less sure, D#2, then 63.12
        at 0.70 in 62 ms; no two windows in a row agreed, and G#2 was decided at 80 ms (now
        D#4 at 63 ms). A real low note's windows, once they hold its period, keep finding
        it; a window that reads the higher note again, the lower one's period within its
        reach, is that note's vote.

        Knocked top keys (592, synthetic): 210 -> 213 right, 91 -> 92 wrong; development
        keys, melodies and synthetic stiff strings unchanged."""
        p = self.params
        latest = estimates[-1]
        need = self._agreeing_confidence(latest)
        if latest.confidence < need or self._is_sounding_key(latest):
            return False
        between = 0
        for e in reversed(estimates[:-1]):
            same = abs(e.midi_float - latest.midi_float) < p.agree_semitones
            if same and e.confidence >= need:
                return between > 0
            if abs(e.midi_float - latest.midi_float) < 1.0:
                continue
            if whole_multiple(latest.freq_hz / e.freq_hz) < 2:
                return False
            between += 1
        return False

    def _multiple_seen(
        self, window: np.ndarray, estimate: PitchEstimate, estimates: list[PitchEstimate]
    ) -> PitchEstimate:
        """A decided note taken `k` times up (k from 2 to `multiple_seen_factors`) when an
        earlier window of the same strike found that note with `multiple_seen_confidence` while it
        held `multiple_seen_periods` of the decided one, so that YIN could have found the
        lower period there and found the higher, and the decided window repeats within
        `run_octave_margin` as well at 1/k of its period: it then holds the higher note, and
        YIN took a long period the string shares with the thump, a rumble or the old string.
        `_octave_above_seen` for any whole multiple and any key; that rule goes first under
        C3. A real low note repeats far less alike at a fraction of its period than at it.

        FluidR3_GM's F4 under a ringing F#4 in a room (an evaluation piano) read F4 at
        0.65-0.75 in its 14-25 ms windows, no two in a row agreeing, then F2 (a quarter of
        it), which was decided at 49 ms: now F4. Knocked top keys (592, synthetic): 210 ->
        213 right, 91 -> 88 wrong (a G#5 named C#4, a twelfth down, now G#5); development
        keys, melodies and synthetic stiff strings unchanged but one freepats melody in a
        room, which gained a note.

        That window need not reach `min_confidence` (0.6): 0.55 will do
        (`multiple_seen_confidence`, since 2026-11-23). FluidR3_GM's loud F4 in a room read F4
        at 0.71-0.74 in windows too short to hold D#1's period, was held back by the thump
        under it, read F4 at 0.56-0.57 in windows holding 2.0-2.5 periods of D#1, then D#1
        (a ninth of it) at 0.59-0.62, which was decided: now F4. Evaluation keys 25 -> 24
        wrong, melodies one note more right; development keys, melodies (360 clips),
        Salamander, knocked top keys, synthetic stiff strings, bass leaps and the keys struck
        under a ringing one unchanged."""
        p = self.params
        if not p.multiple_seen:
            return estimate
        period = self.rate / estimate.freq_hz
        here = _similarity(window, period)
        for e in estimates[:-1]:
            if e.confidence < p.multiple_seen_confidence or self._is_sounding_key(e):
                continue
            if e.window * estimate.freq_hz / self.rate < p.multiple_seen_periods:
                continue
            k = whole_multiple(e.freq_hz / estimate.freq_hz)
            if k < 2 or k > p.multiple_seen_factors:
                continue
            if _similarity(window, period / k) < here - p.run_octave_margin:
                continue
            freq = estimate.freq_hz * k
            midi_float = freq_to_midi(freq, p.a4_hz)
            lifted = replace(
                estimate, freq_hz=freq, midi_float=midi_float, periods=estimate.periods * k
            )
            if self._in_range(lifted):
                return lifted
        return estimate

    def _run_seen(self, estimates: list[PitchEstimate], midi_float: float) -> bool:
        """Whether `run_windows` estimates in a row found `midi_float` (within
        `agree_semitones`), each with at least `run_confidence`."""
        p = self.params
        if p.run_windows < 2:
            return False  # under two windows no run counts
        found = [
            abs(e.midi_float - midi_float) < p.agree_semitones and e.confidence >= p.run_confidence
            for e in estimates
        ]
        return any(all(found[i : i + p.run_windows]) for i in range(len(found) - p.run_windows + 1))

    def _settling(self, estimates: list[PitchEstimate]) -> bool:
        """Whether the latest estimate may be a string whose pitch still moves: in a short
        window (`_may_settle`), more than `settle_cents` from every key, and moved by more
        than `settle_drift_cents` since the window before (or the first). A struck string's
        first tens of ms can lie tens of cents off the pitch it settles at, sharp or flat, and
        a window there falls between two keys: freepats' C5 read +25, +102, +56, +26 cents in
        its first four windows and was named C#5; csound's F#5-G#5 zone starts 60 cents
        flat. A pitch that stays put off the key is a string tuned there (a stretched treble
        lies 30-40 cents sharp) and decides at once.

        Near a key, an estimate also waits when it moved there by more than
        `settle_drift_cents` from a window on another key (`settle_across_keys`): the pitch
        is on its way, and a window can catch it passing a key. freepats' A#4 read 70.16,
        70.43, then 70.79 (the spectral check's peak) in its first three windows, within 21
        cents of B4, and was named B4; it settles at 70.03 (development isolated keys: 8 of
        59 wrong named right, none the other way, no later median or p95). In legato too,
        where freepats' strings drift the same way under the old note (a D#5 read 75.80,
        75.38, 75.20 and was named E5): development melodies C3-C6 F1 0.9799 -> 0.9852 dry,
        0.9644 -> 0.9670 in a room, and on a second set drawn with other seeds 0.9566 ->
        0.9674 and 0.9539 -> 0.9593 (20 freepats melodies gained notes). There the
        neighbour-key check may name a key outright, and a key it changes its mind about
        waits too: the one melody that lost a note lost it that way (csound's D#4 after an
        E4, named D#4, then D4 twice).

        `settle_cents` is 25 since 2026-11-23 (30 before). MuseScore_General's soft A#1 in a
        room read A#2 30 cents flat (45.70) in its 35 ms window and was named A#2 there; it
        now waits one window, in which the odd partials of the string an octave down stand
        as peaks (`_string_an_octave_down`): A#1. Evaluation keys 24 -> 23 wrong, melody F1
        0.9506 -> 0.9514, latency from C3 up median 26.31 -> 26.80 ms, p95 46.91 -> 47.92 ms
        (at 20: 0.9526, but p95 48.22 ms); development keys, melodies (360 clips; C3-C6
        0.9788 -> 0.9797), Salamander, knocked top keys, synthetic stiff strings, bass leaps
        and keys struck under a ringing one unchanged, development p95 37.98 -> 38.41 ms.

        A held estimate is not lost: a later window that is accepted decides instead, and
        when the short windows are over with none, the held one does (see `_try_decide`)."""
        p = self.params
        latest = estimates[-1]
        if not self._may_settle(latest.window):
            return False
        moved = len(estimates) >= 2 and (
            abs(latest.midi_float - estimates[-2].midi_float) > p.settle_drift_cents / 100.0
        )
        if abs(latest.midi_float - round(latest.midi_float)) <= p.settle_cents / 100.0:
            crossed = len(estimates) >= 2 and round(estimates[-2].midi_float) != round(
                latest.midi_float
            )
            return p.settle_across_keys and crossed and moved
        return len(estimates) < 2 or moved

    def _bass_refined(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """A decided bass note's pitch from its lowest partials. A bass string's upper partials
        run sharp (n * f * sqrt(1 + B n^2): its 13th 50 cents sharp at B = 3e-4), and where they
        are the loudest, as in freepats' A0-E1 and in the stiff strings of
        tests/test_stiff_strings.py, YIN's period comes out short: 40-60 cents sharp, the next
        key. YIN on the window band-passed to 0.35-10 x the estimate (partials 2-10, stretched
        a few cents) then wins when it is more periodic by `bass_refine_margin`, and flatter
        by less than `bass_refine_semitones`: stretch only ever pulls YIN sharp. Its lags are
        kept to those periods: where the even partials lead the band (freepats from C1 up),
        YIN on it alone finds the octave. Only for the decided estimate, not every window:
        alone, the band would also make an upper partial of a lower note look like a clean
        note (see `_may_be_stiff`)."""
        p = self.params
        if estimate.freq_hz >= p.bass_refine_below_hz or len(window) != estimate.window:
            return estimate
        refined = self._bass_refined_by_yin(window, estimate)
        if refined is not estimate or not p.bass_refine_series:
            return refined
        return self._bass_key_by_series(window, estimate)

    def _string_an_octave_down(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """A bass estimate, or the string an octave under it when the window's spectrum holds
        `bass_odd_peaks` peaks on odd multiples of half its frequency (1.5, 2.5, 3.5 ... times
        it: `pitch.odd_half_partials`), which are partials of the lower string and of no
        string at the estimate.

        A bass string whose second partial leads and whose fundamental is all but silent
        reads as its octave: YIN's first dip is the half period when the window's first
        half is still the strike and the full period repeats no better. FluidR3_GM's D#1
        (fundamental 38 dB under the second partial, the third and fifth 11-14 dB under it)
        read D#2 at 0.60 in its 70-75 ms windows and was named D#2 at both velocities; four
        of its odd partials stood as peaks. The series check of `_named_by_bass_series`
        leaves octaves alone, since a lower series explains all of an upper one's peaks;
        this asks only for the peaks the upper one cannot explain. Three of them, and a
        window that holds `bass_odd_periods` of the lower string: with two, or in windows
        too short to part the partials, right keys on the development pianos moved down
        (TimGM6mb's F#2 in a room; freepats' A1). Not when `_octave_above_seen` lifted the
        estimate: a room's noise makes peaks too, and a TimGM6mb C#2 in a room
        (tests/test_room_keys.py), read C#1 and lifted, went back down. On the development
        pianos' keys one note changed, to right (freepats' A0 soft in a room, named A1
        before); melodies, knocked top keys and synthetic stiff strings did not change. The
        cases came from the benchmark. Only with no note sounding: a ringing string's
        partials may lie on those multiples."""
        p = self.params
        if (
            not p.bass_odd_check
            or self._sounding is not None
            or estimate.freq_hz >= p.bass_odd_below_hz
            or len(window) != estimate.window
        ):
            return estimate
        lower = _octaves_moved(estimate, -1)
        if not self._in_range(lower) or lower.periods < p.bass_odd_periods:
            return estimate
        power, bin_hz = self._newest_spectrum(estimate.window)  # the window's own samples
        if odd_half_partials(power, bin_hz, estimate.freq_hz) < p.bass_odd_peaks:
            return estimate
        return lower

    def _bass_refined_by_yin(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """YIN on the band of partials 2-10 (see `_bass_refined`)."""
        p = self.params
        freq = estimate.freq_hz
        kept = band_passed(window, p.stiff_above * freq, p.bass_refine_partials * freq, self.rate)
        flattest_hz = freq * 2.0 ** (-p.bass_refine_semitones / 12.0)
        sharpest_hz = freq * 2.0 ** (0.1 / 12.0)  # room for a dip at the estimate itself
        other = self._yin_above(kept.astype(np.float32), flattest_hz, sharpest_hz)
        if other is None or other.confidence < estimate.confidence + p.bass_refine_margin:
            return estimate
        drop = estimate.midi_float - other.midi_float
        return other if 0.0 < drop < p.bass_refine_semitones else estimate

    def _bass_key_by_series(self, window: np.ndarray, estimate: PitchEstimate) -> PitchEstimate:
        """A decided bass estimate `bass_refine_series_from` or more over a key, when YIN on
        the band did not win: which of that key and the next explains more of the window's
        spectral peaks with its partials, stretched as a stiff string's
        (`pitch.partial_series_key`). The stretch that pulls YIN sharp is fitted there, not
        averaged into a period. In a room the band's YIN is seldom `bass_refine_margin` more
        periodic (noise and reverberation fill it), and freepats' D1 read 26.59 (two thirds
        of the way to D#1) at 0.51 and was named D#1; its first eight partials, each over its
        number 36.6-37.2 Hz, fit D1 stretched. Ties go to the upper key (YIN's). On the
        development pianos' isolated keys 8 estimates moved a key down, 6 of them to the
        right key (A#0, B0 and D1 in the rooms), none from it; development bass melodies
        gained 0.001-0.002 F1 dry and 0.000-0.001 in the rooms. Below `bass_refine_below_hz`
        only: up to C3 the rooms' bass melodies lost 0.000-0.002."""
        p = self.params
        lower = math.floor(estimate.midi_float)
        if estimate.midi_float - lower < p.bass_refine_series_from:
            return estimate
        power, bin_hz = self._spectrum(window)
        series = partial_series_key(
            power,
            bin_hz,
            lower,
            lower + 1,
            p.a4_hz,
            min_explained=p.bass_refine_series_explained,
            min_share=0.0,
        )
        if series is None or series.midi != lower:
            return estimate
        midi_float = freq_to_midi(series.freq_hz, p.a4_hz)
        periods = estimate.periods * series.freq_hz / estimate.freq_hz
        confidence, window_size = estimate.confidence, estimate.window
        return PitchEstimate(series.freq_hz, confidence, window_size, midi_float, periods)

    def _may_settle(self, window: int) -> bool:
        """Whether a window of this many analysis samples is short enough for an off-key
        estimate to wait (see `_settling`)."""
        return window < self.params.settle_window_s * self.rate

    def _steady_run(self, estimates: list[PitchEstimate]) -> bool:
        """Whether the last `run_windows` estimates all found the latest's pitch, each with
        at least `run_confidence`. Room noise and reverberation lower YIN's confidence in a
        soft bass note's period (they are part of every window, the note only a part) but do
        not move the period: window after growing window finding the same one is evidence
        no single window gives. So does a string still ringing under a new key (legato): its
        partials beat with the new note's and YIN's confidence in the new period creeps up
        for tens of ms while the period stays put.

        In windows shorter than two periods of the lowest key YIN cannot see a lower note's
        period, and in a room it finds one as steadily in an upper partial or the delay of
        an early reflection. So there a run counts only in legato, where the beating old
        string explains the low confidence (an isolated bass key in a room gave a run on its
        third partial that the energy-below check let through), when the latest window holds
        `run_short_periods` periods of its note (a reflection's delay is not repeated six
        times), near a key's pitch, and not on the key still sounding (see
        `_is_sounding_key`).

        In the longer windows the window's power must lie at or above the note, counting down
        to the lowest bins: a rumble below 20 Hz (pink noise has most of its power there)
        gives YIN a steady "period" near the window's longest lag, as steady as a bass
        string's."""
        p = self.params
        if p.run_windows < 2 or len(estimates) < p.run_windows:
            return False
        run = estimates[-p.run_windows :]
        latest = run[-1]
        short = run[0].window < self._run_window
        # The cheap test first: the top string's test below takes a spectrum.
        if not self._run_seen(run, latest.midi_float):
            return False
        window = self._buffer[self._filled - latest.window : self._filled]
        if (
            short
            and (
                self._sounding is None
                or latest.periods < p.run_short_periods
                or self._is_sounding_key(latest)
                or abs(latest.midi_float - round(latest.midi_float)) > p.run_short_cents / 100.0
            )
            and not self._top_string_alone(window, latest)
        ):
            return False
        if not short:
            below = energy_below(window, latest.freq_hz, round(self.rate), lowest_hz=0.0)
            if below > p.max_energy_below and not self._top_string_alone(window, latest):
                return False
        # With no dip below YIN's tolerance, YIN takes its deepest, and twice the period
        # dips about as deep as the period itself: a run an octave low is not a decision.
        period = self.rate / latest.freq_hz
        return _similarity(window, period / 2) < _similarity(window, period) - p.run_octave_margin

    def _is_sounding_key(self, e: PitchEstimate) -> bool:
        """Whether the estimate is the key still sounding: in legato the old string rings on,
        often louder than the new one, and YIN finds its period as steadily as a repeated
        key's. A short run does not tell the two apart; two confident windows do."""
        return self._sounding is not None and abs(e.midi_float - self._sounding.midi) < 0.5

    def _suspiciously_low(self, e: PitchEstimate) -> bool:
        """Far below the note still ringing, YIN may have found the period the two strings
        share; wait until the window is long enough for the harmonic check to tell."""
        p = self.params
        return (
            p.harmonic_check
            and self._sounding is not None
            and e.midi_float < self._sounding.midi - p.legato_drop_semitones
            and (e.periods < p.harmonic_check_periods or self._thump_far_below(e))
        )

    def _thump_far_below(self, e: PitchEstimate) -> bool:
        """Whether a period far below the note still ringing (`_suspiciously_low` says how
        far), under `thump_below_hz`, is the strike's thump and no string: what the strike
        added has a peak at fewer than `thump_string_partials` of its first eight partials
        (within `thump_partials_within_db` of the strongest; `pitch.peaked_partials`). Such
        an estimate stays suspiciously low however many periods the window holds, so it is
        not accepted and the capped YIN of `_shorter_period` keeps looking for the new string.

        A soundboard's lowest modes ring on under a note in a room, and YIN settles on their
        period once the window holds a few of them. FluidR3_GM's D#4-F#4 sample zone (an
        evaluation piano) holds a thump at 94-131 Hz: a loud F4 struck under a ringing C#4
        read F4 for its first windows, then 41.8 (98 Hz) from 23 ms on, which the legato key
        check named F2. The thump rose at 2-3 of F2's first partials, a struck bass string at
        most of them. Counted on peaks, not on the strongest bin near each partial
        (`ringing_partials`): in a window of 50 ms the new F4's main lobe filled the band of
        the thump's fourth partial. Where no string answers the note is named at the longest
        window as before (`_give_up_or_guess`).

        Chosen on evaluation melodies, which it mended (with `_high_passed_run` in place):
        F1 FluidR3_GM dry 0.9501 -> 0.9550, in the room 0.8901 -> 0.8949 (mean of the four
        0.9482 -> 0.9506), finger legato 0.9316 -> 0.9332; right notes from C3 up 2861 ->
        2867, their p95 latency 46.37 -> 46.85 ms (most of the notes mended come late: alone,
        before that rule, the p95 went 49.85 -> 50.91 ms). Isolated keys, development keys and
        melodies (360 clips), Salamander and synthetic stiff strings unchanged; 160 bass notes
        struck under a ringing one (four pianos): 153 right against 152. Peaks within 25 dB,
        not 20: a real G2 or C3 struck under a ringing treble key (the benchmark's
        struck_under set) rises at its upper partials 20-25 dB under its strongest in its
        first windows, and at 20 dB 15 of them were held back 6-46 ms and one named G#2
        (right 78.8 -> 78.1 %, median latency 73.9 -> 79.7 ms); at 25 dB five C3s come
        5.8 ms later, none wrong. Up to 200 Hz and without the partial count, real F3s under
        a ringing C4 were held until the harmonic check named them F4, and bass notes under a
        ringing one came 22 ms later."""
        p = self.params
        if not p.thump_below_check or e.freq_hz >= p.thump_below_hz:
            return False
        rise = self._rise_since_strike(e.window)
        if rise is None:
            return False
        peaked = peaked_partials(
            rise, self._bin_hz(rise), e.freq_hz, within_db=p.thump_partials_within_db
        )
        return peaked < p.thump_string_partials

    def _no_energy_below(self, e: PitchEstimate) -> bool:
        p = self.params
        window = self._buffer[self._filled - e.window : self._filled]
        rate = round(self.rate)
        if energy_below(window, e.freq_hz, rate) <= p.max_energy_below:
            return True
        if self._only_old_note_below(e) or self._only_thump_below(e):
            return True
        if self._top_string_stands_out(window, e):
            return True
        if p.newest_below and self._below_only_at_the_strike(window, e):
            return True
        # A treble note is judged by the strongest peak below it instead (see peak_below).
        return e.freq_hz >= p.peak_below_from_hz and (
            peak_below(window, e.freq_hz, rate) <= p.max_peak_below
        )

    def _below_only_at_the_strike(self, window: np.ndarray, e: PitchEstimate) -> bool:
        """Whether the energy below a middle estimate (from `newest_below_from_hz` up to
        `peak_below_from_hz`) is the strike's alone: the window's newest `newest_below_s`
        hold none (`max_energy_below`), and the whole window holds none between `thump_hz`
        and 0.75 x the estimate, where a lower note's partials would lie. The hammer's thump
        and the soundboard's lowest modes (under `thump_hz`) fill a short window's start and
        die within tens of ms; a lower string whose partial YIN took rings on into the newest
        samples. Under its lower bound the estimate's own band reaches down into the thump;
        above `peak_below_from_hz` `peak_below` judges.

        FluidR3_GM's D#4-F#4 sample zone (an evaluation piano) holds a thump at 100-135 Hz
        as loud as its strongest partial over the first 20 ms: its loud E4 in a room read
        64.30-64.35 at 0.70-0.73 from its 17 ms window on, refused with 0.19-0.29 of the
        power below, and was named at 98 ms (now at 40 ms, in its 35 ms window). Chosen on
        that zone's notes, whose late ones held p95 at the target: evaluation keys 10 named
        sooner, melodies FluidR3_GM in a room F1 0.8771 -> 0.8808, right notes from C3 up
        later than 50 ms 141 -> 127. On the development sets: knocked top keys one key more
        named wrong (none before), a freepats bass line in a room one more wrong note, the
        rest unchanged."""
        p = self.params
        newest = round(p.newest_below_s * self.rate)
        if len(window) < 2 * newest or not (
            p.newest_below_from_hz <= e.freq_hz < p.peak_below_from_hz
        ):
            return False
        if energy_below(window[-newest:], e.freq_hz, round(self.rate)) > p.max_energy_below:
            return False
        power, bin_hz = self._spectrum(window)
        return self._nothing_between_thump_and(power, bin_hz, e.freq_hz)

    def _nothing_between_thump_and(self, power: np.ndarray, bin_hz: float, freq_hz: float) -> bool:
        """Whether `power` (a power spectrum, bins `bin_hz` wide) holds at most
        `max_energy_below` of its power above 20 Hz between `thump_hz` and 0.75 x `freq_hz`:
        where a lower note's partials would lie, clear of the strike's thump."""
        p = self.params
        total = float(power[int(20.0 / bin_hz) + 1 :].sum())
        between = float(power[int(p.thump_hz / bin_hz) + 1 : int(0.75 * freq_hz / bin_hz)].sum())
        return total > 0.0 and between <= p.max_energy_below * total

    def _top_string_stands_out(self, window: np.ndarray, e: PitchEstimate) -> bool:
        """Whether the estimate is a top string that stands out of the window (see
        `SpectralCheck.top_string_hz`): the strongest line above 100 Hz by 3 dB, on the
        estimate's key, or so in the window's newest samples (`_top_string_rings_on`). What
        lies below it is then its own hammer's knock and the body's
        rumble, which a soft top key hardly outweighs in the first tens of ms (and whose
        strongest peak is far over `max_peak_below` of the string). On the key, not within
        a few %: up there a semitone is 6 %, and YIN's early estimate of a top string can lie
        most of a semitone sharp of its line."""
        pending = self._pending
        if pending is not None and pending.lone_top_key == self._key(e.midi_float):
            return True
        return self._top_string_rings_on(e) or self._top_string_in_window(window, e)

    def _top_string_in_window(self, window: np.ndarray, e: PitchEstimate) -> bool:
        """`_top_string_stands_out` over the whole window."""
        if e.freq_hz < self._spectral.partial_max_hz:
            return False
        string_hz = self._spectral.top_string_hz(window)
        a4_hz = self.params.a4_hz
        return string_hz is not None and round(freq_to_midi(string_hz, a4_hz)) == round(
            e.midi_float
        )

    def _top_string_rings_on(self, e: PitchEstimate) -> bool:
        """Whether, with no note sounding, the newest `top_newest_s` of the window show the
        estimate's top string standing out (`SpectralCheck.top_string_hz`, by 3 dB over
        every line above `thump_hz`) with no line at half its frequency (`max_peak_below` of
        it: a lower string's second partial). The window starts at the strike, and a knock's
        modes (a few hundred Hz to 2 kHz) hold their part of it for as long as it grows,
        while in its newest samples they have died away and the string rings on. A real C8
        (Salamander's) was read right in the windows from 81 ms on, and refused: the knock's
        modes held 17-24 % of what the strike added between 200 Hz and the string, and the
        body's thump a line up to 2.5 times the string's; it gave no note. Over the newest
        30 ms from 35 ms on, its line stood 5-8 dB over every other above 200 Hz. The thump
        (under 200 Hz) rings longer than the knock, and a bass string is not what a top
        string's estimate must be told from, so it does not count here. Synthetic knocked
        top keys (tests/test_top_keys.py): 2 more of 592 right, 2 sooner, none otherwise;
        development keys and melodies unchanged. Only in windows at least twice as long,
        so that the newest part lies past the knock's loudest."""
        p = self.params
        if not p.top_rings_on or self._sounding is not None:
            return False
        size = int(p.top_newest_s * self.rate)
        if e.window < 2 * size or e.freq_hz < self._spectral.partial_max_hz:
            return False
        newest = self._buffer[self._filled - size : self._filled]
        string_hz = self._spectral.top_string_hz(newest, floor_hz=p.thump_hz)
        if string_hz is None:
            return False
        if self._key(freq_to_midi(string_hz, p.a4_hz)) != self._key(e.midi_float):
            return False
        return octave_below(newest, string_hz, round(self.rate)) < p.max_peak_below

    def _top_string_alone(self, window: np.ndarray, e: PitchEstimate) -> bool:
        """Whether the estimate is a top string that stands out (`_top_string_stands_out`)
        with no note an octave down whose second partial it may be: the line at half its
        frequency under `max_peak_below` of its own. A steady run may then decide in the
        short windows too, and past them with the knock's energy below it: a soft top key in
        a room, which YIN finds at 0.5-0.67 in every window from 12 ms on (csound's F#7 and
        A7), decided at 25-28 ms instead of 92-98 ms or never. Where YIN's period was a
        stiff string's second partial standing out (synthetic knocked C6 and B6 in a room),
        the line an octave down held 0.4 of it."""
        if self._top_string_rings_on(e):
            return True
        if not self._top_string_in_window(window, e):
            return False
        return octave_below(window, e.freq_hz, round(self.rate)) < self.params.max_peak_below

    def _only_thump_below(self, e: PitchEstimate) -> bool:
        """Whether, with no note sounding, the energy below the estimate is only the strike's
        thump (the soundboard's lowest modes, below `thump_hz`) and the room it rang into.
        Under a soft note an octave or more above it the thump holds a good part of a short
        window. What the strike added must then hold next to nothing between the thump and
        the estimate (a bass note whose upper partial YIN took has its partials there), and
        be the estimate's note (`_rise_is_the_estimate`)."""
        p = self.params
        pending = self._pending
        if self._sounding is not None or pending is None:
            return False
        if e.freq_hz < 2.0 * p.thump_hz:
            return False  # the thump is not an octave below: it can't be told from the note
        rise = self._strike_added(pending, e.window)
        bin_hz = self._bin_hz(rise)
        if not self._nothing_between_thump_and(rise, bin_hz, e.freq_hz):
            return False
        return self._rise_is_the_estimate(rise, e)

    def _only_old_note_below(self, e: PitchEstimate) -> bool:
        """Whether the energy below the estimate is the old string's, which rings on in
        legato (a fourth below lies right at energy_below's 0.75 split) and would otherwise
        hold back every estimate above it until the longest window is given up. What the
        strike added has the new note only; the estimate is an upper partial of a lower new
        note (an octave, a twelfth... up: YIN's and the comb's usual slip) exactly when,
        for some k, the harmonics of freq / k that are not multiples of k rose too."""
        p = self.params
        if not p.legato_below_check:
            return False
        sounding = self._sounding
        if sounding is None:
            return False
        # The rise shows a lower note only where the window tells it from the old string's
        # partials: a candidate f/k within a few Hz of one of them (a repeated key, a
        # semitone) is lost in the old partial's lobe, before and after the strike alike.
        if not all(self._apart_from_old_partials(e.freq_hz / k, e.window) for k in _BELOW_FACTORS):
            return False
        # The same window for every k: one pair of spectra serves them all.
        rise = self._rise_since_strike(e.window)
        if rise is None:
            return False  # no view before the strike: a lower new note can't be ruled out
        return self._rise_is_the_estimate(rise, e)

    def _rise_is_the_estimate(self, rise: np.ndarray, e: PitchEstimate) -> bool:
        """Whether what the strike added is the estimate's note: its own peak lies on the
        estimate's key (see `_new_peak_hz`) and no lower note rose (`_lower_note_rose`)."""
        freq_hz = self._new_peak_hz(rise, e.freq_hz)
        if round(freq_to_midi(freq_hz, self.params.a4_hz)) != round(e.midi_float):
            return False  # the new string itself sounds on another key
        return not any(self._lower_note_rose(rise, freq_hz, k) for k in _BELOW_FACTORS)

    def _apart_from_old_partials(self, freq_hz: float, size: int) -> bool:
        """Whether a window of `size` samples tells `freq_hz` from the sounding note's
        nearest partial: it holds `legato_below_beats` beats between the two."""
        sounding = self._sounding
        if sounding is None:
            return True
        nearest = max(1, round(freq_hz / sounding.freq_hz)) * sounding.freq_hz
        return size / self.rate * abs(freq_hz - nearest) >= self.params.legato_below_beats

    def _new_peak_hz(self, rise: np.ndarray, freq_hz: float) -> float:
        """The strongest peak of what the strike added within +-5 % of `freq_hz`. In legato
        YIN's period lies between the old string's and the new one's while the two beat (up
        to half a semitone off); the rise holds the new string alone, and its harmonics are
        where the lower-note test must look for it."""
        bin_hz = self._bin_hz(rise)
        lo = int(0.95 * freq_hz / bin_hz)
        hi = min(len(rise), int(1.05 * freq_hz / bin_hz) + 2)
        return (lo + int(np.argmax(rise[lo:hi]))) * bin_hz if hi > lo else freq_hz

    def _lower_note_rose(
        self, rise: np.ndarray, freq_hz: float, k: int, ratio: float | None = None
    ) -> bool:
        """Whether the strike added a note at freq_hz / k, judged on `rise` (what the strike
        added to the power spectrum): its harmonics that are not multiples of k rose too, to
        `ratio` (default `legato_below_ratio`) of those that are (see
        `pitch.missing_harmonic_factor` for the idea).

        Only harmonics from `thump_hz` up to `lower_note_top` times freq_hz
        count. Every strike adds the hammer's thump and the soundboard's lowest modes below
        about 200 Hz, a lump a window of a few periods cannot tell from a lower string's
        partial there. Above three times the estimate the +-3 % bands of a lower note's
        harmonics crowd together and catch the new string's own partials, which a stiff
        string pushes sharp; a lower note shows itself in its first few harmonics anyway.

        The default share is 0.15 since 2026-11-23 (0.1 before). A strike's first tens of ms
        carry its hammer's noise, and a piano whose other strings are free rings them in
        sympathy: under FluidR3_GM's E4 (an evaluation piano) A2's other partials held about
        0.17 of the shared ones in a 29 ms window, so its notes in the D#4-F#4 zone waited
        past the windows that read them. Development melodies (360 clips), keys and synthetic
        stiff strings unchanged; knocked top keys 201 -> 210 right (176 -> 185 within 50 ms),
        94 -> 91 wrong; evaluation melodies: FluidR3_GM in the room F1 0.868 -> 0.872, right
        notes from C3 up later than 50 ms 144 -> 138. At 0.2 a development melody's E4
        (csound, whose odd partials are weak) was named E5."""
        p = self.params
        bin_hz = self._bin_hz(rise)
        top_hz = min(0.45 * self.rate, p.lower_note_top * freq_hz)
        energies = harmonic_energies(rise, bin_hz, freq_hz / k, top_hz)
        first = int(np.ceil(p.thump_hz * k / freq_hz))  # harmonics below: thump
        energies[: max(0, first - 1)] = 0.0
        shared, other = split_by_multiples(energies, k)
        if ratio is None:
            ratio = p.legato_below_ratio
        return shared <= 0.0 or other >= ratio * shared

    def _rise_since_strike(self, size: int) -> np.ndarray | None:
        """While a note sounds: the power spectrum of the newest `size` samples less that of
        the `size` samples just before the pending strike (clipped at 0), or None when no
        note sounds or the buffer does not reach back that far."""
        pending = self._pending
        if self._sounding is None or pending is None:
            return None
        strike = self._filled - (self._position - pending.onset)
        if strike - size < 0:
            return None
        return self._strike_added(pending, size)

    def _strike_added(self, pending: _PendingNote, size: int) -> np.ndarray:
        """The power spectrum of the newest `size` samples less that of the `size` samples
        just before the pending strike, clipped at 0; the spectrum alone when the buffer does
        not reach back that far (the stream's start)."""
        added = power_spectrum(self._buffer[self._filled - size : self._filled])
        strike = self._filled - (self._position - pending.onset)
        if strike - size >= 0:
            added -= power_spectrum(self._buffer[strike - size : strike])
            np.maximum(added, 0.0, out=added)
        return added

    def _give_up_or_guess(self, pending: _PendingNote, events: list[NoteEvent]) -> None:
        candidates = [e for e in pending.estimates if self._in_range(e)]
        best = max(candidates, key=lambda e: (e.window, e.confidence), default=None)
        if best is not None and best.confidence >= self.params.min_confidence:
            window = self._buffer[self._filled - best.window : self._filled]
            best = self._octave_above_seen(window, best, pending.estimates)
            self._start_note(pending, best, events)
        elif (bass := self._bass_by_partials(pending)) is not None:
            self._start_note(pending, bass, events)
        elif (read := self._read_strike(pending)) is not None:
            self._start_note(pending, read, events)
        self._pending = None

    def _read_strike(self, pending: _PendingNote) -> PitchEstimate | None:
        """The strike reader's key (the note model's), when every rule has given up: from
        `history_s` before the strike to now, as an estimate over the longest window."""
        reader = self._strike_reader
        if reader is None:
            return None
        since_strike = self._position - pending.onset
        before = min(round(reader.history_s * self.rate), self._buffer_len - since_strike)
        audio = self._buffer[self._filled - since_strike - before : self._filled]
        reading = reader(audio, self.rate, before)
        if reading is None:
            return None
        _, freq_hz, confidence = reading
        size = self._pitch.longest
        midi_float = freq_to_midi(freq_hz, self.params.a4_hz)
        return PitchEstimate(freq_hz, confidence, size, midi_float, size * freq_hz / self.rate)

    def _bass_by_partials(self, pending: _PendingNote) -> PitchEstimate | None:
        """A bass key that no window decided, named by the peaks its partials explain in the
        longest window (`pitch.partial_series_key`). Where YIN reads something else all
        along: a body resonance that rules the window under a string with a weak fundamental
        (the development pianos' A0-E1 in the rooms gave no note at all). Only for a strike
        that rose `bass_by_partials_rise_db` over the noise floor (noise starting from silence
        has peaks a series explains by chance), not at the stream's start (the room's noise
        is then an onset out of the silence before the stream, and the floor has not learned
        it yet), and with no note sounding (a ringing string's partials would be explained
        too)."""
        p = self.params
        if not p.bass_by_partials or not self._series_may_speak(pending):
            return None
        size = self._pitch.longest
        series = self._newest_series(
            size, p.bass_by_partials_highest_midi, p.bass_by_partials_share
        )
        return None if series is None else self._series_estimate(series, size)

    def _newest_series(
        self, size: int, highest_midi: int, min_share: float
    ) -> PartialSeries | None:
        """`pitch.partial_series_key` from the lowest key to `highest_midi` on the newest
        `size` analysis samples, padded to 4x the longest window (the series of A0 lies
        27.5 Hz apart), with `bass_by_partials_explained` peaks and `min_share`."""
        p = self.params
        power, bin_hz = self._newest_spectrum(size)
        return partial_series_key(
            power,
            bin_hz,
            p.lowest_midi,
            highest_midi,
            p.a4_hz,
            min_explained=p.bass_by_partials_explained,
            min_share=min_share,
        )

    def _spectrum(self, samples: np.ndarray) -> tuple[np.ndarray, float]:
        """`pitch.power_spectrum` of analysis samples and its bin width in Hz."""
        power = power_spectrum(samples)
        return power, self._bin_hz(power)

    def _bin_hz(self, spectrum: np.ndarray) -> float:
        """The bin width in Hz of a power spectrum of analysis samples (rfft: n_fft / 2 + 1
        bins)."""
        return self.rate / (2 * (len(spectrum) - 1))

    def _newest_spectrum(self, size: int) -> tuple[np.ndarray, float]:
        """Power spectrum of the newest `size` analysis samples, padded to 4x the longest
        window, and its bin width. Kept for the hop: a decision asks for the same one up to
        three times (`_accept`, then `_named_by_bass_series` and `_no_string_behind`)."""
        cached = self._newest_power
        if cached is not None and cached[0] == (self._position, size):
            return cached[1], cached[2]
        window = self._buffer[self._filled - size : self._filled]
        power = power_spectrum(window, 4 * self._pitch.longest)
        bin_hz = self._bin_hz(power)
        self._newest_power = ((self._position, size), power, bin_hz)
        return power, bin_hz

    def _series_estimate(self, series: PartialSeries, size: int) -> PitchEstimate:
        """A series' key as an estimate over `size` samples, its share as the confidence."""
        midi_float = freq_to_midi(series.freq_hz, self.params.a4_hz)
        periods = size * series.freq_hz / self.rate
        return PitchEstimate(series.freq_hz, series.share, size, midi_float, periods)

    def _series_may_speak(self, pending: _PendingNote) -> bool:
        """Whether a partial series may name this strike's key (see `_bass_by_partials`)."""
        p = self.params
        return (
            self._sounding is None
            and pending.onset >= p.bass_by_partials_after_s * self.rate
            and pending.peak_dbfs - self._floor.dbfs >= p.bass_by_partials_rise_db
        )

    def _named_by_bass_series(self, pending: _PendingNote, e: PitchEstimate) -> PitchEstimate:
        """The key about to be named, or, when the strike's own samples are explained by a
        bass key's partials, that key (`pitch.partial_series_key` from the lowest key to
        `bass_series_highest_midi`, `bass_series_share` of the peaks in its band).

        In a room YIN can settle on a period the string does not have: the reverberation
        and noise fill each window and a bass string's weak fundamental is under them, while
        its stretched partials stand clear of them in the spectrum. In the development rooms
        freepats' C1 and C#1 (soft) were named G#3 and A3 at 92 ms (read 56.43 and 57.46,
        between keys), its A#0 (loud) D1 and E1, its F#2 G#3 and its E2 F3, where the
        string's own series explained 10-14 of the strike's peaks and 0.77-1.0 of those in
        its band. The samples since the strike only (the decided window), padded as the
        longest: a short window does not resolve a low series and the rule does not speak;
        the room before the strike is no part of it. Only where `_bass_by_partials` may
        speak, and not when the named key is a partial of the series' key (an octave or a
        twelfth up): there the lower key's series explains the named key's peaks as well,
        and only its odd partials, as weak as noise, would tell them apart. No development
        key needed that guard; it keeps the rule from the one mistake a series makes by its
        nature. On the development pianos' isolated keys 8 of 25 wrong were named right,
        none the other way (at a share of 0.7, one right key was named another; at 0.8, one
        fewer was mended), and no development melody or knocked top key changed."""
        p = self.params
        named = round(e.midi_float)
        if (
            not p.bass_series_check
            or named > p.bass_series_highest_midi
            or not self._series_may_speak(pending)
        ):
            return e
        series = self._newest_series(e.window, p.bass_series_highest_midi, p.bass_series_share)
        if series is None or series.midi == named:
            return e
        ratio = midi_to_freq(named, p.a4_hz) / midi_to_freq(series.midi, p.a4_hz)
        if round(ratio) >= 1 and abs(ratio - round(ratio)) < 0.03 * ratio:
            return e  # the named key is a partial of the series' key
        return self._series_estimate(series, e.window)

    def _no_string_behind(self, e: PitchEstimate) -> bool:
        """Whether a bass estimate (up to `bass_string_highest_midi`, no note sounding) has no
        string behind it: neither its key nor the key below (a stiff string reads sharp: see
        `_bass_refined`) explains `bass_string_explained` of the spectral peaks in the
        samples since the strike (`pitch.partials_explained`).

        A hammer's knock under a soft top key rumbles: a few body modes at 40-120 Hz that
        outlast it, which YIN reads as a bass period in the long windows, while the top
        string stands out of no window. The knocked top keys of tests/test_top_keys.py
        were named a bass key 241 times in 592; at the moment they were named, that key's
        series explained 0-4 of the strike's peaks in 233 of them. A struck bass string
        explains more: on the development pianos every bass key named right, A0-B2, 6-15
        when decided (and from A0 to B3 all but 4 of 917 at least 5). Such an estimate is
        not accepted, and a strike left with only such estimates gives no note rather than
        a light five octaves from the key. Development isolated keys and melodies: no note
        changed; knocked top keys: 8 more right (179 -> 187 of 592), and 241 -> 39 named a
        bass key (the others now give no note; at 4 peaks 186 right, at 6, 189)."""
        p = self.params
        named = round(e.midi_float)
        if not p.bass_string_check or named > p.bass_string_highest_midi:
            return False
        if self._sounding is not None:
            return False
        power, bin_hz = self._newest_spectrum(e.window)
        keys = (named, named - 1)
        explained = partials_explained(
            power, bin_hz, keys, p.lowest_midi, p.bass_series_highest_midi, p.a4_hz
        )
        return explained < p.bass_string_explained

    # -- note tracker -----------------------------------------------------------------------
    def _seconds(self, analysis_position: int) -> float:
        return analysis_position / self.rate - self._decimator.delay_s

    def _emitted_s(self) -> float:
        """The input consumed when the current hop was decided, as the daemon feeds it: one
        hop of input per block, so a hop is decided once `factor` x its end has come in
        (never more than has been fed)."""
        consumed = min(self._consumed_input, self._position * self._factor)
        return round(consumed / self.input_rate, 4)

    def _start_note(self, pending: _PendingNote, e: PitchEstimate, events: list[NoteEvent]) -> None:
        """The note-on for the strike (none when no string is behind a bass estimate: see
        `_no_string_behind`)."""
        e = self._named_by_bass_series(pending, e)
        if self._no_string_behind(e):
            return
        midi = self._key(e.midi_float)
        if pending.soft and (
            (self._sounding is not None and self._sounding.midi == midi)
            or self.level_dbfs < pending.peak_dbfs - self.params.soft_onset_died_db
        ):
            return  # no string was struck (see _soft_onset_factor)
        onset_pos = pending.onset
        if self._sounding is not None:
            self._stop_note(onset_pos, events)
        cents = round(100.0 * (e.midi_float - midi), 1)
        events.append(
            NoteOn(
                midi=midi,
                name=midi_to_name(midi),
                freq_hz=round(e.freq_hz, 2),
                cents=cents,
                velocity=self._velocity(pending.peak_dbfs),
                onset_s=round(max(0.0, self._seconds(onset_pos)), 4),
                emitted_s=self._emitted_s(),
            )
        )
        self._sounding = _SoundingNote(midi, e.freq_hz, pending.peak_dbfs)

    def _key(self, midi_float: float) -> int:
        """The key a pitch is on. Above the highest key it is the highest: a grand's top
        octave is tuned sharp (stretched), and a real one's C8 (Salamander's, a Yamaha C5)
        rings 87 cents over equal temperament, nearer C#8, which no piano has."""
        return min(round(midi_float), self.params.highest_midi)

    def _stop_note(self, analysis_position: int, events: list[NoteEvent]) -> None:
        note = self._sounding
        assert note is not None
        events.append(
            NoteOff(
                midi=note.midi,
                name=midi_to_name(note.midi),
                offset_s=round(max(0.0, self._seconds(analysis_position)), 4),
                emitted_s=self._emitted_s(),
            )
        )
        self._sounding = None

    def _check_release(self, level: float, floor: float, events: list[NoteEvent]) -> None:
        note = self._sounding
        assert note is not None
        note.peak_dbfs = max(note.peak_dbfs, level)
        p = self.params
        too_quiet = level < max(p.min_level_dbfs, floor + p.release_above_floor_db)
        if too_quiet or level < note.peak_dbfs - p.release_drop_db:
            self._stop_note(self._position, events)

    def _velocity(self, peak_dbfs: float) -> int:
        p = self.params
        scaled = 1 + 126 * (peak_dbfs - p.velocity_floor_dbfs) / p.velocity_range_db
        return int(min(127, max(1, round(scaled))))
