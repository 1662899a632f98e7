/* ftune generate MODEL --prompt TEXT --vocab VOCAB ...: text from a causal LM (single process;
 * docs/text.md "Generation"). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/adapter.h"
#include "ftune/config.h"
#include "ftune/freeze.h"
#include "ftune/generate.h"
#include "ftune/h5io.h"
#include "ftune/h5util.h"
#include "ftune/tokenizer.h"

#include "commands.h"
#include "gen_eval.h"

static const char generate_usage[] =
    "usage: ftune generate MODEL.h5 (--prompt TEXT | --data DATA.h5) --vocab VOCAB\n"
    "                      [--merges MERGES] [--limit N] [--batch N] [--show N] [--json F]\n"
    "                      [--vocab-map DATA.h5] [--max-new N] [--greedy | --top-k K]\n"
    "                      [--top-p P] [--temperature T] [--seed S] [--config CFG]\n"
    "                      [--stop-id ID | --no-stop] [--no-specials] [--cased] [--ids]\n"
    "\n"
    "Continues TEXT with a causal language model (embedding, causal transformer_block...,\n"
    "layernorm, lm_head; trained with train.task = \"lm\" or imported), one token at a time\n"
    "with a key/value cache, and prints the generated text (the prompt not repeated).\n"
    "\n"
    "  MODEL.h5          an ftune model or checkpoint; its stored config gives the layers\n"
    "  --prompt TEXT     the text to continue\n"
    "  --data DATA.h5    instead of one prompt: every row of an 'import-text --task\n"
    "                    generate --layout lm' file, continued after its prompt (source\n"
    "                    and separator) and scored against its target: corpus BLEU-4,\n"
    "                    ROUGE-1/2/L F1 and exact match (docs/text.md); the file's own\n"
    "                    vocab_map is used unless --vocab-map is given\n"
    "  --limit N         --data: the first N rows only\n"
    "  --batch N         --data: prompts decoded together (default 16)\n"
    "  --show N          --data: print the first N generated texts with their references\n"
    "  --json FILE       --data: also write the scores as JSON\n"
    "  --vocab FILE      the tokenizer the model's data was made with (as for\n"
    "                    'ftune data import-text'); --merges FILE for a GPT-2 vocabulary\n"
    "  --vocab-map H5    the model works on the compact ids of this import-text file\n"
    "                    (--vocab-limit): the prompt is mapped (unknown ids -> its UNK)\n"
    "                    and the generated ids are mapped back\n"
    "  --max-new N       generate at most N tokens (default 32); generation also ends at\n"
    "                    the stop id and when the model's position table is full\n"
    "  --greedy          the most probable token each time (the default)\n"
    "  --top-k K         sample among the K most probable tokens (0: all)\n"
    "  --top-p P         sample from the nucleus: the most probable tokens whose\n"
    "                    probability adds up to >= P, in (0, 1]\n"
    "  --temperature T   divide the logits by T > 0 before sampling (default 1)\n"
    "                    (--top-k, --top-p or --temperature select sampling)\n"
    "  --seed S          the sampling stream (default 0): the same seed, the same text\n"
    "  --config CFG      build the model from this config instead of the stored one\n"
    "  --stop-id ID      end at this model id instead of the default: GPT-2's\n"
    "                    <|endoftext|>, WordPiece's [SEP] (mapped with --vocab-map)\n"
    "  --no-stop         no stop id\n"
    "  --allow-unk       with a vocab map: let the model generate its UNK id (by default\n"
    "                    it never does: UNK stands for every rare token at once)\n"
    "  --no-specials     WordPiece: do not start the prompt with [CLS] (import-text rows do)\n"
    "  --cased           WordPiece: do not lower-case (as import-text --cased)\n"
    "  --ids             also print the generated ids (one line, after the text)\n"
    "\n"
    "How generation ended goes to stderr. Exit codes: 0 success, 2 a bad flag, a missing or\n"
    "malformed file, or a model that cannot generate (e.g. a non-causal block), 1 runtime.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ftune generate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'ftune generate --help')\n");
    return 2;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return 0;
    *out = (float)v;
    return 1;
}

typedef struct gen_args {
    const char *model, *prompt, *vocab, *merges, *mapfile, *config, *data, *json;
    long limit;
    int batch, show;
    ft_gen_opts o;
    long stop_id; /* -2: the tokenizer's default */
    int specials, cased, print_ids, allow_unk;
} gen_args;

/* Tokenizer id -> model id (compact with a map); -1 when the map does not keep it. */
static int32_t to_model_id(const ft_vocab_map *map, int32_t tok_id)
{
    if (!map || tok_id < 0)
        return tok_id;
    int32_t c = ft_vocab_map_id(map, tok_id);
    return map->ids[c] == tok_id ? c : -1;
}

static const char *end_text(int end)
{
    return end == FT_GEN_END_STOP      ? "the stop id"
           : end == FT_GEN_END_MAX_LEN ? "the end of the model's position table"
                                       : "--max-new";
}

/* Whether an HDF5 file has a "vocab_map" (import-text --vocab-limit / --vocab-map). */
static int data_has_map(const char *path)
{
    hid_t f = -1;
    ft_err e = {0};
    if (ft_h5_open_read(path, &f, &e))
        return 0; /* the data file's own error comes when it is opened */
    int has = H5Lexists(f, "vocab_map", H5P_DEFAULT) > 0;
    H5Fclose(f);
    return has;
}

static int run_generate(gen_args *a, ft_err *err)
{
    char *text = NULL, *out_text = NULL;
    ft_config cfg;
    ft_model m;
    ft_tokenizer *tok = NULL;
    ft_vocab_map map = {0};
    ft_ids ids = {0};
    int32_t *prompt = NULL, *out = NULL;
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    ft_tokenizer_opts to;
    ft_tokenizer_opts_init(&to);
    if (a->cased)
        to.lowercase = 0;

    int rc = a->config ? ft_config_load(&cfg, a->config, NULL, 0, err)
                       : ft_load_config_text(a->model, &text, err);
    if (rc == FT_OK && !a->config)
        rc = ft_config_load_string(&cfg, text, a->model, err);
    if (rc == FT_OK)
        rc = ft_config_build_model(&cfg, &m, err);
    if (rc == FT_OK) /* a plain model, or a LoRA adapter file with its base */
        rc = ft_load_model_file(&cfg, a->model, &m, NULL, NULL, err);
    int max_pos = 0;
    if (rc == FT_OK && ft_gen_check(&m, &max_pos, err) != FT_OK)
        rc = ft_err_prefix(err, "%s", a->model);
    if (rc == FT_OK)
        rc = ft_tokenizer_load(&tok, a->vocab, a->merges, &to, err);
    if (rc == FT_OK && !a->mapfile && a->data && data_has_map(a->data))
        a->mapfile = a->data; /* the model was trained on this file's compact ids */
    if (rc == FT_OK && a->mapfile)
        rc = ft_vocab_map_read(&map, a->mapfile, tok, err);
    const int V = rc == FT_OK ? m.layers[m.nlayers - 1].out.d[1] : 0;
    if (rc == FT_OK) { /* the model's ids must be ids of this vocabulary */
        const long nv = a->mapfile ? map.n : (long)ft_tokenizer_vocab_size(tok);
        if (a->mapfile && V != map.n)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: the model has %d output ids but the vocab_map of %s has %d "
                         "compact ids (was the model trained on that file's ids?)",
                         a->model, V, a->mapfile, (int)map.n);
        else if (V != nv) /* ids would be decoded as other tokens */
            rc = ft_fail(err, FT_EINPUT,
                         "%s: the model has %d output ids but the vocabulary %s has %ld (another "
                         "tokenizer, or a model trained on compact ids: give --vocab-map "
                         "DATA.h5)",
                         a->model, V, a->vocab, nv);
    }
    const int bpe = rc == FT_OK && ft_tokenizer_kind(tok) == FT_TOK_BPE;
    if (rc == FT_OK && a->mapfile && !a->allow_unk)
        a->o.ban_id = map.n - 1;
    if (rc == FT_OK && a->data) {
        int32_t s = ft_tokenizer_special(tok, bpe ? FT_TOK_EOS : FT_TOK_SEP);
        s = to_model_id(a->mapfile ? &map : NULL, s);
        if (a->stop_id != -2)
            s = (int32_t)a->stop_id;
        a->o.stop_id = s >= 0 && s < V ? s : -1;
        ft_gen_eval_args ea = {a->model, a->data, a->json, a->o, a->batch, a->limit, a->show};
        if (ft_gen_opts_check(&a->o, V, err) != FT_OK)
            rc = ft_err_prefix(err, "--stop-id");
        else
            rc = ft_gen_eval(&m, &ea, tok, a->mapfile ? &map : NULL, err);
        goto done;
    }
    if (rc == FT_OK)
        rc = ft_tokenizer_encode(tok, a->prompt, strlen(a->prompt), &ids, err);
    int np = 0;
    if (rc == FT_OK) {
        prompt = calloc(ids.n + 2, sizeof *prompt);
        out = calloc((size_t)a->o.max_new + 1, sizeof *out);
        if (!prompt || !out)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    if (rc == FT_OK) {
        /* import-text rows start with [CLS] for WordPiece; GPT-2 starts an empty prompt from
         * <|endoftext|>, its document boundary */
        int32_t head = bpe ? (ids.n == 0 ? ft_tokenizer_special(tok, FT_TOK_EOS) : -1)
                           : (a->specials ? ft_tokenizer_special(tok, FT_TOK_CLS) : -1);
        if (head >= 0)
            prompt[np++] = to_model_id(a->mapfile ? &map : NULL, head);
        for (size_t i = 0; i < ids.n; i++) {
            int32_t id = a->mapfile ? ft_vocab_map_id(&map, ids.v[i]) : ids.v[i];
            prompt[np++] = id;
        }
        if (np > 0 && prompt[0] < 0)
            rc = ft_fail(err, FT_EINPUT, "--vocab-map %s lacks the prompt's start token",
                         a->mapfile);
    }
    if (rc == FT_OK && np == 0)
        rc = ft_fail(err, FT_EINPUT, "--prompt: the text gives no tokens to start from");
    if (rc == FT_OK) {
        if (a->stop_id == -2) {
            int32_t s = ft_tokenizer_special(tok, bpe ? FT_TOK_EOS : FT_TOK_SEP);
            s = to_model_id(a->mapfile ? &map : NULL, s);
            a->o.stop_id = s >= 0 && s < V ? s : -1;
        } else {
            a->o.stop_id = (int32_t)a->stop_id;
        }
        if (ft_gen_opts_check(&a->o, V, err) != FT_OK)
            rc = ft_err_prefix(err, "--stop-id");
    }
    int n = 0, end = 0;
    if (rc == FT_OK && ft_generate(&m, prompt, np, &a->o, out, &n, &end, err) != FT_OK)
        rc = ft_err_prefix(err, "%s", a->model);
    if (rc == FT_OK)
        rc = a->mapfile ? ft_vocab_map_decode(tok, &map, out, (size_t)n, &out_text, NULL, err)
                        : ft_tokenizer_decode(tok, out, (size_t)n, &out_text, NULL, err);
    if (rc == FT_OK) {
        printf("%s\n", out_text);
        if (a->print_ids) {
            printf("ids:");
            for (int i = 0; i < n; i++)
                printf(" %d", (int)out[i]);
            printf("\n");
        }
        fflush(stdout);
        fprintf(stderr, "ftune generate: %d prompt tokens, %d generated, ended at %s\n", np, n,
                end_text(end));
    }
done:
    free(out_text);
    free(prompt);
    free(out);
    ft_ids_free(&ids);
    ft_vocab_map_free(&map);
    ft_tokenizer_free(tok);
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(text);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    gen_args a;
    memset(&a, 0, sizeof a);
    ft_gen_opts_init(&a.o);
    a.stop_id = -2;
    a.specials = 1;
    a.batch = 16;
    int greedy = 0, sampling = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        int missing = 0;
        long x = 0;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(generate_usage, stdout);
            return 0;
        }
        if (!strcmp(arg, "--greedy")) {
            greedy = 1;
        } else if (!strcmp(arg, "--allow-unk")) {
            a.allow_unk = 1;
        } else if (!strcmp(arg, "--no-stop")) {
            a.stop_id = -1;
        } else if (!strcmp(arg, "--no-specials")) {
            a.specials = 0;
        } else if (!strcmp(arg, "--cased")) {
            a.cased = 1;
        } else if (!strcmp(arg, "--ids")) {
            a.print_ids = 1;
        } else if (ft_opt_value(argc, argv, &i, "--prompt", &v, &missing)) {
            a.prompt = v;
        } else if (ft_opt_value(argc, argv, &i, "--data", &v, &missing)) {
            a.data = v;
        } else if (ft_opt_value(argc, argv, &i, "--json", &v, &missing)) {
            a.json = v;
        } else if (ft_opt_value(argc, argv, &i, "--limit", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 1, LONG_MAX, &x))
                return usage_error("--limit '%s': expected an integer >= 1", v);
            a.limit = x;
        } else if (ft_opt_value(argc, argv, &i, "--batch", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 1, 4096, &x))
                return usage_error("--batch '%s': expected an integer from 1 to 4096", v);
            a.batch = (int)x;
        } else if (ft_opt_value(argc, argv, &i, "--show", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 0, INT_MAX, &x))
                return usage_error("--show '%s': expected an integer >= 0", v);
            a.show = (int)x;
        } else if (ft_opt_value(argc, argv, &i, "--vocab", &v, &missing)) {
            a.vocab = v;
        } else if (ft_opt_value(argc, argv, &i, "--merges", &v, &missing)) {
            a.merges = v;
        } else if (ft_opt_value(argc, argv, &i, "--vocab-map", &v, &missing)) {
            a.mapfile = v;
        } else if (ft_opt_value(argc, argv, &i, "--config", &v, &missing)) {
            a.config = v;
        } else if (ft_opt_value(argc, argv, &i, "--max-new", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 0, 1L << 24, &x))
                return usage_error("--max-new '%s': expected an integer from 0 to 2^24", v);
            a.o.max_new = (int)x;
        } else if (ft_opt_value(argc, argv, &i, "--top-k", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 0, INT_MAX, &x))
                return usage_error("--top-k '%s': expected an integer >= 0 (0: all tokens)", v);
            a.o.top_k = (int)x;
            sampling = 1;
        } else if (ft_opt_value(argc, argv, &i, "--top-p", &v, &missing)) {
            if (!missing &&
                (!parse_float(v, &a.o.top_p) || !(a.o.top_p > 0.0f) || a.o.top_p > 1.0f))
                return usage_error("--top-p '%s': expected a number in (0, 1]", v);
            sampling = 1;
        } else if (ft_opt_value(argc, argv, &i, "--temperature", &v, &missing)) {
            if (!missing && (!parse_float(v, &a.o.temperature) || !(a.o.temperature > 0.0f)))
                return usage_error("--temperature '%s': expected a number > 0", v);
            sampling = 1;
        } else if (ft_opt_value(argc, argv, &i, "--seed", &v, &missing)) {
            char *end;
            errno = 0;
            unsigned long long s = missing ? 0 : strtoull(v, &end, 10);
            if (!missing && (!*v || *end || errno || v[0] == '-'))
                return usage_error("--seed '%s': expected an integer >= 0", v);
            a.o.seed = (uint64_t)s;
        } else if (ft_opt_value(argc, argv, &i, "--stop-id", &v, &missing)) {
            if (!missing && !ft_parse_long(v, 0, INT_MAX, &x))
                return usage_error("--stop-id '%s': expected a token id >= 0", v);
            a.stop_id = x;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error("unknown option '%s'", arg);
        } else if (!a.model) {
            a.model = arg;
        } else {
            return usage_error("unexpected argument '%s'", arg);
        }
        if (missing)
            return usage_error("option '%s' needs a value", arg);
    }
    if (greedy && sampling)
        return usage_error("%s", "--greedy excludes --top-k, --top-p and --temperature");
    a.o.greedy = !sampling;
    if (!a.model)
        return usage_error("%s", "MODEL.h5 is missing");
    if (!a.prompt == !a.data)
        return usage_error("%s", a.prompt ? "--prompt and --data exclude each other"
                                          : "--prompt TEXT or --data DATA.h5 is missing");
    if (!a.data && (a.json || a.limit || a.show))
        return usage_error("%s", "--json, --limit and --show go with --data");
    if (!a.vocab)
        return usage_error("%s", "--vocab FILE is missing");
    ft_err err = {0};
    int rc = run_generate(&a, &err);
    if (rc)
        fprintf(stderr, "ftune generate: %s\n", err.msg);
    return rc == FT_OK ? 0 : rc == FT_EINPUT ? 2 : 1;
}
