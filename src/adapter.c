/* LoRA adapter files and merging: see include/ftune/adapter.h. */
#define _GNU_SOURCE /* realpath */
#include "ftune/adapter.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/freeze.h"
#include "ftune/kv.h"
#include "ftune/pretrained.h"

int ft_adapter_mode(const ft_config *c)
{
    return c->lora && c->pretrained[0];
}

int ft_base_ref_make(const ft_config *c, const ft_model *m, ft_base_ref *ref, ft_err *err)
{
    memset(ref, 0, sizeof *ref);
    char *abs = realpath(c->pretrained, NULL);
    if (!abs)
        return ft_fail(err, FT_EINPUT, "%s: pretrained.file %s: %s", c->origin, c->pretrained,
                       strerror(errno));
    snprintf(ref->path, sizeof ref->path, "%s", c->pretrained);
    snprintf(ref->resolved, sizeof ref->resolved, "%s", abs);
    free(abs);
    ref->fingerprint = ft_base_fingerprint(m, &ref->values);
    return FT_OK;
}

int ft_load_model_file(const ft_config *c, const char *path, ft_model *m, ft_base_ref *ref,
                       int *is_adapter, ft_err *err)
{
    ft_base_ref r;
    int found = 0;
    if (is_adapter)
        *is_adapter = 0;
    int rc = ft_read_base_ref(path, &r, &found, err);
    if (rc)
        return rc;
    if (!found)
        return ft_load_weights(path, m, NULL, 0, 1, NULL, NULL, err);
    const char *base = NULL;
    if (r.resolved[0] && access(r.resolved, R_OK) == 0)
        base = r.resolved;
    else if (r.path[0] && access(r.path, R_OK) == 0)
        base = r.path;
    if (!base)
        return ft_fail(err, FT_EINPUT,
                       "%s: its base model %s (%s when the adapters were saved) cannot be read: "
                       "an adapter file holds only the adapters and the tensors that trained; "
                       "put the base model back there (or export with --merge-lora while it is "
                       "there)",
                       path, r.path, r.resolved);
    const char *reinit[FT_MAX_LAYERS];
    int nreinit = c->nreinit < FT_MAX_LAYERS ? c->nreinit : FT_MAX_LAYERS;
    for (int i = 0; i < nreinit; i++)
        reinit[i] = c->reinit[i];
    ft_model_init_params(m, c->seed);
    rc = ft_load_pretrained(base, m, reinit, nreinit, &c->pretrained_map, NULL, NULL, err);
    if (rc)
        return ft_err_prefix(err, "%s: loading its base model", path);
    uint64_t values;
    uint64_t fp = ft_base_fingerprint(m, &values);
    if (fp != r.fingerprint || values != r.values)
        return ft_fail(err, FT_EINPUT,
                       "%s: its base model %s is not the one the adapters were trained on (the "
                       "base tensors have fingerprint %016" PRIx64 " over %" PRIu64
                       " values, the adapter file expects %016" PRIx64 " over %" PRIu64
                       "): the base file changed or another file is at that path",
                       path, base, fp, values, r.fingerprint, r.values);
    rc = ft_load_adapter_weights(path, m, err);
    if (!rc && ref)
        *ref = r;
    if (!rc && is_adapter)
        *is_adapter = 1;
    return rc;
}

int ft_lora_merge(ft_model *m, const ft_config *c)
{
    int merged = 0;
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        const ft_layer_spec *sp = NULL;
        for (int k = 0; k < c->nlayers && !sp; k++)
            if (strcmp(c->layers[k].name, l->name) == 0)
                sp = &c->layers[k];
        if (!sp)
            continue;
        long rank = ft_kv_int(&sp->kv, "lora_rank", 0);
        double alpha = ft_kv_float(&sp->kv, "lora_alpha", (double)rank);
        if (rank <= 0)
            continue;
        const float scale = (float)(alpha / (double)rank);
        for (int j = 0; j + 1 < l->nparams; j++) {
            ft_param *A = &l->params[j], *B = &l->params[j + 1];
            size_t n = strlen(A->name);
            if (n <= 7 || strcmp(A->name + n - 7, "_lora_A") != 0)
                continue;
            /* the weight: "<target>" (dense: weight) or "<target>_weight" (attn_qkv) */
            char wname[sizeof A->name + 8], wname2[sizeof A->name + 8];
            snprintf(wname, sizeof wname, "%.*s", (int)(n - 7), A->name);
            snprintf(wname2, sizeof wname2, "%s_weight", wname);
            ft_param *W = NULL;
            for (int k = 0; k < l->nparams; k++)
                if (strcmp(l->params[k].name, wname) == 0 || strcmp(l->params[k].name, wname2) == 0)
                    W = &l->params[k];
            if (!W)
                continue;
            const int r = A->shape.d[0], in = A->shape.d[1], out = B->shape.d[0];
            /* W [out, in] += scale * B [out, r] A [r, in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, scale, B->data, r,
                        A->data, in, 1.0f, W->data, in);
            memset(B->data, 0, B->count * sizeof *B->data);
            merged++;
        }
    }
    return merged;
}
