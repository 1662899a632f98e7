#!/usr/bin/env bash
# Freezing by parameter name and LoRA on a small GPT-like transformer with `ftune train`:
# BitFit (freeze.bitfit) and LoRA (lora group) fine-tunes of a pretrained model leave the
# frozen weights bit-identical to the pretrained file (LoRA: not stored at all) while biases /
# adapters / the head change; frozen parameters get no optimizer state; `ftune eval` reads the LoRA model; input
# errors (a pattern that matches nothing, an unknown lora target) exit 2 naming them.
# Usage (ctest): t_lora_freeze.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

# 8 values per row, rounded and clamped to token ids by the embedding
make_data d8.h5 200 8 3 61 0.6

cat >gpt.cfg <<EOF
run = { seed = 5; };
data = { train = "$TMP/d8.h5"; eval = "$TMP/d8.h5"; };
model = {
  input = [8];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 6; dim = 16; },
    { name = "h.0"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "h.1"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "ln_f"; type = "layernorm"; },
    { name = "pool"; type = "seq_pool"; mode = "mean"; },
    { name = "head"; type = "dense"; units = 3; }
  );
};
train = { batch_size = 32; optimizer = { type = "adamw"; lr = 0.01; }; };
log = { every = 5; progress = "plain"; };
EOF

ft pretrain 1 train gpt.cfg --set "run.dir=$TMP/pre" --set train.max_steps=4
expect_ok pretrain
PRE=$TMP/pre/model.h5

note "== BitFit, 2 ranks"
run=$TMP/bitfit
ft bitfit 2 train gpt.cfg --set "run.dir=$run" --set train.max_steps=6 \
    --set "pretrained.file=$PRE" --set freeze.bitfit=true
expect_ok bitfit
for p in wte/weight h.0/attn_qkv_weight h.1/mlp_fc_weight h.1/attn_out_weight; do
    h5_same "$PRE" "$run/model.h5" "/model/$p"
done
for p in h.0/attn_qkv_bias h.1/mlp_proj_bias h.0/ln1_weight ln_f/bias head/weight; do
    h5_differ "$PRE" "$run/model.h5" "/model/$p"
done
opt=$(h5ls -r "$run/$(ckpt 6)/optimizer")
grep -qE '^/(wte|h\.[01]/(attn_qkv|attn_out|mlp_fc|mlp_proj)_weight)' <<<"$opt" &&
    fail "frozen weights have optimizer state: $opt"
grep -q '^/h.0/attn_qkv_bias/exp_avg ' <<<"$opt" || fail "no state for h.0.attn_qkv_bias: $opt"

note "== LoRA on the blocks, the head trains too, 2 ranks"
run=$TMP/lora
ft lora 2 train gpt.cfg --set "run.dir=$run" --set train.max_steps=6 \
    --set "pretrained.file=$PRE" \
    --set 'lora={rank=2;alpha=4.0;layers=["h.*"];}' --set 'freeze.train_params=["head.*"]'
expect_ok lora
# an adapter file (t_lora_adapter.sh): the frozen base stays in $PRE, referenced
ls=$(h5ls -r "$run/model.h5/model")
for p in wte/weight wte/position h.0/attn_qkv_weight h.0/attn_qkv_bias h.1/mlp_proj_weight \
    h.0/ln1_weight ln_f/weight ln_f/bias; do
    grep -q "^/$p " <<<"$ls" && fail "frozen $p is stored in the adapter file"
done
h5_differ "$PRE" "$run/model.h5" /model/head/weight
h5ls "$run/model.h5/model/h.1" | grep -q '^mlp_proj_lora_B ' || fail "no adapter in the model"
# B starts at zero: a nonzero B shows the adapters trained
b=$(h5dump -d /model/h.0/attn_qkv_lora_B "$run/model.h5" | grep -c '[1-9]') || true
[ "$b" -gt 0 ] || fail "h.0.attn_qkv_lora_B is still zero"
opt=$(h5ls -r "$run/$(ckpt 6)/optimizer")
grep -q 'attn_qkv_weight\|ln1_' <<<"$opt" && fail "frozen base has optimizer state: $opt"
ft lora-eval 0 eval "$run/model.h5" --data "$TMP/d8.h5"
expect_ok lora-eval

note "== input errors"
ft bad-pattern 0 train gpt.cfg --set "run.dir=$TMP/bad" --set 'freeze.params=["h.0.nope*"]'
expect_fail bad-pattern 2 'freeze.params pattern "h.0.nope*" matches no parameter'
ft bad-target 0 train gpt.cfg --set "run.dir=$TMP/bad" \
    --set 'lora={rank=2;targets=["attn_qkv","mlp_fcc"];}'
expect_fail bad-target 2 'lora.targets names "mlp_fcc"'
ft bad-layers 0 train gpt.cfg --set "run.dir=$TMP/bad" --set 'lora={layers=["blk.*"];}'
expect_fail bad-layers 2 'lora.layers pattern "blk.*" matches no'
ft_done
