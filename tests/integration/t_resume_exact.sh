#!/usr/bin/env bash
# Exact resume: a run stopped at step N (train.max_steps=N) and resumed to N+M is bit-identical
# to an uninterrupted run to N+M: weights (/model), optimizer state (/optimizer) and training
# state (/train) of the final checkpoints, and the final model. For the MLP (SGD with momentum)
# and the CNN (AdamW, cosine schedule), on 1 and 2 ranks, with batchnorm, dropout and
# shuffling. 300 samples, batch 32: an epoch is 10 steps (the last batch has 12 samples).
#   auto:     stop mid-epoch at step 12, --resume (newest checkpoint)
#   explicit: stop at 16, --resume .../ckpt-00000008.h5 (not the newest), across step 10 and 20
#   boundary: stop exactly at the end of an epoch (step 10), --resume
# Then a 1-rank checkpoint resumed on 2 ranks matches the 1-rank run within 1e-5.
# Usage (ctest): t_resume_exact.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

TOTAL=24
make_data d16.h5 300 16 4 21 0.6
make_data d36.h5 300 36 4 22 0.6
write_mlp_cfg mlp.cfg "$TMP/unused" "$TMP/d16.h5"
write_cnn_cfg cnn.cfg "$TMP/unused" "$TMP/d36.h5"

# train NAME NP CFG DIR STEPS [ARGS...]
train() {
    local name=$1 np=$2 cfg=$3 dir=$4 steps=$5
    shift 5
    ft "$name" "$np" train "$cfg" --set "run.dir=$TMP/$dir" --set "train.max_steps=$steps" "$@"
    expect_ok "$name"
}

# same_run REF DIR: the final checkpoints and models of two runs are bit-identical.
same_run() {
    local ref=$TMP/$1 run=$TMP/$2 c
    c=$(ckpt "$TOTAL")
    [ -f "$run/$c" ] || die "$run/$c was not written"
    h5_same "$ref/$c" "$run/$c" /model
    h5_same "$ref/$c" "$run/$c" /optimizer
    h5_same "$ref/$c" "$run/$c" /train
    h5_same "$ref/model.h5" "$run/model.h5" /model
}

# resumed NAME CKPT STEP: the run said where it resumed from.
resumed() {
    grep -qF "resuming from $2 at step $3" "$TMP/$1.out" ||
        fail "[$1] does not say 'resuming from $2 at step $3'"
}

for model in mlp cnn; do
    for np in 1 2; do
        id=$model-np$np
        note "== $id"
        train "$id-ref" "$np" "$model.cfg" "$id-ref" "$TOTAL"

        # auto: the newest checkpoint, mid-epoch
        train "$id-auto-1" "$np" "$model.cfg" "$id-auto" 12
        train "$id-auto-2" "$np" "$model.cfg" "$id-auto" "$TOTAL" --resume
        resumed "$id-auto-2" "$TMP/$id-auto/$(ckpt 12)" 12
        same_run "$id-ref" "$id-auto"

        # explicit: an older checkpoint than the newest; the resumed part crosses two epochs
        train "$id-explicit-1" "$np" "$model.cfg" "$id-explicit" 16
        train "$id-explicit-2" "$np" "$model.cfg" "$id-explicit" "$TOTAL" \
            --resume "$TMP/$id-explicit/$(ckpt 8)"
        resumed "$id-explicit-2" "$TMP/$id-explicit/$(ckpt 8)" 8
        same_run "$id-ref" "$id-explicit"

        # boundary: stopped exactly at the end of the first epoch
        train "$id-boundary-1" "$np" "$model.cfg" "$id-boundary" 10
        train "$id-boundary-2" "$np" "$model.cfg" "$id-boundary" "$TOTAL" --resume
        resumed "$id-boundary-2" "$TMP/$id-boundary/$(ckpt 10)" 10
        same_run "$id-ref" "$id-boundary"
    done

    # A checkpoint written by 1 rank, resumed on 2 ranks: the same training up to the order of
    # floating-point sums (README: results do not depend on the rank count).
    train "$model-cross" 2 "$model.cfg" "$model-cross" "$TOTAL" \
        --resume "$TMP/$model-np1-auto/$(ckpt 12)"
    resumed "$model-cross" "$TMP/$model-np1-auto/$(ckpt 12)" 12
    h5_close "$TMP/$model-np1-ref/model.h5" "$TMP/$model-cross/model.h5" /model
done

ft_done
