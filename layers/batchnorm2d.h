#ifndef LAYERS_BATCHNORM2D_H
#define LAYERS_BATCHNORM2D_H

#include "../nn/graph.h"

/* Batch normalisation (Ioffe & Szegedy 2015, algorithm 1), NCHW, per channel:
 * x (N, C, H, W) (any (N, C, ...) works: the trailing dimensions form the plane),
 * gamma/beta/running_mean/running_var (C), all on x's device -> y of x's shape.
 *   y = (x - mu) / sqrt(var + eps) * gamma + beta
 * Training mode (g != NULL and g->training): mu and the biased variance var are the
 * batch statistics over (N, H, W); running_mean/running_var are updated in place,
 *   running = (1 - momentum) * running + momentum * batch_stat,
 * with the UNBIASED variance (var * M / (M - 1), M = N*H*W) for running_var: exactly
 * torch.nn.BatchNorm2d (default momentum 0.1, eps 1e-5). This happens whether or not
 * the graph records. Inference mode: mu = running_mean, var = running_var, applied as
 * y = x * scale + shift through the backend's channel_affine kernel (scale and shift
 * computed on the host from the C-element tensors).
 * Backward (recorded when the graph records and x, gamma or beta requires a gradient):
 * training mode, the standard batch-statistics formula (see batchnorm_backward_cpu);
 * inference mode, dx = dy * gamma / sqrt(running_var + eps), dgamma = sum dy * xhat,
 * dbeta = sum dy. Gradients go only to the tensors that require them.
 * Data parallelism (synchronised batch normalisation, as torch.nn.SyncBatchNorm): when
 * g->collective is set with size K > 1 (nn/graph.h), x is one of K equal parts of the
 * batch, held by K processes that all run the same graph. Training mode then uses the
 * statistics of the whole batch, M = K*N*H*W values per channel: the sum of x is
 * combined over the processes (collective->sum_f64), then the sum of squared deviations
 * from the common mean (two passes, as the one-process kernel), so mean, variance, the
 * output and the running statistics are those of one process holding the whole batch
 * (up to rounding) and the same on every process. Backward: sum dy and sum dy * xhat
 * are combined the same way and dx uses them with M; dgamma and dbeta get this part's
 * own sums, to be averaged over the processes with the other gradients. Each process's
 * loss being the mean over its part, dx is K times the whole-batch loss's gradient, and
 * so are all the gradients this part contributes: averaging the K processes' parameter
 * gradients gives the whole batch's exactly (train/dist.h). Uses the backend's
 * batchnorm_sum ... batchnorm_backward_apply kernels (nn/backend.h), double buffers of
 * 2C values from its allocator.
 * Errors: a parameter tensor missing or not of C elements, devices differ, x with fewer
 * than 2 dimensions, training with one value per channel (M = 1, as PyTorch), the
 * collective's failure (its message). */
nn_tensor *nn_batchnorm2d(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                          nn_tensor *running_mean, nn_tensor *running_var,
                          nn_real momentum, nn_real eps);

/* CPU kernel of the training forward pass: in/out (n, c, hw); gamma, beta (c);
 * writes save_mean[c] and save_invstd[c] = 1/sqrt(biased var + eps) (sums in double,
 * two passes) and updates running_mean/running_var (c) as described above. */
int batchnorm_forward_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                nn_real *running_mean, nn_real *running_var, const nn_real *in,
                                const nn_real *gamma, const nn_real *beta, int n, int c, int hw,
                                nn_real momentum, nn_real eps);

/* CPU kernel of the backward pass with batch statistics (Ioffe & Szegedy 2015, sec. 3;
 * the same formula as PyTorch's batch_norm_backward), M = n*hw, xhat = (x - mean)*invstd:
 *   dbeta[c]  += sum dy
 *   dgamma[c] += sum dy * xhat
 *   din       += gamma * invstd / M * (M * dy - sum dy - xhat * sum dy * xhat)
 * All three outputs are accumulated (+=); a NULL one is skipped. eps is the forward's
 * (the table passes it for cuDNN); this kernel reads save_invstd instead. */
int batchnorm_backward_cpu(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                           const nn_real *in, const nn_real *gamma, const nn_real *save_mean,
                           const nn_real *save_invstd, int n, int c, int hw, nn_real eps);

/* CPU kernels of the data-parallel path (nn/backend.h, batchnorm_sum ...
 * batchnorm_backward_apply): in/out/dout/din (n, c, hw) NCHW, double sums per channel. */
int batchnorm_sum_cpu(double *sum, const nn_real *in, int n, int c, int hw);
int batchnorm_sqdev_cpu(double *sqdev, const nn_real *in, const double *sum, double m, int n, int c, int hw);
int batchnorm_apply_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                              nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                              const double *stats, double m, int n, int c, int hw, nn_real momentum, nn_real eps);
int batchnorm_backward_sums_cpu(double *sums, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                                const nn_real *in, const nn_real *save_mean, const nn_real *save_invstd, int n,
                                int c, int hw);
int batchnorm_backward_apply_cpu(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *gamma,
                                 const nn_real *save_mean, const nn_real *save_invstd, const double *sums,
                                 double m, int n, int c, int hw);

#endif
