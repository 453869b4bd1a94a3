/* chat.c -- `glmv chat`: an interactive multi-turn chat on a terminal, with
 * line editing and history (libedit). Earlier turns keep only the answers of
 * the assistant, not its reasoning, as the official demos do. Images,
 * videos and PDFs attach to the next message with /image, /video and /pdf.
 */
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    int is_user;
    char *text;                 /* user text or assistant answer */
    glmv_part *media;           /* user attachments */
    int n_media;
} turn;

typedef struct {
    turn *turns;
    int n, cap;
    char *system;
    glmv_part *pending;         /* attachments for the next user message */
    int n_pending;
} conv;

/* Piped input is read here, not by readline, which would buffer a line of
 * any length (a binary file, /dev/zero) until memory runs out. NULL at the
 * end of the input or, with *too_long set, on a line of MAX_LINE bytes. */
#define MAX_LINE ((size_t)64 << 20)

static char *read_piped_line(int *too_long) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    int ch = EOF;
    *too_long = 0;
    while (buf && (ch = getchar()) != EOF && ch != '\n') {
        if (n + 1 >= cap) {
            if (cap >= MAX_LINE) {
                *too_long = 1;
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
            if (!buf) break;
        }
        buf[n++] = (char)ch;
    }
    if (!buf) return NULL;
    if (ch == EOF && n == 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static void turn_free(turn *t) {
    free(t->text);
    for (int i = 0; i < t->n_media; i++) free((char *)t->media[i].path), free((char *)t->media[i].pages);
    free(t->media);
}

static void conv_clear(conv *c) {
    for (int i = 0; i < c->n; i++) turn_free(&c->turns[i]);
    c->n = 0;
    for (int i = 0; i < c->n_pending; i++) free((char *)c->pending[i].path), free((char *)c->pending[i].pages);
    free(c->pending);
    c->pending = NULL;
    c->n_pending = 0;
}

static int conv_push(conv *c, turn t) {
    if (c->n == c->cap) {
        int ncap = c->cap ? c->cap * 2 : 16;
        turn *nt = realloc(c->turns, sizeof *nt * (size_t)ncap);
        if (!nt) return -1;
        c->turns = nt;
        c->cap = ncap;
    }
    c->turns[c->n++] = t;
    return 0;
}

static const char *kind_name(glmv_part_kind kind) {
    return kind == GLMV_PART_IMAGE ? "image" : kind == GLMV_PART_VIDEO ? "video" : "pdf";
}

static int attach(conv *c, glmv_part_kind kind, const char *arg) {
    while (*arg == ' ') arg++;
    if (!*arg) {
        fprintf(stderr, "usage: /%s PATH%s\n", kind_name(kind), kind == GLMV_PART_PDF ? " [PAGES]" : "");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", arg);
    char *pages = NULL;
    /* /pdf PATH PAGES: a last word of page numbers, when the whole line is not a file */
    char *sp = strrchr(path, ' ');
    if (kind == GLMV_PART_PDF && sp && access(path, R_OK) != 0 && sp[1] &&
        strspn(sp + 1, "0123456789,-") == strlen(sp + 1)) {
        *sp = 0;
        pages = strdup(sp + 1);
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        free(pages);
        return -1;
    }
    glmv_part *np = realloc(c->pending, sizeof *np * (size_t)(c->n_pending + 1));
    if (!np) {
        free(pages);
        return -1;
    }
    c->pending = np;
    memset(&np[c->n_pending], 0, sizeof *np);
    np[c->n_pending].kind = kind;
    np[c->n_pending].path = strdup(path);
    np[c->n_pending].pages = pages;
    c->n_pending++;
    printf("(attached %s %s%s%s to the next message)\n", kind == GLMV_PART_PDF ? "PDF" : kind_name(kind), path,
           pages ? ", pages " : "", pages ? pages : "");
    return 0;
}

typedef struct {
    int tty, in_content, any;
} chat_out;

static int on_token(void *user, const glmv_event *ev) {
    chat_out *o = user;
    if (!ev->len) return 0;
    if (ev->kind == GLMV_TEXT_REASONING) {
        if (o->tty) fputs("\033[2m", stdout);
        fwrite(ev->text, 1, ev->len, stdout);
        if (o->tty) fputs("\033[0m", stdout);
    } else {
        if (!o->in_content && o->any) fputs("\n\n", stdout);
        o->in_content = 1;
        fwrite(ev->text, 1, ev->len, stdout);
    }
    o->any = 1;
    fflush(stdout);
    return 0;
}

/* Build the message list: system, then each turn. Parts arrays are malloc'd
 * into *store (one per turn) and freed by the caller. */
static glmv_message *build_messages(const conv *c, int *n_out, glmv_part **store) {
    int n = c->n + (c->system ? 1 : 0);
    glmv_message *m = calloc((size_t)n + 1, sizeof *m);
    int total_parts = 1;
    for (int i = 0; i < c->n; i++) total_parts += c->turns[i].n_media + 1;
    glmv_part *p = calloc((size_t)total_parts, sizeof *p);
    if (!m || !p) {
        free(m);
        free(p);
        return NULL;
    }
    int k = 0, q = 0;
    if (c->system) {
        p[q] = (glmv_part){.kind = GLMV_PART_TEXT, .text = c->system};
        m[k++] = (glmv_message){"system", &p[q++], 1, NULL};
    }
    for (int i = 0; i < c->n; i++) {
        const turn *t = &c->turns[i];
        glmv_part *start = &p[q];
        for (int j = 0; j < t->n_media; j++) p[q++] = t->media[j];
        p[q++] = (glmv_part){.kind = GLMV_PART_TEXT, .text = t->text};
        m[k++] = (glmv_message){t->is_user ? "user" : "assistant", start, t->n_media + 1, NULL};
    }
    *n_out = k;
    *store = p;
    return m;
}

static void help(void) {
    printf("commands:\n"
           "  /image PATH   attach an image to the next message\n"
           "  /video PATH   attach a video to the next message\n"
           "  /pdf PATH [PAGES]  attach a PDF's pages (all, or e.g. 1-3,5) to the next message\n"
           "  /system TEXT  set the system prompt (empty to remove)\n"
           "  /clear        forget the conversation\n"
           "  /help         this list\n"
           "  /quit         leave (or Ctrl-D)\n");
}

int cmd_chat(int argc, char **argv) {
    cli_opts o;
    cli_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: glmv chat [-m DIR] [options]\n\n%s", cli_opts_help);
            return 0;
        }
        fprintf(stderr, "glmv chat: unknown option '%s' (see glmv chat --help)\n", argv[i]);
        return 2;
    }
    glmv_model *m = NULL;
    glmv_session *s = NULL;
    if (cli_load_model(&o, &m, &s)) return 1;
    glmv_sampling sp;
    cli_opts_sampling(&o, m, &sp);

    int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (tty) printf("glmv chat with %s -- /help for commands, Ctrl-D to leave\n", o.model_dir);
    using_history();
    conv c = {0};
    char *line;
    int too_long = 0, status = 0;
    int in_tty = isatty(STDIN_FILENO);
    while ((line = in_tty ? readline(tty ? "> " : "") : read_piped_line(&too_long)) != NULL) {
        char *l = line;
        while (*l == ' ' || *l == '\t') l++;
        if (!*l) {
            free(line);
            continue;
        }
        add_history(l);
        if (l[0] == '/') {
            if (!strncmp(l, "/image", 6) && (l[6] == ' ' || !l[6])) attach(&c, GLMV_PART_IMAGE, l + 6);
            else if (!strncmp(l, "/video", 6) && (l[6] == ' ' || !l[6])) attach(&c, GLMV_PART_VIDEO, l + 6);
            else if (!strncmp(l, "/pdf", 4) && (l[4] == ' ' || !l[4])) attach(&c, GLMV_PART_PDF, l + 4);
            else if (!strcmp(l, "/clear")) {
                conv_clear(&c);
                glmv_session_reset(s);
                printf("(conversation cleared)\n");
            } else if (!strncmp(l, "/system", 7)) {
                free(c.system);
                const char *t = l + 7;
                while (*t == ' ') t++;
                c.system = *t ? strdup(t) : NULL;
                printf(c.system ? "(system prompt set)\n" : "(system prompt removed)\n");
            } else if (!strcmp(l, "/quit") || !strcmp(l, "/exit")) {
                free(line);
                break;
            } else if (!strcmp(l, "/help")) help();
            else printf("unknown command %s (/help lists them)\n", l);
            free(line);
            continue;
        }
        turn u = {.is_user = 1, .text = strdup(l), .media = c.pending, .n_media = c.n_pending};
        c.pending = NULL;
        c.n_pending = 0;
        free(line);
        if (!u.text || conv_push(&c, u)) {
            turn_free(&u);
            fprintf(stderr, "glmv: out of memory\n");
            break;
        }
        int n_msgs;
        glmv_part *store;
        glmv_message *msgs = build_messages(&c, &n_msgs, &store);
        if (!msgs) {
            fprintf(stderr, "glmv: out of memory\n");
            break;
        }
        chat_out out = {.tty = isatty(STDOUT_FILENO)};
        glmv_result res;
        char err[GLMV_ERR_SIZE];
        int rc = glmv_generate(s, msgs, n_msgs, &sp, on_token, &out, &res, err);
        free(msgs);
        free(store);
        if (out.any) fputc('\n', stdout);
        if (rc) {
            /* the history only grows: without a hint every later turn fails alike */
            fprintf(stderr, "glmv: %s%s\n", err,
                    strstr(err, "context") && c.n > 1 ? " (/clear starts a new conversation)" : "");
            /* the turn failed: drop it so the history stays answerable */
            turn_free(&c.turns[--c.n]);
            continue;
        }
        turn a = {.is_user = 0, .text = strdup(res.content ? res.content : "")};
        if (o.mp.verbose)
            fprintf(stderr, "glmv: %d prompt tokens, %d generated, %.2f tok/s\n", res.prompt_tokens,
                    res.completion_tokens,
                    res.decode_ms > 0 && res.completion_tokens > 1
                        ? (res.completion_tokens - 1) * 1e3 / res.decode_ms
                        : 0.0);
        glmv_result_free(&res);
        if (!a.text || conv_push(&c, a)) {
            turn_free(&a);
            fprintf(stderr, "glmv: out of memory\n");
            break;
        }
    }
    if (too_long) {
        fprintf(stderr, "glmv chat: an input line is longer than %d MiB\n", (int)(MAX_LINE >> 20));
        status = 1;
    }
    conv_clear(&c);
    free(c.turns);
    free(c.system);
    glmv_session_free(s);
    glmv_model_free(m);
    return status;
}
