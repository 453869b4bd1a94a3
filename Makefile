# glmv -- make [CUDA=1] | make test | make asan | make asan-test | make clean
#
# Objects live under build/<config>/ (release, asan, cuda) with -MMD -MP
# dependencies. Sources are found by wildcard: src/*.c src/cpu/*.c form the
# library, tools/*.c the glmv command, tests/test_*.c one test program each.
# Files named *_avx2.c / *_avx512.c get their ISA flags; the CPU is chosen at
# run time, so one binary runs everywhere.

CC      ?= cc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
# sm_90a: the Hopper-only instructions (wgmma); compute_90 PTX for later GPUs (the wgmma kernel is empty there and not launched)
NVARCH  ?= -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90
PKGS    := libcjson libpcre2-8 libmicrohttpd libcurl libavformat libavcodec libswscale libavutil libwebp libwebpdemux libpng libdeflate libexif poppler-glib cairo
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS    := $(PKG_LIBS) -ljpeg -lgif -ledit -lm -lpthread

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS ?=

ifeq ($(CONFIG),asan)
  CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
# make fuzz: libFuzzer targets tests/fuzz_*.c -> build/fuzz/tests/fuzz_*
ifeq ($(CONFIG),fuzz)
  CC := clang
  CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
            -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  LDFLAGS += -fsanitize=fuzzer,address,undefined
endif
ifeq ($(CUDA),1)
  CONFIG ?= cuda
  EXTRA_CFLAGS += -DGLMV_CUDA -I/usr/local/cuda/include
  LIBS += -L/usr/local/cuda/lib64 -lcudart -lcublas -lcublasLt -lstdc++
endif
ifneq ($(WERROR),)
  WARN += -Werror
endif
CONFIG ?= release
B := build/$(CONFIG)

LIB_SRC  := $(wildcard src/*.c src/cpu/*.c)
CU_SRC   := $(if $(filter 1,$(CUDA)),$(wildcard src/cuda/*.cu))
TOOL_SRC := $(wildcard tools/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz_*.c)
# helpers shared by the test programs
TESTLIB_SRC := $(wildcard tests/util_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o) $(CU_SRC:%.cu=$(B)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(B)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(B)/tests/%)
WEB_SRC  := $(wildcard web/*)
# the page served by `glmv serve`, embedded in the binary
WEB_OBJ  := $(B)/gen/web_assets.o

.SECONDARY:
.PHONY: all test asan asan-test clean cuda tests fuzz fuzzers bench-image
all: $(B)/glmv glmv

glmv: $(B)/glmv
	@ln -sf $(B)/glmv glmv

$(B)/libglmv.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(B)/glmv: $(TOOL_OBJ) $(WEB_OBJ) $(B)/libglmv.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(WEB_OBJ) $(B)/libglmv.a $(LIBS)

$(B)/gen/web_assets.c: $(WEB_SRC) scripts/embed_web.sh
	@mkdir -p $(dir $@)
	sh scripts/embed_web.sh $@ $(WEB_SRC)

$(B)/gen/web_assets.o: $(B)/gen/web_assets.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -mavx2 -mfma -mf16c -c -o $@ $<

$(B)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -c -o $@ $<

$(B)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -mavx512f -mamx-tile -mamx-bf16 -c -o $@ $<

$(B)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(NVARCH) -Iinclude -Isrc -DGLMV_CUDA -Xcompiler -fPIC -MMD -MP -MF $(@:.o=.d) -c -o $@ $<

$(B)/tests/%: $(B)/tests/%.o $(TESTLIB_OBJ) $(B)/libglmv.a
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB_OBJ) $(B)/libglmv.a $(LIBS)

tests: $(TESTS) $(B)/glmv

FUZZERS := $(FUZZ_SRC:tests/%.c=$(B)/tests/%)
fuzz:
	@if command -v clang >/dev/null 2>&1; then $(MAKE) CONFIG=fuzz fuzzers; \
	else echo "make fuzz: clang not found, fuzz targets not built"; fi
fuzzers: $(FUZZERS)
$(B)/tests/fuzz_%: $(B)/tests/fuzz_%.o $(B)/libglmv.a
	$(CC) $(LDFLAGS) -o $@ $< $(B)/libglmv.a $(LIBS)
# the server's request parser lives in tools/
$(B)/tests/fuzz_serve: $(B)/tests/fuzz_serve.o $(B)/tools/serve_api.o $(B)/tools/serve_responses.o $(B)/tools/serve_fetch.o $(B)/libglmv.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(B)/tests/fuzz_serve.o: EXTRA_CFLAGS += -Itools

# image stage timings (tests/bench_image.c)
bench-image: $(B)/tests/bench_image

# the engine on the GPU through the public API (tests/bench_cuda.c; make CUDA=1 bench-cuda)
.PHONY: bench-cuda
bench-cuda: $(B)/tests/bench_cuda

# The README's test command: every test program, the CLI and server tests;
# ends with "N passed, N failed".
test: tests
	@bash tests/run.sh $(B)

asan:
	$(MAKE) CONFIG=asan all tests

# glmv's accuracy on the demo model's held-out set, per question type (glmv eval; per-item
# results in build/eval-demo.jsonl). EVAL_FLAGS adds options, e.g. a budget sweep:
#   make eval-demo EVAL_FLAGS="--budgets 1,8,32,unlimited --limit 10 --plot build/eval-demo.svg"
.PHONY: eval-demo
eval-demo: all
	./glmv eval tests/fixtures/demo_eval/items.jsonl -m models/demo --out build/eval-demo.jsonl $(EVAL_FLAGS)

asan-test:
	$(MAKE) CONFIG=asan test

clean:
	rm -rf build glmv

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TESTLIB_OBJ:.o=.d) $(TESTS:=.d) $(FUZZERS:=.d)
