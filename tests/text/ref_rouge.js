#!/usr/bin/env node
// ROUGE-1/2/L F1 per pair with the npm package js-rouge (reference for ftune's ft_rouge_*):
//   ref_rouge.js CORPUS.jsonl   ->  one line per pair: "R1 R2 RL" (17 significant digits)
// Each line {"hyp": str, "refs": [str, ...]}; refs[0] is the reference. Words: Google
// rouge-score's default tokenization (lower-case, runs of [a-z0-9]), given to js-rouge as its
// tokenizer, and one sentence per summary (segmenter), so ROUGE-L is the plain LCS. js-rouge
// throws on whitespace-only text; such a pair is printed as "0 0 0", which is what ftune gives.
'use strict';
const fs = require('fs');
const rouge = require('js-rouge');

const tokenize = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim().split(' ').filter((w) => w);
const segmenter = (s) => [s];
const fmt = (x) => x.toPrecision(17);
const rows = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l).map(JSON.parse);
const out = rows.map(({ hyp, refs }) => {
    const ref = refs[0];
    if (!/\S/.test(hyp) || !/\S/.test(ref)) return '0 0 0';
    const r1 = rouge.n(hyp, ref, { n: 1, tokenizer: tokenize });
    const r2 = rouge.n(hyp, ref, { n: 2, tokenizer: tokenize });
    const rl = rouge.l(hyp, ref, { tokenizer: tokenize, segmenter });
    return [r1, r2, rl].map(fmt).join(' ');
});
process.stdout.write(out.join('\n') + '\n');
