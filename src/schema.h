/* schema.h -- structured output: a JSON Schema compiled into a byte-level
 * recognizer, and the set of tokens that keep the output a valid prefix.
 *
 * glmv_schema_compile takes a JSON Schema (the subset OpenAI's strict mode
 * uses: object with properties / required / additionalProperties, array with
 * items / minItems / maxItems, string with minLength / maxLength, number,
 * integer (with minimum / maximum / exclusiveMinimum / exclusiveMaximum: a
 * number is then written without an exponent), boolean, null, enum, const,
 * type lists and anyOf whose alternatives
 * start differently, $ref to #/$defs or #/definitions, recursion included),
 * or NULL for "any JSON object" (OpenAI's json_object). Anything else is
 * refused with a message naming it. Keys are written in any order, each at
 * most once, the required ones all; whitespace between tokens is allowed up
 * to a few characters, so a model cannot stall in it.
 *
 * glmv_json_state is where a partial output stands; glmv_json_feed advances
 * it by bytes; glmv_schema_mask marks the tokens whose bytes can follow.
 * Pure CPU code, no model needed: test_schema.c tests it alone.
 */
#ifndef GLMV_SCHEMA_H
#define GLMV_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "glmv.h"

typedef struct glmv_schema glmv_schema;

/* schema_json NULL or "": any JSON object. NULL with err set on failure. */
glmv_schema *glmv_schema_compile(const char *schema_json, char *err);
void glmv_schema_free(glmv_schema *s);

#define GLMV_JSON_DEPTH 32

typedef struct {
    const void *node;           /* the schema node this frame matches */
    uint64_t seen, cand;        /* object: properties given; keys/literals still matching */
    int32_t n;                  /* array: items so far; string: characters; number: characters */
    int32_t pos;                /* bytes matched of a key or literal */
    int16_t prop;               /* object: the property whose value comes next (-1: any key) */
    uint8_t kind, st, ws;       /* what the frame matches, where in it, whitespace run */
} glmv_json_frame;

typedef struct {
    const glmv_schema *s;
    int depth;                  /* frames in use; 0 with done = the value is complete */
    int done, failed, started;  /* started: a byte of the value was taken */
    char num[36];               /* the number being written (only the top frame can be one) */
    int num_len;
    glmv_json_frame f[GLMV_JSON_DEPTH];
} glmv_json_state;

void glmv_json_init(glmv_json_state *st, const glmv_schema *s);
/* Take n bytes; 0 if they keep the output a valid prefix (st advanced), -1
 * if not (st then undefined: feed a copy when only asking). */
int glmv_json_feed(glmv_json_state *st, const char *bytes, size_t n);
/* Is the output a complete value (only the end may follow)? */
int glmv_json_complete(const glmv_json_state *st);

/* Tokens of a tokenizer sorted by their bytes, for glmv_schema_mask (built once per model). */
typedef struct glmv_vocab_index glmv_vocab_index;
glmv_vocab_index *glmv_vocab_index_new(const glmv_tokenizer *tok);
void glmv_vocab_index_free(glmv_vocab_index *v);
/* the longest token, in bytes: glmv_schema_mask's scratch holds this + 1 states */
int glmv_vocab_index_max_len(const glmv_vocab_index *v);

/* allow[id] = 1 for every ordinary token (id < vocab) whose bytes can follow st, else 0.
 * Added tokens (<think>, <answer>, the eos ids...) are left 0: the caller decides.
 * scratch: glmv_vocab_index_max_len(v) + 1 states. Returns the number allowed. */
int glmv_schema_mask(const glmv_json_state *st, const glmv_vocab_index *v, uint8_t *allow,
                     int vocab, glmv_json_state *scratch);

#endif
