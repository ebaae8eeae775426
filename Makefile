# deep3d: one binary (./deep3d) and two test programs.
#   make            build build/deep3d (CUDA backend when nvcc is found; CUDA=0 turns it off)
#   make demo       install what is missing, build, convert the bundled sample into out/
#   make test       install what is missing, build and run the test suite (float32 tests + float64 gradient checks)
#   make clean
#   make SANITIZE=1 test   the same suite built with -fsanitize=address,undefined (CPU only) in build-san/
#   make fuzz [FUZZ_SECONDS=N]   libFuzzer targets (tests/fuzz/, clang), each run N seconds (default 60)
# Flags: OPTFLAGS (default -O3 -march=native) and CFLAGS / LDFLAGS given on the command
# line are added to the flags the build needs (REQ_CFLAGS), never replace them:
# `make CFLAGS=-O1` builds at -O1 with every warning flag kept.
# The float64 build (build/f64) compiles nn/ and layers/ with -DNN_REAL_DOUBLE for the
# finite-difference gradient checks; the product is float32 (build/f32). BUILD=dir moves build/.

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
  BUILD    ?= build-san
  CUDA     := 0
  # without MPI: Open MPI's own allocations would be reported as leaks (train_mpi skips)
  MPI      := 0
  OPTFLAGS ?= -O1 -g -fno-omit-frame-pointer
  SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
BUILD    ?= build
CC       ?= cc
NVCC     ?= nvcc
CUDA     ?= $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80

BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
STB_CFLAGS  := $(shell pkg-config --cflags stb 2>/dev/null || echo -I/usr/include/stb)
STB_LIBS    := $(shell pkg-config --libs stb 2>/dev/null || echo -lstb)

OPTFLAGS ?= -O3 -march=native
CFLAGS   ?=
LDFLAGS  ?=
REQ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -MMD -MP $(BLAS_CFLAGS) $(STB_CFLAGS) $(SAN_FLAGS)
ALL_CFLAGS  = $(OPTFLAGS) $(REQ_CFLAGS) $(CFLAGS)
LDLIBS   := $(BLAS_LIBS) $(STB_LIBS) -lgif -fopenmp -lpthread -lm
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

# MPI (data-parallel training, train/dist.h): found through pkg-config (Open MPI's
# ompi-c) or `mpicc --showme`; MPI=0 or no MPI builds without it (deep3d train then
# refuses to run as several processes, saying so). NCCL (the all-reduce of CUDA
# training) is used when CUDA and MPI are and nccl.h is found; NCCL=0 turns it off.
MPICC    ?= mpicc
MPI_PC   ?= ompi-c
MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC) 2>/dev/null || $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs $(MPI_PC) 2>/dev/null || $(MPICC) --showme:link 2>/dev/null)
MPI      ?= $(if $(strip $(MPI_LIBS)),1,0)

CORE_SRC := $(wildcard nn/*.c) $(wildcard layers/*.c)
APP_SRC  := $(wildcard deep3d/*.c) $(wildcard data/*.c) $(wildcard train/*.c) $(wildcard infer/*.c)
MAIN_SRC := deep3d/main.c
LIB_SRC  := $(filter-out $(MAIN_SRC) nn/backend_cuda_none.c, $(CORE_SRC) $(APP_SRC))

ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
  CU_SRC    := $(wildcard nn/*.cu) $(wildcard layers/*.cu) $(wildcard infer/*.cu)
  CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/f32/%.cu.o)   # .cu.o: layers/conv2d.cu sits beside layers/conv2d.c
  NVFLAGS   := -O3 -std=c++17 $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -MMD -MP
  LDLIBS    += -L$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++ -Wl,-rpath,$(CUDA_HOME)/lib64
  REQ_CFLAGS += -DNN_WITH_CUDA -I$(CUDA_HOME)/include
else
  CU_OBJ    := $(BUILD)/f32/nn/backend_cuda_none.o
endif

NCCL_INC := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h /usr/local/include/nccl.h))
NCCL     ?= $(if $(and $(filter 1,$(CUDA)),$(filter 1,$(MPI)),$(NCCL_INC)),1,0)
DIST_FLAGS :=
ifeq ($(MPI),1)
  DIST_FLAGS += -DDEEP3D_WITH_MPI $(MPI_CFLAGS)
  LDLIBS     += $(MPI_LIBS)
  ifeq ($(NCCL),1)
    DIST_FLAGS += -DDEEP3D_WITH_NCCL
    CU_OBJ     += $(BUILD)/f32/train/dist_nccl.cu.o
    LDLIBS     += -lnccl
  endif
endif

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/f32/%.o) $(CU_OBJ)
F64_SRC  := $(filter-out nn/backend_cuda_none.c, $(CORE_SRC))
F64_OBJ  := $(F64_SRC:%.c=$(BUILD)/f64/%.o) $(BUILD)/f64/nn/backend_cuda_none.o

TEST_SRC   := $(wildcard tests/test_*.c) tests/testutil.c tests/renderutil.c
GRAD_SRC   := $(wildcard tests/grad_*.c) tests/testutil.c
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/f32/%.o)
GRAD_OBJ   := $(GRAD_SRC:%.c=$(BUILD)/f64/%.o)
TEST_LIBS  := -lcriterion

.PHONY: all test clean info deps test-deps demo demo-pictures fuzz fuzz-build
all: info $(BUILD)/deep3d

# Installs the Debian packages the build needs (as root), or says which are missing.
deps:
	@bash .ci/install-deps
test-deps:
	@bash .ci/install-deps --test

# The main job on the bundled sample: writes out/sample_{right,sbs,anaglyph,depth}.png
# (replacing the outputs of an earlier make demo: out/ is this target's own folder)
demo: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/deep3d infer --overwrite --out out weights/sample.jpg

# The small pictures README.md shows, made from make demo's outputs with ffmpeg (JPEG,
# downscaled): weights/demo/sample_{sbs,anaglyph,depth}.jpg. Rerun after changing the
# bundled model or the renderer, and commit them.
demo-pictures: demo
	@mkdir -p weights/demo
	ffmpeg -loglevel error -y -i out/sample_sbs.png -vf scale=960:-2 -q:v 3 weights/demo/sample_sbs.jpg
	ffmpeg -loglevel error -y -i out/sample_anaglyph.png -vf scale=480:-2 -q:v 3 weights/demo/sample_anaglyph.jpg
	ffmpeg -loglevel error -y -i out/sample_depth.png -vf scale=480:-2 -q:v 3 weights/demo/sample_depth.jpg

info:
	@echo "deep3d build: CC=$(CC) CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), (nvcc $(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), cuDNN, cuBLAS),) MPI=$(MPI) NCCL=$(NCCL) OpenBLAS, stb, OpenMP"
	@$(if $(filter 1,$(MPI)),,echo "deep3d build: without MPI (MPI=0, or neither pkg-config $(MPI_PC) nor $(MPICC) found): deep3d train runs as one process only; apt-get install openmpi-bin libopenmpi-dev turns data-parallel training on")

$(BUILD)/deep3d: $(BUILD)/f32/$(MAIN_SRC:.c=.o) $(BUILD)/libdeep3d.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libdeep3d.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/f32/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# These objects test NN_WITH_CUDA: rebuild them when CUDA=0/1 changes in this folder.
CUDA_STAMP := $(BUILD)/.cuda-$(CUDA)
$(CUDA_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.cuda-* && touch $@
$(BUILD)/f32/infer/infer.o $(BUILD)/f32/infer/video.o $(BUILD)/f32/tests/test_cuda_render.o $(BUILD)/f32/tests/test_cuda_warp.o: $(CUDA_STAMP)

# train/dist.c tests DEEP3D_WITH_MPI / DEEP3D_WITH_NCCL: rebuilt when MPI or NCCL changes.
DIST_STAMP := $(BUILD)/.dist-$(MPI)$(NCCL)
$(DIST_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.dist-* && touch $@
$(BUILD)/f32/train/dist.o: $(DIST_STAMP)
$(BUILD)/f32/train/dist.o: CFLAGS += $(DIST_FLAGS)

$(BUILD)/f64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DNN_REAL_DOUBLE -UNN_WITH_CUDA -c -o $@ $<

$(BUILD)/f32/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -DNN_WITH_CUDA -c -o $@ $<

# The renderer's kernels run warp.h's plain float code: no fused multiply-adds, so
# they round as the CPU build does (infer/render_hd.h).
$(BUILD)/f32/infer/render.cu.o: NVFLAGS += --fmad=false

$(BUILD)/test_nn: $(TEST_OBJ) $(BUILD)/libdeep3d.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

$(BUILD)/test_grad64: $(GRAD_OBJ) $(F64_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

# Criterion runs each test in its own process, 2 at a time (this machine has 2 cores);
# OpenBLAS/OpenMP get 1 thread each so the two do not oversubscribe.
TEST_JOBS ?= 2
test: test-deps
	@$(MAKE) --no-print-directory $(BUILD)/deep3d $(BUILD)/test_nn $(BUILD)/test_grad64
	@bash tests/run.sh $(TEST_JOBS) $(BUILD)

# libFuzzer targets (tests/fuzz/fuzz_*.c): the library and stb_image built with clang,
# -fsanitize=fuzzer-no-link,address,undefined; `make fuzz` builds each target and runs
# it FUZZ_SECONDS seconds on tests/fuzz/corpus/NAME (the seeds) plus $(BUILD)/fuzz/
# corpus-NAME (what it found before); a crash is saved as $(BUILD)/fuzz/crash-NAME-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE \
                -Wall -Wextra -Werror -fopenmp $(BLAS_CFLAGS) $(STB_CFLAGS)
FUZZ_LIB_SRC := $(filter-out $(MAIN_SRC), $(CORE_SRC) $(APP_SRC)) tests/fuzz/stb_impl.c tests/fuzz/fuzz_util.c
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_util.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libfuzz.a: $(FUZZ_LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libfuzz.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -fopenmp -o $@ $^ $(BLAS_LIBS) -lgif -lpthread -lm

fuzz-build:
	@bash .ci/install-deps --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS)

fuzz: fuzz-build
	@failed=""; for n in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_DIR)/corpus-$$n; \
	    echo "== fuzz_$$n for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_DIR)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -close_fd_mask=3 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$n- $(FUZZ_DIR)/corpus-$$n tests/fuzz/corpus/$$n \
	        > $(FUZZ_DIR)/log-$$n.txt 2>&1 || failed="$$failed $$n"; \
	    grep -E '^(#[0-9]+ +DONE|SUMMARY|stat::number_of_executed_units|Test unit written|==[0-9]+==ERROR)' $(FUZZ_DIR)/log-$$n.txt; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing found problems in:$$failed (inputs: $(FUZZ_DIR)/crash-*; logs: $(FUZZ_DIR)/log-*.txt)"; exit 1; fi

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

SHELL := /bin/bash
