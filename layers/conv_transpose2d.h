#ifndef LAYERS_CONV_TRANSPOSE2D_H
#define LAYERS_CONV_TRANSPOSE2D_H

#include "../nn/graph.h"

/* 2-D transposed convolution, NCHW (PyTorch ConvTranspose2d): x (N, C_in, H, W),
 * weight (C_in, C_out, K, K), bias (C_out) or NULL -> (N, C_out, (H-1)*stride - 2*pad + K, ...).
 * It is the adjoint of a convolution: forward = conv2d_backward_data. */
nn_tensor *nn_conv_transpose2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                               int stride, int pad);

/* Bilinear-upsampling weights for a (C, C, K, K) transposed convolution (DEEP3D.md
 * "Initialisation", FCN): w[i][i] = (1-|a/f-c|)(1-|b/f-c|), f = ceil(K/2),
 * c = (2f-1-f%2)/(2f); zero across channels. weight is a host array of C*C*K*K. */
void nn_bilinear_kernel(nn_real *weight, int channels, int k);

#endif
