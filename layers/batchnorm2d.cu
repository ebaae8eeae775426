/* CUDA batch normalisation in training mode (layers/batchnorm2d.h; semantics in
 * nn/backend.h) on cuDNN, as PyTorch BatchNorm2d (Ioffe & Szegedy 2015): per channel c
 * over its M = N*H*W values,
 *   mean = sum x / M,  var = sum (x - mean)^2 / M (biased, normalises),
 *   invstd = 1 / sqrt(var + eps),  out = (x - mean) * invstd * gamma + beta,
 *   running_mean = (1 - m) running_mean + m mean,
 *   running_var  = (1 - m) running_var  + m var * M / (M - 1) (unbiased);
 * backward with xhat = (x - mean) * invstd:
 *   dbeta += sum dy,  dgamma += sum dy * xhat,
 *   din += gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
 *
 * cuDNN calls, mode CUDNN_BATCHNORM_SPATIAL (one statistic per channel over N, H, W),
 * x described as packed float32 NCHW (N, C, H*W, 1), the per-channel tensors by
 * cudnnDeriveBNTensorDescriptor (1, C, 1, 1):
 *   forward   cudnnBatchNormalizationForwardTraining, alpha 1, beta 0,
 *             exponentialAverageFactor = momentum (cuDNN: running = new * factor +
 *             running * (1 - factor)), resultRunningMean / resultRunningVariance = the
 *             running stats (cuDNN's running variance is the unbiased one, as PyTorch's,
 *             which hands its momentum to the same call), resultSaveMean /
 *             resultSaveInvVariance = save_mean / save_invstd. Despite its name the
 *             latter holds 1 / sqrt(var + eps), the inverse standard deviation
 *             (onnxruntime PR #8172 measured it; cuDNN calls these buffers a cache for
 *             its own backward, and only this backend's backward reads them).
 *   backward  cudnnBatchNormalizationBackward with the saved mean and inverse std and
 *             the forward's eps (cuDNN asks for the same in both passes),
 *             alphaDataDiff 1, betaDataDiff 1 (din accumulates), alphaParamDiff 1,
 *             betaParamDiff 1 (dgamma and dbeta accumulate).
 * cuDNN always writes all three gradients: one not wanted (NULL) is written to scratch
 * memory of the caching allocator instead and dropped (din: beta 0, nothing read;
 * dgamma/dbeta: zeroed scratch, or beta 0 when both are unwanted).
 * eps must be >= CUDNN_BN_MIN_EPSILON (0.0 in cuDNN 9); like PyTorch, training needs more
 * than one value per channel (M > 1). Descriptors are made per call and destroyed on
 * every path, as in conv2d.cu.
 */
#include "../nn/cuda_check.h"

namespace {

int check(const char *what, int n, int c, int hw, nn_real eps) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("%s (cuda): bad sizes N=%d C=%d HW=%d", what, n, c, hw);
    if ((long long)n * hw < 2)
        return nn_fail("%s (cuda): training needs more than one value per channel (N*H*W = %lld), as in PyTorch", what,
                       (long long)n * hw);
    if (!((double)eps >= CUDNN_BN_MIN_EPSILON))
        return nn_fail("%s (cuda): eps %g is below cuDNN's minimum CUDNN_BN_MIN_EPSILON = %g", what, (double)eps,
                       (double)CUDNN_BN_MIN_EPSILON);
    return 0;
}

/* t[0]: x, dx and dy (N, C, HW, 1); t[1]: the per-channel tensors, derived. */
int desc_create(cudnnTensorDescriptor_t t[2], int n, int c, int hw) {
    if (nn_cudnn_tensor(&t[0], n, c, hw, 1)) return -1;
    NN_CUDNN(cudnnCreateTensorDescriptor(&t[1]));
    NN_CUDNN(cudnnDeriveBNTensorDescriptor(t[1], t[0], CUDNN_BATCHNORM_SPATIAL));
    return 0;
}

int forward_body(cudnnTensorDescriptor_t t[2], float *out, float *save_mean, float *save_invstd, float *running_mean,
                 float *running_var, const float *in, const float *gamma, const float *beta, nn_real momentum,
                 nn_real eps) {
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(cudnnBatchNormalizationForwardTraining(nn_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, t[0], in,
                                                    t[0], out, t[1], gamma, beta, (double)momentum, running_mean,
                                                    running_var, (double)eps, save_mean, save_invstd));
    return 0;
}

int backward_body(cudnnTensorDescriptor_t t[2], float *din, float *dgamma, float *dbeta, const float *dout,
                  const float *in, const float *gamma, const float *save_mean, const float *save_invstd, int n, int c,
                  int hw, nn_real eps) {
    float beta_data = 1.0f, beta_param = 1.0f;
    NnScratch scratch;
    if (!din) { /* not wanted: cuDNN writes it to scratch (beta 0: the scratch is not read) */
        if (!(scratch.p[0] = nn_cuda_scratch((size_t)n * c * hw * sizeof(float))))
            return nn_fail_context("batchnorm backward (cuda): scratch for the unwanted input gradient");
        din = (float *)scratch.p[0];
        beta_data = 0.0f;
    }
    if (!dgamma || !dbeta) { /* one or both not wanted: scratch for it */
        size_t bytes = 2 * (size_t)c * sizeof(float);
        if (!(scratch.p[1] = nn_cuda_scratch(bytes)))
            return nn_fail_context("batchnorm backward (cuda): scratch for the unwanted parameter gradients");
        float *p = (float *)scratch.p[1];
        if (!dgamma && !dbeta) beta_param = 0.0f;   /* neither is read */
        else NN_CUDA(cudaMemsetAsync(p, 0, bytes, 0));   /* the one wanted accumulates: the other reads zeros */
        if (!dgamma) dgamma = p;
        if (!dbeta) dbeta = p + c;
    }
    const float one = 1.0f;
    NN_CUDNN(cudnnBatchNormalizationBackward(nn_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &beta_data, &one,
                                             &beta_param, t[0], in, t[0], dout, t[0], din, t[1], gamma, dgamma, dbeta,
                                             (double)eps, save_mean, save_invstd));
    return 0;
}

} // namespace

int batchnorm_forward_train_cuda(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                                 nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                                 int n, int c, int hw, nn_real momentum, nn_real eps) {
    if (check("batchnorm forward", n, c, hw, eps)) return -1;
    if (!save_mean || !save_invstd || !gamma || !beta)
        return nn_fail("batchnorm forward (cuda): save_mean, save_invstd, gamma and beta are required");
    if (!running_mean != !running_var)
        return nn_fail("batchnorm forward (cuda): running_mean and running_var must both be given or both be NULL");
    cudnnTensorDescriptor_t t[2] = {nullptr, nullptr};
    int rc = desc_create(t, n, c, hw);
    if (!rc) rc = forward_body(t, out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta, momentum, eps);
    return nn_cudnn_tensors_destroy(rc, t, 2);
}

int batchnorm_backward_cuda(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout, const nn_real *in,
                            const nn_real *gamma, const nn_real *save_mean, const nn_real *save_invstd, int n, int c,
                            int hw, nn_real eps) {
    if (check("batchnorm backward", n, c, hw, eps)) return -1;
    if (!din && !dgamma && !dbeta) return 0;
    if (!gamma || !save_mean || !save_invstd)
        return nn_fail("batchnorm backward (cuda): gamma, save_mean and save_invstd are required");
    cudnnTensorDescriptor_t t[2] = {nullptr, nullptr};
    int rc = desc_create(t, n, c, hw);
    if (!rc) rc = backward_body(t, din, dgamma, dbeta, dout, in, gamma, save_mean, save_invstd, n, c, hw, eps);
    return nn_cudnn_tensors_destroy(rc, t, 2);
}

/* ---- the data-parallel path (layers/batchnorm2d.h, nn/backend.h batchnorm_sum ...) ----
 * Our own kernels, not cuDNN: the statistics of a batch split among processes are summed
 * over them (NCCL, train/dist_nccl.cu) between the passes. Per-channel sums: one block
 * per channel, double accumulators, nn_block_sum (fixed order, no atomics); element-wise
 * passes: the plane grid (nn_cuda_plane_grid), the channel's coefficients recomputed per
 * thread from the double sums. Same formulas as the CPU kernels in batchnorm2d.c. */

namespace {

__global__ void bn_sum_kernel(double *sum, const float *in, int n, int c, int hw) {
    const int j = blockIdx.x;
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *p = in + ((size_t)i * c + j) * hw;
        for (int k = threadIdx.x; k < hw; k += blockDim.x) s += p[k];
    }
    s = nn_block_sum(s);
    if (threadIdx.x == 0) sum[j] = s;
}

__global__ void bn_sqdev_kernel(double *sqdev, const float *in, const double *sum, double m, int n, int c, int hw) {
    const int j = blockIdx.x;
    const double mean = sum[j] / m;
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *p = in + ((size_t)i * c + j) * hw;
        for (int k = threadIdx.x; k < hw; k += blockDim.x) {
            double e = p[k] - mean;
            s += e * e;
        }
    }
    s = nn_block_sum(s);
    if (threadIdx.x == 0) sqdev[j] = s;
}

/* one thread per channel: the saved statistics and the running ones */
__global__ void bn_stats_kernel(float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                                const double *stats, double m, int c, float momentum, float eps) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    const double mean = stats[j] / m, ss = stats[c + j];
    const double invstd = 1.0 / sqrt(ss / m + (double)eps);
    save_mean[j] = (float)mean;
    save_invstd[j] = (float)invstd;
    running_mean[j] = (float)((1 - (double)momentum) * running_mean[j] + (double)momentum * mean);
    running_var[j] = (float)((1 - (double)momentum) * running_var[j] + (double)momentum * (m > 1 ? ss / (m - 1) : ss / m));
}

__global__ void bn_apply_kernel(float *out, const float *in, const float *gamma, const float *beta,
                                const float *save_mean, const float *save_invstd, int c, int hw, size_t planes) {
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const int j = (int)(plane % c);
        const float a = gamma[j] * save_invstd[j], mu = save_mean[j], b = beta[j];
        const size_t base = plane * hw;
        for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < hw; k += gridDim.x * blockDim.x)
            out[base + k] = (in[base + k] - mu) * a + b;
    }
}

__global__ void bn_backward_sums_kernel(double *sums, float *dgamma, float *dbeta, const float *dout, const float *in,
                                        const float *save_mean, const float *save_invstd, int n, int c, int hw) {
    const int j = blockIdx.x;
    const float mu = save_mean[j], is = save_invstd[j];
    double sdy = 0, sdyx = 0;
    for (int i = 0; i < n; i++) {
        const size_t base = ((size_t)i * c + j) * hw;
        for (int k = threadIdx.x; k < hw; k += blockDim.x) {
            sdy += dout[base + k];
            sdyx += (double)dout[base + k] * ((in[base + k] - mu) * is);
        }
    }
    sdy = nn_block_sum(sdy);
    sdyx = nn_block_sum(sdyx);
    if (threadIdx.x == 0) {
        sums[j] = sdy, sums[c + j] = sdyx;
        if (dbeta) dbeta[j] += (float)sdy;
        if (dgamma) dgamma[j] += (float)sdyx;
    }
}

__global__ void bn_backward_apply_kernel(float *din, const float *dout, const float *in, const float *gamma,
                                         const float *save_mean, const float *save_invstd, const double *sums,
                                         double m, int c, int hw, size_t planes) {
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const int j = (int)(plane % c);
        const float mu = save_mean[j], is = save_invstd[j];
        const double k0 = (double)gamma[j] * is;
        const float a = (float)k0, b = (float)(-k0 * sums[c + j] / m), c0 = (float)(-k0 * sums[j] / m);
        const size_t base = plane * hw;
        for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < hw; k += gridDim.x * blockDim.x)
            din[base + k] += a * dout[base + k] + b * ((in[base + k] - mu) * is) + c0;
    }
}

int check_split(const char *what, int n, int c, int hw) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("%s (cuda): bad sizes N=%d C=%d HW=%d", what, n, c, hw);
    return 0;
}

} // namespace

int batchnorm_sum_cuda(double *sum, const nn_real *in, int n, int c, int hw) {
    if (check_split("batchnorm sum", n, c, hw)) return -1;
    bn_sum_kernel<<<c, NN_CUDA_BLOCK>>>(sum, in, n, c, hw);
    NN_CUDA_LAUNCHED("bn_sum_kernel");
    return 0;
}

int batchnorm_sqdev_cuda(double *sqdev, const nn_real *in, const double *sum, double m, int n, int c, int hw) {
    if (check_split("batchnorm sqdev", n, c, hw)) return -1;
    bn_sqdev_kernel<<<c, NN_CUDA_BLOCK>>>(sqdev, in, sum, m, n, c, hw);
    NN_CUDA_LAUNCHED("bn_sqdev_kernel");
    return 0;
}

int batchnorm_apply_train_cuda(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                               nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                               const double *stats, double m, int n, int c, int hw, nn_real momentum, nn_real eps) {
    if (check_split("batchnorm apply", n, c, hw)) return -1;
    bn_stats_kernel<<<(c + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK, NN_CUDA_BLOCK>>>(
        save_mean, save_invstd, running_mean, running_var, stats, m, c, momentum, eps);
    NN_CUDA_LAUNCHED("bn_stats_kernel");
    const size_t planes = (size_t)n * c;
    bn_apply_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(out, in, gamma, beta, save_mean, save_invstd, c,
                                                                       hw, planes);
    NN_CUDA_LAUNCHED("bn_apply_kernel");
    return 0;
}

int batchnorm_backward_sums_cuda(double *sums, nn_real *dgamma, nn_real *dbeta, const nn_real *dout, const nn_real *in,
                                 const nn_real *save_mean, const nn_real *save_invstd, int n, int c, int hw) {
    if (check_split("batchnorm backward sums", n, c, hw)) return -1;
    bn_backward_sums_kernel<<<c, NN_CUDA_BLOCK>>>(sums, dgamma, dbeta, dout, in, save_mean, save_invstd, n, c, hw);
    NN_CUDA_LAUNCHED("bn_backward_sums_kernel");
    return 0;
}

int batchnorm_backward_apply_cuda(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *gamma,
                                  const nn_real *save_mean, const nn_real *save_invstd, const double *sums, double m,
                                  int n, int c, int hw) {
    if (check_split("batchnorm backward apply", n, c, hw)) return -1;
    const size_t planes = (size_t)n * c;
    bn_backward_apply_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(din, dout, in, gamma, save_mean,
                                                                                save_invstd, sums, m, c, hw, planes);
    NN_CUDA_LAUNCHED("bn_backward_apply_kernel");
    return 0;
}
