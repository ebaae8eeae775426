#ifndef LAYERS_SOFTMAX_H
#define LAYERS_SOFTMAX_H

#include "../nn/graph.h"

/* Softmax over the channel dimension at every pixel (torch.softmax(x, dim=1)):
 * x (N, C, H, W) (or any (N, C, ...)) -> p of the same shape,
 *   p[n,c,y,x] = exp(x[n,c,y,x] - m) / sum_c' exp(x[n,c',y,x] - m),  m = max_c x[n,c,y,x]
 * (the max is subtracted for stability; the result does not depend on it), so the C
 * values at each pixel sum to 1. Backward: dx += p * (dp - sum_c p*dp).
 * Errors: x with fewer than 2 dimensions. */
nn_tensor *nn_softmax_channels(nn_graph *g, nn_tensor *x);

/* CPU kernels over (n, c, hw) NCHW memory: the forward pass above; the backward
 * accumulates din += out * (dout - sum_c out*dout). */
int softmax_forward_cpu(nn_real *out, const nn_real *in, int n, int c, int hw);
/* exp(x) for float x <= 0, vectorisable (the CPU softmax's exponential; Cephes expf):
 * relative error at most 4e-7, and 0 for x < -87.0 (exp(x) < 1.7e-38). Not for x > 0. */
float nn_exp_nonpositive(float x);
int softmax_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw);

#endif
