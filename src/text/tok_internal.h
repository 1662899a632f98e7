/* The tokenizer object, shared by tokenizer.c (loading), bpe.c and
 * wordpiece.c; internal to src/text. */
#ifndef FTUNE_TEXT_TOK_INTERNAL_H
#define FTUNE_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"
#include "ftune/tokenizer.h"

#include "strmap.h"
#include "unicode.h"

typedef struct {
    uint64_t key; /* left << 32 | right, + 1 so that 0 marks an empty slot */
    int32_t rank, merged;
} ft_bpe_merge;

typedef struct {
    char *text;
    size_t len;
    int32_t id;
} ft_added_token;

struct ft_tokenizer {
    int kind;
    char path[512];
    ft_strmap vocab;     /* token -> id */
    const char **id2tok; /* id -> token (into vocab.keys), NULL for gaps */
    size_t nids;         /* largest id + 1 */

    /* BPE */
    int32_t byte_id[256];   /* id of each byte's symbol */
    int16_t cp_byte[0x144]; /* symbol code point -> byte (-1: none), for decode */
    ft_bpe_merge *merges;
    size_t nmerge_slots, nmerges; /* slots: a power of two */
    int ws_onig;                  /* \s is Unicode White_Space (tokenizer.json) instead of JS's */
    int add_prefix_space;
    ft_strmap cache; /* chunk bytes -> index into cache_ids */
    int32_t *cache_ids;
    size_t cache_n, cache_cap;

    /* WordPiece */
    int lowercase, strip_accents, chinese_chars, max_word_chars;
    int clean_text;
    int32_t unk_id;
    char prefix[16]; /* continuing-subword prefix, "##" */

    /* tokenizer.json added tokens, longest first */
    ft_added_token *added;
    size_t nadded;
};

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} ft_buf;
int ft_buf_put(ft_buf *b, const void *s, size_t n);
int ft_buf_cp(ft_buf *b, uint32_t cp); /* UTF-8 */
int ft_ids_push(ft_ids *ids, int32_t id);

/* bpe.c */
int ft_bpe_add_merge(ft_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged);
int ft_bpe_init_bytes(ft_tokenizer *t, ft_err *err); /* byte_id / cp_byte from the vocab */
int ft_bpe_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err);
int ft_bpe_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, ft_buf *out, ft_err *err);
/* GPT-2's byte -> symbol code point map. */
uint32_t ft_bpe_byte_cp(int byte);

/* wordpiece.c */
int ft_wordpiece_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err);
int ft_npm_bert_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err);
int ft_wordpiece_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, ft_buf *out,
                        ft_err *err);

#endif
