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

#endif
