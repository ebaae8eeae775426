/* CUDA kernels of batch normalisation in training mode (layers/batchnorm2d.h;
 * semantics in nn/backend.h), as PyTorch BatchNorm2d (Ioffe & Szegedy 2015):
 * per channel c over its M = N*H*W values,
 *   mean = sum x / M,  var = sum (x - mean)^2 / M (biased, normalises),
 *   invstd = 1 / sqrt(var + eps),  out = (x - mean) * invstd * gamma + beta,
 *   running_mean = (1 - m) running_mean + m mean,
 *   running_var  = (1 - m) running_var  + m var * M / (M - 1) (unbiased);
 * backward with xhat = (x - mean) * invstd:
 *   dbeta += sum dy,  dgamma += sum dy * xhat,
 *   din += gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
 *
 * Own kernels rather than cudnnBatchNormalization*: the table's backward gets the
 * saved inverse std but not eps, and its contract accumulates into din, dgamma and
 * dbeta; own kernels make both exact and deterministic. Sums are taken in double,
 * in two stages of fixed order: blocks (channel, split) reduce contiguous shares,
 * then one thread per channel adds its partials in order (no atomics).
 * Like PyTorch, training needs more than one value per channel (M > 1).
 */
#include "../nn/cuda_check.h"

namespace {

/* partial[(0|1)*c*splits + ch*splits + split] = (sum x, sum x^2) of the share */
__global__ void stats_partial_kernel(double *partial, const float *x, int n, int c, int hw, int splits) {
    int ch = blockIdx.x, split = blockIdx.y;
    long long m = (long long)n * hw;
    long long lo = m * split / splits, hi = m * (split + 1) / splits;
    double s = 0.0, q = 0.0;
    long long j = lo + threadIdx.x, i = j / hw;
    int p = (int)(j % hw);
    for (; j < hi; j += blockDim.x) {   /* item j = (sample i, pixel p), tracked incrementally */
        double v = (double)x[((size_t)i * c + ch) * hw + p];
        s += v;
        q += v * v;
        for (p += blockDim.x; p >= hw; p -= hw) i++;
    }
    s = nn_block_sum(s);
    q = nn_block_sum(q);
    if (threadIdx.x == 0) {
        partial[(size_t)ch * splits + split] = s;
        partial[(size_t)c * splits + (size_t)ch * splits + split] = q;
    }
}

__global__ void stats_finish_kernel(float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                                    const double *partial, int c, int splits, long long m, float momentum, float eps) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s = 0.0, q = 0.0;
    for (int k = 0; k < splits; k++) {
        s += partial[(size_t)ch * splits + k];
        q += partial[(size_t)c * splits + (size_t)ch * splits + k];
    }
    double mean = s / (double)m;
    double var = q / (double)m - mean * mean;
    if (var < 0.0) var = 0.0;
    save_mean[ch] = (float)mean;
    save_invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));
    if (running_mean) running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mean;
    if (running_var)
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)(var * (double)m / (double)(m - 1));
}

__global__ void normalize_kernel(float *out, const float *in, const float *mean, const float *invstd,
                                 const float *gamma, const float *beta, size_t planes, int c, int hw) {
    for (size_t q = blockIdx.y; q < planes; q += gridDim.y) {
        int ch = (int)(q % (size_t)c);
        float mu = mean[ch], is = invstd[ch], g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
        size_t base = q * (size_t)hw;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += gridDim.x * blockDim.x)
            out[base + p] = (in[base + p] - mu) * is * g + b;
    }
}

/* partial = (sum dy, sum dy * xhat) per (channel, split) */
__global__ void grad_partial_kernel(double *partial, const float *dy, const float *x, const float *mean,
                                    const float *invstd, int n, int c, int hw, int splits) {
    int ch = blockIdx.x, split = blockIdx.y;
    long long m = (long long)n * hw;
    long long lo = m * split / splits, hi = m * (split + 1) / splits;
    double mu = mean[ch], is = invstd[ch];
    double s = 0.0, q = 0.0;
    long long j = lo + threadIdx.x, i = j / hw;
    int p = (int)(j % hw);
    for (; j < hi; j += blockDim.x) {
        size_t at = ((size_t)i * c + ch) * hw + p;
        double g = (double)dy[at];
        s += g;
        q += g * ((double)x[at] - mu) * is;
        for (p += blockDim.x; p >= hw; p -= hw) i++;
    }
    s = nn_block_sum(s);
    q = nn_block_sum(q);
    if (threadIdx.x == 0) {
        partial[(size_t)ch * splits + split] = s;
        partial[(size_t)c * splits + (size_t)ch * splits + split] = q;
    }
}

/* sums[ch] = mean(dy), sums[c + ch] = mean(dy * xhat); dgamma, dbeta accumulate */
__global__ void grad_finish_kernel(double *sums, float *dgamma, float *dbeta, const double *partial, int c, int splits,
                                   long long m) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s = 0.0, q = 0.0;
    for (int k = 0; k < splits; k++) {
        s += partial[(size_t)ch * splits + k];
        q += partial[(size_t)c * splits + (size_t)ch * splits + k];
    }
    if (dbeta) dbeta[ch] += (float)s;
    if (dgamma) dgamma[ch] += (float)q;
    sums[ch] = s / (double)m;
    sums[c + ch] = q / (double)m;
}

__global__ void grad_input_kernel(float *din, const float *dy, const float *x, const float *gamma, const float *mean,
                                  const float *invstd, const double *sums, size_t planes, int c, int hw) {
    for (size_t q = blockIdx.y; q < planes; q += gridDim.y) {
        int ch = (int)(q % (size_t)c);
        double is = invstd[ch], mu = mean[ch], k = (gamma ? gamma[ch] : 1.0) * is;
        double mdy = sums[ch], mdyx = sums[c + ch];
        size_t base = q * (size_t)hw;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += gridDim.x * blockDim.x) {
            double xhat = ((double)x[base + p] - mu) * is;
            din[base + p] += (float)(k * ((double)dy[base + p] - mdy - xhat * mdyx));
        }
    }
}

int check(const char *what, int n, int c, int hw) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("%s (cuda): bad sizes N=%d C=%d HW=%d", what, n, c, hw);
    if ((long long)n * hw < 2)
        return nn_fail("%s (cuda): training needs more than one value per channel (N*H*W = %lld), as in PyTorch", what,
                       (long long)n * hw);
    return 0;
}

/* Blocks for one thread per channel. */
unsigned channel_blocks(int c) { return (unsigned)((c + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK); }

} // namespace

int batchnorm_forward_train_cuda(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                                 nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                                 int n, int c, int hw, nn_real momentum, nn_real eps) {
    if (check("batchnorm forward", n, c, hw)) return -1;
    if (!save_mean || !save_invstd) return nn_fail("batchnorm forward (cuda): save_mean and save_invstd are required");
    long long m = (long long)n * hw;
    int splits = nn_cuda_channel_splits(c, m);
    double *partial = (double *)nn_cuda_scratch(2 * (size_t)c * splits * sizeof(double));
    if (!partial) return nn_fail_context("batchnorm forward (cuda)");
    stats_partial_kernel<<<dim3((unsigned)c, (unsigned)splits), NN_CUDA_BLOCK>>>(partial, in, n, c, hw, splits);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
        stats_finish_kernel<<<channel_blocks(c), NN_CUDA_BLOCK>>>(save_mean, save_invstd, running_mean, running_var,
                                                                   partial, c, splits, m, momentum, eps);
        e = cudaGetLastError();
    }
    nn_cuda_scratch_release(partial);
    if (e != cudaSuccess) return nn_cuda_fail_rt(e, "batchnorm statistics kernels launch", __FILE__, __LINE__);
    size_t planes = (size_t)n * c;
    normalize_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(out, in, save_mean, save_invstd, gamma, beta,
                                                                      planes, c, hw);
    NN_CUDA_LAUNCHED("normalize_kernel");
    return 0;
}

int batchnorm_backward_cuda(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout, const nn_real *in,
                            const nn_real *gamma, const nn_real *save_mean, const nn_real *save_invstd, int n, int c,
                            int hw) {
    if (check("batchnorm backward", n, c, hw)) return -1;
    long long m = (long long)n * hw;
    int splits = nn_cuda_channel_splits(c, m);
    /* partials (2*c*splits) then the two per-channel means (2*c) */
    double *partial = (double *)nn_cuda_scratch((2 * (size_t)c * splits + 2 * (size_t)c) * sizeof(double));
    if (!partial) return nn_fail_context("batchnorm backward (cuda)");
    double *sums = partial + 2 * (size_t)c * splits;
    grad_partial_kernel<<<dim3((unsigned)c, (unsigned)splits), NN_CUDA_BLOCK>>>(partial, dout, in, save_mean,
                                                                                save_invstd, n, c, hw, splits);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
        grad_finish_kernel<<<channel_blocks(c), NN_CUDA_BLOCK>>>(sums, dgamma, dbeta, partial, c, splits, m);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess && din) {
        size_t planes = (size_t)n * c;
        grad_input_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(din, dout, in, gamma, save_mean,
                                                                            save_invstd, sums, planes, c, hw);
        e = cudaGetLastError();
    }
    nn_cuda_scratch_release(partial);
    if (e != cudaSuccess) return nn_cuda_fail_rt(e, "batchnorm backward kernels launch", __FILE__, __LINE__);
    return 0;
}
