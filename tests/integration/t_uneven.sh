#!/usr/bin/env bash
# Uneven data: 65 samples, global batch 32, 3 ranks. Every epoch ends with a batch of 1 sample,
# so two of the three ranks have no rows in it and must still take part in every collective
# (batchnorm statistics, gradient all-reduce). The run must finish (a hang hits the timeout),
# exit 0, and give the 1-rank result within 1e-5 (h5_close in lib.sh). Evaluation (batch 4,
# 65 samples over 3 ranks) must count every sample once. Also: gradient accumulation over such
# batches, and a dataset smaller than the number of ranks (2 samples on 3 ranks).
# Usage (ctest): t_uneven.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

# A hang is the failure we look for: each run takes about a second.
FT_TIMEOUT=60

make_data u16.h5 65 16 4 41 0.6
make_data u36.h5 65 36 4 42 0.6
make_data tiny.h5 2 16 2 43 0.6
write_mlp_cfg mlp.cfg "$TMP/unused" "$TMP/u16.h5" "$TMP/u16.h5"
write_cnn_cfg cnn.cfg "$TMP/unused" "$TMP/u36.h5" "$TMP/u36.h5"

# variant NAME CFG NSAMPLES NPS ARGS...: trains on 1 rank and on each of NPS ranks (e.g. "2 3"),
# compares the models with the 1-rank one and checks the final evaluation's sample count.
variant() {
    local name=$1 cfg=$2 n=$3 nps=$4 np
    shift 4
    note "== $name"
    for np in 1 $nps; do
        ft "$name-np$np" "$np" train "$cfg" --set "run.dir=$TMP/$name-np$np" \
            --set train.epochs=4 --set eval.batch_size=4 "$@"
        if [ "$RC" != 0 ]; then
            show "$name-np$np"
            fail "[$name-np$np] exited with $RC, expected 0"
            continue
        fi
        # metrics.jsonl: {"type":"eval","when":"final",...,"metrics":{"samples":N,...}}
        grep '"when":"final"' "$TMP/$name-np$np/metrics.jsonl" | grep -qF "\"samples\":$n," ||
            fail "[$name-np$np] the final evaluation did not count $n samples:" \
                "$(grep '"when":"final"' "$TMP/$name-np$np/metrics.jsonl" | cut -c1-120)"
        [ "$np" = 1 ] && continue
        h5_close "$TMP/$name-np1/model.h5" "$TMP/$name-np$np/model.h5" /model
    done
}

variant mlp mlp.cfg 65 "2 3"
variant cnn cnn.cfg 65 "3"
# micro-batches of 32, 32 | 1: the last optimizer step has a single 1-sample micro-batch
variant mlp-accum mlp.cfg 65 "3" --set train.accum_steps=2
# 2 samples, 3 ranks, batch 32: one rank never gets a row; a 2-class head
variant tiny mlp.cfg 2 "3" --set "data.train=$TMP/tiny.h5" --set "data.eval=$TMP/tiny.h5" \
    --set model.layers.fc2.units=2

ft_done
