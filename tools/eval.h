/* eval.h -- `glmv eval`, the accuracy benchmark: its items, how an answer is
 * matched against the reference, and the plot of accuracy against the thinking
 * budget. Internal to tools/ (eval.c, eval_item.c, eval_plot.c, eval_url.c);
 * tests/test_eval.c compiles eval_item.c into itself to test the matcher.
 *
 * An items file is JSON Lines, one item per line (blank lines and lines whose
 * first non-blank character is '#' are skipped):
 *   {"id": "000", "category": "count", "images": ["000.png"], "video": "clip.mp4",
 *    "question": "How many shapes are there?", "answer": "1", "match": "number",
 *    "tolerance": 0, "rel_tolerance": 0, "choices": ["red", "green"]}
 * Only question and answer are required; media paths are relative to the file.
 */
#ifndef GLMV_EVAL_H
#define GLMV_EVAL_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdio.h>

typedef enum { EVAL_EXACT = 0, EVAL_NUMBER, EVAL_CHOICE, EVAL_REGEX } eval_rule;

#define EVAL_MAX_CHOICES 26
#define EVAL_MAX_IMAGES 64

typedef struct {
    int line;               /* 1-based line in the items file */
    char *id;               /* "id", else "line N" */
    char *category;         /* "category", else "all" */
    char *question;         /* the prompt text; for a choice item the options are appended */
    char *answer;           /* the reference as written (a number as text, the regex pattern) */
    eval_rule rule;
    double number;          /* EVAL_NUMBER: the reference value */
    double tolerance;       /* EVAL_NUMBER: absolute tolerance (default 0) */
    double rel_tolerance;   /* EVAL_NUMBER: relative tolerance, of |reference| (default 0) */
    int n_choices;          /* EVAL_CHOICE: options, shown to the model as "A. text" lines */
    char *choices[EVAL_MAX_CHOICES];
    int choice;             /* EVAL_CHOICE: the index of the right option */
    pcre2_code *re;         /* EVAL_REGEX: the compiled pattern */
    int n_images;
    char *images[EVAL_MAX_IMAGES]; /* paths as opened (joined to the items file's folder) */
    char *video;            /* NULL when none */
} eval_item;

const char *eval_rule_name(eval_rule r);
/* vsnprintf into err (errsz bytes); returns -1, for `return eval_fail(...)` */
int eval_fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parse one line of an items file; `dir` is the items file's folder (media
 * paths are joined to it) and every media file must exist and be a regular,
 * readable file. 0 ok, 1 a line to skip (blank, comment), -1 with a message
 * in err (without the line number: the caller adds it). */
int eval_item_parse(eval_item *it, const char *text, int line, const char *dir, char *err,
                    size_t errsz);
void eval_item_free(eval_item *it);

/* The answer in a model's output: the text inside <answer>...</answer> when the
 * tags are there (else all of it), without GLM's <|begin_of_box|> and
 * <|end_of_box|> markers, trimmed. Malloc'd. */
char *eval_extract_answer(const char *content);

/* Does `got` (already extracted) answer the item? 1 yes, 0 no.
 *   exact   equal after trimming, folding ASCII case, collapsing runs of
 *           white space and dropping one final '.'
 *   number  the whole answer if it is a number, else the last number in it
 *           (',' between digits is a thousands separator), within tolerance
 *           or rel_tolerance x |reference| of the reference
 *   choice  the option's letter ("B", "(B)", "B.", "B) text") or its text
 *           (compared as exact does)
 *   regex   the pattern (PCRE2, as written) matches somewhere in the answer */
int eval_match(const eval_item *it, const char *got);

/* The number in an answer as `number` reads it; 0 ok, -1 none. */
int eval_parse_number(const char *s, double *out);

/* ---- the plot ---------------------------------------------------------- */

/* Accuracy against the thinking budget: acc[c * n_budgets + b] for category c
 * (the last one is "overall"), NAN where nothing was run; budgets[b] 0 is
 * "unlimited" (drawn rightmost). Budgets are spaced on a log2 scale. */
int eval_plot_svg(const char *path, const int *budgets, int n_budgets, const char *const *names,
                  int n_names, const double *acc, char *err, size_t errsz);

/* ---- a server --------------------------------------------------------- */

typedef struct eval_url eval_url;

typedef struct {
    char *content;          /* malloc'd */
    int reasoning_tokens, completion_tokens;
    char finish[16];
} eval_url_result;

/* url: http://host:port (or .../v1 or .../v1/chat/completions); api_key may be NULL. */
int eval_url_open(eval_url **out, const char *url, const char *api_key, const char *model,
                  char *err, size_t errsz);
void eval_url_close(eval_url *u);
/* One chat completion of the item; `sampling` is a JSON object text of the
 * request's sampling fields; budget 0 = no max_thinking_tokens. */
int eval_url_ask(eval_url *u, const eval_item *it, const char *sampling, int budget,
                 eval_url_result *res, char *err, size_t errsz);

#endif
