#!/usr/bin/env python3
"""Parity of ftune's optimizers and learning-rate schedules with torch.optim (issue 3).

Each case is a chain of dense layers (some with an lr_mult, some frozen) and a fixed sequence
of random float32 gradients. tests/parity/optim_harness applies them with ft_optim_step and
ft_schedule_lr exactly as the trainer does (ft_clip_grad_norm first when clipping is on);
torch applies the same gradients with torch.optim.SGD / AdamW, the schedule built from
torch.optim.lr_scheduler (LinearLR warm-up, then CosineAnnealingLR or StepLR, joined by
SequentialLR) and torch.nn.utils.clip_grad_norm_. The torch side runs in float64 from the same
float32 initial values and gradients.

Checked after every step: every trainable parameter (relative error max|ftune - torch| /
max|torch| <= 1e-5), the learning rate (<= 1e-6), frozen layers bitwise unchanged. The error of
the accumulated update (parameter minus its initial value) is reported too, and must stay below
1e-3: it is the part of the parameter the optimizer computed, so it shows the optimizer's
arithmetic without being diluted by the parameter's own size.

Exit status: 0 all passed, 1 a mismatch, 77 torch (or h5py) not available.
"""

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_common import (Checker, Workdir, h5py, np, parse_args, rel_err, run,  # noqa: E402
                           t64, torch)

from torch.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, SequentialLR,  # noqa: E402
                                      StepLR)

TOL_PARAM = 1e-5
TOL_LR = 1e-6
TOL_UPDATE = 1e-3
STEPS = 10
FEATURES = 6


def case(name, optimizer, layers, steps=STEPS, grad_scale=None, **cfg):
    """layers: list of (name, units, lr_mult, frozen)."""
    return dict(name=name, optimizer=optimizer, layers=layers, steps=steps,
                grad_scale=grad_scale or {}, cfg=cfg)


THREE = [("a", 5, 1.0, 0), ("b", 4, 1.0, 0), ("c", 3, 1.0, 0)]

CASES = [
    case("sgd_momentum_wd", "sgd", THREE, lr=0.1, momentum=0.9, weight_decay=0.01),
    case("sgd_nesterov_wd_warmup_cosine", "sgd", THREE, lr=0.05, momentum=0.9, nesterov=1,
         weight_decay=5e-3, schedule="cosine", warmup_steps=3, total_steps=10, min_lr=1e-3),
    case("sgd_plain_warmup_step", "sgd", THREE, lr=0.2, momentum=0.0, schedule="step",
         warmup_steps=2, step_size=3, gamma=0.5),
    case("sgd_momentum_clip_lr_mult_frozen", "sgd",
         [("a", 5, 1.0, 0), ("b", 4, 1.0, 1), ("c", 3, 2.0, 0)], lr=0.1, momentum=0.9,
         clip_grad_norm=1.0, grad_scale={"a": 3.0, "c": 3.0}, schedule="cosine",
         warmup_steps=2, total_steps=10),
    case("adamw_wd_warmup_cosine", "adamw", THREE, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
         weight_decay=0.01, schedule="cosine", warmup_steps=3, total_steps=10),
    case("adamw_betas_lr_mult_frozen", "adamw",
         [("a", 5, 1.0, 0), ("b", 4, 1.0, 1), ("c", 3, 0.5, 0)], lr=3e-3, beta1=0.8,
         beta2=0.95, eps=1e-6, weight_decay=0.1),
    case("adamw_cosine_min_lr_small_grads", "adamw", THREE, lr=2e-2, weight_decay=0.05,
         schedule="cosine", total_steps=10, min_lr=2e-3, grad_scale={"b": 1e-4}),
]

DEFAULTS = dict(lr=0.01, momentum=0.0, nesterov=0, weight_decay=0.0, beta1=0.9, beta2=0.999,
                eps=1e-8, schedule="constant", warmup_steps=0, step_size=1000, gamma=0.1,
                total_steps=0, min_lr=0.0, clip_grad_norm=0.0)


def make_data(c, rng):
    """Initial parameters and per-step gradients (float32) for every layer."""
    fan_in = FEATURES
    init, grads = {}, {}
    for name, units, _, frozen in c["layers"]:
        b = 1 / np.sqrt(fan_in)
        init[name] = {"weight": rng.uniform(-b, b, (units, fan_in)).astype(np.float32),
                      "bias": rng.uniform(-b, b, (units,)).astype(np.float32)}
        if not frozen:
            s = c["grad_scale"].get(name, 1.0)
            grads[name] = {k: (s * rng.standard_normal((c["steps"],) + v.shape))
                           .astype(np.float32) for k, v in init[name].items()}
        fan_in = units
    return init, grads


def write_case(f, c, init, grads):
    cfg = dict(DEFAULTS, **c["cfg"])
    g = f.create_group(c["name"])
    g.attrs["optimizer"] = c["optimizer"]
    for k in ("lr", "momentum", "weight_decay", "beta1", "beta2", "eps", "gamma", "min_lr",
              "clip_grad_norm"):
        g.attrs[k] = np.float64(cfg[k])
    for k in ("nesterov", "warmup_steps", "step_size", "total_steps"):
        g.attrs[k] = np.int64(cfg[k])
    g.attrs["schedule"] = cfg["schedule"]
    g.attrs["steps"] = np.int64(c["steps"])
    g.attrs["features"] = np.int64(FEATURES)
    g.attrs["layer_order"] = [name for name, *_ in c["layers"]]
    for name, units, lr_mult, frozen in c["layers"]:
        lg = g.create_group(f"model/{name}")
        lg.attrs["units"] = np.int64(units)
        lg.attrs["lr_mult"] = np.float64(lr_mult)
        lg.attrs["frozen"] = np.int64(frozen)
        for k, v in init[name].items():
            lg[k] = v
        for k, v in grads.get(name, {}).items():
            g[f"grads/{name}/{k}"] = v


def torch_reference(c, init, grads):
    """Parameters after every step and the learning rate of each step, in float64."""
    cfg = dict(DEFAULTS, **c["cfg"])
    params, groups = {}, []
    for name, _, lr_mult, frozen in c["layers"]:
        params[name] = {k: t64(v).requires_grad_(not frozen) for k, v in init[name].items()}
        if not frozen:
            groups.append({"params": list(params[name].values()), "lr": cfg["lr"] * lr_mult})
    if c["optimizer"] == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                              nesterov=bool(cfg["nesterov"]), weight_decay=cfg["weight_decay"])
    else:
        opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                                eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    W = cfg["warmup_steps"]
    if cfg["schedule"] == "cosine":
        main = CosineAnnealingLR(opt, T_max=max(cfg["total_steps"] - W, 1), eta_min=cfg["min_lr"])
    elif cfg["schedule"] == "step":
        main = StepLR(opt, step_size=cfg["step_size"], gamma=cfg["gamma"])
    else:
        main = None
    sched = main
    if W > 0:
        # ftune's warm-up: lr * (s + 1) / W for steps s < W, i.e. LinearLR from 1/W to 1
        warm = LinearLR(opt, start_factor=1.0 / W, end_factor=1.0, total_iters=W - 1)
        sched = SequentialLR(opt, [warm, main], milestones=[W]) if main else warm
    trainable = [p for name, *_ in c["layers"] if name in grads
                 for p in params[name].values()]
    hist = {name: {k: [] for k in init[name]} for name, *_ in c["layers"]}
    lrs = []
    for s in range(c["steps"]):
        for name in grads:
            for k, p in params[name].items():
                p.grad = t64(grads[name][k][s])
        if cfg["clip_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg["clip_grad_norm"])
        lrs.append(opt.param_groups[0]["lr"])  # layer 'a', lr_mult 1 in every case
        opt.step()
        if sched is not None:
            sched.step()
        for name in params:
            for k, p in params[name].items():
                hist[name][k].append(p.detach().numpy().copy())
    return np.array(lrs), {n: {k: np.stack(v) for k, v in d.items()} for n, d in hist.items()}


def main():
    args = parse_args(__doc__)
    if not args.optim_harness or not os.access(args.optim_harness, os.X_OK):
        print(f"--optim-harness {args.optim_harness!r} is not an executable")
        return 1
    warnings.simplefilter("ignore")  # torch's scheduler deprecation chatter
    rng = np.random.default_rng(7)
    data = {c["name"]: make_data(c, rng) for c in CASES}
    chk = Checker(args.verbose)
    update_err = {}
    with Workdir(args, "parity-optim-") as wd:
        cases_h5 = os.path.join(wd, "cases.h5")
        results_h5 = os.path.join(wd, "results.h5")
        with h5py.File(cases_h5, "w") as f:
            for c in CASES:
                write_case(f, c, *data[c["name"]])
        run([args.optim_harness, cases_h5, results_h5])
        with h5py.File(results_h5, "r") as res:
            for c in CASES:
                name = c["name"]
                init, grads = data[name]
                r = res[name]
                kind = c["optimizer"]
                ref_lr, ref = torch_reference(c, init, grads)
                chk.check(f"{name} lr per step", r["lr"][()], ref_lr, TOL_LR,
                          group="learning rate")
                worst_update = 0.0
                for lname, *_ in c["layers"]:
                    for k in init[lname]:
                        got = r[f"params/{lname}/{k}"][()]
                        if lname not in grads:
                            chk.expect(f"{name} frozen {lname}.{k} unchanged",
                                       np.array_equal(got, np.broadcast_to(init[lname][k],
                                                                           got.shape)))
                            continue
                        for s in range(c["steps"]):
                            chk.check(f"{name} {lname}.{k} after step {s + 1}", got[s],
                                      ref[lname][k][s], TOL_PARAM, group=f"{kind} parameters")
                        d_got = got[-1].astype(np.float64) - init[lname][k]
                        d_ref = ref[lname][k][-1] - init[lname][k]
                        chk.check(f"{name} {lname}.{k} total update", d_got, d_ref,
                                  TOL_UPDATE, group=f"{kind} updates")
                        worst_update = max(worst_update, rel_err(d_got, d_ref))
                update_err[name] = worst_update
        for name, e in update_err.items():
            print(f"  {name:<36s} worst relative error of the total update {e:.3g}")
        rc = chk.summary("parity.optim")
        if rc:
            raise SystemExit(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
