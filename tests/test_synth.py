"""audiomnist.synth: the voice plan, the perturbations, the FSDD output, missing and failing engines, no orphans.

Engines are real where a test needs real speech (skipped with a reason when absent) and otherwise a fake `flite`
on PATH: a small Python script that writes a tone, so failures and hangs can be staged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from audiomnist import catalog, synth
from audiomnist.errors import AudiomnistError
from audiomnist.sources import parse_label

SR = 16000
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
HAVE_FLITE = shutil.which("flite") is not None
needs_flite = pytest.mark.skipif(not HAVE_FLITE, reason="flite is not installed (apt-get install flite)")

FAKE_FLITE = """\
#!{python}
# Fake flite: '-lv' lists two voices; otherwise writes a 0.3 s tone for the text given with -t to the -o file.
import math, os, struct, sys, time, wave
args = sys.argv[1:]
if "-lv" in args:
    print("Voices available: fake1 fake2 ")
    sys.exit(0)
text, out = args[args.index("-t") + 1], args[args.index("-o") + 1]
if text == os.environ.get("FAKE_FAIL_WORD"):
    sys.exit("fake flite: cannot say " + text)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
freq = 200 + 40 * len(text)
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / 16000)))
                           for i in range(4800)))
"""


@pytest.fixture
def fake_flite_only(tmp_path, monkeypatch) -> Path:
    """PATH holds only a fake flite: espeak-ng and festival look missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "flite"
    script.write_text(FAKE_FLITE.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_voices() -> dict[str, list[synth.Voice]]:
    return {
        "espeak": [synth.Voice("espeak", "en-us", v, g, "america") for v, g in [("f3", "female"), ("m1", "male")]],
        "flite": [synth.Voice("flite", "slt", "", "female", "american")],
        "festival": [synth.Voice("festival", "kal_diphone", "", "male", "american")],
    }


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def clean_recipe(**changes) -> synth.Recipe:
    """A recipe that changes nothing, so one perturbation at a time can be tested."""
    base = synth.make_recipe(0, fake_voices()["flite"][0], np.random.default_rng(0))
    fields = dict(warp=1.0, channel="studio", low_hz=20.0, high_hz=None, tilt=0.0, codec=None,
                  rt60=0.0, snr_db=60.0, noise="white")  # fmt: skip
    return dataclasses.replace(base, **{**fields, **changes})


# ---------------------------------------------------------------------------------------- plan


def test_plan_is_seeded_shares_engines_and_makes_fsdd_speaker_ids():
    voices = fake_voices()
    a, b, c = synth.plan(voices, 12, seed=1), synth.plan(voices, 12, seed=1), synth.plan(voices, 12, seed=2)
    assert a == b
    assert [r.warp for r in a] != [r.warp for r in c]
    assert [r.voice.engine for r in a].count("flite") == 4  # engines take turns
    espeak = [r.voice for r in a if r.voice.engine == "espeak"]
    assert sorted(v.gender for v in espeak) == ["female", "female", "male", "male"]  # and genders too
    assert len({r.speaker for r in a}) == 12
    for r in a:
        label = parse_label(f"7_{r.speaker}_3.wav", "fsdd")
        assert label is not None and label.speaker == r.speaker and label.digit == 7
        assert 0.8 <= r.warp <= 1.2 and r.channel in synth.CHANNELS
    entry = synth.speaker_entry(a[0])
    assert entry["gender"] == a[0].voice.gender and entry["recipe"]["engine"] == a[0].voice.engine
    assert {"rate", "pitch", "warp", "channel", "rt60", "snr_db"} <= set(entry["recipe"])


def test_no_perturb_leaves_out_only_what_it_names_and_keeps_the_voices():
    voices = fake_voices()
    full = synth.plan(voices, 6, seed=3)
    bare = synth.plan(voices, 6, seed=3, off=frozenset(synth.PERTURBATIONS))
    warp_only = synth.plan(voices, 6, seed=3, off=frozenset({"room", "noise", "channel"}))
    for f, b, w in zip(full, bare, warp_only):
        assert (b.speaker, b.voice, b.rate, b.pitch) == (f.speaker, f.voice, f.rate, f.pitch)
        assert (b.warp, b.rt60, b.noise, b.channel, b.codec) == (1.0, 0.0, synth.NO_NOISE, synth.NO_CHANNEL, None)
        assert w.warp == f.warp and w.rt60 == 0.0
    tone = np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR).astype(np.float32)
    y = synth.perturb(tone, SR, bare[0], np.random.default_rng(0))
    start = int(np.argmax(np.abs(y) > 0)) - 1  # the tone's first sample is 0
    assert not y[:start].any() and not y[start + len(tone) :].any()  # no noise, no reverberation tail
    word = y[start : start + len(tone)]
    gain = float(word @ tone / (tone @ tone))
    assert gain > 0 and np.allclose(word, gain * tone, atol=1e-6)  # only the level changed
    with pytest.raises(AudiomnistError, match="unknown echo"):
        synth.plan(voices, 1, seed=0, off=frozenset({"echo"}))
    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    assert parser.parse_args(["out", "--no-perturb", "room, noise"]).no_perturb == {"room", "noise"}
    assert parser.parse_args(["out"]).no_perturb == frozenset()
    with pytest.raises(SystemExit):
        parser.parse_args(["out", "--no-perturb", "warp,echo"])


ESPEAK_EN = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 3  en-uk           --/M      english-mb-en1     mb/mb-en1            (en-gb 3)(en 2)
 5  en-gb-scotland  --/M      English_(Scotland) gmw/en-GB-scotland   (en 4)
 5  variant         --/M      Storm              !v/Storm             (en-us 5)
 5  en-us-nyc       --/M      English_(America,_New_York_City) gmw/en-US-nyc
"""
ESPEAK_VARIANTS = """\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  variant         --/M      Mr_Serious         !v/Mr serious
 5  variant         --/M      Storm              !v/Storm             (en-us 5)
 5  variant         70/F      female1            !v/f1
"""


def test_espeak_listings_give_dialects_without_mbrola_and_every_variant():
    assert synth._espeak_dialects(ESPEAK_EN) == [
        ("en", "british"), ("en-gb-scotland", "scottish"), ("en-us-nyc", "american new york")
    ]  # fmt: skip
    assert synth._espeak_variants(ESPEAK_VARIANTS) == [("Mr serious", "male"), ("Storm", "male"), ("f1", "female")]
    speaker = synth.make_recipe(3, synth.Voice("espeak", "en-us-nyc", "Mr serious"), np.random.default_rng(0))
    assert speaker.speaker == "s00003-espeak-en-us-nyc-mr-serious"


# --------------------------------------------------------------------------------- perturbations


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_resample_shift_moves_a_tone_by_the_factor(factor):
    t = np.arange(SR) / SR
    y = synth.resample_shift(np.sin(2 * np.pi * 440 * t).astype(np.float32), factor)
    assert dominant_hz(y, SR) == pytest.approx(440 * factor, rel=0.01)
    assert len(y) == pytest.approx(SR / factor, rel=0.01)


def pitch_hz(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch of the loud 40 ms frames."""
    n, found = int(0.04 * sr), []
    for i in range(0, len(x) - n, n // 2):
        frame = x[i : i + n] - x[i : i + n].mean()
        if np.sqrt(np.mean(frame**2)) < 0.05 * np.abs(x).max():
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lag = int(sr / 400) + int(np.argmax(ac[int(sr / 400) : int(sr / 60)]))
        if ac[lag] > 0.4 * ac[0]:
            found.append(sr / lag)
    return float(np.median(found))


def centroid_hz(x: np.ndarray, sr: int) -> float:
    f, p = scipy.signal.welch(x, sr, nperseg=512)
    return float(np.sum(f * p) / np.sum(p))


@needs_flite
@pytest.mark.parametrize("warp", [0.85, 1.18])
def test_warp_moves_the_formants_and_keeps_pitch_and_rate(warp):
    voice = synth.Voice("flite", "kal16")
    ref, sr = synth.synthesize("nine", voice)
    recipe = clean_recipe(warp=warp)
    x, _ = synth.synthesize("nine", voice, *synth.engine_request(recipe, 1.0, 1.0))
    y = synth.resample_shift(x, warp)
    assert pitch_hz(y, sr) == pytest.approx(pitch_hz(ref, sr), rel=0.06)
    assert len(synth.trim(y, sr)) == pytest.approx(len(synth.trim(ref, sr)), rel=0.1)
    assert centroid_hz(y, sr) / centroid_hz(ref, sr) == pytest.approx(warp, abs=0.06)


def test_room_impulse_decays_60_db_at_rt60_with_the_given_direct_ratio():
    rt60, drr = 0.5, 6.0
    h = synth.room_impulse(SR, rt60, drr, np.random.default_rng(0)).astype(np.float64)
    tail = h[1:]
    assert 10 * math.log10(1.0 / np.sum(tail**2)) == pytest.approx(drr, abs=0.01)
    early, late = np.sum(h[1 : SR // 20] ** 2), np.sum(h[SR // 4 : SR // 4 + SR // 20 - 1] ** 2)
    assert 10 * math.log10(early / late) == pytest.approx(60 * 0.25 / rt60, abs=3)  # -30 dB at rt60/2
    assert len(synth.room_impulse(SR, 0.0, drr, np.random.default_rng(0))) == 1


def test_room_tail_shapes_a_batch_as_it_shapes_each_row():
    noise = np.random.default_rng(1).standard_normal((3, 800))
    rt60, drr = np.array([[0.1], [0.3], [0.05]]), np.array([[0.0], [6.0], [15.0]])
    batch = synth.room_tail(noise.copy(), SR, rt60, drr)
    for row in range(3):
        one = synth.room_tail(noise[row].copy(), SR, float(rt60[row, 0]), float(drr[row, 0]))
        np.testing.assert_allclose(batch[row], one, rtol=1e-12)
        assert one[0] == 1.0 and 10 * math.log10(1 / np.sum(one[1:] ** 2)) == pytest.approx(drr[row, 0])


@pytest.mark.parametrize("a", [-0.5, 0.3])
def test_tilt_is_a_first_order_difference_that_keeps_the_dtype(a):
    x = np.random.default_rng(2).standard_normal(4000).astype(np.float32)
    y = synth.tilt(x, a)
    assert y.dtype == np.float32 and y[0] == x[0]
    np.testing.assert_allclose(y[1:], x[1:] - a * x[:-1], rtol=1e-6, atol=1e-6)
    nyquist = (-1.0) ** np.arange(100)
    assert synth.tilt(np.ones(100), a)[1:] == pytest.approx(1 - a)  # gain 1 - a at DC, 1 + a at Nyquist
    assert synth.tilt(nyquist, a)[1:] == pytest.approx((1 + a) * nyquist[1:])


@pytest.mark.parametrize("snr", [10.0, 30.0])
def test_perturb_adds_noise_at_the_speakers_snr(snr):
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(SR // 2) / SR)).astype(np.float32)
    y = synth.perturb(tone, SR, clean_recipe(snr_db=snr), np.random.default_rng(3)).astype(np.float64)
    lead = int(synth.SILENCE_RANGE_S[0] * SR)  # the silence before the word is at least this long
    noise_power = np.mean(y[: lead - 10] ** 2)
    start = int(np.argmax(np.abs(y) > 10 * np.sqrt(noise_power)))
    speech_power = np.mean(y[start + 100 : start + 4000] ** 2)
    measured = 10 * math.log10(speech_power / noise_power)
    assert measured == pytest.approx(snr, abs=synth.TAKE_SNR_JITTER_DB + 1.5)


def test_phone_channel_cuts_the_band_above_3400_hz():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    recipe = clean_recipe(channel="phone", low_hz=300.0, high_hz=3400.0, codec="mulaw8k")
    y = synth.apply_channel(noise, SR, recipe)
    f, p = scipy.signal.welch(y, SR, nperseg=1024)
    band, high = p[(f > 500) & (f < 3000)].mean(), p[f > 4500].mean()
    assert 10 * math.log10(band / high) > 30


# ------------------------------------------------------------------------------- whole corpus


@needs_espeak
def test_corpus_is_deterministic_and_reads_as_fsdd_with_metadata(tmp_path):
    kw = dict(voices=3, takes=1, seed=5, engines=["espeak"], progress=False)
    a = synth.generate(tmp_path / "a", jobs=1, **kw)
    synth.generate(tmp_path / "b", jobs=2, **kw)  # the pool gives the same files as one process
    synth.generate(tmp_path / "c", jobs=1, **{**kw, "seed": 6})
    names = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert a.files == 30 and len(names) == 30 and not a.failed
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = sorted((tmp_path / "c").glob("*.wav"))
    assert [p.read_bytes() for p in other] != [(tmp_path / "a" / n).read_bytes() for n in names]

    cat = catalog.scan(tmp_path / "a", progress=False)
    assert cat.layout == "fsdd" and len(cat.table) == 30 and cat.skipped.empty
    assert cat.table["speaker"].nunique() == 3 and set(cat.table["digit"]) == set(range(10))
    assert set(cat.table["sample_rate"]) == {synth.DEFAULT_SAMPLE_RATE}
    meta = json.loads((tmp_path / "a" / "speakers.json").read_text())
    for speaker, rows in cat.table.groupby("speaker"):
        assert set(rows["gender"]) == {meta[speaker]["gender"]} != {"unknown"}
        assert meta[speaker]["recipe"]["engine"] == "espeak"
    x, sr = sf.read(tmp_path / "a" / names[0])
    assert x.ndim == 1 and sr == synth.DEFAULT_SAMPLE_RATE and 0.1 < len(x) / sr < 3


@needs_espeak
def test_synthesize_says_each_word_with_its_own_rate():
    voice = synth.Voice("espeak", "en-us", "m1")
    slow, fast = synth.synthesize_many(["seven", "seven"], voice, [0.7, 1.4], [1.0, 1.0])
    assert len(synth.trim(*slow)) > 1.5 * len(synth.trim(*fast))
    phrase, sr = synth.synthesize("four, one, five", voice)  # one text is never split, pauses and all
    assert len(phrase) > 2 * len(synth.synthesize("four", voice)[0])


# ------------------------------------------------------------------------------------ digit strings


@pytest.mark.parametrize("oh", [0.0, 1.0])
def test_string_params_draw_lengths_digits_and_zero_forms_from_the_seed(oh):
    recipe = dataclasses.replace(clean_recipe(), oh_probability=oh)
    drawn = [synth.string_params(recipe, np.random.default_rng([1, k]), (2, 5)) for k in range(200)]
    assert drawn == [synth.string_params(recipe, np.random.default_rng([1, k]), (2, 5)) for k in range(200)]
    assert {len(d) for d, *_ in drawn} == {2, 3, 4, 5}
    for digits, words, rate, pitch in drawn:
        said = words.split(" ")  # spaces only: a comma would make the engines pause
        assert len(said) == len(digits) and "," not in words
        expected = [("oh" if oh else "zero") if d == "0" else synth.DIGIT_WORDS[int(d)] for d in digits]
        assert said == expected
        assert abs(math.log(rate / recipe.rate)) <= synth.TAKE_RATE_JITTER + 1e-3
        assert abs(math.log(pitch / recipe.pitch)) <= synth.TAKE_PITCH_JITTER + 1e-3
    assert {len(d) for d, *_ in (synth.string_params(recipe, np.random.default_rng(k)) for k in range(300))} == set(
        range(1, 13)
    )


@needs_espeak
def test_espeak_batch_of_strings_is_cut_between_strings_only(monkeypatch):
    """No pause inside a string at the slowest rate a speaker reaches is as long as the gap between takes."""
    voice = synth.Voice("espeak", "en-us", "m1")
    texts = ["four one five five five oh one two three four nine eight", "seven", "zero zero eight eight two six"]
    rates = [0.6, 0.6, 1.7]  # the extremes of rate / warp
    alone = [synth.synthesize(t, voice, r, 1.0)[0] for t, r in zip(texts, rates)]
    pieces = synth._espeak_batch(texts, voice, rates, [1.0] * 3, Path(synth.tempfile.mkdtemp()))
    assert len(pieces) == 3
    for (piece, sr), one in zip(pieces, alone):
        assert len(synth.trim(piece, sr)) == pytest.approx(len(synth.trim(one, sr)), rel=0.15)  # not cut
    # A batch whose silences do not count out (here: no gap is long enough) is said one text per call instead.
    monkeypatch.setattr(synth, "MIN_GAP_S", 10.0)
    again = synth.synthesize_many(texts, voice, rates, [1.0] * 3)
    assert [len(x) for x, _ in again] == [len(x) for x in alone]


@needs_espeak
def test_strings_only_corpus_is_deterministic_and_named_by_its_digits(tmp_path):
    kw = dict(voices=2, takes=0, strings=3, seed=5, engines=["espeak"], progress=False)
    a = synth.generate(tmp_path / "a", jobs=1, **kw)
    synth.generate(tmp_path / "b", jobs=2, **kw)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert a.files == 6 and len(names) == 6 and not a.failed
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    speakers = [r.speaker for r in synth.plan({"espeak": synth.list_voices("espeak")}, 2, 5)]
    assert set(json.loads((tmp_path / "a" / "speakers.json").read_text())) == set(speakers)
    rows = (tmp_path / "a" / "takes.csv").read_text().splitlines()[1:]
    for row in rows:
        file, speaker, digits, take, words = row.split(",")[:5]
        assert file == f"{digits}_{speaker}_{take}.wav" and take in "012" and 1 <= len(digits) <= 12
        assert len(words.split(" ")) == len(digits)
        x, sr = sf.read(tmp_path / "a" / file)
        assert 0.15 * len(digits) < len(x) / sr < 0.6 + 0.8 * len(digits)  # one breath, no long pauses


def test_strings_come_after_the_isolated_takes_which_stay_as_they_were(tmp_path, fake_flite_only):
    args = [str(tmp_path / "a"), "--voices", "2", "--takes", "1", "--jobs", "1", "--no-progress"]
    assert synth.main(args) == 0
    with_strings = [str(tmp_path / "b"), *args[1:], "--strings", "3", "--string-lengths", "1,4"]
    assert synth.main(with_strings) == 0
    digits = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    both = sorted(p.name for p in (tmp_path / "b").glob("*.wav"))
    assert len(digits) == 20 and len(both) == 26 and set(digits) <= set(both)
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in digits)
    strings = [n.split("_") for n in set(both) - set(digits)]
    assert sorted(t for *_, t in strings) == ["1.wav", "1.wav", "2.wav", "2.wav", "3.wav", "3.wav"]
    assert all(1 <= len(d) <= 4 and d.isdigit() for d, *_ in strings)
    assert synth.main([str(tmp_path / "c"), *args[1:3], "--takes", "0"]) == 2  # neither digits nor strings
    with pytest.raises(SystemExit):
        synth.main([str(tmp_path / "c"), "--strings", "2", "--string-lengths", "a,b"])


def test_string_rate_speeds_up_the_strings_only(tmp_path, fake_flite_only):
    """--string-rate multiplies each string's drawn rate; without it the corpus is as before, isolated takes kept."""
    args = ["--voices", "2", "--takes", "1", "--strings", "4", "--jobs", "1", "--no-progress"]
    assert synth.main([str(tmp_path / "a"), *args]) == 0
    assert synth.main([str(tmp_path / "b"), *args, "--string-rate", "1,1"]) == 0
    assert synth.main([str(tmp_path / "c"), *args, "--string-rate", "1.5,1.6"]) == 0

    def rates(folder):
        rows = [r.split(",") for r in (tmp_path / folder / "takes.csv").read_text().splitlines()[1:]]
        return {r[0]: float(r[5]) for r in rows}

    a, b, c = rates("a"), rates("b"), rates("c")
    assert a == b and set(a) == set(c) and len(a) == 28
    isolated = [n for n in a if n.endswith("_0.wav")]  # take 0; the strings are takes 1-4
    strings = sorted(set(a) - set(isolated))
    assert len(isolated) == 20 and len(strings) == 8
    assert all(1.5 - 1e-3 <= c[n] / a[n] <= 1.6 + 1e-3 for n in strings)
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "c" / n).read_bytes() for n in isolated)
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in a)
    with pytest.raises(SystemExit):
        synth.main([str(tmp_path / "d"), *args, "--string-rate", "fast"])
    assert synth.main([str(tmp_path / "d"), *args, "--string-rate", "1.6,1.2"]) == 2
    assert synth.main([str(tmp_path / "d"), *args, "--string-rate", "1,inf"]) == 2


def test_said_with_repeats_reads_one_run_out_and_keeps_the_label_the_digits():
    runs = {2: 0, 3: 0}
    for k in range(300):
        digits, words = synth.said_with_repeats("4150392817", "four one five oh three nine two eight one seven",
                                                np.random.default_rng(k))  # fmt: skip
        said = words.split(" ")
        kind = [w for w in said if w in ("double", "triple")]
        assert len(kind) == 1 and len(digits) == 10
        i = said.index(kind[0])
        run = 2 if kind[0] == "double" else 3
        runs[run] += 1
        assert said[i + 1] == ("oh" if digits[i] == "0" else synth.DIGIT_WORDS[int(digits[i])])
        assert digits[i : i + run] == digits[i] * run and len(said) == 10 - run + 2
        rest = said[:i] + said[i + 2 :]  # the other words still say the other digits, in order
        assert rest == [("oh" if d == "0" else synth.DIGIT_WORDS[int(d)]) for d in digits[:i] + digits[i + run :]]
    assert runs[2] > 3 * runs[3] > 0
    assert synth.said_with_repeats("4", "four", np.random.default_rng(0)) == ("4", "four")


def test_string_repeats_read_runs_out_in_the_strings_only(tmp_path, fake_flite_only):
    """--string-repeats 1 says one run in every string of two or more digits "double X" / "triple X", its label the
    digits; without it the corpus is as before."""
    args = ["--voices", "2", "--takes", "1", "--strings", "4", "--string-lengths", "2,6", "--jobs", "1",
            "--no-progress"]  # fmt: skip
    assert synth.main([str(tmp_path / "a"), *args]) == 0
    assert synth.main([str(tmp_path / "b"), *args, "--string-repeats", "0"]) == 0
    assert synth.main([str(tmp_path / "c"), *args, "--string-repeats", "1"]) == 0

    def said(folder):
        return [r.split(",") for r in (tmp_path / folder / "takes.csv").read_text().splitlines()[1:]]

    assert said("a") == said("b")
    strings = [r for r in said("c") if not r[0].endswith("_0.wav")]  # take 0: the isolated digits
    assert len(strings) == 8
    for file, _, digits, _, words, *_ in strings:
        w = words.split(" ")
        run = 2 if "double" in w else 3
        assert ("double" in w) != ("triple" in w) and file.startswith(digits + "_")
        assert len(w) == len(digits) - run + 2
    assert synth.main([str(tmp_path / "d"), *args, "--string-repeats", "1.5"]) == 2


def test_missing_engines_name_the_package_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AudiomnistError) as err:
        synth.generate(tmp_path / "out", voices=1, progress=False)
    message = str(err.value)
    for binary, hint in [("espeak-ng", "apt-get install espeak-ng"), ("flite", "apt-get install flite"),
                         ("festival", "apt-get install festival")]:  # fmt: skip
        assert f"{binary} is not installed" in message and hint in message
    assert "\n" not in message
    assert synth.main([str(tmp_path / "out"), "--no-progress"]) == 2
    assert "no speech synthesiser found" in capsys.readouterr().err


def test_one_failed_take_loses_nothing_else(tmp_path, fake_flite_only, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FAIL_WORD", "seven")
    code = synth.main([str(tmp_path / "out"), "--voices", "2", "--takes", "1", "--jobs", "1", "--no-progress"])
    assert code == 1
    files = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert len(files) == 18 and not any(f.startswith("7_") for f in files)
    err = capsys.readouterr().err
    assert "warning: espeak-ng is not installed (apt-get install espeak-ng); festival is not installed" in err
    assert "continuing with flite" in err and "2 failure(s)" in err
    meta = json.loads((tmp_path / "out" / "speakers.json").read_text())
    assert len(meta) == 2 and {m["recipe"]["voice"] for m in meta.values()} == {"fake1", "fake2"}


def test_a_folder_with_clips_is_not_overwritten_without_force(tmp_path, fake_flite_only):
    args = [str(tmp_path / "out"), "--voices", "1", "--takes", "1", "--jobs", "1", "--no-progress",
            "--engines", "flite"]  # fmt: skip
    assert synth.main(args) == 0
    assert synth.main(args) == 2
    assert synth.main([*args, "--force"]) == 0


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workers_and_engines_die_with_the_parent(tmp_path, fake_flite_only, how):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "FAKE_SLEEP": "60", "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(scratch)}
    cmd = [sys.executable, "-m", "audiomnist.synth", str(tmp_path / "out"), "--engines", "flite", "--voices", "4",
           "--jobs", "2", "--no-progress"]  # fmt: skip
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engines = str(fake_flite_only / "flite")
    try:
        deadline = time.monotonic() + 30
        while len(_processes_mentioning(engines)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_processes_mentioning(engines)) == 2, "the two workers never started their engines"
        workers = [int(p) for p in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
        os.kill(parent.pid, how)
        expected = -how if how == signal.SIGKILL else 128 + how  # SIGTERM unwinds to exit status 143
        assert parent.wait(timeout=10) == expected
        deadline = time.monotonic() + 10
        while (_processes_mentioning(engines) or any(Path(f"/proc/{w}").exists() for w in workers)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert not _processes_mentioning(engines), "engine processes outlived the parent"
        assert not [w for w in workers if Path(f"/proc/{w}").exists()], "workers outlived the parent"
        if how == signal.SIGTERM:  # a parent that can clean up removes the engines' temp folders
            assert not list(scratch.iterdir())
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _processes_mentioning(engines):
            os.kill(pid, signal.SIGKILL)
