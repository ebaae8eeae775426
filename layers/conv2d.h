#ifndef LAYERS_CONV2D_H
#define LAYERS_CONV2D_H

#include "../nn/graph.h"

/* 2-D convolution, NCHW: x (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out)
 * or NULL -> (N, C_out, H_out, W_out), H_out = (H + 2*pad - dilation*(KH-1) - 1)/stride + 1.
 * CPU: im2col + sgemm (OpenBLAS). Errors: shape mismatch, empty output. */
nn_tensor *nn_conv2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                     int stride, int pad, int dilation);

/* Fills an nn_conv_shape for input x and weight (C_out, C_in, KH, KW); -1 + nn_fail on mismatch. */
int nn_conv_shape_make(nn_conv_shape *s, const nn_tensor *x, const nn_tensor *weight,
                       int stride, int pad, int dilation);

int conv2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                       const nn_real *bias, const nn_conv_shape *s);
int conv2d_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                             const nn_conv_shape *s);
int conv2d_backward_weight_cpu(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                               const nn_real *in, const nn_conv_shape *s);
int bias_forward_cpu(nn_real *out, const nn_real *bias, int n, int c, int hw);
int bias_backward_cpu(nn_real *dbias, const nn_real *dout, int n, int c, int hw);

#endif
