/* ftune import hf DIR -o OUT.h5 ... (single process; src/hf_import.c does the work). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5io.h"
#include "ftune/hf.h"

#include "commands.h"

static void hf_usage(FILE *f)
{
    fputs("usage: ftune import hf DIR -o OUT.h5 [--config-out OUT.cfg] [--classes K]\n"
          "                       [--new-head] [--head-name NAME] [--seq-len T] [--seed S]\n"
          "                       [--config CONFIG.json]\n"
          "       ftune import hf DIR -o OUT.h5 --lm [--config-out OUT.cfg] [--seq-len T] ...\n"
          "\n"
          "Turns a Hugging Face GPT-2 or BERT checkpoint into an ftune model: the base model\n"
          "plus a sequence classification head, or with --lm a GPT-2 language model.\n"
          "\n"
          "  DIR                a checkpoint directory with config.json and model.safetensors\n"
          "                     (F32, F16 or BF16), or the .safetensors file itself\n"
          "  -o OUT.h5          the ftune model file to write\n"
          "  --config FILE      the Hugging Face config.json (default: the one next to the\n"
          "                     weights)\n"
          "  --config-out FILE  also write the generated ftune config (with comments and\n"
          "                     pretrained.file = OUT.h5), ready to edit and train with\n"
          "  --classes K        classes of the head: a fresh head when the checkpoint has\n"
          "                     none (GPT2Model, GPT2LMHeadModel, BertModel); must match the\n"
          "                     checkpoint's head otherwise\n"
          "  --new-head         ignore the checkpoint's head; start a fresh one of K classes\n"
          "  --lm               GPT-2 only: end in an lm_head tied to wte (not pool + score)\n"
          "                     and generate train.task = \"lm\"; the checkpoint's\n"
          "                     lm_head.weight, if any, must equal wte.weight\n"
          "  --head-name NAME   the head's tensor prefix and ftune layer name (default:\n"
          "                     score for GPT-2, classifier for BERT)\n"
          "  --seq-len T        tokens per row, model.input = [T]: the --max-len of your\n"
          "                     dataset (default 128, at most the position table)\n"
          "  --seed S           initialisation of a fresh head, and run.seed (default 42)\n"
          "\n"
          "model_type \"gpt2\" (GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification) and\n"
          "\"bert\" (BertModel, BertForSequenceClassification, BertForPreTraining) are supported.\n"
          "Tensors the model does not use (a tied lm_head, attention mask buffers,\n"
          "position_ids, pretraining heads) are listed, not loaded. See docs/text.md\n"
          "(\"Hugging Face checkpoints\").\n",
          f);
}

static int fail_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "ftune import hf: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

/* A positive integer option value in [1, max]. */
static int parse_count(const char *opt, const char *v, long max, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < 1 || x > max) {
        fprintf(stderr, "ftune import hf: %s needs an integer in [1, %ld], got '%s'\n", opt, max,
                v);
        return 2;
    }
    *out = x;
    return 0;
}

int cmd_import_hf(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *cfg_out = NULL, *config = NULL;
    ft_hf_opts o;
    ft_hf_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            hf_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && more) {
            out = argv[++i];
        } else if (!strcmp(a, "--config-out") && more) {
            cfg_out = argv[++i];
        } else if (!strcmp(a, "--config") && more) {
            config = argv[++i];
        } else if (!strcmp(a, "--head-name") && more) {
            o.head_name = argv[++i];
        } else if (!strcmp(a, "--new-head")) {
            o.new_head = 1;
        } else if (!strcmp(a, "--lm")) {
            o.lm = 1;
        } else if (!strcmp(a, "--classes") && more) {
            if (parse_count(a, argv[++i], FT_MAX_CLASSES, &v))
                return 2;
            o.classes = (int)v;
        } else if (!strcmp(a, "--seq-len") && more) {
            if (parse_count(a, argv[++i], 1L << 20, &v))
                return 2;
            o.seq_len = (int)v;
        } else if (!strcmp(a, "--seed") && more) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end || errno || argv[i][0] == '-')
                return fail_usage("--seed needs a non-negative integer, got", argv[i]);
            o.seed = (uint64_t)s;
        } else if (a[0] == '-') {
            fprintf(stderr, "ftune import hf: unknown or incomplete option '%s'\n\n", a);
            hf_usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            return fail_usage("unexpected argument", a);
        }
    }
    if (!in || !out) {
        fprintf(stderr, "ftune import hf: %s\n\n", !in ? "DIR is missing" : "-o OUT.h5 is missing");
        hf_usage(stderr);
        return 2;
    }
    if (strlen(out) >= FT_PATH_MAX || (cfg_out && strlen(cfg_out) >= FT_PATH_MAX))
        return fail_usage("output path too long:", strlen(out) >= FT_PATH_MAX ? out : cfg_out);

    ft_err err = {0};
    char cfg_path[FT_PATH_MAX], st_path[FT_PATH_MAX];
    int rc = ft_hf_locate(in, config, cfg_path, st_path, &err);
    ft_hf_result r;
    memset(&r, 0, sizeof r);
    if (!rc) {
        o.config_path = cfg_path;
        o.weights_path = st_path;
        o.model_path = out;
        rc = ft_hf_import(&o, &r, &err);
    }
    if (!rc)
        rc = ft_save(out, &r.model, r.cfg.text, NULL, NULL, &err);
    if (!rc && cfg_out)
        rc = ft_write_text_file(cfg_out, r.config_text, &err);
    if (rc) {
        fprintf(stderr, "ftune import hf: %s\n", err.msg);
        ft_hf_result_free(&r);
        return rc;
    }

    size_t params = 0;
    for (int i = 0; i < r.model.nlayers; i++)
        for (int j = 0; j < r.model.layers[i].nparams; j++)
            params += r.model.layers[i].params[j].count;
    printf("%s: Hugging Face %s%s%s%s -> %s: %d layers, %zu parameters, input [%d], ", st_path,
           r.model_type, r.prefix[0] ? " (prefix '" : "", r.prefix, r.prefix[0] ? "')" : "", out,
           r.model.nlayers, params, r.model.input.d[0]);
    if (r.lm)
        printf("language model: lm_head tied to wte, vocabulary %d (%s)\n",
               r.model.layers[r.model.nlayers - 1].out.d[1],
               r.lm_head_checked ? "the checkpoint's lm_head.weight equals wte.weight"
                                 : "the checkpoint has no lm_head.weight");
    else
        printf("%d classes (%s)\n", r.model.classes,
               r.fresh_head ? "fresh head" : "head from the checkpoint");
    if (r.nskipped)
        printf("skipped %d tensor%s the model does not use: %s\n", r.nskipped,
               r.nskipped == 1 ? "" : "s", r.skipped);
    for (const char *s = r.notes; s && *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        printf("note: %.*s\n", (int)len, s);
        s += len + (e ? 1 : 0);
    }
    if (cfg_out)
        printf("config: %s (edit the data paths, then: mpirun -np 2 ftune train %s)\n", cfg_out,
               cfg_out);
    else
        printf("config: stored in %s (ftune inspect %s --config); --config-out FILE writes an "
               "editable copy\n",
               out, out);
    ft_hf_result_free(&r);
    return 0;
}
