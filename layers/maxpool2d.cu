/* CUDA kernels of max pooling (layers/maxpool2d.h; semantics in nn/backend.h):
 * window k x k, stride, no padding, floor mode. Own kernels rather than cuDNN
 * pooling, because the backend contract saves the argmax (flat index iy*W_in + ix
 * inside the input plane, stored as nn_real, exact below 2^24) and cuDNN does not
 * expose it.
 *   forward:  one thread per output element; ties go to the first maximum in
 *             row-major window order (strict >), as the CPU kernel.
 *   backward: one thread per INPUT element gathers dout over the windows that cover
 *             it and whose argmax is it, so overlapping windows (stride < k) need no
 *             atomics and the result is deterministic. din += that sum.
 */
#include "../nn/cuda_check.h"

namespace {

__global__ void maxpool_forward_kernel(float *out, float *argmax, const float *in, size_t total, int h_in, int w_in,
                                       int h_out, int w_out, int k, int stride) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int ox = (int)(i % (size_t)w_out);
        int oy = (int)((i / (size_t)w_out) % (size_t)h_out);
        size_t plane = i / ((size_t)w_out * h_out);
        const float *src = in + plane * (size_t)h_in * w_in;
        int iy0 = oy * stride, ix0 = ox * stride;
        int best_idx = iy0 * w_in + ix0;
        float best = src[best_idx];
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                int idx = (iy0 + ky) * w_in + ix0 + kx;
                float v = src[idx];
                if (v > best) {
                    best = v;
                    best_idx = idx;
                }
            }
        out[i] = best;
        argmax[i] = (float)best_idx;
    }
}

__global__ void maxpool_backward_kernel(float *din, const float *dout, const float *argmax, size_t total, int h_in,
                                        int w_in, int h_out, int w_out, int k, int stride) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int ix = (int)(i % (size_t)w_in);
        int iy = (int)((i / (size_t)w_in) % (size_t)h_in);
        size_t plane = i / ((size_t)w_in * h_in);
        int flat = iy * w_in + ix;
        /* windows oy with oy*stride <= iy <= oy*stride + k - 1 */
        int oy_lo = iy - k + 1 > 0 ? (iy - k + 1 + stride - 1) / stride : 0;
        int oy_hi = min(iy / stride, h_out - 1);
        int ox_lo = ix - k + 1 > 0 ? (ix - k + 1 + stride - 1) / stride : 0;
        int ox_hi = min(ix / stride, w_out - 1);
        const float *g = dout + plane * (size_t)h_out * w_out;
        const float *a = argmax + plane * (size_t)h_out * w_out;
        float sum = 0.0f;
        int hit = 0;
        for (int oy = oy_lo; oy <= oy_hi; oy++)
            for (int ox = ox_lo; ox <= ox_hi; ox++) {
                int o = oy * w_out + ox;
                if ((int)a[o] == flat) {
                    sum += g[o];
                    hit = 1;
                }
            }
        if (hit) din[i] += sum;
    }
}

int check_shape(const nn_pool_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->k <= 0 || s->stride <= 0 || s->h_out <= 0 || s->w_out <= 0 ||
        (s->h_out - 1) * s->stride + s->k > s->h_in || (s->w_out - 1) * s->stride + s->k > s->w_in)
        return nn_fail("maxpool2d (cuda): inconsistent geometry: input %dx%d, output %dx%d, window %d, stride %d",
                       s->h_in, s->w_in, s->h_out, s->w_out, s->k, s->stride);
    return 0;
}

} // namespace

int maxpool2d_forward_cuda(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s) {
    if (check_shape(s)) return -1;
    size_t total = (size_t)s->n * s->c * s->h_out * s->w_out;
    maxpool_forward_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(out, argmax, in, total, s->h_in, s->w_in, s->h_out,
                                                                    s->w_out, s->k, s->stride);
    NN_CUDA_LAUNCHED("maxpool_forward_kernel");
    return 0;
}

int maxpool2d_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *argmax, const nn_pool_shape *s) {
    if (check_shape(s)) return -1;
    size_t total = (size_t)s->n * s->c * s->h_in * s->w_in;
    maxpool_backward_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(din, dout, argmax, total, s->h_in, s->w_in,
                                                                     s->h_out, s->w_out, s->k, s->stride);
    NN_CUDA_LAUNCHED("maxpool_backward_kernel");
    return 0;
}
