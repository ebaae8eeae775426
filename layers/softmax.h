#ifndef LAYERS_SOFTMAX_H
#define LAYERS_SOFTMAX_H

#include "../nn/graph.h"

/* Softmax over the channel dimension at every pixel: x (N, C, H, W) -> same shape,
 * p[n,:,y,x] sums to 1 (max-subtracted for stability). Backward:
 * dx = p * (dp - sum_c p*dp). */
nn_tensor *nn_softmax_channels(nn_graph *g, nn_tensor *x);

int softmax_forward_cpu(nn_real *out, const nn_real *in, int n, int c, int hw);
int softmax_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw);

#endif
