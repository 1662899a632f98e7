/* The training loop. Every rank runs the same sequence of collectives; all
 * decisions that could differ between ranks (errors, stop) are agreed on at
 * step boundaries. */
#include "trainer.h"

#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ftune/adapter.h"
#include "ftune/data.h"
#include "ftune/freeze.h"
#include "ftune/h5io.h"
#include "ftune/lmloss.h"
#include "ftune/loss.h"
#include "ftune/metrics.h"
#include "ftune/parallel.h"
#include "ftune/preprocess.h"
#include "ftune/pretrained.h"
#include "ftune/textmetrics.h"
#include "ftune/version.h"

#include "evaluate.h"
#include "featcache.h"
#include "gradsync.h"
#include "prefetch.h"
#include "progress.h"
#include "rundir.h"
#include "shmsync.h"

#define BUCKET_BYTES (1u << 20)

/* Set by SIGUSR1/SIGTERM (Slurm preemption, time limit); acted on at the next
 * step boundary once all ranks agree. */
static volatile sig_atomic_t stop_requested = 0;
static void on_stop_signal(int sig)
{
    stop_requested = sig;
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

typedef struct trainer {
    ft_mpi *w;
    ft_config *cfg;
    ft_model model;
    ft_optim opt;
    ft_gradsync gs;
    ft_shmsync ss; /* the all-reduce when every rank is on one node */
    int use_shm;
    ft_dataset train, eval;
    int have_eval;
    ft_metrics metrics;
    ft_train_state st;
    ft_xent xent;
    /* train.task = "lm": logits [T, V] per sample, targets = the next input token */
    int lm, lm_T, lm_V;
    ft_lm_stats lm_eval;
    ft_progress progress;
    FILE *log; /* metrics.jsonl, rank 0 */

    uint64_t *order;  /* this epoch's rows, t->ntrain of them */
    uint64_t ntrain;  /* rows an epoch visits: train.n, or classes * data.k_shot */
    uint64_t *subset; /* data.k_shot: the chosen rows (order indexes into it); else NULL */
    float *x, *probs, *dlogits;
    int *y;
    uint64_t *ids;
    int local_max;
    ft_prefetch pf;   /* reads the next batch while this one computes */
    ft_featcache fc;  /* frozen-prefix outputs, when train.feature_cache is on */
    double step_time; /* wall time in train_step, this run */
    uint64_t step_samples;
    double rss_base; /* MiB resident before the model's buffers (libraries, MPI) */
    /* Overlap (several ranks, a frozen prefix, no feature cache): while the
     * last step's gradients are all-reduced, the next batch's frozen prefix
     * runs (it does not depend on the update), polling MPI between row chunks. */
    int overlap;
    struct {
        int valid, prefix_done;
        uint64_t epoch, pos;
        ft_batch *b;
    } early;
    long steps_per_epoch, total_steps;
    int higher_is_better;
    int have_baseline; /* the "baseline" evaluation ran (a fresh run): shown beside the result */
    ft_metrics_summary baseline;
    /* non-finite steps (train.max_bad_steps); buffers = the non-learnable parameters
     * (batchnorm running statistics), restored when a step is skipped */
    int bad_steps;
    long bad_total;
    float *buffers;
    size_t nbuffers;
    /* lora with pretrained.file: checkpoints and models are adapter files referencing base
     * (rank 0 only) */
    int adapter;
    ft_base_ref base;
} trainer;

static int is_root(const trainer *t)
{
    return t->w->rank == 0;
}

static void warn_cb(const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "ftune: warning: %s\n", msg);
}

/* Rank 0 loads (or initialises) the weights; everyone receives them. */
static int load_weights(trainer *t, const char *resume_path, ft_err *err)
{
    ft_config *c = t->cfg;
    ft_model_init_params(&t->model, c->seed);
    t->adapter = ft_adapter_mode(c);
    if (is_root(t)) {
        int from_ref = 0;
        if (resume_path) {
            if (!ft_load_model_file(c, resume_path, &t->model, &t->base, &from_ref, err))
                ft_load_train_state(resume_path, &t->model, &t->opt, &t->st, err);
        } else if (c->pretrained[0]) {
            const char *reinit[FT_MAX_LAYERS];
            for (int i = 0; i < c->nreinit && i < FT_MAX_LAYERS; i++)
                reinit[i] = c->reinit[i];
            ft_load_pretrained(c->pretrained, &t->model, reinit, c->nreinit, &c->pretrained_map,
                               warn_cb, NULL, err);
        }
        /* the base reference: the resumed checkpoint's, else pretrained.file now */
        if (!err->code && t->adapter && !from_ref)
            ft_base_ref_make(c, &t->model, &t->base, err);
    }
    if (ft_mpi_agree(t->w, err))
        return err->code;
    ft_mpi_bcast_floats(t->w, t->model.params, t->model.nparams);
    if (resume_path) {
        ft_mpi_bcast_floats(t->w, t->opt.state, t->opt.nstate);
        ft_mpi_bcast_bytes(t->w, &t->opt.t, sizeof t->opt.t);
        ft_mpi_bcast_bytes(t->w, &t->st, sizeof t->st);
    }
    return FT_OK;
}

/* The optimizer and training state of a checkpoint verify too (state_checksum). Only damage
 * makes --resume skip a checkpoint here: a state that does not fit the configuration (another
 * optimizer, other frozen layers) is reported by the real load, not silently skipped. */
static int probe_state(trainer *t, const char *path, ft_model *probe, ft_err *err)
{
    ft_optim po;
    ft_train_state st;
    memset(&po, 0, sizeof po);
    ft_err e = {0};
    int rc = FT_OK;
    if (ft_optim_init(&po, &t->cfg->optim, probe, &e) == FT_OK &&
        ft_load_train_state(path, probe, &po, &st, &e) != FT_OK &&
        (strstr(e.msg, "corrupted") || strstr(e.msg, "damaged") || strstr(e.msg, "cannot read")))
        rc = ft_fail(err, e.code, "%s", e.msg);
    ft_optim_free(&po);
    return rc;
}

static int resolve_resume(trainer *t, const char *resume, char *path, size_t len, ft_err *err)
{
    path[0] = '\0';
    if (!resume)
        return FT_OK;
    if (strcmp(resume, "auto") != 0) {
        snprintf(path, len, "%s", resume);
        return FT_OK;
    }
    /* newest checkpoint that verifies; a damaged one is skipped */
    if (is_root(t)) {
        static char paths[64][1024];
        int n = ft_rundir_list_ckpts(t->cfg->run_dir, paths, 64);
        for (int i = 0; i < n && !path[0]; i++) {
            ft_model probe;
            ft_err e2 = {0};
            if (ft_config_build_model(t->cfg, &probe, &e2) == FT_OK &&
                ft_load_model_file(t->cfg, paths[i], &probe, NULL, NULL, &e2) == FT_OK &&
                probe_state(t, paths[i], &probe, &e2) == FT_OK) {
                size_t k = strnlen(paths[i], len - 1);
                memcpy(path, paths[i], k);
                path[k] = '\0';
            } else
                fprintf(stderr, "ftune: warning: skipping checkpoint %s: %s\n", paths[i], e2.msg);
            ft_model_free(&probe);
        }
        if (!path[0])
            printf("ftune: no checkpoint in %s/checkpoints, starting from the beginning\n",
                   t->cfg->run_dir);
    }
    ft_mpi_bcast_bytes(t->w, path, len);
    (void)err;
    return FT_OK;
}

static void log_json(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_json(trainer *t, const char *fmt, ...)
{
    if (!t->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->log, fmt, ap);
    va_end(ap);
    fflush(t->log);
}

static int save_file(trainer *t, const char *path, int checkpoint, const char *metrics_json,
                     ft_err *err)
{
    ft_prefetch_idle(&t->pf); /* HDF5 is not thread-safe: the reader must be idle */
    if (is_root(t))
        ft_save_adapter(path, &t->model, t->cfg->text, checkpoint ? &t->opt : NULL,
                        checkpoint ? &t->st : NULL, metrics_json, t->adapter ? &t->base : NULL,
                        err);
    return ft_mpi_agree(t->w, err);
}

static int checkpoint(trainer *t, ft_err *err)
{
    char path[1024];
    ft_rundir_ckpt_path(t->cfg->run_dir, t->st.step, path, sizeof path);
    if (save_file(t, path, 1, NULL, err)) {
        /* A failed write (disk full) leaves the previous checkpoint as it was. Every rank
         * has the same error (agreed in save_file), so every rank decides the same. */
        if (err->code != FT_ERUNTIME)
            return err->code;
        if (!t->cfg->checkpoint_continue) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len,
                     " (checkpoint.on_error = \"stop\": the previous checkpoint is intact; free "
                     "space and resume with --resume)");
            return err->code;
        }
        if (is_root(t))
            ft_progress_print(&t->progress,
                              "warning: step %ld: checkpoint not written: %s (checkpoint.on_error "
                              "= \"continue\": training goes on, the previous checkpoint is "
                              "kept)\n",
                              t->st.step, err->msg);
        if (is_root(t))
            log_json(t, "{\"type\":\"checkpoint_failed\",\"step\":%ld}\n", t->st.step);
        ft_err_clear(err);
        return FT_OK;
    }
    if (is_root(t)) {
        ft_rundir_prune(t->cfg->run_dir, t->cfg->keep_last);
        log_json(t, "{\"type\":\"checkpoint\",\"step\":%ld,\"path\":\"%s\"}\n", t->st.step, path);
    }
    return FT_OK;
}

static char *metrics_to_json(const ft_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    ft_metrics_json(m, f);
    fclose(f);
    /* strip the trailing newline for embedding */
    while (len && (buf[len - 1] == '\n'))
        buf[--len] = '\0';
    return buf;
}

/* {"loss":...} of the last LM evaluation, malloc'ed. */
static char *lm_json(const ft_lm_stats *e)
{
    char *buf = malloc(256);
    if (buf) {
        double tok = e->tokens > 0 ? e->tokens : 1;
        snprintf(
            buf, 256, "{\"loss\":%.9g,\"perplexity\":%.9g,\"token_accuracy\":%.9g,\"tokens\":%.0f}",
            e->nll / tok, ft_perplexity(e->nll, (uint64_t)e->tokens), e->correct / tok, e->tokens);
    }
    return buf;
}

/* Evaluates on data.eval (every rank; rank 0 prints and logs) and keeps best.h5. The
 * selection metric: eval.best_metric for a classifier, the mean token loss for an LM
 * (perplexity and token accuracy beside it). */
static int evaluate(trainer *t, const char *when, ft_err *err)
{
    if (!t->have_eval)
        return FT_OK;
    ft_prefetch_idle(&t->pf); /* HDF5 is not thread-safe: the reader must be idle */
    t->early.valid = 0;       /* evaluation reuses the activation buffers */
    double v;
    char summary[160];
    char *json = NULL;
    if (t->lm) {
        if (ft_evaluate_lm(t->w, &t->model, &t->eval, &t->lm_eval, err))
            return err->code;
        const ft_lm_stats *e = &t->lm_eval;
        v = e->tokens > 0 ? e->nll / e->tokens : NAN;
        snprintf(summary, sizeof summary,
                 "loss %.4f  perplexity %.3f  token-accuracy %.4f (%.0f tokens)", v,
                 ft_perplexity(e->nll, (uint64_t)e->tokens),
                 e->tokens > 0 ? e->correct / e->tokens : 0.0, e->tokens);
        if (is_root(t))
            json = lm_json(e);
    } else {
        if (ft_evaluate(t->w, &t->model, &t->eval, &t->metrics, err))
            return err->code;
        ft_metrics_summary s = ft_metrics_summarize(&t->metrics);
        v = ft_metrics_value(&s, t->cfg->best_metric);
        if (strcmp(when, "baseline") == 0) {
            t->baseline = s;
            t->have_baseline = 1;
        }
        snprintf(summary, sizeof summary, "loss %.4f  accuracy %.4f  macro-F1 %.4f", s.loss,
                 s.accuracy, s.macro_f1);
        if (is_root(t))
            json = metrics_to_json(&t->metrics);
    }
    t->st.last_metric = v;
    int better = isnan(t->st.best_metric) ||
                 (t->higher_is_better ? v > t->st.best_metric : v < t->st.best_metric);
    if (is_root(t)) {
        ft_progress_print(&t->progress, "eval %-8s step %6ld  %s%s\n", when, t->st.step, summary,
                          better && t->st.step > 0 ? "  (best)" : "");
        log_json(t,
                 "{\"type\":\"eval\",\"when\":\"%s\",\"step\":%ld,\"epoch\":%ld,\"metrics\":%s}\n",
                 when, t->st.step, t->st.epoch, json ? json : "{}");
    }
    int rc = FT_OK;
    if (better && t->st.step > 0) {
        t->st.best_metric = v;
        t->st.best_step = t->st.step;
        char path[1024];
        snprintf(path, sizeof path, "%s/best.h5", t->cfg->run_dir);
        rc = save_file(t, path, 0, json, err);
    }
    free(json);
    return rc;
}

/* Peak resident set of this process so far (VmHWM), MiB. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* data.k_shot: every rank draws the same k rows per class from the seed. */
static int select_kshot(trainer *t, ft_err *err)
{
    ft_config *c = t->cfg;
    t->ntrain = t->train.n;
    if (c->k_shot <= 0)
        return FT_OK;
    int classes = t->train.classes;
    int *labels = ft_calloc(t->train.n, sizeof *labels, err);
    t->subset =
        labels ? ft_calloc((size_t)classes * (size_t)c->k_shot, sizeof *t->subset, err) : NULL;
    if (!t->subset || ft_dataset_labels(&t->train, labels, err)) {
        free(labels);
        return err->code ? err->code : FT_ERUNTIME;
    }
    int short_class = 0;
    uint64_t have = 0;
    int rc = ft_kshot_select(labels, t->train.n, classes, c->k_shot, c->seed, t->subset, &t->ntrain,
                             &short_class, &have);
    free(labels);
    if (rc == FT_EINPUT)
        return ft_fail(err, FT_EINPUT,
                       "%s: data.k_shot = %d but class %d of %s has only %llu row%s (every class "
                       "needs k_shot rows)",
                       c->origin, c->k_shot, short_class, c->train_path, (unsigned long long)have,
                       have == 1 ? "" : "s");
    if (rc)
        return ft_fail(err, FT_ERUNTIME, "cannot select the few-shot rows");
    return FT_OK;
}

/* Feature cache (train.feature_cache): decided and built before the first
 * step, with the frozen weights already loaded. Collective. */
static int start_feature_cache(trainer *t, ft_err *err)
{
    ft_config *c = t->cfg;
    if (!c->feature_cache)
        return FT_OK;
    char why[512];
    int usable = ft_featcache_usable(&t->model, why, sizeof why);
    if (usable && t->lm) {
        usable = 0; /* the targets are the input ids, which cached rows no longer hold */
        snprintf(why, sizeof why,
                 "train.task = \"lm\" takes its targets from the token ids of each batch");
    }
    if (!usable) {
        if (c->feature_cache != FT_FC_AUTO)
            return ft_fail(err, FT_EINPUT, "%s: train.feature_cache = \"%s\" refused: %s",
                           c->origin, c->feature_cache == FT_FC_DISK ? "disk" : "memory", why);
        if (is_root(t))
            printf("feature cache: off (%s)\n", why);
        return FT_OK;
    }
    ft_prefetch_idle(&t->pf);
    size_t budget = (size_t)c->feature_cache_mb << 20;
    if (ft_featcache_build(&t->fc, t->w, &t->model, &t->train, c->feature_cache, budget, c->run_dir,
                           err))
        return err->code;
    if (t->fc.mode == FT_FC_MEMORY)
        ft_prefetch_use_memory(&t->pf, t->fc.x, t->fc.y, t->train.lengths, t->train.n,
                               t->fc.floats);
    else /* the cached rows keep the training set's lengths (padding mask, seq_pool) */
        ft_prefetch_use_dataset(&t->pf, &t->fc.disk, t->train.lengths, t->train.n);
    if (is_root(t)) {
        printf("feature cache: %s, %llu samples x %zu features of '%s' (%.1f MiB%s), built in "
               "%.2f s; training starts at layer '%s'\n",
               t->fc.mode == FT_FC_MEMORY ? "memory" : "disk", (unsigned long long)t->fc.n,
               t->fc.floats, t->model.layers[t->fc.first - 1].name,
               (double)t->fc.n * (double)(t->fc.floats * sizeof(float) + sizeof(int)) / 1048576.0,
               t->fc.mode == FT_FC_MEMORY ? " per rank" : ", file", t->fc.build_seconds,
               t->model.layers[t->fc.first].name);
        fflush(stdout);
    }
    return FT_OK;
}

/* The closing report: training throughput, where the time went and the
 * peak memory against the breakdown. Collective. */
static void report_train_time(trainer *t)
{
    ft_mpi *w = t->w;
    /* per-rank figures: waits, peak RSS (summed into per-rank slots) */
    size_t k = 4, n = (size_t)w->size * k;
    double *v = calloc(n, sizeof *v);
    if (!v)
        return;
    double *mine = v + (size_t)w->rank * k;
    mine[0] = t->pf.wait_seconds;
    mine[1] = t->use_shm ? t->ss.wait_seconds : t->gs.wait_seconds;
    mine[2] = peak_rss_mib();
    mine[3] = t->rss_base;
    ft_mpi_sum_doubles(w, v, n);
    double data_wait = 0, ar_wait = 0, rss = 0, base = 0;
    for (int r = 0; r < w->size; r++) {
        double *x = v + (size_t)r * k;
        data_wait = x[0] > data_wait ? x[0] : data_wait;
        ar_wait = x[1] > ar_wait ? x[1] : ar_wait;
        if (x[2] > rss) {
            rss = x[2];
            base = x[3];
        }
    }
    free(v);
    if (!is_root(t))
        return;
    double T = t->step_time > 1e-9 ? t->step_time : 1e-9;
    printf("train: %llu samples in %.3f s = %.1f samples/s (data wait %.3f s, allreduce wait "
           "%.3f s; max over ranks)\n",
           (unsigned long long)t->step_samples, t->step_time, (double)t->step_samples / T,
           data_wait, ar_wait);
    ft_model_mem mem = ft_model_memory(&t->model);
    double sum = (double)(mem.params + mem.grads + t->opt.nstate * sizeof(float) + mem.activations +
                          mem.workspace + ft_prefetch_bytes(&t->pf) + t->fc.bytes +
                          ft_shmsync_bytes(&t->ss) +
                          (t->ntrain + (t->subset ? t->ntrain : 0)) * sizeof(uint64_t)) /
                 1048576.0;
    printf("peak RSS per rank: %.1f MiB (max over ranks); breakdown sum %.1f MiB (feature cache "
           "%.1f MiB); %.1f MiB resident before the model (libraries, MPI); peak / sum %.2f, "
           "(peak - before) / sum %.2f\n",
           rss, sum, (double)t->fc.bytes / 1048576.0, base, rss / (sum > 0 ? sum : 1),
           (rss - base) / (sum > 0 ? sum : 1));
    fflush(stdout);
}

static int setup(trainer *t, const ft_train_opts *opts, ft_err *err)
{
    ft_config *c = t->cfg;
    ft_mpi *w = t->w;

    ft_mpi_set_blas_threads(w, c->threads);
    t->rss_base = peak_rss_mib(); /* libraries, MPI: before any buffer of the run */
    /* Every step, MPI's non-blocking collectives and the batch reads allocate
     * and free buffers of up to a few MiB. glibc would give each one its own
     * mmap and unmap it on free, so every step pays page faults on fresh
     * pages (~15% of a 2-rank W1 fine-tune step). Keep such blocks in the heap. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (is_root(t))
        ft_rundir_prepare(c->run_dir, err);
    if (ft_mpi_agree(w, err))
        return err->code;

    if (ft_config_build_model(c, &t->model, err) == FT_OK && t->model.ngrads == 0)
        ft_fail(err, FT_EINPUT, "%s: nothing to train: every layer with parameters is frozen",
                c->origin);
    t->lm = c->task == FT_TASK_LM;
    if (!err->code && t->lm)
        ft_check_lm_model(&t->model, c->origin, &t->lm_T, &t->lm_V, err);
    if (!err->code && c->nclass_weights && c->nclass_weights != t->model.classes)
        ft_fail(err, FT_EINPUT,
                "%s: train.loss.class_weights has %d entries but the model has %d classes",
                c->origin, c->nclass_weights, t->model.classes);
    if (ft_mpi_agree(w, err))
        return err->code;

    /* data: every rank opens the files, reading only its own rows later */
    if (ft_dataset_open(&t->train, c->train_path, NULL, err) == FT_OK &&
        ft_dataset_set_preprocess(&t->train, &c->preprocess, &c->input, err) == FT_OK &&
        ft_check_data_fits(&t->train, &t->model, err) == FT_OK)
        select_kshot(t, err);
    if (!err->code && c->eval_path[0]) {
        if (ft_dataset_open(&t->eval, c->eval_path, NULL, err) == FT_OK &&
            ft_dataset_set_preprocess(&t->eval, &c->preprocess, &c->input, err) == FT_OK &&
            ft_check_data_fits(&t->eval, &t->model, err) == FT_OK)
            t->have_eval = 1;
    }
    /* the per-rank batch buffer: refused here, with the reason, rather than wrapping a size
     * (one sample already fits the memory limit, so the product below cannot overflow) */
    if (!err->code &&
        ft_check_alloc(((size_t)c->batch_size + (size_t)w->size - 1) / (size_t)w->size,
                       t->train.sample_floats * sizeof(float),
                       "one batch of training samples per rank (train.batch_size / ranks)", err))
        ft_err_prefix(err, "%s", c->origin);
    if (ft_mpi_agree(w, err))
        return err->code;

    uint64_t B = (uint64_t)c->batch_size;
    t->local_max = (int)((B + (uint64_t)w->size - 1) / (uint64_t)w->size);
    /* Evaluation runs in chunks of the per-rank training batch, so the
     * activation buffers are sized once, for training (eval.batch_size would
     * make them up to batch_size / local batch times larger). */
    int rows = t->local_max;
    if (ft_model_alloc(&t->model, rows, err) == FT_OK &&
        ft_optim_init(&t->opt, &c->optim, &t->model, err) == FT_OK &&
        ft_gradsync_init(&t->gs, w, t->model.grads, t->model.ngrads, BUCKET_BYTES, err) == FT_OK &&
        /* an LM's outputs are T x V logits, not classes: its evaluation keeps token counts
         * (ft_lm_stats), so no confusion matrix */
        (ft_metrics_init(&t->metrics, t->lm ? 1 : t->model.classes) == 0 ||
         ft_fail(err, FT_ERUNTIME, "out of memory for the %d-class confusion matrix",
                 t->model.classes) == FT_OK)) {
        size_t nl = (size_t)t->local_max;
        size_t feat = 0; /* the feature cache's rows are the first trainable layer's input */
        if (t->model.first_trainable > 0)
            feat = ft_shape_count(&t->model.layers[t->model.first_trainable - 1].out);
        ft_prefetch_init(&t->pf, &t->train, t->local_max,
                         c->feature_cache ? feat : t->train.sample_floats, c->prefetch, err);
        t->probs = ft_alloc_floats(nl * (size_t)t->model.classes, err);
        t->dlogits = ft_alloc_floats(nl * (size_t)t->model.classes, err);
        t->ids = ft_calloc(nl, sizeof *t->ids, err);
        t->order = ft_calloc(t->ntrain, sizeof *t->order, err);
    }
    if (ft_mpi_agree(w, err))
        return err->code;
    t->model.grad_ready = ft_gradsync_ready;
    t->model.grad_ready_user = &t->gs;
    /* Experimental, opt-in (FTUNE_ALLREDUCE=shm): with every rank on one node,
     * gradients summed through shared memory (shmsync.h). Alone it moves 16.8 MB
     * 3-6x faster than MPI's all-reduce on the 2-core machines, but in training
     * runs there, shared with other jobs, waiting for the other rank dominated
     * and no gain could be shown; the default stays the bucketed MPI_Iallreduce. */
    const char *ar = getenv("FTUNE_ALLREDUCE");
    if (ar && strcmp(ar, "shm") == 0 && ft_shmsync_applies(w) &&
        t->model.ngrads <= ((size_t)1 << 27)) {
        if (ft_shmsync_init(&t->ss, w, t->model.grads, t->model.ngrads, err) == FT_OK) {
            t->use_shm = 1;
            t->model.grad_ready = ft_shmsync_ready;
            t->model.grad_ready_user = &t->ss;
        }
        if (ft_mpi_agree(w, err))
            return err->code;
    }

    t->st.seed = c->seed;
    t->st.best_metric = NAN;
    t->st.last_metric = NAN;
    t->higher_is_better = strcmp(c->best_metric, "loss") != 0;
    char resume_path[1024];
    resolve_resume(t, opts->resume, resume_path, sizeof resume_path, err);
    if (load_weights(t, resume_path[0] ? resume_path : NULL, err))
        return err->code;
    if (resume_path[0] && is_root(t))
        printf("resuming from %s at step %ld (epoch %ld, sample %llu of %llu)\n", resume_path,
               t->st.step, t->st.epoch + 1, (unsigned long long)t->st.epoch_pos,
               (unsigned long long)t->ntrain);
    t->st.world_size = w->size;

    t->xent.classes = t->model.classes;
    t->xent.smoothing = c->label_smoothing;
    t->xent.class_weights = c->class_weights;

    long micro = (long)((t->ntrain + B - 1) / B);
    t->steps_per_epoch = (micro + c->accum_steps - 1) / c->accum_steps;
    t->total_steps = t->steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < t->total_steps)
        t->total_steps = c->max_steps;
    if (c->schedule.type == FT_SCHED_COSINE && c->schedule.total_steps <= 0)
        c->schedule.total_steps = t->total_steps;

    if (is_root(t)) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->run_dir);
        t->log = fopen(path, "a");
        if (!t->log)
            fprintf(stderr, "ftune: warning: cannot write %s\n", path);
        ft_model_mem mem = ft_model_memory(&t->model);
        size_t opt_bytes = t->opt.nstate * sizeof(float);
        size_t data_bytes = ft_prefetch_bytes(&t->pf) +
                            (size_t)t->local_max *
                                (sizeof(uint64_t) + 2 * (size_t)t->model.classes * sizeof(float)) +
                            (t->ntrain + (t->subset ? t->ntrain : 0)) * sizeof(uint64_t);
        printf("ftune %s: %d rank%s x %d BLAS thread%s, %llu training samples, global batch %d, "
               "%ld steps\n",
               FTUNE_VERSION, w->size, w->size > 1 ? "s" : "", w->blas_threads,
               w->blas_threads > 1 ? "s" : "", (unsigned long long)t->ntrain, c->batch_size,
               t->total_steps);
        printf("model: %d layers, %zu parameters, %zu trainable (first trainable layer: '%s')\n",
               t->model.nlayers, t->model.nparams, t->model.ngrads,
               t->model.layers[t->model.first_trainable].name);
        printf("memory per rank: parameters %.2f MiB, gradients %.2f MiB, optimizer %.2f MiB, "
               "activations %.2f MiB, workspace %.2f MiB, data buffers %.2f MiB, all-reduce "
               "buffers %.2f MiB\n",
               mem.params / 1048576.0, mem.grads / 1048576.0, opt_bytes / 1048576.0,
               mem.activations / 1048576.0, mem.workspace / 1048576.0, data_bytes / 1048576.0,
               ft_shmsync_bytes(&t->ss) / 1048576.0);
        fflush(stdout);
    }
    ft_progress_init(&t->progress, c->progress, t->total_steps);
    return FT_OK;
}

/* 1 when no element is Inf or NaN (exponent bits all ones). */
typedef struct finite_job {
    const uint32_t *u;
    atomic_int bad;
} finite_job;

static void finite_range(size_t lo, size_t hi, void *ctx)
{
    finite_job *j = ctx;
    uint32_t bad = 0;
    for (size_t i = lo; i < hi; i++)
        bad |= (j->u[i] & 0x7f800000u) == 0x7f800000u;
    if (bad)
        atomic_store(&j->bad, 1);
}

/* Every gradient finite (no Inf/NaN exponent)? Scanned on the compute threads. */
static int all_finite(const float *g, size_t n)
{
    finite_job j = {(const uint32_t *)(const void *)g, 0};
    ft_parallel_range(n, 1 << 18, finite_range, &j);
    return !atomic_load(&j.bad);
}

/* This rank's rows of the global batch at position pos of the epoch order. */
static int batch_ids(const trainer *t, uint64_t pos, uint64_t *ids)
{
    uint64_t N = t->ntrain, B = (uint64_t)t->cfg->batch_size;
    uint64_t bsz = N - pos < B ? N - pos : B;
    uint64_t begin, len;
    ft_split(bsz, t->w->size, t->w->rank, &begin, &len);
    for (uint64_t i = 0; i < len; i++)
        ids[i] = t->order[pos + begin + i];
    return (int)len;
}

#define FT_TOO_MANY_BAD (-2) /* internal: train.max_bad_steps consecutive skipped steps */

/* Saves (restore == 0) or restores the non-learnable parameters, which training forward
 * passes change (batchnorm running statistics): a skipped step keeps none of its effects. */
static void copy_buffers(trainer *t, int restore)
{
    if (!t->buffers && !restore) {
        size_t n = 0;
        for (int i = 0; i < t->model.nlayers; i++)
            for (int j = 0; j < t->model.layers[i].nparams; j++)
                if (!t->model.layers[i].params[j].learnable)
                    n += t->model.layers[i].params[j].count;
        if (n == 0)
            return;
        t->buffers = ft_alloc_floats(n, NULL);
        t->nbuffers = t->buffers ? n : 0;
    }
    size_t off = 0;
    for (int i = 0; i < t->model.nlayers && t->buffers; i++)
        for (int j = 0; j < t->model.layers[i].nparams; j++) {
            ft_param *p = &t->model.layers[i].params[j];
            if (p->learnable || off + p->count > t->nbuffers)
                continue;
            if (restore)
                memcpy(p->data, t->buffers + off, p->count * sizeof(float));
            else
                memcpy(t->buffers + off, p->data, p->count * sizeof(float));
            off += p->count;
        }
}

/* Lets the buckets already handed to MPI_Iallreduce progress (ft_model's
 * progress callback, between the frozen prefix's row chunks). */
static void poll_gradsync(void *user)
{
    ft_gradsync *g = user;
    if (g->nreq > 0) {
        int done;
        MPI_Testall(g->nreq, g->reqs, &done, MPI_STATUSES_IGNORE);
    }
}

static ft_ctx train_ctx(const trainer *t, const ft_batch *b)
{
    ft_ctx ctx = {0};
    ctx.n = b->n;
    ctx.training = 1;
    ctx.seed = t->cfg->seed;
    ctx.epoch = (uint64_t)t->st.epoch;
    ctx.sample_ids = b->ids;
    ctx.lengths = b->has_len ? b->len : NULL; /* padding mask, seq_pool */
    ctx.reduce = t->w->size > 1 ? ft_mpi_reduce_cb : NULL;
    ctx.reduce_user = t->w;
    return ctx;
}

/* The batch at position pos of this epoch, and the read of the one after it. */
static ft_batch *get_batch(trainer *t, uint64_t pos)
{
    uint64_t N = t->ntrain, B = (uint64_t)t->cfg->batch_size;
    uint64_t bsz = N - pos < B ? N - pos : B;
    int n = batch_ids(t, pos, t->ids);
    ft_batch *b = ft_prefetch_get(&t->pf, (uint64_t)t->st.epoch, pos, t->ids, n);
    if (pos + bsz < N) { /* the next batch of this epoch: read it while this one computes */
        int nn = batch_ids(t, pos + bsz, t->ids);
        ft_prefetch_post(&t->pf, (uint64_t)t->st.epoch, pos + bsz, t->ids, nn);
    }
    return b;
}

/* 1 when the frozen prefix may run ahead for the next batch: several ranks,
 * a prefix of at least two layers that treat rows independently (no
 * batchnorm with batch statistics), and no feature cache. */
static int can_overlap(const trainer *t)
{
    const ft_model *m = &t->model;
    if (t->w->size < 2 || t->fc.active || m->first_trainable < 2 ||
        m->first_trainable >= m->nlayers)
        return 0;
    for (int i = 0; i < m->first_trainable; i++)
        if (strcmp(m->layers[i].ops->kind, "batchnorm") == 0 && !m->layers[i].frozen)
            return 0;
    return 1;
}

/* One optimizer step: up to accum_steps micro-batches of the global batch. */
static int train_step(trainer *t, double *loss_out, uint64_t *samples_out, ft_err *err)
{
    ft_config *c = t->cfg;
    ft_mpi *w = t->w;
    uint64_t N = t->ntrain, B = (uint64_t)c->batch_size;
    uint64_t pos = t->st.epoch_pos;
    long remaining = (long)((N - pos + B - 1) / B);
    int micro = remaining < c->accum_steps ? (int)remaining : c->accum_steps;
    double loss_local = 0;
    *samples_out = 0;

    ft_model_zero_grads(&t->model);
    copy_buffers(t, 0);
    for (int a = 0; a < micro; a++) {
        uint64_t bsz = N - pos < B ? N - pos : B;
        ft_batch *b;
        int have_prefix = 0;
        if (a == 0 && t->early.valid && t->early.epoch == (uint64_t)t->st.epoch &&
            t->early.pos == pos) { /* read, and its prefix run, during the last step */
            b = t->early.b;
            have_prefix = t->early.prefix_done;
        } else
            b = get_batch(t, pos);
        t->early.valid = 0;
        int n = b->n;
        ft_err_clear(err);
        if (b->err.code)
            *err = b->err;
        /* the loss denominator is global: sum of sample weights over ranks */
        /* one small all-reduce: the global loss denominator (sum of sample
         * weights) and whether any rank was asked to stop */
        const int *lens = b->has_len ? b->len : NULL;
        long bad = -1;
        if (!err->code && t->lm && (bad = ft_lm_bad_row(b->x, lens, n, t->lm_T, t->lm_V)) >= 0)
            ft_fail(err, FT_EINPUT,
                    "%s: sample %llu has a token id outside [0, %d), the vocabulary of the LM "
                    "head '%s'",
                    t->train.path, (unsigned long long)b->ids[bad], t->lm_V,
                    t->model.layers[t->model.nlayers - 1].name);
        /* lm: the global count of target tokens (t + 1 < length; with prompt lengths only
         * the target part of each row) */
        const int *plens = b->has_plen ? b->plen : NULL;
        double pre[2] = {err->code ? 0
                         : t->lm   ? ft_lm_targets_prompt(lens, plens, n, t->lm_T)
                                   : ft_xent_weight_sum(&t->xent, b->y, n),
                         stop_requested ? 1 : 0};
        ft_mpi_sum_doubles(w, pre, 2);
        if (ft_mpi_agree(w, err))
            return err->code;
        if (a == 0 && pre[1] > 0)
            return FT_STOPPED;
        double denom = pre[0] > 0 ? pre[0] : 1;

        ft_ctx ctx = train_ctx(t, b);
        if (a == micro - 1) {
            if (t->use_shm)
                ft_shmsync_begin(&t->ss);
            else
                ft_gradsync_begin(&t->gs);
        }
        int ft = t->model.first_trainable;
        const float *logits =
            have_prefix    ? ft_model_forward_from(&t->model, &ctx, ft, t->model.act[ft - 1])
            : t->fc.active ? ft_model_forward_from(&t->model, &ctx, t->fc.first, b->x)
                           : ft_model_forward_range(&t->model, &ctx, 0, t->model.nlayers, b->x);
        double lsum;
        if (t->lm) {
            ft_lm_stats ls = {0, 0, 0};
            ft_lm_loss_prompt(logits, b->x, ctx.lengths, plens, n, t->lm_T, t->lm_V,
                              (float)(1.0 / (denom * micro)), t->dlogits, &ls);
            lsum = ls.nll;
        } else {
            double wsum;
            lsum = ft_xent_forward(&t->xent, logits, b->y, n, t->probs, &wsum, NULL);
            ft_xent_backward(&t->xent, t->probs, b->y, n, (float)(1.0 / (denom * micro)),
                             t->dlogits);
        }
        /* A non-finite loss poisons this rank's output gradient, so the all-reduced gradient
         * is non-finite on every rank and every rank skips the step below. */
        if (n > 0 && !isfinite(lsum))
            t->dlogits[0] = NAN;
        ft_model_backward(&t->model, &ctx, t->dlogits);
        loss_local += lsum / denom / micro;
        pos += bsz;
        *samples_out += bsz;
    }
    if (t->overlap && pos < N) { /* the next batch's frozen prefix while the buckets travel */
        ft_batch *nb = get_batch(t, pos);
        t->early.valid = 1;
        t->early.epoch = (uint64_t)t->st.epoch;
        t->early.pos = pos;
        t->early.b = nb;
        t->early.prefix_done = 0;
        if (!nb->err.code) {
            ft_ctx ctx = train_ctx(t, nb);
            t->model.progress = poll_gradsync;
            t->model.progress_user = &t->gs;
            ft_model_forward_range(&t->model, &ctx, 0, t->model.first_trainable, nb->x);
            t->model.progress = NULL;
            t->early.prefix_done = 1;
        }
    }
    if (t->use_shm)
        ft_shmsync_finish(&t->ss);
    else
        ft_gradsync_finish(&t->gs);

    /* identical gradients on every rank, so every rank decides the same. The
     * norm is needed only for clipping; otherwise a vectorised scan for
     * Inf/NaN bits gives the same decision at a fraction of the cost. */
    double norm = c->clip_grad_norm > 0 ? ft_grad_norm(t->model.grads, t->model.ngrads)
                  : all_finite(t->model.grads, t->model.ngrads) ? 0.0
                                                                : NAN;
    if (!isfinite(norm)) {
        t->bad_steps++;
        t->bad_total++;
        copy_buffers(t, 1); /* what the batch did to the running statistics is undone */
        if (is_root(t)) {
            ft_progress_print(&t->progress,
                              "warning: step %ld: non-finite loss or gradient, update skipped "
                              "(%d in a row, %ld in this run; train.max_bad_steps = %d)\n",
                              t->st.step + 1, t->bad_steps, t->bad_total, c->max_bad_steps);
            log_json(t, "{\"type\":\"skipped_step\",\"step\":%ld,\"in_a_row\":%d}\n",
                     t->st.step + 1, t->bad_steps);
        }
    } else {
        t->bad_steps = 0;
        if (c->clip_grad_norm > 0)
            ft_clip_grad_norm(t->model.grads, t->model.ngrads, c->clip_grad_norm);
        float lr = ft_schedule_lr(&c->schedule, c->optim.lr, t->st.step);
        ft_optim_step(&t->opt, &t->model, lr);
    }
    t->st.step++;
    t->st.epoch_pos = pos;
    t->st.samples_seen += *samples_out;
    *loss_out = loss_local;
    if (c->max_bad_steps > 0 && t->bad_steps >= c->max_bad_steps)
        return FT_TOO_MANY_BAD;
    return FT_OK;
}

/* Every rank saw the stop request at the same step boundary: write one
 * checkpoint of the state before this step and tell the caller to requeue. */
static int stop_with_checkpoint(trainer *t, ft_err *err)
{
    if (is_root(t))
        ft_progress_done(&t->progress);
    if (checkpoint(t, err))
        return err->code;
    if (is_root(t)) {
        printf("stop requested (signal): checkpoint written at step %ld; exiting with code %d "
               "so the job can be requeued and resumed with --resume\n",
               t->st.step, FT_EXIT_REQUEUE);
        fflush(stdout);
    }
    return FT_EXIT_REQUEUE;
}

/* train.max_bad_steps consecutive steps were skipped: the weights and optimizer state are
 * still those of the last good step. Write them as a checkpoint and fail (exit 1). */
static int stop_bad_steps(trainer *t, ft_err *err)
{
    if (is_root(t))
        ft_progress_done(&t->progress);
    if (checkpoint(t, err))
        return err->code;
    char path[1024];
    ft_rundir_ckpt_path(t->cfg->run_dir, t->st.step, path, sizeof path);
    return ft_fail(err, FT_ERUNTIME,
                   "stopped at step %ld: %d consecutive steps had a non-finite loss or gradient "
                   "(train.max_bad_steps = %d); %s holds the last good state (the weights of "
                   "step %ld). Lower train.optimizer.lr or set train.clip_grad_norm, check the "
                   "data for NaN/Inf, then continue with --resume",
                   t->st.step, t->bad_steps, t->cfg->max_bad_steps, path,
                   t->st.step - t->bad_steps);
}

static int run(trainer *t, ft_err *err)
{
    ft_config *c = t->cfg;
    int fresh = t->st.step == 0 && t->st.epoch == 0 && t->st.epoch_pos == 0;
    if (fresh && evaluate(t, "baseline", err))
        return err->code;
    double epoch_t0 = ft_now(), epoch_time = t->step_time;
    uint64_t epoch_samples = 0;
    if (start_feature_cache(t, err))
        return err->code;
    t->overlap = can_overlap(t);
    t->step_time += ft_now() - epoch_t0; /* building the cache is part of the first epoch */

    double log_loss = 0, t_log = ft_now(), shown_loss = NAN;
    long log_steps = 0;
    uint64_t log_samples = 0;
    int stop = 0;
    for (; t->st.epoch < c->epochs && !stop; t->st.epoch++, t->st.epoch_pos = 0) {
        if (ft_epoch_order(t->ntrain, c->seed, (uint64_t)t->st.epoch, c->shuffle, t->order))
            return ft_fail(err, FT_ERUNTIME, "cannot build the epoch order");
        if (t->subset)
            for (uint64_t i = 0; i < t->ntrain; i++)
                t->order[i] = t->subset[t->order[i]];
        while (t->st.epoch_pos < t->ntrain) {
            if (c->max_steps > 0 && t->st.step >= c->max_steps) {
                stop = 1;
                break;
            }
            double loss = 0;
            uint64_t samples = 0;
            double step_t0 = ft_now();
            int rc = train_step(t, &loss, &samples, err);
            t->step_time += ft_now() - step_t0;
            t->step_samples += samples;
            epoch_samples += samples;
            if (rc == FT_STOPPED)
                return stop_with_checkpoint(t, err);
            if (rc == FT_TOO_MANY_BAD)
                return stop_bad_steps(t, err);
            if (rc)
                return rc;
            log_loss += loss;
            log_steps++;
            log_samples += samples;
            long step = t->st.step;
            int last = step == t->total_steps;
            if (step % c->log_every == 0 || last) {
                double buf[1] = {log_loss};
                ft_mpi_sum_doubles(t->w, buf, 1);
                double now = ft_now();
                double sps = (double)log_samples / (now - t_log > 1e-9 ? now - t_log : 1e-9);
                shown_loss = buf[0] / (double)log_steps;
                float lr = ft_schedule_lr(&c->schedule, c->optim.lr, step - 1);
                if (is_root(t)) {
                    if (!t->progress.bar)
                        ft_progress_print(&t->progress,
                                          "epoch %ld step %ld/%ld  loss %.4f  lr %.5g  %.0f "
                                          "samples/s\n",
                                          t->st.epoch + 1, step, t->total_steps, shown_loss, lr,
                                          sps);
                    log_json(t,
                             "{\"type\":\"train\",\"step\":%ld,\"epoch\":%ld,\"loss\":%.6g,"
                             "\"lr\":%.6g,\"samples_per_s\":%.1f}\n",
                             step, t->st.epoch, shown_loss, lr, sps);
                }
                log_loss = 0;
                log_steps = 0;
                log_samples = 0;
                t_log = now;
            }
            if (is_root(t))
                ft_progress_update(&t->progress, (int)t->st.epoch, c->epochs, step, shown_loss, 0);
            if (c->eval_every > 0 && step % c->eval_every == 0 && !last &&
                evaluate(t, "periodic", err))
                return err->code;
            if (c->checkpoint_every > 0 && step % c->checkpoint_every == 0 && !last &&
                checkpoint(t, err))
                return err->code;
        }
        if (is_root(t) && epoch_samples)
            ft_progress_print(
                &t->progress,
                "epoch %ld: %llu samples in %.3f s of training steps = %.1f "
                "samples/s (%.3f s wall)\n",
                t->st.epoch + 1, (unsigned long long)epoch_samples, t->step_time - epoch_time,
                (double)epoch_samples /
                    (t->step_time - epoch_time > 1e-9 ? t->step_time - epoch_time : 1e-9),
                ft_now() - epoch_t0);
        epoch_t0 = ft_now();
        epoch_time = t->step_time;
        epoch_samples = 0;
        if (stop)
            break;
    }
    if (t->st.epoch >= c->epochs) { /* normalise: finished */
        t->st.epoch = c->epochs;
        t->st.epoch_pos = 0;
    }
    if (is_root(t))
        ft_progress_done(&t->progress);
    report_train_time(t);
    if (evaluate(t, "final", err))
        return err->code;
    if (checkpoint(t, err))
        return err->code;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.h5", c->run_dir);
    char *json = !t->have_eval || !is_root(t) ? NULL
                 : t->lm                      ? lm_json(&t->lm_eval)
                                              : metrics_to_json(&t->metrics);
    int rc = save_file(t, path, 0, json, err);
    free(json);
    if (rc)
        return rc;
    if (is_root(t)) {
        if (t->have_eval && t->lm) {
            const ft_lm_stats *e = &t->lm_eval;
            printf("\nevaluation of %s on %s: %.0f target tokens, loss %.6f, perplexity %.4f, "
                   "token accuracy %.4f\n",
                   path, c->eval_path, e->tokens, e->tokens > 0 ? e->nll / e->tokens : NAN,
                   ft_perplexity(e->nll, (uint64_t)e->tokens),
                   e->tokens > 0 ? e->correct / e->tokens : 0.0);
        } else if (t->have_eval) {
            printf("\nevaluation of %s on %s:\n", path, c->eval_path);
            ft_metrics_print(&t->metrics, stdout);
            if (t->have_baseline) { /* zero-shot: the loaded weights before the first step */
                ft_metrics_summary f = ft_metrics_summarize(&t->metrics);
                printf("fine-tuned accuracy %.4f, macro-F1 %.4f, loss %.4f; baseline accuracy "
                       "%.4f, macro-F1 %.4f, loss %.4f (before the first step)\n",
                       f.accuracy, f.macro_f1, f.loss, t->baseline.accuracy, t->baseline.macro_f1,
                       t->baseline.loss);
            }
        }
        printf("model written to %s\n", path);
        fflush(stdout);
    }
    return FT_OK;
}

static void cleanup(trainer *t)
{
    ft_prefetch_free(&t->pf);
    ft_featcache_free(&t->fc, t->w);
    if (t->log)
        fclose(t->log);
    ft_free_floats(t->x);
    ft_free_floats(t->buffers);
    ft_free_floats(t->probs);
    ft_free_floats(t->dlogits);
    free(t->y);
    free(t->ids);
    free(t->order);
    free(t->subset);
    ft_gradsync_free(&t->gs);
    if (t->use_shm)
        ft_shmsync_free(&t->ss);
    ft_metrics_free(&t->metrics);
    ft_optim_free(&t->opt);
    ft_model_free(&t->model);
    if (t->have_eval || t->eval.n)
        ft_dataset_close(&t->eval);
    ft_dataset_close(&t->train);
}

int ft_train(ft_mpi *w, ft_config *cfg, const ft_train_opts *opts, ft_err *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.w = w;
    t.cfg = cfg;
    ft_err_clear(err);
    install_signal_handlers();
    int rc = setup(&t, opts, err);
    if (!rc)
        rc = run(&t, err);
    cleanup(&t);
    return rc;
}
