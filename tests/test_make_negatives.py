"""tools/make_negatives.py: noise-only "none" examples, every colour with and without hum or a click."""

from pathlib import Path

import soundfile as sf

from audiomnist.audio import NO_SPEECH, audio_problem

from conftest import REPO, load_tool


def test_noise_crosses_every_colour_with_hum_and_clicks(tmp_path):
    rows = load_tool("make_negatives").render_noise(tmp_path, 9, seed=0, prefix="t-", sr=8000)
    words = [r["word"] for r in rows]
    assert len(set(words)) == 9, words
    for row in rows:
        x, sr = sf.read(tmp_path / row["file"], dtype="float32")
        assert sr == 8000 and 0.3 * sr <= len(x) <= 1.5 * sr
        if "hum" not in row["word"] and "brown" not in row["word"]:  # no pitch: the audio gate refuses them
            assert audio_problem(x, sr) == NO_SPEECH, row["word"]


# What a user says to mean a digit, or cannot be told from one: never a "none" example.
DIGIT_LIKE = {"zero", "oh", "o", "owe", "one", "won", "two", "to", "too", "three", "four", "for", "fore", "five", "six",
              "seven", "eight", "ate", "nine", "nein"}  # fmt: skip


def test_the_shipped_recipes_words_hold_no_digit_homophone_or_held_out_word():
    args = load_tool("make_model").NEG_ARGS
    words = load_tool("make_negatives").read_words(Path(args[args.index("--words") + 1]))
    held_out = load_tool("make_negatives").read_words(REPO / "experiments" / "no-digit" / "words-heldout.txt")
    assert len(words) > 1000, len(words)
    assert not DIGIT_LIKE & set(words), DIGIT_LIKE & set(words)
    assert not set(held_out) & set(words), set(held_out) & set(words)
