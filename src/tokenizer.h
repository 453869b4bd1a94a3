/* tokenizer.h -- library-internal view of the tokenizer (the public API is in
 * glmv.h): byte-level BPE over the split regex of tokenizer.json, added tokens
 * matched first, and an incremental decoder for streaming. */
#ifndef GLMV_TOKENIZER_H
#define GLMV_TOKENIZER_H

#include "glmv.h"

/* Is this id a special added token (skipped by skip_special)? */
int glmv_token_is_special(const glmv_tokenizer *tok, int32_t id);
/* Is this id an added token (special or not: GLM's <think> and <answer> are not special)? */
int glmv_token_is_added(const glmv_tokenizer *tok, int32_t id);

/* A vocabulary given as lists, as a GGUF file holds it (tokenizer.ggml.*):
 * token i's text (byte-level alphabet for ordinary tokens, literal for added ones)
 * and llama.cpp's token type (1 normal, 2 unknown, 3 control: a special added
 * token, 4 user-defined: an added token that is not special, 5 unused: no token,
 * 6 byte), the merges "a b" in rank order, and the pre-tokenizer by llama.cpp's
 * name (tokenizer.ggml.pre; only "glm4" is known: GLM-4's tokenizer.json Split
 * regex with ignore_merges). */
typedef struct {
    int32_t n_tokens;
    const char *const *tokens;
    const size_t *token_len;
    const int32_t *types;
    int64_t n_merges;
    const char *const *merges;
    const size_t *merge_len;
    const char *pre;
} glmv_tokenizer_spec;

/* Build the tokenizer of spec; name is the source, for messages. */
int glmv_tokenizer_build(glmv_tokenizer **out, const glmv_tokenizer_spec *spec, const char *name,
                         char *err);

/* Incremental detokenizer: feed ids one at a time, get back only complete
 * UTF-8 (never a broken sequence); flush at the end emits what is left
 * (invalid bytes as U+FFFD). */
typedef struct {
    const glmv_tokenizer *tok;
    int skip_special;
    char pending[8];
    int n_pending;
} glmv_detok;

void glmv_detok_init(glmv_detok *d, const glmv_tokenizer *tok, int skip_special);
/* Writes the text completed by `id` to *out (malloc'd, caller frees) and its length. */
int glmv_detok_push(glmv_detok *d, int32_t id, char **out, size_t *len);
int glmv_detok_flush(glmv_detok *d, char **out, size_t *len);

#endif
