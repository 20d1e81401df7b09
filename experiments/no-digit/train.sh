#!/bin/sh
# One fold of the no-digit experiment. Digits: FSDD + synthetic English digits (`audiomnist data synth`, other
# voices than the negatives'), so digits too come from many voices and the network has to tell words apart, not
# FSDD's few voices from everyone else. Negatives (class "none"): Bengali and Ukrainian digit words, synthetic
# English non-digit words and noise (tools/make_negatives.py). Speaker split stratified by folder (each folder loses
# 20 % of its speakers to the test and 10 % to validation); SEED picks the fold. See README.md.
# usage: experiments/no-digit/train.sh SEED RUNS NEGDIR [extra train flags]
seed=$1 runs=$2 neg=$3
shift 3
data=${DATA:-../shared/data}
exec audiomnist train --data "$data/fsdd/recordings" --data "$neg/synth-digits" \
    --negative "$data/bengali" --negative "$data/ukrainian" --negative "$neg/synth-train" \
    --data-weight 3 --data-weight 1 --data-weight 0.5 --data-weight 1 --data-weight 1 \
    --model bcresnet --model-arg width=2 --epochs 12 --seed "$seed" --device cpu --no-progress \
    --runs "$runs" --name "nodigit-seed$seed" "$@"
