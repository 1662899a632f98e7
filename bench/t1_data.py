#!/usr/bin/env python3
"""Writes the dataset of benchmark T1 (bench/run.sh): N rows of random GPT-2 token ids in the
layout of `ftune data import-text` (docs/text.md, "Data preparation"): inputs float32 [N, T]
(ids, padded on the right with 50256), labels int32 [N] (0/1), lengths int32 [N] (real tokens,
uniform in [T/2, T]), attributes classes, task, tokenizer, vocab_size, pad_id, max_len.
Deterministic (seed 7). Needs numpy and h5py; without h5py, --csv writes the same rows (ids and
label, no lengths) for `ftune data import-csv`.

  t1_data.py OUT.h5 [--rows 8] [--len 128]
  t1_data.py OUT.csv --csv [--rows 8] [--len 128]
  t1_data.py --info [--rows 8] [--len 128] [--warmup 2]
      prints, as JSON, what bench/report.py needs: rows, len, the real tokens of one step (the
      sum of the lengths) and the warm-up steps (standard library only)
"""
import argparse
import json
import os
import random
import sys

VOCAB, PAD = 50257, 50256


def rows(n, T):
    rng = random.Random(7)
    out = []
    for i in range(n):
        length = rng.randint(max(1, T // 2), T)
        ids = [rng.randrange(VOCAB - 1) for _ in range(length)] + [PAD] * (T - length)
        out.append((ids, i % 2, length))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--len", type=int, default=128)
    ap.add_argument("--csv", action="store_true")
    ap.add_argument("--info", action="store_true")
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    data = rows(a.rows, a.len)
    if a.info:
        print(json.dumps({"rows": a.rows, "len": a.len, "warmup_steps": a.warmup,
                          "tokens_per_step": sum(r[2] for r in data)}))
        return 0
    if not a.out:
        ap.error("OUT is required")
    if a.csv:
        with open(a.out, "w") as f:
            for ids, label, _ in data:
                f.write(",".join(map(str, ids)) + f",{label}\n")
        return 0
    import h5py
    import numpy as np
    tmp = a.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f["inputs"] = np.array([r[0] for r in data], dtype=np.float32)
        f["labels"] = np.array([r[1] for r in data], dtype=np.int32)
        f["lengths"] = np.array([r[2] for r in data], dtype=np.int32)
        f.attrs["classes"] = np.int64(2)
        f.attrs["task"] = "classification"
        f.attrs["tokenizer"] = "gpt2-bpe"
        f.attrs["vocab_size"] = np.int64(VOCAB)
        f.attrs["pad_id"] = np.int64(PAD)
        f.attrs["max_len"] = np.int64(a.len)
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
