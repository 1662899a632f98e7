#!/usr/bin/env bash
# Smoke test of the benchmark (label "bench"): bench/run.sh --quick runs every ftune and
# PyTorch row (T1, the GPT-2-small fine-tune and its LoRA row, included) for a few steps and writes its table
# as JSON. Checks that it runs and that the JSON has every row and target; timings are never
# asserted (they mean nothing in a smoke run, and the machine is shared). Skipped (77)
# without PyTorch.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch, h5py' >/dev/null 2>&1; then
        PY=$(command -v "$p")
        break
    fi
done
[ -n "$PY" ] || skip "no python3 with torch and h5py (Debian: python3-torch, python3-h5py)"

RC=0
FTUNE="$FTUNE" PYTHON="$PY" BENCH_DATA="$TMP/data" timeout -k 10 300 \
    bash "$SRC/bench/run.sh" --quick --work "$TMP/work" --out "$TMP/results.json" \
    >"$TMP/bench.out" 2>&1 || RC=$?
if [ "$RC" != 0 ]; then
    tail -n 40 "$TMP/bench.out"
    die "bench/run.sh --quick exited with $RC"
fi
note "ok: bench/run.sh --quick ran"
grep -q '^workload .*samples/s' "$TMP/bench.out" || fail "no table in the output"
"$PY" - "$TMP/results.json" <<'PYEOF' || fail "results.json is incomplete"
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["rows"]
want = {("ftune", w) for w in ("w1-pretrain", "w1-finetune", "w2", "t1")}
want |= {("pytorch", w) for w in ("w1-pretrain", "w1-finetune", "w2", "t1")}
want |= {(p, "t1-lora") for p in ("ftune", "pytorch")}
have = {(r["peer"], r["workload"]) for r in rows}
missing = want - have
assert not missing, f"missing rows: {missing}"
assert any(r.get("cache") for r in rows), "no feature-cache row"
for r in rows:
    assert r["samples_per_s"] > 0, r
    if r["peer"] == "ftune":
        assert r["peak_rss_mib"] > 0 and r["breakdown_mib"] > 0, r
for r in rows:
    if r["workload"] in ("t1", "t1-lora"):
        assert r["tokens_per_s"] > 0, r
    if r["workload"] == "t1-lora":  # LoRA vs the full fine-tune of the same configuration
        assert r["vs_full"]["tokens_per_s"] > 0, r
        assert r["trainable"] < r["params"] // 50, r
        if r["peer"] == "ftune":
            assert 0 < r["vs_full"]["grads"] < 0.05 and 0 < r["vs_full"]["optimizer"] < 0.05, r
assert any("T1" in t["target"] for t in d["targets"]), "no T1 target"
assert set(d["sgemm"]) == {"1x1", "1x2", "2x1"}, d["sgemm"]
assert len(d["targets"]) >= 10, len(d["targets"])
print("ok: results.json has", len(rows), "rows and", len(d["targets"]), "targets")
PYEOF
ft_done
