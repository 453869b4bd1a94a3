/* tp.c -- tensor parallelism (-tp N): the decoder split over N backends, Megatron-style.
 *
 * Each rank holds 1/N of every layer's attention heads and MLP columns: the rows of q, k, v
 * (and their biases) for its nh/N query heads and nkv/N key-value heads, the rows of gate and
 * up for its I/N columns (column-parallel), and the matching columns of o and down (row-
 * parallel). A layer then runs on every rank at once on the same input rows; after o and
 * after down each rank holds a partial sum of the full output, and one all-reduce (NCCL on
 * GPUs; on the CPU a sum in host memory) gives every rank the whole of it, so the residual
 * stream, the norms and the rotary tables stay replicated. Each rank's KV cache holds its
 * own heads. Rank 0 is the model the caller holds: the tokenizer, the vision tower, the
 * embeddings, the final norm and lm_head run there alone; ranks 1.. are models that hold
 * their shares of the layers and nothing else.
 *
 * The split needs nkv % N == 0 (GLM-4.1V has 2 key-value heads: N = 2), nh % N == 0,
 * I % N == 0, and in a block format (Q8_0, Q4_K...) the columns of o and down split at
 * whole blocks.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"

#define TP_MAX 8

/* NCCL, opened at run time (libnccl.so.2, as PyTorch's wheels and Debian's libnccl2 ship
 * it): nothing is linked, and a build or a machine without it runs everything else. The
 * types are NCCL's ABI: ncclComm_t is a pointer, ncclFloat32 = 7, ncclSum = 0. */
typedef int (*nccl_init_all_fn)(void **comms, int ndev, const int *devlist);
typedef int (*nccl_all_reduce_fn)(const void *send, void *recv, size_t count, int dtype, int op, void *comm,
                                  void *stream);
typedef int (*nccl_destroy_fn)(void *comm);
typedef const char *(*nccl_error_fn)(int result);
enum { NCCL_FLOAT32 = 7, NCCL_SUM = 0 };

struct glmv_tp {
    int n;
    glmv_model *rank[TP_MAX];              /* [0]: the model itself */
    glmv_tensor **shards;                  /* every rank's tensors; host bytes owned here */
    int n_shards, cap_shards;
    const glmv_tensor **replaced;          /* rank 0's whole tensors the shares stand for */
    int n_replaced, cap_replaced;
    /* the CPU's all-reduce: a barrier, each rank sums a slice of every buffer, a barrier */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    unsigned phase;
    float *buf[TP_MAX];
    int host_reduce;                       /* device ranks on one device: through host memory */
    float *hbuf[TP_MAX];                   /* host copies for that */
    int64_t hcap;
    /* NCCL */
    void *lib;
    void *comm[TP_MAX];
    nccl_all_reduce_fn all_reduce;
    nccl_destroy_fn destroy;
    nccl_error_fn error;
    int failed;
    char err[GLMV_ERR_SIZE];
    /* ranks 1.. each on a thread of its own for the model's life, bound to its device: a job
     * (fn, arg) is posted with a new generation number, and done when `pending` is back to 0 */
    pthread_t th[TP_MAX];
    int started[TP_MAX];
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv, done_cv;
    unsigned job_gen;
    int pending, quit;
    void (*fn)(int rank, void *arg);
    void *arg;
};

glmv_model *glmv_tp_rank(glmv_tp *tp, int r) { return tp->rank[r]; }
int glmv_tp_size(const glmv_tp *tp) { return tp ? tp->n : 1; }

int glmv_tp_replaced(const glmv_model *m, const glmv_tensor *t) {
    const glmv_tp *tp = m->tp;
    for (int i = 0; tp && i < tp->n_replaced; i++)
        if (tp->replaced[i] == t) return 1;
    return 0;
}

static int push(void ***arr, int *n, int *cap, void *p) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        void **na = realloc(*arr, sizeof *na * (size_t)nc);
        if (!na) return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* A rank's share of t: the rows of the ranges rows[i][0..1) one after another, columns
 * [c0, c1) of each (a 1-D tensor: its elements as rows). Host bytes, owned by tp. */
static glmv_tensor *share(glmv_tp *tp, const glmv_tensor *t, int64_t (*rows)[2], int n_ranges, int64_t c0,
                          int64_t c1, char *err) {
    const int one_d = t->ndim == 1;
    const int64_t cols = one_d ? 1 : glmv_tensor_cols(t);
    const uint8_t *src = t->host ? t->host : t->data;
    const size_t full = glmv_dtype_row_bytes(t->dtype, cols);
    const size_t off = glmv_dtype_row_bytes(t->dtype, c0), rb = glmv_dtype_row_bytes(t->dtype, c1 - c0);
    int64_t nr = 0;
    for (int i = 0; i < n_ranges; i++) nr += rows[i][1] - rows[i][0];
    glmv_tensor *s = calloc(1, sizeof *s);
    uint8_t *d = s ? glmv_aligned_alloc(glmv_mul_size((size_t)nr, rb)) : NULL;
    if (!d || push((void ***)&tp->shards, &tp->n_shards, &tp->cap_shards, s)) {
        free(s);
        free(d);
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory for the tensor-parallel share of %s", t->name),
               NULL;
    }
    s->name = t->name;
    s->dtype = t->dtype;
    s->ndim = one_d ? 1 : 2;
    s->shape[0] = nr;
    s->shape[1] = one_d ? 0 : c1 - c0;
    uint8_t *o = d;
    for (int i = 0; i < n_ranges; i++)
        for (int64_t r = rows[i][0]; r < rows[i][1]; r++, o += rb) memcpy(o, src + (size_t)r * full + off, rb);
    s->data = s->host = d;
    return s;
}

/* the share's bytes to its rank's backend (a device keeps its own copy: allocated on the calling
 * thread's device, so the thread is bound to the rank's for it) */
static int put(glmv_model *rm, glmv_tensor *t, char *err) {
    glmv_backend *be0 = rm->tp->rank[0]->be;
    if (rm->be->bind_thread) rm->be->bind_thread(rm->be);
    int rc = rm->be->upload(rm->be, t, err);
    if (be0->bind_thread) be0->bind_thread(be0);
    if (rc) return -1;
    if (rm->be->caps.device && t->host != t->data) {
        free(t->host);
        t->host = NULL;
    }
    return 0;
}

/* rank r's share of layer l (rows of q/k/v and gate/up, columns of o and down) into *out; the
 * norms as they are (rank 0) or copied (the others) */
static int share_layer(glmv_tp *tp, const glmv_text_layer *L, int r, glmv_text_layer *out, char *err) {
    const glmv_model *m = tp->rank[0];
    const glmv_config *c = &m->cfg;
    const int n = tp->n, hd = c->head_dim;
    const int64_t qd = (int64_t)c->num_attention_heads * hd, kvd = (int64_t)c->num_key_value_heads * hd;
    const int64_t I = c->intermediate_size, H = c->hidden_size;
    const int64_t q0 = r * qd / n, q1 = (r + 1) * qd / n, k0 = r * kvd / n, k1 = (r + 1) * kvd / n;
    const int64_t i0 = r * I / n, i1 = (r + 1) * I / n;
    *out = *L;
    if (L->qkv_w) {
        int64_t rg[3][2] = {{q0, q1}, {qd + k0, qd + k1}, {qd + kvd + k0, qd + kvd + k1}};
        if (!(out->qkv_w = share(tp, L->qkv_w, rg, 3, 0, H, err))) return -1;
        if (L->qkv_b && !(out->qkv_b = share(tp, L->qkv_b, rg, 3, 0, 1, err))) return -1;
    } else {
        int64_t rq[1][2] = {{q0, q1}}, rk[1][2] = {{k0, k1}};
        if (!(out->q_w = share(tp, L->q_w, rq, 1, 0, H, err)) || !(out->k_w = share(tp, L->k_w, rk, 1, 0, H, err)) ||
            !(out->v_w = share(tp, L->v_w, rk, 1, 0, H, err)))
            return -1;
        if (L->q_b && !(out->q_b = share(tp, L->q_b, rq, 1, 0, 1, err))) return -1;
        if (L->k_b && !(out->k_b = share(tp, L->k_b, rk, 1, 0, 1, err))) return -1;
        if (L->v_b && !(out->v_b = share(tp, L->v_b, rk, 1, 0, 1, err))) return -1;
    }
    int64_t all[1][2] = {{0, H}}, gu[2][2] = {{i0, i1}, {I + i0, I + i1}};
    if (!(out->o_w = share(tp, L->o_w, all, 1, q0, q1, err)) || !(out->gate_up = share(tp, L->gate_up, gu, 2, 0, H, err)) ||
        !(out->down = share(tp, L->down, all, 1, i0, i1, err)))
        return -1;
    if (r > 0) { /* the norms: every rank applies them to the whole rows */
        glmv_tensor **nt[] = {&out->input_layernorm, &out->post_self_attn_layernorm, &out->post_attention_layernorm,
                              &out->post_mlp_layernorm};
        for (size_t i = 0; i < sizeof nt / sizeof nt[0]; i++) {
            int64_t whole[1][2] = {{0, (*nt[i])->shape[0]}};
            if (!(*nt[i] = share(tp, *nt[i], whole, 1, 0, 1, err))) return -1;
        }
    }
    return 0;
}

/* the shares out->* that differ from L's (what put() must upload) */
static int put_layer(glmv_model *rm, const glmv_text_layer *L, glmv_text_layer *out, char *err) {
    glmv_tensor *a[] = {out->input_layernorm, out->q_w, out->q_b, out->k_w, out->k_b, out->v_w, out->v_b,
                        out->o_w, out->post_self_attn_layernorm, out->post_attention_layernorm, out->gate_up,
                        out->down, out->post_mlp_layernorm, out->qkv_w, out->qkv_b};
    const glmv_tensor *b[] = {L->input_layernorm, L->q_w, L->q_b, L->k_w, L->k_b, L->v_w, L->v_b,
                              L->o_w, L->post_self_attn_layernorm, L->post_attention_layernorm, L->gate_up,
                              L->down, L->post_mlp_layernorm, L->qkv_w, L->qkv_b};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        if (a[i] && a[i] != b[i] && put(rm, a[i], err)) return -1;
    return 0;
}

static void shadow_free(glmv_model *r) {
    if (!r) return;
    if (r->be) r->be->destroy(r->be);
    free(r->layers);
    free(r->sessions);
    pthread_mutex_destroy(&r->run_mu);
    pthread_mutex_destroy(&r->rows_mu);
    pthread_cond_destroy(&r->run_cv);
    free(r);
}

/* rank r (> 0): a model of m's config that holds its shares of the layers */
static glmv_model *shadow_new(glmv_model *m, int r, int one_device, char *err) {
    glmv_model *s = calloc(1, sizeof *s);
    if (!s) return glmv_errc(err, GLMV_E_NOMEM, "out of memory"), NULL;
    pthread_mutex_init(&s->run_mu, NULL);
    pthread_mutex_init(&s->rows_mu, NULL);
    pthread_cond_init(&s->run_cv, NULL);
    s->cfg = m->cfg;
    s->params = m->params;
    s->precision = m->precision;
    s->tp = m->tp;
    s->tp_rank = r;
    s->t_nh = m->t_nh;
    s->t_nkv = m->t_nkv;
    s->t_I = m->t_I;
    char e2[GLMV_ERR_SIZE] = "";
#ifdef GLMV_CUDA
    if (m->be->caps.device) {
        s->be = glmv_cuda_backend_new(one_device ? 0 : r, m->be->bf16, e2);
        if (!s->be) {
            glmv_errc(err, GLMV_E_BACKEND, "tensor parallelism over %d GPUs: GPU %d: %s", m->tp->n, r, e2);
            shadow_free(s);
            return NULL;
        }
        m->be->bind_thread(m->be); /* making it moved this thread to its device */
        snprintf(s->device, sizeof s->device, "cuda:%d", one_device ? 0 : r);
        return s;
    }
#endif
    (void)one_device;
    s->be = glmv_cpu_backend_new(m->params.n_threads, GLMV_SIMD_AUTO, m->be->bf16, e2);
    if (!s->be) {
        glmv_errf(err, "tensor parallelism: CPU backend: %s", e2);
        shadow_free(s);
        return NULL;
    }
    snprintf(s->device, sizeof s->device, "cpu");
    return s;
}

static int nccl_open(glmv_tp *tp, char *err) {
    tp->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!tp->lib) tp->lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!tp->lib)
        return glmv_errc(err, GLMV_E_BACKEND, "tensor parallelism on GPUs needs NCCL (libnccl.so.2, Debian's "
                         "libnccl2 or PyTorch's nvidia-nccl wheel on the library path): %s", dlerror());
    nccl_init_all_fn init_all = (nccl_init_all_fn)dlsym(tp->lib, "ncclCommInitAll");
    tp->all_reduce = (nccl_all_reduce_fn)dlsym(tp->lib, "ncclAllReduce");
    tp->destroy = (nccl_destroy_fn)dlsym(tp->lib, "ncclCommDestroy");
    tp->error = (nccl_error_fn)dlsym(tp->lib, "ncclGetErrorString");
    if (!init_all || !tp->all_reduce || !tp->destroy || !tp->error)
        return glmv_errc(err, GLMV_E_BACKEND, "libnccl.so.2 lacks ncclCommInitAll/ncclAllReduce");
    int devs[TP_MAX];
    for (int r = 0; r < tp->n; r++) devs[r] = r;
    int rc = init_all(tp->comm, tp->n, devs);
    tp->rank[0]->be->bind_thread(tp->rank[0]->be);
    if (rc) {
        memset(tp->comm, 0, sizeof tp->comm);
        return glmv_errc(err, GLMV_E_BACKEND, "NCCL over %d GPUs: %s", tp->n, tp->error(rc));
    }
    return 0;
}

static int workers_start(glmv_tp *tp, char *err);
static void workers_stop(glmv_tp *tp);

int glmv_tp_setup(glmv_model *m, int n, char *err) {
    const glmv_config *c = &m->cfg;
    const int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t I = c->intermediate_size;
    if (n < 1 || n > TP_MAX) return glmv_errc(err, GLMV_E_INVALID, "tensor parallel %d: expected 1 to %d", n, TP_MAX);
    if (n == 1) return 0;
    if (nkv % n || nh % n || I % n)
        return glmv_errc(err, GLMV_E_INVALID,
                         "tensor parallel %d: the decoder's %d key-value heads, %d query heads and %lld MLP columns "
                         "must each split %d ways (each GPU holds whole heads; this model allows %s)",
                         n, nkv, nh, (long long)I, n, nkv == 1 ? "only 1" : nkv == 2 ? "1 or 2" : "a divisor of its key-value heads");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const glmv_text_layer *L = &m->layers[l];
        const glmv_tensor *rp[] = {L->o_w, L->down};
        const int64_t part[] = {(int64_t)nh * c->head_dim / n, I / n};
        for (int i = 0; i < 2; i++)
            if (part[i] % glmv_dtype_block(rp[i]->dtype))
                return glmv_errc(err, GLMV_E_INVALID, "tensor parallel %d: %s is %s, whose blocks of %d do not split "
                                 "into %d shares of %lld columns", n, rp[i]->name, glmv_dtype_name(rp[i]->dtype),
                                 glmv_dtype_block(rp[i]->dtype), n, (long long)part[i]);
    }
    const char *od = getenv("GLMV_TP_ONE_DEVICE");
    const int one_device = od && atoi(od) > 0;
    glmv_tp *tp = calloc(1, sizeof *tp);
    if (!tp) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    pthread_mutex_init(&tp->job_mu, NULL);
    pthread_cond_init(&tp->job_cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    tp->n = n;
    tp->rank[0] = m;
    m->tp = tp;
    m->tp_rank = 0;
    m->t_nh = nh / n;
    m->t_nkv = nkv / n;
    m->t_I = I / n;
    for (int r = 1; r < n; r++) {
        if (!(tp->rank[r] = shadow_new(m, r, one_device, err))) return -1; /* glmv_model_free frees tp */
        if (!(tp->rank[r]->layers = calloc((size_t)c->num_hidden_layers, sizeof(glmv_text_layer))))
            return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    }
    if (m->be->caps.device) {
        tp->host_reduce = one_device;
        if (!one_device && nccl_open(tp, err)) return -1;
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        glmv_text_layer *L = &m->layers[l], mine;
        for (int r = n - 1; r >= 0; r--) { /* rank 0 last: the others copy from L as it is */
            glmv_text_layer *out = r ? &tp->rank[r]->layers[l] : &mine;
            if (share_layer(tp, L, r, out, err) || put_layer(tp->rank[r], L, out, err)) return -1;
        }
        const glmv_tensor *old[] = {L->q_w, L->q_b, L->k_w, L->k_b, L->v_w, L->v_b, L->o_w, L->gate_up, L->down,
                                    L->qkv_w, L->qkv_b};
        for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
            if (old[i] && push((void ***)&tp->replaced, &tp->n_replaced, &tp->cap_replaced, (void *)old[i]))
                return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        if (L->qkv_w) { /* the joined shares stand for q, k and v; those stay as they were, unread */
            L->qkv_w = mine.qkv_w;
            L->qkv_b = mine.qkv_b;
        } else {
            L->q_w = mine.q_w, L->q_b = mine.q_b, L->k_w = mine.k_w, L->k_b = mine.k_b;
            L->v_w = mine.v_w, L->v_b = mine.v_b;
        }
        L->o_w = mine.o_w;
        L->gate_up = mine.gate_up;
        L->down = mine.down;
    }
    for (int r = 1; r < n; r++) { /* the final norm: the last layer's norm_add_norm applies it */
        int64_t whole[1][2] = {{0, m->norm->shape[0]}};
        if (!(tp->rank[r]->norm = share(tp, m->norm, whole, 1, 0, 1, err)) || put(tp->rank[r], tp->rank[r]->norm, err))
            return -1;
    }
    return workers_start(tp, err);
}

void glmv_tp_free(glmv_model *m) {
    glmv_tp *tp = m->tp;
    if (!tp || tp->rank[0] != m) return;
    workers_stop(tp);
    for (int r = 0; r < tp->n; r++)
        if (tp->comm[r]) tp->destroy(tp->comm[r]);
    if (tp->lib) dlclose(tp->lib);
    for (int r = 1; r < tp->n; r++) shadow_free(tp->rank[r]);
    for (int i = 0; i < tp->n_shards; i++) {
        free(tp->shards[i]->host);
        free(tp->shards[i]);
    }
    for (int r = 0; r < tp->n; r++) free(tp->hbuf[r]);
    free(tp->shards);
    free(tp->replaced);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->job_mu);
    pthread_cond_destroy(&tp->job_cv);
    pthread_cond_destroy(&tp->done_cv);
    free(tp);
    m->tp = NULL;
}

/* ------------------------------------------------------------------ running */

typedef struct {
    glmv_tp *tp;
    int r;
} rank_arg;

static void *rank_main(void *p) {
    glmv_tp *tp = ((rank_arg *)p)->tp;
    const int r = ((rank_arg *)p)->r;
    free(p);
    glmv_backend *be = tp->rank[r]->be;
    if (be->bind_thread) be->bind_thread(be);
    unsigned seen = 0;
    pthread_mutex_lock(&tp->job_mu);
    for (;;) {
        while (tp->job_gen == seen && !tp->quit) pthread_cond_wait(&tp->job_cv, &tp->job_mu);
        if (tp->quit) break;
        seen = tp->job_gen;
        void (*fn)(int, void *) = tp->fn;
        void *arg = tp->arg;
        pthread_mutex_unlock(&tp->job_mu);
        fn(r, arg);
        pthread_mutex_lock(&tp->job_mu);
        if (--tp->pending == 0) pthread_cond_signal(&tp->done_cv);
    }
    pthread_mutex_unlock(&tp->job_mu);
    return NULL;
}

static int workers_start(glmv_tp *tp, char *err) {
    for (int r = 1; r < tp->n; r++) {
        rank_arg *a = malloc(sizeof *a);
        if (!a) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        *a = (rank_arg){tp, r};
        if (pthread_create(&tp->th[r], NULL, rank_main, a)) {
            free(a);
            return glmv_errc(err, GLMV_E_INTERNAL, "tensor parallelism: cannot start rank %d's thread", r);
        }
        tp->started[r] = 1;
    }
    return 0;
}

static void workers_stop(glmv_tp *tp) {
    pthread_mutex_lock(&tp->job_mu);
    tp->quit = 1;
    pthread_cond_broadcast(&tp->job_cv);
    pthread_mutex_unlock(&tp->job_mu);
    for (int r = 1; r < tp->n; r++)
        if (tp->started[r]) pthread_join(tp->th[r], NULL);
}

void glmv_tp_run(glmv_tp *tp, void (*fn)(int rank, void *arg), void *arg) {
    pthread_mutex_lock(&tp->job_mu);
    tp->fn = fn;
    tp->arg = arg;
    tp->pending = tp->n - 1;
    tp->job_gen++;
    pthread_cond_broadcast(&tp->job_cv);
    pthread_mutex_unlock(&tp->job_mu);
    fn(0, arg);
    pthread_mutex_lock(&tp->job_mu);
    while (tp->pending > 0) pthread_cond_wait(&tp->done_cv, &tp->job_mu);
    pthread_mutex_unlock(&tp->job_mu);
}

/* every rank waits here for the others */
static void barrier(glmv_tp *tp) {
    pthread_mutex_lock(&tp->mu);
    unsigned ph = tp->phase;
    if (++tp->arrived == tp->n) {
        tp->arrived = 0;
        tp->phase++;
        pthread_cond_broadcast(&tp->cv);
    } else {
        while (ph == tp->phase) pthread_cond_wait(&tp->cv, &tp->mu);
    }
    pthread_mutex_unlock(&tp->mu);
}

/* the host sum: after everyone's buffer is posted, rank r sums the slice r of every buffer (in
 * rank order, so that every rank gets the same floats) and writes it to all of them */
static void host_sum(glmv_tp *tp, int r, float **bufs, int64_t count) {
    barrier(tp);
    const int64_t per = (count + tp->n - 1) / tp->n, i0 = GLMV_MIN(count, r * per), i1 = GLMV_MIN(count, i0 + per);
    for (int64_t i = i0; i < i1; i++) {
        float s = bufs[0][i];
        for (int k = 1; k < tp->n; k++) s += bufs[k][i];
        for (int k = 0; k < tp->n; k++) bufs[k][i] = s;
    }
    barrier(tp);
}

static void fail(glmv_tp *tp, const char *msg) {
    pthread_mutex_lock(&tp->mu);
    if (!tp->failed) snprintf(tp->err, sizeof tp->err, "%s", msg);
    tp->failed = 1;
    pthread_mutex_unlock(&tp->mu);
}

void glmv_tp_allreduce(glmv_model *m, float *buf, int64_t count) {
    glmv_tp *tp = m->tp;
    const int r = m->tp_rank;
    glmv_backend *be = m->be;
    if (!tp || tp->n == 1 || count <= 0) return;
    if (!be->caps.device) {
        tp->buf[r] = buf;
        host_sum(tp, r, tp->buf, count);
        return;
    }
    if (!tp->host_reduce) {
        int rc = tp->all_reduce(buf, buf, (size_t)count, NCCL_FLOAT32, NCCL_SUM, tp->comm[r], be->queue(be));
        if (rc) {
            char msg[GLMV_ERR_SIZE];
            snprintf(msg, sizeof msg, "NCCL all-reduce on rank %d: %s", r, tp->error(rc));
            fail(tp, msg);
        }
        return;
    }
    /* ranks sharing one device (tests): through host memory */
    if (r == 0 && tp->hcap < count) { /* grown by rank 0 before the others read it */
        for (int k = 0; k < tp->n; k++) {
            free(tp->hbuf[k]);
            tp->hbuf[k] = malloc(sizeof(float) * (size_t)count);
            if (!tp->hbuf[k]) fail(tp, "out of host memory for an all-reduce");
        }
        tp->hcap = tp->failed ? 0 : count;
    }
    barrier(tp);
    if (tp->failed) return; /* every rank sees it: only rank 0 sets it here, before the barrier */
    be->read(be, tp->hbuf[r], buf, sizeof(float) * (size_t)count);
    host_sum(tp, r, tp->hbuf, count);
    be->write(be, buf, tp->hbuf[r], sizeof(float) * (size_t)count);
}

int glmv_tp_status(glmv_tp *tp, char *err) {
    if (!tp || !tp->failed) return 0;
    glmv_errc(err, GLMV_E_BACKEND, "%s", tp->err);
    tp->failed = 0; /* said once (a device's own failure stays in its status) */
    return -1;
}
