#!/usr/bin/env bash
# Issue 7's SMS acceptance: the text demo's GPT, pretrained by ftune as a language model on the
# unlabelled half of the SpamAssassin corpus (scripts/fetch-text-data.sh, npm), fine-tuned as a
# spam classifier on the SMS Spam Collection (../shared/data/text/SMSSpamCollection; every fifth
# message held out as the test split, 20%), reaches test accuracy >= 0.97 (the majority class
# alone gives 0.866), with 2 ranks. Skipped without ../shared or without node/npm/registry.
# The corpus is kept in BUILD_DIR/text-data between runs.
# Usage (ctest): t_text_sms.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"
FT_TIMEOUT=900

SMS="$SRC/../shared/data/text/SMSSpamCollection"
[ -r "$SMS" ] || skip "$SMS not found (../shared is absent)"
DATA=${BUILD:-$TMP}/text-data
rc=0
bash "$SRC/scripts/fetch-text-data.sh" "$DATA" >fetch.log 2>&1 || rc=$?
[ "$rc" = 77 ] && skip "the SpamAssassin corpus is unavailable: $(tail -n 1 fetch.log)"
[ "$rc" = 0 ] || { cat fetch.log; die "fetch-text-data.sh failed ($rc)"; }

tok=(--vocab "$DATA/encoder.json" --merges "$DATA/vocab.bpe" --classes ham,spam --max-len 64)
ft lm 0 data import-text "$DATA/lm.jsonl" -o lm.h5 "${tok[@]}" --vocab-limit 8192
expect_ok lm
awk 'NR % 5 != 0' "$SMS" >sms-train.tsv
awk 'NR % 5 == 0' "$SMS" >sms-test.tsv
for s in train test; do
    ft "sms-$s" 0 data import-text "sms-$s.tsv" -o "sms-$s.h5" "${tok[@]}" --vocab-map lm.h5
    expect_ok "sms-$s"
done

# the demo's GPT (configs/text-gpt-pretrain.cfg) at 64 tokens
layers() { # HEAD...: the model, with these layers after ln_f
    cat <<EOF
model = {
  input = [64];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 8193; dim = 128; max_len = 128; },
    { name = "h.0"; type = "transformer_block"; heads = 4; causal = true; dropout = 0.1; },
    { name = "h.1"; type = "transformer_block"; heads = 4; causal = true; dropout = 0.1; },
    { name = "ln_f"; type = "layernorm"; },
    $*
  );
};
EOF
}
{
    echo 'run = { dir = "pre"; seed = 42; };'
    echo 'data = { train = "lm.h5"; shuffle = true; };'
    layers '{ name = "lm_head"; type = "lm_head"; tie = "wte"; }'
    echo 'train = { task = "lm"; epochs = 3; batch_size = 32;'
    echo '  optimizer = { type = "adamw"; lr = 0.001; weight_decay = 0.01; };'
    echo '  schedule = { type = "cosine"; }; };'
    echo 'checkpoint = { every = 0; keep_last = 1; };'
} >pre.cfg
{
    echo 'run = { dir = "sms"; seed = 42; };'
    echo 'data = { train = "sms-train.h5"; eval = "sms-test.h5"; shuffle = true; };'
    layers '{ name = "pool"; type = "seq_pool"; mode = "last"; },' \
        '{ name = "score"; type = "dense"; units = 2; }'
    echo 'pretrained = { file = "pre/model.h5"; reinit = ["score"]; };'
    echo 'train = { epochs = 3; batch_size = 32;'
    echo '  optimizer = { type = "adamw"; lr = 0.0005; weight_decay = 0.01; };'
    echo '  schedule = { type = "cosine"; }; };'
    echo 'eval = { every = 0; batch_size = 128; };'
    echo 'checkpoint = { every = 0; keep_last = 1; };'
} >sms.cfg

ft pre 2 train pre.cfg
expect_ok pre
ft sms 2 train sms.cfg
expect_ok sms
line=$(grep '^fine-tuned accuracy' "$TMP/sms.out" || true)
note "$line"
acc=$(echo "$line" | sed -n 's/^fine-tuned accuracy \([0-9.]*\),.*/\1/p')
[ -n "$acc" ] || die "no final accuracy in the fine-tuning output"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.97) }' ||
    fail "SMS test accuracy $acc < 0.97 (majority class 0.866)"
ft_done
