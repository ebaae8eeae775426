#ifndef LAYERS_L1_LOSS_H
#define LAYERS_L1_LOSS_H

#include "../nn/graph.h"

/* Mean absolute error (DEEP3D.md "Training"): pred and target of equal shape
 * -> a 1-element tensor mean |pred - target| (0..255 units for images).
 * Gradient only to pred: sign(pred - target)/n, sign(0) = 0. */
nn_tensor *nn_l1_loss(nn_graph *g, nn_tensor *pred, nn_tensor *target);

int l1_loss_forward_cpu(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n);
int l1_loss_backward_cpu(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                         const nn_real *target, size_t n);

#endif
