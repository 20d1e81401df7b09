"""Write words-common.txt: words-train.txt plus the most frequent English words (wordfreq's list), without digits,
"oh", their homophones and near-homophones, the held-out words (words-heldout.txt) and a few slurs.

    pip install wordfreq   # not a dependency of audiomnist: only this list needs it
    python experiments/no-digit/common_words.py [--top 1478] [--out experiments/no-digit/words-common.txt]

The list is for tools/make_negatives.py --words: more word types among the "none" examples than words-train.txt's 157.
Single letters are left out (a lone "a" or "i" is not what a user says to a digit reader); so are words that are not
all letters ("don't"), which the synthesisers read in different ways.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Digits and what sounds like one: a user saying these means the digit (or cannot be told from it).
DIGIT_LIKE = {
    "zero", "oh", "owe", "one", "won", "ones", "two", "to", "too", "twos", "three", "four", "for", "fore", "fours",
    "five", "fives", "six", "sixes", "seven", "sevens", "eight", "ate", "eights", "nine", "nein", "nines", "nil",
    "nought", "naught", "o",
}  # fmt: skip
LEFT_OUT = {"fuck", "fucking", "shit", "bitch", "nigga", "nigger", "fag", "faggot", "cunt", "dick", "pussy", "sex"}


def read_words(path: Path) -> list[str]:
    """tools/make_negatives.py's reading of a word list (the same comments, case and duplicates rule)."""
    spec = importlib.util.spec_from_file_location("make_negatives", HERE.parents[1] / "tools" / "make_negatives.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.read_words(path)


def is_word(w: str) -> bool:
    """A list entry: all letters, ASCII, longer than one letter (a lone "a" is not what a user says to a reader)."""
    return len(w) > 1 and w.isascii() and w.isalpha()


def write_list(out: Path, header: str, words: list[str]) -> None:
    """The header's comment lines, then one word a line (tools/make_negatives.py --words reads it)."""
    out.write_text(header + "\n".join(words) + "\n")
    print(f"{len(words)} words -> {out}")


def common_words(top: int) -> list[str]:
    from wordfreq import top_n_list

    held_out = set(read_words(HERE / "words-heldout.txt"))
    words = read_words(HERE / "words-train.txt")
    for w in top_n_list("en", top * 2):
        if len(words) >= top:
            break
        if is_word(w) and w not in DIGIT_LIKE | LEFT_OUT | held_out | set(words):
            words.append(w)
    return words


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=1478, help="words in the list, words-train.txt's included")
    p.add_argument("--out", type=Path, default=HERE / "words-common.txt", help="the list to write")
    args = p.parse_args()
    words = common_words(args.top)
    header = (
        "# words-train.txt, then the most frequent English words (wordfreq, CC BY-SA 4.0 data) that are not digits,\n"
        "# 'oh', their homophones, held-out words (words-heldout.txt) or slurs. Made by common_words.py.\n"
    )
    write_list(args.out, header, words)


if __name__ == "__main__":
    main()
