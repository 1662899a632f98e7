/* Model and checkpoint files: bit-exact round trips, checkpoint state,
 * reinit and mismatch messages, corruption, foreign files, and saves that
 * fail without leaving anything behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ftune/h5io.h"
#include "ftune/model.h"
#include "ftune/optim.h"

#include "testutil.h"

static const ft_shape INPUT = {3, {1, 6, 6, 0}};
static char dir[512];

/* A spec of kind, or NULL (with a note) while that kind is not linked in. */
static ft_layer_spec *spec(ft_layer_spec *s, int *n, const char *name, const char *kind, int frozen)
{
    if (!ft_layer_kind(kind)) {
        printf("note: layer kind '%s' is not available; '%s' left out\n", kind, name);
        return NULL;
    }
    ft_layer_spec *p = &s[(*n)++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    p->frozen = frozen;
    p->lr_mult = 1.0f;
    return p;
}

enum {
    WITH_FC3 = 1,
    NO_FC2 = 2,
    BN_NO_AFFINE = 4,
    FREEZE_FC1 = 8,
    RELU_AS_TANH = 16,
    RELU_AT_END = 32
};

/* conv1 (frozen) -> bn1 -> relu1 -> fc1 -> fc2 [-> fc3]; head = fc2 units. */
static int make_specs(ft_layer_spec *s, int head, int flags)
{
    int n = 0;
    ft_layer_spec *p;
    if ((p = spec(s, &n, "conv1", "conv2d", 1))) {
        ft_kv_set_int(&p->kv, "filters", 3);
        ft_kv_set_int(&p->kv, "kernel", 3);
    }
    if ((p = spec(s, &n, "bn1", "batchnorm", 0)) && (flags & BN_NO_AFFINE))
        ft_kv_set_bool(&p->kv, "affine", 0);
    spec(s, &n, "relu1", (flags & RELU_AS_TANH) ? "tanh" : "relu", 0);
    if ((p = spec(s, &n, "fc1", "dense", (flags & FREEZE_FC1) != 0)))
        ft_kv_set_int(&p->kv, "units", 8);
    if (!(flags & NO_FC2) && (p = spec(s, &n, "fc2", "dense", 0)))
        ft_kv_set_int(&p->kv, "units", head);
    if ((flags & WITH_FC3) && (p = spec(s, &n, "fc3", "dense", 0)))
        ft_kv_set_int(&p->kv, "units", 2);
    if (flags & RELU_AT_END)
        spec(s, &n, "relu_out", "relu", 0);
    return n;
}

static int build(ft_model *m, int head, int flags)
{
    ft_layer_spec s[8];
    int n = make_specs(s, head, flags);
    ft_err err = {0};
    int rc = ft_model_build(m, &INPUT, s, n, &err);
    if (rc)
        fprintf(stderr, "build: %s\n", err.msg);
    CHECK(rc == FT_OK);
    if (!rc)
        ft_model_init_params(m, 7);
    return rc;
}

/* Distinct values everywhere (buffers too), plus bit patterns a lossy path
 * would change: -0, a denormal, a NaN with payload, infinity. */
static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)s) / 2147483648.0f;
    }
    uint32_t special[] = {0x80000000u, 0x00000001u, 0x7fc12345u, 0x7f800000u};
    for (size_t k = 0; k < 4 && k < n; k++)
        memcpy(&x[k], &special[k], sizeof special[k]);
}

static char *path_in(const char *name)
{
    static char buf[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Files in d whose name contains ".tmp" (leftovers of a save). */
static int count_tmp(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        n += strstr(e->d_name, ".tmp") != NULL;
    if (dp)
        closedir(dp);
    return n;
}

typedef struct warn_log {
    int n;
    char last[1024];
} warn_log;

static void on_warn(const char *msg, void *user)
{
    warn_log *w = user;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

static const char *CONFIG = "model = {\n  input = [1, 6, 6];\n};\n# \"quoted\" \\ text\n";

static void test_model_round_trip(void)
{
    ft_model a, b;
    if (build(&a, 4, 0) || build(&b, 4, 0))
        return;
    fill(a.params, a.nparams, 1);
    fill(b.params, b.nparams, 2);
    const char *p = path_in("model.h5");
    ft_err err = {0};
    CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_OK);
    CHECK(exists(p));
    CHECK(count_tmp(dir) == 0);
    warn_log w = {0};
    int rc = ft_load_weights(p, &b, NULL, 0, 1, on_warn, &w, &err);
    if (rc)
        fprintf(stderr, "load: %s\n", err.msg);
    CHECK(rc == FT_OK);
    CHECK(w.n == 0);
    CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);

    char *text = NULL;
    CHECK(ft_load_config_text(p, &text, &err) == FT_OK);
    CHECK(text && strcmp(text, CONFIG) == 0);
    free(text);

    /* A model file is not something to resume from. */
    ft_optim o = {0};
    ft_train_state st;
    CHECK(ft_load_train_state(p, &b, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "is a model file, not a checkpoint");

    /* Saving again replaces the file. */
    fill(a.params, a.nparams, 3);
    CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_OK);
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_OK);
    CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);
    CHECK(count_tmp(dir) == 0);
    ft_model_free(&a);
    ft_model_free(&b);
}

static void set_state(ft_train_state *st)
{
    memset(st, 0, sizeof *st);
    st->step = 123;
    st->epoch = 4;
    st->epoch_pos = 96;
    st->samples_seen = UINT64_C(18446744073709551000); /* above INT64_MAX */
    st->seed = UINT64_C(0xfedcba9876543210);
    st->world_size = 3;
    st->best_metric = 0.8125;
    st->best_step = 100;
    st->last_metric = 0.75;
}

static int optim_init(ft_optim *o, int type, float momentum, const ft_model *m)
{
    ft_optim_cfg cfg = {0};
    cfg.type = type;
    cfg.lr = 0.1f;
    cfg.momentum = momentum;
    cfg.beta1 = 0.9f;
    cfg.beta2 = 0.999f;
    cfg.eps = 1e-8f;
    ft_err err = {0};
    int rc = ft_optim_init(o, &cfg, m, &err);
    if (rc)
        fprintf(stderr, "optim: %s\n", err.msg);
    CHECK(rc == FT_OK);
    return rc;
}

static void test_checkpoint(int type, float momentum, const char *state_name, int block)
{
    ft_model a, b;
    ft_optim oa, ob;
    if (build(&a, 4, 0) || build(&b, 4, 0))
        return;
    if (optim_init(&oa, type, momentum, &a) || optim_init(&ob, type, momentum, &b))
        return;
    fill(a.params, a.nparams, 4);
    fill(oa.state, oa.nstate, 5);
    oa.t = 123;
    ft_train_state st, st2;
    set_state(&st);
    const char *p = path_in("ckpt.h5");
    ft_err err = {0};
    int rc = ft_save(p, &a, CONFIG, &oa, &st, &err);
    if (rc)
        fprintf(stderr, "save: %s\n", err.msg);
    CHECK(rc == FT_OK);
    CHECK(count_tmp(dir) == 0);
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_OK);
    rc = ft_load_train_state(p, &b, &ob, &st2, &err);
    if (rc)
        fprintf(stderr, "load state: %s\n", err.msg);
    CHECK(rc == FT_OK);
    CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);
    CHECK(oa.nstate == ob.nstate);
    CHECK(oa.nstate == 0 || memcmp(oa.state, ob.state, oa.nstate * sizeof(float)) == 0);
    CHECK(ob.t == 123);
    CHECK(st2.step == st.step && st2.epoch == st.epoch && st2.epoch_pos == st.epoch_pos);
    CHECK(st2.samples_seen == st.samples_seen && st2.seed == st.seed);
    CHECK(st2.world_size == 3 && st2.best_step == 100);
    CHECK(st2.best_metric == st.best_metric && st2.last_metric == st.last_metric);

    /* State is stored per parameter under torch's names, offset taken from
     * the gradient arena: check one slice directly. */
    if (state_name) {
        hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
        char name[128];
        snprintf(name, sizeof name, "/optimizer/fc1/weight/%s", state_name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        CHECK(ds >= 0);
        const ft_param *w = &ft_model_find(&a, "fc1")->params[0];
        float *buf = malloc(w->count * sizeof *buf);
        CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
        const float *slice = oa.state + (size_t)block * a.ngrads + (w->grad - a.grads);
        CHECK(memcmp(buf, slice, w->count * sizeof *buf) == 0);
        free(buf);
        H5Dclose(ds);
        /* conv1 is frozen: no optimizer state for it. */
        CHECK(H5Lexists(f, "/optimizer/conv1", H5P_DEFAULT) == 0);
        H5Fclose(f);
    }

    /* The other optimizer type is refused. */
    ft_optim oc;
    if (!optim_init(&oc, type == FT_OPT_SGD ? FT_OPT_ADAMW : FT_OPT_SGD, 0.9f, &b)) {
        CHECK(ft_load_train_state(p, &b, &oc, &st2, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "the checkpoint's optimizer is");
        ft_optim_free(&oc);
    }
    ft_optim_free(&oa);
    ft_optim_free(&ob);
    ft_model_free(&a);
    ft_model_free(&b);
}

/* A model whose trainable set differs from the checkpoint's. */
static void test_trainable_set_differs(void)
{
    ft_model a, b;
    ft_optim oa, ob;
    if (build(&a, 4, 0) || build(&b, 4, FREEZE_FC1))
        return;
    if (optim_init(&oa, FT_OPT_ADAMW, 0, &a) || optim_init(&ob, FT_OPT_ADAMW, 0, &b))
        return;
    ft_train_state st;
    set_state(&st);
    const char *p = path_in("ckpt2.h5");
    ft_err err = {0};
    CHECK(ft_save(p, &a, CONFIG, &oa, &st, &err) == FT_OK);
    float before = ob.state ? ob.state[0] : 0.0f;
    CHECK(ft_load_train_state(p, &b, &ob, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "trainable");
    CHECK(!ob.state || ob.state[0] == before);
    ft_optim_free(&oa);
    ft_optim_free(&ob);
    ft_model_free(&a);
    ft_model_free(&b);

    /* Same number of trainable values, different layers: names catch it. */
    if (!ft_layer_kind("dense"))
        return;
    ft_layer_spec s[2];
    int n = 0;
    ft_kv_set_int(&spec(s, &n, "fa", "dense", 1)->kv, "units", 8);
    ft_kv_set_int(&spec(s, &n, "fb", "dense", 0)->kv, "units", 8);
    ft_shape in8 = ft_shape1(8);
    CHECK(ft_model_build(&a, &in8, s, 2, &err) == FT_OK);
    s[0].frozen = 0;
    s[1].frozen = 1;
    CHECK(ft_model_build(&b, &in8, s, 2, &err) == FT_OK);
    CHECK(a.ngrads == b.ngrads);
    if (!optim_init(&oa, FT_OPT_SGD, 0.9f, &a) && !optim_init(&ob, FT_OPT_SGD, 0.9f, &b)) {
        p = path_in("ckpt3.h5");
        CHECK(ft_save(p, &a, NULL, &oa, &st, &err) == FT_OK);
        CHECK(ft_load_train_state(p, &b, &ob, &st, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "no optimizer state for layer 'fa'");
        ft_optim_free(&oa);
        ft_optim_free(&ob);
    }
    ft_model_free(&a);
    ft_model_free(&b);
}

static void test_reinit_and_shapes(void)
{
    ft_model a, b;
    if (build(&a, 4, 0) || build(&b, 5, 0))
        return;
    fill(a.params, a.nparams, 6);
    const char *p = path_in("head4.h5");
    ft_err err = {0};
    CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_OK);

    float *fresh = malloc(b.nparams * sizeof *fresh);
    memcpy(fresh, b.params, b.nparams * sizeof *fresh);
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    char want[1024];
    snprintf(want, sizeof want,
             "%s: layer 'fc2' parameter 'weight' has shape [4, 8] in the file but [5, 8] in the "
             "model (list it in pretrained.reinit to start it fresh)",
             p);
    CHECK(strcmp(err.msg, want) == 0);
    if (strcmp(err.msg, want) != 0)
        fprintf(stderr, "got:  %s\nwant: %s\n", err.msg, want);
    /* Nothing was loaded. */
    CHECK(memcmp(fresh, b.params, b.nparams * sizeof *fresh) == 0);

    const char *reinit[] = {"fc2"};
    CHECK(ft_load_weights(p, &b, reinit, 1, 1, NULL, NULL, &err) == FT_OK);
    ft_layer *fc2 = ft_model_find(&b, "fc2");
    size_t fc2_off = (size_t)(fc2->params[0].data - b.params);
    CHECK(memcmp(a.params, b.params, fc2_off * sizeof(float)) == 0);
    CHECK(memcmp(fresh + fc2_off, b.params + fc2_off, (b.nparams - fc2_off) * sizeof(float)) == 0);
    free(fresh);
    ft_model_free(&a);
    ft_model_free(&b);
}

static void test_layer_sets(void)
{
    ft_model a, b;
    ft_err err = {0};
    if (build(&a, 4, 0))
        return;
    fill(a.params, a.nparams, 7);
    const char *p = path_in("base.h5");
    CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_OK);

    /* A model layer absent from the file. */
    if (!build(&b, 4, WITH_FC3)) {
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
        char want[800];
        snprintf(want, sizeof want, "%s: layer 'fc3' of the model is not in the file", p);
        CHECK(strcmp(err.msg, want) == 0);
        warn_log w = {0};
        CHECK(ft_load_weights(p, &b, NULL, 0, 0, on_warn, &w, &err) == FT_OK);
        CHECK(w.n == 1);
        CHECK_STR_CONTAINS(w.last, "layer 'fc3' of the model is not in the file");
        const char *reinit[] = {"fc3"};
        CHECK(ft_load_weights(p, &b, reinit, 1, 1, NULL, NULL, &err) == FT_OK);
        ft_model_free(&b);
    }
    /* A parameter-free layer absent from the file: nothing to load. */
    if (ft_layer_kind("relu") && !build(&b, 4, RELU_AT_END)) {
        warn_log w = {0};
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, on_warn, &w, &err) == FT_OK);
        CHECK(w.n == 0);
        CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);
        ft_model_free(&b);
    }
    /* A file layer absent from the model. */
    if (!build(&b, 4, NO_FC2)) {
        warn_log w = {0};
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, on_warn, &w, &err) == FT_OK);
        CHECK(w.n == 1);
        char want[800];
        snprintf(want, sizeof want, "%s: layer 'fc2' is in the file but not in the model (ignored)",
                 p);
        CHECK(strcmp(w.last, want) == 0);
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_OK); /* warn may be NULL */
        ft_model_free(&b);
    }
    /* Parameters the model lacks, or has and the file lacks. */
    if (ft_layer_kind("batchnorm") && !build(&b, 4, BN_NO_AFFINE)) {
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "layer 'bn1' parameter 'weight' is in the file but not in the "
                                    "model");
        const char *p2 = path_in("noaffine.h5");
        CHECK(ft_save(p2, &b, NULL, NULL, NULL, &err) == FT_OK);
        CHECK(ft_load_weights(p2, &a, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "layer 'bn1' has no parameter 'weight' in the file");
        ft_model_free(&b);
    }
    /* Same name, another kind. */
    if (ft_layer_kind("tanh") && !build(&b, 4, RELU_AS_TANH)) {
        CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "layer 'relu1' is a relu in the file but a tanh in the model");
        ft_model_free(&b);
    }
    ft_model_free(&a);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[8192];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = 0;
    return ok;
}

static char *inspect_text(const char *p, int json, int *rc)
{
    FILE *f = tmpfile();
    ft_err err = {0};
    *rc = json ? ft_inspect_json(p, f, &err) : ft_inspect(p, f, &err);
    long len = ftell(f);
    rewind(f);
    size_t cap = (size_t)len + sizeof err.msg + 16;
    char *s = calloc(cap, 1);
    if (fread(s, 1, (size_t)len, f) != (size_t)len)
        s[0] = '\0';
    fclose(f);
    if (*rc)
        snprintf(s + len, cap - (size_t)len, "\nerror: %s", err.msg);
    return s;
}

static void test_corruption(void)
{
    ft_model a, b;
    ft_err err = {0};
    if (build(&a, 4, 0) || build(&b, 4, 0))
        return;
    fill(a.params, a.nparams, 8);
    const char *good = path_in("good.h5"), *bad = path_in("bad.h5");
    CHECK(ft_save(good, &a, CONFIG, NULL, NULL, &err) == FT_OK);
    CHECK(copy_file(good, bad));

    /* Flip one byte inside the data of /model/fc1/weight. */
    hid_t f = H5Fopen(bad, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/model/fc1/weight", H5P_DEFAULT);
    haddr_t off = H5Dget_offset(ds);
    CHECK(off != HADDR_UNDEF);
    H5Dclose(ds);
    H5Fclose(f);
    int fd = open(bad, O_RDWR);
    unsigned char byte = 0;
    CHECK(pread(fd, &byte, 1, (off_t)off + 21) == 1);
    byte ^= 0x10;
    CHECK(pwrite(fd, &byte, 1, (off_t)off + 21) == 1);
    close(fd);

    float *before = malloc(b.nparams * sizeof *before);
    memcpy(before, b.params, b.nparams * sizeof *before);
    CHECK(ft_load_weights(bad, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    char want[800];
    snprintf(want, sizeof want, "%s: parameter checksum mismatch (file corrupted?)", bad);
    CHECK(strcmp(err.msg, want) == 0);
    CHECK(memcmp(before, b.params, b.nparams * sizeof *before) == 0);
    /* Even a reinit layer's data counts: the checksum covers the file. */
    const char *reinit[] = {"fc1"};
    CHECK(ft_load_weights(bad, &b, reinit, 1, 1, NULL, NULL, &err) == FT_EINPUT);
    free(before);

    int rc;
    char *s = inspect_text(bad, 0, &rc);
    CHECK(rc == FT_EINPUT);
    CHECK_STR_CONTAINS(s, "MISMATCH");
    CHECK_STR_CONTAINS(s, "fc1"); /* the summary is still printed */
    free(s);

    /* A file without a checksum (another tool wrote it) still loads. */
    CHECK(copy_file(good, bad));
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Adelete(f, "param_checksum") >= 0);
    H5Fclose(f);
    CHECK(ft_load_weights(bad, &b, NULL, 0, 1, NULL, NULL, &err) == FT_OK);
    CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)) == 0);

    /* A parameter stored as integers is refused with its type. */
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Ldelete(f, "/model/fc2/bias", H5P_DEFAULT) >= 0);
    hsize_t dim = 4;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    ds = H5Dcreate2(f, "/model/fc2/bias", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int zeros[4] = {0};
    H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    CHECK(ft_load_weights(bad, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "layer 'fc2' parameter 'bias' has type int32");
    ft_model_free(&a);
    ft_model_free(&b);
}

static void test_foreign_files(void)
{
    ft_model b;
    ft_err err = {0};
    if (build(&b, 4, 0))
        return;
    const char *p = path_in("plain.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dim = 3;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t ds = H5Dcreate2(f, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    char want[800];
    snprintf(want, sizeof want, "%s is not an ftune model or checkpoint (no 'format' attribute)",
             p);
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    CHECK(strcmp(err.msg, want) == 0);
    int rc;
    char *s = inspect_text(p, 0, &rc);
    CHECK(rc == FT_EINPUT);
    free(s);
    char *text = NULL;
    CHECK(ft_load_config_text(p, &text, &err) == FT_EINPUT);
    CHECK(text == NULL);

    p = path_in("missing.h5");
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);

    p = path_in("text.h5");
    FILE *t = fopen(p, "w");
    fputs("not hdf5\n", t);
    fclose(t);
    CHECK(ft_load_weights(p, &b, NULL, 0, 1, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);
    ft_model_free(&b);
}

static void test_failed_saves(void)
{
    ft_model a;
    ft_err err = {0};
    if (build(&a, 4, 0))
        return;
    char p[800];
    snprintf(p, sizeof p, "%s/no/such/dir/model.h5", dir);
    CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_ERUNTIME);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "No such file or directory");
    CHECK(!strstr(err.msg, "errno")); /* the reason, not HDF5's system-call record */
    CHECK(!exists(p));
    if (getenv("FTUNE_TEST_VERBOSE"))
        printf("%s\n", err.msg);

    /* Read-only directory (root writes anyway, so only checked as a user). */
    const char *ro = path_in("ro");
    mkdir(ro, 0755);
    chmod(ro, 0555);
    snprintf(p, sizeof p, "%s/model.h5", ro);
    if (geteuid() != 0) {
        CHECK(ft_save(p, &a, CONFIG, NULL, NULL, &err) == FT_ERUNTIME);
        CHECK_STR_CONTAINS(err.msg, p);
        CHECK_STR_CONTAINS(err.msg, "Permission denied");
        CHECK(!exists(p));
        CHECK(count_tmp(ro) == 0);
    }
    chmod(ro, 0755);

    /* A checkpoint needs both halves. */
    ft_train_state st;
    set_state(&st);
    CHECK(ft_save(path_in("half.h5"), &a, NULL, NULL, &st, &err) == FT_ERUNTIME);
    CHECK(!exists(path_in("half.h5")));
    ft_model_free(&a);
}

/* The disk fills up halfway (a file size limit stands in for it): the save
 * fails with the reason, and an older file under the name survives. */
static void test_disk_full(void)
{
    ft_model a;
    ft_err err = {0};
    if (!ft_layer_kind("dense"))
        return;
    ft_layer_spec s[1];
    int n = 0;
    ft_kv_set_int(&spec(s, &n, "big", "dense", 0)->kv, "units", 256);
    ft_shape in = ft_shape1(256);
    CHECK(ft_model_build(&a, &in, s, 1, &err) == FT_OK);
    fill(a.params, a.nparams, 9);
    const char *sub = path_in("full");
    mkdir(sub, 0755);
    char p[800];
    snprintf(p, sizeof p, "%s/model.h5", sub);
    ft_model small;
    if (build(&small, 4, 0) == FT_OK) {
        CHECK(ft_save(p, &small, CONFIG, NULL, NULL, &err) == FT_OK);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        ft_err e = {0};
        int rc = ft_save(p, &a, CONFIG, NULL, NULL, &e);
        int ok = rc == FT_ERUNTIME && strstr(e.msg, p) && strstr(e.msg, "File too large");
        if (!ok || getenv("FTUNE_TEST_VERBOSE"))
            fprintf(stderr, "child: rc=%d msg=%s\n", rc, e.msg);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(count_tmp(sub) == 0);
    /* The previous file is intact. */
    CHECK(ft_load_weights(p, &small, NULL, 0, 1, NULL, NULL, &err) == FT_OK);
    ft_model_free(&small);
    ft_model_free(&a);
}

static void test_inspect(void)
{
    ft_model a;
    ft_optim o;
    ft_err err = {0};
    if (build(&a, 4, 0) || optim_init(&o, FT_OPT_ADAMW, 0, &a))
        return;
    fill(a.params, a.nparams, 10);
    ft_train_state st;
    set_state(&st);
    const char *p = path_in("inspect.h5");
    const char *metrics = "{\"accuracy\": 0.8125}";
    CHECK(ft_save_ex(p, &a, CONFIG, &o, &st, metrics, &err) == FT_OK);
    int rc;
    char *s = inspect_text(p, 0, &rc);
    CHECK(rc == FT_OK);
    CHECK_STR_CONTAINS(s, "ftune-checkpoint");
    CHECK_STR_CONTAINS(s, "input shape     [1, 6, 6]");
    CHECK_STR_CONTAINS(s, "fc1");
    CHECK_STR_CONTAINS(s, "dense");
    CHECK_STR_CONTAINS(s, "trainable");
    CHECK_STR_CONTAINS(s, "adamw");
    CHECK_STR_CONTAINS(s, "step 123");
    CHECK_STR_CONTAINS(s, "0.8125 at step 100");
    CHECK_STR_CONTAINS(s, metrics);
    CHECK_STR_CONTAINS(s, ": ok");
    if (ft_layer_kind("conv2d") && ft_layer_kind("batchnorm")) {
        CHECK_STR_CONTAINS(s, "[3, 1, 3, 3]");
        CHECK_STR_CONTAINS(s, "frozen");
        CHECK_STR_CONTAINS(s, "running_mean");
        CHECK_STR_CONTAINS(s, "(buffer)");
    }
    char totals[200];
    snprintf(totals, sizeof totals, "values          %zu ", a.nparams);
    CHECK_STR_CONTAINS(s, totals);
    snprintf(totals, sizeof totals, "%zu trainable", a.ngrads);
    CHECK_STR_CONTAINS(s, totals);
    if (getenv("FTUNE_TEST_VERBOSE"))
        fputs(s, stdout);
    free(s);

    s = inspect_text(p, 1, &rc);
    CHECK(rc == FT_OK);
    CHECK_STR_CONTAINS(s, "\"format\": \"ftune-checkpoint\"");
    CHECK_STR_CONTAINS(s, "\"checksum_ok\": true");
    CHECK_STR_CONTAINS(s, "\"metrics_json\": \"{\\\"accuracy\\\": 0.8125}\"");
    CHECK_STR_CONTAINS(s, "\\\"quoted\\\" \\\\ text\\n");
    if (getenv("FTUNE_TEST_VERBOSE"))
        fputs(s, stdout);
    free(s);
    ft_optim_free(&o);
    ft_model_free(&a);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_model_round_trip();
    test_checkpoint(FT_OPT_ADAMW, 0.0f, "exp_avg", 0);
    test_checkpoint(FT_OPT_ADAMW, 0.0f, "exp_avg_sq", 1);
    test_checkpoint(FT_OPT_SGD, 0.9f, "momentum_buffer", 0);
    test_checkpoint(FT_OPT_SGD, 0.0f, NULL, 0); /* plain SGD keeps no state */
    test_trainable_set_differs();
    test_reinit_and_shapes();
    test_layer_sets();
    test_corruption();
    test_foreign_files();
    test_failed_saves();
    test_disk_full();
    test_inspect();
    return tu_done("test_h5io");
}
