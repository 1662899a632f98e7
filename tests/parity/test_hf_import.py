#!/usr/bin/env python3
"""Parity of `ftune import hf` with Hugging Face's GPT-2 and BERT sequence classifiers.

Tiny checkpoints are written as Hugging Face saves them (config.json + model.safetensors, the
safetensors file written by hand: 8-byte little-endian header length, JSON header, raw
little-endian data), with random weights under HF names and the buffers real checkpoints carry
(GPT-2's attn.bias / masked_bias, BERT's position_ids, a tied lm_head, BERT's pretraining heads):

  gpt2_seqcls    GPT2ForSequenceClassification (transformer. prefix), F32, head in the file
  bert_seqcls    BertForSequenceClassification (bert. prefix), F32, head in the file
  gpt2_lm_f16    GPT2LMHeadModel, F16 with BF16 ln_f / wpe, --classes 3: a fresh head
  bert_pretrain  BertForPreTraining (cls.predictions.* skipped), --classes 2: a fresh head
  gpt2_lm        GPT2LMHeadModel, F32, lm_head.weight = wte.weight, --lm: the whole causal LM
                 (lm_head tied to wte), trained with train.task = "lm"'s loss

Each is imported with `ftune import hf`; tests/parity/transformer_harness runs the model file on
padded token ids (per-row lengths, as HF's attention_mask with right padding) and gives the
logits and every parameter gradient, which are compared with the PyTorch references of
tests/parity/test_transformer.py (HF's code in float64) within 1e-4 relative. The classifiers
back-propagate a random dy from the logits. For gpt2_lm the harness computes ftune's LM loss
(ft_lm_loss: position t predicts token t + 1 for t + 1 < length, the mean over the targets) and
back-propagates its gradient; the reference is GPT2LMHeadModel's loss with labels = input_ids and
the padding labelled -100, and the loss, the logits at every position and every gradient are
compared (wte's gradient holds the tied head's part, checked to be far from negligible). A fresh
head has no reference value, so it is read back from the model file (checked to be ftune's dense
initialisation) and given to the reference.

Exit status: 0 all passed, 1 a mismatch, 77 torch (or h5py) not available.
"""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_common import Checker, Workdir, h5py, np, parse_args, run, t64  # noqa: E402
from parity_common import rel_err  # noqa: E402
from test_transformer import (ID, bert_block_map, bert_block_params,  # noqa: E402
                              bert_classifier, causal_lm_loss, gpt2_block_map,
                              gpt2_block_params, gpt2_classifier, gpt2_lm_logits)

TOL = 1e-4
N, T, D, H, V, NB = 3, 10, 32, 4, 61, 2
LENGTHS = [10, 6, 1]


# ---- safetensors, by hand -------------------------------------------------------------------

def bf16_bits(a):
    """float32 -> bfloat16 bit patterns, rounded to nearest even (as torch does)."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def encode(a, dtype):
    """(bytes, the float32 values the file holds) for a tensor stored as dtype."""
    if dtype == "F32":
        v = np.asarray(a, dtype="<f4")
        return v.tobytes(), v.astype(np.float32)
    if dtype == "F16":
        v = np.asarray(a, dtype="<f2")
        return v.tobytes(), v.astype(np.float32)
    if dtype == "BF16":
        b = bf16_bits(a)
        return b.astype("<u2").tobytes(), from_bf16_bits(b)
    if dtype == "I64":
        return np.asarray(a, dtype="<i8").tobytes(), None
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: name -> (array, dtype). Returns name -> the float32 values stored."""
    header, blobs, stored, off = {"__metadata__": {"format": "pt"}}, [], {}, 0
    for name, (a, dtype) in tensors.items():
        raw, vals = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(a)),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
        if vals is not None:
            stored[name] = vals.reshape(np.shape(a))
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return stored


# ---- checkpoints ----------------------------------------------------------------------------

def gpt2_params(rng, C):
    Nr = rng.standard_normal
    P = {"wte.weight": 0.5 * Nr((V, D)), "wpe.weight": 0.3 * Nr((T + 6, D)),
         "ln_f.weight": 1 + 0.1 * Nr(D), "ln_f.bias": 0.1 * Nr(D)}
    for b in range(NB):
        P.update(gpt2_block_params(rng, f"h.{b}.", D, 4 * D))
    if C:
        P["score.weight"] = 0.3 * Nr((C, D))
    return P


def bert_params(rng, C):
    Nr = rng.standard_normal
    P = {"embeddings.word_embeddings.weight": 0.5 * Nr((V, D)),
         "embeddings.position_embeddings.weight": 0.3 * Nr((T + 2, D)),
         "embeddings.token_type_embeddings.weight": 0.3 * Nr((2, D)),
         "embeddings.LayerNorm.weight": 1 + 0.1 * Nr(D),
         "embeddings.LayerNorm.bias": 0.1 * Nr(D),
         "pooler.dense.weight": 0.2 * Nr((D, D)), "pooler.dense.bias": 0.1 * Nr(D)}
    for b in range(NB):
        P.update(bert_block_params(rng, f"encoder.layer.{b}.", D, 4 * D))
    if C:
        P["classifier.weight"] = 0.3 * Nr((C, D))
        P["classifier.bias"] = 0.1 * Nr(C)
    return P


def gpt2_config():
    return {"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2",
            "vocab_size": V, "n_positions": T + 6, "n_embd": D, "n_layer": NB, "n_head": H,
            "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "summary_first_dropout": 0.1,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False, "bos_token_id": 0, "eos_token_id": 0,
            "pad_token_id": 0, "torch_dtype": "float32", "transformers_version": "4.40.0"}


def bert_config():
    return {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
            "vocab_size": V, "hidden_size": D, "num_hidden_layers": NB,
            "num_attention_heads": H, "intermediate_size": 4 * D, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "max_position_embeddings": T + 2, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
            "use_cache": True, "classifier_dropout": None, "transformers_version": "4.40.0"}


def gpt2_layers(head, lm=False):
    """(ftune layer, param, HF names, HF -> ftune) for every parameter of the imported model
    (lm: no head parameter, lm_head is tied to wte's weight)."""
    m = [("wte", "weight", ["wte.weight"], ID), ("wte", "position", ["wpe.weight"], ID)]
    for b in range(NB):
        m += [(f"h.{b}", p, hf, fn) for p, hf, fn in gpt2_block_map(f"h.{b}.")]
    m += [("ln_f", "weight", ["ln_f.weight"], ID), ("ln_f", "bias", ["ln_f.bias"], ID)]
    if not lm:
        m.append((head, "weight", ["score.weight"], ID))
    return m


def bert_layers(head):
    e = "embeddings."
    m = [("embeddings", "weight", [e + "word_embeddings.weight"], ID),
         ("embeddings", "position", [e + "position_embeddings.weight"], ID),
         ("embeddings", "segment", [e + "token_type_embeddings.weight"], ID),
         ("embeddings.LayerNorm", "weight", [e + "LayerNorm.weight"], ID),
         ("embeddings.LayerNorm", "bias", [e + "LayerNorm.bias"], ID)]
    for b in range(NB):
        pre = f"encoder.layer.{b}"
        m += [(pre, p, hf, fn) for p, hf, fn in bert_block_map(pre + ".")]
    m += [("pooler.dense", "weight", ["pooler.dense.weight"], ID),
          ("pooler.dense", "bias", ["pooler.dense.bias"], ID),
          (head, "weight", ["classifier.weight"], ID), (head, "bias", ["classifier.bias"], ID)]
    return m


class Case:
    def __init__(self, name, kind, C, P, tensors, config, args, skipped, fresh, lm=False):
        self.name, self.kind, self.C, self.P = name, kind, C, P
        self.tensors, self.config, self.args = tensors, config, args
        self.skipped, self.fresh, self.lm = skipped, fresh, lm


def make_cases(rng):
    cases = []
    causal = np.tril(np.ones((T + 6, T + 6), dtype=np.float32))[None, None]

    # GPT2ForSequenceClassification, F32, old-style mask buffers
    P = gpt2_params(rng, 3)
    t = {("transformer." + k if not k.startswith("score.") else k): (v, "F32")
         for k, v in P.items()}
    for b in range(NB):
        t[f"transformer.h.{b}.attn.bias"] = (causal, "F32")
        t[f"transformer.h.{b}.attn.masked_bias"] = (np.float32(-1e4), "F32")
    cases.append(Case("gpt2_seqcls", "gpt2", 3, P, t, gpt2_config(), [],
                      ["transformer.h.*.attn.bias (2)", "transformer.h.*.attn.masked_bias (2)"],
                      False))

    # BertForSequenceClassification, F32, position_ids buffer
    P = bert_params(rng, 4)
    t = {("bert." + k if not k.startswith("classifier.") else k): (v, "F32")
         for k, v in P.items()}
    t["bert.embeddings.position_ids"] = (np.arange(T + 2, dtype=np.int64)[None], "I64")
    cases.append(Case("bert_seqcls", "bert", 4, P, t, bert_config(), [],
                      ["bert.embeddings.position_ids"], False))

    # GPT2LMHeadModel in F16 (ln_f and wpe BF16), tied lm_head, no classification head
    P = gpt2_params(rng, 0)
    t = {"transformer." + k: (v, "BF16" if k.startswith(("ln_f.", "wpe.")) else "F16")
         for k, v in P.items()}
    t["lm_head.weight"] = (P["wte.weight"], "F16")
    cfg = gpt2_config()
    cfg["architectures"] = ["GPT2LMHeadModel"]
    cfg["torch_dtype"] = "float16"
    cases.append(Case("gpt2_lm_f16", "gpt2", 3, P, t, cfg, ["--classes", "3"],
                      ["lm_head.weight"], True))

    # BertForPreTraining: pretraining heads skipped, --classes 2 gives a fresh classifier
    P = bert_params(rng, 0)
    t = {"bert." + k: (v, "F32") for k, v in P.items()}
    Nr = rng.standard_normal
    for k, shape in (("cls.predictions.bias", (V,)),
                     ("cls.predictions.transform.dense.weight", (D, D)),
                     ("cls.predictions.transform.dense.bias", (D,)),
                     ("cls.predictions.transform.LayerNorm.weight", (D,)),
                     ("cls.predictions.transform.LayerNorm.bias", (D,)),
                     ("cls.seq_relationship.weight", (2, D)), ("cls.seq_relationship.bias", (2,))):
        t[k] = (Nr(shape), "F32")
    cfg = bert_config()
    cfg["architectures"] = ["BertForPreTraining"]
    cases.append(Case("bert_pretrain", "bert", 2, P, t, cfg, ["--classes", "2", "--seed", "7"],
                      ["cls.predictions.bias", "cls.seq_relationship.weight"], True))

    # GPT2LMHeadModel imported as a language model (--lm): lm_head.weight is wte.weight's copy
    # (as a tied checkpoint stores it), checked and not loaded; mask buffers skipped
    P = gpt2_params(rng, 0)
    t = {"transformer." + k: (v, "F32") for k, v in P.items()}
    t["lm_head.weight"] = (P["wte.weight"], "F32")
    for b in range(NB):
        t[f"transformer.h.{b}.attn.bias"] = (causal, "F32")
    cfg = gpt2_config()
    cfg["architectures"] = ["GPT2LMHeadModel"]
    cases.append(Case("gpt2_lm", "gpt2", 0, P, t, cfg, ["--lm"],
                      ["transformer.h.*.attn.bias (2)"], False, lm=True))
    return cases


# ---- running and checking -------------------------------------------------------------------

def prepare(c, wd, ftune, chk):
    d = os.path.join(wd, c.name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c.config, f, indent=2)
    stored = write_safetensors(os.path.join(d, "model.safetensors"), c.tensors)
    # the reference uses what the file holds (F16 / BF16 rounding included), under GPT2Model /
    # BertModel names
    strip = "transformer." if c.kind == "gpt2" else "bert."
    c.P = {k: stored[(strip + k) if (strip + k) in stored else k] for k in c.P}
    c.model = os.path.join(d, "model.h5")
    cfg_out = os.path.join(d, "ft.cfg")
    out = run([ftune, "import", "hf", d, "-o", c.model, "--seq-len", str(T),
               "--config-out", cfg_out] + c.args)
    if c.lm:
        head = "lm_head"
        chk.expect(f"{c.name}: imported as a tied LM",
                   "language model: lm_head tied to wte, vocabulary %d (the checkpoint's "
                   "lm_head.weight equals wte.weight)" % V in out, out)
        chk.expect(f"{c.name}: lm_head.weight is not skipped", "lm_head.weight" not in
                   "".join(l for l in out.splitlines() if l.startswith("skipped")), out)
        with open(cfg_out) as f:
            text = f.read()
        chk.expect(f"{c.name}: the config trains an LM", 'task = "lm";' in text and
                   '{ name = "lm_head"; type = "lm_head"; tie = "wte"; }' in text, text)
    else:
        head = "score" if c.kind == "gpt2" else "classifier"
        chk.expect(f"{c.name}: {'fresh head' if c.fresh else 'head from the checkpoint'}",
                   ("fresh head" if c.fresh else "head from the checkpoint") in out, out)
    for s in c.skipped:
        chk.expect(f"{c.name}: skipped lists {s}", s in out, out)
    chk.expect(f"{c.name}: --config-out written", os.path.exists(cfg_out))
    if c.fresh:
        with h5py.File(c.model, "r") as f:
            g = f[f"model/{head}"]
            w = g["weight"][()]
            chk.expect(f"{c.name}: fresh head shape [{c.C}, {D}]", w.shape == (c.C, D),
                       str(w.shape))
            chk.expect(f"{c.name}: fresh head initialised (not zero)", np.abs(w).max() > 0)
            # ftune's dense init, as nn.Linear's: U(-1/sqrt(D), 1/sqrt(D)), std bound/sqrt(3)
            bound = 1 / np.sqrt(D)
            chk.expect(f"{c.name}: fresh head within U(+-1/sqrt(D)) with its spread",
                       np.abs(w).max() <= bound and
                       abs(np.std(w) / (bound / np.sqrt(3)) - 1) < 0.25, str(np.std(w)))
            c.P[f"{head}.weight"] = w
            if c.kind == "bert":
                c.P[f"{head}.bias"] = g["bias"][()]
    return head


def reference(c, ids, P):
    if c.lm:
        return gpt2_lm_logits(ids, P, NB, H, LENGTHS)
    if c.kind == "gpt2":
        return gpt2_classifier(ids, P, NB, H, LENGTHS)
    return bert_classifier(ids, P, NB, H, LENGTHS)


def main():
    args = parse_args(__doc__)
    for what, path in (("--ftune", args.ftune), ("--harness", args.harness)):
        if not path or not os.access(path, os.X_OK):
            print(f"{what} {path!r} is not an executable")
            return 1
    rng = np.random.default_rng(20250708)
    cases = make_cases(rng)
    chk = Checker(args.verbose)
    with Workdir(args, "parity-hf-import-") as wd:
        heads = {c.name: prepare(c, wd, args.ftune, chk) for c in cases}
        cases_h5 = os.path.join(wd, "cases.h5")
        results_h5 = os.path.join(wd, "results.h5")
        with h5py.File(cases_h5, "w") as f:
            for c in cases:
                g = f.create_group(c.name)
                g.attrs["model"] = c.model
                g.attrs["training"] = np.int64(1)  # dropout rates are 0 in these configs
                c.ids = rng.integers(0, V, size=(N, T))
                g["x"] = c.ids.astype(np.float32)
                g["lengths"] = np.asarray(LENGTHS, dtype=np.int32)
                if c.lm:
                    g.attrs["loss"] = "lm"
                else:
                    c.dy = rng.standard_normal((N, c.C)).astype(np.float32)
                    g["dy"] = c.dy
        run([args.harness, cases_h5, results_h5])
        with h5py.File(results_h5, "r") as res:
            for c in cases:
                r = res[c.name]
                P = {k: t64(v).requires_grad_(True) for k, v in c.P.items()}
                ids = torch_long(c.ids)
                y = reference(c, ids, P)
                if c.lm:
                    loss = causal_lm_loss(y, ids, LENGTHS)
                    loss.backward()
                    chk.check(f"{c.name} loss", np.float64(r.attrs["loss"]), loss.item(), TOL,
                              group="lm loss")
                    targets = sum(max(n - 1, 0) for n in LENGTHS)
                    chk.expect(f"{c.name}: {targets} targets", r.attrs["targets"] == targets,
                               str(r.attrs["targets"]))
                    chk.expect(f"{c.name}: lm_head has no gradient of its own",
                               len(r["grads"]["lm_head"]) == 0, str(list(r["grads"]["lm_head"])))
                    check_head_share(chk, c, ids, P)
                else:
                    y.backward(t64(c.dy))
                chk.check(f"{c.name} logits", r["y"][()], y.detach().numpy(), TOL, group="logits")
                head = heads[c.name]
                mapping = (gpt2_layers(head, c.lm) if c.kind == "gpt2" else bert_layers(head))
                seen = set()
                for layer, pname, hf, fn in mapping:
                    hf = [h.replace("score.", head + ".").replace("classifier.", head + ".")
                          for h in hf]
                    ref = fn([P[k].grad.numpy() for k in hf])
                    chk.check(f"{c.name} {layer}.{pname} grad", r["grads"][layer][pname][()], ref,
                              TOL, group="grad " + c.kind)
                    seen.update(hf)
                chk.expect(f"{c.name}: every HF parameter compared", seen == set(c.P),
                           f"not compared: {sorted(set(c.P) - seen)}")
        print(f"{len(cases)} checkpoints: {', '.join(c.name for c in cases)}")
        rc = chk.summary("parity.hf_import")
        if rc:
            raise SystemExit(rc)
    return 0


def check_head_share(chk, c, ids, P):
    """The tied head's part of wte's gradient must matter: without it (the head's weight
    detached), wte's gradient is far from the full one, so comparing the full gradient within
    TOL tests that ftune's lm_head adds into the embedding's gradient."""
    Q = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
    y = gpt2_lm_logits(ids, Q, NB, H, LENGTHS, head=Q["wte.weight"].detach())
    causal_lm_loss(y, ids, LENGTHS).backward()
    err = rel_err(Q["wte.weight"].grad.numpy(), P["wte.weight"].grad.numpy())
    chk.expect(f"{c.name}: the tied head's share of the wte gradient is not negligible "
               f"(without it: relative difference {err:.3g})", err > 100 * TOL)


def torch_long(ids):
    return t64(ids).long()


if __name__ == "__main__":
    sys.exit(main())
