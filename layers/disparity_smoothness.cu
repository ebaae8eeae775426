/* CUDA kernels of the edge-aware disparity smoothness (layers/disparity_smoothness.h;
 * semantics in nn/backend.h). Both passes first write the expected disparity E of every
 * pixel into scratch memory (double); every term and derivative is computed by the
 * header's functions that the CPU kernels use too. The loss is a deterministic two-stage
 * sum in double (nn_cuda_sum_blocks / nn_cuda_sum_partials); the backward gives each
 * pixel one thread that writes its D gradients. */
#include <math.h>

#include "../nn/cuda_check.h"

extern "C" {
#include "disparity_smoothness.h"
}

namespace {

__global__ void expected_kernel(double *e, const float *prob, size_t count, size_t plane, int d, int dmin) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        e[i] = smoothness_expected(prob + (i / plane * d) * plane + i % plane, plane, d, dmin);
}

__global__ void smoothness_partial_kernel(double *partial, const double *e, const float *left, size_t count,
                                          int c, int h, int w, double ax, double ay) {
    const size_t plane = (size_t)h * w;
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / plane, r = i - n * plane;
        acc += smoothness_term(e + n * plane, left + n * c * plane, c, h, w, (int)(r / w), (int)(r % w), ax, ay);
    }
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void smoothness_backward_kernel(float *dprob, const double *e, const float *dloss, const float *left,
                                           size_t count, int c, int h, int w, int d, int dmin, double ax,
                                           double ay) {
    const size_t plane = (size_t)h * w;
    const double dl = (double)dloss[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / plane, r = i - n * plane;
        const double g =
            dl * smoothness_grad(e + n * plane, left + n * c * plane, c, h, w, (int)(r / w), (int)(r % w), ax, ay);
        float *dp = dprob + n * d * plane + r;
        for (int k = 0; k < d; k++) dp[k * plane] += (float)((dmin + k) * g);
    }
}

/* E of every pixel into scratch memory held by s (s.p[0]); NULL + nn_fail */
double *expected_map(NnScratch &s, const float *prob, int n, int h, int w, int d, int dmin) {
    const size_t plane = (size_t)h * w, count = (size_t)n * plane;
    double *e = (double *)(s.p[0] = nn_cuda_scratch(count * sizeof(double)));
    if (!e) return nullptr;
    expected_kernel<<<nn_cuda_grid(count), NN_CUDA_BLOCK>>>(e, prob, count, plane, d, dmin);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        nn_cuda_fail_rt(err, "expected_kernel launch", __FILE__, __LINE__);
        return nullptr;
    }
    return e;
}

} // namespace

int disparity_smoothness_forward_cuda(nn_real *loss, const nn_real *prob, const nn_real *left, int n, int c,
                                      int h, int w, int d, int dmin) {
    const size_t count = (size_t)n * h * w;
    double ax, ay;
    smoothness_weights(n, h, w, &ax, &ay);
    const int blocks = nn_cuda_sum_blocks(count);
    NnScratch s;
    double *e = expected_map(s, prob, n, h, w, d, dmin);
    if (!e) return nn_fail_context("disparity smoothness (cuda)");
    double *partial = (double *)(s.p[1] = nn_cuda_scratch((size_t)blocks * sizeof(double)));
    if (!partial) return nn_fail_context("disparity smoothness (cuda)");
    smoothness_partial_kernel<<<(unsigned)blocks, NN_CUDA_BLOCK>>>(partial, e, left, count, c, h, w, ax, ay);
    NN_CUDA_LAUNCHED("smoothness_partial_kernel");
    return nn_cuda_sum_partials(loss, partial, blocks);
}

int disparity_smoothness_backward_cuda(nn_real *dprob, const nn_real *dloss, const nn_real *prob,
                                       const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    const size_t count = (size_t)n * h * w;
    double ax, ay;
    smoothness_weights(n, h, w, &ax, &ay);
    NnScratch s;
    double *e = expected_map(s, prob, n, h, w, d, dmin);
    if (!e) return nn_fail_context("disparity smoothness backward (cuda)");
    smoothness_backward_kernel<<<nn_cuda_grid(count), NN_CUDA_BLOCK>>>(dprob, e, dloss, left, count, c, h, w, d,
                                                                        dmin, ax, ay);
    NN_CUDA_LAUNCHED("smoothness_backward_kernel");
    return 0;
}
