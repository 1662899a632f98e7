/* Keras HDF5 import on small synthetic files written here with the HDF5 C
 * API: a Conv2D + Flatten + Dense model (channels_last) whose predictions
 * after import must equal a direct NHWC computation (kernel transposes and
 * the (H, W, C) -> (C, H, W) reorder of the dense inputs), split layer_names
 * attributes, weights-only files with a user config (matched by name and by
 * order), Keras 1 'th' kernels (flipped), and hostile files: unsupported
 * layer types, missing or mis-shaped or integer weights, giant sparse
 * datasets, truncated files. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/keras.h"

#include "testutil.h"

/* the model: [5, 5, 2] -> Conv2D 3 filters 3x3 valid relu -> [3, 3, 3]
 * -> Flatten (27) -> Dense 4 softmax */
enum { H = 5, W = 5, C = 2, K = 3, F = 3, OH = 3, OW = 3, NFLAT = OH * OW * F, UNITS = 4 };

static float conv_k[K * K * C * F], conv_b[F], fc_k[NFLAT * UNITS], fc_b[UNITS];

static float val(int seed, int i)
{
    return 0.5f * sinf(1.7f * (float)seed + 0.37f * (float)i);
}

static void init_weights(void)
{
    for (int i = 0; i < K * K * C * F; i++)
        conv_k[i] = val(1, i);
    for (int i = 0; i < F; i++)
        conv_b[i] = val(2, i) * 0.1f;
    for (int i = 0; i < NFLAT * UNITS; i++)
        fc_k[i] = val(3, i);
    for (int i = 0; i < UNITS; i++)
        fc_b[i] = val(4, i);
}

/* ---- writing Keras-style files ------------------------------------------------ */

static void set_vstr(hid_t loc, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &v);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
}

/* Fixed-length, null-padded byte strings, as h5py writes numpy 'S' arrays. */
static void set_fstrs(hid_t loc, const char *name, const char *const *v, size_t n)
{
    size_t width = 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) > width)
            width = strlen(v[i]);
    char *buf = calloc(n, width);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * width, v[i], strlen(v[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hsize_t d = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, buf);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    free(buf);
}

/* An empty float64 array (what Keras 1 wrote for layers without weights). */
static void set_empty(hid_t loc, const char *name)
{
    hsize_t d = 0;
    hid_t s = H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Aclose(a);
    H5Sclose(s);
}

/* A dataset at path (intermediate groups created); data NULL: not written. */
static void write_ds(hid_t g, const char *path, int rank, const hsize_t *dims, const void *data,
                     hid_t ftype, hid_t mtype)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, path, ftype, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (data)
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
}

enum {
    SPLIT_NAMES = 1,      /* layer_names0 / layer_names1 */
    UNSUPPORTED = 2,      /* an LSTM layer in model_config */
    MISSING_WEIGHT = 4,   /* fc lists a bias that is not in the file */
    INT_KERNEL = 8,       /* fc kernel stored as int32 */
    BAD_SHAPE = 16,       /* fc kernel [27, 5] */
    WEIGHTS_ONLY = 32,    /* save_weights layout: no model_config, names at the root */
    MISSING_GROUP = 64,   /* no group for fc */
    SOFTMAX_INSIDE = 128, /* softmax on the conv layer */
    EXTERNAL_LINK = 256   /* fc kernel: a link to a dataset in another file */
};

static const char *model_json(int flags)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"seq\", \"layers\": ["
             "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"conv\", "
             "\"batch_input_shape\": [null, %d, %d, %d], \"filters\": %d, \"kernel_size\": [%d, "
             "%d], \"strides\": [1, 1], \"padding\": \"valid\", \"data_format\": "
             "\"channels_last\", \"dilation_rate\": [1, 1], \"activation\": \"%s\", \"use_bias\": "
             "true}},"
             "%s"
             "{\"class_name\": \"Flatten\", \"config\": {\"name\": \"flat\", \"data_format\": "
             "\"channels_last\"}},"
             "{\"class_name\": \"Dense\", \"config\": {\"name\": \"fc\", \"units\": %d, "
             "\"activation\": \"softmax\", \"use_bias\": true}}]}}",
             H, W, C, F, K, K, flags & SOFTMAX_INSIDE ? "softmax" : "relu",
             flags & UNSUPPORTED ? "{\"class_name\": \"LSTM\", \"config\": {\"name\": "
                                   "\"lstm_1\", \"units\": 8}},"
                                 : "",
             UNITS);
    return buf;
}

static void write_keras(const char *path, int flags)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    hid_t mw = root;
    if (!(flags & WEIGHTS_ONLY)) {
        set_vstr(root, "keras_version", "2.2.4");
        set_vstr(root, "backend", "tensorflow");
        set_vstr(root, "model_config", model_json(flags));
        mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        set_vstr(mw, "keras_version", "2.2.4");
        set_vstr(mw, "backend", "tensorflow");
    } else {
        set_vstr(root, "keras_version", "2.2.4");
        set_vstr(root, "backend", "tensorflow");
    }
    const char *names[] = {"conv", "flat", "fc"};
    if (flags & SPLIT_NAMES) {
        set_fstrs(mw, "layer_names0", names, 2);
        set_fstrs(mw, "layer_names1", names + 2, 1);
    } else {
        set_fstrs(mw, "layer_names", names, 3);
    }
    hid_t g = H5Gcreate2(mw, "conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *cw[] = {"conv/kernel:0", "conv/bias:0"};
    set_fstrs(g, "weight_names", cw, 2);
    hsize_t kd[4] = {K, K, C, F}, bd[1] = {F};
    write_ds(g, "conv/kernel:0", 4, kd, conv_k, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    write_ds(g, "conv/bias:0", 1, bd, conv_b, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    H5Gclose(g);
    g = H5Gcreate2(mw, "flat", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    set_empty(g, "weight_names");
    H5Gclose(g);
    if (!(flags & MISSING_GROUP)) {
        g = H5Gcreate2(mw, "fc", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const char *fw[] = {"fc/kernel:0", "fc/bias:0"};
        set_fstrs(g, "weight_names", fw, 2);
        hsize_t fd[2] = {NFLAT, flags & BAD_SHAPE ? UNITS + 1 : UNITS}, fb[1] = {UNITS};
        if (flags & EXTERNAL_LINK) {
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lcpl, 1);
            H5Lcreate_external("other.h5", "/model_weights/fc/fc/kernel:0", g, "fc/kernel:0", lcpl,
                               H5P_DEFAULT);
            H5Pclose(lcpl);
        } else if (flags & INT_KERNEL) {
            int ik[NFLAT * UNITS] = {0};
            write_ds(g, "fc/kernel:0", 2, fd, ik, H5T_STD_I32LE, H5T_NATIVE_INT);
        } else if (flags & BAD_SHAPE) {
            float big[NFLAT * (UNITS + 1)] = {0};
            write_ds(g, "fc/kernel:0", 2, fd, big, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
        } else {
            write_ds(g, "fc/kernel:0", 2, fd, fc_k, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
        }
        if (!(flags & MISSING_WEIGHT))
            write_ds(g, "fc/bias:0", 1, fb, fc_b, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
        H5Gclose(g);
    }
    if (mw != root)
        H5Gclose(mw);
    H5Gclose(root);
    H5Fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* ---- the reference computation ------------------------------------------------ */

/* logits of the Keras model (softmax left out) for one NHWC sample */
static void reference_nhwc(const float *x, float *logits)
{
    float y[NFLAT];
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
            for (int o = 0; o < F; o++) {
                float s = conv_b[o];
                for (int a = 0; a < K; a++)
                    for (int b = 0; b < K; b++)
                        for (int i = 0; i < C; i++)
                            s += x[((oh + a) * W + ow + b) * C + i] *
                                 conv_k[((a * K + b) * C + i) * F + o];
                y[(oh * OW + ow) * F + o] = s > 0 ? s : 0; /* Keras flatten: (h, w, c) */
            }
    for (int j = 0; j < UNITS; j++) {
        float s = fc_b[j];
        for (int t = 0; t < NFLAT; t++)
            s += y[t] * fc_k[t * UNITS + j];
        logits[j] = s;
    }
}

enum { NS = 3 };

/* ftune's predictions equal the reference for NS random samples. */
static void check_predictions(ft_model *m, const char *what)
{
    float xh[NS][H * W * C], xc[NS * C * H * W], ref[NS][UNITS];
    for (int n = 0; n < NS; n++) {
        for (int i = 0; i < H * W * C; i++)
            xh[n][i] = val(10 + n, i);
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                for (int c = 0; c < C; c++)
                    xc[n * C * H * W + (c * H + h) * W + w] = xh[n][(h * W + w) * C + c];
        reference_nhwc(xh[n], ref[n]);
    }
    ft_err err = {0};
    if (!CHECK(ft_model_alloc(m, NS, &err) == FT_OK)) {
        printf("%s: %s\n", what, err.msg);
        return;
    }
    ft_ctx c = {0};
    c.n = NS;
    const float *out = ft_model_forward(m, &c, xc);
    CHECK(m->classes == UNITS);
    double maxdiff = 0;
    for (int n = 0; n < NS; n++)
        for (int j = 0; j < UNITS; j++)
            maxdiff = fmax(maxdiff, fabs((double)out[n * UNITS + j] - ref[n][j]));
    printf("%s: max |ftune - keras| = %.3g\n", what, maxdiff);
    CHECK_NEAR(maxdiff, 0.0, 1e-5);
}

static char dir[512];

static const char *path_in(const char *name)
{
    static char buf[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* ---- tests -------------------------------------------------------------------- */

static void test_full_model(void)
{
    const char *p = path_in("full.h5");
    write_keras(p, SPLIT_NAMES);
    ft_keras_opts o;
    ft_keras_opts_default(&o);
    o.model_path = "imported.h5";
    o.input_scale = 255;
    ft_keras_result r;
    ft_err err = {0};
    int rc = ft_keras_import(p, &o, &r, &err);
    if (!CHECK(rc == FT_OK)) {
        printf("import: %s\n", err.msg);
        ft_keras_result_free(&r);
        return;
    }
    /* conv, conv_relu, flat, fc (softmax left out) */
    CHECK(r.model.nlayers == 4);
    CHECK(r.cfg.input.rank == 3 && r.cfg.input.d[0] == C && r.cfg.input.d[1] == H &&
          r.cfg.input.d[2] == W);
    CHECK(!strcmp(r.model.layers[0].name, "conv"));
    CHECK(!strcmp(r.model.layers[1].name, "conv_relu"));
    CHECK(!strcmp(r.model.layers[3].name, "fc"));
    CHECK(!strcmp(r.keras_version, "2.2.4") && !strcmp(r.backend, "tensorflow"));
    CHECK_STR_CONTAINS(r.notes, "softmax");
    CHECK_STR_CONTAINS(r.config_text, "pretrained = {\n  file = \"imported.h5\"");
    CHECK_STR_CONTAINS(r.config_text, "preprocess = { scale = 255.0; }");
    CHECK_STR_CONTAINS(r.config_text, "# freeze = { upto = \"conv_relu\"; }");
    CHECK_STR_CONTAINS(r.config_text, "# reinit = [\"fc\"]");
    CHECK_STR_CONTAINS(r.cfg.text, "preprocess");

    /* conv kernel (kh, kw, in, out) -> [out, in, kh, kw] */
    const ft_param *w = &r.model.layers[0].params[0];
    CHECK(w->shape.rank == 4 && w->shape.d[0] == F && w->shape.d[1] == C && w->shape.d[2] == K);
    int bad = 0;
    for (int o2 = 0; o2 < F; o2++)
        for (int i = 0; i < C; i++)
            for (int a = 0; a < K; a++)
                for (int b = 0; b < K; b++)
                    bad += w->data[((o2 * C + i) * K + a) * K + b] !=
                           conv_k[((a * K + b) * C + i) * F + o2];
    CHECK(bad == 0);
    /* dense [out, in], inputs in (C, H, W) order: row t = (c, h, w) */
    const ft_param *d = &r.model.layers[3].params[0];
    CHECK(d->shape.d[0] == UNITS && d->shape.d[1] == NFLAT);
    bad = 0;
    for (int j = 0; j < UNITS; j++)
        for (int c = 0; c < F; c++)
            for (int h = 0; h < OH; h++)
                for (int x = 0; x < OW; x++)
                    bad += d->data[j * NFLAT + (c * OH + h) * OW + x] !=
                           fc_k[((h * OW + x) * F + c) * UNITS + j];
    CHECK(bad == 0);
    CHECK(r.model.layers[3].params[1].data[2] == fc_b[2]);
    check_predictions(&r.model, "full model, split layer_names");
    ft_keras_result_free(&r);
}

static const char user_cfg[] =
    "data = { train = \"unused.h5\"; };\n"
    "model = {\n"
    "  input = [2, 5, 5];\n"
    "  layers = (\n"
    "    { name = \"%s\"; type = \"conv2d\"; filters = 3; kernel = 3; },\n"
    "    { name = \"r\"; type = \"relu\"; },\n"
    "    { name = \"flat\"; type = \"flatten\"; },\n"
    "    { name = \"d\"; type = \"dropout\"; rate = 0.5; },\n"
    "    { name = \"%s\"; type = \"dense\"; units = 4; }\n"
    "  );\n"
    "};\n";

static void test_weights_only(void)
{
    const char *p = path_in("weights.h5");
    write_keras(p, WEIGHTS_ONLY);
    ft_keras_opts o;
    ft_keras_opts_default(&o);
    ft_keras_result r;
    ft_err err = {0};
    /* no config: refused, naming the layers with weights */
    CHECK(ft_keras_import(p, &o, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "--config");
    CHECK_STR_CONTAINS(err.msg, "conv, fc");
    ft_keras_result_free(&r);

    /* by name */
    char text[1024];
    const char *cfg = path_in("user.cfg");
    snprintf(text, sizeof text, user_cfg, "conv", "fc");
    write_text(cfg, text);
    o.config_path = cfg;
    int rc = ft_keras_import(p, &o, &r, &err);
    if (CHECK(rc == FT_OK)) {
        CHECK(r.config_text == NULL && r.weights_only);
        CHECK_STR_CONTAINS(r.notes, "reordered");
        check_predictions(&r.model, "weights-only, matched by name");
    } else {
        printf("import: %s\n", err.msg);
    }
    ft_keras_result_free(&r);

    /* by order */
    snprintf(text, sizeof text, user_cfg, "c1", "fc1");
    write_text(cfg, text);
    rc = ft_keras_import(p, &o, &r, &err);
    if (CHECK(rc == FT_OK)) {
        CHECK_STR_CONTAINS(r.notes, "ftune layer 'c1' <- Keras layer 'conv' (matched by order)");
        check_predictions(&r.model, "weights-only, matched by order");
    } else {
        printf("import: %s\n", err.msg);
    }
    ft_keras_result_free(&r);

    /* channels_first declared: no reorder, so predictions differ */
    snprintf(text, sizeof text, user_cfg, "conv", "fc");
    write_text(cfg, text);
    o.data_format = FT_KERAS_CHANNELS_FIRST;
    rc = ft_keras_import(p, &o, &r, &err);
    CHECK(rc == FT_OK);
    if (!rc) {
        const ft_param *d = &r.model.layers[4].params[0];
        CHECK(d->data[1] == fc_k[1 * UNITS + 0]); /* row 1 taken as is */
    }
    ft_keras_result_free(&r);
}

/* Keras 1, dim_ordering 'th', Theano: kernels (out, in, kh, kw) named *_W,
 * true convolution (flipped), flatten already in (C, H, W) order. */
static void test_keras1_th(void)
{
    const char *p = path_in("keras1.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[] = {"convolution2d_1", "activation_1", "flatten_1", "dense_1"};
    set_fstrs(f, "layer_names", names, 4);
    float kth[F * C * K * K], kd[NFLAT * UNITS];
    for (int i = 0; i < F * C * K * K; i++)
        kth[i] = val(5, i);
    for (int i = 0; i < NFLAT * UNITS; i++)
        kd[i] = val(6, i);
    hid_t g = H5Gcreate2(f, "convolution2d_1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *cw[] = {"convolution2d_1_W", "convolution2d_1_b"};
    set_fstrs(g, "weight_names", cw, 2);
    hsize_t d4[4] = {F, C, K, K}, d1[1] = {F}, d2[2] = {NFLAT, UNITS}, du[1] = {UNITS};
    write_ds(g, "convolution2d_1_W", 4, d4, kth, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    write_ds(g, "convolution2d_1_b", 1, d1, conv_b, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    H5Gclose(g);
    for (int i = 1; i < 3; i++) {
        g = H5Gcreate2(f, names[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        set_empty(g, "weight_names");
        H5Gclose(g);
    }
    g = H5Gcreate2(f, "dense_1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *dw[] = {"dense_1_W", "dense_1_b"};
    set_fstrs(g, "weight_names", dw, 2);
    write_ds(g, "dense_1_W", 2, d2, kd, H5T_IEEE_F64LE,
             H5T_NATIVE_FLOAT); /* float64 is converted */
    write_ds(g, "dense_1_b", 1, du, fc_b, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    H5Gclose(g);
    H5Fclose(f);

    char text[1024];
    const char *cfg = path_in("keras1.cfg");
    snprintf(text, sizeof text, user_cfg, "convolution2d_1", "dense_1");
    write_text(cfg, text);
    ft_keras_opts o;
    ft_keras_opts_default(&o);
    o.config_path = cfg;
    ft_keras_result r;
    ft_err err = {0};
    int rc = ft_keras_import(p, &o, &r, &err);
    if (!CHECK(rc == FT_OK)) {
        printf("import: %s\n", err.msg);
        ft_keras_result_free(&r);
        return;
    }
    CHECK(r.keras_version[0] == 0);
    CHECK_STR_CONTAINS(r.notes, "flipped");
    const ft_param *w = &r.model.layers[0].params[0];
    int bad = 0;
    for (int o2 = 0; o2 < F; o2++)
        for (int i = 0; i < C; i++)
            for (int a = 0; a < K; a++)
                for (int b = 0; b < K; b++)
                    bad += w->data[((o2 * C + i) * K + a) * K + b] !=
                           kth[((o2 * C + i) * K + (K - 1 - a)) * K + (K - 1 - b)];
    CHECK(bad == 0);
    /* 'th' flatten is (C, H, W) already: dense rows as stored */
    const ft_param *d = &r.model.layers[4].params[0];
    bad = 0;
    for (int j = 0; j < UNITS; j++)
        for (int t = 0; t < NFLAT; t++)
            bad += d->data[j * NFLAT + t] != (float)kd[t * UNITS + j];
    CHECK(bad == 0);
    ft_keras_result_free(&r);

    /* --no-flip-kernels keeps them */
    o.flip = FT_KERAS_FLIP_NO;
    rc = ft_keras_import(p, &o, &r, &err);
    if (CHECK(rc == FT_OK))
        CHECK(r.model.layers[0].params[0].data[0] == kth[0]);
    ft_keras_result_free(&r);
}

/* ---- a functional model with batchnorm, "same" padding, LeakyReLU --------------- */

/* InputLayer [4, 4, 2] -> Conv2D 3 (3x3 same, no bias) -> BatchNormalization -> Activation
 * relu -> MaxPooling2D 3 (stride 1, same) -> Flatten (48) -> BatchNormalization (center =
 * false) -> Dense 5 -> LeakyReLU 0.1 -> Dense 3 softmax */
enum { FH = 4, FC = 2, FF = 3, FN = FH * FH * FF, FU = 5, FO = 3 };

static float f_ck[3 * 3 * FC * FF], f_bn1[4][FF], f_bn2[3][FN], f_d1k[FN * FU], f_d1b[FU],
    f_d2k[FU * FO], f_d2b[FO];

static void functional_reference(const float *x, float *logits)
{
    float a[FH][FH][FF], p[FN], z[FU];
    for (int h = 0; h < FH; h++)
        for (int w = 0; w < FH; w++)
            for (int o = 0; o < FF; o++) {
                float s = 0;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        for (int c = 0; c < FC; c++) {
                            int y = h + i - 1, xx = w + j - 1;
                            if (y >= 0 && y < FH && xx >= 0 && xx < FH)
                                s += x[(y * FH + xx) * FC + c] *
                                     f_ck[((i * 3 + j) * FC + c) * FF + o];
                        }
                s = f_bn1[0][o] * (s - f_bn1[2][o]) / sqrtf(f_bn1[3][o] + 1e-3f) + f_bn1[1][o];
                a[h][w][o] = s > 0 ? s : 0;
            }
    for (int h = 0; h < FH; h++)
        for (int w = 0; w < FH; w++)
            for (int o = 0; o < FF; o++) {
                float m = -INFINITY;
                for (int i = -1; i <= 1; i++)
                    for (int j = -1; j <= 1; j++)
                        if (h + i >= 0 && h + i < FH && w + j >= 0 && w + j < FH)
                            m = fmaxf(m, a[h + i][w + j][o]);
                int t = (h * FH + w) * FF + o;
                p[t] = f_bn2[0][t] * (m - f_bn2[1][t]) / sqrtf(f_bn2[2][t] + 1e-3f);
            }
    for (int u = 0; u < FU; u++) {
        float s = f_d1b[u];
        for (int t = 0; t < FN; t++)
            s += p[t] * f_d1k[t * FU + u];
        z[u] = s > 0 ? s : 0.1f * s;
    }
    for (int o = 0; o < FO; o++) {
        float s = f_d2b[o];
        for (int u = 0; u < FU; u++)
            s += z[u] * f_d2k[u * FO + o];
        logits[o] = s;
    }
}

static const char functional_json[] =
    "{\"class_name\": \"Model\", \"config\": {\"name\": \"fm\", \"layers\": ["
    "{\"name\": \"inp\", \"class_name\": \"InputLayer\", \"config\": {\"batch_input_shape\": "
    "[null, 4, 4, 2], \"dtype\": \"float32\", \"name\": \"inp\"}, \"inbound_nodes\": []},"
    "{\"name\": \"c1\", \"class_name\": \"Conv2D\", \"config\": {\"name\": \"c1\", \"filters\": "
    "3, \"kernel_size\": [3, 3], \"strides\": [1, 1], \"padding\": \"same\", \"activation\": "
    "\"linear\", \"use_bias\": false}, \"inbound_nodes\": [[[\"inp\", 0, 0, {}]]]},"
    "{\"name\": \"bn1\", \"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn1\", "
    "\"axis\": 3, \"momentum\": 0.9, \"epsilon\": 0.001, \"center\": true, \"scale\": true}, "
    "\"inbound_nodes\": [[[\"c1\", 0, 0, {}]]]},"
    "{\"name\": \"a1\", \"class_name\": \"Activation\", \"config\": {\"name\": \"a1\", "
    "\"activation\": \"relu\"}, \"inbound_nodes\": [[[\"bn1\", 0, 0, {}]]]},"
    "{\"name\": \"p1\", \"class_name\": \"MaxPooling2D\", \"config\": {\"name\": \"p1\", "
    "\"pool_size\": [3, 3], \"strides\": [1, 1], \"padding\": \"same\"}, \"inbound_nodes\": "
    "[[[\"a1\", 0, 0, {}]]]},"
    "{\"name\": \"f\", \"class_name\": \"Flatten\", \"config\": {\"name\": \"f\"}, "
    "\"inbound_nodes\": [[[\"p1\", 0, 0, {}]]]},"
    "{\"name\": \"bn2\", \"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn2\", "
    "\"axis\": -1, \"momentum\": 0.99, \"epsilon\": 0.001, \"center\": false, \"scale\": true}, "
    "\"inbound_nodes\": [[[\"f\", 0, 0, {}]]]},"
    "{\"name\": \"d1\", \"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 5, "
    "\"activation\": \"linear\", \"use_bias\": true}, \"inbound_nodes\": [[[\"bn2\", 0, 0, "
    "{}]]]},"
    "{\"name\": \"lk\", \"class_name\": \"LeakyReLU\", \"config\": {\"name\": \"lk\", \"alpha\": "
    "0.1}, \"inbound_nodes\": [[[\"d1\", 0, 0, {}]]]},"
    "{\"name\": \"out\", \"class_name\": \"Dense\", \"config\": {\"name\": \"out\", \"units\": 3, "
    "\"activation\": \"softmax\", \"use_bias\": true}, \"inbound_nodes\": [[[\"lk\", 0, 0, "
    "{}]]]}], \"input_layers\": [[\"inp\", 0, 0]], \"output_layers\": [[\"out\", 0, 0]]}}";

static void add_weights(hid_t mw, const char *layer, const char *const *wn, int n,
                        const float *const *data, const hsize_t *dims0, const int *ranks,
                        const hsize_t (*dims)[2])
{
    hid_t g = H5Gcreate2(mw, layer, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    set_fstrs(g, "weight_names", wn, (size_t)n);
    for (int i = 0; i < n; i++) {
        hsize_t d[4];
        if (ranks[i] == 4)
            memcpy(d, dims0, sizeof d);
        else
            memcpy(d, dims[i], sizeof dims[i]);
        write_ds(g, wn[i], ranks[i], d, data[i], H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    }
    H5Gclose(g);
}

static void test_functional(void)
{
    for (int i = 0; i < 3 * 3 * FC * FF; i++)
        f_ck[i] = val(20, i);
    for (int k = 0; k < 4; k++)
        for (int o = 0; o < FF; o++)
            f_bn1[k][o] = k == 3 ? 0.5f + fabsf(val(21, o)) : val(22 + k, o);
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < FN; t++)
            f_bn2[k][t] = k == 2 ? 0.5f + fabsf(val(26, t)) : val(27 + k, t) + (k == 0 ? 1.0f : 0);
    for (int i = 0; i < FN * FU; i++)
        f_d1k[i] = val(30, i);
    for (int i = 0; i < FU; i++)
        f_d1b[i] = val(31, i);
    for (int i = 0; i < FU * FO; i++)
        f_d2k[i] = val(32, i);
    for (int i = 0; i < FO; i++)
        f_d2b[i] = val(33, i);

    const char *p = path_in("functional.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    set_vstr(f, "keras_version", "2.3.1");
    set_vstr(f, "backend", "tensorflow");
    set_vstr(f, "model_config", functional_json);
    hid_t mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[] = {"inp", "c1", "bn1", "a1", "p1", "f", "bn2", "d1", "lk", "out"};
    set_fstrs(mw, "layer_names", names, 10);
    const int noweights[] = {0, 3, 4, 5, 8};
    for (int i = 0; i < 5; i++) {
        hid_t g = H5Gcreate2(mw, names[noweights[i]], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        set_fstrs(g, "weight_names", NULL, 0);
        H5Gclose(g);
    }
    hsize_t k4[4] = {3, 3, FC, FF};
    const hsize_t d1[4][2] = {{FF}, {FF}, {FF}, {FF}}, dn[3][2] = {{FN}, {FN}, {FN}},
                  dd1[2][2] = {{FN, FU}, {FU}}, dd2[2][2] = {{FU, FO}, {FO}};
    const int r4[1] = {4}, r1[4] = {1, 1, 1, 1}, r21[2] = {2, 1};
    const char *cw[] = {"c1/kernel:0"};
    const float *cd[] = {f_ck};
    add_weights(mw, "c1", cw, 1, cd, k4, r4, NULL);
    const char *b1w[] = {"bn1/gamma:0", "bn1/beta:0", "bn1/moving_mean:0", "bn1/moving_variance:0"};
    const float *b1d[] = {f_bn1[0], f_bn1[1], f_bn1[2], f_bn1[3]};
    add_weights(mw, "bn1", b1w, 4, b1d, NULL, r1, d1);
    const char *b2w[] = {"bn2/gamma:0", "bn2/moving_mean:0", "bn2/moving_variance:0"};
    const float *b2d[] = {f_bn2[0], f_bn2[1], f_bn2[2]};
    add_weights(mw, "bn2", b2w, 3, b2d, NULL, r1, dn);
    const char *d1w[] = {"d1/kernel:0", "d1/bias:0"};
    const float *d1d[] = {f_d1k, f_d1b};
    add_weights(mw, "d1", d1w, 2, d1d, NULL, r21, dd1);
    const char *d2w[] = {"out/kernel:0", "out/bias:0"};
    const float *d2d[] = {f_d2k, f_d2b};
    add_weights(mw, "out", d2w, 2, d2d, NULL, r21, dd2);
    H5Gclose(mw);
    H5Fclose(f);

    ft_keras_result r;
    ft_err err = {0};
    int rc = ft_keras_import(p, NULL, &r, &err);
    if (!CHECK(rc == FT_OK)) {
        printf("functional: %s\n", err.msg);
        ft_keras_result_free(&r);
        return;
    }
    /* c1 bn1 a1 p1 f bn2 d1 lk out */
    CHECK(r.model.nlayers == 9);
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"c1\"; type = \"conv2d\"; filters = 3; kernel = "
                                      "3; padding = 1; bias = false; }");
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"bn1\"; type = \"batchnorm\"; momentum = 0.1; "
                                      "eps = 0.001; }");
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"p1\"; type = \"maxpool2d\"; size = 3; stride = "
                                      "1; padding = 1; }");
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"lk\"; type = \"leaky_relu\"; slope = 0.1; }");
    CHECK_STR_CONTAINS(r.config_text, "momentum = 0.01");
    /* bn2 has no beta: ftune's bias is 0 */
    CHECK(r.model.layers[5].params[1].data[7] == 0.0f);

    enum { N = 2 };
    float xh[N][FH * FH * FC], xc[N * FC * FH * FH], ref[N][FO];
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < FH * FH * FC; i++)
            xh[n][i] = val(40 + n, i);
        for (int h = 0; h < FH; h++)
            for (int w = 0; w < FH; w++)
                for (int c = 0; c < FC; c++)
                    xc[n * FC * FH * FH + (c * FH + h) * FH + w] = xh[n][(h * FH + w) * FC + c];
        functional_reference(xh[n], ref[n]);
    }
    if (CHECK(ft_model_alloc(&r.model, N, &err) == FT_OK)) {
        ft_ctx c = {0};
        c.n = N;
        const float *out = ft_model_forward(&r.model, &c, xc);
        double maxdiff = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < FO; o++)
                maxdiff = fmax(maxdiff, fabs((double)out[n * FO + o] - ref[n][o]));
        printf("functional model with batchnorm: max |ftune - keras| = %.3g\n", maxdiff);
        CHECK_NEAR(maxdiff, 0.0, 1e-5);
    }
    ft_keras_result_free(&r);

    /* a skip connection (out takes d1, not lk): not a chain, refused */
    char *branched = strdup(functional_json);
    char *at = strstr(branched, "[[[\"lk\", 0, 0");
    CHECK(at != NULL);
    if (at)
        memcpy(at + 4, "d1", 2);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "model_config");
    set_vstr(f, "model_config", branched);
    H5Fclose(f);
    free(branched);
    CHECK(ft_keras_import(p, NULL, &r, &err) == FT_EINPUT);
    printf("branched functional model: %s\n", err.msg);
    CHECK_STR_CONTAINS(err.msg, "layer 'out' (Dense)");
    CHECK_STR_CONTAINS(err.msg, "not a single chain");
    ft_keras_result_free(&r);
}

/* BatchNormalization(scale=false): no gamma in the file; ftune's weight is 1.
 * Imported from model_config and, as a weights-only file, with a config. */
static void check_bn_noscale(const ft_keras_result *r, const float *beta, const float *mean,
                             const float *var)
{
    const ft_layer *bn = &r->model.layers[1];
    CHECK(!strcmp(bn->ops->kind, "batchnorm") && bn->nparams == 4);
    if (bn->nparams != 4)
        return;
    int bad = 0;
    for (int i = 0; i < 3; i++)
        bad += bn->params[0].data[i] != 1.0f || bn->params[1].data[i] != beta[i] ||
               bn->params[2].data[i] != mean[i] || bn->params[3].data[i] != var[i];
    CHECK(bad == 0);
}

static void test_bn_noscale(void)
{
    const float d1k[6] = {1, 2, 3, 4, 5, 6}, d1b[3] = {0.1f, 0.2f, 0.3f};
    const float beta[3] = {-1, 0.5f, 2}, mean[3] = {0.25f, -0.5f, 1}, var[3] = {1, 2, 3};
    const float d2k[6] = {1, -1, 2, -2, 3, -3}, d2b[2] = {0, 1};
    for (int weights_only = 0; weights_only < 2; weights_only++) {
        const char *p = path_in(weights_only ? "bn_w.h5" : "bn_full.h5");
        hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        set_vstr(f, "keras_version", "2.2.4");
        hid_t mw = f;
        if (!weights_only) {
            set_vstr(f, "model_config",
                     "{\"class_name\": \"Sequential\", \"config\": [{\"class_name\": \"Dense\", "
                     "\"config\": {\"name\": \"d1\", \"units\": 3, \"batch_input_shape\": [null, "
                     "2]}}, {\"class_name\": \"BatchNormalization\", \"config\": {\"name\": "
                     "\"bn\", \"scale\": false}}, {\"class_name\": \"Dense\", \"config\": "
                     "{\"name\": \"d2\", \"units\": 2}}]}");
            mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        }
        const char *names[] = {"d1", "bn", "d2"};
        set_fstrs(mw, "layer_names", names, 3);
        const hsize_t k1[2][2] = {{2, 3}, {3}}, kb[3][2] = {{3}, {3}, {3}},
                      k2[2][2] = {{3, 2}, {2}};
        const int r21[2] = {2, 1}, r1[3] = {1, 1, 1};
        const char *w1[] = {"d1/kernel:0", "d1/bias:0"};
        const float *v1[] = {d1k, d1b};
        add_weights(mw, "d1", w1, 2, v1, NULL, r21, k1);
        const char *wb[] = {"bn/beta:0", "bn/moving_mean:0", "bn/moving_variance:0"};
        const float *vb[] = {beta, mean, var};
        add_weights(mw, "bn", wb, 3, vb, NULL, r1, kb);
        const char *w2[] = {"d2/kernel:0", "d2/bias:0"};
        const float *v2[] = {d2k, d2b};
        add_weights(mw, "d2", w2, 2, v2, NULL, r21, k2);
        if (mw != f)
            H5Gclose(mw);
        H5Fclose(f);

        ft_keras_opts o;
        ft_keras_opts_default(&o);
        const char *cfg = path_in("bn.cfg");
        write_text(cfg, "model = { input = [2]; layers = ("
                        "{ name = \"d1\"; type = \"dense\"; units = 3; },"
                        "{ name = \"bn\"; type = \"batchnorm\"; },"
                        "{ name = \"d2\"; type = \"dense\"; units = 2; }); };\n");
        if (weights_only)
            o.config_path = cfg;
        ft_keras_result r;
        ft_err err = {0};
        int rc = ft_keras_import(p, &o, &r, &err);
        if (CHECK(rc == FT_OK))
            check_bn_noscale(&r, beta, mean, var);
        else
            printf("bn scale=false (%s): %s\n", weights_only ? "weights only" : "full", err.msg);
        ft_keras_result_free(&r);
        if (weights_only) {
            /* affine = false in the config, but the file has beta: refused */
            write_text(cfg, "model = { input = [2]; layers = ("
                            "{ name = \"d1\"; type = \"dense\"; units = 3; },"
                            "{ name = \"bn\"; type = \"batchnorm\"; affine = false; },"
                            "{ name = \"d2\"; type = \"dense\"; units = 2; }); };\n");
            CHECK(ft_keras_import(p, &o, &r, &err) == FT_EINPUT);
            CHECK_STR_CONTAINS(err.msg, "affine = false");
            ft_keras_result_free(&r);
        }
    }
}

/* An import that must fail with FT_EINPUT and a message holding every needle. */
static void expect_error(const char *file, int flags, const char *what, const char *n1,
                         const char *n2, const char *n3)
{
    const char *p = path_in(file);
    if (flags >= 0)
        write_keras(p, flags);
    ft_keras_result r;
    ft_err err = {0};
    int rc = ft_keras_import(p, NULL, &r, &err);
    printf("%s: %s\n", what, err.msg);
    CHECK(rc == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);
    if (n1)
        CHECK_STR_CONTAINS(err.msg, n1);
    if (n2)
        CHECK_STR_CONTAINS(err.msg, n2);
    if (n3)
        CHECK_STR_CONTAINS(err.msg, n3);
    ft_keras_result_free(&r);
}

/* Dense(1000000) on 1000000 features: 4 TB of kernel that the file only
 * claims (a chunked dataset with no chunks written). */
static void write_giant(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    set_vstr(f, "keras_version", "2.2.4");
    set_vstr(f, "model_config",
             "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", \"layers\": ["
             "{\"class_name\": \"Dense\", \"config\": {\"name\": \"huge\", \"units\": 1000000, "
             "\"batch_input_shape\": [null, 1000000], \"activation\": \"linear\"}}]}}");
    hid_t mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[] = {"huge"};
    set_fstrs(mw, "layer_names", names, 1);
    hid_t g = H5Gcreate2(mw, "huge", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *wn[] = {"huge/kernel:0", "huge/bias:0"};
    set_fstrs(g, "weight_names", wn, 2);
    hsize_t dims[2] = {1000000, 1000000}, chunk[2] = {1, 1024}, bd[1] = {1000000};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(g, "huge/kernel:0", H5T_IEEE_F32LE, s, lcpl, dcpl, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    write_ds(g, "huge/bias:0", 1, bd, NULL, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
    H5Gclose(g);
    H5Gclose(mw);
    H5Fclose(f);
}

static void test_hostile(void)
{
    expect_error("unsupported.h5", UNSUPPORTED, "unsupported layer", "'lstm_1'", "LSTM",
                 "supported: Dense, Conv2D");
    expect_error("missing_weight.h5", MISSING_WEIGHT, "missing weight", "'fc'", "fc/bias:0",
                 "missing");
    expect_error("missing_group.h5", MISSING_GROUP, "missing layer", "'fc'", "no weights", NULL);
    expect_error("int_kernel.h5", INT_KERNEL, "integer kernel", "'fc'", "int32", "float32");
    expect_error("external.h5", EXTERNAL_LINK, "external link", "'fc'", "fc/kernel:0",
                 "link to another file");
    expect_error("bad_shape.h5", BAD_SHAPE, "wrong shape", "'fc'", "[27, 5]", "expected [27, 4]");
    expect_error("softmax_inside.h5", SOFTMAX_INSIDE, "softmax inside", "'conv'", "softmax", NULL);
    write_giant(path_in("giant.h5"));
    expect_error("giant.h5", -1, "giant sparse dataset", "'huge'", "huge/kernel:0",
                 "truncated or sparse");

    /* a truncated copy of a good file */
    const char *good = path_in("good.h5");
    write_keras(good, 0);
    FILE *in = fopen(good, "rb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *bytes = malloc((size_t)size);
    CHECK(fread(bytes, 1, (size_t)size, in) == (size_t)size);
    fclose(in);
    FILE *out = fopen(path_in("truncated.h5"), "wb");
    fwrite(bytes, 1, (size_t)size / 2, out);
    fclose(out);
    free(bytes);
    expect_error("truncated.h5", -1, "truncated file", NULL, NULL, NULL);

    /* not a Keras file, not HDF5, missing */
    hid_t f = H5Fcreate(path_in("plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_error("plain.h5", -1, "no layer_names", "not a Keras HDF5 file", NULL, NULL);
    write_text(path_in("text.h5"), "hello\n");
    expect_error("text.h5", -1, "not HDF5", "not an HDF5 file", NULL, NULL);
    expect_error("absent.h5", -1, "absent", "cannot open", NULL, NULL);
}

/* `test_keras --write-fixtures DIR`: the hostile files for
 * tests/integration/t_keras_hostile.sh (the CLI's messages and exit codes). */
static int write_fixtures(const char *d)
{
    static const struct {
        const char *name;
        int flags;
    } files[] = {
        {"good.h5", 0},
        {"unsupported.h5", UNSUPPORTED},
        {"missing_weight.h5", MISSING_WEIGHT},
        {"missing_group.h5", MISSING_GROUP},
        {"int_kernel.h5", INT_KERNEL},
        {"bad_shape.h5", BAD_SHAPE},
        {"external.h5", EXTERNAL_LINK},
        {"weights_only.h5", WEIGHTS_ONLY},
    };
    char p[700];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i].name);
        write_keras(p, files[i].flags);
    }
    snprintf(p, sizeof p, "%s/giant.h5", d);
    write_giant(p);
    return 0;
}

int main(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    init_weights();
    if (argc == 3 && !strcmp(argv[1], "--write-fixtures"))
        return write_fixtures(argv[2]);
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    test_full_model();
    test_weights_only();
    test_keras1_th();
    test_functional();
    test_bn_noscale();
    test_hostile();
    return tu_done("test_keras");
}
