#!/usr/bin/env python3
"""Hypothesis/reference corpora for the BLEU and ROUGE parity tests
(tests/integration/t_textmetrics_parity.sh), made from real text: the SMS Spam
Collection when given, else the lines of tests/text/tricky.jsonl.

    make_corpus.py TEXTFILE OUTDIR

Writes OUTDIR/<name>.jsonl, one {"hyp": str, "refs": [str, ...]} per line:
  sms       references are messages; hypotheses are edited copies (words dropped,
            swapped, replaced, repeated, appended), some with 2-3 references, a
            few empty hypotheses
  short     1-3 word hypotheses: no 4-gram can match (NLTK's zero-precision path)
  nomatch   hypotheses sharing no word with their references (BLEU exactly 0)
  long      hypotheses longer than their references (brevity penalty 1)
  rouge     pairs for ROUGE: mixed case, punctuation, repeated words, numbers
The edits are drawn from random.Random(7); both implementations read the same files.
"""
import json
import os
import random
import sys


def load_lines(path):
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if path.endswith(".jsonl"):
                line = json.loads(line)
            elif "\t" in line:
                line = line.split("\t", 1)[1]
            # ftune splits words on ASCII whitespace, Python's str.split() also on
            # Unicode spaces (U+2028, NBSP, ...): make the corpus mean the same to both
            line = " ".join(line.split())
            if line:
                out.append(line)
    return out


def edit(words, vocab, rnd):
    w = list(words)
    for _ in range(rnd.randint(0, 3)):
        if not w:
            break
        op = rnd.random()
        i = rnd.randrange(len(w))
        if op < 0.3:
            del w[i]
        elif op < 0.5 and i + 1 < len(w):
            w[i], w[i + 1] = w[i + 1], w[i]
        elif op < 0.8:
            w[i] = rnd.choice(vocab)
        elif op < 0.9:
            w.insert(i, w[i])
        else:
            w.append(rnd.choice(vocab))
    return w


def main():
    src, outdir = sys.argv[1], sys.argv[2]
    lines = load_lines(src)
    rnd = random.Random(7)
    vocab = sorted({w for l in lines for w in l.split()})
    corp = {"sms": [], "short": [], "nomatch": [], "long": [], "rouge": []}
    picks = lines if len(lines) <= 1500 else rnd.sample(lines, 1500)
    for k, ref in enumerate(picks):
        words = ref.split()
        hyp = edit(words, vocab, rnd)
        refs = [ref]
        for _ in range(rnd.choice([0, 0, 1, 2])):
            refs.append(" ".join(edit(words, vocab, rnd)) or ref)
        if k % 97 == 5:
            hyp = []
        corp["sms"].append({"hyp": " ".join(hyp), "refs": refs})
        if k < 300:
            n = rnd.randint(1, 3)
            corp["short"].append({"hyp": " ".join(words[:n]), "refs": [ref]})
            corp["long"].append({"hyp": " ".join(words + edit(words, vocab, rnd) + words[:3]),
                                 "refs": [ref]})
            corp["nomatch"].append({"hyp": "zzq%d xxq%d" % (k, k), "refs": [ref]})
            # ROUGE: the edited hypothesis with case and punctuation changed
            h = " ".join(hyp) if hyp else ref
            if k % 3 == 0:
                h = h.upper()
            if k % 4 == 1:
                h = h.replace(" ", ", ", 2) + "!!"
            corp["rouge"].append({"hyp": h, "refs": [ref]})
    os.makedirs(outdir, exist_ok=True)
    for name, rows in corp.items():
        with open(os.path.join(outdir, name + ".jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
