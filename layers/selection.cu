/* CUDA kernels of the Deep3D selection layer (layers/selection.h; DEEP3D.md
 * "Selection layer"; Xie et al. 2016 sec. 3.2): prob (N, D, H, W), left and right
 * (N, C, H, W), shifts d_k = dmin + k, columns clamped to [0, W-1]:
 *   right(n,c,y,x) = sum_k prob(n,k,y,x) * left(n,c,y,clamp(x - d_k))
 *   dprob(n,k,y,x) += sum_c dright(n,c,y,x) * left(n,c,y,clamp(x - d_k))
 *   dleft(n,c,y,x') += sum over (k, x) with clamp(x - d_k) = x' of dright(n,c,y,x) * prob(n,k,y,x)
 * Own kernels, one thread per output element, threads consecutive along x (all
 * reads of a warp fall in one row: coalesced). dleft is a gather, not a scatter:
 * for an interior column x' the only x is x' + d_k; the edge columns 0 and W-1
 * collect the whole clamped range, so no atomics and a deterministic result.
 * Unlike the released MXNet kernel, all D channels are used (DEEP3D.md). */
#include "../nn/cuda_check.h"

namespace {

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

__global__ void selection_forward_kernel(float *right, const float *prob, const float *left, size_t total, int c,
                                         int h, int w, int d, int dmin) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int x = (int)(i % (size_t)w);
        int y = (int)((i / (size_t)w) % (size_t)h);
        size_t nc = i / ((size_t)w * h);   /* n*c + ch */
        size_t n = nc / (size_t)c;
        const float *row = left + (nc * h + y) * (size_t)w;
        const float *p = prob + (n * d * h + y) * (size_t)w + x;
        float acc = 0.0f;
        for (int k = 0; k < d; k++) acc += p[(size_t)k * h * w] * row[clampi(x - (dmin + k), 0, w - 1)];
        right[i] = acc;
    }
}

__global__ void selection_dprob_kernel(float *dprob, const float *dright, const float *left, size_t total, int c,
                                       int h, int w, int d, int dmin) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int x = (int)(i % (size_t)w);
        int y = (int)((i / (size_t)w) % (size_t)h);
        int k = (int)((i / ((size_t)w * h)) % (size_t)d);
        size_t n = i / ((size_t)w * h * d);
        int xs = clampi(x - (dmin + k), 0, w - 1);
        float acc = 0.0f;
        for (int ch = 0; ch < c; ch++) {
            size_t row = ((n * c + ch) * h + y) * (size_t)w;
            acc += dright[row + x] * left[row + xs];
        }
        dprob[i] += acc;
    }
}

__global__ void selection_dleft_kernel(float *dleft, const float *dright, const float *prob, size_t total, int c,
                                       int h, int w, int d, int dmin) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int xp = (int)(i % (size_t)w);
        int y = (int)((i / (size_t)w) % (size_t)h);
        size_t nc = i / ((size_t)w * h);
        size_t n = nc / (size_t)c;
        const float *g = dright + (nc * h + y) * (size_t)w;
        float acc = 0.0f;
        for (int k = 0; k < d; k++) {
            int dk = dmin + k;
            /* the x in [0, W-1] with clamp(x - dk, 0, W-1) == xp */
            int lo = xp == 0 ? 0 : max(0, xp + dk);
            int hi = xp == w - 1 ? w - 1 : min(w - 1, xp + dk);
            const float *p = prob + ((n * d + k) * h + y) * (size_t)w;
            for (int x = lo; x <= hi; x++) acc += g[x] * p[x];
        }
        dleft[i] += acc;
    }
}

int check(const char *what, int n, int c, int h, int w, int d) {
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || d <= 0)
        return nn_fail("%s (cuda): bad sizes N=%d C=%d H=%d W=%d D=%d", what, n, c, h, w, d);
    return 0;
}

} // namespace

int selection_forward_cuda(nn_real *right, const nn_real *prob, const nn_real *left, int n, int c, int h, int w, int d,
                           int dmin) {
    if (check("selection", n, c, h, w, d)) return -1;
    size_t total = (size_t)n * c * h * w;
    selection_forward_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(right, prob, left, total, c, h, w, d, dmin);
    NN_CUDA_LAUNCHED("selection_forward_kernel");
    return 0;
}

int selection_backward_cuda(nn_real *dprob, nn_real *dleft, const nn_real *dright, const nn_real *prob,
                            const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    if (check("selection backward", n, c, h, w, d)) return -1;
    if (dprob) {
        size_t total = (size_t)n * d * h * w;
        selection_dprob_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(dprob, dright, left, total, c, h, w, d, dmin);
        NN_CUDA_LAUNCHED("selection_dprob_kernel");
    }
    if (dleft) {
        size_t total = (size_t)n * c * h * w;
        selection_dleft_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(dleft, dright, prob, total, c, h, w, d, dmin);
        NN_CUDA_LAUNCHED("selection_dleft_kernel");
    }
    return 0;
}
