#!/usr/bin/env bash
# Input errors: each exits with code 2 (docs: "usage or input error") and a message that names
# the culprit (file:line, key, file, layer and shapes). Some cases also under mpirun -np 2,
# where mpirun passes on the ranks' exit code 2 and the message is printed once (by rank 0).
# Usage (ctest): t_bad_input.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d.h5 96 16 4 11
write_mlp_cfg mlp.cfg "$TMP/run" "$TMP/d.h5"
base=(--set train.max_steps=2)

# -- config file problems ------------------------------------------------------------------

# A syntax error (a value missing) on line 3.
printf 'run = { seed = 1; };\n\ntrain = { epochs = ; };\n' >syntax.cfg
ft syntax 0 train syntax.cfg
expect_fail syntax 2 "syntax.cfg:3:" "syntax error"

# An unknown key with a close valid key: file:line and a suggestion.
sed 's/lr = 0.05;/lrr = 0.05;/' mlp.cfg >unknown.cfg
line=$(grep -n 'lrr = ' unknown.cfg | cut -d: -f1)
ft unknown 0 train unknown.cfg
expect_fail unknown 2 "unknown.cfg:$line:" "unknown key 'lrr' in train.optimizer" \
    "did you mean 'lr'?"

# A string where an integer is expected.
sed 's/batch_size = 32;/batch_size = "big";/' mlp.cfg >wrongtype.cfg
line=$(grep -n 'batch_size = ' wrongtype.cfg | cut -d: -f1)
ft wrongtype 0 train wrongtype.cfg
expect_fail wrongtype 2 "wrongtype.cfg:$line:" "train.batch_size must be an integer, got a string"

# The same through --set: the message names the --set that caused it.
ft wrongtype_set 0 train mlp.cfg --set train.epochs=many
expect_fail wrongtype_set 2 "--set train.epochs=many" "train.epochs must be an integer"

ft unknown_set 0 train mlp.cfg --set train.optimzer.lr=0.1
expect_fail unknown_set 2 "--set train.optimzer.lr=0.1" "unknown key 'optimzer' in train" \
    "did you mean 'optimizer'?"

ft missing_cfg 0 train "$TMP/none.cfg"
expect_fail missing_cfg 2 "none.cfg"

ft bad_option 0 train mlp.cfg --bogus
expect_fail bad_option 2 "--bogus"

# -- data problems -------------------------------------------------------------------------

ft missing_data 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/none.h5"
expect_fail missing_data 2 "$TMP/none.h5" "cannot open"

ft missing_eval_data 0 train mlp.cfg "${base[@]}" --set "data.eval=$TMP/none-eval.h5"
expect_fail missing_eval_data 2 "$TMP/none-eval.h5"

# Model input [17], samples [16]: both shapes are named.
ft wrong_shape 0 train mlp.cfg "${base[@]}" --set 'model.input=[17]'
expect_fail wrong_shape 2 "$TMP/d.h5" "[16]" "[17]"

# Labels 0..4 (5 classes) for a model with 4 outputs.
make_data d5.h5 100 16 5 12
ft labels_beyond_outputs 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/d5.h5"
expect_fail labels_beyond_outputs 2 "$TMP/d5.h5" "5 classes" "'fc2'" "4 outputs"

# Files that only h5py can make: float64 inputs, int64 labels, a label beyond "classes".
find_python_h5py
if [ -n "$PY_H5" ]; then
    "$PY_H5" - "$TMP/d.h5" <<'EOF'
import sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    x, y = f["inputs"][...], f["labels"][...]
with h5py.File("f64.h5", "w") as g:
    g["inputs"] = x.astype(np.float64)
    g["labels"] = y
with h5py.File("i64.h5", "w") as g:
    g["inputs"] = x
    g["labels"] = y.astype(np.int64)
with h5py.File("badlabel.h5", "w") as g:
    g["inputs"] = x
    y = y.copy()
    y[17] = 9
    g["labels"] = y
    g.attrs["classes"] = 4
EOF
    ft float64 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/f64.h5"
    expect_fail float64 2 "$TMP/f64.h5" "\"inputs\"" "float64" "float32"
    ft int64 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/i64.h5"
    expect_fail int64 2 "$TMP/i64.h5" "\"labels\"" "int64" "int32"
    ft label_range 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/badlabel.h5"
    expect_fail label_range 2 "$TMP/badlabel.h5" "row 17" "label 9" "[0, 4)"
else
    note "note: no python3 with h5py: float64/int64/label-range cases skipped" \
        "(Debian: python3-h5py)"
fi

# -- pretrained weights --------------------------------------------------------------------

# Pretrain a 4-class model, then fine-tune a 3-class head without listing it in
# pretrained.reinit: the layer and both shapes must be named.
ft pretrain 0 train mlp.cfg "${base[@]}" --set "run.dir=$TMP/pre"
expect_ok pretrain
make_data d3.h5 90 16 3 13
ft head_mismatch 0 train mlp.cfg "${base[@]}" --set "run.dir=$TMP/ft" \
    --set "data.train=$TMP/d3.h5" --set model.layers.fc2.units=3 \
    --set "pretrained.file=$TMP/pre/model.h5"
expect_fail head_mismatch 2 "$TMP/pre/model.h5" "'fc2'" "[4, 32]" "[3, 32]"

ft missing_pretrained 0 train mlp.cfg "${base[@]}" --set "pretrained.file=$TMP/nope.h5"
expect_fail missing_pretrained 2 "$TMP/nope.h5"

# -- output directory ----------------------------------------------------------------------

# We may be root, so permissions stop nothing: make run.dir's parent a regular file.
echo "not a directory" >afile
ft bad_rundir 0 train mlp.cfg "${base[@]}" --set "run.dir=$TMP/afile/run"
expect_fail bad_rundir 2 "$TMP/afile"

# -- eval ----------------------------------------------------------------------------------

ft eval_missing_model 0 eval "$TMP/nomodel.h5" --data "$TMP/d.h5"
expect_fail eval_missing_model 2 "$TMP/nomodel.h5"

ft eval_missing_data 0 eval "$TMP/pre/model.h5" --data "$TMP/nodata.h5"
expect_fail eval_missing_data 2 "$TMP/nodata.h5"

ft eval_labels 0 eval "$TMP/pre/model.h5" --data "$TMP/d5.h5"
expect_fail eval_labels 2 "$TMP/d5.h5" "5 classes" "4 outputs"

if [ -n "$PY_H5" ]; then
    ft eval_float64 0 eval "$TMP/pre/model.h5" --data "$TMP/f64.h5"
    expect_fail eval_float64 2 "$TMP/f64.h5" "float64"
fi

ft eval_no_data 0 eval "$TMP/pre/model.h5"
expect_fail eval_no_data 2 "--data"

# -- the same under mpirun -np 2 -----------------------------------------------------------
# mpirun exits with the code of the first rank that failed (2 here) and adds its own notice;
# the ftune message must appear exactly once (rank 0 prints it).
mpi_case() { # NAME PREFIX TEXT...
    local name=$1 prefix=$2
    shift 2
    expect_fail "$name" 2 "$@"
    local n
    n=$(count_lines "$TMP/$name.err" "$prefix")
    [ "$n" = 1 ] || fail "[$name] '$prefix' printed $n times under mpirun, expected once"
}

ft mpi_unknown_set 2 train mlp.cfg --set train.optimzer.lr=0.1
mpi_case mpi_unknown_set "ftune train:" "did you mean 'optimizer'?"

ft mpi_missing_data 2 train mlp.cfg "${base[@]}" --set "data.train=$TMP/none.h5"
mpi_case mpi_missing_data "ftune train:" "$TMP/none.h5"

ft mpi_head_mismatch 2 train mlp.cfg "${base[@]}" --set "run.dir=$TMP/ft2" \
    --set "data.train=$TMP/d3.h5" --set model.layers.fc2.units=3 \
    --set "pretrained.file=$TMP/pre/model.h5"
mpi_case mpi_head_mismatch "ftune train:" "'fc2'" "[4, 32]" "[3, 32]"

ft mpi_bad_rundir 2 train mlp.cfg "${base[@]}" --set "run.dir=$TMP/afile/run"
mpi_case mpi_bad_rundir "ftune train:" "$TMP/afile"

ft mpi_eval_missing_model 2 eval "$TMP/nomodel.h5" --data "$TMP/d.h5"
mpi_case mpi_eval_missing_model "ftune eval:" "$TMP/nomodel.h5"

ft_done
