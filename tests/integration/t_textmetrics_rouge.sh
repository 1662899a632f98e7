#!/usr/bin/env bash
# ROUGE-1/2/L F1 per pair (ft_rouge_*) against the npm package js-rouge under node, with the
# same words (rouge-score's tokenization, passed to js-rouge as its tokenizer) and one sentence
# per summary, on pairs made by tests/text/make_corpus.py from real text (edited SMS messages:
# case changes, punctuation, repeated and replaced words, empty hypotheses). Every value must
# agree within 1e-12.
# Usage (ctest): t_textmetrics_rouge.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Exit 77 = skipped (no
# node/npm, or npm install failed: no network; no python3 to make the corpus).
set -euo pipefail
SRC=$(cd "${2:?source dir}" && pwd)
BUILD=${3:-$(mktemp -d)}
DRIVER="$BUILD/test_textmetrics"
[ -x "$DRIVER" ] || { echo "FAIL: $DRIVER not built"; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
# shellcheck source=tests/text/npm_setup.sh
. "$SRC/tests/text/npm_setup.sh"
npm_setup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-rouge.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
TEXT="$SRC/../shared/data/text/SMSSpamCollection"
[ -r "$TEXT" ] || TEXT="$SRC/tests/text/tricky.jsonl"
python3 "$SRC/tests/text/make_corpus.py" "$TEXT" "$TMP"
fails=0
for c in rouge sms; do
    node "$SRC/tests/text/ref_rouge.js" "$TMP/$c.jsonl" >"$TMP/$c.js"
    "$DRIVER" rouge "$TMP/$c.jsonl" >"$TMP/$c.ftune"
    paste -d' ' "$TMP/$c.js" "$TMP/$c.ftune" | awk -v name="$c" '
        {
            for (i = 1; i <= 3; i++) {
                d = $i - $(i + 3); if (d < 0) d = -d
                if (d > m) m = d
                if (d > 1e-12) { if (++bad <= 5) print "MISMATCH " name " pair " NR ": js-rouge " $1 " " $2 " " $3 ", ftune " $4 " " $5 " " $6; break }
                s[i] += $i
            }
        }
        END {
            printf "%s: %d pairs, mean F1 R1 %.6f R2 %.6f RL %.6f, max |diff| %.3g, %d mismatched\n", name, NR, s[1] / NR, s[2] / NR, s[3] / NR, m, bad
            exit bad ? 1 : 0
        }' || fails=$((fails + 1))
done
[ "$fails" = 0 ] || { echo "$fails corpus(es) differ"; exit 1; }
echo "OK"
