#!/usr/bin/env bash
# ftune eval: --json prints exactly one JSON object (samples, loss, accuracy, macro_f1,
# per_class, confusion) and nothing else on stdout, also under mpirun; every sample is counted
# once on 1, 2 and 3 ranks (67 samples, batch 8: uneven shares and a short last batch), and the
# ranks agree on the metrics; the table has one row per class and a confusion matrix; a
# checkpoint evaluates like a model.
# Usage (ctest): t_eval_cli.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

N=67
make_data train.h5 200 16 4 71 0.3
make_data test.h5 "$N" 16 4 72 0.3
write_mlp_cfg mlp.cfg "$TMP/run" "$TMP/train.h5"
# A few steps only, so that the model makes mistakes and the confusion matrix is not diagonal.
ft train 0 train mlp.cfg --set train.max_steps=6
expect_ok train
MODEL=$TMP/run/model.h5

for np in 1 2 3; do
    ft "json-np$np" "$np" eval "$MODEL" --data "$TMP/test.h5" --json --batch-size 8
    expect_ok "json-np$np"
    out=$TMP/json-np$np.out
    lines=$(wc -l <"$out")
    [ "$lines" = 1 ] || fail "[json-np$np] stdout has $lines lines, expected one JSON object"
    if [ "$HAVE_PY" = 1 ]; then
        check=$(json_get "$out" '" ".join(str(x) for x in (
            sorted(k for k in ("samples", "loss", "accuracy", "macro_f1", "per_class", "confusion") if k not in d),
            d["samples"],
            sum(map(sum, d["confusion"])),
            sum(c["support"] for c in d["per_class"]),
            len(d["per_class"]), len(d["confusion"]),
            abs(d["accuracy"] - sum(d["confusion"][i][i] for i in range(4)) / d["samples"]) < 1e-9,
            0 <= d["macro_f1"] <= 1 and d["loss"] > 0))') ||
            fail "[json-np$np] stdout is not a JSON object with the expected keys: $(cat "$out")"
        # missing keys, samples, confusion sum, support sum, classes (2x), accuracy = trace / n,
        # sane ranges
        want="[] $N $N $N 4 4 True True"
        [ "$check" = "$want" ] || fail "[json-np$np] got '$check', expected '$want': $(cat "$out")"
    else
        for k in samples loss accuracy macro_f1 per_class confusion; do
            grep -qF "\"$k\":" "$out" || fail "[json-np$np] no \"$k\" in $(cat "$out")"
        done
        grep -qF "\"samples\":$N," "$out" || fail "[json-np$np] samples is not $N: $(cat "$out")"
    fi
done

# The ranks agree: the same counts (accuracy, confusion) exactly, the loss within rounding.
if [ "$HAVE_PY" = 1 ]; then
    for np in 2 3; do
        same=$(python3 -c 'import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
print(a["confusion"] == b["confusion"] and a["accuracy"] == b["accuracy"]
      and abs(a["loss"] - b["loss"]) <= 1e-5 * abs(a["loss"]))' "$TMP/json-np1.out" \
            "$TMP/json-np$np.out")
        [ "$same" = True ] || fail "eval --json on 1 and $np ranks disagree:" \
            "$(cat "$TMP/json-np1.out") vs $(cat "$TMP/json-np$np.out")"
    done
fi

# The table: one row per class (class, precision, recall, f1, support), the totals and a
# confusion matrix with one row per class whose entries add up to N.
for np in 1 3; do
    ft "table-np$np" "$np" eval "$MODEL" --data "$TMP/test.h5" --batch-size 8
    expect_ok "table-np$np"
    out=$TMP/table-np$np.out
    rows=$(awk '/precision/ { t = 1; next } t && NF == 5 && $1 ~ /^[0-3]$/ { n++ } NF == 0 { t = 0 }
        END { print n + 0 }' "$out")
    [ "$rows" = 4 ] || fail "[table-np$np] $rows per-class rows, expected 4"
    grep -qE "^samples +$N$" "$out" || fail "[table-np$np] no 'samples $N' line"
    grep -q '^accuracy ' "$out" || fail "[table-np$np] no accuracy line"
    grep -q '^macro_f1 ' "$out" || fail "[table-np$np] no macro_f1 line"
    cm=$(awk '/^confusion matrix/ { t = 1; getline; next } t && NF == 5 { n++; for (i = 2; i <= 5; i++) s += $i }
        END { print n + 0, s + 0 }' "$out")
    [ "$cm" = "4 $N" ] || fail "[table-np$np] confusion matrix: rows and total '$cm', expected '4 $N'"
    [ "$np" = 1 ] || cmp -s <(tail -n +2 "$TMP/table-np1.out") <(tail -n +2 "$out") ||
        fail "[table-np$np] the table differs from the 1-rank table"
done
[ "$FAILS" = 0 ] || show table-np1

# A checkpoint evaluates like the model it holds (the last one is the final model).
ft ckpt 0 eval "$TMP/run/$(ckpt 6)" --data "$TMP/test.h5" --json
expect_ok ckpt
cmp -s "$TMP/ckpt.out" "$TMP/json-np1.out" ||
    fail "eval of the final checkpoint differs from eval of model.h5:" \
        "$(cat "$TMP/ckpt.out") vs $(cat "$TMP/json-np1.out")"

ft_done
