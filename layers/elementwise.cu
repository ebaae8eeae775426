/* CUDA kernels of the element-wise ops (layers/elementwise.h; semantics in
 * nn/backend.h): fill, axpy, add, ReLU forward/backward/mask, per-channel affine.
 * Grid-stride loops over size_t indices; one thread per element per pass, so each
 * result is computed exactly as the CPU loop computes it (bar fused multiply-add). */
#include "../nn/cuda_check.h"

namespace {

__global__ void fill_kernel(float *x, size_t n, float value) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = value;
}

__global__ void axpy_kernel(float *y, float a, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ void relu_forward_kernel(float *out, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

__global__ void relu_backward_kernel(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (out[i] > 0.0f) din[i] += dout[i];
}

__global__ void relu_mask_kernel(float *d, const float *out, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!(out[i] > 0.0f)) d[i] = 0.0f;
}

/* NCHW as (planes, hw): the channel of plane q is q % c */
__global__ void channel_affine_kernel(float *out, const float *in, const float *scale, const float *shift,
                                      size_t planes, int c, int hw) {
    for (size_t q = blockIdx.y; q < planes; q += gridDim.y) {
        int ch = (int)(q % (size_t)c);
        float s = scale ? scale[ch] : 1.0f, t = shift ? shift[ch] : 0.0f;
        size_t base = q * (size_t)hw;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += gridDim.x * blockDim.x)
            out[base + p] = in[base + p] * s + t;
    }
}

__global__ void channel_affine_backward_kernel(float *din, const float *dout, const float *scale, size_t planes,
                                               int c, int hw) {
    for (size_t q = blockIdx.y; q < planes; q += gridDim.y) {
        float s = scale ? scale[q % (size_t)c] : 1.0f;
        size_t base = q * (size_t)hw;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += gridDim.x * blockDim.x)
            din[base + p] += dout[base + p] * s;
    }
}

} // namespace

int fill_cuda(nn_real *x, size_t n, nn_real value) {
    if (!n) return 0;
    fill_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(x, n, value);
    NN_CUDA_LAUNCHED("fill_kernel");
    return 0;
}

int axpy_cuda(nn_real *y, nn_real a, const nn_real *x, size_t n) {
    if (!n) return 0;
    axpy_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(y, a, x, n);
    NN_CUDA_LAUNCHED("axpy_kernel");
    return 0;
}

int add_cuda(nn_real *out, const nn_real *a, const nn_real *b, size_t n) {
    if (!n) return 0;
    add_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(out, a, b, n);
    NN_CUDA_LAUNCHED("add_kernel");
    return 0;
}

int relu_forward_cuda(nn_real *out, const nn_real *in, size_t n) {
    if (!n) return 0;
    relu_forward_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(out, in, n);
    NN_CUDA_LAUNCHED("relu_forward_kernel");
    return 0;
}

int relu_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *out, size_t n) {
    if (!n) return 0;
    relu_backward_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(din, dout, out, n);
    NN_CUDA_LAUNCHED("relu_backward_kernel");
    return 0;
}

int relu_mask_cuda(nn_real *d, const nn_real *out, size_t n) {
    if (!n) return 0;
    relu_mask_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(d, out, n);
    NN_CUDA_LAUNCHED("relu_mask_kernel");
    return 0;
}

int channel_affine_cuda(nn_real *out, const nn_real *in, const nn_real *scale, const nn_real *shift, int n,
                        int c, int hw) {
    size_t planes = (size_t)n * (size_t)c;
    if (!planes || hw <= 0) return 0;
    channel_affine_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(out, in, scale, shift, planes, c, hw);
    NN_CUDA_LAUNCHED("channel_affine_kernel");
    return 0;
}

int channel_affine_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *scale, int n, int c, int hw) {
    size_t planes = (size_t)n * (size_t)c;
    if (!planes || hw <= 0) return 0;
    channel_affine_backward_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(din, dout, scale, planes, c, hw);
    NN_CUDA_LAUNCHED("channel_affine_backward_kernel");
    return 0;
}
