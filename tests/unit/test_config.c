/* Config loading: values and defaults, the exact wording of every kind of
 * error, --set overrides, the canonical text and the shipped configs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"

#include "testutil.h"

static int counter;

/* Writes text to a fresh file in the test's temporary directory. */
static const char *write_cfg(const char *name, const char *text)
{
    static char path[16][512];
    char *p = path[counter++ % 16];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

/* A small valid config; tests splice their own groups in. */
#define DATA "data = { train = \"d/train.h5\"; eval = \"d/test.h5\"; };\n"
#define MODEL                                                                                      \
    "model = {\n"                                                                                  \
    "  input = [4];\n"                                                                             \
    "  layers = (\n"                                                                               \
    "    { name = \"fc1\"; type = \"dense\"; units = 8; },\n"                                      \
    "    { name = \"act\"; type = \"relu\"; },\n"                                                  \
    "    { name = \"fc2\"; type = \"dense\"; units = 3; bias = false; }\n"                         \
    "  );\n"                                                                                       \
    "};\n"

/* Loads text (written as `name`) and expects an FT_EINPUT error containing
 * each of the given fragments. */
static void expect_error(const char *name, const char *text, const char *const *sets, int nsets,
                         const char *frag1, const char *frag2)
{
    const char *path = write_cfg(name, text);
    ft_config c;
    ft_err err = {0};
    int rc = ft_config_load(&c, path, sets, nsets, &err);
    if (!CHECK(rc == FT_EINPUT && err.code == FT_EINPUT))
        fprintf(stderr, "  %s: rc %d, message \"%s\"\n", name, rc, err.msg);
    char want[600];
    if (frag1) {
        /* "FILE" in a fragment stands for the config's path */
        const char *at = strstr(frag1, "FILE");
        if (at)
            snprintf(want, sizeof want, "%.*s%s%s", (int)(at - frag1), frag1, path, at + 4);
        else
            snprintf(want, sizeof want, "%s", frag1);
        CHECK_STR_CONTAINS(err.msg, want);
    }
    if (frag2)
        CHECK_STR_CONTAINS(err.msg, frag2);
    CHECK(c.layers == NULL && c.text == NULL); /* nothing leaks out of a failed load */
}

static int load_ok(ft_config *c, const char *name, const char *text, const char *const *sets,
                   int nsets)
{
    ft_err err = {0};
    int rc = ft_config_load(c, write_cfg(name, text), sets, nsets, &err);
    if (!CHECK(rc == FT_OK))
        fprintf(stderr, "  %s: %s\n", name, err.msg);
    return rc;
}

static int kinds_present(void)
{
    const char *need[] = {"dense", "relu", "conv2d", "maxpool2d", "flatten"};
    int ok = 1;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!ft_layer_kind(need[i])) {
            fprintf(stderr, "test_config: layer kind '%s' is not linked in (src/layers/)\n",
                    need[i]);
            ok = 0;
        }
    }
    return CHECK(ok);
}

/* Two configs describe the same run. */
static void check_same(const ft_config *a, const ft_config *b)
{
    CHECK(strcmp(a->run_dir, b->run_dir) == 0);
    CHECK(a->seed == b->seed && a->threads == b->threads);
    CHECK(strcmp(a->train_path, b->train_path) == 0 && strcmp(a->eval_path, b->eval_path) == 0);
    CHECK(a->shuffle == b->shuffle);
    CHECK(ft_shape_equal(&a->input, &b->input));
    CHECK(a->nlayers == b->nlayers);
    for (int i = 0; i < a->nlayers && i < b->nlayers; i++) {
        const ft_layer_spec *x = &a->layers[i], *y = &b->layers[i];
        CHECK(strcmp(x->name, y->name) == 0 && strcmp(x->kind, y->kind) == 0);
        CHECK(x->frozen == y->frozen && x->lr_mult == y->lr_mult);
        CHECK(x->kv.n == y->kv.n);
        for (int k = 0; k < x->kv.n && k < y->kv.n; k++) {
            const ft_kv *p = &x->kv.items[k], *q = ft_kv_find(&y->kv, p->key);
            if (!CHECK(q != NULL))
                continue;
            CHECK(p->type == q->type && p->i == q->i && p->d == q->d);
            CHECK(strcmp(p->s, q->s) == 0 && p->list_len == q->list_len);
            CHECK(memcmp(p->list, q->list, sizeof p->list) == 0);
        }
    }
    CHECK(strcmp(a->pretrained, b->pretrained) == 0 && a->nreinit == b->nreinit);
    for (int i = 0; i < a->nreinit && i < b->nreinit; i++)
        CHECK(strcmp(a->reinit[i], b->reinit[i]) == 0);
    CHECK(a->epochs == b->epochs && a->max_steps == b->max_steps);
    CHECK(a->batch_size == b->batch_size && a->accum_steps == b->accum_steps);
    CHECK(memcmp(&a->optim, &b->optim, sizeof a->optim) == 0);
    CHECK(memcmp(&a->schedule, &b->schedule, sizeof a->schedule) == 0);
    CHECK(a->clip_grad_norm == b->clip_grad_norm && a->label_smoothing == b->label_smoothing);
    CHECK(a->nclass_weights == b->nclass_weights);
    for (int i = 0; i < a->nclass_weights && i < b->nclass_weights; i++)
        CHECK(a->class_weights[i] == b->class_weights[i]);
    CHECK(a->eval_every == b->eval_every && a->eval_batch_size == b->eval_batch_size);
    CHECK(strcmp(a->best_metric, b->best_metric) == 0);
    CHECK(a->checkpoint_every == b->checkpoint_every && a->keep_last == b->keep_last);
    CHECK(a->log_every == b->log_every && a->progress == b->progress);
}

static void round_trip(const ft_config *c)
{
    ft_config d;
    ft_err err = {0};
    if (!CHECK(c->text && ft_config_load_string(&d, c->text, "model.h5", &err) == FT_OK)) {
        fprintf(stderr, "  round trip: %s\n%s\n", err.msg, c->text ? c->text : "(no text)");
        return;
    }
    check_same(c, &d);
    CHECK(strcmp(d.origin, "model.h5") == 0);
    CHECK(strcmp(c->text, d.text) == 0); /* the text is a fixed point */
    ft_config_free(&d);
}

static void test_full(void)
{
    const char *text =
        "run = { dir = \"runs/full\"; seed = 7; threads = 2; };\n"
        "data = { train = \"a.h5\"; eval = \"b.h5\"; shuffle = false; };\n"
        "model = { input = [1, 6, 6];\n"
        "  layers = (\n"
        "    { name = \"conv1\"; type = \"conv2d\"; filters = 4; kernel = 3; padding = 1; },\n"
        "    { name = \"relu1\"; type = \"relu\"; },\n"
        "    { name = \"pool1\"; type = \"maxpool2d\"; size = 2; },\n"
        "    { name = \"flat\"; type = \"flatten\"; },\n"
        "    { name = \"fc1\"; type = \"dense\"; units = 16; trainable = false; },\n"
        "    { name = \"fc2\"; type = \"dense\"; units = 3; lr_mult = 2; }\n"
        "  ); };\n"
        "pretrained = { file = \"pre.h5\"; reinit = [\"fc2\"]; };\n"
        "freeze = { upto = \"relu1\"; layers = [\"flat\"]; };\n"
        "train = { epochs = 3; max_steps = 5000000000L; batch_size = 32; accum_steps = 2;\n"
        "  clip_grad_norm = 1.5;\n"
        "  optimizer = { type = \"adamw\"; lr = 0.002; weight_decay = 0.01;\n"
        "                betas = [0.8, 0.99]; eps = 1e-6; };\n"
        "  schedule = { type = \"cosine\"; warmup_steps = 10; min_lr = 1e-5; };\n"
        "  loss = { label_smoothing = 0.1; class_weights = [1.0, 2.0, 0.5]; }; };\n"
        "eval = { every = 100; batch_size = 128; best_metric = \"macro_f1\"; };\n"
        "checkpoint = { every = 50; keep_last = 3; };\n"
        "log = { every = 10; progress = \"plain\"; };\n";
    ft_config c;
    if (load_ok(&c, "full.cfg", text, NULL, 0))
        return;
    CHECK(strcmp(c.run_dir, "runs/full") == 0 && c.seed == 7 && c.threads == 2);
    CHECK(strcmp(c.train_path, "a.h5") == 0 && strcmp(c.eval_path, "b.h5") == 0);
    CHECK(c.shuffle == 0);
    CHECK(c.input.rank == 3 && c.input.d[0] == 1 && c.input.d[1] == 6 && c.input.d[2] == 6);
    CHECK(c.nlayers == 6);
    CHECK(strcmp(c.layers[0].name, "conv1") == 0 && strcmp(c.layers[0].kind, "conv2d") == 0);
    /* the spec keeps the kind's keys only, with their lines */
    CHECK(c.layers[0].kv.n == 3 && ft_kv_int(&c.layers[0].kv, "filters", 0) == 4);
    CHECK(ft_kv_find(&c.layers[0].kv, "name") == NULL);
    CHECK(ft_kv_find(&c.layers[0].kv, "kernel")->line == 5);
    CHECK_STR_CONTAINS(c.layers[0].kv.where, "full.cfg");
    /* frozen: up to relu1, flat by list, fc1 by trainable = false */
    int frozen[] = {1, 1, 0, 1, 1, 0};
    for (int i = 0; i < 6; i++)
        CHECK(c.layers[i].frozen == frozen[i]);
    CHECK(c.layers[4].lr_mult == 1.0f && c.layers[5].lr_mult == 2.0f);
    CHECK(strcmp(c.pretrained, "pre.h5") == 0 && c.nreinit == 1);
    CHECK(strcmp(c.reinit[0], "fc2") == 0);
    CHECK(c.epochs == 3 && c.max_steps == 5000000000L && c.batch_size == 32);
    CHECK(c.accum_steps == 2);
    CHECK_NEAR(c.clip_grad_norm, 1.5, 0);
    CHECK(c.optim.type == FT_OPT_ADAMW);
    CHECK_NEAR(c.optim.lr, 0.002, 1e-9);
    CHECK_NEAR(c.optim.weight_decay, 0.01, 1e-9);
    CHECK_NEAR(c.optim.beta1, 0.8, 1e-7);
    CHECK_NEAR(c.optim.beta2, 0.99, 1e-7);
    CHECK_NEAR(c.optim.eps, 1e-6, 1e-12);
    CHECK(c.schedule.type == FT_SCHED_COSINE && c.schedule.warmup_steps == 10);
    CHECK(c.schedule.total_steps == 0); /* the trainer fills it in */
    CHECK_NEAR(c.schedule.min_lr, 1e-5, 1e-12);
    CHECK_NEAR(c.label_smoothing, 0.1, 1e-7);
    CHECK(c.nclass_weights == 3 && c.class_weights[1] == 2.0f && c.class_weights[2] == 0.5f);
    CHECK(c.eval_every == 100 && c.eval_batch_size == 128);
    CHECK(strcmp(c.best_metric, "macro_f1") == 0);
    CHECK(c.checkpoint_every == 50 && c.keep_last == 3);
    CHECK(c.log_every == 10 && c.progress == 0);
    CHECK_STR_CONTAINS(c.origin, "full.cfg");
    round_trip(&c);
    ft_config_free(&c);
    CHECK(c.layers == NULL && c.text == NULL);
}

static void test_defaults(void)
{
    ft_config c;
    if (load_ok(&c, "defaults.cfg", "data = { train = \"t.h5\"; };\n" MODEL, NULL, 0))
        return;
    CHECK(strcmp(c.run_dir, "runs/defaults") == 0);
    CHECK(c.seed == 42 && c.threads == 0 && c.shuffle == 1);
    CHECK(c.eval_path[0] == '\0' && c.pretrained[0] == '\0' && c.nreinit == 0);
    CHECK(c.nlayers == 3 && !c.layers[0].frozen && !c.layers[2].frozen);
    CHECK(c.layers[0].lr_mult == 1.0f);
    CHECK(ft_kv_bool(&c.layers[2].kv, "bias", 1) == 0);
    CHECK(c.epochs == 1 && c.max_steps == 0 && c.batch_size == 64 && c.accum_steps == 1);
    CHECK(c.clip_grad_norm == 0.0f);
    CHECK(c.optim.type == FT_OPT_SGD && c.optim.nesterov == 0);
    CHECK_NEAR(c.optim.lr, 0.01, 1e-9);
    CHECK_NEAR(c.optim.momentum, 0.9, 1e-7);
    CHECK(c.optim.weight_decay == 0.0f);
    CHECK_NEAR(c.optim.beta1, 0.9, 1e-7);
    CHECK_NEAR(c.optim.beta2, 0.999, 1e-7);
    CHECK_NEAR(c.optim.eps, 1e-8, 1e-15);
    CHECK(c.schedule.type == FT_SCHED_CONSTANT && c.schedule.warmup_steps == 0);
    CHECK(c.schedule.step_size == 1000 && c.schedule.total_steps == 0);
    CHECK_NEAR(c.schedule.gamma, 0.1, 1e-7);
    CHECK(c.label_smoothing == 0.0f && c.class_weights == NULL && c.nclass_weights == 0);
    CHECK(c.eval_every == 0 && c.eval_batch_size == 256);
    CHECK(strcmp(c.best_metric, "accuracy") == 0);
    CHECK(c.checkpoint_every == 0 && c.keep_last == 2);
    CHECK(c.log_every == 50 && c.progress == -1);
    /* the default run dir is written into the text, so a stored copy keeps it */
    CHECK_STR_CONTAINS(c.text, "runs/defaults");
    round_trip(&c);
    ft_config_free(&c);

    /* adamw's own default learning rate */
    if (load_ok(&c, "adamw.cfg", DATA MODEL "train = { optimizer = { type = \"adamw\"; }; };\n",
                NULL, 0) == 0) {
        CHECK_NEAR(c.optim.lr, 0.001, 1e-9);
        ft_config_free(&c);
    }
}

static void test_errors(void)
{
    ft_config c;
    ft_err err = {0};

    /* files */
    CHECK(ft_config_load(&c, "/nonexistent/x.cfg", NULL, 0, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "cannot open config /nonexistent/x.cfg: No such file");
    expect_error("syntax.cfg",
                 "data = { train = \"t.h5\"; };\nmodel = {\n  input = [4]\n  x = ;\n};\n", NULL, 0,
                 "FILE:4: syntax error", NULL);
    err.msg[0] = '\0';
    CHECK(ft_config_load_string(&c, "a = 1;\nb = ;\n", "model.h5", &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "model.h5:2: syntax error");

    /* unknown keys, at every level */
    expect_error("top.cfg", DATA MODEL "trian = { epochs = 2; };\n", NULL, 0,
                 "FILE:10: unknown key 'trian' at the top level (did you mean 'train'?)", NULL);
    expect_error("nested.cfg", DATA MODEL "train = {\n  optimizer = { lrr = 0.1; };\n};\n", NULL, 0,
                 "FILE:11: unknown key 'lrr' in train.optimizer (did you mean 'lr'?)", NULL);
    expect_error("nosuggest.cfg", DATA MODEL "eval = { zzzzzz = 1; };\n", NULL, 0,
                 "FILE:10: unknown key 'zzzzzz' in eval (valid keys: every, batch_size, "
                 "best_metric)",
                 NULL);
    expect_error("layerkey.cfg",
                 DATA "model = { input = [4];\n  layers = (\n"
                      "    { name = \"fc1\"; type = \"dense\";\n      unit = 8; }\n  ); };\n",
                 NULL, 0,
                 "FILE:5: unknown key 'unit' in layer 'fc1' (dense) (did you mean 'units'?)", NULL);

    /* types */
    expect_error("type.cfg", DATA MODEL "train = {\n  batch_size = \"64\";\n};\n", NULL, 0,
                 "FILE:11: train.batch_size must be an integer, got a string", NULL);
    expect_error("type2.cfg", DATA MODEL "train = 3;\n", NULL, 0,
                 "FILE:10: train must be a group { ... }, got an integer", NULL);
    expect_error("type3.cfg", DATA MODEL "freeze = { layers = [1, 2]; };\n", NULL, 0,
                 "FILE:10: freeze.layers must be a list of strings",
                 "got a list containing an integer");
    expect_error("type4.cfg",
                 DATA "model = { input = [4];\n  layers = (\n"
                      "    { name = \"fc1\"; type = \"dense\"; units = \"8\"; }\n  ); };\n",
                 NULL, 0, "FILE:4: key 'units' in layer 'fc1' (dense) must be an integer", NULL);

    /* required keys */
    expect_error("nodata.cfg", MODEL, NULL, 0,
                 "FILE: missing required key 'data.train' (a string: training set", NULL);
    expect_error("nolayers.cfg", DATA "model = { input = [4]; };\n", NULL, 0,
                 "FILE:2: missing required key 'model.layers'", NULL);
    expect_error("nofile.cfg", DATA MODEL "pretrained = { reinit = [\"fc2\"]; };\n", NULL, 0,
                 "FILE:10: missing required key 'pretrained.file'", NULL);
    expect_error("noname.cfg",
                 DATA "model = { input = [4];\n  layers = ( { type = \"relu\"; } ); };\n", NULL, 0,
                 "FILE:3: model.layers[0] needs name = \"...\";", NULL);

    /* values */
    expect_error("bs.cfg", DATA MODEL "train = { batch_size = 0; };\n", NULL, 0,
                 "FILE:10: train.batch_size must be >= 1, got 0", NULL);
    expect_error("lr.cfg", DATA MODEL "train = { optimizer = { lr = 0.0; }; };\n", NULL, 0,
                 "FILE:10: train.optimizer.lr must be > 0, got 0", NULL);
    expect_error("mom.cfg", DATA MODEL "train = { optimizer = { momentum = 1.0; }; };\n", NULL, 0,
                 "FILE:10: train.optimizer.momentum must be in [0, 1), got 1", NULL);
    expect_error("ls.cfg", DATA MODEL "train = { loss = { label_smoothing = 1; }; };\n", NULL, 0,
                 "train.loss.label_smoothing must be in [0, 1), got 1", NULL);
    expect_error("wrap.cfg", DATA MODEL "train = { max_steps = 3000000000; };\n", NULL, 0,
                 "train.max_steps must be >= 0", "needs an L suffix");
    expect_error("opt.cfg", DATA MODEL "train = { optimizer = { type = \"sgdd\"; }; };\n", NULL, 0,
                 "FILE:10: unknown optimizer 'sgdd' in train.optimizer.type (did you mean 'sgd'?)",
                 NULL);
    expect_error("sched.cfg", DATA MODEL "train = { schedule = { type = \"linear\"; }; };\n", NULL,
                 0, "unknown schedule 'linear' in train.schedule.type",
                 "(choose one of: constant, step, cosine)");
    expect_error("metric.cfg", DATA MODEL "eval = { best_metric = \"acc\"; };\n", NULL, 0,
                 "unknown metric 'acc' in eval.best_metric", NULL);
    expect_error("progress.cfg", DATA MODEL "log = { progress = \"bars\"; };\n", NULL, 0,
                 "unknown progress style 'bars' in log.progress (did you mean 'bar'?)", NULL);
    expect_error("evalnodata.cfg",
                 "data = { train = \"t.h5\"; };\n" MODEL "eval = { every = 5; };\n", NULL, 0,
                 "eval.every is set but data.eval is not", NULL);
    expect_error("rank.cfg",
                 DATA "model = { input = [1, 2, 3, 4];\n  layers = ( { name = \"a\"; "
                      "type = \"relu\"; } ); };\n",
                 NULL, 0, "FILE:2: model.input must have 1 to 3 dimensions", "got 4");
    expect_error("empty.cfg", DATA "model = { input = [4];\n  layers = ( ); };\n", NULL, 0,
                 "FILE:3: model.layers is empty", NULL);

    /* layers */
    expect_error("kind.cfg",
                 DATA "model = { input = [4];\n  layers = (\n"
                      "    { name = \"fc1\"; type = \"dens\"; units = 8; }\n  ); };\n",
                 NULL, 0,
                 "FILE:4: unknown layer type 'dens' for layer 'fc1' (did you mean 'dense'?)", NULL);
    expect_error("dup.cfg",
                 DATA "model = { input = [4];\n  layers = (\n"
                      "    { name = \"a\"; type = \"relu\"; },\n"
                      "    { name = \"a\"; type = \"relu\"; }\n  ); };\n",
                 NULL, 0, "FILE:5: duplicate layer name 'a' (model.layers[0] and model.layers[1])",
                 NULL);
    expect_error("upto.cfg", DATA MODEL "freeze = { upto = \"fc3\"; };\n", NULL, 0,
                 "FILE:10: freeze.upto names layer 'fc3', which is not in model.layers (did you "
                 "mean 'fc1'?)",
                 NULL);
    expect_error("flayers.cfg", DATA MODEL "freeze = { layers = [\"acts\"]; };\n", NULL, 0,
                 "freeze.layers names layer 'acts', which is not in model.layers (did you mean "
                 "'act'?)",
                 NULL);
    expect_error("reinit.cfg",
                 DATA MODEL "pretrained = { file = \"p.h5\"; reinit = [\"head\"]; };\n", NULL, 0,
                 "pretrained.reinit names layer 'head', which is not in model.layers", NULL);
    expect_error("reinitfrozen.cfg",
                 DATA MODEL "pretrained = { file = \"p.h5\"; reinit = [\"fc2\"]; };\n"
                            "freeze = { upto = \"fc2\"; };\n",
                 NULL, 0, "pretrained.reinit names layer 'fc2', which is frozen", NULL);
    expect_error("lrmult.cfg",
                 DATA "model = { input = [4];\n  layers = (\n"
                      "    { name = \"a\"; type = \"relu\"; lr_mult = -1; }\n  ); };\n",
                 NULL, 0, "FILE:4: lr_mult of layer 'a' must be >= 0, got -1", NULL);
}

static void test_overrides(void)
{
    ft_config c;
    const char *base = DATA MODEL "train = { batch_size = 16;\n"
                                  "  optimizer = { lr = 0.1; }; };\n";

    /* existing keys, a type change (int for a float), a new nested group, a
     * layer addressed by name, a bare-word array */
    const char *sets[] = {
        "train.batch_size=32",
        "train.optimizer.lr=1",
        "train.schedule.type=cosine",
        "train.schedule.min_lr = 1e-4",
        "model.layers.fc2.units=10",
        "model.layers[0].lr_mult=0.5",
        "pretrained.file=runs/pre/model.h5",
        "pretrained.reinit=[fc2]",
        "run.seed=5000000000",
        "data.shuffle=false",
        "log.progress=\"bar\"",
    };
    if (load_ok(&c, "ovr.cfg", base, sets, (int)(sizeof sets / sizeof sets[0])) == 0) {
        CHECK(c.batch_size == 32);
        CHECK_NEAR(c.optim.lr, 1.0, 0);
        CHECK(c.schedule.type == FT_SCHED_COSINE);
        CHECK_NEAR(c.schedule.min_lr, 1e-4, 1e-10);
        CHECK(ft_kv_int(&c.layers[2].kv, "units", 0) == 10);
        CHECK(c.layers[0].lr_mult == 0.5f);
        CHECK(strcmp(c.pretrained, "runs/pre/model.h5") == 0);
        CHECK(c.nreinit == 1 && strcmp(c.reinit[0], "fc2") == 0);
        CHECK(c.seed == 5000000000ULL && c.shuffle == 0 && c.progress == 1);
        /* the text carries the overrides */
        CHECK_STR_CONTAINS(c.text, "cosine");
        CHECK_STR_CONTAINS(c.text, "5000000000L");
        round_trip(&c);
        ft_config_free(&c);
    }

    /* arrays of numbers: ints and floats mixed */
    const char *sets2[] = {"train.loss.class_weights=[1, 2.5, 0]", "model.input=[4]"};
    if (load_ok(&c, "ovr2.cfg", base, sets2, 2) == 0) {
        CHECK(c.nclass_weights == 3 && c.class_weights[0] == 1.0f && c.class_weights[1] == 2.5f);
        ft_config_free(&c);
    }

    /* a typo through --set is an unknown key that names the --set */
    const char *typo[] = {"train.optimzer.lr=0.1"};
    expect_error("typo.cfg", base, typo, 1,
                 "--set train.optimzer.lr=0.1: unknown key 'optimzer' in train (did you mean "
                 "'optimizer'?)",
                 NULL);
    const char *typo2[] = {"train.batch_sise=8"};
    expect_error("typo2.cfg", base, typo2, 1,
                 "--set train.batch_sise=8: unknown key 'batch_sise' in train (did you mean "
                 "'batch_size'?)",
                 NULL);
    const char *badval[] = {"train.batch_size=0"};
    expect_error("badval.cfg", base, badval, 1,
                 "--set train.batch_size=0: train.batch_size must be >= 1, got 0", NULL);
    const char *badtype[] = {"train.epochs=two"};
    expect_error("badtype.cfg", base, badtype, 1,
                 "--set train.epochs=two: train.epochs must be an integer, got a string", NULL);
    const char *noeq[] = {"train.epochs"};
    expect_error("noeq.cfg", base, noeq, 1, "--set train.epochs: expected KEY=VALUE", NULL);
    const char *notgroup[] = {"train.batch_size.x=1"};
    expect_error("notgroup.cfg", base, notgroup, 1,
                 "--set train.batch_size.x=1: train.batch_size is an integer, not a group", NULL);
    const char *nolayer[] = {"model.layers.fc9.units=3"};
    expect_error("nolayer.cfg", base, nolayer, 1,
                 "--set model.layers.fc9.units=3: model.layers has no element 'fc9'", NULL);
    const char *badarr[] = {"train.optimizer.betas=[0.9, \"x]"};
    expect_error("badarr.cfg", base, badarr, 1,
                 "--set train.optimizer.betas=[0.9, \"x]: cannot read", NULL);
}

/* The shipped configs, found from this file's path. */
static void test_shipped(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");

    char path[700];
    ft_config c;
    ft_err err = {0};
    snprintf(path, sizeof path, "%s/../../configs/fmnist-pretrain.cfg", dir);
    if (CHECK(ft_config_load(&c, path, NULL, 0, &err) == FT_OK)) {
        CHECK(c.nlayers == 10 && strcmp(c.layers[9].name, "fc2") == 0);
        CHECK(ft_kv_int(&c.layers[9].kv, "units", 0) == 5);
        CHECK(ft_kv_int(&c.layers[0].kv, "filters", 0) == 32);
        CHECK(ft_kv_int(&c.layers[3].kv, "filters", 0) == 64);
        for (int i = 0; i < c.nlayers; i++)
            CHECK(!c.layers[i].frozen);
        CHECK(strcmp(c.train_path, "data/fmnist-pretrain-train.h5") == 0);
        CHECK(strcmp(c.eval_path, "data/fmnist-pretrain-test.h5") == 0);
        CHECK(strcmp(c.run_dir, "runs/fmnist-pretrain") == 0);
        CHECK(c.epochs == 1 && c.batch_size == 64 && c.optim.type == FT_OPT_SGD);
        CHECK_NEAR(c.optim.lr, 0.01, 1e-9);
        CHECK_NEAR(c.optim.momentum, 0.9, 1e-7);
        CHECK(c.checkpoint_every == 300 && c.keep_last == 2 && c.eval_every == 0);
        CHECK(c.pretrained[0] == '\0');
        round_trip(&c);
        ft_config_free(&c);
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }

    snprintf(path, sizeof path, "%s/../../configs/fmnist-finetune.cfg", dir);
    if (CHECK(ft_config_load(&c, path, NULL, 0, &err) == FT_OK)) {
        int frozen[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}; /* conv1 .. pool2 */
        CHECK(c.nlayers == 10);
        for (int i = 0; i < c.nlayers && i < 10; i++)
            CHECK(c.layers[i].frozen == frozen[i]);
        CHECK(strcmp(c.pretrained, "runs/fmnist-pretrain/model.h5") == 0);
        CHECK(c.nreinit == 1 && strcmp(c.reinit[0], "fc2") == 0);
        CHECK(strcmp(c.train_path, "data/fmnist-finetune-train.h5") == 0);
        CHECK(strcmp(c.eval_path, "data/fmnist-finetune-test.h5") == 0);
        CHECK(strcmp(c.run_dir, "runs/fmnist-finetune") == 0);
        CHECK(c.epochs == 2 && c.batch_size == 64 && c.eval_every == 200);
        round_trip(&c);
        ft_config_free(&c);
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }
}

int main(void)
{
    if (kinds_present()) {
        test_full();
        test_defaults();
        test_errors();
        test_overrides();
        test_shipped();
    }
    return tu_done("test_config");
}
