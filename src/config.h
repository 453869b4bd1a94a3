/* config.h -- everything glmv reads from a checkpoint's JSON files:
 * config.json (both the older rope_scaling/rope_theta/partial_rotary_factor
 * layout and the newer rope_parameters one), generation_config.json,
 * preprocessor_config.json + video_preprocessor_config.json or the single
 * processor_config.json of transformers 5.x. Every size and token id of the
 * model comes from here; nothing about the 9B shape is hard-coded. */
#ifndef GLMV_CONFIG_H
#define GLMV_CONFIG_H

#include <stdint.h>

#define GLMV_MAX_EOS 16

typedef struct {
    /* text decoder (text_config) */
    int vocab_size;             /* rows of embed_tokens / lm_head */
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;               /* hidden_size / num_attention_heads unless given */
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    float partial_rotary_factor; /* rotary dim = head_dim * factor */
    int mrope_section[3];       /* sums to rotary_dim / 2 */
    int attention_bias;
    int tie_word_embeddings;

    /* vision tower (vision_config) */
    int v_depth;
    int v_hidden_size;
    int v_num_heads;
    int v_head_dim;             /* v_hidden_size / v_num_heads */
    int v_patch_size;
    int v_temporal_patch_size;
    int v_spatial_merge_size;
    int v_image_size;           /* position table is (image_size/patch_size)^2 rows */
    int v_in_channels;
    int v_out_hidden_size;      /* block MLP width, downsample and merger output */
    int v_intermediate_size;    /* merger SwiGLU width */
    float v_rms_norm_eps;
    int v_attention_bias;       /* qkv bias in the vision blocks (false in GLM-4.1V) */

    /* token ids (top level) */
    int32_t image_token_id, video_token_id;
    int32_t image_start_token_id, image_end_token_id;
    int32_t video_start_token_id, video_end_token_id;
    int32_t pad_token_id;
    int32_t eos_token_ids[GLMV_MAX_EOS];
    int n_eos;

    /* generation_config.json (defaults when absent: greedy off, t=1, no k/p) */
    int gen_do_sample;
    float gen_temperature;
    int gen_top_k;
    float gen_top_p;
    float gen_repetition_penalty;
    int gen_max_new_tokens;     /* 0 when absent */

    /* image and video processors */
    int64_t img_min_pixels, img_max_pixels;     /* size.shortest_edge / longest_edge */
    int64_t vid_min_pixels, vid_max_pixels;
    float img_mean[3], img_std[3];
    float vid_mean[3], vid_std[3];
    double img_rescale_factor;                  /* 1/255 */
    double vid_fps;                             /* 2 */
    double vid_max_duration;                    /* 300 s */
    int proc_patch_size, proc_temporal_patch_size, proc_merge_size;
} glmv_config;

/* Read the JSON files of checkpoint folder `dir`. Checks consistency
 * (divisibility, positive sizes, mrope sections summing right) and names the
 * file and key in the error. */
int glmv_config_load(glmv_config *c, const char *dir, char *err);

/* The checks glmv_config_load makes, for a config filled from elsewhere (a GGUF
 * file); path names the source in the message. */
int glmv_config_check(const glmv_config *c, const char *path, char *err);
/* The image and video processors' settings when no processor file says otherwise
 * (the transformers class defaults; patch sizes from the vision config). */
void glmv_config_processor_defaults(glmv_config *c);

/* The 9B shape of GLM-4.1V-9B-Thinking, for synthetic benchmarks only
 * (`glmv bench --synthetic`); n_layers 0 = all 40. */
void glmv_config_preset_9b(glmv_config *c, int n_layers);

#endif
