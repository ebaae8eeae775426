/* CUDA kernels of the SSIM + L1 photometric loss (layers/ssim_l1_loss.h; semantics in
 * nn/backend.h). Every pixel, window and coefficient is computed by the header's
 * functions that the CPU kernels use too (ssim_l1_term, ssim_window_grad,
 * ssim_l1_pixel_grad). The loss is a deterministic two-stage sum in double
 * (nn_cuda_sum_blocks / nn_cuda_sum_partials); the backward computes each window's
 * coefficients once into scratch memory, then every pixel gathers its windows'. */
#include <math.h>

#include "../nn/cuda_check.h"

extern "C" {
#include "ssim_l1_loss.h"
}

namespace {

__global__ void ssim_l1_partial_kernel(double *partial, const float *pred, const float *target, size_t total,
                                       int h, int w, double ws, double wl) {
    const size_t plane = (size_t)h * w;
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t off = i / plane * plane, r = i - off;
        acc += ssim_l1_term(pred + off, target + off, (int)(r / w), (int)(r % w), h, w, ws, wl);
    }
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/* one thread per window (q, y, x) of the (h-2) x (w-2) windows of each plane q */
__global__ void ssim_window_kernel(float *k, const float *dloss, const float *pred, const float *target,
                                   size_t windows, int h, int w, double ws) {
    const size_t per_plane = (size_t)(h - 2) * (w - 2), plane = (size_t)h * w;
    const double dws = (double)dloss[0] * ws;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < windows; i += (size_t)gridDim.x * blockDim.x) {
        const size_t q = i / per_plane, r = i - q * per_plane;
        ssim_window_grad(k + 3 * i, pred + q * plane, target + q * plane, (int)(r / (w - 2)), (int)(r % (w - 2)),
                         w, dws);
    }
}

/* one thread per pixel: dpred += the gradient of its windows and its L1 part */
__global__ void ssim_l1_backward_kernel(float *dpred, const float *k, const float *dloss, const float *pred,
                                        const float *target, size_t total, int h, int w, double wl) {
    const size_t plane = (size_t)h * w, per_plane = (size_t)(h - 2) * (w - 2);
    const double dwl = (double)dloss[0] * wl;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t q = i / plane, r = i - q * plane;
        dpred[i] += (float)ssim_l1_pixel_grad(k + 3 * q * per_plane, pred + q * plane, target + q * plane,
                                              (int)(r / w), (int)(r % w), h, w, dwl);
    }
}

} // namespace

int ssim_l1_loss_forward_cuda(nn_real *loss, const nn_real *pred, const nn_real *target, int n, int c, int h,
                              int w, nn_real alpha) {
    const size_t total = (size_t)n * c * h * w;
    double ws, wl;
    ssim_l1_weights(n, c, h, w, alpha, &ws, &wl);
    const int blocks = nn_cuda_sum_blocks(total);
    NnScratch s;
    double *partial = (double *)(s.p[0] = nn_cuda_scratch((size_t)blocks * sizeof(double)));
    if (!partial) return nn_fail_context("ssim_l1 loss (cuda)");
    ssim_l1_partial_kernel<<<(unsigned)blocks, NN_CUDA_BLOCK>>>(partial, pred, target, total, h, w, ws, wl);
    NN_CUDA_LAUNCHED("ssim_l1_partial_kernel");
    return nn_cuda_sum_partials(loss, partial, blocks);
}

int ssim_l1_loss_backward_cuda(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                               const nn_real *target, int n, int c, int h, int w, nn_real alpha) {
    const size_t total = (size_t)n * c * h * w, windows = (size_t)n * c * (h - 2) * (w - 2);
    double ws, wl;
    ssim_l1_weights(n, c, h, w, alpha, &ws, &wl);
    NnScratch s;
    float *k = (float *)(s.p[0] = nn_cuda_scratch(3 * windows * sizeof(float)));
    if (!k) return nn_fail_context("ssim_l1 loss backward (cuda)");
    ssim_window_kernel<<<nn_cuda_grid(windows), NN_CUDA_BLOCK>>>(k, dloss, pred, target, windows, h, w, ws);
    NN_CUDA_LAUNCHED("ssim_window_kernel");
    ssim_l1_backward_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(dpred, k, dloss, pred, target, total, h, w, wl);
    NN_CUDA_LAUNCHED("ssim_l1_backward_kernel");
    return 0;
}
