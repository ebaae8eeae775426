#ifndef LAYERS_BATCHNORM2D_H
#define LAYERS_BATCHNORM2D_H

#include "../nn/graph.h"

/* Batch normalisation (Ioffe & Szegedy 2015), NCHW, per channel: x (N, C, H, W),
 * gamma/beta/running_mean/running_var (C). Training mode (g->training): batch mean and
 * biased variance normalise; running stats updated with `momentum` using the unbiased
 * variance (PyTorch BatchNorm2d, default momentum 0.1, eps 1e-5). Inference mode:
 * running stats, via channel_affine. */
nn_tensor *nn_batchnorm2d(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                          nn_tensor *running_mean, nn_tensor *running_var,
                          nn_real momentum, nn_real eps);

int batchnorm_forward_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                nn_real *running_mean, nn_real *running_var, const nn_real *in,
                                const nn_real *gamma, const nn_real *beta, int n, int c, int hw,
                                nn_real momentum, nn_real eps);
int batchnorm_backward_cpu(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                           const nn_real *in, const nn_real *gamma, const nn_real *save_mean,
                           const nn_real *save_invstd, int n, int c, int hw);

#endif
