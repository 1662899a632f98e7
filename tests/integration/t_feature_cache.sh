#!/usr/bin/env bash
# train.feature_cache: with a deterministic frozen prefix (conv, frozen batchnorm, relu, pool,
# flatten), a cached run trains exactly the weights of the uncached run, on 1 and 2 ranks, with
# the cache in memory or in the HDF5 scratch file (chosen by "auto" when it does not fit the
# budget), also when resumed from a checkpoint. The scratch file is removed at the end. With
# dropout before the first trainable layer the cache is refused, naming the layer ("memory" is
# an input error, "auto" trains without it). Timings are the benchmark's business, not this test's.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data "$TMP/train.h5" 200 36 4 11

# cfg FILE PREFIX_EXTRA: a CNN on [1, 6, 6]; PREFIX_EXTRA is inserted before fc1 (the first
# trainable layer). Dropout after fc1 is fine: the cache holds fc1's input.
cfg() {
    cat >"$1" <<EOF
run = { dir = "$TMP/unused"; seed = 5; };
data = { train = "$TMP/train.h5"; shuffle = true; };
model = {
  input = [1, 6, 6];
  layers = (
    { name = "conv1"; type = "conv2d"; filters = 4; kernel = 3; padding = 1; },
    { name = "bn1"; type = "batchnorm"; },
    { name = "relu1"; type = "relu"; },
    { name = "pool1"; type = "maxpool2d"; size = 2; },
    { name = "flatten"; type = "flatten"; }$2,
    { name = "fc1"; type = "dense"; units = 16; },
    { name = "relu2"; type = "relu"; },
    { name = "drop2"; type = "dropout"; rate = 0.2; },
    { name = "fc2"; type = "dense"; units = 4; }
  );
};
freeze = { upto = "flatten"; };
train = {
  epochs = 3;
  batch_size = 24;
  optimizer = { type = "sgd"; lr = 0.05; momentum = 0.9; };
};
checkpoint = { every = 10; keep_last = 100; };
log = { every = 5; progress = "plain"; };
EOF
}
cfg "$TMP/cnn.cfg" ""
cfg "$TMP/cnn-drop.cfg" ",
    { name = \"drop0\"; type = \"dropout\"; rate = 0.1; }"

train() { # NAME NP [--set ...]
    local name=$1 np=$2
    shift 2
    ft "$name" "$np" train "$TMP/cnn.cfg" --set "run.dir=\"$TMP/$name\"" "$@"
    expect_ok "$name"
}

train plain1 1
train mem1 1 --set 'train.feature_cache="memory"'
grep -q 'feature cache: memory, 200 samples x 36 features' "$TMP/mem1.out" ||
    fail "[mem1] no 'feature cache: memory' line"
h5_same "$TMP/plain1/model.h5" "$TMP/mem1/model.h5" /model

train plain2 2
train mem2 2 --set 'train.feature_cache="memory"'
h5_same "$TMP/plain2/model.h5" "$TMP/mem2/model.h5" /model
train disk2 2 --set 'train.feature_cache="disk"'
grep -q 'feature cache: disk' "$TMP/disk2.out" || fail "[disk2] no 'feature cache: disk' line"
h5_same "$TMP/plain2/model.h5" "$TMP/disk2/model.h5" /model
[ -e "$TMP/disk2/feature-cache.h5" ] && fail "[disk2] the scratch file was left behind"
# auto with a zero budget: too big for memory, so disk
train auto2 2 --set 'train.feature_cache="auto"' --set train.feature_cache_mb=0
grep -q 'feature cache: disk' "$TMP/auto2.out" || fail "[auto2] auto with budget 0 did not pick disk"
h5_same "$TMP/plain2/model.h5" "$TMP/auto2/model.h5" /model
# the same model on 1 and 2 ranks, up to the order of floating-point sums
h5_close "$TMP/mem1/model.h5" "$TMP/mem2/model.h5" /model

# resumed: the cache is built again from the loaded weights
train part 2 --set 'train.feature_cache="memory"' --set train.max_steps=10
train part 2 --set 'train.feature_cache="memory"' --resume
grep -q 'resuming from' "$TMP/part.out" || fail "[part] did not resume"
h5_same "$TMP/plain2/model.h5" "$TMP/part/model.h5" /model

# refused: dropout before the first trainable layer
ft refuse 1 train "$TMP/cnn-drop.cfg" --set "run.dir=\"$TMP/refuse\"" \
    --set 'train.feature_cache="memory"'
expect_fail refuse 2 "train.feature_cache" "layer 'drop0' (dropout)" "random"
ft refuse_auto 1 train "$TMP/cnn-drop.cfg" --set "run.dir=\"$TMP/refuse_auto\"" \
    --set 'train.feature_cache="auto"'
expect_ok refuse_auto
grep -q "feature cache: off (layer 'drop0' (dropout)" "$TMP/refuse_auto.out" ||
    fail "[refuse_auto] no 'feature cache: off' line naming the layer"
# a trainable batchnorm in the prefix uses batch statistics: refused as well
ft refuse_bn 1 train "$TMP/cnn.cfg" --set "run.dir=\"$TMP/refuse_bn\"" \
    --set 'train.feature_cache="disk"' --set 'freeze.upto="conv1"' \
    --set 'model.layers.bn1.affine=false'
expect_fail refuse_bn 2 "layer 'bn1' (batchnorm)" "batch statistics"
ft_done
