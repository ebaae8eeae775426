/* CUDA kernels of inverted dropout (layers/dropout.h; semantics in nn/backend.h).
 * The mask is the CPU's, bit for bit: element i is dropped when
 * nn_hash_uniform(seed, i) < p (nn/backend.h, splitmix64), else scaled by 1/(1-p);
 * the hash below is that function compiled for the device (the host one is a
 * static inline C function nvcc cannot call from a kernel), and the test compares
 * the two masks exactly. */
#include "../nn/cuda_check.h"

namespace {

/* Device copy of nn_hash_uniform (nn/backend.h): splitmix64 (Steele, Lea, Flood 2014). */
__device__ __forceinline__ double hash_uniform(uint64_t seed, uint64_t index) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

__global__ void dropout_forward_kernel(float *out, float *mask, const float *in, size_t n, float p, float scale,
                                       uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float m = hash_uniform(seed, i) < (double)p ? 0.0f : scale;
        mask[i] = m;
        out[i] = in[i] * m;
    }
}

__global__ void dropout_backward_kernel(float *din, const float *dout, const float *mask, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        din[i] += dout[i] * mask[i];
}

} // namespace

int dropout_forward_cuda(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p, uint64_t seed) {
    if (!(p >= 0 && p < 1)) return nn_fail("dropout (cuda): p = %g, must be in [0, 1)", (double)p);
    if (!n) return 0;
    nn_real scale = (nn_real)1 / ((nn_real)1 - p);
    dropout_forward_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(out, mask, in, n, p, scale, seed);
    NN_CUDA_LAUNCHED("dropout_forward_kernel");
    return 0;
}

int dropout_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n) {
    if (!n) return 0;
    dropout_backward_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(din, dout, mask, n);
    NN_CUDA_LAUNCHED("dropout_backward_kernel");
    return 0;
}
