#!/usr/bin/env bash
# ftune generate: a tiny causal LM (embedding, two causal blocks, ln_f, tied lm_head) trained a
# few epochs on word cycles continues a prompt with the cycle, stops at [SEP] or at the end of
# the position table, reproduces its sampling from the seed, works on compact ids through
# --vocab-map, and refuses bad flags, missing files and a non-causal model with exit 2.
# Usage (ctest): t_generate.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
. "$(dirname "$0")/lib.sh"
ft_init "$@"

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' red green blue cat dog bird fish \
    sun moon star tree >vocab.txt
# rows follow a cycle of the 11 words from a random start, 2 to 8 words long
awk 'BEGIN {
    split("red green blue cat dog bird fish sun moon star tree", w, " ")
    s = 777
    for (i = 0; i < 96; i++) {
        s = (s * 16807) % 2147483647; n = 2 + s % 7
        s = (s * 16807) % 2147483647; k = s % 11
        line = ""
        for (j = 0; j < n; j++) line = line (j ? " " : "") w[1 + (k + j) % 11]
        printf "0\t%s\n", line
    }
}' >rows.tsv
ft imp 0 data import-text rows.tsv -o lm.h5 --vocab vocab.txt --max-len 10
expect_ok imp
ft impc 0 data import-text rows.tsv -o lmc.h5 --vocab vocab.txt --max-len 10 --vocab-limit 12
expect_ok impc

# cfg FILE RUN DATA VOCAB [CAUSAL]
cfg() {
    cat >"$1" <<EOC
run = { dir = "$2"; seed = 11; };
data = { train = "$3"; eval = "$3"; shuffle = true; };
model = {
  input = [10];
  layers = (
    { name = "wte"; type = "embedding"; vocab = $4; dim = 16; },
    { name = "h0"; type = "transformer_block"; heads = 2; causal = ${5:-true}; },
    { name = "h1"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "ln_f"; type = "layernorm"; },
    { name = "lm_head"; type = "lm_head"; tie = "wte"; }
  );
};
train = { task = "lm"; epochs = 20; batch_size = 16; optimizer = { type = "adamw"; lr = 0.01; }; };
log = { every = 50; progress = "plain"; };
EOC
}
cfg r.cfg r lm.h5 16
ft tr 1 train r.cfg
expect_ok tr

# greedy: [CLS] red green -> the cycle goes on and the row ends with [SEP]
ft g1 0 generate r/model.h5 --prompt "red green" --vocab vocab.txt --ids
expect_ok g1
note "greedy: $(head -n 1 "$TMP/g1.out")"
case "$(head -n 1 "$TMP/g1.out")" in
blue\ cat\ dog*) ;;
*) fail "greedy continuation of 'red green' is '$(head -n 1 "$TMP/g1.out")', expected blue cat dog ..." ;;
esac
grep -q '^ids: 7 8 9' "$TMP/g1.out" || fail "--ids: $(sed -n 2p "$TMP/g1.out")"
grep -q 'ended at the stop id' "$TMP/g1.err" || fail "greedy did not end at [SEP]: $(cat "$TMP/g1.err")"
grep -qF '[SEP]' "$TMP/g1.out" && fail "the stop token is printed"

# without a stop id: the position table (10) ends it: 2 prompt tokens + 8
ft g2 0 generate r/model.h5 --prompt sun --vocab vocab.txt --ids --no-stop --max-new 100
expect_ok g2
[ "$(sed -n 2p "$TMP/g2.out" | wc -w)" = 9 ] || fail "--no-stop: $(sed -n 2p "$TMP/g2.out"), expected 8 ids"
grep -q '2 prompt tokens, 8 generated, ended at the end of the model' "$TMP/g2.err" ||
    fail "max_len: $(cat "$TMP/g2.err")"
ft g3 0 generate r/model.h5 --prompt sun --vocab vocab.txt --ids --no-stop --max-new 3
expect_ok g3
grep -q '3 generated, ended at --max-new' "$TMP/g3.err" || fail "max-new: $(cat "$TMP/g3.err")"
[ "$(sed -n 2p "$TMP/g3.out")" = "$(sed -n 2p "$TMP/g2.out" | cut -d' ' -f1-4)" ] ||
    fail "--max-new 3 is not the start of the longer greedy run"

# sampling: top-k 1 is greedy at any temperature; a seed reproduces; seeds differ
ft s1 0 generate r/model.h5 --prompt sun --vocab vocab.txt --no-stop --max-new 100 --top-k 1 --temperature 5
expect_ok s1
[ "$(head -n 1 "$TMP/s1.out")" = "$(head -n 1 "$TMP/g2.out")" ] || fail "--top-k 1 differs from greedy"
outs=""
for seed in 1 2 3 4 5; do
    ft "sa$seed" 0 generate r/model.h5 --prompt sun --vocab vocab.txt --no-stop --max-new 100 \
        --temperature 3 --top-p 0.95 --seed "$seed"
    expect_ok "sa$seed"
    outs="$outs$(head -n 1 "$TMP/sa$seed.out")"$'\n'
done
ft sb 0 generate r/model.h5 --prompt sun --vocab vocab.txt --no-stop --max-new 100 \
    --temperature 3 --top-p 0.95 --seed 3
expect_ok sb
cmp -s "$TMP/sa3.out" "$TMP/sb.out" || fail "the same seed gave another text"
[ "$(printf '%s' "$outs" | sort -u | wc -l)" -ge 3 ] || fail "5 seeds gave fewer than 3 texts: $outs"

# compact ids: a model trained on lmc.h5 (13 ids) with --vocab-map
cfg c.cfg c lmc.h5 13
ft trc 1 train c.cfg --set train.epochs=2
expect_ok trc
ft gc 0 generate c/model.h5 --prompt "red zebra" --vocab vocab.txt --vocab-map lmc.h5 --ids \
    --no-stop --max-new 4
expect_ok gc
# "zebra" is outside the map: [CLS] red [UNK]; every generated id is a compact id
grep -q '3 prompt tokens, 4 generated' "$TMP/gc.err" || fail "compact: $(cat "$TMP/gc.err")"
awk '/^ids:/ { n = NF - 1; for (i = 2; i <= NF; i++) if ($i < 0 || $i >= 13) bad = 1 }
     END { exit !(n == 4 && !bad) }' "$TMP/gc.out" || fail "compact ids: $(cat "$TMP/gc.out")"

# input errors: exit 2, naming the problem
ft e1 0 generate r/model.h5 --prompt x
expect_fail e1 2 "--vocab FILE is missing"
ft e2 0 generate r/model.h5 --prompt x --vocab vocab.txt --bogus
expect_fail e2 2 "unknown option '--bogus'"
ft e3 0 generate r/model.h5 --prompt x --vocab vocab.txt --top-p 1.5
expect_fail e3 2 "--top-p '1.5': expected a number in (0, 1]"
ft e4 0 generate r/model.h5 --prompt x --vocab vocab.txt --greedy --top-k 3
expect_fail e4 2 "--greedy excludes --top-k"
ft e5 0 generate nope.h5 --prompt x --vocab vocab.txt
expect_fail e5 2 "nope.h5"
ft e6 0 generate r/model.h5 --prompt x --vocab missing.txt
expect_fail e6 2 "missing.txt"
ft e7 0 generate r/model.h5 --prompt red --vocab vocab.txt --max-new -1
expect_fail e7 2 "--max-new '-1'"
ft e8 0 generate r/model.h5 --prompt red --vocab vocab.txt --temperature 0
expect_fail e8 2 "--temperature '0': expected a number > 0"
ft e9 0 generate r/model.h5 --prompt red --vocab vocab.txt --stop-id 16
expect_fail e9 2 "stop id 16 is outside the model's vocabulary [0, 16)"
ft e10 0 generate r/model.h5 --prompt red --vocab vocab.txt --vocab-map lmc.h5
expect_fail e10 2 "the model has 16 output ids but the vocab_map of lmc.h5 has 13"
ft e11 0 generate r/model.h5 --prompt x --vocab vocab.txt --top-k
expect_fail e11 2 "option '--top-k' needs a value"
# the same weights built from a config whose first block is bidirectional
cfg bidi.cfg bidi lm.h5 16 false
ft e12 0 generate r/model.h5 --prompt red --vocab vocab.txt --config bidi.cfg
expect_fail e12 2 "r/model.h5: layer 'h0' (transformer_block) is not causal"
ft e13 0 generate c/model.h5 --prompt red --vocab vocab.txt
expect_fail e13 2 "c/model.h5: the model has 13 output ids but the vocabulary vocab.txt has 16" \
    "give --vocab-map"
ft e14 0 generate r/model.h5 --prompt "red red red red red red red red red red red" --vocab vocab.txt
expect_fail e14 2 "the prompt has 12 tokens, more than the 10 positions the model holds"

ft h 0 generate --help
expect_ok h
grep -q 'top-p' "$TMP/h.out" || fail "--help lacks --top-p"

ft_done
