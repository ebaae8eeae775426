#ifndef LAYERS_RESHAPE_H
#define LAYERS_RESHAPE_H

#include "../nn/graph.h"

/* Reshape (torch.reshape on a contiguous tensor): a copy of x with a new shape of
 * ndim (1..5) positive dimensions and the same element count; the row-major (NCHW)
 * element order is kept. Gradient: dx += dy, element by element (the backend's axpy).
 * Errors: element counts differ, a dimension not positive, ndim out of range. */
nn_tensor *nn_reshape(nn_graph *g, nn_tensor *x, int ndim, const int *shape);

/* Flatten (torch.flatten(x, 1)): x (N, ...) -> (N, numel/N), a copy as nn_reshape. */
nn_tensor *nn_flatten(nn_graph *g, nn_tensor *x);

#endif
