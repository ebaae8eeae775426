/* 2-D max pooling, NCHW (torch.nn.MaxPool2d(k, stride), no padding, floor mode). */
#ifndef LAYERS_MAXPOOL2D_H
#define LAYERS_MAXPOOL2D_H

#include "../nn/graph.h"

/* out[n,c,y,x] = max over 0 <= i, j < k of x[n, c, y*stride + i, x*stride + j]:
 * (N, C, H, W) -> (N, C, (H-k)/stride+1, (W-k)/stride+1). Ties go to the first maximum
 * in row-major window order; the gradient flows only to it (a kink: the function is
 * not differentiable at ties; on CUDA cuDNN picks which maximum of a tie gets it).
 * Records a node (keeping x, the output and, on the CPU, the argmax) when the graph
 * records and x requires a gradient. Source: VGG16's 2x2/2 pooling (Simonyan &
 * Zisserman 2015). Errors (NULL + nn_fail): x not 4-D, k or stride < 1, an input
 * smaller than the window, planes over 2^24 pixels in the float build. */
nn_tensor *nn_maxpool2d(nn_graph *g, nn_tensor *x, int k, int stride);

/* CPU kernels (nn/backend.h; maxpool2d_uses_argmax = 1). forward: out and, when argmax
 * is not NULL, argmax (N, C, H_out, W_out), the flat index y*W_in + x inside the input
 * plane, as nn_real. backward: din[plane][argmax] += dout (planes in parallel, so
 * overlapping windows are summed safely); in and out are not read (may be NULL), argmax
 * is required. */
int maxpool2d_forward_cpu(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s);
int maxpool2d_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *out,
                           const nn_real *argmax, const nn_pool_shape *s);

#endif
