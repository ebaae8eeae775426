/* The CUDA backend's internal header, for .cu files only (compiled as C++ by nvcc).
 *
 * 1. Error checks. Every CUDA runtime, cuBLAS and cuDNN call goes through one of
 *      NN_CUDA(call)    NN_CUBLAS(call)    NN_CUDNN(call)    NN_CUDA_LAUNCHED("kernel")
 *    inside a function that returns int: on failure it records (nn_fail) one line
 *      "<call> failed: <library error name>: <library error string> (file:line)"
 *    and returns -1. An out-of-memory status also says how much device memory is
 *    free, what this process holds, and what to lower. Kernel launches are checked
 *    with NN_CUDA_LAUNCHED right after the <<<>>> (cudaGetLastError); a fault inside
 *    a kernel surfaces at the next checked call that synchronises (e.g. download).
 * 2. The shared context of the backend (handles, allocator, shared workspace),
 *    defined in backend_cuda.cu.
 * 3. The CUDA kernels of the backend table (outputs first, *_backward accumulate;
 *    nn/backend.h documents each), defined in layers/<name>.cu and nn/optim.cu.
 * 4. Small device helpers: grid sizing, a deterministic block sum.
 *
 * Source of the pattern: llm.c's cudaCheck/cublasCheck (karpathy/llm.c, llmc/cuda_common.h).
 */
#ifndef NN_CUDA_CHECK_H
#define NN_CUDA_CHECK_H

#ifndef __CUDACC__
#error "nn/cuda_check.h is for .cu files compiled by nvcc"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "backend.h"
#include "cuda_alloc.h"
#include "cuda_plan.h"
#include "cuda_upload.h" /* the asynchronous uploads on the copy stream, with their semantics */
#include "status.h"
}

static_assert(sizeof(nn_real) == sizeof(float), "the CUDA backend is float32 only (nn_real = float)");

/* ---- 1. error checks ------------------------------------------------------------- */

int nn_cuda_fail_rt(cudaError_t e, const char *call, const char *file, int line);
int nn_cuda_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line);
int nn_cuda_fail_cudnn(cudnnStatus_t s, const char *call, const char *file, int line);

#define NN_CUDA(call)                                                                    \
    do {                                                                                 \
        cudaError_t nn_e_ = (call);                                                      \
        if (nn_e_ != cudaSuccess) return nn_cuda_fail_rt(nn_e_, #call, __FILE__, __LINE__); \
    } while (0)

#define NN_CUBLAS(call)                                                                          \
    do {                                                                                         \
        cublasStatus_t nn_s_ = (call);                                                           \
        if (nn_s_ != CUBLAS_STATUS_SUCCESS) return nn_cuda_fail_cublas(nn_s_, #call, __FILE__, __LINE__); \
    } while (0)

#define NN_CUDNN(call)                                                                         \
    do {                                                                                       \
        cudnnStatus_t nn_s_ = (call);                                                          \
        if (nn_s_ != CUDNN_STATUS_SUCCESS) return nn_cuda_fail_cudnn(nn_s_, #call, __FILE__, __LINE__); \
    } while (0)

/* After a kernel launch: "<name> launch failed: ..." */
#define NN_CUDA_LAUNCHED(name)                                                             \
    do {                                                                                   \
        cudaError_t nn_e_ = cudaGetLastError();                                            \
        if (nn_e_ != cudaSuccess) return nn_cuda_fail_rt(nn_e_, name " launch", __FILE__, __LINE__); \
    } while (0)

/* ---- 2. shared context (backend_cuda.cu) ------------------------------------------ */

cudnnHandle_t nn_cuda_cudnn(void);
cublasHandle_t nn_cuda_cublas(void);
int nn_cuda_sm_count(void);

/* Scratch device memory through the caching allocator (NULL + nn_fail). */
void *nn_cuda_scratch(size_t bytes);
void nn_cuda_scratch_release(void *p);

/* The shared cuDNN workspace: grown to at least `bytes` (0 or -1 + nn_fail). */
int nn_cuda_workspace_ensure(size_t bytes);
void *nn_cuda_workspace(void);
size_t nn_cuda_workspace_size(void);

/* cuDNN tensor descriptors of one call (the ops create them per call, as conv2d.cu;
 * they are small host objects):
 *   nn_cudnn_tensor: creates *d and sets it to a packed float32 NCHW (n, c, h, w)
 *     tensor (0 or -1 + nn_fail; *d may be set even on failure);
 *   nn_cudnn_tensors_destroy: destroys the non-NULL d[0 .. count) (and NULLs them), and
 *     returns rc, or the failed destroy's -1 + nn_fail when rc is 0.
 * Usage, so that every path destroys them:
 *   cudnnTensorDescriptor_t t[2] = {nullptr, nullptr};
 *   int rc = nn_cudnn_tensor(&t[0], ...) || nn_cudnn_tensor(&t[1], ...) ? -1 : body(t);
 *   return nn_cudnn_tensors_destroy(rc, t, 2); */
int nn_cudnn_tensor(cudnnTensorDescriptor_t *d, int n, int c, int h, int w);
int nn_cudnn_tensors_destroy(int rc, cudnnTensorDescriptor_t *d, int count);

/* Device memory free now plus the allocator's cached blocks (what a workspace may take). */
size_t nn_cuda_available_bytes(void);

/* The algorithm cache of the convolutions. */
nn_algo_cache *nn_cuda_algo_cache(void);

/* bf16 temporaries of precision bf16 (conv2d.cu, linear.cu): float32 tensors stay
 * float32; a convolution or matrix product converts its operands to bf16 (round to
 * nearest even, __float2bfloat16_rn) in scratch memory, computes with float32
 * accumulation, and converts its result back.
 *   nn_cuda_to_bf16:   dst[i] = bf16(src[i]), n values
 *   nn_cuda_from_bf16: dst[i] = float(src[i]) (accumulate 0) or dst[i] += float(src[i]) (1)
 *   nn_cuda_bf16_copy: a new scratch block (nn_cuda_scratch) holding bf16(src), or NULL
 *                      + nn_fail; release it with nn_cuda_scratch_release. */
int nn_cuda_to_bf16(void *dst, const float *src, size_t n);
int nn_cuda_from_bf16(float *dst, const void *src, size_t n, int accumulate);
void *nn_cuda_bf16_copy(const float *src, size_t n);

/* ---- 3. kernels of the backend table ---------------------------------------------- */

/* layers/elementwise.cu */
int fill_cuda(nn_real *x, size_t n, nn_real value);
int axpy_cuda(nn_real *y, nn_real a, const nn_real *x, size_t n);
int add_cuda(nn_real *out, const nn_real *a, const nn_real *b, size_t n);
int relu_forward_cuda(nn_real *out, const nn_real *in, size_t n);
int relu_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *out, size_t n);
int relu_mask_cuda(nn_real *d, const nn_real *out, size_t n);
int channel_affine_cuda(nn_real *out, const nn_real *in, const nn_real *scale, const nn_real *shift,
                        int n, int c, int hw);
int channel_affine_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *scale, int n, int c,
                                 int hw);
/* layers/conv2d.cu */
int conv2d_forward_cuda(nn_real *out, const nn_real *in, const nn_real *weight, const nn_real *bias,
                        const nn_conv_shape *s);
int conv2d_backward_data_cuda(nn_real *din, const nn_real *dout, const nn_real *weight,
                              const nn_conv_shape *s);
int conv2d_backward_weight_cuda(nn_real *dweight, nn_real *dbias, const nn_real *dout, const nn_real *in,
                                const nn_conv_shape *s);
int bias_forward_cuda(nn_real *out, const nn_real *bias, int n, int c, int hw);
int bias_backward_cuda(nn_real *dbias, const nn_real *dout, int n, int c, int hw);
/* layers/maxpool2d.cu */
int maxpool2d_forward_cuda(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s);
int maxpool2d_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *out,
                            const nn_real *argmax, const nn_pool_shape *s);
/* layers/linear.cu */
int linear_forward_cuda(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b, int n, int in,
                        int out);
int linear_backward_cuda(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy, const nn_real *x,
                         const nn_real *w, int n, int in, int out);
/* layers/dropout.cu */
int dropout_forward_cuda(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p,
                         uint64_t seed);
int dropout_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n);
/* layers/batchnorm2d.cu */
int batchnorm_forward_train_cuda(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                 nn_real *running_mean, nn_real *running_var, const nn_real *in,
                                 const nn_real *gamma, const nn_real *beta, int n, int c, int hw,
                                 nn_real momentum, nn_real eps);
int batchnorm_backward_cuda(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                            const nn_real *in, const nn_real *gamma, const nn_real *save_mean,
                            const nn_real *save_invstd, int n, int c, int hw, nn_real eps);
int batchnorm_sum_cuda(double *sum, const nn_real *in, int n, int c, int hw);
int batchnorm_sqdev_cuda(double *sqdev, const nn_real *in, const double *sum, double m, int n, int c, int hw);
int batchnorm_apply_train_cuda(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                               nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                               const double *stats, double m, int n, int c, int hw, nn_real momentum, nn_real eps);
int batchnorm_backward_sums_cuda(double *sums, nn_real *dgamma, nn_real *dbeta, const nn_real *dout, const nn_real *in,
                                 const nn_real *save_mean, const nn_real *save_invstd, int n, int c, int hw);
int batchnorm_backward_apply_cuda(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *gamma,
                                  const nn_real *save_mean, const nn_real *save_invstd, const double *sums, double m,
                                  int n, int c, int hw);
/* layers/softmax.cu */
int softmax_forward_cuda(nn_real *out, const nn_real *in, int n, int c, int hw);
int softmax_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw);
/* layers/selection.cu */
int selection_forward_cuda(nn_real *right, const nn_real *prob, const nn_real *left, int n, int c, int h,
                           int w, int d, int dmin);
int selection_backward_cuda(nn_real *dprob, nn_real *dleft, const nn_real *dright, const nn_real *prob,
                            const nn_real *left, int n, int c, int h, int w, int d, int dmin);
/* layers/l1_loss.cu */
int l1_loss_forward_cuda(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n);
int l1_loss_backward_cuda(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                          const nn_real *target, size_t n);
/* layers/ssim_l1_loss.cu */
int ssim_l1_loss_forward_cuda(nn_real *loss, const nn_real *pred, const nn_real *target, int n, int c, int h,
                              int w, nn_real alpha);
int ssim_l1_loss_backward_cuda(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                               const nn_real *target, int n, int c, int h, int w, nn_real alpha);
/* layers/disparity_smoothness.cu */
int disparity_smoothness_forward_cuda(nn_real *loss, const nn_real *prob, const nn_real *left, int n, int c,
                                      int h, int w, int d, int dmin);
int disparity_smoothness_backward_cuda(nn_real *dprob, const nn_real *dloss, const nn_real *prob,
                                       const nn_real *left, int n, int c, int h, int w, int d, int dmin);
/* nn/optim.cu */
int sgd_step_cuda(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n, nn_real lr,
                  nn_real momentum, nn_real weight_decay);
int adam_step_cuda(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n, nn_real lr,
                   nn_real beta1, nn_real beta2, nn_real eps, nn_real weight_decay, long step);

/* ---- 4. device helpers --------------------------------------------------------------- */

/* Scratch blocks (nn_cuda_scratch) released when the holder goes out of scope, so the
 * early returns of NN_CUDA / NN_CUDNN / NN_CUBLAS cannot leak them. Release is ordered
 * on the compute stream: kernels already queued may still use the blocks. */
struct NnScratch {
    void *p[4] = {nullptr, nullptr, nullptr, nullptr};
    NnScratch() = default;
    NnScratch(const NnScratch &) = delete;
    NnScratch &operator=(const NnScratch &) = delete;
    ~NnScratch() {
        for (void *q : p)
            if (q) nn_cuda_scratch_release(q);
    }
};

#define NN_CUDA_BLOCK 256

/* Blocks for a grid-stride loop over n items: enough to fill the GPU, no more. */
static inline unsigned nn_cuda_grid(size_t n) {
    size_t blocks = (n + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    size_t most = (size_t)nn_cuda_sm_count() * 32;
    if (blocks > most) blocks = most;
    return blocks ? (unsigned)blocks : 1u;
}

/* Grid for per-plane kernels over NCHW viewed as (planes = N*C, hw): blockIdx.y walks
 * the planes (grid-stride), x the pixels of a plane, so the channel of a plane is
 * computed once per block instead of a 64-bit division per element. */
static inline dim3 nn_cuda_plane_grid(size_t planes, int hw) {
    size_t gx = ((size_t)hw + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    size_t gy = planes < 65535 ? planes : 65535;
    size_t most = (size_t)nn_cuda_sm_count() * 32;   /* blocks enough to fill the GPU */
    if (gx * gy > most && gx > 1) {
        size_t want = most / gy;
        gx = want > 1 ? (want < gx ? want : gx) : 1;
    }
    return dim3((unsigned)(gx ? gx : 1), (unsigned)(gy ? gy : 1));
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the result is
 * valid in thread 0. The order of additions depends only on blockDim, so the result
 * is the same run to run (no atomics). Every thread must call it. */
static __device__ __forceinline__ double nn_block_sum(double v) {
    __shared__ double warp_sums[32];
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();   /* warp_sums may still be read by a previous call */
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nw = (blockDim.x + 31) / 32;
        v = lane < nw ? warp_sums[lane] : 0.0;
        for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

/* A deterministic sum of n terms into a device scalar, in two stages of fixed order:
 * a kernel of nn_cuda_sum_blocks(n) blocks of NN_CUDA_BLOCK threads adds the terms in a
 * grid-stride loop, nn_block_sum, and writes partial[blockIdx.x]; then
 * nn_cuda_sum_partials sets out[0] = (float)(sum of partial[0 .. blocks)) with one block
 * (0, or -1 + nn_fail when its launch fails). Used by layers/ssim_l1_loss.cu and
 * layers/disparity_smoothness.cu (layers/l1_loss.cu has its own, dividing by n). */
static inline int nn_cuda_sum_blocks(size_t n) {
    size_t want = (n + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    return want < 1 ? 1 : want < 1024 ? (int)want : 1024;
}
int nn_cuda_sum_partials(float *out, const double *partial, int blocks);

/* Splits of a per-channel reduction over m = n*hw items: about 4 blocks per SM in
 * total, at least 4096 items per block. */
static inline int nn_cuda_channel_splits(int c, long long m) {
    long long want = (long long)nn_cuda_sm_count() * 4 / (c > 0 ? c : 1);
    long long most = (m + 4095) / 4096;
    long long s = want < most ? want : most;
    if (s < 1) s = 1;
    if (s > 1024) s = 1024;
    return (int)s;
}

#endif
