#ifndef LAYERS_MAXPOOL2D_H
#define LAYERS_MAXPOOL2D_H

#include "../nn/graph.h"

/* Max pooling, NCHW: window k x k, stride s, no padding, floor mode:
 * (N, C, H, W) -> (N, C, (H-k)/s+1, (W-k)/s+1). Ties go to the first maximum in
 * row-major order; the gradient flows only to it. */
nn_tensor *nn_maxpool2d(nn_graph *g, nn_tensor *x, int k, int stride);

int maxpool2d_forward_cpu(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s);
int maxpool2d_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *argmax,
                           const nn_pool_shape *s);

#endif
