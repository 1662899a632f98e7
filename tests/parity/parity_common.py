"""Shared helpers of the PyTorch parity tests (tests/parity/test_*.py).

Importing this module first checks that torch, h5py and numpy can be imported and otherwise
exits with status 77, which ctest reports as "skipped" (SKIP_RETURN_CODE 77).

Relative error of a tensor: max|got - ref| / max(max|ref|, tiny), one number per tensor, where
the reference is computed by torch in float64 from the same float32 inputs that ftune gets (so
the reference carries no float32 rounding of its own).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

try:
    import torch
except Exception as e:  # ImportError, or a broken installation
    print(f"torch not available: {sys.executable}: {type(e).__name__}: {e}")
    sys.exit(SKIP)
try:
    import h5py
    import numpy as np
except Exception as e:
    print(f"h5py or numpy not available: {sys.executable}: {type(e).__name__}: {e}")
    sys.exit(SKIP)

TINY = float(np.finfo(np.float32).tiny)

torch.set_num_threads(1)  # ctest runs two tests at a time on small machines


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ftune", help="the ftune binary")
    p.add_argument("--harness", help="tests/parity/layer_harness binary")
    p.add_argument("--optim-harness", help="tests/parity/optim_harness binary")
    p.add_argument("--source", help="the source directory (for scripts/mpirun.sh)",
                   default=os.path.dirname(os.path.dirname(os.path.dirname(
                       os.path.abspath(__file__)))))
    p.add_argument("--workdir", help="where temporary files go (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("-v", "--verbose", action="store_true", help="print every comparison")
    args = p.parse_args()
    for k in ("ftune", "harness", "optim_harness", "source", "workdir"):
        if getattr(args, k):
            setattr(args, k, os.path.abspath(getattr(args, k)))
    return args


class Workdir:
    """A temporary directory, removed on success unless --keep; kept (and named) on failure."""

    def __init__(self, args, prefix):
        base = args.workdir
        if base:
            os.makedirs(base, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=prefix, dir=base)
        self.keep = args.keep

    def __enter__(self):
        return self.path

    def __exit__(self, etype, value, tb):
        if etype is None and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print(f"files kept in {self.path}")
        return False


def rel_err(got, ref):
    """max|got - ref| / max(max|ref|, tiny), in float64; inf on a shape mismatch or NaN."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    d = np.abs(got - ref)
    if not np.all(np.isfinite(d)):
        return float("inf")
    return float(d.max() / max(float(np.abs(ref).max()), TINY))


class Checker:
    """Collects comparisons; prints failures (and everything with --verbose)."""

    def __init__(self, verbose=False):
        self.verbose = verbose
        self.failures = []
        self.count = 0
        self.worst = {}  # group -> (error, label)

    def check(self, label, got, ref, tol, group=None):
        err = rel_err(got, ref)
        self.count += 1
        ok = err <= tol
        if group is not None and (group not in self.worst or err > self.worst[group][0]):
            self.worst[group] = (err, label)
        if not ok:
            g = np.asarray(got, dtype=np.float64)
            r = np.asarray(ref, dtype=np.float64)
            detail = ""
            if g.shape == r.shape and g.size:
                d = np.array(np.abs(g - r))
                d[~np.isfinite(d)] = np.inf
                i = np.unravel_index(int(np.argmax(d)), d.shape)
                detail = f" worst at index {tuple(int(k) for k in i)}: got {g[i]!r}, expected {r[i]!r}"
            else:
                detail = f" (shape {g.shape} vs expected {r.shape})"
            msg = f"FAIL {label}: relative error {err:.3g} > {tol:g}{detail}"
            self.failures.append(msg)
            print(msg)
        elif self.verbose:
            print(f"ok   {label}: relative error {err:.3g}")
        return ok

    def expect(self, label, ok, detail=""):
        self.count += 1
        if not ok:
            msg = f"FAIL {label}{': ' + detail if detail else ''}"
            self.failures.append(msg)
            print(msg)
        elif self.verbose:
            print(f"ok   {label}")
        return ok

    def summary(self, name):
        for group, (err, label) in sorted(self.worst.items()):
            print(f"  max relative error {group:<28s} {err:.3g}  ({label})")
        if self.failures:
            print(f"{name}: {len(self.failures)} of {self.count} checks FAILED")
            return 1
        print(f"{name}: all {self.count} checks passed")
        return 0


def run(cmd, **kw):
    """Runs a command; on failure prints its output and raises."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        print(f"command failed with exit code {r.returncode}: {' '.join(cmd)}")
        print(r.stdout)
        raise SystemExit(1)
    return r.stdout


def t64(a):
    """A float64 torch tensor from a numpy array (float32 inputs are widened exactly)."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())
