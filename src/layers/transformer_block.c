/* One transformer block, residual connections included, so that the
 * sequential model can hold a GPT-2 or BERT encoder as a chain of layers.
 * Per sample [T, D] -> [T, D]:
 *
 *   pre_ln  (GPT-2): x2 = x + drop(attn(ln1(x)));  y = x2 + drop(mlp(ln2(x2)))
 *   post_ln (BERT):  h  = ln1(x + drop(attn(x)));  y = ln2(h + drop(mlp(h)))
 *
 * attn: multi-head self-attention with a fused q/k/v projection (GPT-2's
 * c_attn): qkv = h Wqkv^T + bqkv, Wqkv [3D, D] with the q rows first, then k,
 * then v; head j uses columns [j*D/H, (j+1)*D/H) of each. Scores are
 * q k^T / sqrt(D/H); key positions s >= the sample's length (ctx->lengths)
 * and, when causal, s > t are masked out; softmax, dropout on the
 * probabilities, times v, then the output projection Wout [D, D].
 * A query row with no visible key (only when a sample's length is 0) gets
 * all-zero probabilities: its attention output is the projection's bias and
 * no gradient flows through its scores. Padded query positions are computed
 * like real ones (they see the real keys) and are ignored by seq_pool.
 * mlp: gelu(h Wfc^T + bfc) Wproj^T + bproj, Wfc [rD, D], Wproj [D, rD].
 * All weights are [out, in] like nn.Linear (GPT-2's Conv1D weights are the
 * transpose). layernorm: per position over D, biased variance, eps.
 *
 * Dropout (rate `dropout`, training only) is applied at three sites, as in
 * Hugging Face GPT-2 and BERT: attention probabilities, the attention output
 * projection and the MLP output, each before its residual add. Masks are a
 * pure function of (seed, epoch, global sample id, layer name, site), and
 * backward regenerates them.
 *
 * saved (per sample, R = T rows): ln1 output h1 [T, D], qkv [T, 3D], the
 * attention context [T, D], the residual after attention (pre: x2, post:
 * ln1's input) [T, D], s2 (pre: ln2's output, post: ln2's input) [T, D], the
 * MLP pre-activation and activation [T, rD] each, four statistics per row,
 * and the attention probabilities [H, T, T]: T * (7D + 2rD + 4) + H T^2
 * floats. Backward needs it (saved_floats > 0, so the model always passes it;
 * without it backward writes a zero dx and no gradients). Forward without
 * saved (evaluation, frozen prefix) runs a few samples at a time through the
 * workspace. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"
#include "lora.h"
#include "seqcommon.h"

enum {
    P_LN1_W,
    P_LN1_B,
    P_QKV_W,
    P_QKV_B,
    P_OUT_W,
    P_OUT_B,
    P_LN2_W,
    P_LN2_B,
    P_FC_W,
    P_FC_B,
    P_PROJ_W,
    P_PROJ_B,
    P_COUNT
};

/* dropout sites; LoRA's input dropout of weight k (L_*) is site SITE_LORA + k */
enum { SITE_PROBS = 1, SITE_ATTN_OUT = 2, SITE_MLP_OUT = 3, SITE_LORA = 16 };

/* the linear weights LoRA can adapt */
enum { L_QKV, L_OUT, L_FC, L_PROJ, L_COUNT };
static const char *const lora_weights[L_COUNT] = {"attn_qkv", "attn_out", "mlp_fc", "mlp_proj"};

/* rows per forward chunk when nothing is kept for backward */
#define TB_CHUNK_ROWS 2048

typedef struct tb_priv {
    int heads, ratio, post_ln, causal, tanh_gelu;
    float dropout, eps;
    int T, D, F, hd; /* setup */
    ft_lora lora;
    int lora_a[L_COUNT]; /* index of <weight>_lora_A, -1 without an adapter */
} tb_priv;

typedef struct tb_bufs {
    float *h1, *qkv, *a, *r, *s2, *u, *g, *m1, *r1, *m2, *r2, *probs;
} tb_bufs;

static const ft_keydef tb_keys[] = {
    {"heads", FT_KV_INT, 1, "attention heads; must divide D"},
    {"mlp_ratio", FT_KV_INT, 0, "MLP width as a multiple of D (default 4)"},
    {"style", FT_KV_STRING, 0, "\"pre_ln\" (GPT-2, default) or \"post_ln\" (BERT)"},
    {"causal", FT_KV_BOOL, 0, "position t attends to positions <= t only (default false)"},
    {"dropout", FT_KV_FLOAT, 0, "dropout rate of probabilities and residual branches (default 0)"},
    {"eps", FT_KV_FLOAT, 0, "layernorm eps, > 0 (default 1e-5; BERT uses 1e-12)"},
    {"activation", FT_KV_STRING, 0,
     "\"gelu_tanh\" (GPT-2's gelu_new; default for pre_ln) or \"gelu\" (exact; default for "
     "post_ln)"},
    FT_LORA_KEYDEFS,
    {NULL, 0, 0, NULL},
};

static int tb_bad(ft_layer *l, const ft_kvlist *kv, const char *key, const char *msg, ft_err *err)
{
    const ft_kv *e = ft_kv_find(kv, key);
    const char *where = kv->where[0] ? kv->where : "config";
    if (e && e->line > 0)
        return ft_fail(err, FT_EINPUT, "%s:%d: layer '%s' (transformer_block): %s %s", where,
                       e->line, l->name, key, msg);
    return ft_fail(err, FT_EINPUT, "%s: layer '%s' (transformer_block): %s %s", where, l->name, key,
                   msg);
}

static int tb_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long heads = ft_kv_int(kv, "heads", 0), ratio = ft_kv_int(kv, "mlp_ratio", 4);
    double rate = ft_kv_float(kv, "dropout", 0.0), eps = ft_kv_float(kv, "eps", 1e-5);
    const char *style = ft_kv_string(kv, "style", "pre_ln");
    if (heads < 1 || heads > 4096)
        return tb_bad(l, kv, "heads", "must be in [1, 4096]", err);
    if (ratio < 1 || ratio > 64)
        return tb_bad(l, kv, "mlp_ratio", "must be in [1, 64]", err);
    if (!(rate >= 0.0 && rate < 1.0))
        return tb_bad(l, kv, "dropout", "must be in [0, 1)", err);
    if (!(eps > 0.0 && eps < 1.0))
        return tb_bad(l, kv, "eps", "must be in (0, 1)", err);
    int post = strcmp(style, "post_ln") == 0;
    if (!post && strcmp(style, "pre_ln") != 0)
        return tb_bad(l, kv, "style", "must be \"pre_ln\" or \"post_ln\"", err);
    const char *act = ft_kv_string(kv, "activation", post ? "gelu" : "gelu_tanh");
    int tanh_gelu = strcmp(act, "gelu_tanh") == 0;
    if (!tanh_gelu && strcmp(act, "gelu") != 0)
        return tb_bad(l, kv, "activation", "must be \"gelu_tanh\" or \"gelu\"", err);
    tb_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->heads = (int)heads;
    p->ratio = (int)ratio;
    p->post_ln = post;
    p->causal = ft_kv_bool(kv, "causal", 0);
    p->tanh_gelu = tanh_gelu;
    p->dropout = (float)rate;
    p->eps = (float)eps;
    l->priv = p;
    return ft_lora_create(l, kv, &p->lora, err);
}

static int tb_setup(ft_layer *l, ft_err *err)
{
    tb_priv *p = l->priv;
    char buf[64];
    if (l->in.rank != 2 || l->in.d[0] < 1 || l->in.d[1] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (transformer_block): input shape %s must be [T, D]", l->name,
                       ft_shape_str(&l->in, buf, sizeof buf));
    const long T = l->in.d[0], D = l->in.d[1];
    if (D % p->heads != 0)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (transformer_block): heads = %d does not divide the width D = "
                       "%ld of input %s",
                       l->name, p->heads, D, ft_shape_str(&l->in, buf, sizeof buf));
    if (D * p->ratio > (1L << 24) || T > (1L << 20))
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (transformer_block): input %s with mlp_ratio %d is too large",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf), p->ratio);
    p->T = (int)T;
    p->D = (int)D;
    p->F = (int)(D * p->ratio);
    p->hd = (int)(D / p->heads);
    l->out = l->in;
    l->nparams = 0;
    const int d = p->D, f = p->F;
    const ft_shape vd = ft_shape1(d), v3 = ft_shape1(3 * d), vf = ft_shape1(f);
    const ft_shape wqkv = {2, {3 * d, d, 0, 0}}, wout = {2, {d, d, 0, 0}};
    const ft_shape wfc = {2, {f, d, 0, 0}}, wproj = {2, {d, f, 0, 0}};
    ft_layer_add_param(l, "ln1_weight", &vd, 1, FT_INIT_ONE, 0.0f);
    ft_layer_add_param(l, "ln1_bias", &vd, 1, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "attn_qkv_weight", &wqkv, 1, FT_INIT_NORMAL, 0.02f);
    ft_layer_add_param(l, "attn_qkv_bias", &v3, 1, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "attn_out_weight", &wout, 1, FT_INIT_NORMAL, 0.02f);
    ft_layer_add_param(l, "attn_out_bias", &vd, 1, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "ln2_weight", &vd, 1, FT_INIT_ONE, 0.0f);
    ft_layer_add_param(l, "ln2_bias", &vd, 1, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "mlp_fc_weight", &wfc, 1, FT_INIT_NORMAL, 0.02f);
    ft_layer_add_param(l, "mlp_fc_bias", &vf, 1, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "mlp_proj_weight", &wproj, 1, FT_INIT_NORMAL, 0.02f);
    ft_layer_add_param(l, "mlp_proj_bias", &vd, 1, FT_INIT_ZERO, 0.0f);
    const int lin[L_COUNT] = {d, d, d, f}, lout[L_COUNT] = {3 * d, d, f, d};
    for (int k = 0; k < L_COUNT; k++)
        p->lora_a[k] = ft_lora_targets(&p->lora, lora_weights[k])
                           ? ft_lora_add_params(l, &p->lora, lora_weights[k], lin[k], lout[k])
                           : -1;
    return FT_OK;
}

/* Carves the buffers of ns samples out of base (base NULL: just counts).
 * Returns the floats used. */
static size_t tb_layout(const tb_priv *p, int ns, int with_probs, float *base, tb_bufs *b)
{
    const size_t S = (size_t)(ns > 0 ? ns : 0), R = S * (size_t)p->T, D = (size_t)p->D;
    const size_t F = (size_t)p->F, TT = (size_t)p->T * (size_t)p->T;
    const size_t nprobs = with_probs ? S * (size_t)p->heads * TT : 0;
    size_t off = 0;
    float **slot[] = {&b->h1, &b->qkv, &b->a,  &b->r,  &b->s2, &b->u,
                      &b->g,  &b->m1,  &b->r1, &b->m2, &b->r2, &b->probs};
    const size_t count[] = {R * D, 3 * R * D, R * D, R * D, R * D, R * F,
                            R * F, R,         R,     R,     R,     nprobs};
    for (size_t k = 0; k < sizeof count / sizeof count[0]; k++) {
        *slot[k] = base && count[k] ? base + off : NULL;
        off += count[k];
    }
    return off;
}

static size_t tb_saved_floats(const ft_layer *l, int n)
{
    tb_bufs b;
    return tb_layout(l->priv, n, 1, NULL, &b);
}

static int tb_chunk(const tb_priv *p, int n)
{
    int k = TB_CHUNK_ROWS / p->T;
    if (k < 1)
        k = 1;
    return k < n ? k : n;
}

/* Two T x T scratch matrices come first in the workspace. */
static size_t tb_workspace_floats(const ft_layer *l, int n)
{
    const tb_priv *p = l->priv;
    tb_bufs b;
    const size_t TT = (size_t)p->T * (size_t)p->T;
    const size_t R = (size_t)(n > 0 ? n : 0) * (size_t)p->T;
    const int chunk = tb_chunk(p, n);
    size_t fwd = tb_layout(p, chunk, 0, NULL, &b);
    size_t bwd = R * (6 * (size_t)p->D + (size_t)p->F); /* dqkv, three [R, D], [R, rD] */
    /* LoRA's scratch follows (its widest input is the MLP's F) */
    fwd += ft_lora_ws_floats(&p->lora, (size_t)(chunk > 0 ? chunk : 0) * (size_t)p->T, p->F);
    bwd += ft_lora_ws_floats(&p->lora, R, p->F);
    return 2 * TT + (fwd > bwd ? fwd : bwd);
}

static int tb_drop_active(const ft_layer *l, const ft_ctx *c)
{
    return c->training && ((const tb_priv *)l->priv)->dropout > 0.0f;
}

/* Residual-branch dropout over samples [i0, i0 + ns) of the batch. */
static void tb_drop_rows(const ft_layer *l, const ft_ctx *c, int i0, int ns, uint64_t site,
                         const float *in, float *out)
{
    const tb_priv *p = l->priv;
    const size_t TD = (size_t)p->T * (size_t)p->D;
    for (int k = 0; k < ns; k++) {
        ft_rng r;
        ft_seq_drop_rng(l, c, i0 + k, site, &r);
        ft_seq_drop_apply(&r, p->dropout, in + k * TD, out + k * TD, TD);
    }
}

/* Masked softmax of the scores S [T, T] in place: row t sees keys s < its
 * limit (length, and t + 1 when causal); a row that sees none is all zero. */
static void tb_softmax(const tb_priv *p, int len, float *S)
{
    const int T = p->T;
    for (int t = 0; t < T; t++) {
        float *row = S + (size_t)t * T;
        int nk = p->causal && t + 1 < len ? t + 1 : len;
        if (nk <= 0) {
            memset(row, 0, sizeof(float) * (size_t)T);
            continue;
        }
        float mx = row[0];
        for (int s = 1; s < nk; s++)
            mx = row[s] > mx ? row[s] : mx;
        float sum = 0.0f;
        for (int s = 0; s < nk; s++) {
            row[s] = expf(row[s] - mx);
            sum += row[s];
        }
        const float inv = 1.0f / sum;
        for (int s = 0; s < nk; s++)
            row[s] *= inv;
        for (int s = nk; s < T; s++)
            row[s] = 0.0f;
    }
}

/* Attention of samples [i0, i0 + ns): qkv [ns*T, 3D] -> context a [ns*T, D].
 * probs [ns, H, T, T] is kept when non-NULL; tmp holds 2 T x T. */
static void tb_attn_fwd(const ft_layer *l, const ft_ctx *c, int i0, int ns, const float *qkv,
                        float *a, float *probs, float *tmp)
{
    const tb_priv *p = l->priv;
    const int T = p->T, D = p->D, H = p->heads, hd = p->hd;
    const size_t TT = (size_t)T * T;
    const float scale = 1.0f / sqrtf((float)hd);
    const int drop = tb_drop_active(l, c);
    for (int k = 0; k < ns; k++) {
        const int len = ft_seq_length(c, i0 + k, T);
        const float *base = qkv + (size_t)k * T * 3 * D;
        ft_rng r;
        if (drop)
            ft_seq_drop_rng(l, c, i0 + k, SITE_PROBS, &r);
        for (int h = 0; h < H; h++) {
            const float *Q = base + (size_t)h * hd, *K = Q + D, *V = Q + 2 * D;
            float *P = probs ? probs + ((size_t)k * H + h) * TT : tmp;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q, 3 * D, K,
                        3 * D, 0.0f, P, T);
            tb_softmax(p, len, P);
            const float *Pd = P;
            if (drop) {
                ft_seq_drop_apply(&r, p->dropout, P, tmp + TT, TT);
                Pd = tmp + TT;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, Pd, T, V, 3 * D,
                        0.0f, a + (size_t)k * T * D + (size_t)h * hd, D);
        }
    }
}

/* Backward of tb_attn_fwd over the whole batch: da [n*T, D] -> dqkv. */
static void tb_attn_bwd(const ft_layer *l, const ft_ctx *c, const float *qkv, const float *probs,
                        const float *da, float *dqkv, float *tmp)
{
    const tb_priv *p = l->priv;
    const int T = p->T, D = p->D, H = p->heads, hd = p->hd;
    const size_t TT = (size_t)T * T;
    const float scale = 1.0f / sqrtf((float)hd);
    const int drop = tb_drop_active(l, c);
    for (int i = 0; i < c->n; i++) {
        const size_t q0 = (size_t)i * T * 3 * D;
        ft_rng r;
        if (drop)
            ft_seq_drop_rng(l, c, i, SITE_PROBS, &r);
        for (int h = 0; h < H; h++) {
            const float *Q = qkv + q0 + (size_t)h * hd, *K = Q + D, *V = Q + 2 * D;
            float *dQ = dqkv + q0 + (size_t)h * hd, *dK = dQ + D, *dV = dQ + 2 * D;
            const float *dA = da + (size_t)i * T * D + (size_t)h * hd;
            const float *P = probs + ((size_t)i * H + h) * TT, *Pd = P;
            float *dP = tmp;
            ft_rng r2 = r; /* the same mask again for dP */
            if (drop) {
                ft_seq_drop_apply(&r, p->dropout, P, tmp + TT, TT);
                Pd = tmp + TT;
            }
            /* dV = Pd^T dA; dPd = dA V^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, Pd, T, dA, D, 0.0f,
                        dV, 3 * D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dA, D, V, 3 * D,
                        0.0f, dP, T);
            if (drop)
                ft_seq_drop_apply(&r2, p->dropout, dP, dP, TT);
            /* softmax: dS = P * (dP - sum_s P dP) */
            for (int t = 0; t < T; t++) {
                const float *pr = P + (size_t)t * T;
                float *gr = dP + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s < T; s++)
                    dot += pr[s] * gr[s];
                for (int s = 0; s < T; s++)
                    gr[s] = pr[s] * (gr[s] - dot);
            }
            /* dQ = scale dS K; dK = scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dP, T, K, 3 * D,
                        0.0f, dQ, 3 * D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dP, T, Q, 3 * D,
                        0.0f, dK, 3 * D);
        }
    }
}

static void add_into(float *y, const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] += x[j];
}

static void tb_lora_dims(const tb_priv *p, int k, int *in, int *out)
{
    *in = k == L_PROJ ? p->F : p->D;
    *out = k == L_QKV ? 3 * p->D : k == L_FC ? p->F : p->D;
}

/* y += the adapter of weight k, if it has one, for samples [i0, i0 + ns). */
static void tb_lora_fwd(const ft_layer *l, const ft_ctx *c, int k, int i0, int ns, const float *x,
                        float *y, float *lws)
{
    const tb_priv *p = l->priv;
    const int a = p->lora_a[k];
    int in, out;
    tb_lora_dims(p, k, &in, &out);
    if (a >= 0)
        ft_lora_fwd(l, c, &p->lora, SITE_LORA + (uint64_t)k, i0, p->T, (size_t)ns * (size_t)p->T,
                    in, out, x, &l->params[a], &l->params[a + 1], y, lws);
}

/* The adapter's gradients and its part of dx (+=), over the whole batch. */
static void tb_lora_bwd(const ft_layer *l, const ft_ctx *c, int k, const float *x, const float *dy,
                        float *dx, float *lws)
{
    const tb_priv *p = l->priv;
    const int a = p->lora_a[k];
    int in, out;
    tb_lora_dims(p, k, &in, &out);
    if (a >= 0)
        ft_lora_bwd(l, c, &p->lora, SITE_LORA + (uint64_t)k, p->T, (size_t)c->n * (size_t)p->T, in,
                    out, x, dy, &l->params[a], &l->params[a + 1], dx, lws);
}

/* Forward of samples [i0, i0 + ns); x and y point at sample i0. lws: LoRA's
 * scratch. */
static void tb_fwd_chunk(ft_layer *l, const ft_ctx *c, int i0, int ns, const float *x, float *y,
                         const tb_bufs *b, float *tmp, float *lws)
{
    const tb_priv *p = l->priv;
    const size_t R = (size_t)ns * (size_t)p->T, RD = R * (size_t)p->D;
    const int D = p->D, F = p->F, drop = tb_drop_active(l, c);
    const ft_param *P = l->params;
    if (!p->post_ln) {
        ft_seq_ln_fwd(R, D, p->eps, x, P[P_LN1_W].data, P[P_LN1_B].data, b->h1, b->m1, b->r1);
        ft_seq_linear_fwd(R, D, 3 * D, b->h1, P[P_QKV_W].data, P[P_QKV_B].data, b->qkv);
        tb_lora_fwd(l, c, L_QKV, i0, ns, b->h1, b->qkv, lws);
        tb_attn_fwd(l, c, i0, ns, b->qkv, b->a, b->probs, tmp);
        ft_seq_linear_fwd(R, D, D, b->a, P[P_OUT_W].data, P[P_OUT_B].data, b->r);
        tb_lora_fwd(l, c, L_OUT, i0, ns, b->a, b->r, lws);
        if (drop)
            tb_drop_rows(l, c, i0, ns, SITE_ATTN_OUT, b->r, b->r);
        add_into(b->r, x, RD);
        ft_seq_ln_fwd(R, D, p->eps, b->r, P[P_LN2_W].data, P[P_LN2_B].data, b->s2, b->m2, b->r2);
        ft_seq_linear_fwd(R, D, F, b->s2, P[P_FC_W].data, P[P_FC_B].data, b->u);
        tb_lora_fwd(l, c, L_FC, i0, ns, b->s2, b->u, lws);
        ft_seq_gelu_fwd(R * (size_t)F, p->tanh_gelu, b->u, b->g);
        ft_seq_linear_fwd(R, F, D, b->g, P[P_PROJ_W].data, P[P_PROJ_B].data, y);
        tb_lora_fwd(l, c, L_PROJ, i0, ns, b->g, y, lws);
        if (drop)
            tb_drop_rows(l, c, i0, ns, SITE_MLP_OUT, y, y);
        add_into(y, b->r, RD);
    } else {
        ft_seq_linear_fwd(R, D, 3 * D, x, P[P_QKV_W].data, P[P_QKV_B].data, b->qkv);
        tb_lora_fwd(l, c, L_QKV, i0, ns, x, b->qkv, lws);
        tb_attn_fwd(l, c, i0, ns, b->qkv, b->a, b->probs, tmp);
        ft_seq_linear_fwd(R, D, D, b->a, P[P_OUT_W].data, P[P_OUT_B].data, b->r);
        tb_lora_fwd(l, c, L_OUT, i0, ns, b->a, b->r, lws);
        if (drop)
            tb_drop_rows(l, c, i0, ns, SITE_ATTN_OUT, b->r, b->r);
        add_into(b->r, x, RD);
        ft_seq_ln_fwd(R, D, p->eps, b->r, P[P_LN1_W].data, P[P_LN1_B].data, b->h1, b->m1, b->r1);
        ft_seq_linear_fwd(R, D, F, b->h1, P[P_FC_W].data, P[P_FC_B].data, b->u);
        tb_lora_fwd(l, c, L_FC, i0, ns, b->h1, b->u, lws);
        ft_seq_gelu_fwd(R * (size_t)F, p->tanh_gelu, b->u, b->g);
        ft_seq_linear_fwd(R, F, D, b->g, P[P_PROJ_W].data, P[P_PROJ_B].data, b->s2);
        tb_lora_fwd(l, c, L_PROJ, i0, ns, b->g, b->s2, lws);
        if (drop)
            tb_drop_rows(l, c, i0, ns, SITE_MLP_OUT, b->s2, b->s2);
        add_into(b->s2, b->h1, RD);
        ft_seq_ln_fwd(R, D, p->eps, b->s2, P[P_LN2_W].data, P[P_LN2_B].data, y, b->m2, b->r2);
    }
}

static void tb_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const tb_priv *p = l->priv;
    const int n = c->n;
    if (n <= 0)
        return;
    const size_t TT = (size_t)p->T * p->T, TD = (size_t)p->T * p->D;
    tb_bufs b;
    if (saved) {
        tb_layout(p, n, 1, saved, &b);
        tb_fwd_chunk(l, c, 0, n, x, y, &b, c->ws, c->ws + 2 * TT);
        return;
    }
    const int chunk = tb_chunk(p, n);
    float *lws = c->ws + 2 * TT + tb_layout(p, chunk, 0, NULL, &b);
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int ns = n - i0 < chunk ? n - i0 : chunk;
        tb_layout(p, ns, 0, c->ws + 2 * TT, &b);
        tb_fwd_chunk(l, c, i0, ns, x + (size_t)i0 * TD, y + (size_t)i0 * TD, &b, c->ws, lws);
    }
}

static void tb_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                        const float *dy, float *dx, const float *saved)
{
    const tb_priv *p = l->priv;
    const int n = c->n, D = p->D, F = p->F, drop = tb_drop_active(l, c);
    if (n <= 0)
        return;
    const size_t R = (size_t)n * p->T, RD = R * (size_t)D, TT = (size_t)p->T * p->T;
    if (!saved) { /* precondition broken: see the comment at the top */
        if (dx)
            memset(dx, 0, sizeof(float) * RD);
        return;
    }
    tb_bufs b;
    tb_layout(p, n, 1, (float *)saved, &b);
    const ft_param *P = l->params;
    float *G[P_COUNT];
    for (int j = 0; j < P_COUNT; j++)
        G[j] = P[j].grad;
    float *tmp = c->ws, *dqkv = tmp + 2 * TT, *dA = dqkv + 3 * RD, *dB = dA + RD, *dC = dB + RD;
    float *dF = dC + RD, *lws = dF + R * (size_t)F;

    if (!p->post_ln) {
        const float *dm = dy;
        if (drop) {
            tb_drop_rows(l, c, 0, n, SITE_MLP_OUT, dy, dA);
            dm = dA;
        }
        ft_seq_linear_bwd(R, F, D, b.g, P[P_PROJ_W].data, dm, G[P_PROJ_W], G[P_PROJ_B], dF, 0);
        tb_lora_bwd(l, c, L_PROJ, b.g, dm, dF, lws);
        ft_seq_gelu_bwd(R * (size_t)F, p->tanh_gelu, b.u, dF, dF);
        ft_seq_linear_bwd(R, D, F, b.s2, P[P_FC_W].data, dF, G[P_FC_W], G[P_FC_B], dA, 0);
        tb_lora_bwd(l, c, L_FC, b.s2, dF, dA, lws);
        memcpy(dB, dy, sizeof(float) * RD); /* dB = d x2: residual + ln2 */
        ft_seq_ln_bwd(R, D, b.r, b.m2, b.r2, P[P_LN2_W].data, dA, G[P_LN2_W], G[P_LN2_B], dB, 1);
        const float *dao = dB;
        if (drop) {
            tb_drop_rows(l, c, 0, n, SITE_ATTN_OUT, dB, dA);
            dao = dA;
        }
        ft_seq_linear_bwd(R, D, D, b.a, P[P_OUT_W].data, dao, G[P_OUT_W], G[P_OUT_B], dC, 0);
        tb_lora_bwd(l, c, L_OUT, b.a, dao, dC, lws);
        tb_attn_bwd(l, c, b.qkv, b.probs, dC, dqkv, tmp);
        ft_seq_linear_bwd(R, D, 3 * D, b.h1, P[P_QKV_W].data, dqkv, G[P_QKV_W], G[P_QKV_B], dA, 0);
        tb_lora_bwd(l, c, L_QKV, b.h1, dqkv, dA, lws);
        if (dx)
            memcpy(dx, dB, sizeof(float) * RD);
        ft_seq_ln_bwd(R, D, x, b.m1, b.r1, P[P_LN1_W].data, dA, G[P_LN1_W], G[P_LN1_B], dx, 1);
    } else {
        ft_seq_ln_bwd(R, D, b.s2, b.m2, b.r2, P[P_LN2_W].data, dy, G[P_LN2_W], G[P_LN2_B], dB, 0);
        const float *dm = dB;
        if (drop) {
            tb_drop_rows(l, c, 0, n, SITE_MLP_OUT, dB, dA);
            dm = dA;
        }
        ft_seq_linear_bwd(R, F, D, b.g, P[P_PROJ_W].data, dm, G[P_PROJ_W], G[P_PROJ_B], dF, 0);
        tb_lora_bwd(l, c, L_PROJ, b.g, dm, dF, lws);
        ft_seq_gelu_bwd(R * (size_t)F, p->tanh_gelu, b.u, dF, dF);
        /* dB = d h1: residual + fc */
        ft_seq_linear_bwd(R, D, F, b.h1, P[P_FC_W].data, dF, G[P_FC_W], G[P_FC_B], dB, 1);
        tb_lora_bwd(l, c, L_FC, b.h1, dF, dB, lws);
        ft_seq_ln_bwd(R, D, b.r, b.m1, b.r1, P[P_LN1_W].data, dB, G[P_LN1_W], G[P_LN1_B], dA, 0);
        const float *dao = dA;
        if (drop) {
            tb_drop_rows(l, c, 0, n, SITE_ATTN_OUT, dA, dC);
            dao = dC;
        }
        ft_seq_linear_bwd(R, D, D, b.a, P[P_OUT_W].data, dao, G[P_OUT_W], G[P_OUT_B], dB, 0);
        tb_lora_bwd(l, c, L_OUT, b.a, dao, dB, lws);
        tb_attn_bwd(l, c, b.qkv, b.probs, dB, dqkv, tmp);
        if (dx)
            memcpy(dx, dA, sizeof(float) * RD);
        ft_seq_linear_bwd(R, D, 3 * D, x, P[P_QKV_W].data, dqkv, G[P_QKV_W], G[P_QKV_B], dx, 1);
        tb_lora_bwd(l, c, L_QKV, x, dqkv, dx, lws);
    }
}

/* ---- incremental decoding ------------------------------------------------------------------
 * The cache holds the keys and then the values of positions 0..max_pos-1, [max_pos, D] each;
 * a step at position pos writes row pos of both and attends over rows 0..pos, so it costs
 * O(pos D) for attention plus the O(D^2) projections of one row, not a full re-forward. */

static int tb_step_limit(const ft_layer *l, int *max_pos, ft_err *err)
{
    (void)max_pos;
    if (!((const tb_priv *)l->priv)->causal)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (transformer_block) is not causal: generation needs causal = "
                       "true (a bidirectional block lets a position see the ones after it)",
                       l->name);
    return FT_OK;
}

static size_t tb_step_cache_floats(const ft_layer *l, int max_pos)
{
    return 2 * (size_t)max_pos * (size_t)((const tb_priv *)l->priv)->D;
}

/* per row: qkv [3D], h1, a, r, s2 [D] each, u, g [F] each, mean and rstd; then the scores of
 * one query [max_pos] */
static size_t tb_step_ws_floats(const ft_layer *l, int n, int max_pos)
{
    const tb_priv *p = l->priv;
    return (size_t)n * (7 * (size_t)p->D + 2 * (size_t)p->F + 2) + (size_t)max_pos;
}

/* One query row q [D] against cached keys/values 0..pos: context a [D]. The same masked
 * softmax as tb_softmax for row pos (keys s <= pos). */
static void tb_step_attn(const tb_priv *p, const float *K, const float *V, int pos, const float *q,
                         float *a, float *sc)
{
    const int D = p->D, hd = p->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < p->heads; h++) {
        const int o = h * hd;
        float mx = 0.0f;
        for (int s = 0; s <= pos; s++) {
            const float *k = K + (size_t)s * D + o;
            float dot = 0.0f;
            for (int j = 0; j < hd; j++)
                dot += q[o + j] * k[j];
            sc[s] = dot * scale;
            mx = s == 0 || sc[s] > mx ? sc[s] : mx;
        }
        float sum = 0.0f;
        for (int s = 0; s <= pos; s++) {
            sc[s] = expf(sc[s] - mx);
            sum += sc[s];
        }
        const float inv = 1.0f / sum;
        float *ah = a + o;
        memset(ah, 0, sizeof(float) * (size_t)hd);
        for (int s = 0; s <= pos; s++) {
            const float w = sc[s] * inv, *v = V + (size_t)s * D + o;
            for (int j = 0; j < hd; j++)
                ah[j] += w * v[j];
        }
    }
}

/* tb_fwd_chunk for one new position of each of n sequences: the projections run on the n
 * rows together, attention row by row over each sequence's cache. */
static void tb_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                    float *y, float *ws)
{
    const tb_priv *p = l->priv;
    const int D = p->D, F = p->F;
    const size_t R = (size_t)n, RD = R * (size_t)D;
    const ft_param *P = l->params;
    float *qkv = ws, *h1 = qkv + 3 * RD, *a = h1 + RD, *r = a + RD, *s2 = r + RD, *u = s2 + RD;
    float *g = u + R * F, *mean = g + R * F, *rstd = mean + R, *sc = rstd + R;
    /* pre_ln attends over ln1(x); post_ln over x itself */
    const float *ain = x;
    if (!p->post_ln) {
        ft_seq_ln_fwd(R, D, p->eps, x, P[P_LN1_W].data, P[P_LN1_B].data, h1, mean, rstd);
        ain = h1;
    }
    ft_seq_linear_fwd(R, D, 3 * D, ain, P[P_QKV_W].data, P[P_QKV_B].data, qkv);
    for (int i = 0; i < n; i++) {
        const float *q = qkv + (size_t)i * 3 * D;
        float *K = rows[i].cache, *V = K + (size_t)max_pos * D;
        const size_t at = (size_t)rows[i].pos * D;
        memcpy(K + at, q + D, sizeof(float) * (size_t)D);
        memcpy(V + at, q + 2 * D, sizeof(float) * (size_t)D);
        tb_step_attn(p, K, V, rows[i].pos, q, a + (size_t)i * D, sc);
    }
    ft_seq_linear_fwd(R, D, D, a, P[P_OUT_W].data, P[P_OUT_B].data, r);
    add_into(r, x, RD);
    if (!p->post_ln) {
        ft_seq_ln_fwd(R, D, p->eps, r, P[P_LN2_W].data, P[P_LN2_B].data, s2, mean, rstd);
        ft_seq_linear_fwd(R, D, F, s2, P[P_FC_W].data, P[P_FC_B].data, u);
        ft_seq_gelu_fwd(R * (size_t)F, p->tanh_gelu, u, g);
        ft_seq_linear_fwd(R, F, D, g, P[P_PROJ_W].data, P[P_PROJ_B].data, y);
        add_into(y, r, RD);
    } else {
        ft_seq_ln_fwd(R, D, p->eps, r, P[P_LN1_W].data, P[P_LN1_B].data, h1, mean, rstd);
        ft_seq_linear_fwd(R, D, F, h1, P[P_FC_W].data, P[P_FC_B].data, u);
        ft_seq_gelu_fwd(R * (size_t)F, p->tanh_gelu, u, g);
        ft_seq_linear_fwd(R, F, D, g, P[P_PROJ_W].data, P[P_PROJ_B].data, s2);
        add_into(s2, h1, RD);
        ft_seq_ln_fwd(R, D, p->eps, s2, P[P_LN2_W].data, P[P_LN2_B].data, y, mean, rstd);
    }
}

const ft_layer_ops ft_transformer_block_ops = {
    .kind = "transformer_block",
    .keys = tb_keys,
    .create = tb_create,
    .setup = tb_setup,
    .saved_floats = tb_saved_floats,
    .workspace_floats = tb_workspace_floats,
    .forward = tb_forward,
    .backward = tb_backward,
    .step_limit = tb_step_limit,
    .step_cache_floats = tb_step_cache_floats,
    .step_ws_floats = tb_step_ws_floats,
    .step = tb_step,
};
