/* gguf_model.h -- GLM-4.1V from the GGUF pair llama.cpp's converter writes
 * (convert_hf_to_gguf.py): the text model (architecture glm4) and the vision
 * tower (an mmproj file, clip.projector_type glm4v). Their keys become a
 * glmv_config, their tokenizer.ggml.* lists a tokenizer, and their tensors the
 * Hugging Face tensors glmv binds (model.c), named and shaped as in the
 * safetensors checkpoint: q/k rows taken back out of the converter's NeoX order,
 * the patch embedding's two temporal slices put back into one Conv3d kernel. */
#ifndef GLMV_GGUF_MODEL_H
#define GLMV_GGUF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct {
    glmv_config cfg;
    glmv_weights *w;
    glmv_tokenizer *tok;
    char *chat_template;  /* tokenizer.chat_template (malloc'd), NULL when absent */
    char notes[256];      /* conversions made at load, for the verbose line ("" when none) */
} glmv_gguf_model;

/* Is path a GGUF model: a .gguf file, or a folder with no config.json that holds
 * .gguf files? Returns 1 and the text model's path and the mmproj's ("" when none:
 * mmproj when given, else the folder's one mmproj*.gguf), 0 when path is not GGUF
 * (a safetensors checkpoint), -1 with a message (two text models in the folder...). */
int glmv_gguf_locate(const char *path, const char *mmproj, char *text, char *mm, size_t cap, char *err);

/* Load the text model (and the vision tower when mmproj is not NULL or ""); tensors
 * converted at load are converted over n_threads threads. */
int glmv_gguf_model_load(glmv_gguf_model *out, const char *text, const char *mmproj, int n_threads,
                         char *err);
void glmv_gguf_model_clear(glmv_gguf_model *g);
/* Only the tokenizer of the text model at path (glmv_tokenizer_load of a GGUF). */
int glmv_gguf_tokenizer_load(glmv_tokenizer **out, const char *path, char *err);

/* Undo Glm4Model.normal_to_neox of llama.cpp's converter on rows of row_bytes:
 * within each of n_heads heads of head_dim rows, GGUF row j < rot/2 is HF row 2j
 * and row rot/2 + j is HF row 2j + 1; rows from rot on are unchanged. */
void glmv_gguf_unpermute_rows(void *dst, const void *src, size_t row_bytes, int64_t n_heads,
                              int64_t head_dim, int64_t rot);

#endif
