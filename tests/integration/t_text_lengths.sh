#!/usr/bin/env bash
# The dataset's "lengths" reach the layers in training, evaluation and the frozen-feature
# cache: the same text imported with two different padding ids (--pad-id 0 and 9, a word of
# the vocabulary) must train to the same weights and evaluate to the same loss, for a
# non-causal block with seq_pool "mean" and a causal one with "last", and with a frozen
# embedding whose outputs come from the feature cache (memory on 1 rank, disk on 2 ranks).
# Were the lengths ignored, attention and pooling would see the pad tokens and the runs differ.
# Usage (ctest): t_text_lengths.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
. "$(dirname "$0")/lib.sh"
ft_init "$@"

# a WordPiece vocabulary: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, words from 5
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' red green blue cat dog bird fish \
    sun moon star tree >vocab.txt
# 48 rows of 1 to 6 words, label = whether "cat" or "dog" occurs, padded to 10
awk 'BEGIN {
    split("red green blue cat dog bird fish sun moon star tree", w, " ")
    s = 12345
    for (i = 0; i < 48; i++) {
        s = (s * 16807) % 2147483647
        n = 1 + s % 6
        line = ""; y = 0
        for (j = 0; j < n; j++) {
            s = (s * 16807) % 2147483647
            k = 1 + s % 11
            line = line (j ? " " : "") w[k]
            if (w[k] == "cat" || w[k] == "dog") y = 1
        }
        printf "%d\t%s\n", y, line
    }
}' >rows.tsv
ft imp0 0 data import-text rows.tsv -o pad0.h5 --vocab vocab.txt --max-len 10 --pad-id 0
expect_ok imp0
ft imp9 0 data import-text rows.tsv -o pad9.h5 --vocab vocab.txt --max-len 10 --pad-id 9
expect_ok imp9
h5_differ pad0.h5 pad9.h5 /inputs

# cfg FILE RUN DATA CAUSAL POOL EMB_TRAINABLE CACHE
cfg() {
    cat >"$1" <<EOF
run = { dir = "$2"; seed = 5; };
data = { train = "$3"; eval = "$3"; shuffle = true; };
model = {
  input = [10];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 16; dim = 8; trainable = $6; },
    { name = "h0"; type = "transformer_block"; heads = 2; causal = $4; style = "post_ln"; },
    { name = "pool"; type = "seq_pool"; mode = "$5"; },
    { name = "head"; type = "dense"; units = 2; }
  );
};
train = {
  epochs = 2;
  batch_size = 16;
  optimizer = { type = "adamw"; lr = 0.01; };
  feature_cache = "$7";
};
log = { every = 3; progress = "plain"; };
EOF
}

# run NAME NP DATA CAUSAL POOL EMB_TRAINABLE CACHE
run() {
    cfg "$1.cfg" "$1" "$3" "$4" "$5" "$6" "$7"
    ft "$1" "$2" train "$1.cfg"
    expect_ok "$1"
}
final_loss() { grep -A0 'eval final' "$TMP/$1.out" | awk '{for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1)}'; }

run mean0 1 pad0.h5 false mean true off
run mean9 1 pad9.h5 false mean true off
h5_close mean0/model.h5 mean9/model.h5 /model 1e-5 1e-6
[ "$(final_loss mean0)" = "$(final_loss mean9)" ] ||
    fail "eval loss differs with the padding id: $(final_loss mean0) vs $(final_loss mean9)"

run last0 1 pad0.h5 true last true off
run last9 1 pad9.h5 true last true off
h5_close last0/model.h5 last9/model.h5 /model 1e-5 1e-6

# frozen embedding: the block's input comes from the feature cache
run fc0 1 pad0.h5 false mean false memory
grep -q 'feature cache: memory' "$TMP/fc0.out" || fail "fc0 did not use the memory cache"
run fc9 2 pad9.h5 false mean false disk
grep -q 'feature cache: disk' "$TMP/fc9.out" || fail "fc9 did not use the disk cache"
h5_close fc0/model.h5 fc9/model.h5 /model 1e-4 1e-5
# and the cache changes nothing against the uncached run
run nofc0 1 pad0.h5 false mean false off
h5_close fc0/model.h5 nofc0/model.h5 /model 1e-5 1e-6

ft_done
