/* Element-wise ops: ReLU, sum of two tensors, per-channel affine (mean subtraction).
 * Shapes: any; a and b of nn_add must have equal shapes. Units follow the inputs. */
#ifndef LAYERS_ELEMENTWISE_H
#define LAYERS_ELEMENTWISE_H

#include "../nn/graph.h"

/* y = max(x, 0). Backward: dx += dy where y > 0 (the kink at 0 takes gradient 0,
 * as PyTorch). Source: Nair & Hinton 2010. */
nn_tensor *nn_relu(nn_graph *g, nn_tensor *x);

/* out = a + b, equal shapes. Errors: shape mismatch. */
nn_tensor *nn_add(nn_graph *g, nn_tensor *a, nn_tensor *b);

/* out = a + scale * b, equal shapes (training: photometric + W * smoothness).
 * Backward: da += dout, db += scale * dout. Errors: shape mismatch. */
nn_tensor *nn_add_scaled(nn_graph *g, nn_tensor *a, nn_tensor *b, double scale);

/* out[n,c,...] = x[n,c,...] - mean[c] for x (N, C, ...); mean is a host array of C
 * values (DEEP3D.md: the network input is the 0..255 left view minus
 * (123.68, 116.78, 103.94)). Gradient passes through unchanged. */
nn_tensor *nn_sub_channel_mean(nn_graph *g, nn_tensor *x, const nn_real *mean);

/* CPU kernels (nn/backend.h documents each). */
int fill_cpu(nn_real *x, size_t n, nn_real value);
int axpy_cpu(nn_real *y, nn_real a, const nn_real *x, size_t n);
int add_cpu(nn_real *out, const nn_real *a, const nn_real *b, size_t n);
int relu_forward_cpu(nn_real *out, const nn_real *in, size_t n);
int relu_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *out, size_t n);
int relu_mask_cpu(nn_real *d, const nn_real *out, size_t n);
int channel_affine_cpu(nn_real *out, const nn_real *in, const nn_real *scale,
                       const nn_real *shift, int n, int c, int hw);
int channel_affine_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *scale,
                                int n, int c, int hw);

#endif
