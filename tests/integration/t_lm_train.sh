#!/usr/bin/env bash
# train.task = "lm": a tiny GPT-2 (embedding, two causal pre-LN blocks, ln_f, lm_head tied to
# the embedding) on text with a learnable pattern. The eval loss must fall, 1 and 2 ranks must
# give the same weights (the loss is normalised by the global target count), the model file
# must hold the tied tensor once, and input errors exit 2 naming the problem.
# Usage (ctest): t_lm_train.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
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

# cfg FILE RUN [EXTRA MODEL LAYER]
cfg() {
    local head=${3:-}
    [ -n "$head" ] || head='tie = "wte";'
    cat >"$1" <<EOF
run = { dir = "$2"; seed = 11; };
data = { train = "lm.h5"; eval = "lm.h5"; shuffle = true; };
model = {
  input = [10];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 16; dim = 16; },
    { name = "h0"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "h1"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "ln_f"; type = "layernorm"; },
    { name = "lm_head"; type = "lm_head"; $head }
  );
};
train = {
  task = "lm";
  epochs = 6;
  batch_size = 16;
  # SGD, not AdamW: the key bias of attention has a zero gradient up to rounding noise, which
  # AdamW would scale up to full steps differently on 1 and 2 ranks
  optimizer = { type = "sgd"; lr = 0.3; momentum = 0.9; };
};
checkpoint = { every = 12; keep_last = 100; };
log = { every = 6; progress = "plain"; };
EOF
}
losses() { awk '/^eval / {for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1)}' "$TMP/$1.out"; }

cfg r1.cfg r1
ft r1 1 train r1.cfg
expect_ok r1
cfg r2.cfg r2
ft r2 2 train r2.cfg
expect_ok r2
grep -q 'perplexity' "$TMP/r1.out" || fail "no perplexity in the evaluation"
first=$(losses r1 | head -n 1)
last=$(losses r1 | tail -n 1)
note "eval loss: $first -> $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.6 * a) }' ||
    fail "eval loss did not fall enough: $first -> $last"
h5_close r1/model.h5 r2/model.h5 /model 1e-4 1e-5
[ -f r1/best.h5 ] || fail "no best.h5"
# the tied tensor is stored once, under its owner
h5ls -r r1/model.h5 | grep -q '/model/wte/weight' || fail "wte/weight missing"
if h5ls -r r1/model.h5 | grep -q '/model/lm_head/'; then
    fail "lm_head stores a tensor of its own"
fi
# resume from a checkpoint re-links the tie: the same final weights
cp r1/model.h5 r1-first.h5
ft r1b 1 train r1.cfg --resume "r1/$(ckpt 12)"
expect_ok r1b
h5_same r1-first.h5 r1/model.h5 /model

# ftune eval on the LM model: the same loss as the trainer's final evaluation
ft ev 2 eval r1/model.h5 --data lm.h5 --json
expect_ok ev
evloss=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["loss"])' "$TMP/ev.out" 2>/dev/null || true)
[ "$evloss" = "$(losses r1b | tail -n 1)" ] || fail "ftune eval loss '$evloss' != the final eval loss $(losses r1b | tail -n 1)"

# untied head: its own weight
cfg un.cfg un 'vocab = 16;'
ft un 1 train un.cfg --set train.epochs=1
expect_ok un
h5ls -r un/model.h5 | grep -q '/model/lm_head/weight' || fail "untied lm_head has no weight"

# a real vocabulary size: T x V outputs (10 x 60000) are not classes, so the trainer must not
# size a confusion matrix by them (it once tried 600000^2 doubles, and training stopped)
sed -e 's/vocab = 16;/vocab = 60000;/' r1.cfg >big.cfg
ft big 1 train big.cfg --set "run.dir=$TMP/big" --set train.max_steps=2
expect_ok big
grep -q 'perplexity' "$TMP/big.out" || fail "[big] no LM evaluation"

# input errors
cfg bad1.cfg bad1 'tie = "nope";'
ft bad1 1 train bad1.cfg
expect_fail bad1 2 "layer 'lm_head' (lm_head): tie = \"nope\": no layer of that name before it"
cfg bad2.cfg bad2 'tie = "ln_f";'
ft bad2 1 train bad2.cfg
expect_fail bad2 2 "tie = \"ln_f\" (layernorm) needs a parameter \"weight\" of shape [vocab, 16]"
cfg bad3.cfg bad3 'vocab = 12;'
ft bad3 1 train bad3.cfg
expect_fail bad3 2 "lm.h5: sample" "has a token id outside [0, 12)"
cfg bad4.cfg bad4
ft bad4 1 train bad4.cfg --set 'eval.best_metric="accuracy"'
expect_fail bad4 2 'eval.best_metric = "accuracy" needs classes'
ft bad5 1 train bad4.cfg --set data.k_shot=2
expect_fail bad5 2 'data.k_shot draws rows per class; train.task = "lm" has no classes'

ft_done
