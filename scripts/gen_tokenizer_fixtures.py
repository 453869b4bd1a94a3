#!/usr/bin/env python3
"""gen_tokenizer_fixtures.py -- the tokenizer and chat-template reference data
for tests/test_tokenizer.c and tests/test_chat.c, made with Hugging Face
tokenizers / transformers (run it on the GPU machine, where both are installed).

  python3 scripts/gen_tokenizer_fixtures.py --tok DIR --out OUTDIR [--bench BIN]

DIR holds the GLM-4 tokenizer.json, tokenizer_config.json and the GLM-4.1V
chat_template.jinja. Writes into OUTDIR:
  corpus.json          >= 2000 strings (and ill-formed byte strings, as hex) with
                       HF's ids; "big": count, FNV-64 and ends of the ids of a
                       1 MiB text built from the corpus (the C test rebuilds it)
  chat_renders.json    HF's apply_chat_template renders and their ids
  small/               small tokenizers trained with HF tokenizers (other
                       pre-tokenizer layouts, merges as strings or pairs,
                       added tokens) and cases.json with HF's ids and decodes
  bench.txt            HF (Rust) single-threaded encode throughput and load
                       time; with --bench, glmv's on the same texts
The corpus strings are generated from a fixed seed, so the script is
reproducible; --corpus-only writes corpus texts without HF (for local checks).
"""
import argparse
import json
import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers loads
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import random
import subprocess
import sys
import time
import unicodedata

GLM_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
            "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_image|>",
            "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|image|>",
            "<|video|>", "</answer>", "<think>", "</think>", "<answer>", "<|begin_of_box|>",
            "<|end_of_box|>"]

# every White_Space character, the line breaks, and look-alikes that are not spaces
WHITESPACE = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680"] + \
    [chr(c) for c in range(0x2000, 0x200B)] + \
    ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\r\n"]
NOT_SPACE = ["\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x1c", "\x1d", "\x1e",
             "\x1f"]

CJK = [
    "你好", "晚上睡不着应该怎么办", "我想在apple工作1314151天～", "很高兴见到你，有什么可以帮助你的吗？",
    "这是一只猫，不是一只狗。", "请描述这张图片中的内容。", "北京是中华人民共和国的首都。",
    "人工智能（AI）正在改变世界：从医疗到交通。", "他说：“今天天气真好！”", "一二三四五六七八九十百千万亿",
    "繁體中文與简体中文混合使用的句子", "《红楼梦》是中国古典四大名著之一", "数学公式：E=mc²，π≈3.14159",
    "こんにちは、世界！", "今日はいい天気ですね。", "カタカナとひらがなと漢字が混ざった文章です。",
    "東京タワーは高さ３３３メートルです。", "ｶﾀｶﾅ（半角）とカタカナ（全角）", "私は学生です。よろしくお願いします。",
    "안녕하세요, 세계!", "한국어 문장을 토큰화합니다.", "서울특별시 강남구 테헤란로 123",
    "ㄱㄴㄷㄹㅁㅂㅅ 한글 자모", "오늘 날씨가 정말 좋네요 ㅋㅋㅋ",
]

EMOJI = [
    "🚀", "😶‍🌫️", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇫🇷🇩🇪🇯🇵🇺🇸", "🇨🇳", "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "❤️‍🔥", "🧑‍🤝‍🧑", "1️⃣2️⃣#️⃣*️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🦙🦙🦙", "✅❌⚠️", "☺️☹️", "😀😃😄😁😆😅🤣😂",
    "🫠🫨🪿", "👁️‍🗨️", "🙋‍♀️🙋‍♂️",
]

COMBINING = [
    "e\u0301", "e\u0301\u0302\u0303", "n\u0303o", "Z\u0351\u0352\u0353a\u0354\u0355lgo",
    "a\u0308o\u0308u\u0308", "\u0915\u094d\u0937", "हिन्दी भाषा", "ภาษาไทย สวัสดีครับ", "العربية مَرْحَبًا",
    "עִבְרִית שָׁלוֹם", "កាន់តែពិសេសអាច😁", "Ελληνικά: καλημέρα", "Русский язык: съешь же ещё этих",
    "Tiếng Việt có dấu", "\u0041\u030a vs \u00c5 vs \u212b", "ﬁ ﬂ ﬀ ligatures", "ǅ ǈ ǋ titlecase",
    "ა ბ გ ქართული", "Ꭰ Ꭱ Cherokee", "𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕", "\U0001d11e music", "ᚠᚢᚦ runes",
]

CODE = [
    '#include <stdio.h>\n\nint main(void) {\n    printf("hello world\\n");    // say hello\n    return 0;\n}\n',
    "def f(x):\n    \"\"\"Square.\"\"\"\n    return x ** 2  # comment\n\nif __name__ == '__main__':\n    print(f(3))\n",
    "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "for i in $(seq 1 10); do echo \"$i\" >> out.txt; done\n",
    '{"key": "value", "n": 12345, "list": [1, 2, 3], "nested": {"a": null}}',
    "<html>\n  <body class=\"main\">\n    <p>Hello &amp; welcome</p>\n  </body>\n</html>\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;\n",
    "\tif (x != y && y <= z || !flag) {\r\n\t\treturn -1;\r\n\t}\r\n",
    "    \n\n    indented\n        more\n\t\ttabs\n",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b**=6;c//=7;d<<=1;e>>=2;f&=g;h|=i;j^=k",
    "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport os, sys\n",
]

MARKDOWN = [
    "| Name | Age | City |\n|------|----:|:----:|\n| Alice | 30 | Paris |\n| 李雷 | 25 | 北京 |\n",
    "# Title\n\n## Subtitle\n\n- item 1\n- item 2\n  - nested\n\n1. first\n2. second\n",
    "**bold** _italic_ `code` [link](https://example.com/path?q=1&r=2#frag) ![img](a.png)\n",
    "> quote\n> > nested quote\n\n---\n\n```python\nprint('hi')\n```\n",
    "| a | b |\n|---|---|\n| `x|y` | **z** |\n|   |   |\n",
    "Term\n: Definition\n\n<details><summary>More</summary>\n\nHidden\n</details>\n",
]

CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d"]


def case_variants(s):
    """every upper/lower combination of s"""
    out = [""]
    for ch in s:
        out = [o + c for o in out for c in {ch.lower(), ch.upper()}]
    return sorted(set(out))


def make_texts(rng):
    texts = []
    add = texts.append
    # contractions in every case, in several contexts
    for c in CONTRACTIONS:
        for v in case_variants(c):
            add("I'" + v)
            add("'" + v + " x")
            add("we'" + v + "ing and THEY'" + v.upper())
            add(" '" + v)
            add("1'" + v + "2")
            add("\u2019" + v + " curly")
    add("I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
    add("'ſ long s 'ſt 'K 'ﬆ ''s '''ll")
    add("İstanbul'da I'İ ı'S")
    # whitespace: alone, between words, runs, before line breaks, at the ends
    for w in WHITESPACE + NOT_SPACE:
        add(w)
        add("a" + w + "b")
        add(w + w + "x")
        add("x" + w + w)
        add("x" + w + "\n" + w + "y")
        add(w + " " + w + "\t" + w)
        add("1" + w + "2")
        add("!" + w + "?")
        add(w + "'s")
    for k in range(1, 12):
        add(" " * k + "x" + " " * k)
        add("\n" * k)
        add(" \n" * k + "end")
        add("\t" * k + "\r\n" * k)
    # digits
    for k in range(1, 41):
        add("7" * k)
        add("".join(str(rng.randrange(10)) for _ in range(k)))
    add("3.14159265358979 1,234,567.89 1e-10 0x1F 0b1010 -42 +7 1/2 ½ ¼ ¾")
    add("٠١٢٣٤٥٦٧٨٩ ۰۱۲ ０１２３４５６７８９ ¹²³⁴ ₁₂₃ Ⅰ Ⅱ Ⅻ ⅷ ① ② ⑳ 〇")
    add("2024-01-15T10:30:00Z 12:34:56.789 +86 138 0013 8000")
    add("0" * 100)
    for t in CJK + EMOJI + COMBINING + CODE + MARKDOWN:
        add(t)
        add(t + t)
        add(" " + t + "\n")
    # special tokens inline, adjacent, broken
    for s in SPECIALS:
        add(s)
        add("x" + s + "y")
        add(" " + s + " ")
        add(s + s)
        add("\n" + s + "\n\n")
        add(s[:-1])
        add(s[1:])
        add(s[:-1] + s)
    add("[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\n<|begin_of_image|><|image|>"
        "<|end_of_image|>What is this?<|assistant|>\n<think>It is a cat.</think><answer>A cat.</answer>")
    add("<|user|><|assistant|><|user|>text<|observation|>")
    add("<<|user|>> [[gMASK]] <<think>> <</think>>")
    add("<think><think></think></think><answer></answer></answer>")
    add("<|user|\n|> < |user| > <| user |>")
    # a few long natural paragraphs
    add("The quick brown fox jumps over the lazy dog. " * 20)
    add("我爱北京天安门，天安门上太阳升。" * 20)
    add("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
        "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.")
    # random mixtures from a palette of awkward characters
    palette = (list("abcxyzABCXYZ0123456789'\".,;:!?-_=+*/\\()[]{}<>|@#$%^&~`") +
               WHITESPACE + NOT_SPACE + ["'s", "'T", "'Re", "'ll", "ſ"] +
               list("你好世界中文字符こんにちはカタカナ한국어éüñßøæœ") +
               ["😀", "👍🏽", "🇫🇷", "‍", "️", "\u0301", "\u0308", "\u094d"] + SPECIALS[:6] + SPECIALS[16:])
    while len(texts) < 2300:
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144])
        add("".join(rng.choice(palette) for _ in range(n)))
    # random words: letters, digits, punctuation with spaces
    for _ in range(300):
        words = []
        for _ in range(rng.randrange(1, 30)):
            kind = rng.randrange(6)
            if kind == 0:
                words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(1, 12))))
            elif kind == 1:
                words.append("".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randrange(1, 6))))
            elif kind == 2:
                words.append(str(rng.randrange(10 ** rng.randrange(1, 12))))
            elif kind == 3:
                words.append("".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(rng.randrange(1, 8))))
            elif kind == 4:
                words.append(rng.choice([",", ".", "!", "?", "...", "--", "'s", "n't", ":", ";", "\n", "\n\n"]))
            else:
                words.append("".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(1, 4))))
        add(rng.choice([" ", "", "  "]).join(words))
    # keep valid strings; NUL-free (the C test reads them as C strings)
    out = []
    for t in texts:
        t = t.replace("\x00", "")
        if not t or any(0xD800 <= ord(c) <= 0xDFFF for c in t):
            continue
        out.append(t)
    return out


def make_invalid(rng):
    """ill-formed UTF-8 byte strings: the C tokenizer replaces each maximal
    ill-formed subpart by U+FFFD, which is what Python's 'replace' does"""
    raw = [b"\xff", b"a\xffb", b"\xc0\xaf", b"\xe4\xbd", b"x\xe4\xbdy", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xf0\x9f\x98<|user|>", b"\x80\x80\x80",
           b"\xc2", b"\xe0\x80\x80", b"\xf8\x88\x80\x80\x80", b"ok \xfe\xfe ok",
           "你好".encode()[:-1] + b" world", b"'s\xff's", b"\xe2\x80\xa8\xe2\x80",
           b"<think>\xe4</think>"]
    for _ in range(60):
        b = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        raw.append(bytes(b))
    return [r for r in raw if not (0 in r)]


def build_big(texts, target):
    buf = bytearray()
    done = False
    while not done:
        for t in texts:
            b = t.encode()
            if len(buf) + len(b) + 2 > target:
                done = True
                break
            buf += b + b"\n\n"
    buf += b"x" * (target - len(buf))
    return bytes(buf)


def fnv_ids(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for k in range(4):
            h = ((h ^ ((i >> (8 * k)) & 0xff)) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


# ---------------------------------------------------------------------------


def chat_cases():
    img = {"type": "image"}
    vid = {"type": "video"}

    def t(s):
        return {"type": "text", "text": s}
    C = []

    def add(msgs, gen=True):
        C.append({"messages": msgs, "add_generation_prompt": gen})
    add([{"role": "user", "content": "hello"}])
    add([{"role": "user", "content": "hello"}], gen=False)
    add([{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hi"}])
    add([{"role": "user", "content": [img, t("What kind of dog is this?")]}])
    add([{"role": "user", "content": [t("Compare "), img, t(" and "), img, t(".")]}])
    add([{"role": "user", "content": [vid, t("Describe this video.")]}])
    add([{"role": "user", "content": [t("a"), vid, img, t("b"), img, vid]}])
    add([{"role": "user", "content": [img]}])
    add([{"role": "user", "content": [img, img, img]}])
    add([{"role": "user", "content": [t("")]}])
    add([{"role": "user", "content": ""}])
    add([{"role": "user", "content": [t("你好"), t("世界")]}])
    add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "2+2?"}])
    add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "metadata": "tool_x"},
         {"role": "user", "content": "again"}])
    add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "metadata": ""},
         {"role": "user", "content": "again"}])
    add([{"role": "system", "content": "S"}, {"role": "user", "content": [img, t("q1")]},
         {"role": "assistant", "content": "a1"}, {"role": "user", "content": [t("q2"), vid]},
         {"role": "assistant", "content": "a2"}], gen=False)
    add([{"role": "system", "content": "S"}, {"role": "user", "content": [img, t("q1")]},
         {"role": "assistant", "content": "a1"}, {"role": "user", "content": [t("q2"), vid]},
         {"role": "assistant", "content": "a2"}])
    add([{"role": "user", "content": "  spaces  \n\n"}, {"role": "assistant", "content": "\n"}])
    add([{"role": "observation", "content": "ignored"}, {"role": "user", "content": "x"}])
    add([{"role": "user", "content": "emoji 😶‍🌫️ and <|user|> inline"}])
    add([{"role": "system", "content": "line1\nline2\n"}, {"role": "system", "content": "second system"}])
    add([{"role": "assistant", "content": "starts with assistant"}])
    # (transformers refuses an empty conversation; test_chat checks that case by hand)
    return C


def train_small(out_dir, sample_texts):
    """small BPE tokenizers in the layouts other helpers build"""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    train_text = sample_texts * 3
    made = []

    def build(name, pre, alphabet=True, vocab=600, added=None, tweak=None):
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre
        tk.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if alphabet else [])
        tk.train_from_iterator(train_text, trainer=tr)
        if added:
            tk.add_tokens(added)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tk.save(path)
        if tweak:
            j = json.load(open(path))
            tweak(j)
            json.dump(j, open(path, "w"), ensure_ascii=False)
        made.append((name, Tokenizer.from_file(path)))

    glm_split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    build("glm_split", glm_split)

    def ignore(j):
        j["model"]["ignore_merges"] = True
    build("glm_split_ignore_merges", glm_split, tweak=ignore)

    def as_strings(j):
        j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    build("glm_split_merges_str", glm_split, tweak=as_strings)
    build("gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    build("gpt2_prefix", pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True))
    build("gpt2_seq", pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
          tweak=as_strings)
    build("added", glm_split, added=[
        AddedToken("<|sp|>", special=True), AddedToken("<tag>", special=False),
        AddedToken("<tag>long", special=False), AddedToken("<|sp|>x", special=False),
        AddedToken("[L]", special=True, lstrip=True), AddedToken("[R]", special=True, rstrip=True),
        AddedToken("ab", special=False)])
    build("no_full_alphabet", glm_split, alphabet=False, vocab=300)
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench", help="glmv binary (glmv tokenize ... --bench N)")
    ap.add_argument("--corpus-only", action="store_true")
    ap.add_argument("--only", help="comma-separated sections: corpus,bench,chat,small")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(20261129)
    texts = make_texts(rng)
    invalid = make_invalid(rng)
    big_target = 1 << 20
    big = build_big(texts, big_target)
    if a.corpus_only:
        json.dump({"texts": texts, "invalid": [b.hex() for b in invalid]},
                  open(os.path.join(a.out, "corpus_texts.json"), "w"), ensure_ascii=False)
        open(os.path.join(a.out, "big.txt"), "wb").write(big)
        return

    import traceback
    from tokenizers import Tokenizer
    report = []

    def section(name, fn):
        try:
            fn()
        except Exception:
            report.append("SECTION %s FAILED:\n%s" % (name, traceback.format_exc()))
        print("\n".join(report[-3:]), flush=True)
        open(os.path.join(a.out, "bench.txt"), "w").write("\n".join(report) + "\n")

    t0 = time.perf_counter()
    tk = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    report.append("hf_load_ms %.1f (Tokenizer.from_file)" % ((time.perf_counter() - t0) * 1e3))

    def enc(s):
        return tk.encode(s, add_special_tokens=False).ids

    def do_corpus():
        cases = [{"text": t, "ids": enc(t)} for t in texts]
        cases += [{"hex": b.hex(), "ids": enc(b.decode("utf-8", "replace"))} for b in invalid]
        bad_rt = sum(1 for c in cases
                     if "text" in c and tk.decode(c["ids"], skip_special_tokens=False) != c["text"])
        report.append("corpus %d cases, HF decode round-trip failures %d" % (len(cases), bad_rt))
        big_ids = enc(big.decode())
        corpus = {"_about": "made by scripts/gen_tokenizer_fixtures.py with tokenizers %s" %
                  __import__("tokenizers").__version__,
                  "cases": cases,
                  "big": {"bytes": big_target, "n_ids": len(big_ids), "fnv64": fnv_ids(big_ids),
                          "head": big_ids[:100], "tail": big_ids[-100:]}}
        json.dump(corpus, open(os.path.join(a.out, "corpus.json"), "w"), ensure_ascii=False,
                  separators=(",", ":"))

    def do_chat():
        # renders through transformers' apply_chat_template (Jinja, trim/lstrip blocks)
        import transformers
        try:
            ht = transformers.AutoTokenizer.from_pretrained(a.tok)
        except Exception:
            report.append("AutoTokenizer failed, PreTrainedTokenizerFast: " + traceback.format_exc(limit=1))
            ht = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(a.tok, "tokenizer.json"))
        tpl = open(os.path.join(a.tok, "chat_template.jinja")).read()
        renders = []
        for c in chat_cases():
            r = ht.apply_chat_template(c["messages"], tokenize=False,
                                       add_generation_prompt=c["add_generation_prompt"], chat_template=tpl)
            c["render"] = r
            c["ids"] = enc(r)
            c["ids_transformers"] = list(ht(r, add_special_tokens=False)["input_ids"])
            renders.append(c)
        same = sum(1 for c in renders if c["ids"] == c.pop("ids_transformers"))
        json.dump(renders, open(os.path.join(a.out, "chat_renders.json"), "w"), ensure_ascii=False, indent=1)
        report.append("chat renders %d (transformers %s, %s); ids equal to tokenizers' in %d" %
                      (len(renders), transformers.__version__, type(ht).__name__, same))

    def do_small():
        small_dir = os.path.join(a.out, "small")
        idx = []
        for name, st in train_small(small_dir, texts[::3]):
            cs = []
            for s in texts[::23] + ["<|sp|>x <tag>long<tag> [L]  [L] [R]  y [R]ab abc <|sp|> 你好 😶‍🌫️",
                                     "  leading and trailing  ", "\n\nNew\r\nlines\n", "[L][R][L]",
                                     "x\u3000[L]\u3000y [R]\u2028z"]:
                ids = st.encode(s, add_special_tokens=False).ids
                cs.append({"text": s, "ids": ids, "decoded": st.decode(ids, skip_special_tokens=False)})
            idx.append({"dir": name, "cases": cs})
        json.dump(idx, open(os.path.join(small_dir, "cases.json"), "w"), ensure_ascii=False, indent=0)
        report.append("small tokenizers: %s" % ", ".join(d["dir"] for d in idx))

    def do_bench():
        # throughput, single thread: tokenizers' encode of one string does not fan out
        bench_texts = {"corpus_1MiB": big}
        code = bytearray()
        for root, _, files in sorted(os.walk(os.path.dirname(os.__file__))):
            for f in sorted(files):
                if f.endswith(".py") and len(code) < 4 << 20:
                    try:
                        code += open(os.path.join(root, f), "rb").read().decode("utf-8").encode()
                    except (UnicodeDecodeError, OSError):
                        pass
        bench_texts["python_stdlib_4MiB"] = bytes(code[:4 << 20]).decode("utf-8", "ignore").encode()
        zh = "".join(t for t in texts if any("\u4e00" <= ch <= "\u9fff" for ch in t))
        bench_texts["cjk_mix"] = (zh * (1 + (1 << 20) // max(1, len(zh.encode()))))[: (1 << 20) // 3].encode()
        for name, data in bench_texts.items():
            s = data.decode()
            ids = enc(s)  # warm
            best = 1e9
            for _ in range(3):
                t0 = time.perf_counter()
                enc(s)
                best = min(best, time.perf_counter() - t0)
            report.append("hf %s: %d bytes %d ids, best of 3 %.1f ms = %.2f MB/s" %
                          (name, len(data), len(ids), best * 1e3, len(data) / best / 1e6))
            p = os.path.join("/tmp", name + ".txt")
            open(p, "wb").write(data)
            if a.bench:
                r = subprocess.run([a.bench, "tokenize", "-m", a.tok, "-f", p, "--bench", "3"],
                                   capture_output=True, text=True)
                report.append("glmv %s: %s" % (name, " ".join(r.stdout.split()) + r.stderr.strip()))
                r = subprocess.run([a.bench, "tokenize", "-m", a.tok, "-f", p], capture_output=True, text=True)
                same = [int(x) for x in r.stdout.split()] == ids
                report.append("glmv %s ids identical to HF: %s" % (name, same))
        for _ in range(2):
            t0 = time.perf_counter()
            Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
            report.append("hf_load_ms %.1f" % ((time.perf_counter() - t0) * 1e3))
        cpu = [l for l in open("/proc/cpuinfo").read().split("\n") if l.startswith("model name")]
        report.append("nproc %d; %s; tokenizers %s" % (os.cpu_count(), cpu[0] if cpu else "?",
                                                      __import__("tokenizers").__version__))

    for name, fn in [("corpus", do_corpus), ("bench", do_bench), ("chat", do_chat), ("small", do_small)]:
        if not a.only or name in a.only.split(","):
            section(name, fn)
    print("\n".join(report))


if __name__ == "__main__":
    main()
