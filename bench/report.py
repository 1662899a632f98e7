#!/usr/bin/env python3
"""The benchmark's report (bench/run.sh): reads what the run left in WORK (ftune logs, the
PyTorch JSON, the SGEMM lines, machine.txt), prints one table and the issue's targets, and
writes everything as JSON. Standard library only."""
import argparse
import json
import os
import re
import sys

# MFLOP per sample (shared/reference/baselines.md): forward of every layer, backward of the
# trainable ones, no input gradient for the first trainable layer.
MFLOP = {"w1-pretrain": 27.9, "w1-finetune": 10.96, "w2": 28.50}

TRAIN_RE = re.compile(r"^train: (\d+) samples in ([\d.]+) s = ([\d.]+) samples/s "
                      r"\(data wait ([\d.]+) s, allreduce wait ([\d.]+) s")
RSS_RE = re.compile(r"^peak RSS per rank: ([\d.]+) MiB .*breakdown sum ([\d.]+) MiB "
                    r"\(feature cache ([\d.]+) MiB\); ([\d.]+) MiB resident before")
EPOCH_RE = re.compile(r"^epoch (\d+): (\d+) samples in ([\d.]+) s of training steps")
STEPS_RE = re.compile(r", (\d+) steps$")
MODEL_RE = re.compile(r"^model: \d+ layers, (\d+) parameters, (\d+) trainable")
MEM_RE = re.compile(r"^memory per rank: parameters ([\d.]+) MiB, gradients ([\d.]+) MiB, "
                    r"optimizer ([\d.]+) MiB, activations ([\d.]+) MiB, workspace ([\d.]+) MiB")
T1_WORKLOADS = ("t1", "t1-lora")


def parse_ftune(name, np_, threads, path):
    r = {"peer": "ftune", "name": name, "ranks": int(np_), "threads": int(threads), "epochs": []}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = TRAIN_RE.match(line)
            if m:
                r.update(samples=int(m[1]), seconds=float(m[2]), samples_per_s=float(m[3]),
                         data_wait_s=float(m[4]), allreduce_wait_s=float(m[5]))
            m = RSS_RE.match(line)
            if m:
                r.update(peak_rss_mib=float(m[1]), breakdown_mib=float(m[2]),
                         feature_cache_mib=float(m[3]), rss_before_mib=float(m[4]))
            m = EPOCH_RE.match(line)
            if m:
                r["epochs"].append({"epoch": int(m[1]), "samples": int(m[2]),
                                    "seconds": float(m[3])})
            m = MODEL_RE.match(line)
            if m:
                r.update(params=int(m[1]), trainable=int(m[2]))
            m = MEM_RE.match(line)
            if m:
                r.update(params_mib=float(m[1]), grads_mib=float(m[2]), optimizer_mib=float(m[3]),
                         activations_mib=float(m[4]), workspace_mib=float(m[5]))
            m = STEPS_RE.search(line)
            if m and line.startswith("ftune "):
                r["steps"] = int(m[1])
    if "samples_per_s" not in r:
        raise SystemExit(f"report.py: no 'train:' line in {path}")
    wl = name.rsplit("-", 1)[0]
    r["cache"] = "-cache" in wl
    r["workload"] = wl.replace("-cache", "")
    r["config"] = (f"ftune {r['ranks']} rank{'s' if r['ranks'] > 1 else ''} x "
                   f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
                   + (", feature cache" if r["cache"] else ""))
    r["gflops"] = (r["samples_per_s"] * MFLOP[r["workload"]] / 1000.0
                   if r["workload"] in MFLOP else None)
    return r


def t1_rates(r, info):
    """T1 (one epoch = one step of the fixed batch): tokens/s over the epochs after the
    warm-up ones, real tokens = the sum of the batch's lengths per step."""
    timed = r["epochs"][info["warmup_steps"]:]
    secs = sum(e["seconds"] for e in timed)
    r["steps_timed"] = len(timed)
    r["step_seconds"] = [e["seconds"] for e in timed]
    r["tokens"] = info["tokens_per_step"] * len(timed)
    r["seconds_timed"] = secs
    r["tokens_per_s"] = r["tokens"] / secs if secs > 0 else 0.0


def sgemm_rates(path):
    """GFLOP/s of the W2 step's sgemm calls: setting -> rate (2x1 = two processes summed)."""
    rates, core = {}, ""
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            core = d.get("core", core)
            rates[d["setting"]] = rates.get(d["setting"], 0.0) + d["gflops"]
    return rates, core


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def lora_vs_full(table, lines):
    """T1: each LoRA row next to the full fine-tune row of the same peer and configuration,
    with the ratios LoRA / full. Appends to lines; stores the pairs in the rows."""
    full = {(r["peer"], r["config"]): r for r in table if r["workload"] == "t1"}
    pairs = [(full[(r["peer"], r["config"])], r) for r in table
             if r["workload"] == "t1-lora" and (r["peer"], r["config"]) in full]
    if not pairs:
        return
    lines.append("")
    lines.append("T1 LoRA vs full fine-tune (same peer and configuration; ratio = LoRA / full)")
    h = (f"{'config':44} {'':5} {'trainable':>11} {'tokens/s':>9} {'s/step':>7} "
         f"{'fastest':>8} {'peak RSS':>9} {'grads':>8} {'opt st':>8} {'params':>8} "
         f"{'act':>7}")
    lines += [h, "-" * len(h)]

    def sps(r):
        return r["seconds_timed"] / r["steps_timed"] if r.get("steps_timed") else (
            r["seconds"] / r["steps"] if r.get("steps") else None)

    def ratio(a, b):
        return a / b if a is not None and b else None

    for f, lo in pairs:
        for tag, r in (("full", f), ("LoRA", lo)):
            lines.append(
                f"{r['config'][:44]:44} {tag:5} {fmt(r.get('trainable'), '11d'):>11} "
                f"{r['tokens_per_s']:9.1f} {fmt(sps(r), '7.2f'):>7} "
                f"{fmt(r.get('fastest_step_s'), '8.2f'):>8} "
                f"{fmt(r.get('peak_rss_mib'), '9.1f'):>9} {fmt(r.get('grads_mib'), '8.1f'):>8} "
                f"{fmt(r.get('optimizer_mib'), '8.1f'):>8} {fmt(r.get('params_mib'), '8.1f'):>8} "
                f"{fmt(r.get('activations_mib'), '7.1f'):>7}")
        q = {"tokens_per_s": ratio(lo["tokens_per_s"], f["tokens_per_s"]),
             "s_per_step": ratio(sps(lo), sps(f)),
             "fastest_step": ratio(lo.get("fastest_step_s"), f.get("fastest_step_s")),
             "peak_rss": ratio(lo.get("peak_rss_mib"), f.get("peak_rss_mib")),
             "trainable": ratio(lo.get("trainable"), f.get("trainable")),
             "grads": ratio(lo.get("grads_mib"), f.get("grads_mib")),
             "optimizer": ratio(lo.get("optimizer_mib"), f.get("optimizer_mib"))}
        lo["vs_full"] = q
        lines.append(
            f"{'':44} {'ratio':5} {fmt(q['trainable'], '11.4f'):>11} "
            f"{fmt(q['tokens_per_s'], '9.2f'):>9} {fmt(q['s_per_step'], '7.2f'):>7} "
            f"{fmt(q['fastest_step'], '8.2f'):>8} {fmt(q['peak_rss'], '9.2f'):>9} "
            f"{fmt(q['grads'], '8.4f'):>8} {fmt(q['optimizer'], '8.4f'):>8}")
    lines.append("trainable: parameters with a gradient; grads, opt st (AdamW state), params, act "
                 "(activations): ftune's 'memory per rank' breakdown in MiB (PyTorch: -); peak "
                 "RSS: ftune's, or ru_maxrss of the PyTorch process. s/step and fastest: the mean "
                 "and the fastest timed step.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    W = a.work

    machine = {}
    with open(os.path.join(W, "machine.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(": ")
            machine[k] = v
    sg, core = sgemm_rates(os.path.join(W, "sgemm.jsonl"))

    rows = []
    with open(os.path.join(W, "ftune_runs.txt")) as f:
        for line in f:
            rows.append(parse_ftune(*line.rstrip("\n").split("\t")))
    with open(os.path.join(W, "torch.json")) as f:
        torch_rows = json.load(f)
    t1_info = None
    if os.path.exists(os.path.join(W, "t1.json")):
        with open(os.path.join(W, "t1.json")) as f:
            t1_info = json.load(f)
        for r in rows:
            if r["workload"] in T1_WORKLOADS:
                t1_rates(r, t1_info)
    for fn in ("torch_t1.json", "torch_t1_lora.json"):
        if os.path.exists(os.path.join(W, fn)):
            with open(os.path.join(W, fn)) as f:
                torch_rows += json.load(f)
    for t in torch_rows:
        t["peer"] = "pytorch"
        t["cache"] = False
    rows += torch_rows

    best_torch = {}
    def rate(r):  # T1 compares real tokens/s (its rows' samples/s include the warm-up)
        return r["tokens_per_s"] if r["workload"] in T1_WORKLOADS else r["samples_per_s"]

    for t in torch_rows:
        wl = t["workload"]
        if wl not in best_torch or rate(t) > rate(best_torch[wl]):
            best_torch[wl] = t

    def sgemm_for(r):
        if r["workload"] != "w2":
            return None
        key = "2x1" if r.get("ranks", 1) > 1 else ("1x2" if r.get("threads", 1) > 1 else "1x1")
        if r["peer"] == "pytorch":  # one process: torch threads x BLAS threads
            key = "2x1" if r["ranks"] > 1 else ("1x2" if max(r["threads"], r["blas"]) > 1
                                                else "1x1")
        return sg.get(key)

    table = []
    for r in rows:
        s = sgemm_for(r)
        r["pct_sgemm"] = 100.0 * r["gflops"] / s if s else None
        bt = best_torch.get(r["workload"])
        r["vs_best_torch"] = rate(r) / rate(bt) if bt else None
        if r["workload"] in T1_WORKLOADS:  # the fastest step: less sensitive to other load
            r["fastest_step_s"] = min(r.get("step_seconds") or [0.0]) or None
            tt = [min(t["step_seconds"]) for t in torch_rows
                  if t["workload"] == r["workload"] and t.get("step_seconds")]
            r["vs_best_torch_fastest"] = (min(tt) / r["fastest_step_s"]
                                          if tt and r["fastest_step_s"] else None)
        table.append(r)
        if r["peer"] == "ftune" and r["cache"] and len(r["epochs"]) > 1:
            later = r["epochs"][1:]
            n = sum(e["samples"] for e in later)
            secs = sum(e["seconds"] for e in later)
            e = dict(r)
            e.update(config=r["config"] + ", epochs >= 2", samples=n, seconds=secs,
                     samples_per_s=n / secs if secs > 0 else 0.0, later_epochs=True)
            e["gflops"] = e["samples_per_s"] * MFLOP[r["workload"]] / 1000.0
            e["vs_best_torch"] = e["samples_per_s"] / bt["samples_per_s"] if bt else None
            e["pct_sgemm"] = None
            table.append(e)

    order = {"w1-pretrain": 0, "w1-finetune": 1, "w2": 2, "t1": 3, "t1-lora": 4}
    table.sort(key=lambda r: (order[r["workload"]], r["peer"] != "ftune"))

    lines = []
    table_w = [r for r in table if r["workload"] not in T1_WORKLOADS]  # T1 has a table of its own
    hdr = (f"{'workload':12} {'config':52} {'samples/s':>10} {'GFLOP/s':>8} {'%SGEMM':>7} "
           f"{'peak RSS':>9} {'vs best':>8} {'data':>6} {'allred':>6}")
    if table_w:
        lines.append(hdr)
        lines.append("-" * len(hdr))
    for r in table_w:
        T = r.get("seconds") or 0
        dw = 100 * r["data_wait_s"] / T if T and "data_wait_s" in r and not r.get(
            "later_epochs") else None
        aw = 100 * r["allreduce_wait_s"] / T if T and "allreduce_wait_s" in r and not r.get(
            "later_epochs") else None
        lines.append(
            f"{r['workload']:12} {r['config'][:52]:52} {r['samples_per_s']:10.0f} "
            f"{r['gflops']:8.1f} {fmt(r['pct_sgemm'], '6.1f'):>7} "
            f"{fmt(r.get('peak_rss_mib'), '8.1f'):>9} {fmt(r['vs_best_torch'], '7.2f'):>8} "
            f"{fmt(dw, '5.1f'):>6} {fmt(aw, '5.1f'):>6}")
    if table_w:
        lines.append("")
        lines.append("samples/s: wall time of the training steps (ftune: its 'train:' line; "
                     "PyTorch: after warm-up). GFLOP/s: samples/s x the workload's MFLOP per "
                     f"sample ({', '.join(f'{k} {v}' for k, v in MFLOP.items())}); for the "
                     "feature cache this is an effective rate.")
        lines.append("%SGEMM: W2 only, against the SGEMM microbenchmark on the same calls and "
                     "configuration (1x1, 1x2 threads, 2 processes x 1). 'vs best': samples/s "
                     "over the best PyTorch row of the workload. data / allred: % of the "
                     "training time blocked on data and on the gradient all-reduce (max over "
                     "ranks).")
    lines.append("SGEMM (W2 step shapes): " + ", ".join(
        f"{k} {v:.1f} GFLOP/s" for k, v in sorted(sg.items())) + f"; OpenBLAS kernels {core}")
    if a.note:
        lines.append(a.note)

    t1_rows = [r for r in table if r["workload"] in T1_WORKLOADS]
    if t1_rows:
        lines.append("")
        h1 = (f"{'workload':12} {'config':52} {'tokens/s':>10} {'s/step':>8} {'fastest':>8} "
              f"{'steps':>6} {'peak RSS':>9} {'vs best':>8} {'fastest':>8}")
        lines += [h1, "-" * len(h1)]
        for r in t1_rows:
            steps = r.get("steps_timed", r.get("steps"))
            secs = r.get("seconds_timed", r.get("seconds"))
            lines.append(
                f"{r['workload']:12} {r['config'][:52]:52} {r['tokens_per_s']:10.1f} "
                f"{fmt(secs / steps if steps else None, '8.2f'):>8} "
                f"{fmt(r.get('fastest_step_s'), '8.2f'):>8} {steps:6d} "
                f"{fmt(r.get('peak_rss_mib'), '8.1f'):>9} {fmt(r['vs_best_torch'], '7.2f'):>8} "
                f"{fmt(r.get('vs_best_torch_fastest'), '7.2f'):>8}")
        lines.append("")
        lines.append(
            f"T1: GPT-2 small (124M parameters, all trainable, AdamW), a fixed batch of "
            f"{t1_info['rows']} x {t1_info['len']} token ids, {t1_info['tokens_per_step']} real "
            f"tokens per step (the sum of the lengths); tokens/s over the timed steps after "
            f"{t1_info['warmup_steps']} warm-up step(s) (ftune: its 'epoch N:' lines, one step "
            f"per epoch; PyTorch: bench_torch_gpt2.py, 1 warm-up step); both mask the padding "
            f"and pool the last real token. 'fastest': the fastest "
            f"timed step, and the fastest PyTorch step (any setting) over it (less sensitive "
            f"to other load on a shared machine). t1-lora: the same model with rank-8 LoRA "
            f"adapters (alpha 16) on q/k/v, attention output, MLP fc and proj of every block "
            f"and the score trained, the rest frozen (ftune: t1-gpt2-small-lora.cfg, started "
            f"from the full row's model file; PyTorch: bench_torch_gpt2.py --lora); 'vs best' "
            f"there is against the best PyTorch LoRA row.")
        lora_vs_full(table, lines)

    # ---- targets (issue 4) ----
    ft = [r for r in table if r["peer"] == "ftune" and not r.get("later_epochs")]

    def best(wl, cache=False):
        c = [r for r in ft if r["workload"] == wl and r["cache"] == cache]
        return max(c, key=lambda r: r["samples_per_s"]) if c else None

    def get(wl, ranks, threads=1, cache=False):
        for r in ft:
            if (r["workload"], r["ranks"], r["threads"], r["cache"]) == (wl, ranks, threads,
                                                                          cache):
                return r
        return None

    targets = []

    def target(name, value, goal, ok, detail, at_most=False):
        targets.append({"target": name, "value": value, "goal": goal,
                        "goal_is": "at most" if at_most else "at least",
                        "met": None if value is None else bool(ok), "detail": detail})

    def ratio_target(name, wl, goal):
        b, t = best(wl), best_torch.get(wl)
        v = b["samples_per_s"] / t["samples_per_s"] if b and t else None
        target(name, v, goal, v is not None and v >= goal,
               f"best ftune {b['config'] if b else '-'} vs {t['config'] if t else 'no PyTorch'}")

    w2 = best("w2")
    if w2:
        target("W2 % of SGEMM (same configuration)", w2["pct_sgemm"], 90.0,
               w2["pct_sgemm"] is not None and w2["pct_sgemm"] >= 90.0, w2["config"])
    ratio_target("W2 vs best PyTorch", "w2", 1.4)
    ratio_target("W1 fine-tune vs best PyTorch", "w1-finetune", 1.5)
    cached = [r for r in table if r.get("later_epochs")]
    if cached:
        c = max(cached, key=lambda r: r["samples_per_s"])
        t = best_torch.get("w1-finetune")
        v = c["samples_per_s"] / t["samples_per_s"] if t else None
        target("W1 fine-tune with the feature cache, epochs after the first, vs best PyTorch",
               v, 10.0, v is not None and v >= 10.0, c["config"])
    ratio_target("W1 pretrain vs best PyTorch", "w1-pretrain", 1.2)
    if t1_rows:
        t = best_torch.get("t1")
        b = max((r for r in ft if r["workload"] == "t1"), key=rate, default=None)
        v = rate(b) / rate(t) if b and t else None
        target("T1 GPT-2 small fine-tune, tokens/s vs best PyTorch (issue 7)", v, 1.3,
               v is not None and v >= 1.3,
               f"best ftune {b['config'] if b else '-'} vs {t['config'] if t else 'no PyTorch'}")
    for wl in ("w1-pretrain", "w1-finetune", "w2"):
        r2 = get(wl, 2)
        if r2:
            v = 100 * r2["allreduce_wait_s"] / r2["seconds"]
            target(f"{wl}: unhidden all-reduce at 2 ranks, % of the step", v, 5.0, v <= 5.0,
                   "time blocked in the final wait of the bucketed all-reduce", at_most=True)
    for wl in ("w1-pretrain", "w1-finetune", "w2"):
        r1, r2 = get(wl, 1), get(wl, 2)
        if r1 and r2:
            v = r2["samples_per_s"] / r1["samples_per_s"]
            target(f"{wl}: 2 ranks / 1 rank", v, 1.8, v >= 1.8, "1 BLAS thread per rank")
    worst = max(ft, key=lambda r: r["data_wait_s"] / r["seconds"]) if ft else None
    if worst:
        v = 100 * worst["data_wait_s"] / worst["seconds"]
        target("data wait on the critical path, % of the step (worst run)", v, 5.0, v <= 5.0,
               worst["config"] + " " + worst["workload"], at_most=True)
    worst = max(ft, key=lambda r: r["peak_rss_mib"] / r["breakdown_mib"]) if ft else None
    if worst:
        v = worst["peak_rss_mib"] / worst["breakdown_mib"]
        v2 = (worst["peak_rss_mib"] - worst["rss_before_mib"]) / worst["breakdown_mib"]
        target("peak RSS / memory breakdown (worst run)", v, 1.3, v <= 1.3, at_most=True, detail=
               f"{worst['workload']} {worst['config']}: {worst['peak_rss_mib']:.1f} MiB peak, "
               f"{worst['breakdown_mib']:.1f} MiB breakdown, {worst['rss_before_mib']:.1f} MiB "
               f"resident before the model (libraries, MPI); without those: {v2:.2f}")

    lines.append("")
    lines.append("targets (issue 4)" + (" -- quick mode: timings mean nothing" if a.quick else ""))
    for t in targets:
        state = "n/a" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        lines.append(f"  {state:8} {t['target']}: {fmt(t['value'], '.2f')} (goal "
                     f"{'<=' if t['goal_is'] == 'at most' else '>='} {t['goal']}) -- "
                     f"{t['detail']}")
    text = "\n".join(lines)
    print(text)

    res = {"mode": "quick" if a.quick else "full", "machine": machine, "sgemm": sg,
           "openblas_core": core, "mflop_per_sample": MFLOP, "rows": table,
           "targets": targets, "note": a.note, "table": text}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"\nresults written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
