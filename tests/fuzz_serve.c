/* fuzz_serve.c -- libFuzzer target over the OpenAI request parser of `glmv
 * serve` (tools/serve_api.c; `make fuzz`, then build/fuzz/tests/fuzz_serve
 * [corpus_dir]). The input is a request body: it must be accepted or refused
 * with an HTTP status in 400..599, an error message and OpenAI's error JSON,
 * never a crash, leak or UB. An accepted one must hold consistent messages,
 * and the completion and chunk bodies built for it must be valid JSON. Data:
 * URLs are decoded (base64) but no media is read from disk or the network.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(char *s) {
    if (!s) return; /* out of memory only */
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        fprintf(stderr, "not JSON: %s\n", s);
        abort();
    }
    cJSON_Delete(j);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    char *body = malloc(size + 1);
    if (!body) return 0;
    memcpy(body, data, size);
    body[size] = 0;

    serve_engine eng;
    memset(&eng, 0, sizeof eng);
    snprintf(eng.model_id, sizeof eng.model_id, "demo");
    eng.n_ctx = 4096;
    eng.n_slots = 1;
    eng.defaults.temperature = 1.0f;
    eng.defaults.top_p = 1.0f;
    eng.defaults.repetition_penalty = 1.0f;
    serve_media_policy pol = {.media_dir = NULL, .allow_remote = 0, .max_images = 8};

    for (int legacy = 0; legacy <= 2; legacy++) { /* chat/completions, completions, responses */
        serve_request r;
        serve_error e;
        memset(&e, 0, sizeof e);
        if (serve_request_parse(&r, body, size, &eng, &pol, legacy, &e)) {
            if (e.status < 400 || e.status > 599 || !e.message[0] || !e.type) {
                fprintf(stderr, "bad error: status %d message '%s'\n", e.status, e.message);
                abort();
            }
            check_json(serve_error_json(&e));
            continue;
        }
        if (legacy == SERVE_API_COMPLETIONS ? (!r.prompt || r.n_msgs != 0) : (r.n_msgs < 1 || r.n_parts < 0)) abort();
        for (int i = 0; i < r.n_msgs; i++) {
            const glmv_message *m = &r.msgs[i];
            if (!m->role || m->n_parts < 0 || (m->n_parts && !m->parts)) abort();
            for (int k = 0; k < m->n_parts; k++) {
                const glmv_part *p = &m->parts[k];
                if (p->kind == GLMV_PART_TEXT && !p->text) abort();
                if (p->kind != GLMV_PART_TEXT && !p->path && !p->data) abort();
            }
        }
        if (r.sp.max_new_tokens < 0 || r.sp.max_new_tokens > eng.n_ctx) abort();
        if (r.n_choices < 1 || r.n_choices > SERVE_MAX_CHOICES) abort();
        glmv_result res;
        memset(&res, 0, sizeof res);
        res.content = (char *)(legacy == SERVE_API_COMPLETIONS ? r.prompt
                                      : r.n_parts && r.parts[0].kind == GLMV_PART_TEXT ? r.parts[0].text : "");
        res.reasoning = (char *)"";
        res.finish_reason = "stop";
        check_json(legacy == SERVE_API_COMPLETIONS ? serve_text_completion_json("id", 1, eng.model_id, &res, 1, NULL)
                   : legacy == SERVE_API_RESPONSES ? serve_response_json("resp_1", 1, eng.model_id, &res)
                                                   : serve_completion_json("id", 1, eng.model_id, &res, 1, NULL));
        serve_request_free(&r);
    }
    free(body);
    return 0;
}
