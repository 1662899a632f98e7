#!/usr/bin/env bash
# Corpus BLEU-4 (ft_bleu_*) against NLTK's corpus_bleu (Debian: python3-nltk) on corpora made
# from real text by tests/text/make_corpus.py: edited SMS messages with 1-3 references, empty
# hypotheses, 1-3 word hypotheses (NLTK's zero 4-gram precision path), no overlap at all (0),
# and hypotheses longer than their references. BLEU and the brevity penalty must agree within
# 1e-9 (absolute, and relative for the ~1e-80 values of the zero-precision path).
# Usage (ctest): t_textmetrics_bleu.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Exit 77 = skipped (no
# python3 with nltk: scripts/install-deps.sh --with-optional installs python3-nltk).
set -euo pipefail
SRC=$(cd "${2:?source dir}" && pwd)
BUILD=${3:-}
DRIVER="$BUILD/test_textmetrics"
[ -x "$DRIVER" ] || { echo "FAIL: $DRIVER not built"; exit 1; }

PY=
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import nltk' >/dev/null 2>&1; then
        PY=$p
        break
    fi
done
[ -n "$PY" ] || { echo "SKIP: no python3 with nltk (Debian: python3-nltk)"; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-bleu.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
TEXT="$SRC/../shared/data/text/SMSSpamCollection"
[ -r "$TEXT" ] || TEXT="$SRC/tests/text/tricky.jsonl"
"$PY" "$SRC/tests/text/make_corpus.py" "$TEXT" "$TMP"
set -- "$TMP"/sms.jsonl "$TMP"/short.jsonl "$TMP"/nomatch.jsonl "$TMP"/long.jsonl
"$PY" "$SRC/tests/text/nltk_bleu.py" "$@" >"$TMP/nltk.txt"
"$DRIVER" bleu "$@" >"$TMP/ftune.txt"
echo "corpus: $TEXT"
paste -d' ' "$TMP/nltk.txt" "$TMP/ftune.txt" | awk '
    function bad(a, b) { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); return d > 1e-9 && d > 1e-9 * m }
    {
        # NAME bleu B bp BP nltk VERSION | NAME bleu B bp BP
        printf "%-8s NLTK %s BLEU %-22s BP %-22s | ftune BLEU %-22s BP %s\n", $1, $7, $3, $5, $10, $12
        if ($1 != $8 || bad($3, $10) || bad($5, $12)) { print "FAIL: " $1 " differs"; f++ }
    }
    END { if (f || NR != 4) { print (f + 0) " corpus(es) differ, " NR " compared"; exit 1 } print "OK: 4 corpora agree" }'
