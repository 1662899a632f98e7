#!/usr/bin/env python3
"""Parity of every layer kind and of the loss with PyTorch (issue 3).

Random cases are written to an HDF5 file, run through ftune's layers (forward and backward,
through the public ft_layer_ops table) by tests/parity/layer_harness, and compared with torch.
The torch reference is computed in float64 from the same float32 inputs and parameters, so it
is exact up to float64 rounding; ftune computes in float32. Every output tensor (y, dx, each
parameter gradient, batchnorm's running statistics after forward, the loss and dlogits) must
have relative error max|ftune - torch| / max|torch| <= 1e-5.

Exit status: 0 all passed, 1 a mismatch, 77 torch (or h5py) not available.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_common import (Checker, Workdir, h5py, np, parse_args, run,  # noqa: E402
                           t64, torch)

import torch.nn.functional as F  # noqa: E402

TOL = 1e-5


class Case:
    def __init__(self, name, kind, x, ref, kv=None, params=None, dy=True, training=0,
                 frozen=0, saved=1, grad_init=None, learnable=(), seed=0):
        self.name, self.kind, self.ref, self.seed = name, kind, ref, seed
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.kv = kv or {}
        self.params = {k: np.ascontiguousarray(v, dtype=np.float32)
                       for k, v in (params or {}).items()}
        self.dy = dy  # True: random, shaped like the reference output; None: forward only
        self.training, self.frozen, self.saved = training, frozen, saved
        self.grad_init = {k: np.ascontiguousarray(v, dtype=np.float32)
                          for k, v in (grad_init or {}).items()}
        # parameters that get a gradient (learnable, and the layer is not frozen)
        self.learnable = [] if frozen else list(learnable)


def autograd_ref(case, fn):
    """Runs fn(x, P) in float64 with autograd; returns y, dx, grads and the parameters after."""
    x = t64(case.x).requires_grad_(True)
    P = {k: t64(v) for k, v in case.params.items()}
    for k in case.learnable:
        P[k].requires_grad_(True)
    y = fn(x, P)
    out = {"y": y.detach().numpy()}
    if case.dy is not None:
        y.backward(t64(case.dy))
        out["dx"] = x.grad.numpy()
        out["grads"] = {k: P[k].grad.numpy() + case.grad_init.get(k, 0.0)
                        for k in case.learnable}
    out["params"] = {k: v.detach().numpy() for k, v in P.items()}
    return out


def flat(x):
    return x.reshape(x.shape[0], -1)


# ---- case construction -------------------------------------------------------------------

def make_cases(rng):
    cases = []
    N = rng.standard_normal

    def u(shape, bound):
        return rng.uniform(-bound, bound, size=shape)

    # dense: weight [out, in] like nn.Linear; any input rank is read as flat features
    def dense(name, n, in_shape, units, bias=True, **kw):
        fan_in = int(np.prod(in_shape))
        params = {"weight": u((units, fan_in), 1 / np.sqrt(fan_in))}
        if bias:
            params["bias"] = u((units,), 1 / np.sqrt(fan_in))
        kv = {"units": units} if bias else {"units": units, "bias": 0}
        ref = (lambda x, P: F.linear(flat(x), P["weight"], P.get("bias")))
        cases.append(Case(name, "dense", N((n,) + in_shape), ref, kv=kv, params=params,
                          learnable=list(params), **kw))

    dense("dense", 5, (7,), 4)
    dense("dense_nobias", 3, (6,), 2, bias=False)
    dense("dense_chw_input", 4, (2, 3, 3), 5)
    dense("dense_grad_accumulates", 6, (9,), 3,
          grad_init={"weight": N((3, 9)), "bias": N((3,))})
    dense("dense_frozen", 4, (5,), 3, frozen=1, training=1)

    # conv2d: weight [out, in, kh, kw] like nn.Conv2d; square kernel, stride and padding
    def conv(name, n, c, h, w, filters, k, stride=1, padding=0, bias=True, **kw):
        fan_in = c * k * k
        params = {"weight": u((filters, c, k, k), 1 / np.sqrt(fan_in))}
        if bias:
            params["bias"] = u((filters,), 1 / np.sqrt(fan_in))
        kv = {"filters": filters, "kernel": k, "stride": stride, "padding": padding}
        if not bias:
            kv["bias"] = 0
        ref = (lambda x, P: F.conv2d(x, P["weight"], P.get("bias"), stride=stride,
                                     padding=padding))
        cases.append(Case(name, "conv2d", N((n, c, h, w)), ref, kv=kv, params=params,
                          learnable=list(params), **kw))

    conv("conv_k3_s2_p1", 4, 3, 9, 9, 5, 3, stride=2, padding=1)            # grouped sgemm
    conv("conv_k3_s2_p1_even", 3, 2, 10, 8, 4, 3, stride=2, padding=1)
    conv("conv_k3_s1_p1_large", 3, 2, 20, 20, 4, 3, stride=1, padding=1)    # one sample/sgemm
    conv("conv_k3_s2_p1_one_sample", 1, 4, 7, 7, 6, 3, stride=2, padding=1)
    conv("conv_k5_s3_p2_nobias", 5, 2, 11, 7, 3, 5, stride=3, padding=2, bias=False)
    conv("conv_1x1_direct", 2, 3, 16, 16, 4, 1)                              # im2col skipped
    conv("conv_1x1_grouped", 5, 3, 4, 4, 2, 1)
    conv("conv_k2_s2_accumulates", 3, 2, 6, 6, 3, 2, stride=2,
         grad_init={"weight": N((3, 2, 2, 2)), "bias": N((3,))})
    conv("conv_k3_p1_frozen", 2, 2, 5, 5, 3, 3, padding=1, frozen=1, training=1)

    # pooling
    def maxpool(name, x, size, stride=None, padding=0, **kw):
        kv = {"size": size, "padding": padding}
        if stride is not None:
            kv["stride"] = stride
        ref = (lambda x_, P: F.max_pool2d(x_, size, stride=stride or size, padding=padding))
        cases.append(Case(name, "maxpool2d", x, ref, kv=kv, **kw))

    maxpool("maxpool_2", N((3, 2, 8, 8)), 2)
    maxpool("maxpool_2_odd", N((2, 3, 7, 9)), 2)
    maxpool("maxpool_3_s2_p1", N((3, 2, 9, 7)), 3, stride=2, padding=1)
    maxpool("maxpool_2_s1", N((2, 2, 5, 6)), 2, stride=1)
    # ties: integer values repeat inside windows; the first maximum (row-major) wins in both
    maxpool("maxpool_3_s2_p1_ties", rng.integers(-2, 3, size=(3, 2, 9, 9)), 3, stride=2,
            padding=1)
    maxpool("maxpool_2_ties", rng.integers(-1, 2, size=(3, 2, 8, 7)), 2)
    maxpool("maxpool_2_no_saved", N((2, 3, 6, 6)), 2, saved=0)
    maxpool("maxpool_2_ties_no_saved", rng.integers(-1, 2, size=(2, 2, 6, 6)), 2, saved=0)

    def avgpool(name, x, size, stride=None, padding=0):
        kv = {"size": size, "padding": padding}
        if stride is not None:
            kv["stride"] = stride
        ref = (lambda x_, P: F.avg_pool2d(x_, size, stride=stride or size, padding=padding,
                                          count_include_pad=True))
        cases.append(Case(name, "avgpool2d", x, ref, kv=kv))

    avgpool("avgpool_2", N((3, 2, 8, 8)), 2)
    avgpool("avgpool_3_s2_p1", N((3, 2, 9, 7)), 3, stride=2, padding=1)
    avgpool("avgpool_3_s1_p1", N((2, 3, 5, 5)), 3, stride=1, padding=1)
    avgpool("avgpool_4_s3_p2", N((2, 2, 10, 11)), 4, stride=3, padding=2)

    cases.append(Case("global_avgpool", "global_avgpool", N((4, 3, 5, 6)),
                      lambda x, P: x.mean(dim=(2, 3))))
    cases.append(Case("flatten", "flatten", N((3, 2, 4, 5)), lambda x, P: flat(x)))

    # activations; some exact zeros check the convention at 0 (relu: gradient 0; leaky: slope)
    def with_zeros(shape):
        x = N(shape)
        x.reshape(-1)[::7] = 0.0
        return x

    act_shape = (6, 3, 4, 5)
    cases.append(Case("relu", "relu", with_zeros(act_shape), lambda x, P: F.relu(x)))
    cases.append(Case("leaky_relu_default", "leaky_relu", with_zeros((5, 11)),
                      lambda x, P: F.leaky_relu(x, 0.01)))
    cases.append(Case("leaky_relu_0.2", "leaky_relu", with_zeros(act_shape),
                      lambda x, P: F.leaky_relu(x, 0.2), kv={"slope": 0.2}))
    cases.append(Case("gelu_none", "gelu", 2.5 * N(act_shape), lambda x, P: F.gelu(x),
                      kv={"approximate": "none"}))
    cases.append(Case("gelu_default", "gelu", 2.5 * N((7, 9)), lambda x, P: F.gelu(x)))
    cases.append(Case("gelu_tanh", "gelu", 2.5 * N(act_shape),
                      lambda x, P: F.gelu(x, approximate="tanh"), kv={"approximate": "tanh"}))
    cases.append(Case("tanh", "tanh", 2.0 * N(act_shape), lambda x, P: torch.tanh(x)))
    cases.append(Case("sigmoid", "sigmoid", 3.0 * N(act_shape), lambda x, P: torch.sigmoid(x)))

    # dropout: evaluation mode is the identity; training mode is checked against the mask
    # implied by ftune's own output (y == 0 where x != 0), see check_dropout
    cases.append(Case("dropout_eval", "dropout", N(act_shape), lambda x, P: x,
                      kv={"rate": 0.3}, training=0))
    for rate in (0.25, 0.5):
        cases.append(Case(f"dropout_train_{rate}", "dropout", N((64, 50)), None,
                          kv={"rate": rate}, training=1, seed=1234))

    # batchnorm: [F] and [C, L] are BatchNorm1d, [C, H, W] is BatchNorm2d
    def bn(name, x, training, frozen=0, momentum=0.1, eps=1e-5, affine=True, **kw):
        C = x.shape[1]
        params = {}
        if affine:
            params["weight"] = 1.0 + 0.3 * N((C,))
            params["bias"] = 0.3 * N((C,))
        params["running_mean"] = 0.5 * N((C,))
        params["running_var"] = rng.uniform(0.5, 2.0, size=(C,))
        kv = {}
        if momentum != 0.1:
            kv["momentum"] = momentum
        if eps != 1e-5:
            kv["eps"] = eps
        if not affine:
            kv["affine"] = 0
        batch_stats = bool(training and not frozen)

        def ref(x_, P):
            return F.batch_norm(x_, P["running_mean"], P["running_var"], P.get("weight"),
                                P.get("bias"), training=batch_stats, momentum=momentum, eps=eps)

        cases.append(Case(name, "batchnorm", x, ref, kv=kv, params=params, training=training,
                          frozen=frozen, learnable=[k for k in ("weight", "bias") if k in params],
                          **kw))

    # inputs with a non-zero mean and scale, as after a dense or conv layer
    def shifted(shape):
        C = shape[1]
        loc = 2.0 * N((1, C) + (1,) * (len(shape) - 2))
        scale = rng.uniform(0.5, 3.0, size=(1, C) + (1,) * (len(shape) - 2))
        return loc + scale * N(shape)

    bn("bn1d_train", shifted((16, 6)), training=1)
    bn("bn1d_train_cl", shifted((8, 4, 5)), training=1, momentum=0.3, eps=1e-3)
    bn("bn1d_eval", shifted((16, 6)), training=0)
    bn("bn2d_train", shifted((6, 3, 5, 4)), training=1)
    bn("bn2d_train_no_affine", shifted((4, 3, 4, 4)), training=1, affine=False)
    bn("bn2d_train_accumulates", shifted((5, 2, 3, 3)), training=1,
       grad_init={"weight": N((2,)), "bias": N((2,))})
    bn("bn2d_eval", shifted((6, 3, 5, 4)), training=0)
    bn("bn2d_frozen_in_training", shifted((6, 3, 5, 4)), training=1, frozen=1)
    # a small batch (4 values per channel). Not 2: there dx is only the eps term, about 1e-4
    # of dy, and even torch's own float32 result is 2% away from float64 (ill-conditioned)
    bn("bn2d_train_small_batch", shifted((4, 4, 1, 1)), training=1)

    # cross-entropy (nn.CrossEntropyLoss, mean reduction)
    def xent(name, n, C, smoothing=0.0, weights=None, shift=0.0, ignore=()):
        logits = 2.0 * N((n, C)) + shift
        labels = rng.integers(0, C, size=n).astype(np.int32)
        for i in ignore:
            labels[i] = -100  # torch's ignore_index; ftune skips labels outside [0, C)
        c = Case(name, "xent", np.zeros((1, 1)), None)
        c.logits = logits.astype(np.float32)
        c.labels = labels
        c.smoothing = smoothing
        c.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        cases.append(c)

    xent("xent", 9, 5)
    xent("xent_smoothing", 9, 5, smoothing=0.1)
    xent("xent_weights", 12, 4, weights=[0.5, 2.0, 1.0, 3.0])
    xent("xent_smoothing_weights", 12, 4, smoothing=0.2, weights=[0.5, 2.0, 1.0, 3.0])
    xent("xent_large_logits", 7, 6, smoothing=0.05, shift=60.0)
    xent("xent_ignored_labels", 10, 3, smoothing=0.1, weights=[1.0, 0.25, 2.0], ignore=(2, 7))
    return cases


# ---- writing, running, comparing ---------------------------------------------------------

def write_cases(path, cases, rng):
    with h5py.File(path, "w") as f:
        for c in cases:
            g = f.create_group(c.name)
            g.attrs["kind"] = c.kind
            if c.kind == "xent":
                g["logits"] = c.logits
                g["labels"] = c.labels
                g.attrs["smoothing"] = np.float64(c.smoothing)
                if c.weights is not None:
                    g["class_weights"] = c.weights
                continue
            g.attrs["layer_name"] = c.name
            g.attrs["training"] = np.int64(c.training)
            g.attrs["frozen"] = np.int64(c.frozen)
            g.attrs["saved"] = np.int64(c.saved)
            g.attrs["seed"] = np.int64(c.seed)
            kv = g.create_group("kv")
            for k, v in c.kv.items():
                if isinstance(v, str):
                    kv.attrs[k] = v
                elif isinstance(v, float):
                    kv.attrs[k] = np.float64(v)
                else:
                    kv.attrs[k] = np.int64(v)
            g["x"] = c.x
            if c.params:
                pg = g.create_group("params")
                for k, v in c.params.items():
                    pg[k] = v
            if c.grad_init:
                gg = g.create_group("grad_init")
                for k, v in c.grad_init.items():
                    gg[k] = v
            if c.dy is not None:
                if c.ref is None:  # dropout in training: the output has the input's shape
                    shape = c.x.shape
                else:
                    shape = autograd_ref(Case(c.name, c.kind, c.x, c.ref, params=c.params,
                                              dy=None), c.ref)["y"].shape
                c.dy = rng.standard_normal(shape).astype(np.float32)
                g["dy"] = c.dy


def check_layer(chk, c, r):
    ref = autograd_ref(c, c.ref)
    chk.check(f"{c.name} y", r["y"][()], ref["y"], TOL, group=f"{c.kind} forward")
    chk.check(f"{c.name} dx", r["dx"][()], ref["dx"], TOL, group=f"{c.kind} backward")
    got_grads = sorted(r["grads"].keys()) if "grads" in r else []
    chk.expect(f"{c.name} gradients exist for exactly {sorted(c.learnable)}",
               got_grads == sorted(c.learnable), f"ftune wrote {got_grads}")
    for k in c.learnable:
        if k in got_grads:
            chk.check(f"{c.name} d{k}", r["grads"][k][()], ref["grads"][k], TOL,
                      group=f"{c.kind} backward")
    for k in ("running_mean", "running_var"):
        if k in c.params:
            chk.check(f"{c.name} {k} after forward", r["params"][k][()], ref["params"][k], TOL,
                      group=f"{c.kind} running stats")


def check_dropout(chk, c, r):
    rate = c.kv["rate"]
    y, dx = r["y"][()], r["dx"][()]
    keep = y != 0  # x is never exactly 0
    frac = keep.mean()
    n = keep.size
    # the kept fraction is binomial(n, 1-rate): allow 5 standard deviations
    sd = np.sqrt(rate * (1 - rate) / n)
    chk.expect(f"{c.name} kept fraction {frac:.4f} ~ {1 - rate}",
               abs(frac - (1 - rate)) <= 5 * sd)
    chk.expect(f"{c.name} rows get different masks",
               len({row.tobytes() for row in keep}) > 1)
    scale = 1.0 / (1.0 - rate)
    mask = torch.from_numpy(keep.astype(np.float64))
    ref_y = t64(c.x) * mask * scale
    ref_dx = t64(c.dy) * mask * scale
    chk.check(f"{c.name} y (torch formula with ftune's mask)", y, ref_y.numpy(), TOL,
              group="dropout forward")
    chk.check(f"{c.name} dx (same mask as forward)", dx, ref_dx.numpy(), TOL,
              group="dropout backward")


def check_xent(chk, c, r):
    z = t64(c.logits).requires_grad_(True)
    labels = torch.from_numpy(c.labels.astype(np.int64))
    w = None if c.weights is None else t64(c.weights)
    loss = F.cross_entropy(z, labels, weight=w, label_smoothing=c.smoothing,
                           ignore_index=-100, reduction="mean")
    loss.backward()
    per = F.cross_entropy(z.detach(), labels, weight=w, label_smoothing=c.smoothing,
                          ignore_index=-100, reduction="none")
    chk.check(f"{c.name} loss", np.float64(r.attrs["loss"]), loss.item(), TOL,
              group="cross-entropy loss")
    chk.check(f"{c.name} per-sample losses", r["losses"][()], per.numpy(), TOL,
              group="cross-entropy loss")
    chk.check(f"{c.name} dlogits", r["dlogits"][()], z.grad.numpy(), TOL,
              group="cross-entropy dlogits")
    chk.check(f"{c.name} probs", r["probs"][()], torch.softmax(z.detach(), 1).numpy(), TOL,
              group="cross-entropy softmax")


def main():
    args = parse_args(__doc__)
    if not args.harness or not os.access(args.harness, os.X_OK):
        print(f"--harness {args.harness!r} is not an executable")
        return 1
    rng = np.random.default_rng(20250131)
    cases = make_cases(rng)
    chk = Checker(args.verbose)
    with Workdir(args, "parity-layers-") as wd:
        cases_h5 = os.path.join(wd, "cases.h5")
        results_h5 = os.path.join(wd, "results.h5")
        write_cases(cases_h5, cases, rng)
        run([args.harness, cases_h5, results_h5])
        with h5py.File(results_h5, "r") as res:
            for c in cases:
                r = res[c.name]
                if c.kind == "xent":
                    check_xent(chk, c, r)
                elif c.kind == "dropout" and c.training:
                    check_dropout(chk, c, r)
                else:
                    check_layer(chk, c, r)
        kinds = sorted({c.kind for c in cases})
        print(f"{len(cases)} cases over {len(kinds)} kinds: {', '.join(kinds)}")
        rc = chk.summary("parity.layers")
        if rc:
            raise SystemExit(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
