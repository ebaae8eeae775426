#ifndef LAYERS_SELECTION_H
#define LAYERS_SELECTION_H

#include "../nn/graph.h"

/* The Deep3D selection layer (DEEP3D.md "Selection layer"; Xie et al. 2016 sec. 3.2,
 * "differentiable DIBR"): prob (N, D, H, W) over D disparities d_k = dmin + k (pixels),
 * left (N, C, H, W) raw 0..255 -> right (N, C, H, W), same device:
 *   right(n,c,y,x) = sum_k prob(n,k,y,x) * left(n,c,y,clamp(x - d_k, 0, W-1)).
 * All D channels are used (not the released kernel's 1..D-1) and out-of-range columns
 * repeat the edge pixel, exactly as the PyTorch peer's `selection` (replicate padding).
 * Backward, for whichever of prob and left requires a gradient:
 *   dprob(n,k,y,x)  += sum_c dright(n,c,y,x) * left(n,c,y,clamp(x - d_k))
 *   dleft(n,c,y,x') += sum over (k, x) with clamp(x - d_k) = x' of dright(n,c,y,x) * prob(n,k,y,x)
 * Errors: prob or left not 4-D, N/H/W mismatch, devices differ. */
nn_tensor *nn_selection(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin);

/* 0 when prob (N, D, H, W) and a view left (N, C, H, W) fit together as above (both 4-D,
 * same N, H, W, one device); else -1 + nn_fail "<op>: prob ... and left ... do not
 * match". Shared with nn_disparity_smoothness. */
int nn_check_prob_and_view(const char *op, const nn_tensor *prob, const nn_tensor *left);

/* CPU kernels of the formulas above, shapes as above (d = D). OpenMP over the (n, y)
 * rows; each row's x loop is split into the clamped-left, in-range and clamped-right
 * runs so the inner loops are contiguous. The backward is race-free: a row (n, y) owns
 * its dprob rows (n, :, y, :) and dleft rows (n, :, y, :). Both backward outputs are
 * accumulated (+=) and must be non-NULL. */
int selection_forward_cpu(nn_real *right, const nn_real *prob, const nn_real *left,
                          int n, int c, int h, int w, int d, int dmin);
int selection_backward_cpu(nn_real *dprob, nn_real *dleft, const nn_real *dright,
                           const nn_real *prob, const nn_real *left,
                           int n, int c, int h, int w, int d, int dmin);

#endif
