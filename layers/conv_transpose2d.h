/* 2-D transposed convolution, NCHW (torch.nn.ConvTranspose2d without output_padding,
 * groups or dilation), and its bilinear-upsampling initialisation. */
#ifndef LAYERS_CONV_TRANSPOSE2D_H
#define LAYERS_CONV_TRANSPOSE2D_H

#include "../nn/graph.h"

/* out[n, o, y*stride - pad + i, x*stride - pad + j] += weight[c, o, i, j] * x[n, c, y, x]
 * summed over c, y, x, i, j (entries falling outside the output are dropped), plus
 * bias[o]. x (N, C_in, H, W), weight (C_in, C_out, KH, KW), bias (C_out) or NULL
 * -> (N, C_out, (H-1)*stride - 2*pad + KH, (W-1)*stride - 2*pad + KW).
 * It is the adjoint of a convolution and is built only from the backend's conv2d
 * kernels (forward = conv2d_backward_data + bias_forward; see
 * layers/conv_transpose2d.c). Records a node when the graph records and x, weight or
 * bias requires a gradient; backward computes only the gradients required.
 * Source: Dumoulin & Visin 2016; Long, Shelhamer & Darrell 2015 (FCN upsampling).
 * Errors (NULL + nn_fail): input/weight not 4-D, channel mismatch ("conv_transpose2d:
 * input (...) has 3 channels, weight (...) expects 4"), bias not (C_out), tensors on
 * different devices, empty output, stride < 1 or pad < 0. */
nn_tensor *nn_conv_transpose2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                               int stride, int pad);

/* max(0, nn_conv_transpose2d(...)), the ReLU fused into the store (CPU: the sub-pixel
 * path's output pass; otherwise an in-place ReLU after the bias), with the same values
 * and gradients as nn_relu(g, nn_conv_transpose2d(...)) (backward masks the output
 * gradient by y > 0 in place first). Same arguments and errors as nn_conv_transpose2d;
 * profile name "conv_transpose2d+relu". */
nn_tensor *nn_conv_transpose2d_relu(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                                    int stride, int pad);

/* CPU kernel (nn/backend.h conv_transpose2d_forward): for the adjoint shape s, out
 * (N, C_in(s), H_in(s), W_in(s)) = transposed convolution of in (N, C_out(s), H_out(s),
 * W_out(s)) + bias (may be NULL), overwritten. Sub-pixel (phase) decomposition, one
 * product per chunk of images, when the kernel is square, a multiple of the stride and
 * the stride is 2 to 8 (layers/conv_transpose2d.c); otherwise zero fill, conv2d_backward_data
 * (im2col/col2im) and bias; then max(0, .) when s->relu. Errors: -1 + nn_fail when the
 * workspace cannot be had. */
int conv_transpose2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight, const nn_real *bias,
                                 const nn_conv_shape *s);

/* Bilinear-upsampling weights for a (C, C, K, K) transposed convolution (DEEP3D.md
 * "Initialisation", FCN; the peer's bilinear_kernel): with f = ceil(K/2) and
 * c = (2f - 1 - f%2) / (2f), w[i][i][a][b] = (1 - |a/f - c|)(1 - |b/f - c|), and 0 for
 * every cross-channel pair i != j. K = 1 gives the identity; K = 2s with stride s and
 * padding s/2 upsamples by s. weight is a host array of C*C*K*K values, all written. */
void nn_bilinear_kernel(nn_real *weight, int channels, int k);

#endif
