/* agent.h -- GLM-4.1V as a GUI agent (docs/gui_agent_41v.md of zai-org/GLM-V):
 * the official prompt of each mode filled from a task and the earlier steps,
 * the model's answer parsed into a typed action, its coordinates mapped to
 * the screenshot's pixels, and the action drawn on the screenshot.
 *
 * Three modes, each with its own action space and answer format:
 *   mobile  AndroidWorld: "Memory: ..\nReason: ..\nAction: {json}", boxes
 *           [[x1,y1,x2,y2]] in 0-999
 *   pc      OSWorld: "explanation\naction(arg='..')\nMemory:\n[..]", points
 *           '[x,y]' in 0-1000
 *   web     WebVoyager: "Thought: ..\nAction: Click [5]\nMemory_Updated: ..",
 *           numbered elements (set of marks), no coordinates
 * The parser accepts what the prompt shows the model and refuses anything
 * else with a message naming the fault: it never guesses an action. No model
 * is needed here; tools/agent.c runs it. */
#ifndef GLMV_AGENT_H
#define GLMV_AGENT_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef enum { AGENT_MOBILE = 0, AGENT_PC, AGENT_WEB } agent_mode;

/* "mobile", "pc", "web" -> mode; -1 if none of them */
int agent_mode_parse(const char *s);
const char *agent_mode_name(agent_mode m);

typedef struct {
    agent_mode mode;
    const char *task;            /* #COMMAND# / #TASK# / {TASK} */
    const char *const *history;  /* earlier steps, oldest first, as the mode writes them; a
                                    model output's <think> part, <answer> tags and box
                                    tokens are dropped */
    int n_history;
    const char *apps;            /* mobile: #SUPPORTED_APPS# (NULL = AndroidWorld's list) */
    const char *memory;          /* pc: the JSON list (NULL = "[]"); web: the JSON object
                                    (NULL = "{}"); mobile: must be NULL */
    const char *url;             /* web: {Web}, the site to work on (required) */
    const char *elements;        /* web: {web_text}, the element list (NULL = empty) */
} agent_prompt_args;

/* The filled prompt, malloc'd; NULL with err set when an argument is missing
 * or does not belong to the mode. */
char *agent_prompt(const agent_prompt_args *a, char *err, size_t err_size);

#define AGENT_NAME_MAX 24

/* One parsed action. Coordinates are the model's (0-999 mobile, 0-1000 pc);
 * the pixel fields are filled by agent_map. Strings are malloc'd or NULL. */
typedef struct {
    agent_mode mode;
    char action[AGENT_NAME_MAX]; /* as the mode spells it: click, left_click, Click, ANSWER.. */
    int has_box, box[4];         /* mobile box_2d; pc start_box given with four numbers */
    int has_point, point[2];     /* pc start_box [x,y] */
    int has_end, end[2];         /* pc left_drag end_box */
    char *text;                  /* mobile input_text/answer text, pc type content, web Type
                                    content and ANSWER content */
    char *direction;             /* mobile swipe, pc scroll, web Scroll: up/down(/left/right) */
    char *keys;                  /* pc key, web Key */
    char *app_name;              /* mobile open_app */
    char *goal_status;           /* mobile status: complete / infeasible */
    char *element_info;          /* pc, optional */
    int override;                /* mobile input_text: -1 absent, 0 false, 1 true */
    int scroll_step;             /* pc scroll: clicks of the wheel (the document's default 5) */
    int element;                 /* web: numerical label; -1 WINDOW (Scroll); -2 none */
    char *memory;                /* mobile Memory, pc memory part, web Memory_Updated */
    char *reason;                /* mobile Reason, pc explanation, web Thought */
    /* pixels, from agent_map: the box, the point acted on (the box's centre)
       and the drag's end point */
    int px_valid;
    int px_box[4], px_point[2], px_end[2];
} agent_action;

void agent_action_free(agent_action *a);

/* The part of a model output that holds the answer: after the last </think>,
 * inside <answer>..</answer> when present, without the grounding tokens
 * <|begin_of_box|> / <|end_of_box|>. malloc'd. */
char *agent_answer_text(const char *raw);

/* Parse a model output (raw, tags and all) for the mode. 0 on success; -1
 * with err naming what is wrong (no action, unknown action, bad box, ...). */
int agent_parse(agent_mode mode, const char *raw, agent_action *out, char *err, size_t err_size);

/* Model coordinates -> pixels of a w x h screenshot: v * size / 1000 (the
 * document's per-mille), rounded, kept inside the image. */
void agent_map(agent_action *a, int w, int h);

/* The action as a JSON object (documented in README.md, "GUI agent"). */
cJSON *agent_action_json(const agent_action *a, int w, int h, const char *raw);

/* Draw the action on the screenshot (decoded with glmv's image decoder) and
 * write a PNG of the same size. 0 or -1 with err. */
int agent_draw(const agent_action *a, const char *screenshot, const char *png_path, char *err,
               size_t err_size);

/* pc: an earlier screenshot scaled to 50% x 50% (the guide's rule for the up
 * to four history images), as PNG bytes in memory (*png malloc'd). */
int agent_half_png(const char *path, void **png, size_t *size, char *err, size_t err_size);

extern const char agent_tmpl_mobile[], agent_tmpl_pc[], agent_tmpl_web[], agent_default_apps[];

#endif
