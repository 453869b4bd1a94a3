/* cli.h -- the subcommands of the glmv command. Each lives in its own file
 * under tools/ and uses only include/glmv.h (and this header). */
#ifndef GLMV_CLI_H
#define GLMV_CLI_H

#include "glmv.h"

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
} cli_command;

/* Small helpers shared by subcommands (tools/cli_util.c). */
int cli_parse_int(const char *flag, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out);

/* Options shared by run, chat and serve (tools/cli_opts.c). */
typedef struct {
    const char *model_dir;
    glmv_model_params mp;
    int n_ctx;
    int max_tokens;
    double temp, top_p, repeat_penalty, presence_penalty, frequency_penalty;
    int top_k, greedy, max_thinking;
    uint64_t seed;
    int set_temp, set_top_k, set_top_p, set_repeat_penalty, set_seed, set_presence, set_frequency;
    int no_warmup;              /* serve --no-warmup: no warm-up run before listening (a GPU's) */
} cli_opts;

extern const char *cli_opts_help;
void cli_opts_init(cli_opts *o);
/* Consume argv[*i] (and its value) if it is a shared option: 1 consumed,
 * 0 not ours, -1 bad value (message printed). */
int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i);
/* Sampling from the checkpoint defaults, overridden by the flags given. */
void cli_opts_sampling(const cli_opts *o, const glmv_model *m, glmv_sampling *s);
/* Load the model (default models/demo) and open a session; prints errors. */
int cli_load_model(cli_opts *o, glmv_model **m, glmv_session **s);
const char *cli_default_model(void);

#endif
