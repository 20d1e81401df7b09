#!/bin/sh
# One fold of the no-digit experiment (issue 22). Digits: FSDD (weight 4) + the synthetic digit voices of a
# `data synth` corpus (voices 0-499; 500-599 are held out for measure.py). Class "none": Bengali and Ukrainian digit
# words, and English non-digit words + noise said by the SAME synthetic voices 0-499 (tools/make_negatives.py
# --first 0 --voices 500 with the corpus's seed). Speaker split stratified by folder (each folder loses 20 % of its
# speakers to the test and 10 % to validation; 1 of FSDD's 6 to each); SEED picks the fold. See README.md.
# usage: [WEIGHTS="4 1 1 1 1"] experiments/no-digit/train.sh SEED RUNS NEGDIR [extra train flags]
#   WEIGHTS: --data-weight of FSDD, synthetic digits, Bengali, Ukrainian, synthetic negatives
#   NEGDIR holds synth-digits-train/ and neg-train/ (README.md: how they are made)
seed=$1 runs=$2 neg=$3
shift 3
data=${DATA:-../shared/data}
weights=""
for w in ${WEIGHTS:-4 1 1 1 1}; do weights="$weights --data-weight $w"; done
exec audiomnist train --data "$data/fsdd/recordings" --data "$neg/synth-digits-train" \
    --negative "$data/bengali" --negative "$data/ukrainian" --negative "$neg/neg-train" \
    $weights \
    --model res2d --epochs 12 --seed "$seed" --device cpu --no-progress \
    --runs "$runs" --name "nodigit-seed$seed" "$@"
