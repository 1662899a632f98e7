#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/* (committed; run this only to refresh
# them). Seeds are small valid files made by ftune itself plus edge cases; regression inputs
# for fixed crashes live next to them as corpus/<harness>/regress-*, and are never removed
# by this script.
# Usage: tests/fuzz/make_seeds.sh BUILD_DIR   (a build with ftune and tests/fuzz/h5forge)
set -euo pipefail
BUILD=$(realpath "${1:?usage: make_seeds.sh BUILD_DIR}")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
C=$SRC/tests/fuzz/corpus
FTUNE=$BUILD/ftune
FORGE=$BUILD/tests/fuzz/h5forge
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
export OPENBLAS_NUM_THREADS=1
for d in config dataset model idx csv json safetensors keras; do
    mkdir -p "$C/$d"
    find "$C/$d" -name 'seed-*' -delete
done

# ---- csv: one option byte, then the file ----
csv() { # NAME OPTBYTE(octal) TEXT
    { printf "\\$2"; printf '%b' "$3"; } >"$C/csv/seed-$1"
}
csv plain 000 '0.1,0.2,0\n0.3,0.4,1\n-1e3,5,2\n'
csv header 000 'a,b,label\n1,2,0\n3,4,1\n'
csv semicolon 000 'x;y;z;c\n1;2;3;1\n4;5;6;0\n'
csv tabs-blank 000 '1\t2\t0\n\n  \n3\t4\t1\r\n'
csv quoted 000 '"f1","f2","y"\n"1.5","2",3\n'
csv labelfirst 004 '2,0.5,0.25\n0,1,1\n'
csv keep 100 '1,0\n2,2\n3,1\n4,0\n'
csv floatlabel 000 '1,2.0\n3,1.0\n'
csv nan 000 '1,nan,0\n2,3,1\n'
csv inf 000 '1,2,0\ninf,3,1\n'
csv ragged 000 '1,2,0\n1,0\n'
csv hugelabel 000 '1,99999999999,0\n'
csv onecol 000 '1\n2\n'

# ---- idx: option byte, 4-byte little-endian label-file length, labels, images ----
idx_labels() { # N: labels 0..N-1 mod 10
    printf '\x00\x00\x08\x01'
    printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))"
    printf "\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"
    for ((i = 0; i < $1; i++)); do printf "\\x$(printf %02x $((i % 10)))"; done
}
idx_images() { # N ROWS COLS
    printf '\x00\x00\x08\x03'
    for v in "$1" "$2" "$3"; do
        printf "\\x$(printf %02x $((v >> 24 & 255)))\\x$(printf %02x $((v >> 16 & 255)))"
        printf "\\x$(printf %02x $((v >> 8 & 255)))\\x$(printf %02x $((v & 255)))"
    done
    head -c $(($1 * $2 * $3)) /dev/urandom
}
idx() { # NAME OPT LABELFILE IMAGEFILE
    local n
    n=$(stat -c %s "$3")
    {
        printf "\\x$(printf %02x "$2")"
        printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8 & 255)))"
        printf "\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 24 & 255)))"
        cat "$3" "$4"
    } >"$C/idx/seed-$1"
}
idx_labels 6 >l6
idx_images 6 4 4 >i6
idx plain 0 l6 i6
idx keep 1 l6 i6
gzip -c l6 >l6.gz
gzip -c i6 >i6.gz
idx gzip 2 l6.gz i6.gz
idx_images 5 4 4 >i5
idx count-mismatch 0 l6 i5
idx swapped 0 i6 l6
head -c 40 i6 >i6short
idx truncated 0 l6 i6short
{ printf '\x00\x00\x08\x01\xff\xff\xff\xff'; } >lhuge
{ printf '\x00\x00\x08\x03\xff\xff\xff\xff\x00\x00\x10\x00\x00\x00\x10\x00'; } >ihuge
idx huge-count 0 lhuge ihuge
{ printf '\x00\x00\x08\x03\x00\x00\x00\x06\x00\x00\x10\x00\x00\x00\x10\x00'; } >ibig
idx huge-image 0 l6 ibig

# ---- dataset: HDF5 files made by the importers and by h5forge ----
printf '0.1,0.2,0.3,0\n0.4,0.5,0.6,1\n0.7,0.8,0.9,2\n1,1,1,1\n' >d.csv
"$FTUNE" data import-csv d.csv -o "$C/dataset/seed-csv.h5" --no-header >/dev/null
"$FTUNE" data import-idx --labels l6 --images i6 -o "$C/dataset/seed-idx.h5" >/dev/null
"$FORGE" poison "$C/dataset/seed-csv.h5" "$C/dataset/seed-nan.h5" 1 nan
"$FORGE" huge-n "$C/dataset/seed-huge-n.h5"
"$FORGE" huge-dims "$C/dataset/seed-huge-dims.h5"
"$FORGE" huge-sample "$C/dataset/seed-huge-sample.h5"
"$FORGE" short-storage "$C/dataset/seed-short-storage.h5"
head -c 1000 "$C/dataset/seed-csv.h5" >"$C/dataset/seed-truncated.h5"
printf 'not hdf5\n' >"$C/dataset/seed-text"

# ---- model: a model and a checkpoint of the model in fuzz_model.c ----
awk 'BEGIN { s = 1; for (i = 0; i < 12; i++) { l = ""; for (j = 0; j < 16; j++) {
        s = (s * 16807) % 2147483647; l = l sprintf("%.4f,", s / 2147483647) }
        print l (i % 3) } }' >m.csv
"$FTUNE" data import-csv m.csv -o m.h5 --no-header >/dev/null
cat >m.cfg <<CFG
run = { dir = "$T/run"; seed = 1; };
data = { train = "$T/m.h5"; };
model = { input = [1, 4, 4]; layers = (
  { name = "conv1"; type = "conv2d"; filters = 2; kernel = 3; padding = 1; },
  { name = "bn1"; type = "batchnorm"; },
  { name = "relu1"; type = "relu"; },
  { name = "flatten"; type = "flatten"; },
  { name = "fc1"; type = "dense"; units = 3; }
); };
freeze = { upto = "conv1"; };
train = { epochs = 1; batch_size = 4; optimizer = { type = "sgd"; momentum = 0.9; }; };
checkpoint = { every = 2; keep_last = 5; };
log = { progress = "plain"; };
CFG
"$FTUNE" train m.cfg >/dev/null
cp run/model.h5 "$C/model/seed-model.h5"
cp run/checkpoints/ckpt-00000003.h5 "$C/model/seed-ckpt.h5"
"$FORGE" huge-param "$C/model/seed-huge-param.h5"
"$FORGE" huge-config "$C/model/seed-huge-config.h5"
cp "$C/dataset/seed-csv.h5" "$C/model/seed-dataset.h5"
head -c 3000 run/model.h5 >"$C/model/seed-truncated.h5"

# ---- safetensors: exported by ftune, plus hand-made headers ----
"$FTUNE" export "$C/model/seed-model.h5" --format safetensors -o "$C/safetensors/seed-export.safetensors" >/dev/null
st() { # NAME JSON [DATA-BYTES]: 8-byte little-endian header length, header, data
    local n=${#2}
    {
        printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x00\\x00\\x00\\x00\\x00\\x00"
        printf '%s' "$2"
        head -c "${3:-0}" /dev/zero
    } >"$C/safetensors/seed-$1"
}
st f16 '{"fc1.weight":{"dtype":"F16","shape":[3,32],"data_offsets":[0,192]},"__metadata__":{"format":"pt"}}' 192
st overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
st scalar '{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}' 8
st huge-shape '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}' 8
st bf16-f64 '{"conv1.weight":{"dtype":"BF16","shape":[2,1,3,3],"data_offsets":[0,36]},"conv1.bias":{"dtype":"F64","shape":[2],"data_offsets":[36,52]}}' 52

# ---- json ----
printf '{"a":[1,2.5e3,-0,true,false,null],"b":{"c":"\\u00e9\\ud83d\\ude00"}}' >"$C/json/seed-mixed"
printf '[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]' >"$C/json/seed-deep"
printf '"esc \\" \\\\ \\n \\t \\u0001"' >"$C/json/seed-string"
printf '{"a":1,"a":2}' >"$C/json/seed-dupkey"
printf '9223372036854775807' >"$C/json/seed-bigint"
head -c 80 "$C/safetensors/seed-export.safetensors" | tail -c 72 >"$C/json/seed-st-header" || true
printf '{"class_name":"Sequential","config":{"layers":[{"class_name":"Dense","config":{"name":"d","units":10,"activation":"relu"}}]}}' >"$C/json/seed-keras"

# ---- keras: the fixtures of tests/unit/test_keras.c (one option byte in front) ----
if [ -x "$BUILD/tests/test_keras" ]; then
    mkdir -p kfx
    "$BUILD/tests/test_keras" --write-fixtures kfx >/dev/null
    o=0
    for f in kfx/*.h5; do
        { printf "\\x$(printf %02x $o)"; cat "$f"; } >"$C/keras/seed-$(basename "$f" .h5)"
        o=$(((o + 1) % 128))
    done
fi

# ---- config ----
cp "$SRC"/configs/*.cfg "$C/config/"
for f in "$C"/config/*.cfg; do mv "$f" "$C/config/seed-$(basename "$f")"; done
cp m.cfg "$C/config/seed-small.cfg"
printf 'data = { train = "x.h5"; };\nmodel = { input = [4]; layers = ( { name = "a"; type = "dense"; units = 2; } ); };\n' >"$C/config/seed-minimal.cfg"
{ cat "$C/config/seed-minimal.cfg"; printf '\0train.optimizer.lr=0.5\nmodel.layers.a.units=3\nmodel.layers[0].lr_mult=2\npretrained.reinit=[a]\ntrain.loss.class_weights=[1, 2.5]'; } >"$C/config/seed-sets"
printf 'train = { epochs = ; };\n' >"$C/config/seed-syntax"
printf 'data = { train = "x.h5"; };\nmodel = { input = [2147483647, 2147483647, 2147483647]; layers = ( { name = "a"; type = "flatten"; }, { name = "b"; type = "dense"; units = 1073741824; } ); };\n' >"$C/config/seed-huge-shape"
printf 'data = { train = "x.h5"; };\nmodel = { input = [1073741824]; layers = ( { name = "a"; type = "dense"; units = 1073741824; }, { name = "b"; type = "dense"; units = 1073741824; } ); };\ntrain = { max_steps = 3000000000L; };\n' >"$C/config/seed-huge-model"
printf '@include "seed-minimal.cfg"\n' >"$C/config/seed-include"
ls "$C"/*/ | wc -l
du -sh "$C"
