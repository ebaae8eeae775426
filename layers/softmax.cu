/* CUDA kernels of the softmax over channels (layers/softmax.h; semantics in
 * nn/backend.h): at every pixel (n, y, x) of an (N, C, H, W) tensor,
 *   p_k = exp(x_k - max_j x_j) / sum_j exp(x_j - max_j x_j),
 *   din_k += p_k * (dp_k - sum_j p_j dp_j).
 * Own kernels (no cuDNN needed): one thread per pixel walks the C channels, which
 * lie hw apart, so neighbouring threads read neighbouring addresses (coalesced). */
#include "../nn/cuda_check.h"

namespace {

__global__ void softmax_forward_kernel(float *out, const float *in, size_t pixels, int c, int hw) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pixels; i += (size_t)gridDim.x * blockDim.x) {
        size_t base = (i / (size_t)hw) * (size_t)c * hw + i % (size_t)hw;
        float mx = in[base];
        for (int k = 1; k < c; k++) mx = fmaxf(mx, in[base + (size_t)k * hw]);
        float sum = 0.0f;
        for (int k = 0; k < c; k++) {
            float e = expf(in[base + (size_t)k * hw] - mx);
            out[base + (size_t)k * hw] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int k = 0; k < c; k++) out[base + (size_t)k * hw] *= inv;
    }
}

__global__ void softmax_backward_kernel(float *din, const float *dout, const float *out, size_t pixels, int c,
                                        int hw) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pixels; i += (size_t)gridDim.x * blockDim.x) {
        size_t base = (i / (size_t)hw) * (size_t)c * hw + i % (size_t)hw;
        float dot = 0.0f;
        for (int k = 0; k < c; k++) dot += out[base + (size_t)k * hw] * dout[base + (size_t)k * hw];
        for (int k = 0; k < c; k++) {
            size_t at = base + (size_t)k * hw;
            din[at] += out[at] * (dout[at] - dot);
        }
    }
}

} // namespace

int softmax_forward_cuda(nn_real *out, const nn_real *in, int n, int c, int hw) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("softmax (cuda): bad sizes N=%d C=%d HW=%d", n, c, hw);
    size_t pixels = (size_t)n * hw;
    softmax_forward_kernel<<<nn_cuda_grid(pixels), NN_CUDA_BLOCK>>>(out, in, pixels, c, hw);
    NN_CUDA_LAUNCHED("softmax_forward_kernel");
    return 0;
}

int softmax_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("softmax backward (cuda): bad sizes N=%d C=%d HW=%d", n, c, hw);
    size_t pixels = (size_t)n * hw;
    softmax_backward_kernel<<<nn_cuda_grid(pixels), NN_CUDA_BLOCK>>>(din, dout, out, pixels, c, hw);
    NN_CUDA_LAUNCHED("softmax_backward_kernel");
    return 0;
}
