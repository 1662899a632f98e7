#!/usr/bin/env bash
# A real PyTorch-trained model in safetensors: tracel-ai/burn's MNIST CNN
# (../shared/models/torch/mnist_burn.safetensors; MODELS-AND-DATA.md: measured
# accuracy 0.9917 on the MNIST test set with inputs (x/255 - 0.1307)/0.3081).
#
#   import with a config (preprocess mean/std) -> ftune eval (1 and 2 ranks)
#   reproduces 0.9917 within 0.001; export -> import without --config (the
#   exported metadata carries the config) -> the same logits; and hostile
#   variants (truncated file, wrong names, wrong shapes) exit 2 with a message
#   naming the file, the tensor and the problem.
#
# Usage: t_safetensors_burn.sh FTUNE_BIN SOURCE_DIR [BUILD_DIR]; exit 77 = skipped.
set -euo pipefail

FTUNE=$(realpath "$1")
SRC=$(realpath "$2")
SHARED="$SRC/../shared"
MODEL="$SHARED/models/torch/mnist_burn.safetensors"
IMAGES="$SHARED/data/mnist/t10k-images-idx3-ubyte.gz"
LABELS="$SHARED/data/mnist/t10k-labels-idx1-ubyte.gz"
for f in "$MODEL" "$IMAGES" "$LABELS"; do
    if [ ! -r "$f" ]; then
        echo "SKIP: $f not found (the shared models and data live next to the source tree)"
        exit 77
    fi
done
for tool in mpirun timeout awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-t_safetensors_burn.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
export OPENBLAS_NUM_THREADS=1
FAILS=0
fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $*"
}
# run NAME CMD...: stdout/stderr to NAME.out/NAME.err, exit status in RC
run() {
    local name=$1
    shift
    RC=0
    timeout -k 10 300 "$@" >"$name.out" 2>"$name.err" || RC=$?
}
expect_ok() {
    if [ "$RC" != 0 ]; then
        cat "$1.out" "$1.err" | tail -n 20
        echo "FAIL: [$1] exited with $RC"
        exit 1
    fi
}
# expect_fail NAME TEXT...: exit 2 and every TEXT in stderr
expect_fail() {
    local name=$1 t
    shift
    [ "$RC" = 2 ] || fail "[$name] exited with $RC, expected 2"
    for t in "$@"; do
        grep -qF -- "$t" "$name.err" || fail "[$name] stderr lacks: $t"
    done
    echo "ok: [$name] $(head -n 1 "$name.err")"
}
json_num() { # json_num FILE KEY: a top-level number of ftune's JSON output
    grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'
}

write_cfg() { # write_cfg FILE [fc2 units] [conv1 name]
    cat >"$1" <<EOF
# tracel-ai/burn examples/import-model-weights: the model of mnist.safetensors
data = { train = "unused.h5"; };
model = {
  input = [1, 28, 28];
  # ftune's import-idx stores x/255 already; burn normalises with MNIST's mean and std
  preprocess = { scale = 1.0; mean = [0.1307]; std = [0.3081]; };
  layers = (
    { name = "${3:-conv1}"; type = "conv2d"; filters = 8; kernel = 3; },
    { name = "relu1"; type = "relu"; },
    { name = "conv2"; type = "conv2d"; filters = 16; kernel = 3; },
    { name = "relu2"; type = "relu"; },
    { name = "conv3"; type = "conv2d"; filters = 24; kernel = 3; },
    { name = "relu3"; type = "relu"; },
    { name = "norm1"; type = "batchnorm"; },
    { name = "flatten"; type = "flatten"; },
    { name = "fc1"; type = "dense"; units = 32; },
    { name = "relu4"; type = "relu"; },
    { name = "dropout"; type = "dropout"; rate = 0.5; },
    { name = "fc2"; type = "dense"; units = ${2:-10}; },
    { name = "norm2"; type = "batchnorm"; }
  );
};
EOF
}

write_cfg burn.cfg
run import "$FTUNE" import safetensors "$MODEL" --config burn.cfg -o burn.h5
expect_ok import
grep -q "warning" import.err && fail "[import] unexpected warning: $(cat import.err)"
run data "$FTUNE" data import-idx --images "$IMAGES" --labels "$LABELS" -o mnist-test.h5
expect_ok data

check_acc() { # check_acc NAME: accuracy of NAME.out within 0.001 of 0.9917
    local acc
    acc=$(json_num "$1.out" accuracy)
    if awk -v a="$acc" 'BEGIN { d = a - 0.9917; exit !(a != "" && d <= 0.001 && d >= -0.001) }'; then
        echo "ok: [$1] accuracy $acc (measured with PyTorch: 0.9917)"
    else
        fail "[$1] accuracy '$acc', expected 0.9917 +- 0.001"
    fi
}
run eval1 "$FTUNE" eval burn.h5 --data mnist-test.h5 --json --save-logits logits1.h5
expect_ok eval1
check_acc eval1
run eval2 bash "$SRC/scripts/mpirun.sh" 2 --oversubscribe --bind-to none \
    "$FTUNE" eval burn.h5 --data mnist-test.h5 --json --save-logits logits2.h5
expect_ok eval2
check_acc eval2
[ "$(json_num eval1.out samples)" = 10000 ] || fail "[eval1] samples != 10000"

# export (PyTorch names) and import back without --config: same weights
run export "$FTUNE" export burn.h5 --format safetensors -o burn-out.safetensors
expect_ok export
run reimport "$FTUNE" import safetensors burn-out.safetensors -o burn2.h5
expect_ok reimport
run eval3 "$FTUNE" eval burn2.h5 --data mnist-test.h5 --json --save-logits logits3.h5
expect_ok eval3
check_acc eval3
if command -v h5diff >/dev/null 2>&1; then
    h5diff -q logits1.h5 logits3.h5 /logits || fail "logits differ after export + import"
    h5diff -q logits1.h5 logits2.h5 /predictions || fail "predictions differ between 1 and 2 ranks"
    h5diff -d 1e-5 logits1.h5 logits2.h5 /logits >/dev/null ||
        fail "logits differ between 1 and 2 ranks by more than 1e-5"
fi

# hostile and mismatched inputs: exit 2, messages name file, tensor and problem
head -c 700000 "$MODEL" >truncated.safetensors
run trunc "$FTUNE" import safetensors truncated.safetensors --config burn.cfg -o x.h5
expect_fail trunc truncated.safetensors "tensor 'fc1.weight'" "run past the end of the data area"
[ -e x.h5 ] && fail "[trunc] left x.h5 behind"
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >huge.safetensors
run huge "$FTUNE" import safetensors huge.safetensors --config burn.cfg -o x.h5
expect_fail huge huge.safetensors "header length" "limit"
# a weight stored as integers (same byte size, so only the dtype is wrong)
LC_ALL=C sed 's/"conv1.bias":{"dtype":"F32"/"conv1.bias":{"dtype":"I32"/' "$MODEL" >int.safetensors
run dtype "$FTUNE" import safetensors int.safetensors --config burn.cfg -o x.h5
expect_fail dtype int.safetensors "tensor 'conv1.bias' has dtype I32" "floating point"
write_cfg fc5.cfg 5
run shape "$FTUNE" import safetensors "$MODEL" --config fc5.cfg -o x.h5
expect_fail shape "layer 'fc2' parameter 'weight': tensor 'fc2.weight' has shape [10, 32] in the file but [5, 32] in the model" "pretrained.reinit"
write_cfg rename.cfg 10 c1
run names "$FTUNE" import safetensors "$MODEL" --config rename.cfg -o x.h5
expect_fail names "layer 'c1' parameter 'weight': tensor 'c1.weight' is not in the file" "pretrained.map"
# ... and the map fixes it
{ cat rename.cfg; echo 'pretrained = { map = { c1 = "conv1"; }; };'; } >mapped.cfg
run mapped "$FTUNE" import safetensors "$MODEL" --config mapped.cfg -o mapped.h5
expect_ok mapped
run export2 "$FTUNE" export mapped.h5 -o mapped.safetensors
expect_ok export2
grep -q "conv1.weight" mapped.safetensors || fail "[export2] the mapped layer lost its original name"
# a new head for 5 classes: fresh fc2 and norm2, the rest loaded
{ cat fc5.cfg; echo 'pretrained = { reinit = ["fc2", "norm2"]; };'; } >head5.cfg
run head5 "$FTUNE" import safetensors "$MODEL" --config head5.cfg -o head5.h5
expect_ok head5
grep -q "warning" head5.err && fail "[head5] reinit layers' tensors were reported: $(cat head5.err)"
# tensors no layer uses are reported (num_batches_tracked silently ignored)
grep -v '"norm2"' burn.cfg | sed 's/units = 10; },/units = 10; }/' >nonorm2.cfg
run unused "$FTUNE" import safetensors "$MODEL" --config nonorm2.cfg -o unused.h5
expect_ok unused
grep -qF "4 tensors are not used by the model (ignored): norm2." unused.err ||
    fail "[unused] expected one warning naming the norm2 tensors: $(cat unused.err)"
grep -qF "num_batches_tracked" unused.err && fail "[unused] num_batches_tracked was reported"
run notst "$FTUNE" import safetensors burn.h5 --config burn.cfg -o x.h5
expect_fail notst "is an HDF5 file, not safetensors"

if [ "$FAILS" -gt 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo OK
