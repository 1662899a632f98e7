#!/usr/bin/env python3
"""A whole fine-tune in ftune and in PyTorch, compared step by step (issue 3).

A small CNN (conv-relu-pool-conv-relu-pool-flatten-dense-relu-dense, 1x12x12 inputs, 5
classes) gets the same initial weights in both: torch initialises it, and its state_dict is
written as an ftune model file with h5py (layer names conv1/conv2/fc1/fc2, PyTorch layouts),
which the config loads as pretrained.file. The convolutions are frozen (freeze.upto = pool2).
The data is an ftune dataset file (inputs float32 [N, 1, 12, 12], labels int32 [N]) read in
file order (data.shuffle = false); N = 314 with batch 16 gives 20 steps, the last one a
smaller batch of 10 (weighted by its true size).

Runs: SGD with momentum 0.9 and weight decay; AdamW with linear warm-up and cosine decay; SGD
on a variant with a trainable batchnorm in the head (its batch statistics are reduced over the
ranks, so 2 ranks must match torch's BatchNorm1d over the whole batch). Each on 1 rank and on 2
ranks (scripts/mpirun.sh 2). The PyTorch reference takes the same batches in order,
nn.CrossEntropyLoss (mean), the same optimizer and schedule, in float64 from the same float32
weights and data.

Checked: the loss of every step (metrics.jsonl, log.every = 1) within 1e-4 relative, the
learning rate of every step within 1e-5, every trained tensor of RUN_DIR/model.h5 (weights,
biases, batchnorm running statistics) within 1e-4 relative (max|ftune - torch| / max|torch|),
and the frozen convolutions bitwise unchanged.

Exit status: 0 all passed, 1 a mismatch or a failed run, 77 torch (or h5py) not available.
"""

import collections
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_common import Checker, Workdir, h5py, np, parse_args, run, t64, torch  # noqa: E402

from torch import nn  # noqa: E402
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR  # noqa: E402

TOL_LOSS = 1e-4
TOL_WEIGHTS = 1e-4
TOL_LR = 1e-5  # metrics.jsonl prints the rate with 6 significant digits
N, BATCH, STEPS, CLASSES = 314, 16, 20, 5
FROZEN = ("conv1", "conv2")

LAYERS = [  # (ftune layer, config line, torch module)
    ("conv1", '{ name = "conv1"; type = "conv2d"; filters = 4; kernel = 3; padding = 1; }',
     lambda: nn.Conv2d(1, 4, 3, padding=1)),
    ("relu1", '{ name = "relu1"; type = "relu"; }', nn.ReLU),
    ("pool1", '{ name = "pool1"; type = "maxpool2d"; size = 2; }', lambda: nn.MaxPool2d(2)),
    ("conv2", '{ name = "conv2"; type = "conv2d"; filters = 8; kernel = 3; padding = 1; }',
     lambda: nn.Conv2d(4, 8, 3, padding=1)),
    ("relu2", '{ name = "relu2"; type = "relu"; }', nn.ReLU),
    ("pool2", '{ name = "pool2"; type = "maxpool2d"; size = 2; }', lambda: nn.MaxPool2d(2)),
    ("flatten", '{ name = "flatten"; type = "flatten"; }', nn.Flatten),
    ("fc1", '{ name = "fc1"; type = "dense"; units = 32; }', lambda: nn.Linear(72, 32)),
    ("relu3", '{ name = "relu3"; type = "relu"; }', nn.ReLU),
    ("fc2", f'{{ name = "fc2"; type = "dense"; units = {CLASSES}; }}',
     lambda: nn.Linear(32, CLASSES)),
]
BN_LAYER = ("bn1", '{ name = "bn1"; type = "batchnorm"; momentum = 0.2; }',
            lambda: nn.BatchNorm1d(32, momentum=0.2))

RUNS = [  # name, use batchnorm, optimizer group (config text), schedule group
    ("sgd", False, 'type = "sgd"; lr = 0.05; momentum = 0.9; weight_decay = 0.0005;',
     'type = "constant";'),
    ("adamw_warmup_cosine", False,
     'type = "adamw"; lr = 0.003; weight_decay = 0.01; betas = [0.9, 0.99]; eps = 1e-7;',
     'type = "cosine"; warmup_steps = 4; min_lr = 0.0;'),
    ("sgd_batchnorm", True, 'type = "sgd"; lr = 0.05; momentum = 0.9;', 'type = "constant";'),
]


def layers_for(bn):
    out = list(LAYERS)
    if bn:
        out.insert(out.index(next(x for x in out if x[0] == "fc1")) + 1, BN_LAYER)
    return out


def torch_model(bn, seed):
    torch.manual_seed(seed)
    return nn.Sequential(collections.OrderedDict((n, make()) for n, _, make in layers_for(bn)))


def write_model_file(path, model, bn):
    """An ftune model file from a state_dict: /model/<layer>/<param>, PyTorch layouts."""
    sd = model.state_dict()
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = "ftune-model"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["layer_order"] = [n for n, _, _ in layers_for(bn)]
        for name, _, _ in layers_for(bn):
            g = f.create_group(f"model/{name}", track_order=True)
            for k in ("weight", "bias", "running_mean", "running_var"):
                if f"{name}.{k}" in sd:
                    g[k] = sd[f"{name}.{k}"].numpy().astype("<f4")


def write_dataset(path, rng):
    x = rng.random((N, 1, 12, 12), dtype=np.float32)
    teacher = rng.standard_normal((144, CLASSES))
    y = np.argmax(x.reshape(N, -1) @ teacher + 0.5 * rng.standard_normal((N, CLASSES)), axis=1)
    with h5py.File(path, "w") as f:
        f["inputs"] = x
        f["labels"] = y.astype(np.int32)
        f.attrs["classes"] = np.int64(CLASSES)
    return x, y


def write_config(path, run_dir, data, model_file, bn, optimizer, schedule):
    layers = ",\n    ".join(line for _, line, _ in layers_for(bn))
    text = f"""
run = {{ dir = "{run_dir}"; seed = 3; threads = 1; }};
data = {{ train = "{data}"; shuffle = false; }};
model = {{
  input = [1, 12, 12];
  layers = (
    {layers}
  );
}};
pretrained = {{ file = "{model_file}"; }};
freeze = {{ upto = "pool2"; }};
train = {{
  epochs = 1;
  batch_size = {BATCH};
  optimizer = {{ {optimizer} }};
  schedule = {{ {schedule} }};
}};
log = {{ every = 1; progress = "plain"; }};
"""
    with open(path, "w") as f:
        f.write(text)


def parse_group(text):
    """'type = "sgd"; lr = 0.05; betas = [0.9, 0.99];' -> dict."""
    out = {}
    for item in text.split(";"):
        if "=" not in item:
            continue
        k, v = (s.strip() for s in item.split("=", 1))
        out[k] = json.loads(v)
    return out


def torch_reference(model, x, y, optimizer, schedule):
    """Loss and learning rate of every step, and the final state_dict, in float64."""
    model = model.double()
    for name in FROZEN:
        for p in getattr(model, name).parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    o, s = parse_group(optimizer), parse_group(schedule)
    if o["type"] == "sgd":
        opt = torch.optim.SGD(params, lr=o["lr"], momentum=o.get("momentum", 0.9),
                              weight_decay=o.get("weight_decay", 0.0))
    else:
        opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))),
                                eps=o.get("eps", 1e-8), weight_decay=o.get("weight_decay", 0.0))
    sched = None
    if s["type"] == "cosine":
        W = s.get("warmup_steps", 0)
        # ftune's cosine ends at the run's total steps (train.schedule.total_steps = 0)
        cos = CosineAnnealingLR(opt, T_max=STEPS - W, eta_min=s.get("min_lr", 0.0))
        warm = LinearLR(opt, start_factor=1.0 / W, end_factor=1.0, total_iters=W - 1)
        sched = SequentialLR(opt, [warm, cos], milestones=[W])
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = t64(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
    losses, lrs = [], []
    model.train()
    for step in range(STEPS):
        xb, yb = xt[step * BATCH:(step + 1) * BATCH], yt[step * BATCH:(step + 1) * BATCH]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        losses.append(loss.item())
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
    return np.array(losses), np.array(lrs), {k: v.numpy() for k, v in model.state_dict().items()}


def read_metrics(path):
    steps = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "train":
                steps.append(rec)
    steps.sort(key=lambda r: r["step"])
    return steps


def main():
    args = parse_args(__doc__)
    if not args.ftune or not os.access(args.ftune, os.X_OK):
        print(f"--ftune {args.ftune!r} is not an executable")
        return 1
    mpirun = os.path.join(args.source, "scripts", "mpirun.sh")
    warnings.simplefilter("ignore")
    chk = Checker(args.verbose)
    rng = np.random.default_rng(11)
    final = {}
    with Workdir(args, "parity-finetune-") as wd:
        data = os.path.join(wd, "train.h5")
        x, y = write_dataset(data, rng)
        for run_name, bn, optimizer, schedule in RUNS:
            model = torch_model(bn, seed=5)
            init_file = os.path.join(wd, f"init-{run_name}.h5")
            write_model_file(init_file, model, bn)
            init = {k: v.numpy().copy() for k, v in model.state_dict().items()}
            ref_loss, ref_lr, ref_sd = torch_reference(model, x, y, optimizer, schedule)
            for ranks in (1, 2):
                label = f"{run_name} {ranks} rank{'s' if ranks > 1 else ''}"
                run_dir = os.path.join(wd, f"run-{run_name}-{ranks}")
                cfg = os.path.join(wd, f"{run_name}-{ranks}.cfg")
                write_config(cfg, run_dir, data, init_file, bn, optimizer, schedule)
                cmd = [args.ftune, "train", cfg]
                if ranks > 1:
                    cmd = ["bash", mpirun, str(ranks)] + cmd
                run(cmd, cwd=wd)
                steps = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
                got_steps = [r["step"] for r in steps]
                if not chk.expect(f"{label}: metrics.jsonl has steps 1..{STEPS}",
                                  got_steps == list(range(1, STEPS + 1)), f"got {got_steps}"):
                    continue
                loss = np.array([r["loss"] for r in steps])
                lr = np.array([r["lr"] for r in steps])
                per_step = np.abs(loss - ref_loss) / np.abs(ref_loss)
                for s in range(STEPS):
                    chk.check(f"{label} loss at step {s + 1}", loss[s], ref_loss[s], TOL_LOSS,
                              group="per-step loss")
                chk.check(f"{label} lr per step", lr, ref_lr, TOL_LR, group="learning rate")
                if args.verbose:
                    print(f"  {label}: loss {loss[0]:.5f} -> {loss[-1]:.5f}, worst per-step "
                          f"relative error {per_step.max():.3g}")
                with h5py.File(os.path.join(run_dir, "model.h5"), "r") as f:
                    for key, ref in ref_sd.items():
                        if key.endswith("num_batches_tracked"):
                            continue
                        layer, param = key.split(".")
                        got = f[f"model/{layer}/{param}"][()]
                        final[(run_name, ranks, key)] = got
                        if layer in FROZEN:
                            chk.expect(f"{label} frozen {key} unchanged",
                                       np.array_equal(got, init[key]))
                        else:
                            chk.check(f"{label} final {key}", got, ref, TOL_WEIGHTS,
                                      group="final weights")
        # 1 and 2 ranks: the same model up to the order of floating-point sums
        diff = max(float(np.abs(final[(r, 2, k)] - v).max())
                   for (r, n, k), v in final.items() if n == 1)
        print(f"  largest difference between the 1-rank and 2-rank final weights: {diff:.3g}")
        rc = chk.summary("parity.finetune")
        if rc:
            raise SystemExit(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
