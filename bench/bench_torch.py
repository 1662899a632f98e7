#!/usr/bin/env python3
"""PyTorch peer of ftune's benchmark (bench/run.sh): the same workloads, data and
batches, timed the same way (wall time of the training steps only).

Workloads (shared/reference/baselines.md):
  w1-pretrain  conv 1->32 3x3 p1 + ReLU + maxpool 2, conv 32->64 3x3 p1 + ReLU +
               maxpool 2, flatten, dense 3136->256 + ReLU, dense 256->5; all trainable;
               Fashion-MNIST classes 0-4, batch 64
  w1-finetune  the same with both convs frozen (requires_grad False), classes 5-9
  w2           dense 784-2048-2048-2048-10 with ReLU, first two dense frozen, batch 256,
               all 60,000 training images
SGD momentum 0.9, lr 0.01. Data: the same HDF5 files ftune reads, loaded into memory
(as a PyTorch user would load Fashion-MNIST), a new permutation every epoch.

Settings: one process with T torch threads and B OpenBLAS threads (both are pools
that fight over the cores: "the best hand-tuned thread split" is the fastest of the
combinations), and DDP (gloo) with 2 ranks x 1 thread via torch.multiprocessing.spawn,
each rank taking its half of the global batch.

  bench_torch.py run WORKLOAD --threads T --blas B [--ddp 2] --steps S --warmup W
      one measurement; prints one JSON line
  bench_torch.py all [--quick] [--workloads a,b] --out FILE
      every setting of every workload, each in a fresh process (the thread pools are
      fixed at start-up); writes a JSON list and prints a summary

Exit code 77 when torch (or h5py) cannot be imported.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WORKLOADS = {
    "w1-pretrain": {"data": "data/fmnist-pretrain-train.h5", "batch": 64, "classes": 5,
                    "frozen": False, "mflop": 27.9, "epochs": 1},
    "w1-finetune": {"data": "data/fmnist-finetune-train.h5", "batch": 64, "classes": 5,
                    "frozen": True, "mflop": 10.96, "epochs": 2},
    "w2": {"data": "data/fmnist-all-train.h5", "batch": 256, "classes": 10,
           "frozen": True, "mflop": 28.50, "epochs": 1},
}

# (torch threads, OpenBLAS threads, DDP ranks)
SETTINGS = [(1, 1, 1), (2, 2, 1), (1, 2, 1), (2, 1, 1), (1, 1, 2)]


def setting_name(t, b, ddp):
    if ddp > 1:
        return f"torch DDP gloo {ddp} ranks x {t} thread"
    return f"torch 1 process, {t} torch + {b} BLAS thread{'s' if b > 1 else ''}"


def build_model(torch, name, classes):
    nn = torch.nn
    if name.startswith("w1"):
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 256), nn.ReLU(), nn.Linear(256, classes))
    return nn.Sequential(
        nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(),
        nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, classes))


DATA_DIR = os.environ.get("BENCH_DATA", os.path.join(ROOT, "data"))


def load_data(torch, name):
    import h5py
    spec = WORKLOADS[name]
    with h5py.File(os.path.join(DATA_DIR, os.path.basename(spec["data"])), "r") as f:
        x = torch.from_numpy(f["inputs"][...])
        y = torch.from_numpy(f["labels"][...].astype("int64"))
    if name == "w2":
        x = x.reshape(x.shape[0], -1)
    return x, y


def train(torch, name, rank, world, steps, warmup, max_seconds=0.0, seed=42):
    """Runs warmup + steps optimizer steps (fewer when the timed ones pass max_seconds: the
    slow thread settings would otherwise take minutes); returns (samples, seconds) of the
    timed ones."""
    spec = WORKLOADS[name]
    torch.manual_seed(seed)
    x, y = load_data(torch, name)
    model = build_model(torch, name, spec["classes"])
    if spec["frozen"]:
        n_frozen = 6 if name.startswith("w1") else 4  # conv1..pool2 / fc1..relu2
        for m in list(model)[:n_frozen]:
            for p in m.parameters():
                p.requires_grad_(False)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    B = spec["batch"]
    local = B // world
    N = x.shape[0]
    g = torch.Generator()
    g.manual_seed(seed)
    perm = torch.randperm(N, generator=g)
    pos = 0
    done = 0
    samples = 0
    t0 = None
    model.train()
    stop = torch.zeros(1)
    while done < warmup + steps:
        if pos + B > N:  # next epoch (the last partial batch is dropped: same work per step)
            perm = torch.randperm(N, generator=g)
            pos = 0
        if done == warmup:
            if world > 1:
                torch.distributed.barrier()
            t0 = time.perf_counter()
        idx = perm[pos + rank * local: pos + (rank + 1) * local]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        pos += B
        done += 1
        if done > warmup:
            samples += B
            if max_seconds > 0 and done % 5 == 0:  # every rank must stop at the same step
                stop[0] = 1.0 if time.perf_counter() - t0 > max_seconds else 0.0
                if world > 1:
                    torch.distributed.all_reduce(stop)
                if stop[0] > 0:
                    break
    if world > 1:
        torch.distributed.barrier()
    return samples, time.perf_counter() - t0


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ddp_worker(rank, world, name, steps, warmup, max_seconds, port, q):
    import torch
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    samples, secs = train(torch, name, rank, world, steps, warmup, max_seconds)
    q.put((rank, samples, secs, peak_rss_mib()))
    torch.distributed.destroy_process_group()


def cmd_run(a):
    try:
        import torch
        import h5py  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the machine
        print(json.dumps({"skip": f"torch/h5py not available: {type(e).__name__}: {e}"}))
        return 77
    spec = WORKLOADS[a.workload]
    if a.ddp > 1:
        import torch.multiprocessing as mp
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        port = 29500 + (os.getpid() % 2000)
        mp.spawn(ddp_worker, args=(a.ddp, a.workload, a.steps, a.warmup, a.max_seconds, port, q),
                 nprocs=a.ddp, join=True)
        res = sorted(q.get() for _ in range(a.ddp))
        samples, secs = res[0][1], max(r[2] for r in res)
        rss = max(r[3] for r in res)
    else:
        torch.set_num_threads(a.threads)
        samples, secs = train(torch, a.workload, 0, 1, a.steps, a.warmup, a.max_seconds)
        rss = peak_rss_mib()
    sps = samples / secs
    print(json.dumps({
        "workload": a.workload, "config": setting_name(a.threads, a.blas, a.ddp),
        "peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "blas": a.blas,
        "ranks": a.ddp, "samples": samples, "seconds": secs, "samples_per_s": sps,
        "gflops": sps * spec["mflop"] / 1000.0, "peak_rss_mib": rss}))
    return 0


def cmd_all(a):
    wls = a.workloads.split(",") if a.workloads else list(WORKLOADS)
    rows = []
    for wl in wls:
        B = WORKLOADS[wl]["batch"]
        if a.quick:
            steps, warmup, secs = ((5, 1) if wl == "w2" else (20, 3)) + (2.0,)
        else:
            # a few seconds per setting on 2 cores; the rate is steady after warm-up
            steps, warmup, secs = ((60, 3) if wl == "w2" else (200, 10)) + (8.0,)
        for t, b, ddp in (SETTINGS[:1] if a.quick else SETTINGS):
            env = dict(os.environ)
            env["OPENBLAS_NUM_THREADS"] = str(b)
            env["OMP_NUM_THREADS"] = str(t)
            cmd = [sys.executable, os.path.abspath(__file__), "run", wl, "--threads", str(t),
                   "--blas", str(b), "--ddp", str(ddp), "--steps", str(steps),
                   "--warmup", str(warmup), "--max-seconds", str(secs)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            if p.returncode == 77:
                print(p.stdout.strip())
                return 77
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
            if p.returncode != 0 or not line:
                print(f"bench_torch: {wl} {setting_name(t, b, ddp)} failed (exit {p.returncode}):"
                      f"\n{p.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(line[-1])
            r["batch"] = B
            rows.append(r)
            print(f"  {wl:12s} {r['config']:44s} {r['samples_per_s']:9.0f} samples/s "
                  f"{r['gflops']:7.1f} GFLOP/s  {r['peak_rss_mib']:7.1f} MiB", flush=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("workload", choices=list(WORKLOADS))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--blas", type=int, default=1)
    r.add_argument("--ddp", type=int, default=1)
    r.add_argument("--steps", type=int, default=100)
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--max-seconds", type=float, default=0.0)
    al = sub.add_parser("all")
    al.add_argument("--quick", action="store_true")
    al.add_argument("--workloads", default="")
    al.add_argument("--out", required=True)
    a = ap.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_all(a)


if __name__ == "__main__":
    sys.exit(main())
