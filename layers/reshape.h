#ifndef LAYERS_RESHAPE_H
#define LAYERS_RESHAPE_H

#include "../nn/graph.h"

/* Reshape (and flatten): a copy of x with a new shape of the same element count
 * (row-major order kept). Gradient: the copy back. Errors: element counts differ. */
nn_tensor *nn_reshape(nn_graph *g, nn_tensor *x, int ndim, const int *shape);

/* Flatten to (N, rest). */
nn_tensor *nn_flatten(nn_graph *g, nn_tensor *x);

#endif
