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
