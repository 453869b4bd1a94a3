/* serve_guard.c -- deadlines for reading a request that a trickle cannot extend.
 *
 * libmicrohttpd's connection timeout (--idle-timeout) restarts with every byte,
 * so a client sending one header line every few seconds, or a body a byte at a
 * time, holds its connection as long as it likes. The guard keeps, for every
 * connection, where it is in reading a request and a deadline that only that
 * progress moves:
 *   waiting   (connected, or its last answer sent): --idle-timeout from then,
 *             whatever bytes arrive; a connection that sends nothing at all is
 *             closed by libmicrohttpd itself at the same time
 *   headers   (the request line is in): --header-timeout from the request line
 *   body      (the headers are in): --header-timeout, plus the time the bytes
 *             received so far take at GUARD_MIN_RATE; a body slower than that
 *             on average misses it
 *   busy      (the request is whole): none; the request runs, and its answer is
 *             written under libmicrohttpd's idle timeout
 * A thread checks the deadlines every GUARD_TICK_MS and shuts down the sockets
 * past theirs: libmicrohttpd then sees the connection end and closes it as if
 * the client had hung up. Shutting down, not closing, leaves the descriptor to
 * libmicrohttpd; the entry leaves the list (under the lock) in the CLOSED
 * notification, before the library closes the descriptor, so the thread never
 * touches a descriptor that was closed and reused.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "serve.h"

#define GUARD_MIN_RATE 16384.0 /* bytes per second a body must average */
#define GUARD_TICK_MS 100

enum { G_WAITING, G_HEADERS, G_BODY, G_BUSY };

typedef struct guard_conn {
    struct guard_conn *prev, *next;
    int fd;
    int state;
    int shut;
    double since;      /* ms: start of the state */
    double deadline;   /* ms, monotonic; unused while busy */
} guard_conn;

struct serve_guard {
    pthread_mutex_t mu;
    pthread_t th;
    int stop;
    guard_conn *head;
    double idle_ms, header_ms;
    atomic_ullong timed_out;
    atomic_int open;
};

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *guard_main(void *arg) {
    serve_guard *g = arg;
    struct timespec tick = {0, GUARD_TICK_MS * 1000000L};
    for (;;) {
        nanosleep(&tick, NULL);
        double now = mono_ms();
        pthread_mutex_lock(&g->mu);
        if (g->stop) {
            pthread_mutex_unlock(&g->mu);
            return NULL;
        }
        for (guard_conn *c = g->head; c; c = c->next)
            if (c->state != G_BUSY && !c->shut && now > c->deadline) {
                shutdown(c->fd, SHUT_RDWR);
                c->shut = 1;
                atomic_fetch_add(&g->timed_out, 1);
            }
        pthread_mutex_unlock(&g->mu);
    }
}

serve_guard *serve_guard_start(double idle_s, double header_s) {
    serve_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_mutex_init(&g->mu, NULL);
    g->idle_ms = idle_s * 1e3;
    g->header_ms = header_s * 1e3;
    if (pthread_create(&g->th, NULL, guard_main, g)) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

void serve_guard_stop(serve_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->th, NULL);
    while (g->head) { /* libmicrohttpd has stopped: nothing refers to these now */
        guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void serve_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
    serve_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        guard_conn *c = ci ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c) return; /* not guarded: libmicrohttpd's idle timeout still applies */
        c->fd = ci->connect_fd;
        c->state = G_WAITING;
        c->since = mono_ms();
        c->deadline = c->since + g->idle_ms;
        pthread_mutex_lock(&g->mu);
        c->next = g->head;
        if (g->head) g->head->prev = c;
        g->head = c;
        pthread_mutex_unlock(&g->mu);
        atomic_fetch_add(&g->open, 1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        guard_conn *c = *socket_context;
        if (!c) return;
        pthread_mutex_lock(&g->mu);
        if (c->prev) c->prev->next = c->next;
        else g->head = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&g->mu);
        free(c);
        *socket_context = NULL;
        atomic_fetch_sub(&g->open, 1);
    }
}

static guard_conn *conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_state(serve_guard *g, struct MHD_Connection *conn, int state, double deadline_after_ms) {
    guard_conn *c = conn_of(conn);
    if (!g || !c) return;
    double now = mono_ms();
    pthread_mutex_lock(&g->mu);
    c->state = state;
    c->since = now;
    c->deadline = now + deadline_after_ms;
    pthread_mutex_unlock(&g->mu);
}

void *serve_guard_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    serve_guard *g = cls;
    (void)uri;
    set_state(g, conn, G_HEADERS, g->header_ms);
    return NULL; /* the access handler's context starts empty, as without this callback */
}

void serve_guard_headers(serve_guard *g, struct MHD_Connection *conn) {
    if (g) set_state(g, conn, G_BODY, g->header_ms);
}

void serve_guard_body(serve_guard *g, struct MHD_Connection *conn, size_t received) {
    guard_conn *c = g ? conn_of(conn) : NULL;
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    if (c->state == G_BODY) c->deadline = c->since + g->header_ms + received * 1e3 / GUARD_MIN_RATE;
    pthread_mutex_unlock(&g->mu);
}

void serve_guard_busy(serve_guard *g, struct MHD_Connection *conn) {
    if (g) set_state(g, conn, G_BUSY, 0);
}

void serve_guard_waiting(serve_guard *g, struct MHD_Connection *conn) {
    if (g) set_state(g, conn, G_WAITING, g->idle_ms);
}

unsigned long long serve_guard_timed_out(serve_guard *g) { return g ? atomic_load(&g->timed_out) : 0; }
int serve_guard_open(serve_guard *g) { return g ? atomic_load(&g->open) : 0; }
