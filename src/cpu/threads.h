/* threads.h -- the CPU backend's thread pool.
 *
 * One pool per backend (never process-global): n-1 worker threads plus the
 * caller. glmv_pool_run hands out tasks 0..n_tasks-1 dynamically (an atomic
 * counter), so a core that is busy with something else slows only its own
 * share. Workers spin briefly after a job (decode issues hundreds of small
 * jobs per token) and then sleep on a condition variable, so an idle pool
 * costs nothing. Jobs are not reentrant: run one at a time, from one thread.
 */
#ifndef GLMV_CPU_THREADS_H
#define GLMV_CPU_THREADS_H

#include <stdint.h>

typedef struct glmv_pool glmv_pool;

/* fn(ctx, task, thread): thread is 0..size-1 (0 = the caller), for per-thread scratch. */
typedef void (*glmv_task_fn)(void *ctx, int64_t task, int thread);

/* n_threads total, including the caller; NULL on failure. */
glmv_pool *glmv_pool_new(int n_threads);
void glmv_pool_free(glmv_pool *p);
int glmv_pool_size(const glmv_pool *p);
/* Run fn over tasks [0, n_tasks) on all threads; returns when all are done. */
void glmv_pool_run(glmv_pool *p, glmv_task_fn fn, void *ctx, int64_t n_tasks);

/* Number of online CPUs (at least 1). */
int glmv_cpu_count(void);

#endif
