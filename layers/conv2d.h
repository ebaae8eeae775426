/* 2-D convolution, NCHW (torch.nn.functional.conv2d without groups). */
#ifndef LAYERS_CONV2D_H
#define LAYERS_CONV2D_H

#include "../nn/graph.h"

/* out[n,o,y,x] = bias[o] + sum over c, i, j of
 *     weight[o,c,i,j] * in[n, c, y*stride - pad + i*dilation, x*stride - pad + j*dilation]
 * (zero outside the image). x (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out)
 * or NULL -> (N, C_out, H_out, W_out), H_out = (H + 2*pad - dilation*(KH-1) - 1)/stride + 1
 * (floor), W_out likewise. Any kernel size, stride >= 1, padding >= 0, dilation >= 1.
 * Records a node when the graph records and x, weight or bias requires a gradient;
 * backward computes only the gradients of the tensors that require one.
 * CPU: im2col + GEMM (layers/conv2d.c; the weight gradient may put several images in one
 * product, conv2d_im2col_images), or for 3x3 stride-1 dilation-1 convolutions Winograd
 * (layers/conv2d_winograd.c: F(2x2, 3x3) for the forward pass and the input gradient,
 * F(3x3, 2x2) for the weight gradient), as conv2d_algo_cpu chooses per shape and
 * direction. Source: LeCun et al. 1998; the
 * im2col formulation of Chellapilla, Puri & Simard 2006 (Caffe); Lavin & Gray 2016.
 *
 * The environment variable DEEP3D_CONV_ALGO, read once at the first CPU convolution,
 * picks the CPU algorithm (layers/conv2d_winograd.h, nn_conv_algo_set overrides it):
 *   auto      (default, also when unset or empty) Winograd where it is expected to be
 *             faster: 3x3, stride 1, dilation 1, C_in and C_out >= 16, >= 64 tiles
 *             (>= 128 output tiles for the weight gradient)
 *   im2col    im2col + GEMM everywhere
 *   winograd  Winograd for every 3x3 stride-1 dilation-1 convolution (winograd2 and
 *             winograd4 force the F(2x2,3x3) or F(4x4,3x3) tiles: conv2d_winograd.h)
 * Any other value makes every CPU convolution fail with a message naming it.
 * Errors (NULL + nn_fail): input/weight not 4-D, channel mismatch ("conv2d: input
 * (2, 3, 8, 8) has 3 channels, weight (4, 5, 3, 3) expects 5"), bias not (C_out),
 * tensors on different devices, empty output, bad stride/padding/dilation. */
nn_tensor *nn_conv2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                     int stride, int pad, int dilation);

/* max(0, nn_conv2d(...)), the ReLU fused into the convolution's store (CPU: the bias
 * pass of im2col, the output transform of Winograd; CUDA: an in-place ReLU after the
 * convolution), so the pre-activation is never kept: one tensor and one pass over it
 * fewer than nn_relu(g, nn_conv2d(...)), with the same values and gradients (backward
 * masks the output gradient by y > 0 in place, then runs the convolution's backward).
 * Same arguments, shapes and errors as nn_conv2d; its profile name is "conv2d+relu". */
nn_tensor *nn_conv2d_relu(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                          int stride, int pad, int dilation);

/* Fills an nn_conv_shape for input x (N, C_in, H, W) and weight (C_out, C_in, KH, KW);
 * returns 0, or -1 + nn_fail on the shape errors listed for nn_conv2d. */
int nn_conv_shape_make(nn_conv_shape *s, const nn_tensor *x, const nn_tensor *weight,
                       int stride, int pad, int dilation);

/* CPU kernels (nn/backend.h: outputs first, backward ones accumulate). All use one
 * per-thread workspace, grown on demand and kept for reuse (-1 + nn_fail when it cannot
 * be allocated): C_in*KH*KW*H_out*W_out values for im2col (a 1x1 kernel with stride 1
 * and padding 0 needs none), or what layers/conv2d_winograd.h lists for Winograd.
 * conv2d_forward_cpu and conv2d_backward_data_cpu choose the algorithm per shape
 * (conv2d_algo_cpu; -1 + nn_fail on a bad DEEP3D_CONV_ALGO).
 *   conv2d_forward_cpu:        out (N, C_out, H_out, W_out) = conv(in, weight) + bias
 *                              (bias may be NULL), then max(0, .) when s->relu
 *   conv2d_backward_data_cpu:  din (N, C_in, H_in, W_in) += col2im(W^T . dout)
 *   conv2d_backward_weight_cpu: dweight (C_out, C_in, KH, KW) += dout . im2col(in)^T,
 *                              dbias (C_out) += per-channel sums of dout; either may be
 *                              NULL (skipped)
 *   bias_forward_cpu:          out[i,j,:] += bias[j] for out (n, c, hw)
 *   bias_relu_cpu:             the same (bias may be NULL), then with relu
 *                              out = max(0, out), in one pass (the fused ReLU's store)
 *   bias_backward_cpu:         dbias[j] += sum over i and hw of dout[i,j,:] */
int conv2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                       const nn_real *bias, const nn_conv_shape *s);
int conv2d_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                             const nn_conv_shape *s);
int conv2d_backward_weight_cpu(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                               const nn_real *in, const nn_conv_shape *s);
int bias_forward_cpu(nn_real *out, const nn_real *bias, int n, int c, int hw);
int bias_relu_cpu(nn_real *out, const nn_real *bias, int relu, int n, int c, int hw);
int bias_backward_cpu(nn_real *dbias, const nn_real *dout, int n, int c, int hw);

#endif
