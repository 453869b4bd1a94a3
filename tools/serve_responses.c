/* serve_responses.c -- OpenAI's Responses API (POST /v1/responses) on top of
 * the chat path: the request is rewritten as a chat request (instructions as
 * the system message, input items as messages, input_text / input_image as
 * text / image_url parts, max_output_tokens, text.format as response_format)
 * and parsed by serve_request_parse, so every check and every sampling
 * control is the chat endpoint's. The answer is a response object whose
 * output holds a reasoning item (the thinking, as reasoning_text) and a
 * message item (output_text); streaming sends the typed events in order.
 * Nothing is stored: previous_response_id and store: true are refused.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define BAD(param, ...) serve_error_set(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

/* one content part of an input message, as a chat part */
static cJSON *chat_part(const cJSON *p, const char *param, serve_error *e) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(ty)) return BAD(param, "'%s.type' must be a string", param), NULL;
    const char *t = ty->valuestring;
    cJSON *o = cJSON_CreateObject();
    if (!strcmp(t, "input_text") || !strcmp(t, "output_text") || !strcmp(t, "text")) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(x)) {
            cJSON_Delete(o);
            return BAD(param, "'%s.text' must be a string", param), NULL;
        }
        cJSON_AddStringToObject(o, "type", "text");
        cJSON_AddStringToObject(o, "text", x->valuestring);
        return o;
    }
    if (!strcmp(t, "input_image")) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "image_url");
        if (!cJSON_IsString(u)) {
            cJSON_Delete(o);
            return BAD(param, "'%s.image_url' must be a string (file_id is not supported)", param), NULL;
        }
        cJSON_AddStringToObject(o, "type", "image_url");
        cJSON *iu = cJSON_AddObjectToObject(o, "image_url");
        cJSON_AddStringToObject(iu, "url", u->valuestring);
        return o;
    }
    if (!strcmp(t, "input_file")) { /* a PDF, as a chat file part; "pages" is glmv's addition */
        cJSON_AddStringToObject(o, "type", "file");
        cJSON *f = cJSON_AddObjectToObject(o, "file");
        static const char *const keys[] = {"file_data", "file_id", "filename", "pages"};
        for (int i = 0; i < 4; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, keys[i]);
            if (x) cJSON_AddItemToObject(f, keys[i], cJSON_Duplicate(x, 1));
        }
        return o;
    }
    cJSON_Delete(o);
    return BAD(param, "content type '%.40s' is not supported (input_text, input_image, input_file)", t), NULL;
}

int serve_responses_to_chat(const char *body, size_t len, char **out, int *shift, serve_error *e) {
    *out = NULL;
    *shift = 0;
    cJSON *in = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    if (!in || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                               "the body is not a JSON object");
    }
    int rc = -1;
    cJSON *chat = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(chat, "messages");
    static const char *const refused[] = {"previous_response_id", "conversation", "tools",
                                          "background", "include", "prompt", "truncation",
                                          "top_logprobs", NULL};
    for (int i = 0; refused[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, refused[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && !v->child)) {
            BAD(refused[i], "'%s' is not supported (glmv stores no responses and has no tools)",
                refused[i]);
            goto done;
        }
    }
    const cJSON *store = cJSON_GetObjectItemCaseSensitive(in, "store");
    if (cJSON_IsTrue(store)) {
        BAD("store", "'store': true is not supported (glmv keeps no responses)");
        goto done;
    }
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(in, "reasoning");
    if (reasoning && !cJSON_IsNull(reasoning)) {
        BAD("reasoning", "'reasoning' is not supported (use max_thinking_tokens for a thinking budget)");
        goto done;
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(in, "instructions");
    if (ins && !cJSON_IsNull(ins)) {
        if (!cJSON_IsString(ins)) { BAD("instructions", "'instructions' must be a string"); goto done; }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", ins->valuestring);
        cJSON_AddItemToArray(msgs, m);
        *shift = 1; /* messages[k] is input[k - 1] */
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(in, "input");
    if (cJSON_IsString(input)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", input->valuestring);
        cJSON_AddItemToArray(msgs, m);
    } else if (cJSON_IsArray(input)) {
        int i = 0;
        for (const cJSON *it = input->child; it; it = it->next, i++) {
            char param[48];
            snprintf(param, sizeof param, "input[%d]", i);
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
            if (!cJSON_IsObject(it) || (ty && (!cJSON_IsString(ty) || strcmp(ty->valuestring, "message"))) ||
                !cJSON_IsString(role)) {
                BAD(param, "'%s' must be a message ({role, content}); other item types are not "
                    "supported", param);
                goto done;
            }
            cJSON *m = cJSON_CreateObject();
            cJSON_AddItemToArray(msgs, m);
            cJSON_AddStringToObject(m, "role", role->valuestring);
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (cJSON_IsString(content)) {
                cJSON_AddStringToObject(m, "content", content->valuestring);
            } else if (cJSON_IsArray(content)) {
                cJSON *parts = cJSON_AddArrayToObject(m, "content");
                int k = 0;
                for (const cJSON *p = content->child; p; p = p->next, k++) {
                    char pp[64];
                    snprintf(pp, sizeof pp, "input[%d].content[%d]", i, k);
                    cJSON *cp = cJSON_IsObject(p) ? chat_part(p, pp, e) : NULL;
                    if (!cp) {
                        if (!cJSON_IsObject(p)) BAD(pp, "'%s' must be an object", pp);
                        goto done;
                    }
                    cJSON_AddItemToArray(parts, cp);
                }
            } else {
                BAD(param, "'%s.content' must be a string or a list of parts", param);
                goto done;
            }
        }
    } else {
        BAD("input", "'input' must be a string or a list of messages");
        goto done;
    }
    /* the chat endpoint's names for the rest */
    static const char *const same[] = {"model", "stream", "temperature", "top_p", "top_k", "min_p",
                                       "seed", "stop", "max_thinking_tokens", "presence_penalty",
                                       "frequency_penalty", "repetition_penalty", "logit_bias",
                                       "min_tokens", "ignore_eos", NULL};
    for (int i = 0; same[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, same[i]);
        if (v) cJSON_AddItemToObject(chat, same[i], cJSON_Duplicate(v, 1));
    }
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(in, "max_output_tokens");
    if (mo) cJSON_AddItemToObject(chat, "max_completion_tokens", cJSON_Duplicate(mo, 1));
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(in, "text");
    const cJSON *fmt = cJSON_IsObject(text) ? cJSON_GetObjectItemCaseSensitive(text, "format") : NULL;
    if (fmt && !cJSON_IsNull(fmt)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(fmt, "type");
        cJSON *rf = cJSON_AddObjectToObject(chat, "response_format");
        if (ty) cJSON_AddItemToObject(rf, "type", cJSON_Duplicate(ty, 1));
        else cJSON_AddNullToObject(rf, "type");
        if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "json_schema")) {
            cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(fmt, "schema");
            if (sc) cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(sc, 1));
        }
    }
    *out = cJSON_PrintUnformatted(chat);
    rc = *out ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
done:
    if (rc && e->status == 400 && !strncmp(e->param, "response_format", 15))
        snprintf(e->param, sizeof e->param, "text.format");
    cJSON_Delete(in);
    cJSON_Delete(chat);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

static void item_ids(const char *id, char *rs, char *msg, size_t n) {
    const char *tail = strchr(id, '_') ? strchr(id, '_') + 1 : id;
    snprintf(rs, n, "rs_%s", tail);
    snprintf(msg, n, "msg_%s", tail);
}

static cJSON *reasoning_part(const char *text) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "reasoning_text");
    cJSON_AddStringToObject(p, "text", text ? text : "");
    return p;
}

static cJSON *reasoning_item(const char *id, const char *text, int done) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddArrayToObject(it, "summary");
    cJSON *c = cJSON_AddArrayToObject(it, "content");
    if (done) cJSON_AddItemToArray(c, reasoning_part(text));
    return it;
}

static cJSON *text_part(const char *text) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddStringToObject(p, "text", text ? text : "");
    cJSON_AddArrayToObject(p, "annotations");
    return p;
}

static cJSON *message_item(const char *id, const char *text, int done) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddStringToObject(it, "status", done ? "completed" : "in_progress");
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *c = cJSON_AddArrayToObject(it, "content");
    if (done) cJSON_AddItemToArray(c, text_part(text));
    return it;
}

/* the response object; r NULL: in progress, nothing out yet */
static cJSON *response_obj(const char *id, long created, const char *model, const glmv_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)created);
    int incomplete = r && r->finish_reason && !strcmp(r->finish_reason, "length");
    cJSON_AddStringToObject(o, "status", !r ? "in_progress" : incomplete ? "incomplete" : "completed");
    cJSON_AddStringToObject(o, "model", model);
    if (incomplete) {
        cJSON *d = cJSON_AddObjectToObject(o, "incomplete_details");
        cJSON_AddStringToObject(d, "reason", "max_output_tokens");
    } else {
        cJSON_AddNullToObject(o, "incomplete_details");
    }
    cJSON *out = cJSON_AddArrayToObject(o, "output");
    if (r) {
        char rs[64], msg[64];
        item_ids(id, rs, msg, sizeof rs);
        if (r->reasoning && r->reasoning[0]) cJSON_AddItemToArray(out, reasoning_item(rs, r->reasoning, 1));
        cJSON_AddItemToArray(out, message_item(msg, r->content, 1));
        cJSON_AddStringToObject(o, "output_text", r->content ? r->content : "");
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", r->prompt_tokens);
        cJSON *id2 = cJSON_AddObjectToObject(u, "input_tokens_details");
        cJSON_AddNumberToObject(id2, "cached_tokens", r->cached_tokens);
        cJSON_AddNumberToObject(u, "output_tokens", r->completion_tokens);
        cJSON *od = cJSON_AddObjectToObject(u, "output_tokens_details");
        cJSON_AddNumberToObject(od, "reasoning_tokens", r->reasoning_tokens);
        cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + r->completion_tokens);
    }
    return o;
}

char *serve_response_json(const char *id, long created, const char *model, const glmv_result *r) {
    cJSON *o = response_obj(id, created, model, r);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* "event: TYPE\ndata: {type, sequence_number, ...}\n\n" appended to *buf (fields consumed) */
static void event(char **buf, size_t *len, serve_resp_stream *rs, const char *type, cJSON *fields) {
    cJSON_AddStringToObject(fields, "type", type);
    cJSON_AddNumberToObject(fields, "sequence_number", rs->seq++);
    char *d = cJSON_PrintUnformatted(fields);
    cJSON_Delete(fields);
    if (!d) return;
    size_t n = strlen(type) + strlen(d) + 16;
    char *b = realloc(*buf, *len + n + 1);
    if (b) {
        *buf = b;
        *len += (size_t)snprintf(b + *len, n + 1, "event: %s\ndata: %s\n\n", type, d);
    }
    free(d);
}

static cJSON *with_item(int index, const char *item_id) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "item_id", item_id);
    cJSON_AddNumberToObject(f, "output_index", index);
    cJSON_AddNumberToObject(f, "content_index", 0);
    return f;
}

static void close_reasoning(char **buf, size_t *len, serve_resp_stream *rs, const char *rid) {
    cJSON *f = with_item(0, rid);
    cJSON_AddStringToObject(f, "text", rs->reasoning ? rs->reasoning : "");
    event(buf, len, rs, "response.reasoning_text.done", f);
    f = with_item(0, rid);
    cJSON_AddItemToObject(f, "part", reasoning_part(rs->reasoning));
    event(buf, len, rs, "response.content_part.done", f);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "output_index", 0);
    cJSON_AddItemToObject(f, "item", reasoning_item(rid, rs->reasoning, 1));
    event(buf, len, rs, "response.output_item.done", f);
    rs->open = 0;
}

static void text_add(char **t, size_t *n, const char *s, size_t len) {
    char *p = realloc(*t, *n + len + 1);
    if (!p) return;
    memcpy(p + *n, s, len);
    *n += len;
    p[*n] = 0;
    *t = p;
}

char *serve_response_delta(serve_resp_stream *rs, const char *id, long created, const char *model,
                           int kind, const char *text, size_t len) {
    char *buf = NULL, rid[64], mid[64];
    size_t n = 0;
    item_ids(id, rid, mid, sizeof rid);
    if (!rs->started) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToObject(f, "response", response_obj(id, created, model, NULL));
        event(&buf, &n, rs, "response.created", f);
        rs->started = 1;
    }
    if (kind == GLMV_TEXT_REASONING) {
        if (rs->open == 0 && !rs->message_index) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "output_index", 0);
            cJSON_AddItemToObject(f, "item", reasoning_item(rid, NULL, 0));
            event(&buf, &n, rs, "response.output_item.added", f);
            f = with_item(0, rid);
            cJSON_AddItemToObject(f, "part", reasoning_part(""));
            event(&buf, &n, rs, "response.content_part.added", f);
            rs->open = 1;
        }
        if (rs->open == 1 && len) {
            text_add(&rs->reasoning, &rs->n_reasoning, text, len);
            char *t = strndup(text, len);
            cJSON *f = with_item(0, rid);
            cJSON_AddStringToObject(f, "delta", t ? t : "");
            free(t);
            event(&buf, &n, rs, "response.reasoning_text.delta", f);
        }
        return buf;
    }
    if (rs->open == 1) close_reasoning(&buf, &n, rs, rid);
    if (rs->open == 0) {
        rs->message_index = rs->reasoning ? 1 : 0;
        rs->message_index += 1; /* stored + 1: 0 means "not opened" */
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "output_index", rs->message_index - 1);
        cJSON_AddItemToObject(f, "item", message_item(mid, NULL, 0));
        event(&buf, &n, rs, "response.output_item.added", f);
        f = with_item(rs->message_index - 1, mid);
        cJSON_AddItemToObject(f, "part", text_part(""));
        event(&buf, &n, rs, "response.content_part.added", f);
        rs->open = 2;
    }
    if (len) {
        char *t = strndup(text, len);
        cJSON *f = with_item(rs->message_index - 1, mid);
        cJSON_AddStringToObject(f, "delta", t ? t : "");
        cJSON_AddArrayToObject(f, "logprobs");
        free(t);
        event(&buf, &n, rs, "response.output_text.delta", f);
    }
    return buf;
}

char *serve_response_end(serve_resp_stream *rs, const char *id, long created, const char *model,
                         const glmv_result *r) {
    char *buf = serve_response_delta(rs, id, created, model, GLMV_TEXT_CONTENT, "", 0), rid[64], mid[64];
    size_t n = buf ? strlen(buf) : 0;
    item_ids(id, rid, mid, sizeof rid);
    int mi = rs->message_index - 1;
    cJSON *f = with_item(mi, mid);
    cJSON_AddStringToObject(f, "text", r->content ? r->content : "");
    cJSON_AddArrayToObject(f, "logprobs");
    event(&buf, &n, rs, "response.output_text.done", f);
    f = with_item(mi, mid);
    cJSON_AddItemToObject(f, "part", text_part(r->content));
    event(&buf, &n, rs, "response.content_part.done", f);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "output_index", mi);
    cJSON_AddItemToObject(f, "item", message_item(mid, r->content, 1));
    event(&buf, &n, rs, "response.output_item.done", f);
    f = cJSON_CreateObject();
    cJSON_AddItemToObject(f, "response", response_obj(id, created, model, r));
    event(&buf, &n, rs, r->finish_reason && !strcmp(r->finish_reason, "length") ? "response.incomplete"
                                                                                : "response.completed", f);
    free(rs->reasoning);
    rs->reasoning = NULL;
    return buf;
}
