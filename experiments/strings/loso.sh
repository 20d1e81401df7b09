#!/usr/bin/env bash
# Leave-one-speaker-out for the digit-string model: the shipped recipe (tools/make_strings_model.py) with one FSDD
# speaker held out per run; each run's report/strings.json holds its numbers.
#   experiments/strings/loso.sh RUNS_DIR [SPEAKER ...]     (default: all six FSDD speakers, one after the other)
# FSDD, SYNTH and SYNTH_STRINGS default to ../shared/data/fsdd/recordings and $AUDIOMNIST_HOME/datasets/synth-*-600
# (made by tools/make_strings_model.py when missing).
set -euo pipefail
runs=${1:?usage: loso.sh RUNS_DIR [SPEAKER ...]}; shift
speakers=("${@:-george jackson lucas nicolas theo yweweler}")
here=$(cd "$(dirname "$0")/../.." && pwd)
home=${AUDIOMNIST_HOME:-$HOME/.cache/audiomnist}
FSDD=${FSDD:-$here/../shared/data/fsdd/recordings}
SYNTH=${SYNTH:-$home/datasets/synth-voices-600}
SYNTH_STRINGS=${SYNTH_STRINGS:-$home/datasets/synth-strings-600}
for s in ${speakers[@]}; do
  audiomnist train-strings --data "$FSDD" --data "$SYNTH" --data "$SYNTH_STRINGS" \
    --data-weight 2 --data-weight 1 --data-weight 1 --epochs 10 --steps 250 --seed 0 \
    --test-speaker "$s" --threads 1 --runs "$runs" --name "loso-$s" --no-progress
done
