/* fuzz_agent.c -- libFuzzer target for the GUI agent's answer parsers
 * (src/agent.c): the input is a model answer, parsed as each of the three
 * modes. Each parse succeeds or fails with a message, never crashes; a parsed
 * action's coordinates are in its mode's range and map inside the image, and
 * it converts to JSON. Seeds: tests/fixtures/agent/answers and bad. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 16)) return 0;
    char *raw = malloc(size + 1);
    if (!raw) return 0;
    memcpy(raw, data, size);
    raw[size] = 0;
    /* the image size comes from the input too, so mapping sees odd sizes */
    int w = 1 + (size ? data[0] : 0) * 7, h = 1 + (size > 1 ? data[1] : 0) * 5;
    for (int m = AGENT_MOBILE; m <= AGENT_WEB; m++) {
        char err[256] = "";
        agent_action a;
        if (agent_parse((agent_mode)m, raw, &a, err, sizeof err)) {
            if (!err[0]) abort();
            continue;
        }
        int hi = m == AGENT_MOBILE ? 999 : 1000;
        for (int i = 0; i < 4; i++)
            if (a.has_box && (a.box[i] < 0 || a.box[i] > hi)) abort();
        for (int i = 0; i < 2; i++)
            if ((a.has_point && (a.point[i] < 0 || a.point[i] > hi)) ||
                (a.has_end && (a.end[i] < 0 || a.end[i] > hi)))
                abort();
        agent_map(&a, w, h);
        for (int i = 0; i < 2; i++) {
            int lim = i ? h : w;
            if (a.px_point[i] < 0 || a.px_point[i] >= lim || a.px_end[i] < 0 || a.px_end[i] >= lim) abort();
        }
        cJSON *j = agent_action_json(&a, w, h, raw);
        char *s = cJSON_PrintUnformatted(j);
        if (!s) abort();
        free(s);
        cJSON_Delete(j);
        agent_action_free(&a);
    }
    free(raw);
    return 0;
}
