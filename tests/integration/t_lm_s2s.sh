#!/usr/bin/env bash
# Source -> target training of a decoder-only LM (docs/text.md, "Source -> target training"):
# `import-text --task generate --layout lm` rows are [CLS] source [SEP] target [SEP] with
# prompt_lengths, and train.task = "lm" trains and evaluates only the target part. The task:
# the source is 3 to 7 random words, the target its first two words. The source is not
# predictable, the target is: the training loss (target tokens only) must fall near 0, the
# evaluation must count exactly the target tokens (sum of length - prompt_length), 1 and 2 ranks
# must give the same weights, and bad layout options exit 2.
# Usage (ctest): t_lm_s2s.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
. "$(dirname "$0")/lib.sh"
ft_init "$@"
command -v h5dump >/dev/null 2>&1 || skip "h5dump not found (Debian: hdf5-tools)"
[ "$HAVE_PY" = 1 ] || skip "python3 not found"

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' red green blue cat dog bird fish \
    sun moon star tree >vocab.txt
# pairs: source = n random words, target = its first two words
awk 'BEGIN {
    split("red green blue cat dog bird fish sun moon star tree", w, " ")
    s = 4242
    for (i = 0; i < 160; i++) {
        s = (s * 16807) % 2147483647; n = 3 + s % 5
        line = ""
        for (j = 0; j < n; j++) {
            s = (s * 16807) % 2147483647
            v[j] = w[1 + s % 11]; line = line (j ? " " : "") v[j]
        }
        printf "%s\t%s %s\n", line, v[0], v[1]
    }
}' >pairs.tsv
ft imp 0 data import-text pairs.tsv -o s2s.h5 --vocab vocab.txt --task generate --layout lm \
    --max-len 12 --target-max-len 4
expect_ok imp
grep -q 'prompt_lengths int32' "$TMP/imp.out" || fail "the summary does not list prompt_lengths"
h5ints() { h5dump -d "$2" -y -w 0 "$1" | sed -n '/DATA {/,/}/p' | tr -c '0-9\n' ' ' | tr ' ' '\n' | grep -v '^$'; }
h5ints s2s.h5 lengths >len.txt
h5ints s2s.h5 prompt_lengths >plen.txt
# a row: [CLS] = 2, source, [SEP] = 3, target (2 words), [SEP]: length = prompt + 3
paste len.txt plen.txt | awk '$1 != $2 + 3 { bad++ } END { exit bad > 0 }' ||
    fail "rows are not prompt + 2 target words + [SEP]"
want_tokens=$(paste len.txt plen.txt | awk '{ s += $1 - $2 } END { print s }')

cfg() {
    cat >"$1" <<EOC
run = { dir = "$2"; seed = 5; };
data = { train = "s2s.h5"; eval = "s2s.h5"; shuffle = true; };
model = {
  input = [12];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 16; dim = 32; },
    { name = "h0"; type = "transformer_block"; heads = 4; causal = true; },
    { name = "h1"; type = "transformer_block"; heads = 4; causal = true; },
    { name = "ln_f"; type = "layernorm"; },
    { name = "lm_head"; type = "lm_head"; tie = "wte"; }
  );
};
train = {
  task = "lm";
  epochs = 30;
  batch_size = 16;
  # SGD: as t_lm_train.sh, so that 1 and 2 ranks agree closely
  optimizer = { type = "sgd"; lr = 0.05; momentum = 0.9; };
};
log = { every = 10; progress = "plain"; };
EOC
}
losses() { awk '/^eval / {for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1)}' "$TMP/$1.out"; }
train_losses() { awk '/^epoch .* step / {for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1)}' "$TMP/$1.out"; }

cfg r1.cfg r1
ft r1 1 train r1.cfg
expect_ok r1
# 1 and 2 ranks: the global target count as denominator. 10 epochs, before the loss drops
# to near 0, where the steep descent amplifies rounding differences beyond any tolerance
cfg a1.cfg a1
ft a1 1 train a1.cfg --set train.epochs=10
expect_ok a1
cfg a2.cfg a2
ft a2 2 train a2.cfg --set train.epochs=10
expect_ok a2
h5_close a1/model.h5 a2/model.h5 /model 1e-4 1e-5
first=$(losses r1 | head -n 1)
last=$(losses r1 | tail -n 1)
tlast=$(train_losses r1 | tail -n 1)
note "eval loss (target tokens): $first -> $last; last train loss $tlast"
# the target is a copy of two source words: learnable to near 0, while a random source word
# costs log(11) = 2.4 nats; a loss over the source positions too could not get below ~1.5
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a && b < 0.6) }' ||
    fail "eval loss did not fall to the target-only level: $first -> $last"
awk -v b="$tlast" 'BEGIN { exit !(b < 0.6) }' || fail "train loss $tlast: not target-only"

# ftune eval counts exactly the target tokens: sum over rows of length - prompt_length
ft ev 2 eval r1/model.h5 --data s2s.h5 --json
expect_ok ev
got_tokens=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["tokens"]))' "$TMP/ev.out" 2>/dev/null || true)
[ "$got_tokens" = "$want_tokens" ] || fail "eval counted '$got_tokens' tokens, expected $want_tokens"

# ftune generate --data: the trained model continues every prompt; the copy task is learnt,
# so the generated targets must score high, and an untrained model's must not
ft gen 0 generate r1/model.h5 --data s2s.h5 --vocab vocab.txt --max-new 4 --show 2 \
    --json gen.json
expect_ok gen
note "$(grep '^generation on' "$TMP/gen.out")"
rouge1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rouge1"])' gen.json 2>/dev/null || true)
awk -v r="$rouge1" 'BEGIN { exit !(r + 0 > 0.9) }' || fail "trained model: ROUGE-1 '$rouge1' <= 0.9"
grep -q 'reference: ' "$TMP/gen.out" || fail "--show printed no examples"
cfg u.cfg u
ft u 1 train u.cfg --set train.epochs=1
expect_ok u
ft gen0 0 generate u/model.h5 --data s2s.h5 --vocab vocab.txt --max-new 4 --json gen0.json
expect_ok gen0
r0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rouge1"])' gen0.json)
awk -v a="$r0" -v b="$rouge1" 'BEGIN { exit !(a < b - 0.2) }' ||
    fail "a 1-epoch model scores about as well as the trained one ($r0 vs $rouge1)"
ft gbad1 0 generate r1/model.h5 --data pairs.tsv --vocab vocab.txt
expect_fail gbad1 2 "pairs.tsv"
ft gbad2 0 generate r1/model.h5 --data s2s.h5 --prompt red --vocab vocab.txt
expect_fail gbad2 2 "--prompt and --data exclude each other"
ft gbad3 0 generate r1/model.h5 --prompt red --vocab vocab.txt --show 2
expect_fail gbad3 2 "--json, --limit and --show go with --data"

# malformed prompt_lengths files: tests/unit/test_data.c (test_prompt_lengths)

# layout options
ft l1 0 data import-text pairs.tsv -o x.h5 --vocab vocab.txt --layout lm
expect_fail l1 2 "--layout 'lm' is for --task generate"
ft l2 0 data import-text pairs.tsv -o x.h5 --vocab vocab.txt --task generate --layout lm \
    --no-specials
expect_fail l2 2 "the lm layout needs its separator and end-of-text tokens"
ft l3 0 data import-text pairs.tsv -o x.h5 --vocab vocab.txt --task generate --layout lm \
    --max-len 2
expect_fail l3 2 "max_len 2 leaves no room for the lm layout's 3 fixed tokens"
ft l4 0 data import-text pairs.tsv -o x.h5 --vocab vocab.txt --task generate --layout rows
expect_fail l4 2 "--layout 'rows': expected seq2seq or lm"
[ ! -e x.h5 ] || fail "a failed import left x.h5"

ft_done
