/* util_json.c -- see util_json.h. */
#include "util_json.h"

#include <stdio.h>
#include <stdlib.h>

#include "base.h"

cJSON *test_read_json(const char *path) {
    char err[GLMV_ERR_SIZE];
    size_t n;
    char *s = glmv_read_file(path, &n, err);
    if (!s) {
        printf("  %s\n", err);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    if (!j) printf("  %s: not valid JSON\n", path);
    return j;
}
