#!/usr/bin/env bash
# Leave-one-speaker-out for the digit-string model: the shipped two-stage recipe (tools/make_strings_model.py) with
# one FSDD speaker held out per fold, through `train-strings --loso`. Stage 2 starts each fold from the same fold's
# stage-1 run; RUNS_DIR/stage2/cv.json sums up (each fold's report/strings.json holds its numbers).
#   experiments/strings/loso.sh RUNS_DIR [SPEAKER ...]     (default: all six FSDD speakers, one after the other)
# Run it again with the same RUNS_DIR to go on after a stop (finished folds are kept).
# FSDD, SYNTH and SYNTH_STRINGS default to ../shared/data/fsdd/recordings and $AUDIOMNIST_HOME/datasets/synth-*-600
# (made by tools/make_strings_model.py when missing).
set -euo pipefail
runs=${1:?usage: loso.sh RUNS_DIR [SPEAKER ...]}; shift
only=()
for s in "$@"; do only+=(--only "$s"); done
here=$(cd "$(dirname "$0")/../.." && pwd)
home=${AUDIOMNIST_HOME:-$HOME/.cache/audiomnist}
FSDD=${FSDD:-$here/../shared/data/fsdd/recordings}
SYNTH=${SYNTH:-$home/datasets/synth-voices-600}
SYNTH_STRINGS=${SYNTH_STRINGS:-$home/datasets/synth-strings-600}
common=(--data "$FSDD" --data "$SYNTH" --data "$SYNTH_STRINGS" --data-weight 2 --data-weight 1 --data-weight 1
        --epochs 10 --steps 250 --seed 0 --threads 1 --no-progress --loso "${only[@]}")
audiomnist train-strings "${common[@]}" --loso-dir "$runs/stage1"
audiomnist train-strings "${common[@]}" --loso-dir "$runs/stage2" --init "$runs/stage1" --lr 1e-3 --vtlp 0.9 1.1
