/* chat.h -- the GLM-4.1V chat template and the <think>/<answer> splitter.
 *
 * chat_render turns messages into the prompt string exactly as HF renders the
 * checkpoint's chat_template.jinja (trim_blocks, lstrip_blocks): image parts
 * become <|begin_of_image|><|image|><|end_of_image|> and video parts
 * <|begin_of_video|><|video|><|end_of_video|>; the caller expands the
 * placeholders to the vision tokens.
 *
 * The splitter turns the generated token stream into reasoning and answer
 * text, robust to missing or unbalanced tags and tags split across tokens.
 */
#ifndef GLMV_CHAT_H
#define GLMV_CHAT_H

#include "glmv.h"

typedef struct glmv_chat_template glmv_chat_template;

/* Load chat_template.jinja, or the chat_template of tokenizer_config.json. */
int glmv_chat_template_load(glmv_chat_template **out, const char *dir, char *err);
/* A template given as text (a GGUF file's tokenizer.chat_template; src NULL: none);
 * where names its source in warnings. */
int glmv_chat_template_from_source(glmv_chat_template **out, const char *src, const char *where, char *err);
void glmv_chat_template_free(glmv_chat_template *t);
/* Is the checkpoint's template the official GLM-4.1V one? (Any template is
 * rendered in the GLM-4.1V format; load warns once when it is not.) */
int glmv_chat_template_is_official(const glmv_chat_template *t);
/* FNV-1a of a template with ASCII whitespace removed: what "official" compares. */
uint64_t glmv_chat_template_hash(const char *s, size_t n);

/* Render; add_generation_prompt appends "<|assistant|>\n". malloc'd result. */
char *glmv_chat_render(const glmv_chat_template *t, const glmv_message *msgs, int n_msgs,
                       int add_generation_prompt, char *err);

typedef struct glmv_splitter glmv_splitter;

/* The tag ids (<think>, </think>, <answer>, </answer>) are looked up in tok. */
glmv_splitter *glmv_splitter_new(const glmv_tokenizer *tok);
void glmv_splitter_free(glmv_splitter *s);
/* Feed one generated id; emit(user, kind, text, len) is called for visible
 * text (possibly several times, possibly never). */
typedef void (*glmv_split_emit)(void *user, glmv_text_kind kind, const char *text, size_t len);
void glmv_splitter_push(glmv_splitter *s, int32_t id, glmv_split_emit emit, void *user);
/* End of stream: flush held-back text. */
void glmv_splitter_finish(glmv_splitter *s, glmv_split_emit emit, void *user);
/* Which part is being generated now (a thinking budget uses it). */
glmv_text_kind glmv_splitter_state(const glmv_splitter *s);

#endif
