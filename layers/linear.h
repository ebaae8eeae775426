/* Fully connected layer (torch.nn.Linear). */
#ifndef LAYERS_LINEAR_H
#define LAYERS_LINEAR_H

#include "../nn/graph.h"

/* y = x . W^T + b: x (N, ...) is read as (N, IN) with IN the product of the other
 * dimensions (flatten, row-major), weight (OUT, IN), bias (OUT) or NULL -> y (N, OUT).
 * Records a node when the graph records and x, weight or bias requires a gradient;
 * backward computes only the gradients required. CPU: one GEMM forward, one per
 * gradient backward (OpenBLAS). Errors (NULL + nn_fail): weight not 2-D, feature
 * count mismatch ("linear: input (2, 3, 4) has 12 features per sample, weight (5, 10)
 * expects 10"), bias not (OUT), tensors on different devices. */
nn_tensor *nn_linear(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias);

/* CPU kernels. forward: y (n, out) = x (n, in) . w^T (w is (out, in)) + b (b may be NULL).
 * backward: dx += dy . w, dw += dy^T . x, db += column sums of dy; each of dx, dw, db
 * may be NULL (that gradient is skipped). */
int linear_forward_cpu(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b,
                       int n, int in, int out);
int linear_backward_cpu(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy,
                        const nn_real *x, const nn_real *w, int n, int in, int out);

#endif
