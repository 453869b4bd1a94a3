/* util_json.h -- reading the JSON fixtures the tests compare against. */
#ifndef GLMV_UTIL_JSON_H
#define GLMV_UTIL_JSON_H

#include <cjson/cJSON.h>

/* Parse the JSON file at path; NULL (with the reason printed) when it cannot
 * be read or parsed. The caller frees it with cJSON_Delete. */
cJSON *test_read_json(const char *path);

#endif
