/* test_threads.c -- the CPU backend's thread pool (src/cpu/threads.c).
 *
 * Every task of every job runs exactly once, on a thread id inside the pool,
 * and its writes are visible when glmv_pool_run returns: for pools smaller
 * than, equal to and far larger than the machine's CPU count, for jobs with
 * fewer tasks than threads, back to back (workers still spinning or still
 * inside the last job) and after pauses (workers asleep on the condition
 * variable), and through creation and destruction of many pools.
 */
#include "test.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "cpu/threads.h"

#define MAX_TASKS 300

typedef struct {
    atomic_int runs[MAX_TASKS + 8];  /* +8: a task index past n_tasks would land here */
    int plain[MAX_TASKS];            /* non-atomic: checks the pool's release/acquire */
    atomic_int bad_thread;
    int size;
    int stamp;
} job;

static void task(void *ctx, int64_t t, int thread) {
    job *j = ctx;
    if (thread < 0 || thread >= j->size) atomic_fetch_add(&j->bad_thread, 1);
    atomic_fetch_add(&j->runs[t], 1);
    j->plain[t] = j->stamp + (int)t;
}

static void pause_ms(int ms) {
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Run n_jobs jobs of varying size on a pool of `threads`; count the jobs in
 * which any task ran other than once or a write was not visible. */
static int run_jobs(int threads, int n_jobs, int pause_every) {
    glmv_pool *p = glmv_pool_new(threads);
    if (!p) return -1;
    static job j;
    int wrong = 0;
    for (int k = 0; k < n_jobs; k++) {
        int64_t n = 1 + (k * 37) % MAX_TASKS;
        if (k % 5 == 0) n = 1 + k % 3;   /* fewer tasks than threads */
        memset(&j, 0, sizeof j);
        j.size = glmv_pool_size(p);
        j.stamp = k * 1000;
        glmv_pool_run(p, task, &j, n);
        int ok = atomic_load(&j.bad_thread) == 0;
        for (int64_t t = 0; t < MAX_TASKS + 8; t++)
            ok &= atomic_load(&j.runs[t]) == (t < n ? 1 : 0);
        for (int64_t t = 0; t < n; t++) ok &= j.plain[t] == j.stamp + (int)t;
        wrong += !ok;
        if (pause_every && k % pause_every == pause_every - 1) pause_ms(3);
    }
    glmv_pool_free(p);
    return wrong;
}

TEST(every_task_once) {
    int sizes[] = {1, 2, 3, 4, 8};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        CHECK_MSG(run_jobs(sizes[i], 3000, 0) == 0, "%d threads", sizes[i]);
}

TEST(oversubscribed) {
    /* far more threads than CPUs: most are descheduled at any moment */
    int n = glmv_cpu_count() * 16;
    if (n > 64) n = 64;
    CHECK_MSG(run_jobs(n, 1500, 0) == 0, "%d threads", n);
}

TEST(sleeping_workers_wake) {
    /* pauses longer than the spin phase put the workers to sleep between jobs */
    CHECK(run_jobs(2, 60, 1) == 0);
    CHECK(run_jobs(6, 200, 7) == 0);
}

TEST(create_and_destroy) {
    for (int k = 0; k < 50; k++) {
        glmv_pool *p = glmv_pool_new(1 + k % 6);
        CHECK(p != NULL);
        if (!p) return;
        CHECK_EQ_INT(glmv_pool_size(p), 1 + k % 6);
        if (k % 2) {
            static job j;
            memset(&j, 0, sizeof j);
            j.size = glmv_pool_size(p);
            glmv_pool_run(p, task, &j, 17);
            for (int t = 0; t < 17; t++) CHECK_EQ_INT(atomic_load(&j.runs[t]), 1);
        }
        glmv_pool_free(p);
    }
    glmv_pool *one = glmv_pool_new(0); /* fewer than 1 means 1: the caller alone */
    CHECK(one != NULL);
    if (one) {
        CHECK_EQ_INT(glmv_pool_size(one), 1);
        glmv_pool_free(one);
    }
}

TEST(zero_tasks) {
    glmv_pool *p = glmv_pool_new(3);
    CHECK(p != NULL);
    if (!p) return;
    static job j;
    memset(&j, 0, sizeof j);
    j.size = 3;
    glmv_pool_run(p, task, &j, 0);
    glmv_pool_run(p, task, &j, -5);
    for (int t = 0; t < MAX_TASKS; t++) CHECK_EQ_INT(atomic_load(&j.runs[t]), 0);
    glmv_pool_free(p);
}

int main(void) {
    RUN(every_task_once);
    RUN(oversubscribed);
    RUN(sleeping_workers_wake);
    RUN(create_and_destroy);
    RUN(zero_tasks);
    return test_summary("threads");
}
