#!/usr/bin/env bash
# Round trip with PyTorch: a small nn.Sequential CNN (nested Sequentials, so
# the tensor names need pretrained.map; batchnorm in the frozen and in the
# trainable part) with random weights
#   -> tools/torch_export.py (safetensors + ftune config with preprocess)
#   -> ftune train on 2 ranks, a few steps, frozen prefix, starting from the
#      safetensors file directly
#   -> ftune export (original PyTorch names)
#   -> PyTorch load_state_dict(strict=True): per-sample predictions equal
#      ftune eval's (--save-logits), logits within 1e-4, the frozen prefix
#      unchanged and the head changed.
#
# Usage: t_torch_roundtrip.sh FTUNE_BIN SOURCE_DIR [BUILD_DIR]; exit 77 = skipped.
set -euo pipefail

FTUNE=$(realpath "$1")
SRC=$(realpath "$2")
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, h5py, numpy' >/dev/null 2>&1; then
    echo "SKIP: $PY with torch, h5py and numpy is needed (Debian: python3-torch python3-h5py)"
    exit 77
fi
for tool in mpirun timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-t_torch_roundtrip.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
export OPENBLAS_NUM_THREADS=1
run() { # run NAME CMD...: must succeed
    local name=$1 rc=0
    shift
    timeout -k 10 300 "$@" >"$name.out" 2>"$name.err" || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 25 "$name.out" "$name.err"
        echo "FAIL: [$name] exited with $rc: $*"
        exit 1
    fi
}

cat >model.py <<'EOF'
import collections
import torch.nn as nn


def make():
    return nn.Sequential(collections.OrderedDict([
        ("features", nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.MaxPool2d(2))),
        ("flatten", nn.Flatten()),
        ("classifier", nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                     nn.Dropout(0.2), nn.Linear(16, 4))),
    ]))
EOF

cat >prepare.py <<'EOF'
import h5py, numpy as np, torch
import model

torch.manual_seed(1)
m = model.make()
with torch.no_grad():  # non-trivial frozen batchnorm statistics
    bn = m.features[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 1.5)
    bn.weight.uniform_(0.8, 1.2)
    bn.bias.uniform_(-0.1, 0.1)
torch.save(m.state_dict(), "init.pt")

rng = np.random.default_rng(5)
def data(path, n):
    y = np.arange(n) % 4
    x = rng.random((n, 1, 8, 8), dtype=np.float32) * 0.5
    for i, k in enumerate(y):  # a brighter quadrant per class
        x[i, 0, (k // 2) * 4:(k // 2) * 4 + 4, (k % 2) * 4:(k % 2) * 4 + 4] += 0.5
    with h5py.File(path, "w") as f:
        f["inputs"] = x
        f["labels"] = y.astype(np.int32)
        f.attrs["classes"] = 4
data("train.h5", 384)
data("eval.h5", 200)
EOF
run prepare "$PY" prepare.py

run export_torch "$PY" "$SRC/tools/torch_export.py" --module model.py --class make \
    --weights init.pt --input-shape 1,8,8 --mean 0.5 --std 0.25 --data train.h5 \
    -o init.safetensors --config ft.cfg
grep -q 'conv1 = "features.0"' ft.cfg || { cat ft.cfg; echo "FAIL: no pretrained.map in ft.cfg"; exit 1; }

# fine-tune from the safetensors file: conv1 and bn1 frozen, SGD, 2 ranks
run train bash "$SRC/scripts/mpirun.sh" 2 --oversubscribe --bind-to none "$FTUNE" train ft.cfg \
    --set run.dir=run --set data.eval=eval.h5 --set freeze.upto=pool1 \
    --set train.max_steps=8 --set train.batch_size=32 --set train.optimizer.lr=0.1 \
    --set log.progress=plain
[ -f run/model.h5 ] || { echo "FAIL: no run/model.h5"; exit 1; }

run export "$FTUNE" export run/model.h5 --format safetensors -o tuned.safetensors
run eval "$FTUNE" eval run/model.h5 --data eval.h5 --json --save-logits logits.h5

cat >compare.py <<'EOF'
import json, sys
import h5py, torch
sys.path.insert(0, sys.argv[1])
import torch_export
import model

tuned, meta = torch_export.read_safetensors("tuned.safetensors")
assert meta.get("format") == "pt", meta
init = torch.load("init.pt")
m = model.make()
m.load_state_dict(tuned, strict=True)  # every name and shape, nothing extra
m.eval()
# the frozen prefix is unchanged, the trainable layers moved
for k in ("features.0.weight", "features.0.bias", "features.1.running_mean", "features.1.weight"):
    assert torch.equal(tuned[k], init[k]), f"frozen {k} changed"
for k in ("classifier.0.weight", "classifier.4.weight", "classifier.1.running_mean"):
    assert not torch.equal(tuned[k], init[k]), f"trainable {k} did not change"

with h5py.File("eval.h5") as f:
    x = torch.from_numpy(f["inputs"][:])
    y = torch.from_numpy(f["labels"][:]).long()
with torch.no_grad():
    want = m((x - 0.5) / 0.25)  # model.preprocess of the generated config
with h5py.File("logits.h5") as f:
    got = torch.from_numpy(f["logits"][:])
    pred = torch.from_numpy(f["predictions"][:]).long()
diff = (got - want).abs().max().item()
same = int((pred == want.argmax(1)).sum())
res = json.load(open("eval.out"))
acc_torch = (want.argmax(1) == y).double().mean().item()
loss_torch = torch.nn.functional.cross_entropy(want, y).item()
print(f"logits max |diff| {diff:.3g}; predictions equal for {same}/{len(y)} samples; "
      f"accuracy ftune {res['accuracy']:.4f} torch {acc_torch:.4f}; "
      f"loss ftune {res['loss']:.6f} torch {loss_torch:.6f}")
assert diff <= 1e-4, diff
assert same == len(y)
assert abs(res["accuracy"] - acc_torch) < 1e-9
assert abs(res["loss"] - loss_torch) <= 1e-4 * max(1.0, abs(loss_torch))
EOF
run compare "$PY" compare.py "$SRC/tools"
cat compare.out
echo OK
