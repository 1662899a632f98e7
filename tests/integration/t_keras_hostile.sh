#!/usr/bin/env bash
# Corrupt or hostile Keras files (issue 3, acceptance 4): `ftune import keras` exits with 2
# and a message naming the file and, where there is one, the layer and the problem; it never
# crashes, never makes a huge allocation and never leaves a partial output file.
# Synthetic files come from `test_keras --write-fixtures DIR` ($3 = the test build dir holds
# test_keras); real files from ../shared are edited byte for byte (same length, so the HDF5
# structure stays valid) and truncated. Either part is skipped, with a note, when its
# inputs are missing.
# Args: $1 = ftune binary, $2 = source dir, $3 = test build dir.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BUILD_DIR=
[ -n "${3:-}" ] && BUILD_DIR=$(realpath "$3")
ft_init "$@"

SHARED=$SRC/../shared
KERAS=$SHARED/models/keras
FIXTURES=${BUILD_DIR:+$BUILD_DIR/test_keras}
ran=0

# hostile NAME FILE TEXT...: the import of FILE fails with exit 2, stderr holds
# "ftune import keras: FILE" and every TEXT, and no output file is left behind.
hostile() {
    local name=$1 file=$2
    shift 2
    rm -f "out-$name.h5"
    ft "$name" 0 import keras "$file" -o "out-$name.h5" --config-out "out-$name.cfg"
    expect_fail "$name" 2 "ftune import keras: $file" "$@"
    if [ "$RC" -ge 128 ] || grep -qiE 'sanitizer|segmentation|core dumped' "$TMP/$name.err"; then
        fail "[$name] crashed (exit $RC)"
    fi
    [ -e "out-$name.h5" ] && fail "[$name] left out-$name.h5 behind"
    [ -e "out-$name.cfg" ] && fail "[$name] left out-$name.cfg behind"
    ls out-"$name".h5.tmp.* >/dev/null 2>&1 && fail "[$name] left a temporary file behind"
    ran=$((ran + 1))
}

# ---- synthetic files (tests/unit/test_keras.c) -----------------------------------------------
if [ -n "$FIXTURES" ] && [ -x "$FIXTURES" ]; then
    mkdir fx
    "$FIXTURES" --write-fixtures fx || die "test_keras --write-fixtures failed"
    ft good 0 import keras fx/good.h5 -o good.h5
    expect_ok good
    hostile unsupported fx/unsupported.h5 "layer 'lstm_1' (LSTM)" "cannot import" \
        "supported: Dense, Conv2D"
    hostile missing-weight fx/missing_weight.h5 "layer 'fc' (Dense)" "'fc/bias:0'" \
        "missing from the file"
    hostile missing-layer fx/missing_group.h5 "layer 'fc' (Dense)" "has no weights in the file"
    hostile int-kernel fx/int_kernel.h5 "layer 'fc' (Dense)" "'fc/kernel:0'" "type int32" \
        "expected float32"
    # a weight that is an external link (to a real dataset in fx/other.h5): not followed
    cp fx/good.h5 fx/other.h5
    hostile external-link fx/external.h5 "layer 'fc' (Dense)" "'fc/kernel:0'" \
        "link to another file"
    hostile bad-shape fx/bad_shape.h5 "layer 'fc' (Dense)" "shape [27, 5], expected [27, 4]"
    # Dense(1000000) on 1000000 inputs whose 4 TB kernel is only claimed by the file: refused
    # before anything is allocated. Under a 4 GB address-space limit an attempt to allocate
    # would fail instead (not applied to a sanitizer build, which cannot start under it).
    limit=unlimited
    if (ulimit -v 4000000 && "$FTUNE" --version) >/dev/null 2>&1; then
        limit=4000000
    fi
    before=$FAILS
    (
        ulimit -v "$limit"
        hostile giant fx/giant.h5 "layer 'huge' (Dense)" "'huge/kernel:0'" \
            "truncated or sparse"
        [ "$FAILS" = "$before" ]
    ) || FAILS=$((FAILS + 1))
    ran=$((ran + 1))
    hostile weights-only fx/weights_only.h5 "weights-only Keras file" "--config"
    head -c 3000 fx/good.h5 >fx/truncated.h5
    hostile truncated-synthetic fx/truncated.h5 "truncated file"
else
    note "SKIP: test_keras not found in '${BUILD_DIR:-}' (pass the test build dir as \$3):" \
        "the synthetic hostile files are not checked"
fi

# ---- other inputs --------------------------------------------------------------------------
echo "not hdf5" >text.h5
hostile not-hdf5 text.h5 "not an HDF5 file"
hostile absent absent.h5 "cannot open"
printf 'PK\003\004rest of a zip' >model.keras
hostile keras3-zip model.keras "zip archive" "model.save"
ft usage 0 import keras
expect_fail usage 2 "MODEL.h5 is missing"
ft usage-scale 0 import keras x.h5 -o y.h5 --input-scale -1
expect_fail usage-scale 2 "--input-scale needs a positive number"

# ---- real files, edited -----------------------------------------------------------------------
if [ -r "$KERAS/fmnist_berfu_cnn2.h5" ] && command -v perl >/dev/null 2>&1; then
    # the first Dropout of model_config becomes a Reshape (same length)
    perl -0777 -pe 's/\{"class_name": "Dropout"/{"class_name": "Reshape"/' \
        "$KERAS/fmnist_berfu_cnn2.h5" >reshape.h5
    hostile real-unsupported reshape.h5 "layer 'dropout' (Reshape)" "cannot import" \
        "supported: Dense"
    # weight_names of dense_5 lists a bias that is not in the file
    perl -0777 -pe 's{dense_5/bias:0}{dense_5/bias:9}g' "$KERAS/fmnist_berfu_cnn2.h5" >nobias.h5
    hostile real-missing-weight nobias.h5 "layer 'dense_5' (Dense)" "'dense_5/bias:9'" \
        "missing from the file"
    # model_config gives dense_4 129 units: the kernel in the file does not fit
    perl -0777 -pe 's/("name": "dense_4", "trainable": true, "dtype": "float32", "units": )128/${1}129/' \
        "$KERAS/fmnist_berfu_cnn2.h5" >units.h5
    hostile real-shape units.h5 "layer 'dense_4' (Dense)" "shape [1152, 128], expected [1152, 129]"
    head -c 1000000 "$KERAS/fmnist_berfu_cnn2.h5" >truncated.h5
    hostile real-truncated truncated.h5 "truncated file"
else
    note "SKIP: $KERAS/fmnist_berfu_cnn2.h5 or perl not found: the edited real files are not checked"
fi

note "$ran hostile imports checked"
ft_done
