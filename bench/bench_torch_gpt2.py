#!/usr/bin/env python3
"""PyTorch peer of ftune's benchmark T1 (bench/run.sh): a full fine-tune of a GPT-2-small-shaped
sequence classifier on CPU, in plain PyTorch (nn.Embedding, nn.Linear, nn.LayerNorm and a manual
causal + padding-masked attention, as the GPT-2 block of tests/parity/test_transformer.py; not
Hugging Face), on the same HDF5 batch as ftune (bench/t1_data.py), timed the same way.

Model (bench/configs/t1-gpt2-small.cfg): vocab 50257, 1024 positions, D = 768, 12 heads, 12
pre-LN causal blocks (GELU tanh approximation), ln_f, the hidden state of the last real token,
a 2-class score without bias: 124,441,344 parameters, all trainable. AdamW lr 1e-4, weight decay
0.01, betas (0.9, 0.999), eps 1e-8 (torch's default implementation); no dropout. Every step
trains on the same batch (all rows of the file), with its real `lengths`: keys past a row's
length are masked out and the score reads its last real position.

  bench_torch_gpt2.py run --data FILE --threads T --blas B --steps S --warmup W [--max-seconds X]
      one measurement in this process; prints one JSON line
  bench_torch_gpt2.py all --data FILE [--quick] [--lora] --out FILE
      the four single-process thread settings (1/2 torch threads x 1/2 OpenBLAS threads), each
      in a fresh process (the thread pools are fixed at start-up); writes a JSON list

--lora (workload "t1-lora", bench/configs/t1-gpt2-small-lora.cfg): plain LoRA on the four
linears of every block (c_attn, c_proj, c_fc, mlp_proj): y = W x + b + (alpha / r) B A x with
r = 8, alpha = 16, A [r, in] ~ N(0, 0.02^2), B [out, r] = 0; every base parameter (wte, wpe,
the blocks, ln_f) has requires_grad False, the adapters and the score train, and AdamW holds
state for those only.

Metric: real tokens (the sum of `lengths` over the batch) per second of timed steps, after the
warm-up steps. Exit code 77 when torch (or h5py) cannot be imported.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

VOCAB, NPOS, D, HEADS, NBLOCKS, CLASSES = 50257, 1024, 768, 12, 12, 2
SETTINGS = [(1, 1), (2, 2), (1, 2), (2, 1)]  # (torch threads, OpenBLAS threads)
LORA_RANK, LORA_ALPHA = 8, 16.0


def setting_name(t, b):
    return f"torch 1 process, {t} torch + {b} BLAS thread{'s' if b > 1 else ''}"


def build(torch, lora=False):
    nn = torch.nn
    F = torch.nn.functional

    class LoRALinear(nn.Module):
        """A frozen nn.Linear plus a trainable rank-r update (alpha / r) B A."""

        def __init__(self, base):
            super().__init__()
            self.base = base
            self.lora_A = nn.Parameter(torch.empty(LORA_RANK, base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, LORA_RANK))
            self.scale = LORA_ALPHA / LORA_RANK

        def forward(self, x):
            return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)

    class Block(nn.Module):
        """GPT-2's block (pre-LN), fused q/k/v like c_attn, weights [out, in]."""

        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(D, eps=1e-5)
            self.c_attn = nn.Linear(D, 3 * D)
            self.c_proj = nn.Linear(D, D)
            self.ln_2 = nn.LayerNorm(D, eps=1e-5)
            self.c_fc = nn.Linear(D, 4 * D)
            self.mlp_proj = nn.Linear(4 * D, D)

        def forward(self, x, mask):
            n, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
            q, k, v = (t.view(n, T, HEADS, D // HEADS).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D // HEADS))
            att = att.masked_fill(~mask, torch.finfo(att.dtype).min)
            a = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(n, T, D)
            x = x + self.c_proj(a)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT2Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(VOCAB, D)
            self.wpe = nn.Embedding(NPOS, D)
            self.h = nn.ModuleList(Block() for _ in range(NBLOCKS))
            self.ln_f = nn.LayerNorm(D, eps=1e-5)
            self.score = nn.Linear(D, CLASSES, bias=False)
            for name, p in self.named_parameters():  # as ftune: N(0, 0.02^2), biases 0, LN 1/0
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif ".ln_" in name or name.startswith("ln_"):
                    nn.init.ones_(p)
                else:
                    nn.init.normal_(p, std=0.02)
            if lora:
                for p in self.parameters():
                    p.requires_grad_(False)
                for blk in self.h:
                    for name in ("c_attn", "c_proj", "c_fc", "mlp_proj"):
                        m = LoRALinear(getattr(blk, name))
                        nn.init.normal_(m.lora_A, std=0.02)
                        setattr(blk, name, m)
                self.score.weight.requires_grad_(True)

        def forward(self, ids, lengths):
            n, T = ids.shape
            pos = torch.arange(T)
            x = self.wte(ids) + self.wpe(pos)[None]
            # causal and padding (keys s >= length) mask, [n, 1, T, T]
            mask = (torch.tril(torch.ones(T, T, dtype=torch.bool))[None]
                    & (pos[None, :] < lengths[:, None])[:, None, :])[:, None]
            for blk in self.h:
                x = blk(x, mask)
            x = self.ln_f(x)
            return self.score(x[torch.arange(n), lengths - 1])

    return GPT2Classifier()


def train(torch, data, steps, warmup, max_seconds, lora=False):
    import h5py
    with h5py.File(data, "r") as f:
        ids = torch.from_numpy(f["inputs"][...]).long()
        y = torch.from_numpy(f["labels"][...].astype("int64"))
        lengths = torch.from_numpy(f["lengths"][...].astype("int64"))
    torch.manual_seed(42)
    model = build(torch, lora)
    nparams = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    tokens_per_step = int(lengths.sum())
    done, timed, t0 = 0, 0, None
    step_times = []
    while done < warmup + steps:
        if done == warmup:
            t0 = time.perf_counter()
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids, lengths), y)
        loss.backward()
        opt.step()
        done += 1
        if done > warmup:
            timed += 1
            step_times.append(time.perf_counter() - ts)
            if max_seconds > 0 and time.perf_counter() - t0 > max_seconds:
                break
    secs = time.perf_counter() - t0
    return {"params": nparams, "trainable": sum(p.numel() for p in trainable), "steps": timed, "samples": timed * ids.shape[0],
            "tokens": timed * tokens_per_step, "seq_len": ids.shape[1], "seconds": secs,
            "step_seconds": step_times, "loss": float(loss)}


def cmd_run(a):
    try:
        import torch
        import h5py  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the machine
        print(json.dumps({"skip": f"torch/h5py not available: {type(e).__name__}: {e}"}))
        return 77
    torch.set_num_threads(a.threads)
    r = train(torch, a.data, a.steps, a.warmup, a.max_seconds, a.lora)
    r.update({"workload": "t1-lora" if a.lora else "t1", "config": setting_name(a.threads, a.blas), "peer": "pytorch",
              "torch": torch.__version__, "threads": a.threads, "blas": a.blas, "ranks": 1,
              "samples_per_s": r["samples"] / r["seconds"],
              "tokens_per_s": r["tokens"] / r["seconds"],
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0})
    print(json.dumps(r))
    return 0


def cmd_all(a):
    if a.quick:
        steps, warmup, secs, settings = 1, 1, 0.0, SETTINGS[:1]
    else:
        # a step is seconds on 2 cores: 1 warm-up, then up to 4 steps or 25 s of timed steps
        steps, warmup, secs, settings = 4, 1, 25.0, SETTINGS
    rows = []
    for t, b in settings:
        env = dict(os.environ)
        env["OPENBLAS_NUM_THREADS"] = str(b)
        env["OMP_NUM_THREADS"] = str(t)
        cmd = [sys.executable, os.path.abspath(__file__), "run", "--data", a.data,
               "--threads", str(t), "--blas", str(b), "--steps", str(steps),
               "--warmup", str(warmup), "--max-seconds", str(secs)] + (["--lora"] if a.lora else [])
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode == 77:
            print(p.stdout.strip())
            return 77
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not line:
            print(f"bench_torch_gpt2: {setting_name(t, b)} failed (exit {p.returncode}):"
                  f"\n{p.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(line[-1])
        rows.append(r)
        print(f"  {r['workload']:12s} {r['config']:44s} {r['tokens_per_s']:9.1f} tokens/s "
              f"({r['steps']} steps, {r['seconds']:.1f} s)  {r['peak_rss_mib']:7.1f} MiB",
              flush=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--blas", type=int, default=1)
    r.add_argument("--steps", type=int, default=4)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--max-seconds", type=float, default=0.0)
    r.add_argument("--lora", action="store_true")
    al = sub.add_parser("all")
    al.add_argument("--data", required=True)
    al.add_argument("--quick", action="store_true")
    al.add_argument("--lora", action="store_true")
    al.add_argument("--out", required=True)
    a = ap.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_all(a)


if __name__ == "__main__":
    sys.exit(main())
