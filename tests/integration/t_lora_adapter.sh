#!/usr/bin/env bash
# LoRA adapter files: with a lora group and pretrained.file, checkpoints and model.h5 store only
# what trains (adapters, a new head) and a reference to the base model (path + fingerprint of
# the frozen tensors); they are much smaller than the base. An interrupted and resumed LoRA run
# ends bit-identical to an uninterrupted one. `ftune eval` and `ftune inspect` load base +
# adapters; `ftune export --merge-lora` writes a plain model whose logits equal the adapter
# model's (1e-5) and which needs no base; a missing or changed base, --merge-lora on a plain
# model, a plain export of a LoRA file and an adapter file as pretrained.file exit 2.
# Usage (ctest): t_lora_adapter.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

make_data d8.h5 160 8 3 71 0.6

cat >gpt.cfg <<EOF2
run = { seed = 7; };
data = { train = "$TMP/d8.h5"; eval = "$TMP/d8.h5"; };
model = {
  input = [8];
  layers = (
    { name = "wte"; type = "embedding"; vocab = 6; dim = 32; },
    { name = "h.0"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "h.1"; type = "transformer_block"; heads = 2; causal = true; },
    { name = "ln_f"; type = "layernorm"; },
    { name = "pool"; type = "seq_pool"; mode = "mean"; },
    { name = "head"; type = "dense"; units = 3; }
  );
};
train = { epochs = 2; batch_size = 32; optimizer = { type = "adamw"; lr = 0.01; }; };
checkpoint = { every = 2; keep_last = 10; };
log = { every = 5; progress = "plain"; };
EOF2

ft pretrain 1 train gpt.cfg --set "run.dir=$TMP/pre" --set train.max_steps=3
expect_ok pretrain
mkdir -p base
cp "$TMP/pre/model.h5" base/base.h5
BASE=base/base.h5 # relative, as a user would give it

LORA=(--set "pretrained.file=$BASE" --set 'lora={rank=2;alpha=4.0;dropout=0.1;layers=["h.*"];}'
    --set 'freeze.train_params=["head.*"]')

note "== uninterrupted and interrupted + resumed LoRA runs"
ft full 2 train gpt.cfg --set "run.dir=$TMP/full" --set train.max_steps=8 "${LORA[@]}"
expect_ok full
ft part1 2 train gpt.cfg --set "run.dir=$TMP/part" --set train.max_steps=4 "${LORA[@]}"
expect_ok part1
ft part2 2 train gpt.cfg --set "run.dir=$TMP/part" --set train.max_steps=8 "${LORA[@]}" --resume
expect_ok part2
grep -qF "resuming from $TMP/part/$(ckpt 4) at step 4" "$TMP/part2.out" ||
    fail "[part2] did not resume from step 4"
# (not /train: best_step differs, as the interrupted run evaluated at its end, step 4)
for g in /model /optimizer; do
    h5_same "$TMP/full/$(ckpt 8)" "$TMP/part/$(ckpt 8)" $g
done
for a in step epoch epoch_pos samples_seen; do
    [ "$(h5dump -a "/train/$a" "$TMP/full/$(ckpt 8)" | grep -F '(0)')" = \
        "$(h5dump -a "/train/$a" "$TMP/part/$(ckpt 8)" | grep -F '(0)')" ] ||
        fail "/train $a differs between the uninterrupted and the resumed run"
done
h5dump -a /train/step "$TMP/part/$(ckpt 8)" | grep -qF '(0): 8' || fail "no step 8 in the resumed run"
h5_same "$TMP/full/model.h5" "$TMP/part/model.h5" /model

AD=$TMP/full/model.h5
note "== what an adapter file holds"
ls=$(h5ls -r "$AD/model")
grep -q '^/h.0/attn_qkv_lora_A ' <<<"$ls" || fail "no adapter in $AD: $ls"
grep -q '^/head/weight ' <<<"$ls" || fail "no head in $AD: $ls"
grep -qE '^/(wte/weight|h\.[01]/(attn_qkv|mlp_fc)_weight|h\.0/ln1_weight|ln_f/bias) ' <<<"$ls" &&
    fail "frozen base tensors stored in the adapter file: $ls"
for f in "$AD" "$TMP/full/best.h5" "$TMP/full/$(ckpt 8)"; do
    h5dump -a /lora_base "$f" | grep -qF "\"$BASE\"" || fail "$f has no lora_base = $BASE"
    h5dump -a /lora_base_resolved "$f" | grep -qF "\"$TMP/base/base.h5\"" ||
        fail "$f has no resolved base path"
done
bs=$(stat -c %s "$BASE")
as=$(stat -c %s "$AD")
cs=$(stat -c %s "$TMP/full/$(ckpt 8)")
note "sizes: base model $bs bytes, adapter model.h5 $as bytes, adapter checkpoint $cs bytes"
[ $((as * 3)) -lt "$bs" ] || fail "the adapter file ($as bytes) is not much smaller than the base ($bs)"

ft inspect 0 inspect "$AD"
expect_ok inspect
grep -qF "base model      $BASE ($TMP/base/base.h5)" "$TMP/inspect.out" ||
    fail "inspect does not show the base model"
grep -qF "base check      ok" "$TMP/inspect.out" || fail "inspect did not check the base"
ft inspect-json 0 inspect "$AD" --json
expect_ok inspect-json

note "== eval, merge, eval the merged model"
ft ev-ad 2 eval "$AD" --data "$TMP/d8.h5" --json --save-logits "$TMP/ad-logits.h5"
expect_ok ev-ad
ft merge 0 export "$AD" --merge-lora -o "$TMP/merged.h5"
expect_ok merge
grep -qF "(8 LoRA adapters merged into the base model)" "$TMP/merge.out" ||
    fail "merge output: $(cat "$TMP/merge.out")"
h5ls -r "$TMP/merged.h5/model" | grep -q lora && fail "merged.h5 still has lora tensors"
h5dump -A "$TMP/merged.h5" | grep -q 'lora_base' && fail "merged.h5 still references the base"
ft merged-cfg 0 inspect "$TMP/merged.h5" --config
expect_ok merged-cfg
grep -qE 'lora_(rank|alpha|dropout|targets)|^ *lora *[=:]' "$TMP/merged-cfg.out" && fail "merged.h5's config has lora settings"
h5_differ "$BASE" "$TMP/merged.h5" /model/h.0/attn_qkv_weight
h5_same "$BASE" "$TMP/merged.h5" /model/wte/weight

mv base base.away # the merged model needs no base
ft ev-merged 2 eval "$TMP/merged.h5" --data "$TMP/d8.h5" --json --save-logits "$TMP/m-logits.h5"
expect_ok ev-merged
logits() { h5dump -m '%.9g' -d /logits "$1" | sed -n '/DATA {/,/}/p'; }
logits "$TMP/ad-logits.h5" >ad.txt
logits "$TMP/m-logits.h5" >m.txt
python3 - ad.txt m.txt "$TMP/ev-ad.out" "$TMP/ev-merged.out" <<'PY' || fail "merged logits differ"
import json, re, sys
num = re.compile(r'-?\d+(?:\.\d+)?(?:e[-+]?\d+)?')
def vals(p):
    return [float(x) for line in open(p) for x in num.findall(line.split(':', 1)[-1])]
a, m = vals(sys.argv[1]), vals(sys.argv[2])
assert len(a) == len(m) and len(a) >= 160 * 3, (len(a), len(m))
d = max(abs(x - y) for x, y in zip(a, m))
la = json.load(open(sys.argv[3]))["loss"]; lm = json.load(open(sys.argv[4]))["loss"]
print(f"merged vs adapter model: max |logit diff| {d:.3g} over {len(a)} logits, loss {la} vs {lm}")
assert d <= 1e-5 and abs(la - lm) <= 1e-5, (d, la, lm)
PY

note "== a missing or changed base model"
ft ev-missing 0 eval "$AD" --data "$TMP/d8.h5"
expect_fail ev-missing 2 "$AD: its base model $BASE ($TMP/base/base.h5 when the adapters were saved) cannot be read"
ft in-missing 0 inspect "$AD"
expect_fail in-missing 2 "its base model $BASE"
ft resume-missing 0 train gpt.cfg --set "run.dir=$TMP/part" --set train.max_steps=10 \
    "${LORA[@]}" --resume "$TMP/part/$(ckpt 8)"
expect_fail resume-missing 2 "its base model $BASE"
mkdir -p base
cp "$TMP/pre/$(ckpt 2)" base/base.h5 # same layers, other values
ft ev-changed 0 eval "$AD" --data "$TMP/d8.h5"
expect_fail ev-changed 2 "$AD: its base model $TMP/base/base.h5 is not the one the adapters were trained on"
ft ex-changed 0 export "$AD" --merge-lora -o "$TMP/m2.h5"
expect_fail ex-changed 2 "is not the one the adapters were trained on"
[ -e "$TMP/m2.h5" ] && fail "a failed merge wrote $TMP/m2.h5"
rm -rf base && mv base.away base

note "== other input errors"
ft merge-plain 0 export "$BASE" --merge-lora -o "$TMP/x.h5"
expect_fail merge-plain 2 "$BASE has no LoRA adapters: --merge-lora needs a model trained with a lora group"
ft st-lora 0 export "$AD" -o "$TMP/x.safetensors"
expect_fail st-lora 2 "$AD has LoRA adapters and only references its base model: export it with --merge-lora"
ft st-merged 0 export "$AD" --merge-lora --format safetensors -o "$TMP/merged.safetensors"
expect_ok st-merged
ft pre-adapter 0 train gpt.cfg --set "run.dir=$TMP/x" --set "pretrained.file=$AD"
expect_fail pre-adapter 2 "$AD is a LoRA adapter file"
ft_done
