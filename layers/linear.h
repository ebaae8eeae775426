#ifndef LAYERS_LINEAR_H
#define LAYERS_LINEAR_H

#include "../nn/graph.h"

/* Fully connected layer (torch.nn.Linear): x (N, ...) is read as (N, IN) with IN the
 * product of the other dimensions (flatten), weight (OUT, IN), bias (OUT) or NULL
 * -> (N, OUT). CPU: one sgemm. */
nn_tensor *nn_linear(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias);

int linear_forward_cpu(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b,
                       int n, int in, int out);
int linear_backward_cpu(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy,
                        const nn_real *x, const nn_real *w, int n, int in, int out);

#endif
