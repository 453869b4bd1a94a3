/* test_config.c -- config.json in both layouts (older rope_scaling +
 * top-level keys, newer text_config.rope_parameters), generation_config.json,
 * the processor configs in both layouts (2025 files and transformers 5.x's
 * processor_config.json), class defaults when files or keys are absent, and
 * inconsistent configs refused with one line naming the file and the key.
 * Each test writes its JSON files into a fresh temp folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "config.h"
#include "test.h"
#include "util_ckpt.h"

static char err[GLMV_ERR_SIZE];

/* the 9B config in the older layout (July 2025): text keys duplicated at the
 * top level and in text_config, rope_scaling + rope_theta + partial factor */
static const char *OLD_9B =
    "{\"architectures\":[\"Glm4vForConditionalGeneration\"],\"model_type\":\"glm4v\","
    "\"attention_bias\":true,\"attention_dropout\":0.0,\"pad_token_id\":151329,"
    "\"eos_token_id\":[151329,151336,151338],"
    "\"image_start_token_id\":151339,\"image_end_token_id\":151340,"
    "\"video_start_token_id\":151341,\"video_end_token_id\":151342,"
    "\"image_token_id\":151343,\"video_token_id\":151344,"
    "\"hidden_act\":\"silu\",\"hidden_size\":4096,\"initializer_range\":0.02,"
    "\"intermediate_size\":13696,\"max_position_embeddings\":65536,"
    "\"num_attention_heads\":32,\"num_hidden_layers\":40,\"num_key_value_heads\":2,"
    "\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
    "\"transformers_version\":\"4.53.0.dev0\",\"use_cache\":true,\"vocab_size\":151552,"
    "\"partial_rotary_factor\":0.5,\"rope_theta\":10000.0,"
    "\"rope_scaling\":{\"type\":\"default\",\"mrope_section\":[8,12,12]},"
    "\"text_config\":{\"model_type\":\"glm4v_text\",\"attention_bias\":true,"
    "\"hidden_size\":4096,\"intermediate_size\":13696,\"max_position_embeddings\":65536,"
    "\"num_attention_heads\":32,\"num_hidden_layers\":40,\"num_key_value_heads\":2,"
    "\"rms_norm_eps\":1e-05,\"vocab_size\":151552,\"partial_rotary_factor\":0.5,"
    "\"rope_theta\":10000.0,\"pad_token_id\":151329,"
    "\"eos_token_id\":[151329,151336,151338,151348],"
    "\"rope_scaling\":{\"rope_type\":\"default\",\"type\":\"default\",\"mrope_section\":[8,12,12]}},"
    "\"vision_config\":{\"model_type\":\"glm4v\",\"attention_bias\":false,\"depth\":24,"
    "\"hidden_act\":\"silu\",\"hidden_size\":1536,\"image_size\":336,\"in_channels\":3,"
    "\"intermediate_size\":13696,\"num_heads\":12,\"out_hidden_size\":4096,"
    "\"patch_size\":14,\"rms_norm_eps\":1e-05,\"spatial_merge_size\":2,"
    "\"temporal_patch_size\":2}}";

/* a tiny config in the newer layout (transformers >= 4.57): rope_parameters,
 * a head_dim key other than hidden/heads, sections other than [8, 12, 12] */
static const char *NEW_TINY =
    "{\"architectures\":[\"Glm4vForConditionalGeneration\"],\"model_type\":\"glm4v\","
    "\"image_start_token_id\":90,\"image_end_token_id\":91,\"video_start_token_id\":92,"
    "\"video_end_token_id\":93,\"image_token_id\":94,\"video_token_id\":95,"
    "\"text_config\":{\"model_type\":\"glm4v_text\",\"hidden_size\":64,"
    "\"intermediate_size\":96,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"head_dim\":24,\"num_hidden_layers\":3,\"vocab_size\":100,\"max_position_embeddings\":512,"
    "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,\"pad_token_id\":0,"
    "\"eos_token_id\":7,"
    "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5000.0,"
    "\"partial_rotary_factor\":0.5,\"mrope_section\":[2,2,2]}},"
    "\"vision_config\":{\"depth\":2,\"hidden_size\":32,\"num_heads\":2,\"image_size\":[56,56],"
    "\"patch_size\":14,\"out_hidden_size\":64,\"intermediate_size\":80,"
    "\"spatial_merge_size\":2,\"temporal_patch_size\":2,\"rms_norm_eps\":1e-06}}";

static char *dir_with(const char *config) {
    char *d = ckpt_tmpdir("cfg");
    if (d && config) ckpt_write_text(d, "config.json", config);
    return d;
}

/* replace the first occurrence of `from` in base by `to` (static buffer) */
static const char *patch(const char *base, const char *from, const char *to) {
    static char buf[8192];
    const char *at = strstr(base, from);
    if (!at) {
        printf("  patch: \"%s\" not found\n", from);
        return base;
    }
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return buf;
}

TEST(old_layout_9b) {
    char *d = dir_with(OLD_9B);
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.vocab_size, 151552);
    CHECK_EQ_INT(c.hidden_size, 4096);
    CHECK_EQ_INT(c.intermediate_size, 13696);
    CHECK_EQ_INT(c.num_hidden_layers, 40);
    CHECK_EQ_INT(c.num_attention_heads, 32);
    CHECK_EQ_INT(c.num_key_value_heads, 2);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK_EQ_INT(c.max_position_embeddings, 65536);
    CHECK_NEAR(c.rms_norm_eps, 1e-5, 1e-12);
    CHECK_NEAR(c.rope_theta, 10000.0, 0);
    CHECK_NEAR(c.partial_rotary_factor, 0.5, 0);
    CHECK(c.mrope_section[0] == 8 && c.mrope_section[1] == 12 && c.mrope_section[2] == 12);
    CHECK_EQ_INT(c.attention_bias, 1);
    CHECK_EQ_INT(c.tie_word_embeddings, 0);
    CHECK_EQ_INT(c.v_depth, 24);
    CHECK_EQ_INT(c.v_hidden_size, 1536);
    CHECK_EQ_INT(c.v_num_heads, 12);
    CHECK_EQ_INT(c.v_head_dim, 128);
    CHECK_EQ_INT(c.v_patch_size, 14);
    CHECK_EQ_INT(c.v_image_size, 336);
    CHECK_EQ_INT(c.v_out_hidden_size, 4096);
    CHECK_EQ_INT(c.v_intermediate_size, 13696);
    CHECK_EQ_INT(c.v_attention_bias, 0);
    CHECK_EQ_INT(c.image_token_id, 151343);
    CHECK_EQ_INT(c.video_end_token_id, 151342);
    CHECK_EQ_INT(c.pad_token_id, 151329);
    /* text_config's eos list wins over the top level's shorter one */
    CHECK_EQ_INT(c.n_eos, 4);
    CHECK_EQ_INT(c.eos_token_ids[3], 151348);
    /* no generation/processor files: defaults */
    CHECK_EQ_INT(c.gen_do_sample, 0);
    CHECK_NEAR(c.gen_temperature, 1, 0);
    CHECK_EQ_INT(c.gen_top_k, 0);
    CHECK_NEAR(c.gen_top_p, 1, 0);
    CHECK_EQ_INT(c.img_min_pixels, 12544);
    CHECK_EQ_INT(c.img_max_pixels, 28 * 28 * 15000);
    CHECK_EQ_INT(c.vid_max_pixels, 47040000);
    CHECK_NEAR(c.img_mean[0], 0.48145466, 1e-7);
    CHECK_NEAR(c.img_std[2], 0.27577711, 1e-7);
    CHECK_NEAR(c.img_rescale_factor, 1.0 / 255, 1e-12);
    CHECK_EQ_INT(c.proc_patch_size, 14);
    CHECK_EQ_INT(c.proc_merge_size, 2);
    ckpt_rmdir(d);
}

/* The same numbers from the preset and from the file. */
TEST(preset_9b_matches_old_layout) {
    char *d = dir_with(OLD_9B);
    glmv_config c, p;
    CHECK(glmv_config_load(&c, d, err) == 0);
    glmv_config_preset_9b(&p, 0);
    CHECK_EQ_INT(p.num_hidden_layers, 40);
    CHECK_EQ_INT(p.vocab_size, c.vocab_size);
    CHECK_EQ_INT(p.hidden_size, c.hidden_size);
    CHECK_EQ_INT(p.intermediate_size, c.intermediate_size);
    CHECK_EQ_INT(p.head_dim, c.head_dim);
    CHECK_EQ_INT(p.num_key_value_heads, c.num_key_value_heads);
    CHECK_EQ_INT(p.v_depth, c.v_depth);
    CHECK_EQ_INT(p.v_out_hidden_size, c.v_out_hidden_size);
    CHECK_EQ_INT(p.v_intermediate_size, c.v_intermediate_size);
    CHECK_EQ_INT(p.mrope_section[2], c.mrope_section[2]);
    CHECK_EQ_INT(p.image_token_id, c.image_token_id);
    CHECK_EQ_INT(p.n_eos, 4);
    CHECK_EQ_INT(p.img_max_pixels, 9633792);
    glmv_config_preset_9b(&p, 3);
    CHECK_EQ_INT(p.num_hidden_layers, 3);
    ckpt_rmdir(d);
}

TEST(new_layout_tiny) {
    char *d = dir_with(NEW_TINY);
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.hidden_size, 64);
    CHECK_EQ_INT(c.head_dim, 24);
    CHECK_EQ_INT(c.num_hidden_layers, 3);
    CHECK_EQ_INT(c.vocab_size, 100);
    CHECK_NEAR(c.rope_theta, 5000, 0);
    CHECK(c.mrope_section[0] == 2 && c.mrope_section[1] == 2 && c.mrope_section[2] == 2);
    CHECK_NEAR(c.rms_norm_eps, 1e-6, 1e-12);
    CHECK_EQ_INT(c.tie_word_embeddings, 1);
    CHECK_EQ_INT(c.attention_bias, 1);
    CHECK_EQ_INT(c.v_image_size, 56);
    CHECK_EQ_INT(c.v_head_dim, 16);
    CHECK_EQ_INT(c.v_in_channels, 3); /* class default */
    CHECK_EQ_INT(c.image_token_id, 94);
    CHECK_EQ_INT(c.n_eos, 1);
    CHECK_EQ_INT(c.eos_token_ids[0], 7);
    CHECK_EQ_INT(c.pad_token_id, 0);
    ckpt_rmdir(d);
}

/* text keys only at the top level, no text_config (older exports) */
TEST(text_keys_at_top_level_only) {
    char *d = dir_with(
        "{\"hidden_size\":64,\"intermediate_size\":96,\"num_attention_heads\":4,"
        "\"num_key_value_heads\":1,\"num_hidden_layers\":2,\"vocab_size\":120,"
        "\"rope_theta\":20000.0,\"partial_rotary_factor\":0.25,"
        "\"rope_scaling\":{\"type\":\"default\",\"mrope_section\":[0,1,1]},"
        "\"image_token_id\":100,\"video_token_id\":101,\"image_start_token_id\":102,"
        "\"image_end_token_id\":103,\"video_start_token_id\":104,\"video_end_token_id\":105,"
        "\"eos_token_id\":[1,2,2],"
        "\"vision_config\":{\"depth\":1,\"hidden_size\":16,\"num_heads\":2,\"image_size\":28,"
        "\"out_hidden_size\":64,\"intermediate_size\":32}}");
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.head_dim, 16);
    CHECK_NEAR(c.partial_rotary_factor, 0.25, 0);
    CHECK_NEAR(c.rope_theta, 20000, 0);
    CHECK_EQ_INT(c.mrope_section[2], 1);
    CHECK_EQ_INT(c.num_key_value_heads, 1);
    CHECK_EQ_INT(c.n_eos, 2); /* duplicates dropped */
    CHECK_EQ_INT(c.pad_token_id, -1);
    ckpt_rmdir(d);
}

TEST(generation_config) {
    char *d = dir_with(NEW_TINY);
    ckpt_write_text(d, "generation_config.json",
                    "{\"_from_model_config\":true,\"do_sample\":true,\"eos_token_id\":[7,8,9],"
                    "\"pad_token_id\":3,\"temperature\":0.6,\"top_k\":2,\"top_p\":1e-05,"
                    "\"repetition_penalty\":1.1,\"max_new_tokens\":8192,"
                    "\"transformers_version\":\"4.57.1\"}");
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.gen_do_sample, 1);
    CHECK_NEAR(c.gen_temperature, 0.6, 1e-7);
    CHECK_EQ_INT(c.gen_top_k, 2);
    CHECK_NEAR(c.gen_top_p, 1e-5, 1e-12);
    CHECK_NEAR(c.gen_repetition_penalty, 1.1, 1e-7);
    CHECK_EQ_INT(c.gen_max_new_tokens, 8192);
    CHECK_EQ_INT(c.n_eos, 3);
    CHECK(c.eos_token_ids[0] == 7 && c.eos_token_ids[2] == 9);
    CHECK_EQ_INT(c.pad_token_id, 3);
    /* an int eos in generation_config */
    ckpt_write_text(d, "generation_config.json", "{\"eos_token_id\":9}");
    CHECK(glmv_config_load(&c, d, err) == 0);
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 9);
    CHECK_EQ_INT(c.gen_do_sample, 0);
    /* an empty list: config's */
    ckpt_write_text(d, "generation_config.json", "{\"eos_token_id\":[]}");
    CHECK(glmv_config_load(&c, d, err) == 0);
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 7);
    /* without eos: config's */
    ckpt_write_text(d, "generation_config.json", "{\"do_sample\":false}");
    CHECK(glmv_config_load(&c, d, err) == 0);
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 7);
    ckpt_rmdir(d);
}

static const char *IMG_PROC =
    "{\"size\":{\"shortest_edge\":12544,\"longest_edge\":9633792},\"do_rescale\":true,"
    "\"patch_size\":14,\"temporal_patch_size\":2,\"merge_size\":2,\"rescale_factor\":0.00392156862745098,"
    "\"image_mean\":[0.5,0.25,0.125],\"image_std\":[0.2,0.3,0.4],"
    "\"image_processor_type\":\"Glm4vImageProcessor\",\"processor_class\":\"Glm4vProcessor\"}";
static const char *VID_PROC =
    "{\"size\":{\"shortest_edge\":12544,\"longest_edge\":47040000},\"fps\":2,"
    "\"patch_size\":14,\"temporal_patch_size\":2,\"merge_size\":2,"
    "\"image_mean\":[0.48145466,0.4578275,0.40821073],"
    "\"image_std\":[0.26862954,0.26130258,0.27577711],"
    "\"video_processor_type\":\"Glm4vVideoProcessor\"}";

static void check_proc(const glmv_config *c) {
    CHECK_EQ_INT(c->img_min_pixels, 12544);
    CHECK_EQ_INT(c->img_max_pixels, 9633792);
    CHECK_EQ_INT(c->vid_max_pixels, 47040000);
    CHECK_NEAR(c->img_mean[1], 0.25, 0);
    CHECK_NEAR(c->img_std[2], 0.4, 1e-7);
    CHECK_NEAR(c->vid_mean[0], 0.48145466, 1e-7);
    CHECK_NEAR(c->vid_fps, 2, 0);
    CHECK_NEAR(c->vid_max_duration, 300, 0);
    CHECK_EQ_INT(c->proc_temporal_patch_size, 2);
}

TEST(processor_2025_layout) {
    char *d = dir_with(NEW_TINY);
    ckpt_write_text(d, "preprocessor_config.json", IMG_PROC);
    ckpt_write_text(d, "video_preprocessor_config.json", VID_PROC);
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    check_proc(&c);
    /* min_pixels / max_pixels keys (Qwen2-VL style) */
    ckpt_write_text(d, "preprocessor_config.json",
                    "{\"min_pixels\":3136,\"max_pixels\":1003520,\"patch_size\":14}");
    rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(c.img_min_pixels, 3136);
    CHECK_EQ_INT(c.img_max_pixels, 1003520);
    ckpt_rmdir(d);
}

TEST(processor_5x_layout) {
    char *d = dir_with(NEW_TINY);
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"image_processor\":%s,\"video_processor\":%s,"
             "\"processor_class\":\"Glm4vProcessor\"}", IMG_PROC, VID_PROC);
    ckpt_write_text(d, "processor_config.json", buf);
    /* a stale 2025 file beside it loses */
    ckpt_write_text(d, "preprocessor_config.json", "{\"size\":{\"shortest_edge\":1,\"longest_edge\":2}}");
    glmv_config c;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc == 0, "%s", err);
    check_proc(&c);
    ckpt_rmdir(d);
}

/* ---------------------------------------------------------------- bad configs */

static void expect_bad(const char *config, const char *file, const char *content, const char *w1,
                       const char *w2) {
    char *d = dir_with(config);
    if (file) ckpt_write_text(d, file, content);
    glmv_config c;
    err[0] = 0;
    int rc = glmv_config_load(&c, d, err);
    CHECK_MSG(rc != 0, "accepted (%s)", w1);
    CHECK_MSG(!strchr(err, '\n') && strstr(err, file ? file : "config.json") && strstr(err, w1) &&
                  (!w2 || strstr(err, w2)),
              "message \"%s\" lacks \"%s\" / \"%s\"", err, w1, w2 ? w2 : "");
    ckpt_rmdir(d);
}

TEST(bad_configs) {
    expect_bad(patch(NEW_TINY, "[2,2,2]", "[2,2,3]"), NULL, NULL, "mrope_section", "sums to 7");
    expect_bad(patch(OLD_9B, "[8,12,12]}}", "[8,12,14]}}"), NULL, NULL, "mrope_section", NULL);
    expect_bad(patch(NEW_TINY, "\"head_dim\":24,", ""), NULL, NULL, "mrope_section", NULL);
    expect_bad(patch(NEW_TINY, "\"partial_rotary_factor\":0.5", "\"partial_rotary_factor\":0.3"),
               NULL, NULL, "partial_rotary_factor", NULL);
    expect_bad(patch(NEW_TINY, "\"num_key_value_heads\":2", "\"num_key_value_heads\":3"), NULL,
               NULL, "num_key_value_heads", NULL);
    expect_bad(patch(NEW_TINY, "\"head_dim\":24,\"num_hidden_layers\":3",
                     "\"num_hidden_layers\":3"), NULL, NULL, "mrope", NULL);
    /* text_config's value wins over the top level's */
    expect_bad(patch(OLD_9B, "\"num_attention_heads\":32,\"num_hidden_layers\":40,\"num_key_value_heads\":2,"
                     "\"rms_norm_eps\":1e-05,\"vocab_size\"",
                     "\"num_attention_heads\":30,\"num_hidden_layers\":40,\"num_key_value_heads\":2,"
                     "\"rms_norm_eps\":1e-05,\"vocab_size\""), NULL, NULL, "not divisible", "30");
    expect_bad(patch(NEW_TINY, "\"image_size\":[56,56]", "\"image_size\":50"), NULL, NULL,
               "image_size 50", "patch_size 14");
    expect_bad(patch(NEW_TINY, "\"image_size\":[56,56]", "\"image_size\":[56,28]"), NULL, NULL,
               "image_size", "square");
    expect_bad(patch(NEW_TINY, "\"num_heads\":2", "\"num_heads\":3"), NULL, NULL, "num_heads 3",
               NULL);
    expect_bad(patch(NEW_TINY, "\"hidden_size\":64", "\"hidden_size\":-64"), NULL, NULL,
               "hidden_size", NULL);
    expect_bad(patch(NEW_TINY, "\"depth\":2", "\"depth\":0"), NULL, NULL, "depth", "positive");
    expect_bad(patch(NEW_TINY, "\"out_hidden_size\":64", "\"out_hidden_size\":48"), NULL, NULL,
               "out_hidden_size 48", "hidden_size 64");
    expect_bad(patch(NEW_TINY, "\"num_hidden_layers\":3", "\"num_hidden_layers\":2.5"), NULL, NULL,
               "num_hidden_layers", "integer");
    expect_bad(patch(NEW_TINY, "\"num_hidden_layers\":3", "\"num_hidden_layers\":\"3\""), NULL,
               NULL, "num_hidden_layers", NULL);
    expect_bad(patch(NEW_TINY, "\"vocab_size\":100", "\"vocab_size\":1e12"), NULL, NULL,
               "vocab_size", NULL);
    expect_bad(patch(NEW_TINY, "\"hidden_size\":64", "\"hidden_size\":100000000"), NULL, NULL,
               "absurdly", NULL);
    expect_bad(patch(NEW_TINY, "\"image_token_id\":94", "\"image_token_id\":100"), NULL, NULL,
               "image_token_id 100", "vocabulary");
    expect_bad(patch(NEW_TINY, "\"eos_token_id\":7", "\"eos_token_id\":[7,\"x\"]"), NULL, NULL,
               "eos_token_id", NULL);
    expect_bad(patch(NEW_TINY, "\"eos_token_id\":7", "\"eos_token_id\":700"), NULL, NULL,
               "eos_token_id 700", NULL);
    expect_bad(patch(NEW_TINY, "\"rope_type\":\"default\"", "\"rope_type\":\"yarn\""), NULL, NULL,
               "rope_type", "yarn");
    expect_bad(patch(NEW_TINY, "\"rope_type\":\"default\"", "\"rope_type\":\"a\\nb\""), NULL, NULL,
               "rope_type", "a?b");
    expect_bad(patch(NEW_TINY, "\"mrope_section\":[2,2,2]", "\"mrope_section\":[3,3]"), NULL, NULL,
               "mrope_section", "3 numbers");
    expect_bad(patch(NEW_TINY, "\"rms_norm_eps\":1e-06,\"tie", "\"rms_norm_eps\":0,\"tie"), NULL,
               NULL, "rms_norm_eps", NULL);
    /* an activation glmv does not compute would be ignored: refused instead */
    expect_bad(patch(NEW_TINY, "\"vocab_size\":100,", "\"vocab_size\":100,\"hidden_act\":\"gelu\","),
               NULL, NULL, "text_config.hidden_act", "gelu");
    expect_bad(patch(OLD_9B, "\"hidden_act\":\"silu\",\"hidden_size\":1536",
                     "\"hidden_act\":\"quick_gelu\",\"hidden_size\":1536"),
               NULL, NULL, "vision_config.hidden_act", "quick_gelu");
    expect_bad("{\"text_config\":{", NULL, NULL, "JSON", NULL);
    expect_bad("[]", NULL, NULL, "object", NULL);
    expect_bad(NEW_TINY, "generation_config.json", "{\"top_p\":0}", "top_p", NULL);
    expect_bad(NEW_TINY, "generation_config.json", "{\"eos_token_id\":5000}", "eos_token_id", NULL);
    expect_bad(NEW_TINY, "generation_config.json", "{\"temperature\":\"hot\"}", "temperature", NULL);
    expect_bad(NEW_TINY, "preprocessor_config.json", "{\"patch_size\":16}", "patch_size", "14");
    expect_bad(NEW_TINY, "preprocessor_config.json",
               "{\"size\":{\"shortest_edge\":100,\"longest_edge\":50}}", "longest_edge", NULL);
    expect_bad(NEW_TINY, "preprocessor_config.json", "{\"image_std\":[1,0,1]}", "image_std[1]", NULL);
    expect_bad(NEW_TINY, "preprocessor_config.json", "{\"image_mean\":[1,0]}", "image_mean", NULL);
    expect_bad(NEW_TINY, "video_preprocessor_config.json", "{\"merge_size\":1}", "merge_size", NULL);
    expect_bad(NEW_TINY, "video_preprocessor_config.json", "{\"fps\":-1}", "fps", NULL);
    expect_bad(NEW_TINY, "processor_config.json", "{\"image_processor\":{\"size\":{\"longest_edge\":10}}}",
               "image_processor.size", NULL);
    expect_bad(NEW_TINY, "processor_config.json", "{\"image_processor\":", "JSON", NULL);
}

TEST(missing_config) {
    char *d = dir_with(NULL);
    glmv_config c;
    CHECK(glmv_config_load(&c, d, err) != 0);
    CHECK_MSG(strstr(err, "config.json") && !strchr(err, '\n'), "%s", err);
    ckpt_rmdir(d);
}

/* The configs transformers 5.17 wrote for the tiny test checkpoints
 * (tests/fixtures/tiny2, from scripts/make_tiny_fixtures.py), when present. */
TEST(hf_tiny2_config) {
    if (access("tests/fixtures/tiny2/config.json", R_OK) != 0) {
        test_skip("no tests/fixtures/tiny2/config.json");
        return;
    }
    glmv_config c;
    int rc = glmv_config_load(&c, "tests/fixtures/tiny2", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) return;
    CHECK_EQ_INT(c.hidden_size, 96);
    CHECK_EQ_INT(c.num_attention_heads, 3);
    CHECK_EQ_INT(c.head_dim, 32);
    CHECK(c.mrope_section[0] == 2 && c.mrope_section[1] == 3 && c.mrope_section[2] == 3);
    CHECK_NEAR(c.rope_theta, 1000, 0);
    CHECK_EQ_INT(c.v_image_size, 56);
    CHECK_EQ_INT(c.v_head_dim, 32);
    CHECK_EQ_INT(c.image_token_id, 494);
    CHECK_EQ_INT(c.n_eos, 4);
    CHECK(c.gen_do_sample == 1 && c.gen_top_k == 2);
    CHECK_EQ_INT(c.img_min_pixels, 3136);
    CHECK(c.img_max_pixels > c.img_min_pixels && c.vid_max_pixels > c.img_min_pixels);
}

int main(void) {
    RUN(old_layout_9b);
    RUN(preset_9b_matches_old_layout);
    RUN(new_layout_tiny);
    RUN(text_keys_at_top_level_only);
    RUN(generation_config);
    RUN(processor_2025_layout);
    RUN(processor_5x_layout);
    RUN(bad_configs);
    RUN(missing_config);
    RUN(hf_tiny2_config);
    return test_summary("config");
}
