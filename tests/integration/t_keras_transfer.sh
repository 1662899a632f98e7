#!/usr/bin/env bash
# Transfer learning on a real imported Keras model (issue 3, acceptance 2): the MNIST CNN
# mnist_dnnrepair_c_e20.hdf5 is imported, its convolutions are frozen and a new dense head is
# trained on Fashion-MNIST with the shipped configs/transfer-keras-mnist-to-fmnist.cfg
# (2 ranks, 300 steps). The same config without its pretrained group (the same head on
# frozen, randomly initialised convolutions) must do clearly worse.
# Args: $1 = ftune binary, $2 = source dir, $3 = test build dir. Needs ../shared (the model
# fixtures, MODELS-AND-DATA.md) next to the source dir and Debian's dataset-fashion-mnist;
# skips (77) without them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ft_init "$@"

SHARED=$SRC/../shared
MODEL=$SHARED/models/keras/mnist_dnnrepair_c_e20.hdf5
FMNIST=${FTUNE_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
CFG=$SRC/configs/transfer-keras-mnist-to-fmnist.cfg
MARGIN=0.01 # measured gaps: 0.026 to 0.047 over seeds 1, 2, 3, 42

[ -d "$SHARED" ] || skip "$SHARED not found (the shared model fixtures, see MODELS-AND-DATA.md)"
[ -r "$MODEL" ] || skip "$MODEL not found"
[ -r "$FMNIST/train-images-idx3-ubyte.gz" ] ||
    skip "Fashion-MNIST not found in $FMNIST (Debian package dataset-fashion-mnist)"
[ -r "$CFG" ] || die "$CFG not found"

# accuracy NAME: the top-level accuracy of an `ftune eval --json` run.
accuracy() {
    grep -o '"accuracy":[0-9.eE+-]*' "$TMP/$1.out" | head -n 1 | cut -d: -f2
}

ft import 0 import keras "$MODEL" -o mnist_dnnrepair.h5 --input-scale 255
expect_ok import
for split in train t10k; do
    ft "data-$split" 0 data import-idx --images "$FMNIST/$split-images-idx3-ubyte.gz" \
        --labels "$FMNIST/$split-labels-idx1-ubyte.gz" -o "fmnist-$split.h5"
    expect_ok "data-$split"
done

# The same config without the pretrained group: random convolutions, still frozen.
awk '/^pretrained = \{/ { skip = 1 } skip && /^\};/ { skip = 0; next } !skip' "$CFG" >random.cfg
grep -q '^pretrained' random.cfg && die "could not remove the pretrained group from $CFG"
grep -q 'upto = "max_pooling2d_1"' random.cfg || die "random.cfg lost freeze.upto"

common=(--set data.train=fmnist-train.h5 --set data.eval=fmnist-t10k.h5)
FT_TIMEOUT=300 ft pretrained 2 train "$CFG" "${common[@]}" \
    --set pretrained.file=mnist_dnnrepair.h5 --set run.dir=runs/pretrained
expect_ok pretrained
FT_TIMEOUT=300 ft random 2 train random.cfg "${common[@]}" --set run.dir=runs/random
expect_ok random

# The frozen convolutions are the imported ones; the new head was trained.
h5_same mnist_dnnrepair.h5 runs/pretrained/model.h5 /model/conv2d_1/weight
h5_same mnist_dnnrepair.h5 runs/pretrained/model.h5 /model/conv2d_2/bias
h5_differ mnist_dnnrepair.h5 runs/pretrained/model.h5 /model/dense_1/weight

ft eval-pretrained 2 eval runs/pretrained/model.h5 --data fmnist-t10k.h5 --json
expect_ok eval-pretrained
ft eval-random 2 eval runs/random/model.h5 --data fmnist-t10k.h5 --json
expect_ok eval-random
acc_pre=$(accuracy eval-pretrained)
acc_rand=$(accuracy eval-random)
[ -n "$acc_pre" ] && [ -n "$acc_rand" ] || die "no accuracy in the eval output"
note "Fashion-MNIST test accuracy, new head on frozen convolutions:" \
    "MNIST-pretrained $acc_pre, random $acc_rand (required margin $MARGIN)"
if awk -v p="$acc_pre" -v r="$acc_rand" -v m="$MARGIN" 'BEGIN { exit !(p > r + m) }'; then
    note "ok: the pretrained features beat random ones by more than $MARGIN"
else
    fail "pretrained $acc_pre does not beat random $acc_rand by $MARGIN"
fi
# and the pretrained head learned something at all
awk -v p="$acc_pre" 'BEGIN { exit !(p > 0.80) }' || fail "pretrained accuracy $acc_pre <= 0.80"

ft_done
