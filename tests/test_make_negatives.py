"""tools/make_negatives.py: noise-only "none" examples, every colour with and without hum or a click."""

import soundfile as sf

from audiomnist.audio import NO_SPEECH, audio_problem

from conftest import load_tool


def test_noise_crosses_every_colour_with_hum_and_clicks(tmp_path):
    rows = load_tool("make_negatives").render_noise(tmp_path, 9, seed=0, prefix="t-", sr=8000)
    words = [r["word"] for r in rows]
    assert len(set(words)) == 9, words
    for row in rows:
        x, sr = sf.read(tmp_path / row["file"], dtype="float32")
        assert sr == 8000 and 0.3 * sr <= len(x) <= 1.5 * sr
        if "hum" not in row["word"] and "brown" not in row["word"]:  # no pitch: the audio gate refuses them
            assert audio_problem(x, sr) == NO_SPEECH, row["word"]
