"""Digit strings from a CTC model's per-frame probabilities, in numpy (inference never needs torch for this).

A string model's classes are BLANK then the ten digits; its output is (frames, 11) probabilities. Greedy decoding
takes each frame's best class, merges repeats and drops blanks; beam search keeps the `beam` likeliest prefixes
(blank/non-blank split, Graves 2012). Each digit's confidence is its highest frame probability in its run of frames.
`word_segments` and `rescore` let a single-digit model hear each decoded digit again (recognizer.StringRecognizer).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .audio import eval_noise, in_own_silence

BLANK = "<blank>"
STRING_CLASSES = [BLANK] + [str(d) for d in range(10)]
# Peaks closer than this are one word, the model wavering inside it: no digit is said that fast. In seconds, not
# frames: three 80 ms frames of an emb-ctc model would merge two digits said quickly (experiments/strings/README.md,
# "Close peaks").
MIN_GAP_S = 0.12
# Where a digit's word ends, from its peak: a string model's peak comes shortly before its word's end (measured in
# experiments/strings/README.md, "Rescoring"); a word runs from the previous word's end to its own, PAD_S wider.
PEAK_TO_END_S = 0.07
PAD_S = 0.03
FIRST_WORD_S = 0.6  # how far before its end the first word may start
# Background put around a whole utterance before decoding: the model looks ~150 ms ahead, so a word that ends where
# the audio ends (a tightly trimmed file) is only heard with some background after it. The background is the clip's
# own (its quietest 10 ms), not zeros: each clip's mel bands are normalised over its frames, and digital silence
# would shift them (experiments/strings/README.md, "Edges").
LEAD_PAD_S = 0.1
TAIL_PAD_S = 0.2
# A whole utterance whose first decoding finds its digits coming faster than STEADY_PACE a second (first peak to
# last) is slowed to that pace, pitch kept (tempo.change_tempo), and decoded again: quick readers lose digits that
# the same number slowed keeps; numbers at that pace or slower are left as said (experiments/strings/README.md,
# "Slowed down").
STEADY_PACE = 3.5
SLOWEST_TEMPO = 0.6  # slower than this the words stop sounding like the speech the model learnt from
LOGMEL_STRIDE = 4  # feature hops per output frame of a log-mel string model (models.ctc_tcn)
EMBEDDING_STEP_S = 0.08  # seconds between speech_embedding vectors, one output each (speech_embedding's step)
# An emb-ctc peak comes at the first vector whose 775 ms window holds the whole word, so the word ends about
# EMBEDDING_PEAK_TO_END_S after the peak vector's time; the stretch the single-digit model hears again is cut to end
# EMBEDDING_CUT_S after it, which rescored best (both measured: experiments/strings/README.md, "On the
# speech_embedding encoder").
EMBEDDING_PEAK_TO_END_S = 0.35
EMBEDDING_CUT_S = 0.25
# A vector's window ends this long after the vector's time (775 ms window, 0.4 s of edge put before the audio), and
# emb-ctc looks `lookahead` vectors further (models.emb_ctc's default below): a live stream holds a digit that long.
EMBEDDING_WINDOW_AHEAD_S, EMB_CTC_LOOKAHEAD = 0.382, 3


def is_string_config(config: object) -> bool:
    """Whether a run's config (as saved in config.json) is a digit-string run's: only those have an assembly."""
    return isinstance(config, dict) and "assembly" in config


@dataclass(frozen=True)
class Timing:
    """When a string model's outputs happen, from its run config (`timing`): seconds per output frame; how long
    after a peak frame's time (frame x frame_s) its digit's word is cut to end for rescoring (cut_s) and the time the
    digit is given (word_end_s); and how long after that a live stream must wait before the output there can no
    longer change (hold_s; 0 for a log-mel model, whose hold is string_stream.HOLD_MS, measured); and how many
    frames apart two peaks must be to be two digits (min_gap, from MIN_GAP_S)."""

    frame_s: float
    cut_s: float
    word_end_s: float
    hold_s: float
    min_gap: int


def timing(config: dict) -> Timing:
    """A string model's Timing from its run config (as saved in config.json or a sidecar). A log-mel model's digit
    is timed at its peak frame's end; an emb-ctc model's window and lookahead set its hold."""
    features = config["features"]
    if features.get("kind") == "speech_embedding":
        args = config.get("model_args", {})
        ahead = int(args.get("lookahead", EMB_CTC_LOOKAHEAD))
        hold = EMBEDDING_WINDOW_AHEAD_S + ahead * EMBEDDING_STEP_S - EMBEDDING_PEAK_TO_END_S
        frame_s = EMBEDDING_STEP_S / int(args.get("outputs_per_vector", 1))
        return Timing(frame_s, EMBEDDING_CUT_S, EMBEDDING_PEAK_TO_END_S, hold, min_gap_frames(frame_s))
    frame_s = LOGMEL_STRIDE * int(features["hop_length"]) / int(config["audio"]["sample_rate"])
    return Timing(frame_s, PEAK_TO_END_S, frame_s, 0.0, min_gap_frames(frame_s))


def min_gap_frames(frame_s: float) -> int:
    """The fewest output frames between two peaks that are two digits: MIN_GAP_S rounded up (3 at 40 ms, 2 at 80)."""
    return max(1, math.ceil(MIN_GAP_S / frame_s - 1e-9))


@dataclass(frozen=True)
class DigitHit:
    """One digit of a decoded string: which, how sure, and the output frame where it peaked."""

    digit: str
    confidence: float
    frame: int


def greedy(probs: np.ndarray) -> list[DigitHit]:
    """Best class per frame, repeats merged, blanks dropped; a digit's confidence is its peak probability."""
    best = probs.argmax(axis=1)
    hits: list[DigitHit] = []
    prev = 0
    for t, k in enumerate(best.tolist()):
        if k != 0 and k != prev:
            hits.append(DigitHit(STRING_CLASSES[k], float(probs[t, k]), t))
        elif k != 0 and k == prev and probs[t, k] > hits[-1].confidence:
            hits[-1] = DigitHit(hits[-1].digit, float(probs[t, k]), t)
        prev = k
    return hits


def merge_close(hits: list[DigitHit], probs: np.ndarray, min_gap: int) -> list[DigitHit]:
    """Hits whose peaks are fewer than `min_gap` frames apart made one: the model wavering between two digits inside
    one word, not two words (no digit is said that fast). The merged digit is the likeliest over the frames spanned."""
    out: list[DigitHit] = []
    for h in hits:
        if out and h.frame - out[-1].frame < min_gap:
            first = out[-1].frame
            span = probs[first : h.frame + 1, 1:].sum(axis=0)
            k = int(span.argmax()) + 1
            t = first + int(probs[first : h.frame + 1, k].argmax())
            out[-1] = DigitHit(STRING_CLASSES[k], float(probs[t, k]), t)
        else:
            out.append(h)
    return out


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def beam_search(probs: np.ndarray, beam: int = 8, prune: float = 1e-4) -> tuple[str, float]:
    """The likeliest digit string under CTC's prefix beam search, and its log probability.

    Classes below `prune` in a frame are not extended (they cannot change the top prefixes).
    """
    logp = np.log(np.maximum(probs, 1e-30))
    beams: dict[str, tuple[float, float]] = {"": (0.0, -math.inf)}  # prefix -> (log p ending blank, non-blank)
    for t in range(len(probs)):
        nxt: dict[str, list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        cands = [k for k in np.flatnonzero(probs[t] >= prune).tolist() if k != 0]
        for prefix, (pb, pnb) in beams.items():
            total = _logsumexp(pb, pnb)
            entry = nxt[prefix]
            entry[0] = _logsumexp(entry[0], total + logp[t, 0])
            last = prefix[-1] if prefix else None
            for k in cands:
                ch = STRING_CLASSES[k]
                if ch == last:  # the same digit again needs a blank between; without one it continues the run
                    entry[1] = _logsumexp(entry[1], pnb + logp[t, k])
                    ext = nxt[prefix + ch]
                    ext[1] = _logsumexp(ext[1], pb + logp[t, k])
                else:
                    ext = nxt[prefix + ch]
                    ext[1] = _logsumexp(ext[1], total + logp[t, k])
        ranked = sorted(nxt.items(), key=lambda kv: -_logsumexp(*kv[1]))[:beam]
        beams = {p: (v[0], v[1]) for p, v in ranked}
    prefix, (pb, pnb) = max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))
    return prefix, _logsumexp(pb, pnb)


def decode(probs: np.ndarray, beam: int = 1, *, min_gap: int) -> list[DigitHit]:
    """Greedy (beam 1) or beam-search digits. Greedy peaks under `min_gap` frames apart are merged (merge_close).
    Beam search keeps greedy's (merged) hits where the two strings agree, and otherwise places each of its digits at
    its likeliest frame after the previous one, unmerged: those frames are not peaks, and beam search has already
    weighed a word against two."""
    hits = greedy(probs)
    if beam > 1:
        text, _ = beam_search(probs, beam)
        if text != "".join(h.digit for h in hits):
            return _align(text, probs)
    return merge_close(hits, probs, min_gap)


def _align(text: str, probs: np.ndarray) -> list[DigitHit]:
    """Frames and confidences for a beam-search string: each digit at its likeliest frame after the previous one."""
    out: list[DigitHit] = []
    start, n = 0, len(probs)
    for i, ch in enumerate(text):
        k = STRING_CLASSES.index(ch)
        end = max(start + 1, n - (len(text) - i - 1))
        t = start + int(np.argmax(probs[start:end, k]))
        out.append(DigitHit(ch, float(probs[t, k]), t))
        start = min(t + 1, n - 1)
    return out


def steady_tempo(hits: list[DigitHit], frame_s: float, pace: float = STEADY_PACE) -> float:
    """The tempo to hear an utterance at, given its first decoding's digits: 1 unless they came faster than `pace` a
    second, else what brings them to it (never under SLOWEST_TEMPO)."""
    if len(hits) < 2 or hits[-1].frame <= hits[0].frame:
        return 1.0
    heard = (len(hits) - 1) / ((hits[-1].frame - hits[0].frame) * frame_s)
    return 1.0 if heard <= pace else max(pace / heard, SLOWEST_TEMPO)


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance (substitutions, insertions, deletions each cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def string_metrics(refs: list[str], hyps: list[str]) -> dict:
    """Digit error rate (edit distance / reference digits), exact-match share, and both per reference length."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = [edit_distance(r, h) for r, h in zip(refs, hyps)]
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(refs):
        by_len[len(r)].append(i)

    def summary(idx: list[int]) -> dict:
        digits = sum(len(refs[i]) for i in idx)
        return {
            "strings": len(idx),
            "digit_error_rate": sum(errors[i] for i in idx) / max(1, digits),
            "exact_match": sum(errors[i] == 0 for i in idx) / max(1, len(idx)),
        }

    return {**summary(list(range(len(refs)))), "by_length": {n: summary(ix) for n, ix in sorted(by_len.items())}}


def pad_edges(wave: np.ndarray, sample_rate: int, lead: bool = True, tail: bool = True) -> tuple[np.ndarray, float]:
    """The audio with LEAD_PAD_S of its own background before it (`lead`) and TAIL_PAD_S after it (`tail`: it is
    the whole utterance): evaluation's fixed noise pattern scaled into the clip's quietest 10 ms, as pad_mode
    "noise" fills a window (audio.fit_windows). Returns it and the lead in seconds (to take off the times in it)."""
    x = np.asarray(wave, np.float32)
    if not (lead or tail):
        return x, 0.0
    before = int(LEAD_PAD_S * sample_rate) if lead else 0
    after = int(TAIL_PAD_S * sample_rate) if tail else 0
    background = in_own_silence(eval_noise(before + after), x, max(1, sample_rate // 100))
    return np.concatenate([background[:before], x, background[before:]]), before / sample_rate


def word_segments(
    hits: list[DigitHit], wave: np.ndarray, sample_rate: int, frame_s: float, peak_to_end_s: float = PEAK_TO_END_S
) -> list[np.ndarray]:
    """Each hit's stretch of audio: from the previous word's end (the first: FIRST_WORD_S before its own) to its end."""
    ends = [h.frame * frame_s + peak_to_end_s for h in hits]
    out = []
    for i, end in enumerate(ends):
        start = ends[i - 1] if i else end - FIRST_WORD_S
        lo = max(0, int((start - PAD_S) * sample_rate))
        hi = min(len(wave), max(int((end + PAD_S) * sample_rate), lo + 1))
        out.append(wave[lo:hi])
    return out


def rescore(hits: list[DigitHit], probs: np.ndarray, digit_probs: np.ndarray) -> list[DigitHit]:
    """Each hit's digit from the product of the string model's digit probabilities at its peak and the single-digit
    model's (`digit_probs`, (hits, 10)), both over the ten digits; its confidence is that product, normalised.
    A hit whose row is NaN (its stretch was not heard: no speech in it) stays as the string model found it."""
    out = []
    for h, q in zip(hits, digit_probs):
        if np.isnan(q).any():
            out.append(h)
            continue
        p = probs[h.frame, 1:] / max(float(probs[h.frame, 1:].sum()), 1e-12)
        q = np.asarray(q, np.float64) / max(float(np.sum(q)), 1e-12)
        joint = np.sqrt(np.maximum(p, 0) * np.maximum(q, 0))
        joint /= max(float(joint.sum()), 1e-12)
        k = int(joint.argmax())
        out.append(DigitHit(STRING_CLASSES[k + 1], float(joint[k]), h.frame))
    return out
