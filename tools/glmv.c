/* glmv.c -- the glmv command: dispatches to a subcommand.
 * Add a subcommand by writing tools/<name>.c with `int cmd_<name>(int, char **)`
 * and one line in the table below. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define GLMV_VERSION "0.1.0"

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

static const cli_command commands[] = {
    {"run", cmd_run, "answer one prompt with images/videos, streaming the reply"},
    {"chat", cmd_chat, "interactive multi-turn chat on a terminal"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server and chat page"},
    {"tokenize", cmd_tokenize, "print the token ids of a text (needs only tokenizer.json)"},
    {"agent", cmd_agent, "one GUI-agent step: screenshot + task -> an action as JSON (--draw)"},
    {"bench", cmd_bench, "measure load, prefill, decode and vision speed, peak memory"},
    {"quantize", cmd_quantize, "write a checkpoint with its decoder in Q8_0 or Q4_0 blocks, loaded as is"},
    {"eval", cmd_eval, "accuracy on questions with reference answers, per thinking budget"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f, "glmv %s -- GLM-4.1V-9B-Thinking inference\n\nusage: glmv COMMAND [options]\n\n",
            GLMV_VERSION);
    for (const cli_command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\nRun 'glmv COMMAND --help' for a command's options.\n");
}

/* An answer that could not be written (a full disk, a closed standard output)
 * is a failure, not a success with nothing to show. */
static int check_stdout(int rc) {
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == 0) {
            fprintf(stderr, "glmv: cannot write to standard output%s%s\n", errno ? ": " : "",
                    errno ? strerror(errno) : "");
            rc = 1;
        }
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("glmv %s\n", GLMV_VERSION);
        return 0;
    }
    for (const cli_command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return check_stdout(c->main(argc - 1, argv + 1));
    fprintf(stderr, "glmv: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
