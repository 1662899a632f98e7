#!/usr/bin/env bash
# `ftune import hf` (issue 7) on tiny GPT-2 and BERT checkpoints written here in plain Python
# (config.json + a hand-written model.safetensors): good ones import (and the generated config
# loads), and malformed ones (missing config.json, bad JSON, a missing or unsupported key, a
# missing tensor, a wrong shape, a wrong dtype, a NaN, a truncated file, blocks the config does
# not have, an unsupported model_type) exit with 2 and a message naming the file and the key or
# tensor, without crashing and without leaving an output file behind. The numbers themselves
# are checked against PyTorch in tests/parity/test_hf_import.py.
# Args: $1 = ftune binary, $2 = source dir, $3 = test build dir.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ft_init "$@"
[ "$HAVE_PY" = 1 ] || skip "python3 is needed to write the checkpoints"

cat >mk.py <<'EOF'
"""mk.py DIR gpt2|bert [--drop T] [--shape T=a,b] [--dtype T=I32] [--nan T] [--extra T]
   [--set KEY=JSON] [--del KEY] [--head] [--f16] [--truncate BYTES] [--bad-json] [--tied]
   --tied: lm_head.weight holds wte.weight's values (GPT2LMHeadModel's tie)"""
import json, random, struct, sys

out, kind, args = sys.argv[1], sys.argv[2], sys.argv[3:]
V, D, H, NB, P, C = 11, 8, 2, 2, 12, 3
r = random.Random(7)
T = {}
def add(name, *shape):
    T[name] = list(shape)
if kind == "gpt2":
    cfg = {"model_type": "gpt2", "vocab_size": V, "n_positions": P, "n_embd": D, "n_layer": NB,
           "n_head": H, "n_inner": None, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
           "architectures": ["GPT2LMHeadModel"]}
    pre = "transformer."
    add(pre + "wte.weight", V, D); add(pre + "wpe.weight", P, D)
    for b in range(NB):
        h = f"{pre}h.{b}."
        for n in ("ln_1", "ln_2"):
            add(h + n + ".weight", D); add(h + n + ".bias", D)
        add(h + "attn.c_attn.weight", D, 3 * D); add(h + "attn.c_attn.bias", 3 * D)
        add(h + "attn.c_proj.weight", D, D); add(h + "attn.c_proj.bias", D)
        add(h + "mlp.c_fc.weight", D, 4 * D); add(h + "mlp.c_fc.bias", 4 * D)
        add(h + "mlp.c_proj.weight", 4 * D, D); add(h + "mlp.c_proj.bias", D)
        add(h + "attn.bias", 1, 1, P, P)
    add(pre + "ln_f.weight", D); add(pre + "ln_f.bias", D)
    add("lm_head.weight", V, D)
    head = {"score.weight": [C, D]}
else:
    cfg = {"model_type": "bert", "vocab_size": V, "hidden_size": D, "num_hidden_layers": NB,
           "num_attention_heads": H, "intermediate_size": 4 * D, "hidden_act": "gelu",
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
           "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "position_embedding_type": "absolute", "architectures": ["BertModel"]}
    e = "embeddings."
    add(e + "word_embeddings.weight", V, D); add(e + "position_embeddings.weight", P, D)
    add(e + "token_type_embeddings.weight", 2, D)
    add(e + "LayerNorm.weight", D); add(e + "LayerNorm.bias", D)
    for b in range(NB):
        h = f"encoder.layer.{b}."
        for n in ("query", "key", "value"):
            add(h + f"attention.self.{n}.weight", D, D); add(h + f"attention.self.{n}.bias", D)
        add(h + "attention.output.dense.weight", D, D); add(h + "attention.output.dense.bias", D)
        add(h + "attention.output.LayerNorm.weight", D)
        add(h + "attention.output.LayerNorm.bias", D)
        add(h + "intermediate.dense.weight", 4 * D, D); add(h + "intermediate.dense.bias", 4 * D)
        add(h + "output.dense.weight", D, 4 * D); add(h + "output.dense.bias", D)
        add(h + "output.LayerNorm.weight", D); add(h + "output.LayerNorm.bias", D)
    add("pooler.dense.weight", D, D); add("pooler.dense.bias", D)
    head = {"classifier.weight": [C, D], "classifier.bias": [C]}
dtypes, nans, truncate, bad_json, f16, tied = {}, set(), 0, False, False, False
i = 0
while i < len(args):
    a = args[i]
    v = args[i + 1] if i + 1 < len(args) else ""
    i += 2
    if a == "--drop": del T[v]
    elif a == "--shape": k, s = v.split("="); T[k] = [int(x) for x in s.split(",")]
    elif a == "--dtype": k, s = v.split("="); dtypes[k] = s
    elif a == "--nan": nans.add(v)
    elif a == "--extra": T[v] = [D]
    elif a == "--set": k, s = v.split("=", 1); cfg[k] = json.loads(s)
    elif a == "--del": del cfg[v]
    elif a == "--truncate": truncate = int(v)
    elif a == "--head": T.update(head); i -= 1
    elif a == "--f16": f16 = True; i -= 1
    elif a == "--bad-json": bad_json = True; i -= 1
    elif a == "--tied": tied = True; i -= 1
    else: sys.exit("mk.py: unknown option " + a)
hdr, blobs, off, made = {"__metadata__": {"format": "pt"}}, [], 0, {}
for name, shape in T.items():
    n = 1
    for s in shape:
        n *= s
    dt = dtypes.get(name, "F16" if f16 else "F32")
    vals = [float("nan") if name in nans else r.uniform(-0.5, 0.5) for _ in range(n)]
    if name.endswith("attn.bias"):
        vals = [1.0] * n
    if tied and name == "lm_head.weight" and T[name] == T["transformer.wte.weight"]:
        vals = made["transformer.wte.weight"]
    made[name] = vals
    if dt == "F32": raw = struct.pack(f"<{n}f", *vals)
    elif dt == "F16": raw = struct.pack(f"<{n}e", *vals)
    elif dt == "I32": raw = struct.pack(f"<{n}i", *[int(100 * x) for x in vals])
    else: sys.exit("mk.py: dtype " + dt)
    hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
if truncate:
    data = data[:-truncate]
import os
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(data)
with open(os.path.join(out, "config.json"), "w") as f:
    f.write(json.dumps(cfg, indent=2)[:-3] if bad_json else json.dumps(cfg, indent=2))
EOF

mk() { python3 mk.py "$@" || die "mk.py $* failed"; }

# hostile NAME DIR [import options --] TEXT...: the import fails with exit 2, stderr holds every
# TEXT, nothing crashed and no output file is left behind.
hostile() {
    local name=$1 dir=$2
    shift 2
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        opts+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    ft "$name" 0 import hf "$dir" -o "out-$name.h5" --config-out "out-$name.cfg" "${opts[@]}"
    expect_fail "$name" 2 "ftune import hf: " "$@"
    if [ "$RC" -ge 128 ] || grep -qiE 'sanitizer|segmentation|core dumped' "$TMP/$name.err"; then
        fail "[$name] crashed (exit $RC)"
    fi
    [ -e "out-$name.h5" ] && fail "[$name] left out-$name.h5 behind"
    [ -e "out-$name.cfg" ] && fail "[$name] left out-$name.cfg behind"
    ls out-"$name".h5.tmp.* >/dev/null 2>&1 && fail "[$name] left a temporary file behind"
    return 0
}

# ---- good checkpoints -----------------------------------------------------------------------
mk gpt2 gpt2
ft gpt2 0 import hf gpt2 -o gpt2.h5 --classes 3 --seq-len 8 --config-out gpt2.cfg
expect_ok gpt2
grep -qF "3 classes (fresh head)" gpt2.out || fail "[gpt2] no fresh head in: $(cat gpt2.out)"
grep -qF "skipped 3 tensors the model does not use: transformer.h.*.attn.bias (2), lm_head.weight" \
    gpt2.out || fail "[gpt2] skipped line: $(cat gpt2.out)"
grep -qF 'name = "h.1"; type = "transformer_block"; heads = 2; mlp_ratio = 4; style = "pre_ln"; causal = true; activation = "gelu_tanh"; eps = 1e-05; dropout = 0.1;' \
    gpt2.cfg || fail "[gpt2] generated block: $(grep h.1 gpt2.cfg)"
grep -qF 'file = "gpt2.h5";' gpt2.cfg || fail "[gpt2] generated config lacks pretrained.file"
ft gpt2-inspect 0 inspect gpt2.h5
expect_ok gpt2-inspect
for l in wte drop h.0 h.1 ln_f pool score; do
    grep -qE "^ *$l " gpt2-inspect.out || grep -qF " $l " gpt2-inspect.out ||
        fail "[gpt2-inspect] no layer $l"
done

# the .safetensors path and an explicit --config work as the directory does
mkdir -p elsewhere
cp gpt2/config.json elsewhere/hf.json
ft gpt2-file 0 import hf gpt2/model.safetensors --config elsewhere/hf.json -o gpt2b.h5 \
    --classes 3 --seq-len 8
expect_ok gpt2-file
same() { grep -oE "[0-9]+ layers, [0-9]+ parameters, input \[[0-9]+\], [0-9]+ classes" "$1"; }
if [ -z "$(same gpt2.out)" ] || [ "$(same gpt2.out)" != "$(same gpt2-file.out)" ]; then
    fail "[gpt2-file] '$(same gpt2-file.out)' differs from '$(same gpt2.out)'"
fi

mk gpt2head gpt2 --head --f16
ft gpt2head 0 import hf gpt2head -o gpt2head.h5 --seq-len 8
expect_ok gpt2head
grep -qF "3 classes (head from the checkpoint)" gpt2head.out || fail "[gpt2head] $(cat gpt2head.out)"
ft gpt2head-new 0 import hf gpt2head -o gpt2new.h5 --seq-len 8 --new-head --classes 5
expect_ok gpt2head-new
grep -qF "5 classes (fresh head)" gpt2head-new.out || fail "[gpt2head-new] $(cat gpt2head-new.out)"
grep -qF "score.weight" gpt2head-new.out || fail "[gpt2head-new] the old head is not listed as skipped"

mk bert bert --head
ft bert 0 import hf bert -o bert.h5 --config-out bert.cfg
expect_ok bert
grep -qF "input [12], 3 classes (head from the checkpoint)" bert.out || fail "[bert] $(cat bert.out)"
grep -qF 'name = "embeddings.LayerNorm"; type = "layernorm"; eps = 1e-12;' bert.cfg ||
    fail "[bert] generated embedding layernorm"
grep -qF 'style = "post_ln"; causal = false; activation = "gelu"; eps = 1e-12; dropout = 0.1;' \
    bert.cfg || fail "[bert] generated block"
# The generated configs train as they are: a few steps on token ids from a CSV (T columns of
# ids below the vocabulary of 11, then a label of 3 classes), the features frozen.
tokens() {
    awk -v T="$1" 'BEGIN { s = 1; for (i = 0; i < 48; i++) { l = "";
        for (j = 0; j < T; j++) { s = (s * 48271) % 2147483647; l = l (s % 11) "," }
        print l (i % 3) } }' >"tok$1.csv"
    ft "tok$1" 0 data import-csv "tok$1.csv" -o "tok$1.h5"
    expect_ok "tok$1"
}
tokens 8
tokens 12
ft gpt2-train 0 train gpt2.cfg --set data.train=tok8.h5 --set run.dir=run-gpt2 \
    --set train.max_steps=3 --set train.batch_size=8 --set freeze.upto=h.1
expect_ok gpt2-train
[ -f run-gpt2/model.h5 ] || fail "[gpt2-train] no run-gpt2/model.h5"
ft bert-train 0 train bert.cfg --set data.train=tok12.h5 --set run.dir=run-bert \
    --set train.max_steps=3 --set train.batch_size=8
expect_ok bert-train
[ -f run-bert/model.h5 ] || fail "[bert-train] no run-bert/model.h5"

# --lm: GPT2LMHeadModel as a language model, lm_head tied to wte, train.task = "lm"
mk gpt2lm gpt2 --tied
ft gpt2lm 0 import hf gpt2lm -o gpt2lm.h5 --lm --seq-len 8 --config-out gpt2lm.cfg
expect_ok gpt2lm
grep -qF "language model: lm_head tied to wte, vocabulary 11 (the checkpoint's lm_head.weight equals wte.weight)" \
    gpt2lm.out || fail "[gpt2lm] $(cat gpt2lm.out)"
grep -qF "lm_head.weight" <(grep skipped gpt2lm.out) && fail "[gpt2lm] lm_head.weight listed as skipped"
grep -qF '{ name = "ln_f"; type = "layernorm"; eps = 1e-05; },' gpt2lm.cfg &&
    grep -qF '{ name = "lm_head"; type = "lm_head"; tie = "wte"; }' gpt2lm.cfg ||
    fail "[gpt2lm] generated head: $(grep -A1 ln_f gpt2lm.cfg)"
grep -qE 'seq_pool|"score"' gpt2lm.cfg && fail "[gpt2lm] pool or score in the LM config"
grep -qF 'task = "lm";' gpt2lm.cfg || fail "[gpt2lm] no train.task = \"lm\""
h5ls -r gpt2lm.h5 | grep -q '/model/lm_head/' && fail "[gpt2lm] lm_head stores a tensor of its own"
mk gpt2lm-nohead gpt2 --drop lm_head.weight
ft gpt2lm-nohead 0 import hf gpt2lm-nohead -o gpt2lm-nohead.h5 --lm --seq-len 8
expect_ok gpt2lm-nohead
grep -qF "(the checkpoint has no lm_head.weight)" gpt2lm-nohead.out ||
    fail "[gpt2lm-nohead] $(cat gpt2lm-nohead.out)"
ft gpt2lm-train 0 train gpt2lm.cfg --set data.train=tok8.h5 --set data.eval=tok8.h5 \
    --set run.dir=run-gpt2lm --set train.max_steps=3
expect_ok gpt2lm-train
grep -q perplexity "$TMP/gpt2lm-train.out" || fail "[gpt2lm-train] no LM evaluation (perplexity)"
[ -f run-gpt2lm/model.h5 ] || fail "[gpt2lm-train] no run-gpt2lm/model.h5"

# ---- malformed input: exit 2 naming the file and the key or tensor --------------------------
mkdir nocfg
cp gpt2/model.safetensors nocfg/
hostile no-config nocfg --classes 3 -- "nocfg/config.json: no such file" "--config FILE"
mkdir noweights
cp gpt2/config.json noweights/
hostile no-weights noweights --classes 3 -- "noweights: no model.safetensors"
hostile no-dir does-not-exist -- "does-not-exist: no such file or directory"

mk badjson gpt2 --bad-json
hostile bad-json badjson --classes 3 -- "badjson/config.json: JSON"
mk llama gpt2 --set 'model_type="llama"'
hostile model-type llama --classes 3 -- "llama/config.json" "key 'model_type' is \"llama\"" \
    "\"gpt2\" and \"bert\""
mk notype gpt2 --del model_type
hostile no-model-type notype --classes 3 -- "notype/config.json: key 'model_type' is missing"
mk noembd gpt2 --del n_embd
hostile no-key noembd --classes 3 -- "noembd/config.json: key 'n_embd' is missing"
mk strhead gpt2 --set 'n_head="2"'
hostile key-type strhead --classes 3 -- "strhead/config.json: key 'n_head' must be an integer" \
    '"2"'
mk baddiv gpt2 --set 'n_head=3'
hostile heads-divide baddiv --classes 3 -- "key 'n_head' = 3 does not divide n_embd = 8"
mk inv gpt2 --set 'scale_attn_by_inverse_layer_idx=true'
hostile inverse-idx inv --classes 3 -- "inv/config.json: key 'scale_attn_by_inverse_layer_idx'"
mk cross gpt2 --set 'add_cross_attention=true'
hostile cross-attn cross --classes 3 -- "cross/config.json: key 'add_cross_attention'"
mk act gpt2 --set 'activation_function="relu"'
hostile activation act --classes 3 -- "act/config.json: key 'activation_function' is \"relu\""
mk relpos bert --head --set 'position_embedding_type="relative_key"'
hostile rel-pos relpos -- "relpos/config.json: key 'position_embedding_type' is \"relative_key\"" \
    "absolute"

mk drop gpt2 --drop transformer.h.1.mlp.c_fc.bias
hostile missing-tensor drop --classes 3 -- "drop/model.safetensors: tensor 'transformer.h.1.mlp.c_fc.bias' is missing" \
    "layer 'h.1' parameter 'mlp_fc_bias'"
mk dropq bert --head --drop encoder.layer.0.attention.self.key.weight
hostile missing-key-weight dropq -- "tensor 'encoder.layer.0.attention.self.key.weight' is missing"
mk shape gpt2 --shape transformer.ln_f.weight=9
hostile wrong-shape shape --classes 3 -- "shape/model.safetensors: tensor 'transformer.ln_f.weight' has shape [9], expected [8]"
mk conv gpt2 --shape transformer.h.0.attn.c_attn.weight=24,8
hostile conv1d-not-transposed conv --classes 3 -- "tensor 'transformer.h.0.attn.c_attn.weight' has shape [24, 8], expected [8, 24]"
mk headshape bert --head --shape classifier.bias=4
hostile head-shape headshape -- "tensor 'classifier.bias' has shape [4], expected [3]"
mk i32 gpt2 --dtype transformer.wpe.weight=I32
hostile dtype i32 --classes 3 -- "tensor 'transformer.wpe.weight' has dtype I32" "F32, F16, BF16"
mk nan bert --head --nan pooler.dense.bias
hostile nan nan -- "tensor 'pooler.dense.bias' holds a NaN or infinite value"
mk trunc gpt2 --truncate 100
hostile truncated trunc --classes 3 -- "trunc/model.safetensors" "truncated"
mk extra gpt2 --extra transformer.h.2.ln_1.weight
hostile extra-block extra --classes 3 -- "tensor 'transformer.h.2.ln_1.weight' belongs to block 2" \
    "n_layer = 2"
mk wrongkind bert --head --set 'model_type="gpt2"' --set n_embd=8 --set n_layer=2 --set n_head=2 \
    --set n_positions=12
hostile not-gpt2 wrongkind --classes 3 -- "tensor 'wte.weight' (or 'transformer.wte.weight') is missing"

# options
hostile no-head gpt2 -- "gpt2/model.safetensors: the checkpoint has no classification head (tensor 'score.weight')" \
    "--classes K" "or --lm to import the language model"
hostile lm-untied gpt2 --lm -- "gpt2/model.safetensors: tensor 'lm_head.weight' differs from 'transformer.wte.weight'" \
    "an untied LM head, which ftune does not support"
mk lmshape gpt2 --shape lm_head.weight=12,8
hostile lm-shape lmshape --lm -- "lmshape/model.safetensors: tensor 'lm_head.weight' has shape [12, 8], expected [11, 8]"
mk lmnan gpt2 --nan lm_head.weight
hostile lm-nan lmnan --lm -- "tensor 'lm_head.weight' holds a NaN"
hostile lm-classes gpt2lm --lm --classes 3 -- "--lm imports the language model" "--classes"
hostile lm-bert bert --lm -- "--lm: bert/config.json is a BERT checkpoint" "GPT-2 language models only"
hostile classes-mismatch bert --classes 4 -- "head 'classifier.weight' has 3 classes, not --classes 4" \
    "--new-head"
hostile seq-len gpt2 --classes 3 --seq-len 13 -- "--seq-len 13 is longer than the model's position table (n_positions = 12"
hostile bad-classes gpt2 --classes zero -- "--classes needs an integer"
hostile bad-head-name gpt2 --classes 3 --head-name 'a"b' -- "--head-name 'a\"b'"

ft_done
