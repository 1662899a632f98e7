#!/usr/bin/env python3
"""Corpus BLEU-4 with NLTK (the reference for ftune's ft_bleu_*):

    nltk_bleu.py CORPUS.jsonl...

Each line {"hyp": str, "refs": [str, ...]}, words = str.split(). Prints per file
"NAME bleu BLEU bp BP" with 17 significant digits: nltk.translate.bleu_score.corpus_bleu
with its defaults (weights 0.25 x 4, no smoothing), the brevity penalty from its
brevity_penalty / closest_ref_length. Exit 77 when nltk is not importable."""
import json
import sys
import warnings

try:
    import nltk
    from nltk.translate.bleu_score import brevity_penalty, closest_ref_length, corpus_bleu
except ImportError:
    print("SKIP: python3-nltk not installed")
    sys.exit(77)

warnings.simplefilter("ignore")  # NLTK warns on zero n-gram precisions, as documented
for path in sys.argv[1:]:
    hyps, refs = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            hyps.append(row["hyp"].split())
            refs.append([r.split() for r in row["refs"]])
    bleu = corpus_bleu(refs, hyps)
    hl = sum(len(h) for h in hyps)
    rl = sum(closest_ref_length(r, len(h)) for r, h in zip(refs, hyps))
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    print("%s bleu %.17g bp %.17g nltk %s" % (name, float(bleu), float(brevity_penalty(rl, hl)),
                                             nltk.__version__))
