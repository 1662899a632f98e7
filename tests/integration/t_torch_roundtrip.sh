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

# Every supported layer kind, channels-last data (model.preprocess.layout =
# "nhwc") and a fx-traced functional forward: torch_export.py -> ftune import
# safetensors -> ftune eval --save-logits equals PyTorch.
cat >wide.py <<'EOF2'
import torch, torch.nn as nn, torch.nn.functional as F


class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, stride=2, bias=False), nn.GELU(approximate="tanh"),
            nn.AvgPool2d(2, padding=1), nn.Tanh())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 16)
        self.norm = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.flatten(self.gap(F.avg_pool2d(self.body(x), 1)), 1)
        x = torch.sigmoid(self.norm(self.head(F.dropout(x, 0.1, self.training))))
        return F.log_softmax(F.gelu(self.out(x)), dim=1)
EOF2
cat >wide_check.py <<'EOF2'
import subprocess, sys
import h5py, numpy as np, torch
import wide
ftune = sys.argv[1]
torch.manual_seed(3)
m = wide.Wide()
with torch.no_grad():
    for bn in (m.body[1], m.norm):
        bn.running_mean.uniform_(-0.3, 0.3); bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5); bn.bias.uniform_(-0.2, 0.2)
m.eval()
torch.save(m.state_dict(), "wide.pt")
subprocess.run([sys.executable, sys.argv[2], "--module", "wide.py", "--class", "Wide", "--weights",
                "wide.pt", "--input-shape", "3,16,16", "--layout", "nhwc", "--scale", "2.0",
                "-o", "wide.safetensors", "--config", "wide.cfg"], check=True)
subprocess.run([ftune, "import", "safetensors", "wide.safetensors", "--config", "wide.cfg",
                "-o", "wide.h5"], check=True)
x = torch.rand(40, 3, 16, 16)
with h5py.File("wide-data.h5", "w") as f:
    f["inputs"] = x.permute(0, 2, 3, 1).contiguous().numpy()  # stored channels-last
    f["labels"] = (np.arange(40) % 5).astype(np.int32)
subprocess.run([ftune, "eval", "wide.h5", "--data", "wide-data.h5", "--save-logits",
                "wide-logits.h5"], check=True, stdout=subprocess.DEVNULL)
with torch.no_grad():
    want = m(x * 2.0)
got = torch.log_softmax(torch.from_numpy(h5py.File("wide-logits.h5")["logits"][:]), 1)
diff = (got - want).abs().max().item()
same = int((got.argmax(1) == want.argmax(1)).sum())
print(f"wide: log-probabilities max |diff| {diff:.3g}; predictions equal for {same}/40")
assert diff <= 1e-4 and same == 40
EOF2
run wide "$PY" wide_check.py "$FTUNE" "$SRC/tools/torch_export.py"
tail -n 1 wide.out
echo OK
