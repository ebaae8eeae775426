#ifndef LAYERS_SELECTION_H
#define LAYERS_SELECTION_H

#include "../nn/graph.h"

/* The Deep3D selection layer (DEEP3D.md "Selection layer"; Xie et al. 2016 sec. 3.2,
 * "differentiable DIBR"): prob (N, D, H, W) over D disparities d_k = dmin + k (pixels),
 * left (N, C, H, W) raw 0..255 -> right (N, C, H, W):
 *   right(n,c,y,x) = sum_k prob(n,k,y,x) * left(n,c,y,clamp(x - d_k, 0, W-1)).
 * Gradients for both prob and left. Errors: N/H/W mismatch. */
nn_tensor *nn_selection(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin);

int selection_forward_cpu(nn_real *right, const nn_real *prob, const nn_real *left,
                          int n, int c, int h, int w, int d, int dmin);
int selection_backward_cpu(nn_real *dprob, nn_real *dleft, const nn_real *dright,
                           const nn_real *prob, const nn_real *left,
                           int n, int c, int h, int w, int d, int dmin);

#endif
