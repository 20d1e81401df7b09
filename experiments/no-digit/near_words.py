"""Write words-near.txt: frequent English words that sound partly like a digit word, by a fixed phonetic rule.

    pip install wordfreq   # not a dependency of audiomnist: only this list needs it
    apt-get install espeak-ng
    python experiments/no-digit/near_words.py [--top 40000] [--keep 600] [--out experiments/no-digit/words-near.txt]

A word is near a digit when, in espeak-ng's American English phonemes, it
- is one phoneme away from the digit's word (an edit distance of 1: "nice", "tree", "fife"), or
- ends with the digit's rhyme, from its stressed vowel on ("hello" and "oh", "heaven" and "seven"), or
- begins with the digit's first two phonemes ("sixty" and "six", "fire" and "five").
Digits are zero, oh, one ... nine. Only words of one to three syllables count; the list keeps the most frequent
--keep of them that are not in words-common.txt (new word types, not more takes of known ones), without digits,
their homophones, the held-out words (words-heldout.txt), slurs (common_words.py's exclusions) and letter strings
without a vowel letter ("bbc", which espeak-ng spells out). The rule never looks at the held-out words: they are
taken out, not used to choose.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from common_words import DIGIT_LIKE, HERE, LEFT_OUT, is_word, read_words, write_list

DIGIT_WORDS = ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOWELS = set("aeiouAEIOUV3@")  # the first letter of every espeak-ng vowel phoneme in -x notation
LEFT_OUT_HERE = LEFT_OUT | {"whore"}  # a slur that wordfreq ranks below common_words.py's cut, above this one's


def phonemes(words: list[str]) -> list[list[str]]:
    """espeak-ng's phonemes of each word (en-us), one list per word; the primary stress mark (') stays on its vowel.

    Each word is its own sentence, so espeak-ng prints one line for it; a word it reads as several ("mr", "ok")
    gets an empty list.
    """
    out = subprocess.run(
        ["espeak-ng", "-q", "-x", "--sep=_", "-v", "en-us", "--stdin"],
        input="".join(f"{w}.\n" for w in words), capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    out = [line.strip() for line in out if line.strip()]
    if len(out) != len(words):
        raise RuntimeError(f"espeak-ng gave {len(out)} pronunciations for {len(words)} words")
    return [[] if " " in w else [p.strip(",%=") for p in w.split("_") if p.strip(",%=")] for w in out]


def plain(word: list[str]) -> list[str]:
    """The phonemes without their stress marks."""
    return [p.lstrip("'") for p in word]


def rhyme(word: list[str]) -> list[str]:
    """The phonemes from the stressed vowel on (the last vowel where nothing is marked): "seven" -> E v @ n."""
    stressed = [i for i, p in enumerate(word) if p.startswith("'")]
    vowels = [i for i, p in enumerate(word) if p[0] in VOWELS]
    return plain(word[stressed[0] if stressed else vowels[-1] :])


def distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two phoneme lists."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def near(word: list[str], digits: list[list[str]]) -> bool:
    """The module's rule: one phoneme away, or a digit's rhyme at the end, or a digit's first two phonemes."""
    w = plain(word)
    if not w or not 1 <= sum(p[0] in VOWELS for p in w) <= 3:
        return False
    for d in digits:
        r = rhyme(d)
        if distance(w, plain(d)) <= 1 or w[-len(r) :] == r or (len(d) >= 2 and w[:2] == plain(d)[:2]):
            return True
    return False


def near_words(top: int, keep: int) -> list[str]:
    from wordfreq import top_n_list

    held_out = set(read_words(HERE / "words-heldout.txt"))
    known = set(read_words(HERE / "words-common.txt"))
    candidates = [
        w for w in top_n_list("en", top)
        if is_word(w) and set(w) & set("aeiouy")
        and w not in DIGIT_LIKE | LEFT_OUT_HERE | held_out | known
    ]  # fmt: skip
    digits = phonemes(DIGIT_WORDS)
    return [w for w, p in zip(candidates, phonemes(candidates)) if near(p, digits)][:keep]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=40000, help="how many of wordfreq's most frequent words to look at")
    p.add_argument("--keep", type=int, default=600, help="the most frequent near words to keep")
    p.add_argument("--out", type=Path, default=HERE / "words-near.txt", help="the list to write")
    args = p.parse_args()
    words = near_words(args.top, args.keep)
    header = (
        "# Frequent English words (wordfreq, CC BY-SA 4.0 data) one phoneme from a digit word, ending in its rhyme\n"
        "# or starting with its first two phonemes (espeak-ng en-us); not in words-common.txt. near_words.py.\n"
    )
    write_list(args.out, header, words)


if __name__ == "__main__":
    main()
