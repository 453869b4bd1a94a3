/* glmv.h -- the public API of glmv, an inference engine for GLM-4.1V-9B-Thinking.
 *
 * A model is loaded once from a Hugging Face checkpoint folder (config.json,
 * safetensors shards, tokenizer.json, chat template, processor configs) and
 * shared read-only. A session holds one conversation's state (KV cache and
 * scratch) and generates from a list of chat messages whose parts are text,
 * images and videos. Tokens stream through a callback, already split into
 * reasoning (<think>...</think>) and answer (<answer>...</answer>).
 *
 * Every function that can fail returns 0 on success and non-zero on failure,
 * with a one-line message written to `err` (GLMV_ERR_SIZE bytes). The library
 * never exits the process on bad input.
 */
#ifndef GLMV_H
#define GLMV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GLMV_ERR_SIZE 512

/* What kind of failure a call had: after a non-zero return, glmv_last_error() on the same
 * thread tells, so that a caller (a server mapping failures to HTTP statuses) need not read
 * the message. */
typedef enum {
    GLMV_E_OK = 0,
    GLMV_E_INVALID,             /* the request or the arguments are wrong: the caller's to fix */
    GLMV_E_MEDIA,               /* an image or video cannot be read or decoded, or is too large */
    GLMV_E_CONTEXT,             /* the prompt and the tokens asked for do not fit the context */
    GLMV_E_NOMEM,               /* out of memory (host or device): may succeed later */
    GLMV_E_BACKEND,             /* the device or its library failed */
    GLMV_E_INTERNAL             /* anything else */
} glmv_errcode;

glmv_errcode glmv_last_error(void);
const char *glmv_errcode_name(glmv_errcode c); /* "invalid", "media", ... */

/* ------------------------------------------------------------------------ */
/* Tokenizer: needs only tokenizer.json (+ tokenizer_config.json).          */
/* ------------------------------------------------------------------------ */

typedef struct glmv_tokenizer glmv_tokenizer;

/* Load tokenizer.json from `dir` (a checkpoint folder), or the tokenizer of
 * llama.cpp's GGUF text model when dir is one (a .gguf file or a folder of them). */
int glmv_tokenizer_load(glmv_tokenizer **out, const char *dir, char *err);
void glmv_tokenizer_free(glmv_tokenizer *tok);

/* Encode UTF-8 text; added/special tokens in the text are matched first.
 * Ill-formed UTF-8 is repaired first: each maximal ill-formed subpart becomes
 * U+FFFD (as Python's decode("utf-8", "replace")); the ids are then HF's.
 * Thread-safe. *ids is malloc'd (caller frees). Returns the count, or -1 with err set. */
int64_t glmv_tokenize(const glmv_tokenizer *tok, const char *text, size_t len,
                      int32_t **ids, char *err);

/* Decode ids to a malloc'd NUL-terminated UTF-8 string (invalid sequences
 * become U+FFFD). skip_special drops special added tokens. NULL on OOM. */
char *glmv_detokenize(const glmv_tokenizer *tok, const int32_t *ids, int64_t n,
                      int skip_special);

/* The raw bytes of one token (not NUL-terminated); NULL for a bad id. */
const char *glmv_token_bytes(const glmv_tokenizer *tok, int32_t id, size_t *len);

/* The id of an exact token string (added tokens included), or -1. */
int32_t glmv_token_id(const glmv_tokenizer *tok, const char *piece);

/* Total ids the tokenizer knows (ordinary + added). */
int32_t glmv_tokenizer_size(const glmv_tokenizer *tok);

/* ------------------------------------------------------------------------ */
/* Model                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct glmv_model glmv_model;
typedef struct glmv_session glmv_session;

typedef enum { GLMV_DEVICE_AUTO = 0, GLMV_DEVICE_CPU, GLMV_DEVICE_CUDA } glmv_device;

/* What the matrix products are fed. Activations are float32 throughout; this
 * decides only the inputs of the GEMMs (and of the GPU's prefill attention):
 *   F32   they stay float32 on every backend: the outputs are transformers'
 *         float32 run up to summation order (the parity tests' bounds).
 *   BF16  they are rounded to bf16 where the hardware multiplies bf16 (a CPU
 *         with AVX512-BF16, the GPU's tensor cores), products accumulated in
 *         float32: faster (2x on such a CPU's prefill), logits within bf16
 *         rounding of float32's. Where the hardware has no bf16 products (an
 *         AVX2 CPU) the math stays float32.
 *   AUTO  $GLMV_PRECISION (f32 or bf16) when set, else the device's default:
 *         F32 on the CPU (the same answers whatever CPU the binary lands on),
 *         BF16 on CUDA (cuBLAS on tensor cores, as vLLM and transformers run). */
typedef enum { GLMV_PRECISION_AUTO = 0, GLMV_PRECISION_F32, GLMV_PRECISION_BF16 } glmv_precision;

/* "f32", "bf16" or "auto" -> *out; -1 for anything else. */
int glmv_precision_parse(const char *s, glmv_precision *out);

/* Weight-only quantization of the decoder's matrices at load time, in llama.cpp's block
 * formats: Q8_0 (8.5 bits a weight) or Q4_0 (4.5 bits; the output matrix lm_head stays Q8_0),
 * the vision tower, the embedding table and the norms as the checkpoint has them; or Q4_K_M,
 * llama.cpp's recipe of that name (about 4.9 bits: Q4_K, with Q6_K for the output matrix and
 * for v and down in some layers, Q5_0 / Q8_0 for rows not whole blocks of 256, the embedding
 * table Q4_K too), the same blocks as llama-quantize writes. */
typedef enum { GLMV_QUANT_NONE = 0, GLMV_QUANT_Q8_0, GLMV_QUANT_Q4_0, GLMV_QUANT_Q4_K_M } glmv_quant;

/* "none", "q8_0", "q4_0", "q4_k_m" (any case; also "q8", "q4") -> *out; -1 for anything
 * else. */
int glmv_quant_parse(const char *s, glmv_quant *out);

typedef struct {
    int n_threads;              /* CPU threads; 0 = all cores */
    glmv_device device;         /* AUTO: CUDA when built with it and a GPU exists */
    glmv_precision precision;   /* AUTO: $GLMV_PRECISION, else f32 on the CPU, bf16 on CUDA */
    int64_t max_decode_pixels;  /* refuse images/frames larger than this (0 = 178956970) */
    int min_image_tokens;       /* 0 = from preprocessor config */
    int max_image_tokens;       /* 0 = from preprocessor config */
    int verbose;                /* print load/prefill/vision/decode timings to stderr */
    glmv_quant quant;           /* NONE: the checkpoint's weights as they are */
    const char *mmproj;         /* a GGUF model's vision tower (llama.cpp's mmproj file); NULL: the
                                   folder's mmproj*.gguf, else none (text only) */
    int64_t kv_memory;          /* bytes the sessions' KV caches may hold together (they grow with
                                   their sequences); 0: on a GPU, 90% of its memory free after
                                   loading less 1 GiB; on the CPU no limit */
    int tensor_parallel;        /* split the decoder over this many GPUs (NCCL): heads and MLP
                                   columns, Megatron-style; 0 or 1: one. GLM-4.1V's 2 key-value
                                   heads allow 2. On the CPU the ranks share the cores (tests). */
    const char *tokenizer;      /* a synthetic model's tokenizer: a folder holding tokenizer.json
                                   (and chat_template.jinja or tokenizer_config.json), e.g. the
                                   checkpoint's tokenizer files alone, so that the 9B shape takes
                                   chat messages, images and videos (benchmarks of time to first
                                   token, a server under load); NULL: none (token ids only). A
                                   checkpoint or GGUF has its own: giving one there is an error. */
} glmv_model_params;

void glmv_model_params_default(glmv_model_params *p);

/* Load a checkpoint folder as Hugging Face ships it; no conversion.
 * dir may also be llama.cpp's GGUF text model (a .gguf file, its vision tower in
 * p->mmproj) or a folder holding one text .gguf and one mmproj*.gguf (README,
 * "GGUF files"). dir "synthetic:9b[,layers=N][,seed=S]" builds random BF16 weights of the
 * 9B shape in memory (benchmarks; no tokenizer unless p->tokenizer names one). */
int glmv_model_load(glmv_model **out, const char *dir, const glmv_model_params *p, char *err);
void glmv_model_free(glmv_model *m);

/* Write a model loaded from a Hugging Face folder on the CPU, its matrices as held (e.g.
 * quantized with p->quant), as the folder dir (made if missing; not the checkpoint's own):
 * the checkpoint's other files copied and one model.safetensors, which glmv_model_load reads
 * without quantizing again (`glmv quantize`). */
int glmv_model_save(glmv_model *m, const char *dir, char *err);

const glmv_tokenizer *glmv_model_tokenizer(const glmv_model *m);

typedef struct {
    const char *name;           /* folder basename */
    const char *device;         /* "cpu (avx2)", "cuda (NVIDIA H200)", ... */
    const char *precision;      /* what the GEMMs do: "f32" or "bf16" */
    const char *precision_why;  /* how it was chosen, e.g. "the CPU's default" */
    const char *quant;          /* "none", "q8_0", "q4_0", "q4_k_m", with where they came from */
    const char *kv_cache;       /* what a KV cache holds: "bf16" or "f32" (GLMV_KV_BF16) */
    int64_t weight_bytes;       /* the weights as held in memory (after quantization) */
    int64_t n_params;
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, vocab;
    int vision_depth, vision_hidden;
    int max_position_embeddings;
    double load_ms;
} glmv_model_info;

void glmv_model_get_info(const glmv_model *m, glmv_model_info *info);

/* ------------------------------------------------------------------------ */
/* Chat messages                                                            */
/* ------------------------------------------------------------------------ */

/* PDF: a document whose pages become images of the prompt (rendered with poppler at up to
 * 150 dpi, smaller when the model's image budget is: --max-image-tokens shrinks them too). */
typedef enum { GLMV_PART_TEXT = 0, GLMV_PART_IMAGE, GLMV_PART_VIDEO, GLMV_PART_PDF } glmv_part_kind;

typedef struct {
    glmv_part_kind kind;
    const char *text;           /* TEXT: UTF-8 */
    const char *path;           /* IMAGE/VIDEO/PDF: a file path, or NULL when data is set */
    const void *data;           /* IMAGE/VIDEO/PDF: encoded bytes in memory */
    size_t size;
    /* VIDEO options; 0 = the processor's defaults */
    double video_fps;           /* sampled frames per second (default 2) */
    int video_max_frames;       /* cap on sampled frames */
    double video_start, video_end; /* seconds; end 0 = to the end */
    const char *pages;          /* PDF: the pages, "1-3,5,9-" (1-based); NULL = all */
} glmv_part;

typedef struct {
    const char *role;           /* "system", "user", "assistant" */
    const glmv_part *parts;
    int n_parts;
    const char *metadata;       /* assistant history: text after <|assistant|> (NULL = none) */
} glmv_message;

/* ------------------------------------------------------------------------ */
/* Generation                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    int max_new_tokens;         /* 0 = until eos or the context is full */
    int do_sample;              /* 0 = greedy */
    float temperature;          /* 1 = unchanged */
    int top_k;                  /* 0 = off */
    float top_p;                /* 1 = off */
    float repetition_penalty;   /* 1 = off; HF semantics: prompt and output ids */
    uint64_t seed;
    const char *const *stop;    /* extra stop strings, matched on the answer text */
    int n_stop;
    int max_thinking_tokens;    /* 0 = unlimited; when spent, "</think><answer>" is forced */
    int max_new_is_default;     /* 1: max_new_tokens is a default (generation_config.json), not
                                   the user's: shortened to what the context holds instead of
                                   being refused (glmv_sampling_default leaves it 0) */
    float presence_penalty;     /* 0 = off; OpenAI semantics, in [-2, 2]: subtracted once from */
    float frequency_penalty;    /* every id already generated / per time it was generated */
    float min_p;                /* 0 = off; when sampling, after temperature, top-k and top-p: drop
                                   ids whose probability is below min_p x the best one's */
    int min_tokens;             /* 0 = off; before this many tokens the eos ids are masked and
                                   stop strings not matched */
    int ignore_eos;             /* 1: an eos id does not end the generation (max tokens does) */
    const int32_t *bias_ids;    /* logit bias (OpenAI's logit_bias): bias_values[i], in [-100, */
    const float *bias_values;   /* 100], is added to the logit of bias_ids[i] before anything */
    int n_bias;                 /* else (-100 in effect bans the id) */
    int logprobs;               /* 1: each generated token's log-probability (glmv_logprob) */
    int top_logprobs;           /* with logprobs: also the 0..GLMV_MAX_TOP_LOGPROBS most likely ids */
    int json;                   /* 1: the answer (after </think>, or from the start) is JSON: an
                                   object, or a value matching json_schema when that is set; only
                                   tokens that keep it so are sampled, and it ends when complete */
    const char *json_schema;    /* a JSON Schema (OpenAI's strict subset: glmv_json_schema_check) */
    int keep_tags;              /* 1: the output is not split: content holds all of it as its tokens
                                   spell it, <think>...</think><answer>...</answer> tags included,
                                   reasoning stays empty (vLLM's skip_special_tokens: false, which
                                   the official GLM-V clients parse); the thinking budget, JSON
                                   answers and reasoning_tokens still follow the tags */
} glmv_sampling;

/* 0 if glmv can hold an answer to this JSON Schema (a JSON text), else -1
 * with the unsupported feature named in err. */
int glmv_json_schema_check(const char *schema, char *err);

/* Log-probabilities of one generated token, from the model's distribution
 * (log-softmax of the raw logits, before penalties, bias and temperature, as
 * vLLM reports them). */
#define GLMV_MAX_TOP_LOGPROBS 20
typedef struct {
    int32_t token;
    float logprob;                               /* of the token generated */
    int n_top;                                   /* glmv_sampling.top_logprobs */
    int32_t top_ids[GLMV_MAX_TOP_LOGPROBS];      /* most likely first */
    float top_logprobs[GLMV_MAX_TOP_LOGPROBS];
} glmv_logprob;

/* Defaults from the checkpoint's generation_config.json. */
void glmv_sampling_default(const glmv_model *m, glmv_sampling *s);

typedef enum { GLMV_TEXT_REASONING = 0, GLMV_TEXT_CONTENT } glmv_text_kind;

typedef struct {
    int32_t token;              /* the id just generated */
    const char *text;           /* visible UTF-8 produced by it (may be empty; tags removed) */
    size_t len;
    glmv_text_kind kind;
    int token_start;            /* 1 on the first event of a token (a token may make several) */
    const glmv_logprob *logprob; /* the token's, when glmv_sampling.logprobs; else NULL */
} glmv_event;

/* Called for each generated token; return non-zero to stop (finish "cancelled"). */
typedef int (*glmv_callback)(void *user, const glmv_event *ev);

typedef struct {
    char *reasoning;            /* malloc'd, NUL-terminated */
    char *content;              /* malloc'd, NUL-terminated */
    int32_t *token_ids;         /* generated ids, malloc'd */
    int n_tokens;
    int prompt_tokens;
    int completion_tokens;
    int image_tokens;           /* vision tokens spliced into the prompt */
    const char *finish_reason;  /* "stop", "length" or "cancelled" (static) */
    double preprocess_ms, vision_ms, prefill_ms, decode_ms;
    int cached_tokens;          /* prompt tokens kept from the session's cache (earlier turns) */
    int reasoning_tokens;       /* generated tokens up to and including </think> */
    glmv_logprob *logprobs;     /* n_tokens entries when glmv_sampling.logprobs, else NULL */
    int shared_tokens;          /* of cached_tokens, those copied from another session (glmv_session_share) */
} glmv_result;

void glmv_result_free(glmv_result *r);

/* A session owns a KV cache of n_ctx tokens (0 = the model's maximum,
 * capped by what fits). */
int glmv_session_new(glmv_session **out, glmv_model *m, int n_ctx, char *err);
void glmv_session_free(glmv_session *s);

/* Prefix sharing (on = 1): a prompt whose start another sharing session of the
 * same model holds in its cache (the same ids, identical images: a system
 * prompt, an image several requests ask about, a conversation continued on
 * another session) copies those rows of the KV cache instead of computing them
 * again; the answer is the one a fresh cache gives, up to the summation order
 * of kernels that see fewer rows at once. Off by default, as the copy tells one
 * session's user what others asked: it is for sessions that serve one party
 * (glmv serve's slots). Returns 0, or -1 when out of memory. */
int glmv_session_share(glmv_session *s, int on, char *err);

/* Render the chat template, preprocess media, run the vision tower, prefill
 * and generate. Prompt plus max_new_tokens beyond n_ctx is an error. */
int glmv_generate(glmv_session *s, const glmv_message *msgs, int n_msgs,
                  const glmv_sampling *sp, glmv_callback cb, void *user,
                  glmv_result *out, char *err);

/* The same for a prompt given as text in the model's own format (no chat
 * template, no media: an <|image|> in it is refused as a missing image), as
 * OpenAI's /v1/completions takes it. The output is not split: content holds
 * the text as the generated tokens spell it (special tokens left out, so
 * <think> and <answer> tags stay), reasoning is empty. */
int glmv_generate_raw(glmv_session *s, const char *prompt, const glmv_sampling *sp,
                      glmv_callback cb, void *user, glmv_result *out, char *err);

/* ------------------------------------------------------------------------ */
/* Several generations at once (continuous batching)                        */
/* ------------------------------------------------------------------------ */

/* glmv_generate in steps, so that a caller can advance several generations together,
 * each on its own session of one model:
 *   glmv_gen_start   the prompt (template, media, tokens) and its prefill on the session;
 *   glmv_gen_step    picks the next token from the last logits and streams it (the
 *                    callback runs here); 1 when the generation is over, 0 when its token
 *                    (glmv_gen_token) must be evaluated before the next step, -1 on error;
 *   glmv_gen_eval_batch  evaluates the pending token of n generations in one forward
 *                    pass: the weights are read once for all of them, each attends to its
 *                    own cache;
 *   glmv_gen_finish  the result (as glmv_generate's), and frees the generation.
 * glmv_generate is start, then step and evaluate one by one, then finish. A sequence's
 * tokens do not depend on what is batched beside it: on the CPU its logits are bit for bit
 * those of glmv_generate; on CUDA the matrix products of a batch may sum in another order
 * (the tokens agree unless two logits are within float rounding of each other).
 * glmv_gen_free abandons a generation (no result). A session runs one generation at a time. */
typedef struct glmv_gen glmv_gen;
typedef struct glmv_batch glmv_batch;
typedef struct glmv_prompt glmv_prompt;

/* The prompt stage alone: the messages rendered, their media decoded and preprocessed, the
 * text tokenized, for a session of n_ctx tokens (0: no limit checked yet). Only reads the
 * model: any thread may prepare prompts while sessions generate. A prepared prompt may start
 * several generations (glmv_gen_start_prompt does not consume it). */
int glmv_prompt_new(glmv_prompt **out, glmv_model *m, const glmv_message *msgs, int n_msgs,
                    int n_ctx, char *err);
int glmv_prompt_new_raw(glmv_prompt **out, glmv_model *m, const char *prompt, int n_ctx, char *err);
int glmv_prompt_tokens(const glmv_prompt *p);
/* its token ids (glmv_prompt_tokens of them; each medium's placeholders expanded), owned by p */
const int32_t *glmv_prompt_ids(const glmv_prompt *p);
void glmv_prompt_free(glmv_prompt *p);
/* The run stage of a prepared prompt: prefix reuse, vision tower, prefill on s. */
int glmv_gen_start_prompt(glmv_gen **out, glmv_session *s, const glmv_prompt *p,
                          const glmv_sampling *sp, glmv_callback cb, void *user, char *err);
/* The same without the text prefill: prefix reuse and the vision tower run here, and the
 * prompt's tokens are left for glmv_gen_eval_batch, which evaluates them in chunks in the
 * same forward passes as the other generations' decode tokens (so that a new prompt does not
 * stop the running streams, and the weights are read once for both). glmv_gen_prompt_left
 * says how many are still to evaluate; glmv_gen_step is for when it is 0. */
int glmv_gen_begin_prompt(glmv_gen **out, glmv_session *s, const glmv_prompt *p,
                          const glmv_sampling *sp, glmv_callback cb, void *user, char *err);
int glmv_gen_prompt_left(const glmv_gen *g);
/* 1 while glmv_gen_eval_batch still has work to do before glmv_gen_step may pick: prompt
 * tokens left, or its token not evaluated in the last pass because the KV memory was not there
 * (it waits, or it was preempted: its cache moved to host memory until there is room). */
int glmv_gen_pending(const glmv_gen *g);

int glmv_gen_start(glmv_gen **out, glmv_session *s, const glmv_message *msgs, int n_msgs,
                   const glmv_sampling *sp, glmv_callback cb, void *user, char *err);
int glmv_gen_start_raw(glmv_gen **out, glmv_session *s, const char *prompt,
                       const glmv_sampling *sp, glmv_callback cb, void *user, char *err);
int glmv_gen_step(glmv_gen *g, char *err);
int32_t glmv_gen_token(const glmv_gen *g);
glmv_session *glmv_gen_session(const glmv_gen *g);
int glmv_gen_finish(glmv_gen *g, glmv_result *out, char *err);
void glmv_gen_free(glmv_gen *g);

/* Scratch for evaluating up to `cap` generations' tokens in one pass. */
int glmv_batch_new(glmv_batch **out, glmv_model *m, int cap, char *err);
void glmv_batch_free(glmv_batch *b);
int glmv_batch_capacity(const glmv_batch *b);
/* Rows one pass takes: a token of each of the batch's sequences plus prompt rows of the size
 * the backend prefers beside them (512 on CUDA, 256 on the CPU). A call of glmv_gen_eval_batch
 * whose only work is one generation's prompt takes up to the backend's prefill chunk a pass
 * instead (2,048 rows on CUDA), as glmv_session_eval would; glmv_session_eval_chunks accepts
 * that many rows too. */
int glmv_batch_max_rows(const glmv_batch *b);
/* The rows a pass of a lone prompt may take: the larger of glmv_batch_max_rows and the
 * backend's prefill chunk, so that a prompt with nobody else's work beside it (a server's lone
 * request) is prefilled in the passes glmv_session_eval would make. */
int glmv_batch_idle_rows(const glmv_batch *b);
/* One pass over the pending work of n generations: each one's token, and the next chunk of
 * each prompt left by glmv_gen_begin_prompt, in the rows the tokens leave (in the order
 * given: a prompt that gets no rows this time waits for the next pass). The caches grow from
 * the model's KV budget (glmv_model_params.kv_memory): when it is spent, the caches kept only
 * for a next request's prefix are given back, then the newest generation is preempted (its
 * cache copied to host memory, resumed when there is room, the same floats) or, when none is
 * newer, waits. glmv_gen_pending says which still have work. A generation whose sequence can
 * never fit the budget (nobody else holds any of it) fails alone: its cache is given back, the
 * others' pass goes on, and its next glmv_gen_step returns -1 (GLMV_E_NOMEM, "does not fit").
 * -1 here means the pass itself failed (the backend, memory for its rows, a bad argument). */
int glmv_gen_eval_batch(glmv_batch *b, glmv_gen *const *gens, int n, char *err);

/* ------------------------------------------------------------------------ */
/* Low level: for benchmarks, tests and tools that manage tokens themselves */
/* ------------------------------------------------------------------------ */

/* Forget the conversation (empty KV cache). */
void glmv_session_reset(glmv_session *s);
/* Tokens in the KV cache / its capacity. */
int glmv_session_pos(const glmv_session *s);
int glmv_session_n_ctx(const glmv_session *s);

/* Append text-only ids at the current position (positions continue from the
 * last prompt, M-RoPE delta included) and compute the logits of the last one
 * into `logits` (vocab floats; may be NULL). */
int glmv_session_eval(glmv_session *s, const int32_t *ids, int n, float *logits, char *err);

/* One decode step of n sessions together (distinct sessions of b's model): ids[i] is
 * appended to ss[i] as glmv_session_eval would append it, its logits into logits[i]
 * (vocab floats each; an entry may be NULL). */
int glmv_session_eval_batch(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                            float *const *logits, char *err);
/* One pass of n sessions, each appending counts[i] text ids (ids holds them one session after
 * another) as glmv_session_eval would: a decode token, or a chunk of a prompt beside the other
 * sessions' tokens; the logits of each one's last id into logits[i] (may be NULL). At most
 * glmv_batch_idle_rows ids in all. */
int glmv_session_eval_chunks(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, const int *counts,
                             int n, float *const *logits, char *err);
/* The k largest logits of a sequence's last id, found where the logits are (on a GPU: a few
 * bytes read instead of the whole row, 606 KB for the 9B). Sampling from them is what
 * glmv_gen_eval_batch does for greedy and top-k generations. */
#define GLMV_TOP_MAX 64
typedef struct {
    int k;                      /* how many to find: 1 to GLMV_TOP_MAX (at most the vocabulary) */
    int n;                      /* found: k (0 where glmv's own sampler had the whole row read) */
    float logit[GLMV_TOP_MAX];  /* the largest first; among equal logits the smaller id first */
    int32_t id[GLMV_TOP_MAX];
} glmv_top;
/* glmv_session_eval_chunks with each one's top[i] (may be NULL) filled instead of a row of
 * logits: with k = 1, id[0] is the greedy token. */
int glmv_session_eval_top(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, const int *counts, int n,
                          glmv_top *const *top, char *err);
/* A row of vocab floats for logits in the host memory the model's device reads into fastest
 * (page-locked on CUDA: 64 sequences' logits are 39 MB a step of the 9B); any memory works,
 * this is the fast kind. Rows are kept for reuse; free them before the model. NULL: OOM. */
float *glmv_logits_new(glmv_model *m);
void glmv_logits_free(glmv_model *m, float *row);

/* Run the vision tower alone on a synthetic image of h x w pixels (after
 * smart_resize); *n_tokens receives the merged tokens it produced. */
int glmv_vision_eval(glmv_model *m, int h, int w, int *n_tokens, char *err);

/* Run once what a request runs, on made-up inputs, so that the first real request does not pay
 * a device's start-up costs (its kernels loaded on first use, library plans, the vision tower's
 * scratch, page-locked pools): the vision tower on an h x w image (multiples of 28; 0, 0 or a
 * model without one: skipped; the scratch stays sized for it), a prompt of one prefill chunk and
 * a few tokens more, and decode steps alone and as a batch of one. Its KV caches are given back;
 * nothing a later request sees changes. For GPUs: the CPU loads nothing lazily, and its vision
 * tower takes seconds. */
int glmv_model_warmup(glmv_model *m, int h, int w, char *err);

/* The KV caches' memory (glmv_model_params.kv_memory): bytes backed now and the budget (0: no
 * limit), caches given back because others needed the room, generations preempted. */
typedef struct {
    int64_t bytes, budget, evictions, preemptions;
    int grows;                  /* 1: the caches grow with their sequences and draw on the budget (the
                                   CPU; CUDA with GLMV_CUDA_VMM=1); 0: each is allocated whole */
} glmv_kv_stats;
void glmv_model_kv_stats(glmv_model *m, glmv_kv_stats *out);

/* Peak resident memory of the process in bytes (host), and on the device. */
int64_t glmv_peak_host_bytes(void);
int64_t glmv_device_bytes(const glmv_model *m);

#ifdef __cplusplus
}
#endif
#endif /* GLMV_H */
