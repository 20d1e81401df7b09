"""CTC decoding and string metrics (numpy only)."""

import numpy as np
import pytest

from audiomnist.ctc import (
    STRING_CLASSES,
    beam_search,
    decode,
    edit_distance,
    greedy,
    merge_close,
    min_gap_frames,
    string_metrics,
)


def frames(path: str, sure: float = 0.9) -> np.ndarray:
    """Probabilities whose best class per frame follows `path` ("-" blank, else a digit)."""
    p = np.full((len(path), len(STRING_CLASSES)), (1 - sure) / (len(STRING_CLASSES) - 1))
    for t, ch in enumerate(path):
        p[t, 0 if ch == "-" else int(ch) + 1] = sure
    return p


@pytest.mark.parametrize(
    ("path", "digits"),
    [("--4--1-55-5", "4155"), ("44--11", "41"), ("4-4", "44"), ("-----", ""), ("0000", "0"), ("9", "9")],
)
def test_greedy_merges_repeats_and_drops_blanks(path, digits):
    assert "".join(h.digit for h in greedy(frames(path))) == digits


def test_greedy_confidence_is_the_peak_of_the_run():
    p = frames("-33-")
    p[2, 4] = 0.99
    (hit,) = greedy(p)
    assert hit.digit == "3" and hit.confidence == pytest.approx(0.99) and hit.frame == 2


def test_beam_search_finds_what_greedy_misses():
    # Per frame the blank is likeliest, but "7" summed over its two frames' alignments beats the empty string.
    p = np.full((2, 11), 1e-6)
    p[:, 0], p[:, 8] = 0.45, 0.55 - 9e-6
    p[0, 0], p[0, 8] = 0.6, 0.4 - 9e-6
    p[1, 0], p[1, 8] = 0.6, 0.4 - 9e-6
    assert greedy(p) == []
    text, logp = beam_search(p, beam=4)
    assert text == "7"  # P("7") = 1 - P("") = 1 - 0.36 = 0.64
    assert np.exp(logp) == pytest.approx(0.64, abs=1e-3)
    assert [h.digit for h in decode(p, beam=4, min_gap=3)] == ["7"]


def test_beam_agrees_with_greedy_on_peaky_outputs():
    p = frames("-1---2---2---3-")
    assert beam_search(p, beam=8)[0] == "1223"
    assert decode(p, beam=8, min_gap=3) == greedy(p)


@pytest.mark.parametrize(("a", "b", "d"), [("", "", 0), ("123", "123", 0), ("123", "13", 1), ("123", "1243", 1),
                                          ("123", "321", 2), ("", "55", 2)])  # fmt: skip
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d


def test_string_metrics_per_length():
    m = string_metrics(["12", "345", "67"], ["12", "35", "76"])
    assert m["digit_error_rate"] == pytest.approx((0 + 1 + 2) / 7)
    assert m["exact_match"] == pytest.approx(1 / 3)
    assert m["by_length"][2] == {"strings": 2, "digit_error_rate": 0.5, "exact_match": 0.5}
    with pytest.raises(ValueError):
        string_metrics(["1"], [])


def test_close_peaks_are_one_word_far_ones_two():
    # "7" then "9" on the next frame: one word the model wavered on; the digit likeliest over both frames wins.
    p = np.full((12, 11), 0.0, np.float32)
    p[:, 0] = 1.0
    p[3, [0, 8]] = [0.3, 0.7]
    p[4, [0, 10, 8]] = [0.1, 0.5, 0.4]
    p[9, [0, 2]] = [0.2, 0.8]
    assert [h.digit for h in greedy(p)] == ["7", "9", "1"]
    merged = merge_close(greedy(p), p, 3)
    assert [(h.digit, h.frame) for h in merged] == [("7", 3), ("1", 9)]
    assert merged[0].confidence == pytest.approx(0.7)
    assert decode(p, min_gap=3) == merged and decode(p, beam=8, min_gap=3) == merged
    assert [h.digit for h in decode(p, min_gap=1)] == ["7", "9", "1"]  # 1: nothing is merged


def test_beam_search_strings_are_never_merged():
    """Where beam search disagrees with greedy, its string is the answer as it is: its digits' frames are not peaks."""
    rng = np.random.default_rng(0)
    differed = 0
    for _ in range(300):
        p = rng.dirichlet(np.full(11, 0.3), size=30).astype(np.float32)
        text, _ = beam_search(p, beam=8)
        if text != "".join(h.digit for h in greedy(p)):
            differed += 1
            assert "".join(h.digit for h in decode(p, beam=8, min_gap=3)) == text
    assert differed >= 10


LOGMEL_CONFIG = {"features": {"kind": "logmel", "hop_length": 80}, "audio": {"sample_rate": 8000}}


def test_output_seconds_follow_the_front_end():
    from audiomnist import speech_embedding as se
    from audiomnist.ctc import EMBEDDING_STEP_S, timing

    assert EMBEDDING_STEP_S == se.STEP_FRAMES * se.HOP_LENGTH / se.SAMPLE_RATE
    assert timing({"features": {"kind": "speech_embedding"}, "audio": {"sample_rate": 8000}}).frame_s == 0.08
    assert timing(LOGMEL_CONFIG).frame_s == 0.04
    two = timing({"features": {"kind": "speech_embedding"}, "model_args": {"outputs_per_vector": 2}})
    assert two.frame_s == 0.04 and two.min_gap == 3  # two outputs per vector: a 40 ms model's frames and gap


def test_close_peaks_are_judged_in_seconds_whatever_the_frame_step():
    """Two digits said 160 ms apart are two words: a 40 ms model merges peaks 1-2 frames apart, an 80 ms (emb-ctc)
    model only 1 frame apart, not the 3 frames (240 ms) that merged quickly said digits."""
    from audiomnist.ctc import timing

    emb = {"features": {"kind": "speech_embedding"}, "audio": {"sample_rate": 8000}}
    assert timing(LOGMEL_CONFIG).min_gap == min_gap_frames(0.04) == 3
    assert timing(emb).min_gap == min_gap_frames(0.08) == 2
    p = frames("--4-1---")  # peaks 2 frames apart; "4" the surer
    p[2, 5] = 0.95
    assert "".join(h.digit for h in decode(p, min_gap=timing(emb).min_gap)) == "41"
    assert "".join(h.digit for h in decode(p, min_gap=timing(LOGMEL_CONFIG).min_gap)) == "4"


def test_a_stream_holds_an_emb_ctc_digit_until_its_window_and_lookahead_have_been_heard():
    import inspect

    from audiomnist import ctc
    from audiomnist import speech_embedding as se
    from audiomnist.models.emb_ctc import EmbeddingCtc
    from audiomnist.string_model import EMBEDDING_EDGE_S

    assert inspect.signature(EmbeddingCtc).parameters["lookahead"].default == ctc.EMB_CTC_LOOKAHEAD
    window_s = ((se.WINDOW_FRAMES - 1) * se.HOP_LENGTH + se.N_FFT) / se.SAMPLE_RATE
    assert ctc.EMBEDDING_WINDOW_AHEAD_S == pytest.approx(window_s - EMBEDDING_EDGE_S, abs=1e-3)
    emb = {"features": {"kind": "speech_embedding"}, "model_args": {"lookahead": 1}}
    assert ctc.timing(emb).hold_s == pytest.approx(0.382 + 0.08 - ctc.EMBEDDING_PEAK_TO_END_S)
    assert ctc.timing(LOGMEL_CONFIG).hold_s == 0.0
