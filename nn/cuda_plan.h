/* Host-side planning for the CUDA backend's convolutions, and its settings.
 *
 * cuDNN offers several algorithms per convolution; which is fastest, and how much
 * scratch memory ("workspace") it needs, depends on the full geometry. The backend
 * measures them once per geometry and direction (cudnnFindConvolution*AlgorithmEx),
 * keeps the choice in an algorithm cache keyed by that geometry, and runs every
 * convolution out of ONE shared workspace buffer, grown to the largest chosen need
 * and never beyond a cap (darknet's uncapped workspace was its users' most common
 * out-of-memory report; see /work/shared/docs/STYLE.md).
 *
 * The rules, all plain C so that tests/test_cuda_host.c checks them on the CPU with
 * fake measurements:
 *  - choice: the fastest measured candidate that succeeded, needs no more workspace
 *    than the cap, is deterministic when deterministic mode is on, and does not use
 *    tensor-core math when the precision is fp32;
 *  - fallback: when the shared workspace cannot be grown to that candidate's need
 *    (the device is out of memory), the fastest qualifying candidate that needs no
 *    workspace at all is used instead;
 *  - cap: the user's limit when set, else 1/8 of the memory available when the
 *    geometry is first seen, at most 1 GiB.
 *
 * Settings (process-wide, read by the CUDA backend at each new geometry; the CPU
 * backend ignores them): precision fp32 (default: cuDNN CUDNN_FMA_MATH, cuBLAS
 * default math, true float32), tf32 (tensor cores with TF32 inputs: cuDNN
 * CUDNN_DEFAULT_MATH, which permits TF32 on Ampere and later, and cuBLAS
 * CUBLAS_TF32_TENSOR_OP_MATH), bf16 (mixed precision: float32 tensors and master
 * weights; convolutions and matrix products convert their operands to bf16 and
 * accumulate in float32, see layers/conv2d.cu and layers/linear.cu); deterministic
 * mode; the workspace limit.
 */
#ifndef NN_CUDA_PLAN_H
#define NN_CUDA_PLAN_H

#include <stddef.h>

#include "backend.h"

typedef enum { NN_PRECISION_FP32 = 0, NN_PRECISION_TF32 = 1, NN_PRECISION_BF16 = 2 } nn_precision;

/* --- settings ------------------------------------------------------------------ */

/* Selects the math of the CUDA backend's convolutions and matrix products by name:
 * "fp32", "tf32" or "bf16" (the --precision option); any other name fails listing the
 * valid ones. 0 or -1 + nn_fail. */
int nn_cuda_set_precision(const char *name);
nn_precision nn_cuda_precision(void);
const char *nn_precision_name(nn_precision p);

/* Deterministic mode (1) restricts cuDNN to algorithms it reports as
 * CUDNN_DETERMINISTIC (bitwise identical results run to run); the backend's own
 * kernels are deterministic in both modes. Returns 0. */
int nn_cuda_set_deterministic(int on);
int nn_cuda_deterministic(void);

/* Caps the shared cuDNN workspace at `bytes` (0: automatic, see nn_plan_workspace_cap). */
void nn_cuda_set_workspace_limit(size_t bytes);
size_t nn_cuda_workspace_limit(void);

/* --- the algorithm cache ------------------------------------------------------- */

typedef enum { NN_CONV_FWD = 0, NN_CONV_BWD_DATA = 1, NN_CONV_BWD_FILTER = 2 } nn_conv_dir;

/* Everything that can change the best algorithm: the full geometry (batch, both
 * tensor shapes, kernel, stride, padding, dilation), the direction, and the math
 * settings. Built by nn_conv_key_make (zero-filled, so it compares field by field). */
typedef struct nn_conv_key {
    nn_conv_shape shape;
    int dir;            /* nn_conv_dir */
    int precision;      /* nn_precision */
    int deterministic;
} nn_conv_key;

void nn_conv_key_make(nn_conv_key *k, const nn_conv_shape *s, nn_conv_dir dir, nn_precision precision,
                      int deterministic);
int nn_conv_key_equal(const nn_conv_key *a, const nn_conv_key *b);

/* One measured candidate, as cudnnFind*AlgorithmEx reports it (cudnnConvolution*AlgoPerf_t). */
typedef struct nn_algo_perf {
    int algo;           /* cudnnConvolution*Algo_t */
    int ok;             /* status == CUDNN_STATUS_SUCCESS */
    float time_ms;
    size_t workspace;   /* bytes */
    int deterministic;  /* determinism == CUDNN_DETERMINISTIC */
    int math_type;      /* cudnnMathType_t */
    int tensor_op;      /* 1 when math_type uses tensor cores (TENSOR_OP or ALLOW_CONVERSION) */
} nn_algo_perf;

/* What the backend runs. */
typedef struct nn_algo_choice {
    int algo;
    size_t workspace;   /* bytes it needs */
    int math_type;
    float time_ms;
    int fallback;       /* 1: chosen by the zero-workspace fallback */
    /* The fastest qualifying algorithm that needs no workspace (-1: none), for when
     * the workspace cannot be had at run time (nn_plan_decide fills it). */
    int zero_algo;
    int zero_math_type;
} nn_algo_choice;

typedef struct nn_algo_cache {
    struct nn_algo_cache_entry *entries;
    int n, cap;
    long hits, misses;
} nn_algo_cache;

void nn_algo_cache_init(nn_algo_cache *c);
void nn_algo_cache_free(nn_algo_cache *c);

/* The cached choice for k, or NULL (counts a hit or a miss). */
const nn_algo_choice *nn_algo_cache_find(nn_algo_cache *c, const nn_conv_key *k);

/* Stores (or replaces) the choice for k. -1 + nn_fail when out of host memory. */
int nn_algo_cache_put(nn_algo_cache *c, const nn_conv_key *k, const nn_algo_choice *choice);

/* --- the rules ----------------------------------------------------------------- */

/* The fastest candidate of cands[0..n) that succeeded, needs <= cap bytes, is
 * deterministic if `deterministic`, and is not tensor-op math unless
 * `tensor_op_allowed`. -1 + nn_fail naming why each candidate was rejected when
 * none qualifies. */
int nn_plan_choose(const nn_algo_perf *cands, int n, size_t cap, int deterministic,
                   int tensor_op_allowed, nn_algo_choice *out);

/* nn_plan_choose, then ensure_workspace(choice.workspace, ctx) (grow the shared
 * workspace); if that returns -1, the error is cleared and the choice is redone
 * with cap 0 (fallback = 1). -1 + nn_fail when even that finds nothing. Also fills
 * zero_algo / zero_math_type (the choice with cap 0, or -1). */
int nn_plan_decide(const nn_algo_perf *cands, int n, size_t cap, int deterministic,
                   int tensor_op_allowed, int (*ensure_workspace)(size_t bytes, void *ctx),
                   void *ctx, nn_algo_choice *out);

/* The workspace cap: user_limit when nonzero, else available/8 clamped to 1 GiB
 * (available: device memory free plus the allocator's cached blocks). */
#define NN_PLAN_WORKSPACE_MAX ((size_t)1 << 30)
size_t nn_plan_workspace_cap(size_t available, size_t user_limit);

/* The workspace to offer cudnnFind*AlgorithmEx: the largest need[i] that is <= cap
 * (needs of unsupported algorithms are SIZE_MAX and are ignored), so that every
 * algorithm that could be chosen can be measured. */
size_t nn_plan_find_workspace(const size_t *needs, int n, size_t cap);

#endif
