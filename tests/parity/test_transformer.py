#!/usr/bin/env python3
"""Parity of ftune's sequence layers with a GPT-2 block and a BERT block written in plain
PyTorch (issue 7), and of a GPT-2 block with LoRA adapters on q/k/v, attn_out, mlp_fc and
mlp_proj (PEFT's math, y = x W^T + b + (alpha/r) (x A^T) B^T with a nonzero B): outputs, the
input gradient and the gradients of every adapter and base parameter.

The references follow Hugging Face's GPT2Block / GPT2ForSequenceClassification and
BertLayer / BertForSequenceClassification, with random weights under HF parameter names
(GPT-2's Conv1D weights are (in, out)). They are mapped to ftune's layers (embedding,
transformer_block with fused q/k/v, layernorm, seq_pool, dense, tanh) the way a checkpoint
importer would map them, run by tests/parity/transformer_harness through the public layer
table, and compared: outputs or logits, the input gradient of a block, and the gradient of
every parameter (mapped back to HF layout), each within relative error
max|ftune - torch| / max|torch| <= 1e-4. The torch reference is computed in float64 from the
same float32 inputs and parameters; padding is given by per-row lengths (HF's attention_mask
with the padding on the right).

Exit status: 0 all passed, 1 a mismatch, 77 torch (or h5py) not available.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_common import (Checker, Workdir, h5py, np, parse_args, run,  # noqa: E402
                           t64, torch)

import torch.nn.functional as F  # noqa: E402

TOL = 1e-4
NEG = torch.finfo(torch.float64).min


# ---- the references, HF-style -------------------------------------------------------------

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def key_mask(lengths, T):
    """HF's extended attention mask: 0 for real keys, a huge negative number for padding."""
    if lengths is None:
        return 0.0
    real = (torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]).to(torch.float64)
    return (1.0 - real)[:, None, None, :] * NEG


def split_heads(t, H):
    n, T, D = t.shape
    return t.view(n, T, H, D // H).permute(0, 2, 1, 3)


def merge_heads(t):
    n, H, T, hd = t.shape
    return t.permute(0, 2, 1, 3).reshape(n, T, H * hd)


def conv1d(t, P, name, lora_scale):
    """GPT-2's Conv1D, y = t W + b, plus a LoRA adapter where P has one (PEFT's layout and
    math: y += (alpha / r) (t A^T) B^T, A [r, in] and B [out, r], no dropout)."""
    y = t @ P[name + ".weight"] + P[name + ".bias"]
    if name + ".lora_A.weight" in P:
        y = y + lora_scale * ((t @ P[name + ".lora_A.weight"].T) @ P[name + ".lora_B.weight"].T)
    return y


def gpt2_block(x, P, pre, H, lengths, eps=1e-5, lora_scale=0.0):
    """transformers' GPT2Block (eval: no dropout); LoRA adapters where P has them."""
    n, T, D = x.shape
    h = F.layer_norm(x, (D,), P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], eps)
    qkv = conv1d(h, P, pre + "attn.c_attn", lora_scale)
    q, k, v = (split_heads(t, H) for t in qkv.split(D, dim=2))
    att = q @ k.transpose(-1, -2) / math.sqrt(D // H)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    att = torch.where(causal, att, torch.tensor(NEG, dtype=att.dtype))
    att = att + key_mask(lengths, T)
    a = merge_heads(torch.softmax(att, dim=-1) @ v)
    x = x + conv1d(a, P, pre + "attn.c_proj", lora_scale)
    h = F.layer_norm(x, (D,), P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], eps)
    m = gelu_new(conv1d(h, P, pre + "mlp.c_fc", lora_scale))
    return x + conv1d(m, P, pre + "mlp.c_proj", lora_scale)


def bert_layer(x, P, pre, H, lengths, eps=1e-12):
    """transformers' BertLayer (eval: no dropout), absolute positions."""
    n, T, D = x.shape

    def lin(t, name):
        return F.linear(t, P[pre + name + ".weight"], P[pre + name + ".bias"])

    q, k, v = (split_heads(lin(x, "attention.self." + s), H) for s in ("query", "key", "value"))
    att = q @ k.transpose(-1, -2) / math.sqrt(D // H) + key_mask(lengths, T)
    a = merge_heads(torch.softmax(att, dim=-1) @ v)
    h = F.layer_norm(lin(a, "attention.output.dense") + x, (D,),
                     P[pre + "attention.output.LayerNorm.weight"],
                     P[pre + "attention.output.LayerNorm.bias"], eps)
    m = lin(F.gelu(lin(h, "intermediate.dense")), "output.dense")
    return F.layer_norm(m + h, (D,), P[pre + "output.LayerNorm.weight"],
                        P[pre + "output.LayerNorm.bias"], eps)


def gpt2_hidden(ids, P, nblocks, H, lengths):
    """GPT2Model: wte + wpe, the blocks, ln_f -> [n, T, D]."""
    n, T = ids.shape
    x = P["wte.weight"][ids] + P["wpe.weight"][torch.arange(T)][None]
    for b in range(nblocks):
        x = gpt2_block(x, P, f"h.{b}.", H, lengths)
    return F.layer_norm(x, (x.shape[-1],), P["ln_f.weight"], P["ln_f.bias"], 1e-5)


def gpt2_classifier(ids, P, nblocks, H, lengths):
    """GPT2ForSequenceClassification: the last real token's hidden state, score without bias."""
    n, T = ids.shape
    x = gpt2_hidden(ids, P, nblocks, H, lengths)
    last = torch.as_tensor(lengths) - 1
    return x[torch.arange(n), last] @ P["score.weight"].T


def gpt2_lm_logits(ids, P, nblocks, H, lengths, head=None):
    """GPT2LMHeadModel: logits [n, T, V] at every position; lm_head (no bias) is tied to
    wte.weight unless another head weight is given."""
    return gpt2_hidden(ids, P, nblocks, H, lengths) @ (P["wte.weight"] if head is None
                                                        else head).T


def causal_lm_loss(logits, ids, lengths):
    """GPT2LMHeadModel's loss with labels = input_ids and the padding labelled -100: logits at
    t predict label t + 1, cross-entropy averaged over the labels that are not -100, i.e. the
    targets t + 1 < length (train.task = "lm", include/ftune/lmloss.h)."""
    n, T, V = logits.shape
    labels = ids.clone()
    labels[torch.arange(T)[None, :] >= torch.as_tensor(lengths)[:, None]] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


def bert_classifier(ids, P, nblocks, H, lengths):
    """BertForSequenceClassification: [CLS] through the pooler (dense + tanh), classifier."""
    n, T = ids.shape
    x = (P["embeddings.word_embeddings.weight"][ids]
         + P["embeddings.position_embeddings.weight"][torch.arange(T)][None]
         + P["embeddings.token_type_embeddings.weight"][0])
    x = F.layer_norm(x, (x.shape[-1],), P["embeddings.LayerNorm.weight"],
                     P["embeddings.LayerNorm.bias"], 1e-12)
    for b in range(nblocks):
        x = bert_layer(x, P, f"encoder.layer.{b}.", H, lengths)
    pooled = torch.tanh(F.linear(x[:, 0], P["pooler.dense.weight"], P["pooler.dense.bias"]))
    return F.linear(pooled, P["classifier.weight"], P["classifier.bias"])


# ---- HF names -> ftune layers ---------------------------------------------------------------
# Each mapping entry: (ftune param, HF name(s), to_ftune(list of arrays) -> array,
# grad_to_ftune(list of HF grads) -> array). The same functions map gradients.

def T_(a):
    return a[0].T


def ID(a):
    return a[0]


def CAT(a):
    return np.concatenate(a, axis=0)


def gpt2_block_map(pre):
    return [("ln1_weight", [pre + "ln_1.weight"], ID),
            ("ln1_bias", [pre + "ln_1.bias"], ID),
            ("attn_qkv_weight", [pre + "attn.c_attn.weight"], T_),
            ("attn_qkv_bias", [pre + "attn.c_attn.bias"], ID),
            ("attn_out_weight", [pre + "attn.c_proj.weight"], T_),
            ("attn_out_bias", [pre + "attn.c_proj.bias"], ID),
            ("ln2_weight", [pre + "ln_2.weight"], ID),
            ("ln2_bias", [pre + "ln_2.bias"], ID),
            ("mlp_fc_weight", [pre + "mlp.c_fc.weight"], T_),
            ("mlp_fc_bias", [pre + "mlp.c_fc.bias"], ID),
            ("mlp_proj_weight", [pre + "mlp.c_proj.weight"], T_),
            ("mlp_proj_bias", [pre + "mlp.c_proj.bias"], ID)]


LORA_SITES = (("attn_qkv", "attn.c_attn"), ("attn_out", "attn.c_proj"), ("mlp_fc", "mlp.c_fc"),
              ("mlp_proj", "mlp.c_proj"))


def gpt2_lora_map(pre):
    m = []
    for site, hf in LORA_SITES:
        m += [(site + "_lora_A", [f"{pre}{hf}.lora_A.weight"], ID),
              (site + "_lora_B", [f"{pre}{hf}.lora_B.weight"], ID)]
    return m


def gpt2_lora_params(rng, pre, D, F_, r):
    """Adapters with a nonzero B (a fresh B is zero: the adapter would not show)."""
    N = rng.standard_normal
    dims = {"attn.c_attn": (D, 3 * D), "attn.c_proj": (D, D), "mlp.c_fc": (D, F_),
            "mlp.c_proj": (F_, D)}
    P = {}
    for _, hf in LORA_SITES:
        fin, fout = dims[hf]
        P[f"{pre}{hf}.lora_A.weight"] = N((r, fin)) / math.sqrt(fin)
        P[f"{pre}{hf}.lora_B.weight"] = 0.3 * N((fout, r))
    return P


def bert_block_map(pre):
    s = pre + "attention.self."
    return [("ln1_weight", [pre + "attention.output.LayerNorm.weight"], ID),
            ("ln1_bias", [pre + "attention.output.LayerNorm.bias"], ID),
            ("attn_qkv_weight", [s + "query.weight", s + "key.weight", s + "value.weight"], CAT),
            ("attn_qkv_bias", [s + "query.bias", s + "key.bias", s + "value.bias"], CAT),
            ("attn_out_weight", [pre + "attention.output.dense.weight"], ID),
            ("attn_out_bias", [pre + "attention.output.dense.bias"], ID),
            ("ln2_weight", [pre + "output.LayerNorm.weight"], ID),
            ("ln2_bias", [pre + "output.LayerNorm.bias"], ID),
            ("mlp_fc_weight", [pre + "intermediate.dense.weight"], ID),
            ("mlp_fc_bias", [pre + "intermediate.dense.bias"], ID),
            ("mlp_proj_weight", [pre + "output.dense.weight"], ID),
            ("mlp_proj_bias", [pre + "output.dense.bias"], ID)]


def gpt2_block_params(rng, pre, D, F_):
    N = rng.standard_normal
    return {pre + "ln_1.weight": 1 + 0.1 * N(D), pre + "ln_1.bias": 0.1 * N(D),
            pre + "attn.c_attn.weight": 0.2 * N((D, 3 * D)), pre + "attn.c_attn.bias": 0.1 * N(3 * D),
            pre + "attn.c_proj.weight": 0.2 * N((D, D)), pre + "attn.c_proj.bias": 0.1 * N(D),
            pre + "ln_2.weight": 1 + 0.1 * N(D), pre + "ln_2.bias": 0.1 * N(D),
            pre + "mlp.c_fc.weight": 0.2 * N((D, F_)), pre + "mlp.c_fc.bias": 0.1 * N(F_),
            pre + "mlp.c_proj.weight": 0.1 * N((F_, D)), pre + "mlp.c_proj.bias": 0.1 * N(D)}


def bert_block_params(rng, pre, D, F_):
    N = rng.standard_normal
    P = {}
    for s in ("query", "key", "value"):
        P[f"{pre}attention.self.{s}.weight"] = 0.2 * N((D, D))
        P[f"{pre}attention.self.{s}.bias"] = 0.1 * N(D)
    P.update({pre + "attention.output.dense.weight": 0.2 * N((D, D)),
              pre + "attention.output.dense.bias": 0.1 * N(D),
              pre + "attention.output.LayerNorm.weight": 1 + 0.1 * N(D),
              pre + "attention.output.LayerNorm.bias": 0.1 * N(D),
              pre + "intermediate.dense.weight": 0.2 * N((F_, D)),
              pre + "intermediate.dense.bias": 0.1 * N(F_),
              pre + "output.dense.weight": 0.1 * N((D, F_)),
              pre + "output.dense.bias": 0.1 * N(D),
              pre + "output.LayerNorm.weight": 1 + 0.1 * N(D),
              pre + "output.LayerNorm.bias": 0.1 * N(D)})
    return P


class Layer:
    def __init__(self, kind, name, kv=None, mapping=()):
        self.kind, self.name, self.kv, self.mapping = kind, name, kv or {}, list(mapping)


class Case:
    """A chain of ftune layers, the HF parameters it is built from, and the torch reference
    fn(x, P) -> output."""

    def __init__(self, name, layers, P, x, ref, lengths=None, x_is_ids=False):
        self.name, self.layers, self.ref, self.x_is_ids = name, layers, ref, x_is_ids
        self.P = {k: np.asarray(v, dtype=np.float32) for k, v in P.items()}
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int32)


def block_kv(style, H, causal, eps, act):
    return {"heads": H, "mlp_ratio": 4, "style": style, "causal": int(causal), "eps": eps,
            "activation": act}


def make_cases(rng):
    cases = []
    n, T, D, H, V, C = 3, 10, 32, 4, 61, 3
    F_ = 4 * D
    lengths = [10, 6, 1]

    # single blocks on random activations: y, dx and every parameter gradient
    P = gpt2_block_params(rng, "h.0.", D, F_)
    gkv = block_kv("pre_ln", H, True, 1e-5, "gelu_tanh")
    for lens, tag in ((lengths, "padded"), (None, "full")):
        cases.append(Case(f"gpt2_block_{tag}",
                          [Layer("transformer_block", "h.0", gkv, gpt2_block_map("h.0."))], P,
                          rng.standard_normal((n, T, D)),
                          lambda x, P, lens=lens: gpt2_block(x, P, "h.0.", H, lens), lens))
    # the same block with LoRA on q/k/v, attn_out, mlp_fc and mlp_proj (rank 4, alpha 8)
    r, alpha = 4, 8.0
    PL = dict(P, **gpt2_lora_params(rng, "h.0.", D, F_, r))
    lkv = dict(gkv, lora_rank=r, lora_alpha=alpha,
               lora_targets=",".join(site for site, _ in LORA_SITES))
    for lens, tag in ((lengths, "padded"), (None, "full")):
        cases.append(Case(f"gpt2_block_lora_{tag}",
                          [Layer("transformer_block", "h.0", lkv,
                                 gpt2_block_map("h.0.") + gpt2_lora_map("h.0."))], PL,
                          rng.standard_normal((n, T, D)),
                          lambda x, P, lens=lens: gpt2_block(x, P, "h.0.", H, lens,
                                                             lora_scale=alpha / r), lens))
    P = bert_block_params(rng, "encoder.layer.0.", D, F_)
    bkv = block_kv("post_ln", H, False, 1e-12, "gelu")
    for lens, tag in ((lengths, "padded"), (None, "full")):
        cases.append(Case(f"bert_block_{tag}",
                          [Layer("transformer_block", "encoder.layer.0", bkv,
                                 bert_block_map("encoder.layer.0."))], P,
                          rng.standard_normal((n, T, D)),
                          lambda x, P, lens=lens: bert_layer(x, P, "encoder.layer.0.", H, lens),
                          lens))

    # GPT-2 classifier: wte/wpe -> 2 blocks -> ln_f -> last real token -> score (no bias)
    N = rng.standard_normal
    P = {"wte.weight": 0.5 * N((V, D)), "wpe.weight": 0.3 * N((T + 6, D)),
         "ln_f.weight": 1 + 0.1 * N(D), "ln_f.bias": 0.1 * N(D), "score.weight": 0.3 * N((C, D))}
    layers = [Layer("embedding", "wte", {"vocab": V, "dim": D, "max_len": T + 6},
                    [("weight", ["wte.weight"], ID), ("position", ["wpe.weight"], ID)])]
    for b in range(2):
        P.update(gpt2_block_params(rng, f"h.{b}.", D, F_))
        layers.append(Layer("transformer_block", f"h.{b}", gkv, gpt2_block_map(f"h.{b}.")))
    layers += [Layer("layernorm", "ln_f", {"eps": 1e-5},
                     [("weight", ["ln_f.weight"], ID), ("bias", ["ln_f.bias"], ID)]),
               Layer("seq_pool", "pool", {"mode": "last"}),
               Layer("dense", "score", {"units": C, "bias": 0},
                     [("weight", ["score.weight"], ID)])]
    ids = rng.integers(0, V, size=(n, T))
    cases.append(Case("gpt2_classifier", layers, P, ids,
                      lambda x, P: gpt2_classifier(x, P, 2, H, lengths), lengths, x_is_ids=True))

    # BERT classifier: embeddings (+ token type 0) -> LayerNorm -> 2 layers -> pooler -> classifier
    P = {"embeddings.word_embeddings.weight": 0.5 * N((V, D)),
         "embeddings.position_embeddings.weight": 0.3 * N((T + 2, D)),
         "embeddings.token_type_embeddings.weight": 0.3 * N((2, D)),
         "embeddings.LayerNorm.weight": 1 + 0.1 * N(D), "embeddings.LayerNorm.bias": 0.1 * N(D),
         "pooler.dense.weight": 0.2 * N((D, D)), "pooler.dense.bias": 0.1 * N(D),
         "classifier.weight": 0.3 * N((C, D)), "classifier.bias": 0.1 * N(C)}
    layers = [Layer("embedding", "embeddings",
                    {"vocab": V, "dim": D, "max_len": T + 2, "segments": 2},
                    [("weight", ["embeddings.word_embeddings.weight"], ID),
                     ("position", ["embeddings.position_embeddings.weight"], ID),
                     ("segment", ["embeddings.token_type_embeddings.weight"], ID)]),
              Layer("layernorm", "embeddings.LayerNorm", {"eps": 1e-12},
                    [("weight", ["embeddings.LayerNorm.weight"], ID),
                     ("bias", ["embeddings.LayerNorm.bias"], ID)])]
    for b in range(2):
        pre = f"encoder.layer.{b}"
        P.update(bert_block_params(rng, pre + ".", D, F_))
        layers.append(Layer("transformer_block", pre, bkv, bert_block_map(pre + ".")))
    layers += [Layer("seq_pool", "pool", {"mode": "first"}),
               Layer("dense", "pooler.dense", {"units": D},
                     [("weight", ["pooler.dense.weight"], ID),
                      ("bias", ["pooler.dense.bias"], ID)]),
               Layer("tanh", "pooler.act"),
               Layer("dense", "classifier", {"units": C},
                     [("weight", ["classifier.weight"], ID), ("bias", ["classifier.bias"], ID)])]
    ids = rng.integers(0, V, size=(n, T))
    cases.append(Case("bert_classifier", layers, P, ids,
                      lambda x, P: bert_classifier(x, P, 2, H, lengths), lengths, x_is_ids=True))

    # mixed: a causal post-LN block with the tanh GELU, then mean pooling over real tokens
    P = bert_block_params(rng, "b.", D, F_)

    def mean_ref(x, P):
        y = x
        # the same block as bert_layer but causal and with gelu_new: built from gpt2 pieces
        n_, T_, D_ = x.shape

        def lin(t, name):
            return F.linear(t, P["b." + name + ".weight"], P["b." + name + ".bias"])

        q, k, v = (split_heads(lin(y, "attention.self." + s), H)
                   for s in ("query", "key", "value"))
        att = q @ k.transpose(-1, -2) / math.sqrt(D_ // H)
        att = torch.where(torch.tril(torch.ones(T_, T_, dtype=torch.bool)), att,
                          torch.tensor(NEG, dtype=att.dtype)) + key_mask(lengths, T_)
        a = merge_heads(torch.softmax(att, dim=-1) @ v)
        h = F.layer_norm(lin(a, "attention.output.dense") + y, (D_,),
                         P["b.attention.output.LayerNorm.weight"],
                         P["b.attention.output.LayerNorm.bias"], 1e-5)
        m = lin(gelu_new(lin(h, "intermediate.dense")), "output.dense")
        y = F.layer_norm(m + h, (D_,), P["b.output.LayerNorm.weight"],
                         P["b.output.LayerNorm.bias"], 1e-5)
        real = (torch.arange(T_)[None, :] < torch.as_tensor(lengths)[:, None]).to(y.dtype)
        return (y * real[:, :, None]).sum(1) / real.sum(1, keepdim=True)

    cases.append(Case("causal_post_ln_mean_pool",
                      [Layer("transformer_block", "b",
                             block_kv("post_ln", H, True, 1e-5, "gelu_tanh"), bert_block_map("b.")),
                       Layer("seq_pool", "pool", {"mode": "mean"})],
                      P, rng.standard_normal((n, T, D)), mean_ref, lengths))
    return cases


# ---- running and checking -------------------------------------------------------------------

def ftune_param(P, hf_names, fn):
    return np.ascontiguousarray(fn([P[k] for k in hf_names]), dtype=np.float32)


def write_cases(path, cases, rng):
    with h5py.File(path, "w") as f:
        for c in cases:
            g = f.create_group(c.name)
            g.attrs["nlayers"] = np.int64(len(c.layers))
            g.attrs["training"] = np.int64(1)
            g["x"] = c.x
            if c.lengths is not None:
                g["lengths"] = c.lengths
            out = torch.no_grad()(c.ref)(t64(c.x).long() if c.x_is_ids else t64(c.x),
                                         {k: t64(v) for k, v in c.P.items()})
            c.dy = rng.standard_normal(tuple(out.shape)).astype(np.float32)
            g["dy"] = c.dy
            for i, L in enumerate(c.layers):
                lg = g.create_group(f"layers/{i}")
                lg.attrs["kind"] = L.kind
                lg.attrs["name"] = L.name
                kv = lg.create_group("kv")
                for k, v in L.kv.items():
                    kv.attrs[k] = v if isinstance(v, str) else (
                        np.float64(v) if isinstance(v, float) else np.int64(v))
                pg = lg.create_group("params")
                for pname, hf, fn in L.mapping:
                    pg[pname] = ftune_param(c.P, hf, fn)


def check_case(chk, c, r):
    P = {k: t64(v).requires_grad_(True) for k, v in c.P.items()}
    x = t64(c.x)
    if c.x_is_ids:
        x = x.long()
    else:
        x.requires_grad_(True)
    y = c.ref(x, P)
    y.backward(t64(c.dy))
    what = "logits" if c.x_is_ids else "y"
    chk.check(f"{c.name} {what}", r["y"][()], y.detach().numpy(), TOL, group=f"{what}")
    if not c.x_is_ids:
        chk.check(f"{c.name} dx", r["dx"][()], x.grad.numpy(), TOL, group="dx")
    else:
        chk.expect(f"{c.name} dx of token ids is zero", not np.any(r["dx"][()]))
    seen = set()
    for L in c.layers:
        for pname, hf, fn in L.mapping:
            ref = fn([P[k].grad.numpy() for k in hf])
            chk.check(f"{c.name} {L.name}.{pname} grad", r["grads"][L.name][pname][()], ref, TOL,
                      group="grad " + L.kind)
            seen.update(hf)
    chk.expect(f"{c.name}: every HF parameter mapped", seen == set(c.P),
               f"unmapped: {sorted(set(c.P) - seen)}")


def main():
    args = parse_args(__doc__)
    if not args.harness or not os.access(args.harness, os.X_OK):
        print(f"--harness {args.harness!r} is not an executable")
        return 1
    rng = np.random.default_rng(20250707)
    cases = make_cases(rng)
    chk = Checker(args.verbose)
    with Workdir(args, "parity-transformer-") as wd:
        cases_h5 = os.path.join(wd, "cases.h5")
        results_h5 = os.path.join(wd, "results.h5")
        write_cases(cases_h5, cases, rng)
        run([args.harness, cases_h5, results_h5])
        with h5py.File(results_h5, "r") as res:
            for c in cases:
                check_case(chk, c, res[c.name])
        print(f"{len(cases)} cases: {', '.join(c.name for c in cases)}")
        rc = chk.summary("parity.transformer")
        if rc:
            raise SystemExit(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
