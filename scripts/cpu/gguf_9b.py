#!/usr/bin/env python3
"""gguf_9b.py LLAMA_CPP_DIR OUT.gguf [LAYERS] [--mmproj MMPROJ.gguf] -- a GGUF of GLM-4.1V's text decoder shape (the 9B:
4096 wide, 32 query and 2 key/value heads of 128, 13696 MLP, 151552 tokens) with LAYERS layers
(default 2) and random BF16 weights, for llama.cpp's llama-bench: the same model that
`glmv bench --synthetic --layers LAYERS` builds, written with the gguf-py of the llama.cpp tree
given (nothing of llama.cpp is in this repository). The vocabulary is the real GLM-4 one from
../shared/assets, so llama.cpp loads it as it loads a converted checkpoint.

Tensors and keys are those llama.cpp's convert_hf_to_gguf.py writes for GLM-4.1V's text model
(architecture glm4, separate q/k/v with biases, gate and up fused in ffn_up, the sandwich norms,
M-RoPE sections 8/12/12 over the 64 rotary dimensions). Needs numpy. Run from the repository root:
  python3 scripts/cpu/gguf_9b.py ~/src/llama.cpp /tmp/glm9b-2.gguf 2

With --mmproj, also the vision tower at its full shape (24 blocks 1536 wide, 12 heads, MLP 4096,
the 2x2 downsample to 4096 and the 13696-wide merger) as the F16 mmproj file llama.cpp's converter
writes (the same tensor names, types and keys as tests/fixtures/gguf/mmproj-tiny-F16.gguf, which
that converter made), random weights: with a llama-quantize'd 40-layer file it is the pair a
llama.cpp user holds, for measuring what the pair needs in memory.
"""
import json
import os
import sys

import numpy as np

if len(sys.argv) < 3:
    sys.exit(__doc__)
sys.path.insert(0, os.path.join(sys.argv[1], "gguf-py"))
import gguf  # noqa: E402

args = sys.argv[1:]
MMPROJ = None
if "--mmproj" in args:
    k = args.index("--mmproj")
    if k + 1 >= len(args):
        sys.exit("--mmproj needs a file name")
    MMPROJ = args[k + 1]
    del args[k:k + 2]
OUT = args[1]
LAYERS = int(args[2]) if len(args) > 2 else 2
if not 1 <= LAYERS <= 40:
    sys.exit("LAYERS must be 1..40")
TOK = os.path.join(os.path.dirname(__file__), "../../../shared/assets/glm4-tokenizer/tokenizer.json")

D, FF, HEADS, KV_HEADS, HD, VOCAB = 4096, 13696, 32, 2, 128, 151552
BF16 = gguf.GGMLQuantizationType.BF16
rng = np.random.default_rng(41)


def bf16(shape, std=0.02):
    """random normal values as BF16 (the top half of each float32), as raw bytes"""
    x = rng.standard_normal(int(np.prod(shape)), dtype=np.float32) * np.float32(std)
    b = (x.view(np.uint32) + 0x8000 >> 16).astype(np.uint16)
    return b.reshape(shape).view(np.uint8)


def vocab(w):
    t = json.load(open(TOK))
    tokens = [None] * VOCAB
    types = [gguf.TokenType.UNUSED] * VOCAB
    for s, i in t["model"]["vocab"].items():
        tokens[i], types[i] = s, gguf.TokenType.NORMAL
    for a in t["added_tokens"]:
        tokens[a["id"]], types[a["id"]] = a["content"], gguf.TokenType.CONTROL
    for i in range(VOCAB):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in t["model"]["merges"]]
    ids = {a["content"]: a["id"] for a in t["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("glm4")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(ids["<|endoftext|>"])
    w.add_bos_token_id(ids["[gMASK]"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)


def main():
    w = gguf.GGUFWriter(OUT, "glm4", use_temp_file=True)
    w.add_name(f"GLM-4.1V text shape, {LAYERS} layers, random BF16")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_context_length(65536)
    w.add_embedding_length(D)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HD)
    w.add_value_length(HD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(HD // 2)
    w.add_rope_dimension_sections([8, 12, 12, 0])
    w.add_rope_freq_base(10000.0)
    vocab(w)

    def t(name, shape, std=0.02):
        w.add_tensor(name, bf16(shape, std), raw_dtype=BF16)  # byte shape: gguf-py halves the last dim

    def f32(name, n, value=None):
        x = np.ones(n, np.float32) if value is None else rng.standard_normal(n, dtype=np.float32) * value
        w.add_tensor(name, x)

    t("token_embd.weight", (VOCAB, D))
    f32("output_norm.weight", D)
    t("output.weight", (VOCAB, D))
    for i in range(LAYERS):
        p = f"blk.{i}."
        f32(p + "attn_norm.weight", D)
        t(p + "attn_q.weight", (HEADS * HD, D))
        t(p + "attn_k.weight", (KV_HEADS * HD, D))
        t(p + "attn_v.weight", (KV_HEADS * HD, D))
        f32(p + "attn_q.bias", HEADS * HD, 0.02)
        f32(p + "attn_k.bias", KV_HEADS * HD, 0.02)
        f32(p + "attn_v.bias", KV_HEADS * HD, 0.02)
        t(p + "attn_output.weight", (D, HEADS * HD))
        f32(p + "post_attention_norm.weight", D)
        f32(p + "ffn_norm.weight", D)
        t(p + "ffn_up.weight", (2 * FF, D))
        t(p + "ffn_down.weight", (D, FF))
        f32(p + "post_ffw_norm.weight", D)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"wrote {OUT}: {LAYERS} layers, {os.path.getsize(OUT) / 1e9:.2f} GB")


def mmproj(path):
    VD, VFF, VHEADS, VDEPTH, OUTD, MFF, P = 1536, 4096, 12, 24, 4096, 13696, 14
    w = gguf.GGUFWriter(path, "clip", use_temp_file=False)
    w.add_type("mmproj")
    w.add_name("GLM-4.1V vision shape, random F16")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.projection_dim", OUTD)
    w.add_uint32("clip.vision.image_size", 336)
    w.add_uint32("clip.vision.patch_size", P)
    w.add_uint32("clip.vision.embedding_length", VD)
    w.add_uint32("clip.vision.feed_forward_length", VFF)
    w.add_uint32("clip.vision.block_count", VDEPTH)
    w.add_uint32("clip.vision.attention.head_count", VHEADS)
    w.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    w.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    w.add_string("clip.projector_type", "glm4v")
    w.add_bool("clip.use_silu", True)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)

    def f16(name, ne, std=0.02):  # ne in GGUF order (innermost first), as GGUFReader lists it
        x = rng.standard_normal(int(np.prod(ne)), dtype=np.float32) * np.float32(std)
        w.add_tensor(name, x.astype(np.float16).reshape(tuple(reversed(ne))))

    def f32(name, ne, value=None):
        n = int(np.prod(ne))
        x = np.ones(n, np.float32) if value is None else rng.standard_normal(n, dtype=np.float32) * value
        w.add_tensor(name, x.reshape(tuple(reversed(ne))))

    for i in range(VDEPTH):
        p = f"v.blk.{i}."
        f16(p + "attn_out.weight", [VD, VD])
        f16(p + "attn_qkv.weight", [VD, 3 * VD])
        f16(p + "ffn_down.weight", [VFF, VD])
        f16(p + "ffn_gate.weight", [VD, VFF])
        f16(p + "ffn_up.weight", [VD, VFF])
        f32(p + "ln1.weight", [VD])
        f32(p + "ln2.weight", [VD])
    f32("mm.patch_merger.bias", [OUTD], 0.02)
    f16("mm.patch_merger.weight", [2, 2, VD, OUTD])
    f32("v.position_embd.weight", [VD, 576], 0.02)
    f16("mm.down.weight", [MFF, OUTD])
    f16("mm.gate.weight", [OUTD, MFF])
    f32("mm.post_norm.bias", [OUTD], 0.02)
    f32("mm.post_norm.weight", [OUTD])
    f16("mm.model.fc.weight", [OUTD, OUTD])
    f16("mm.up.weight", [OUTD, MFF])
    f32("v.patch_embd.bias", [VD], 0.02)
    f16("v.patch_embd.weight", [P, P, 3, VD])
    f16("v.patch_embd.weight.1", [P, P, 3, VD])
    f32("v.norm_embd.weight", [VD])
    f32("v.post_ln.weight", [VD])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"wrote {path}: {os.path.getsize(path) / 1e9:.2f} GB")


if MMPROJ:
    mmproj(MMPROJ)
main()
