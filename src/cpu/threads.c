/* threads.c -- a small fork-join thread pool for the CPU backend.
 *
 * A job is (fn, ctx, n_tasks). The caller closes the pool (odd generation),
 * waits until no worker is still inside the previous job, writes the new job
 * and opens it under the next even generation. Workers wait for a new even
 * generation (spinning for a short while, then sleeping on a condition
 * variable), take tasks from a shared atomic counter, and count the tasks
 * they finished; the caller works too and returns when every task is done.
 * The caller never waits for a worker that has not picked the job up: on a
 * busy or oversubscribed machine a descheduled worker costs nothing, where a
 * barrier over all threads would cost a time slice per job.
 */
#include "cpu/threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* spin iterations before sleeping (~50-100 µs); keeps decode's many small jobs cheap */
#define SPIN_ITERS 20000

struct glmv_pool {
    int n;                      /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;            /* even: job gen/2 is open; odd: the caller is changing it */
    atomic_int sleepers;        /* workers blocked on cv */
    atomic_int active;          /* workers inside the open job */
    atomic_int quit;
    /* the current job: written only while closed and no worker is active */
    glmv_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_llong next;          /* next task to take */
    atomic_llong left;          /* tasks not finished yet */
};

typedef struct {
    glmv_pool *p;
    int id;
} worker_arg;

/* Take tasks until none is left; returns how many this thread ran. */
static int64_t work(glmv_pool *p, int id) {
    int64_t did = 0;
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, id);
        did++;
    }
    return did;
}

/* seq_cst load: pairs with the caller's gen++ then sleepers load (an acquire
 * load could be satisfied before sleepers++ is visible on a weakly ordered
 * CPU: the caller would skip the wake-up while this worker goes to sleep) */
static int no_new_job(glmv_pool *p, unsigned seen, unsigned *g) {
    *g = atomic_load(&p->gen);
    return (*g == seen || (*g & 1u)) && !atomic_load(&p->quit);
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    glmv_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    unsigned seen = 0, g;
    for (;;) {
        int spins = 0;
        while (no_new_job(p, seen, &g)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (no_new_job(p, seen, &g)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->quit)) break;
        /* Enter, then check that job g is still the open one (seq_cst on both
         * sides: either the caller sees us active and waits before changing
         * the job, or we see its odd generation and leave untouched). */
        atomic_fetch_add(&p->active, 1);
        if (atomic_load(&p->gen) == g) {
            int64_t did = work(p, id);
            if (did) atomic_fetch_sub_explicit(&p->left, did, memory_order_release);
            seen = g;
        }
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
    }
    return NULL;
}

int glmv_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

glmv_pool *glmv_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    glmv_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) goto fail;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) goto fail_started;
            wa->p = p;
            wa->id = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                goto fail_started;
            }
            continue;
        fail_started:
            p->n = i; /* threads 1..i-1 exist; stop them */
            glmv_pool_free(p);
            return NULL;
        }
    }
    return p;
fail:
    free(p);
    return NULL;
}

void glmv_pool_free(glmv_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int glmv_pool_size(const glmv_pool *p) { return p->n; }

void glmv_pool_run(glmv_pool *p, glmv_task_fn fn, void *ctx, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (p->n == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    /* close the pool, and wait for late workers still inside the last job
     * (they find no task left and go at once) */
    atomic_fetch_add(&p->gen, 1);
    int spins = 0;
    /* seq_cst, not acquire: this load and the worker's gen check after active++
     * form a store-buffering pair, which only seq_cst on all four accesses
     * orders (with an acquire load a weakly ordered CPU, e.g. ARMv8.3+ LDAPR,
     * may read active 0 while the worker reads the old generation and enters
     * the job being rewritten) */
    while (atomic_load(&p->active) > 0) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->left, n_tasks, memory_order_relaxed);
    /* open it (seq_cst: pairs with the worker's sleepers++ then gen check, so
     * either we see it sleeping and wake it, or it sees the new generation) */
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    int64_t did = work(p, 0);
    if (did) atomic_fetch_sub_explicit(&p->left, did, memory_order_relaxed);
    /* wait for the tasks other threads took (not for threads that took none) */
    spins = 0;
    while (atomic_load_explicit(&p->left, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}
