#include "l1_loss.h"

#include <math.h>
#include <stddef.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int l1_loss_forward_cpu(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n) {
    double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (n > 65536)
    for (size_t i = 0; i < n; i++) sum += fabs((double)pred[i] - (double)target[i]);
    loss[0] = (nn_real)(sum / (double)n);
    return 0;
}

int l1_loss_backward_cpu(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                         const nn_real *target, size_t n) {
    const nn_real s = (nn_real)((double)dloss[0] / (double)n);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        nn_real d = pred[i] - target[i];
        dpred[i] += d > 0 ? s : d < 0 ? -s : 0;
    }
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* in[0] = pred, in[1] = target */
static int l1_loss_backward(nn_node *node) {
    nn_tensor *pred = node->in[0], *target = node->in[1], *loss = node->out;
    if (!pred->requires_grad) return 0;
    nn_tensor *dpred = nn_tensor_grad(pred);
    if (!dpred) return -1;
    return nn_backend_of(loss->device)->l1_loss_backward(dpred->data, loss->grad->data, pred->data,
                                                         target->data, pred->numel);
}

nn_tensor *nn_l1_loss(nn_graph *g, nn_tensor *pred, nn_tensor *target) {
    if (!pred || !target) return NULL;
    if (!nn_tensor_same_shape(pred, target) || pred->device != target->device) {
        char sp[64], st[64];
        nn_fail("l1_loss: pred %s on %s and target %s on %s differ", nn_shape_str(pred, sp, sizeof sp),
                nn_device_name(pred->device), nn_shape_str(target, st, sizeof st),
                nn_device_name(target->device));
        return NULL;
    }
    const nn_backend *be = nn_op_backend(pred, "l1_loss", offsetof(nn_backend, l1_loss_forward));
    if (!be) return NULL;
    int one = 1;
    nn_tensor *loss = nn_tensor_new(pred->device, 1, &one);
    if (!loss || be->l1_loss_forward(loss->data, pred->data, target->data, pred->numel)) goto fail;
    if (nn_graph_wants(g, pred, NULL, NULL, NULL) &&
        !nn_graph_record(g, "l1_loss", l1_loss_backward, loss, pred, target, NULL, NULL))
        goto fail;
    return loss;
fail:
    nn_tensor_unref(loss);
    return NULL;
}
