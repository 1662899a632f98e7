#!/usr/bin/env bash
# Frozen layers: fine-tuning from a pretrained CNN with freeze.upto = "pool1" leaves conv1 and
# bn1 (weights AND running statistics: a frozen batchnorm uses and keeps them) bit-identical
# to the pretrained file, while the head changes; frozen layers get no optimizer state; a new
# head with another number of classes (pretrained.reinit) trains; a frozen layer in the middle
# (freeze.layers = fc1) stays fixed while the layer before it still learns (gradients pass
# through); `ftune inspect` reports frozen and trainable layers. On 1 and 2 ranks.
# Usage (ctest): t_frozen.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d36.h5 300 36 4 51 0.6
make_data d36-3.h5 300 36 4 52 0.6 --classes 0,1,2
write_cnn_cfg cnn.cfg "$TMP/unused" "$TMP/d36.h5" "$TMP/d36.h5"

ft pretrain 2 train cnn.cfg --set "run.dir=$TMP/pre" --set train.max_steps=30
expect_ok pretrain
PRE=$TMP/pre/model.h5

frozen_params=(conv1/weight bn1/weight bn1/bias bn1/running_mean bn1/running_var)

# inspect_mode FILE LAYER: the "mode" column of LAYER in `ftune inspect FILE` (frozen,
# trainable or - for layers without parameters).
inspect_mode() {
    # the output shape before it may contain spaces ("[4, 6, 6]"): take the first field that
    # is a mode
    "$FTUNE" inspect "$1" | awk -v l="$2" '$1 ~ /^[0-9]+$/ && $2 == l {
        for (i = 4; i <= NF; i++) if ($i ~ /^(frozen|trainable|-)$/) { print $i; exit } }'
}

for np in 1 2; do
    note "== freeze.upto = pool1, $np rank(s)"
    run=$TMP/ft-np$np
    ft "finetune-np$np" "$np" train cnn.cfg --set "run.dir=$run" --set train.max_steps=12 \
        --set "pretrained.file=$PRE" --set freeze.upto=pool1
    expect_ok "finetune-np$np"
    for p in "${frozen_params[@]}"; do
        h5_same "$PRE" "$run/model.h5" "/model/$p"
        h5_same "$PRE" "$run/$(ckpt 12)" "/model/$p"
    done
    for p in fc1/weight fc2/weight fc2/bias; do
        h5_differ "$PRE" "$run/model.h5" "/model/$p"
    done
    # no optimizer state for frozen layers, state for the trainable ones
    opt=$(h5ls -r "$run/$(ckpt 12)/optimizer")
    grep -q '^/conv1\|^/bn1' <<<"$opt" && fail "frozen layers have optimizer state: $opt"
    grep -q '^/fc2/weight/exp_avg ' <<<"$opt" || fail "no AdamW state for fc2.weight: $opt"
done

# `ftune inspect` shows which layers were frozen
for l in conv1 bn1; do
    m=$(inspect_mode "$TMP/ft-np1/model.h5" "$l")
    [ "$m" = frozen ] || fail "ftune inspect: layer $l shown as '$m', expected frozen"
done
for l in fc1 fc2; do
    m=$(inspect_mode "$TMP/ft-np1/model.h5" "$l")
    [ "$m" = trainable ] || fail "ftune inspect: layer $l shown as '$m', expected trainable"
done
if [ "$HAVE_PY" = 1 ]; then
    "$FTUNE" inspect --json "$TMP/ft-np1/model.h5" >inspect.json || fail "inspect --json failed"
    got=$(json_get inspect.json '" ".join("%s:%s:%s" % (l["name"], l["frozen"], l["trainable"]) for l in d["layers"] if l["name"] in ("conv1", "bn1", "fc2"))')
    [ "$got" = "conv1:True:False bn1:True:False fc2:False:True" ] ||
        fail "ftune inspect --json: frozen/trainable of conv1 bn1 fc2: $got"
fi

note "== new 3-class head (pretrained.reinit), freeze.upto = pool1"
ft reinit 2 train cnn.cfg --set "run.dir=$TMP/reinit" --set train.max_steps=12 \
    --set "data.train=$TMP/d36-3.h5" --set "data.eval=$TMP/d36-3.h5" \
    --set "pretrained.file=$PRE" --set 'pretrained.reinit=[fc2]' --set freeze.upto=pool1 \
    --set model.layers.fc2.units=3
expect_ok reinit
for p in "${frozen_params[@]}"; do
    h5_same "$PRE" "$TMP/reinit/model.h5" "/model/$p"
done
h5_differ "$PRE" "$TMP/reinit/model.h5" /model/fc1/weight
h5ls "$TMP/reinit/model.h5/model/fc2/weight" | grep -qF '{3, 16}' ||
    fail "new head fc2.weight is not [3, 16]: $(h5ls "$TMP/reinit/model.h5/model/fc2/weight")"

note "== a frozen layer after trainable ones (freeze.layers = fc1)"
ft middle 1 train cnn.cfg --set "run.dir=$TMP/middle" --set train.max_steps=12 \
    --set "pretrained.file=$PRE" --set 'freeze.layers=[fc1]'
expect_ok middle
h5_same "$PRE" "$TMP/middle/model.h5" /model/fc1/weight
h5_same "$PRE" "$TMP/middle/model.h5" /model/fc1/bias
# conv1 before the frozen fc1 must still learn: its gradient flows through fc1
h5_differ "$PRE" "$TMP/middle/model.h5" /model/conv1/weight
h5_differ "$PRE" "$TMP/middle/model.h5" /model/fc2/weight
m=$(inspect_mode "$TMP/middle/model.h5" fc1)
[ "$m" = frozen ] || fail "ftune inspect: fc1 shown as '$m', expected frozen"

ft_done
