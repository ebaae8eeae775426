#ifndef LAYERS_L1_LOSS_H
#define LAYERS_L1_LOSS_H

#include "../nn/graph.h"

/* Mean absolute error (DEEP3D.md "Training"; torch.nn.functional.l1_loss, reduction
 * "mean"): pred and target of equal shape and device -> a 1-element tensor (shape (1))
 *   loss = (1/n) sum_i |pred_i - target_i|   (0..255 units for images),
 * summed in double. Gradient only to pred (target is treated as data even when it
 * requires a gradient): dpred += dloss * sign(pred - target) / n, sign(0) = 0 (as
 * PyTorch). Errors: shapes or devices differ. */
nn_tensor *nn_l1_loss(nn_graph *g, nn_tensor *pred, nn_tensor *target);

/* CPU kernels over n elements: loss[0] = mean |pred - target| (double accumulator);
 * dpred += dloss[0] * sign(pred - target) / n. */
int l1_loss_forward_cpu(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n);
int l1_loss_backward_cpu(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                         const nn_real *target, size_t n);

#endif
