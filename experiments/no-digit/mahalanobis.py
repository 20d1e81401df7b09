"""A second "not a digit" score that does not read the digit head's answer: how far a clip's pooled features (the
input of the head's last layer) lie from the training digits' (Mahalanobis distance to the nearest digit class,
one covariance shared by the classes, Lee et al. 2018), on a single-digit run that held out one FSDD speaker.

    python mahalanobis.py RUN --data ../shared/data --negatives NEG [--train-clips 5000]

Fitted on the run's own training digits (its FSDD training speakers and up to --train-clips synthetic digits of
training voices); scored on held-out groups as measure.py names them. Prints, at the p(none) threshold and at the
distance that each keep 97 % of the held-out speaker's digits, the share of each group answered with a digit; and
the best pair of the two thresholds that keeps 97 % (chosen on the test speaker: a bound on what the pair could
give, not a deployable rule).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from measure import AUDIO, DIGIT_FLOOR, speaker
from tqdm import tqdm

from audiomnist.infer import Classifier

BATCH = 64


def features(clf: Classifier, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(clips, classes) calibrated probabilities and (clips, width) pooled features; the gate's refusals are NaN."""
    box = {}
    hook = clf.pipeline.net.classifier.register_forward_hook(lambda m, inp, out: box.update(f=inp[0].detach()))
    probs, feats = [], []
    try:
        for i in tqdm(range(0, len(paths), BATCH), leave=False):
            clips = [clf.load_file(p) for p in paths[i : i + BATCH]]
            problems, p = clf.gated_probabilities(clips)
            f = np.full((len(clips), clf.pipeline.net.classifier.in_features), np.nan)
            good = [k for k, why in enumerate(problems) if why is None]
            if good:
                f[good] = box["f"].numpy()
            probs.append(p)
            feats.append(f)
    finally:
        hook.remove()
    return np.concatenate(probs), np.concatenate(feats)


def fit(feats: np.ndarray, labels: np.ndarray, shrink: float = 0.01):
    """Class means and the inverse of the shared covariance (shrunk towards its diagonal's mean)."""
    keep = ~np.isnan(feats).any(1)
    feats, labels = feats[keep], labels[keep]
    classes = np.unique(labels)
    means = np.stack([feats[labels == c].mean(0) for c in classes])
    centred = feats - means[np.searchsorted(classes, labels)]
    cov = centred.T @ centred / len(feats)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    return means, np.linalg.inv(cov)


def distance(feats: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest class mean (inf for the gate's refusals)."""
    d = feats[:, None, :] - means[None]
    m = np.einsum("nkd,de,nke->nk", d, precision, d).min(1)
    return np.where(np.isnan(m), np.inf, m)


def groups(run: Path, data: Path, negatives: Path) -> dict[str, list[Path]]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = {s.split("/")[-1] for s in split["test_speakers"]}

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix in AUDIO)

    return {
        "fsdd digits, held-out speaker": [p for p in files(data / "fsdd" / "recordings") if speaker(p) in test],
        "synthetic digits, held-out voices": files(negatives / "synth-digits-heldout"),
        "held-out words, held-out voices": files(negatives / "neg-heldout-words"),
        "bengali + ukrainian, held-out speakers": [
            p for f in ("bengali", "ukrainian") for p in files(data / f) if speaker(p) in test
        ],
    }


def training_digits(run: Path, data: Path, negatives: Path, n: int) -> list[Path]:
    split = json.loads((run / "metrics.json").read_text())["split"]
    test = {s.split("/")[-1] for s in split["test_speakers"]}
    fsdd = [p for p in sorted((data / "fsdd" / "recordings").glob("*.wav")) if speaker(p) not in test]
    synth = sorted((negatives / "synth-digits-train").glob("*.wav"))
    pick = np.random.default_rng(0).choice(len(synth), min(n, len(synth)), replace=False)
    return fsdd + [synth[i] for i in sorted(pick)]


def scale(p_none: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both scores on scales where they spread evenly: logit of p(none), log of the distance."""
    p = np.clip(p_none, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)), np.log(np.minimum(dist, 1e12))


def print_fused(fused: dict) -> None:
    """The two scores standardised on the training digits, summed or the larger taken: one number, one threshold,
    at the held-out speaker's 97 % floor (as measure.py's at_digit_floor places p(none)'s)."""
    digits = fused["fsdd digits, held-out speaker"]
    t = [np.quantile(v, DIGIT_FLOOR, method="higher") for v in digits]
    print("| group | z sum | z max |")
    print("|---|---|---|")
    for name, (a, b) in fused.items():
        print(f"| {name} | {100 * (a <= t[0]).mean():.1f} % | {100 * (b <= t[1]).mean():.1f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a single-digit run (emb-head, none class) with one held-out FSDD speaker")
    ap.add_argument("--data", type=Path, required=True, help="../shared/data")
    ap.add_argument("--negatives", type=Path, required=True, help="experiments/no-digit's NEG folder")
    ap.add_argument("--train-clips", type=int, default=5000, help="synthetic training digits to fit on")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clf = Classifier.load(str(args.run), backend="torch")
    none = clf.classes.index("none")
    train = training_digits(args.run, args.data, args.negatives, args.train_clips)
    p_train, f_train = features(clf, train)
    means, precision = fit(f_train, np.array([p.name.split("_")[0] for p in train]))
    ok = ~np.isnan(f_train).any(1)
    centre = [(v.mean(), v.std()) for v in scale(p_train[ok, none], distance(f_train[ok], means, precision))]
    scored = {}
    for name, paths in groups(args.run, args.data, args.negatives).items():
        p, f = features(clf, paths)
        scored[name] = (np.nan_to_num(p[:, none], nan=1.0), distance(f, means, precision))
    fused = {}
    for name, (pn, d) in scored.items():
        z = [(v - m) / s for v, (m, s) in zip(scale(pn, d), centre)]
        fused[name] = (z[0] + z[1], np.maximum(*z))
    print_fused(fused)
    digits = scored["fsdd digits, held-out speaker"]
    t_none = np.quantile(digits[0], DIGIT_FLOOR, method="higher")
    t_dist = np.quantile(digits[1], DIGIT_FLOOR, method="higher")
    best = (2.0, None, None)
    for a in np.unique(digits[0][digits[0] >= t_none]):
        for b in np.unique(digits[1][digits[1] >= t_dist]):
            keep = (digits[0] <= a) & (digits[1] <= b)
            if keep.mean() < DIGIT_FLOOR:
                continue
            words = scored["held-out words, held-out voices"]
            rate = float(((words[0] <= a) & (words[1] <= b)).mean())
            if rate < best[0]:
                best = (rate, a, b)
    print(f"{args.run.name}: 97 % of the held-out speaker's digits kept; share of each group answered with a digit")
    print("| group | p(none) alone | distance alone | both (best pair, chosen on the test speaker) |")
    print("|---|---|---|---|")
    for name, (pn, d) in scored.items():
        both = float(((pn <= best[1]) & (d <= best[2])).mean())
        alone = f"{100 * (pn <= t_none).mean():.1f} % | {100 * (d <= t_dist).mean():.1f} %"
        print(f"| {name} | {alone} | {100 * both:.1f} % |")
    print(f"thresholds: p(none) {t_none:.3f}, distance {t_dist:.1f}; pair {best[1]:.3f}, {best[2]:.1f}")


if __name__ == "__main__":
    main()
