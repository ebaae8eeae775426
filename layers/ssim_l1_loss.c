#include "ssim_l1_loss.h"

#include <stddef.h>
#include <stdlib.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int ssim_l1_loss_forward_cpu(nn_real *loss, const nn_real *pred, const nn_real *target, int n, int c, int h,
                             int w, nn_real alpha) {
    double ws, wl, sum = 0;
    ssim_l1_weights(n, c, h, w, alpha, &ws, &wl);
    const int rows = n * c * h;
    const size_t plane = (size_t)h * w;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (int r = 0; r < rows; r++) {
        const size_t off = (size_t)(r / h) * plane;
        for (int x = 0; x < w; x++) sum += ssim_l1_term(pred + off, target + off, r % h, x, h, w, ws, wl);
    }
    loss[0] = (nn_real)sum;
    return 0;
}

int ssim_l1_loss_backward_cpu(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                              const nn_real *target, int n, int c, int h, int w, nn_real alpha) {
    double ws, wl;
    ssim_l1_weights(n, c, h, w, alpha, &ws, &wl);
    const int planes = n * c;
    const size_t plane = (size_t)h * w, windows = (size_t)(h - 2) * (w - 2);
    nn_real *k = malloc(3 * windows * (size_t)planes * sizeof *k);
    if (!k) return nn_fail("ssim_l1_loss: out of host memory for %zu window coefficients", 3 * windows * planes);
    const double dws = (double)dloss[0] * ws, dwl = (double)dloss[0] * wl;
#pragma omp parallel for collapse(2) schedule(static)
    for (int q = 0; q < planes; q++)
        for (int y = 0; y < h - 2; y++)
            for (int x = 0; x < w - 2; x++)
                ssim_window_grad(k + 3 * (q * windows + (size_t)y * (w - 2) + x), pred + q * plane,
                                 target + q * plane, y, x, w, dws);
#pragma omp parallel for collapse(2) schedule(static)
    for (int q = 0; q < planes; q++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                dpred[q * plane + (size_t)y * w + x] += (nn_real)ssim_l1_pixel_grad(
                    k + 3 * q * windows, pred + q * plane, target + q * plane, y, x, h, w, dwl);
    free(k);
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* in[0] = pred, in[1] = target; farg[0] = alpha */
static int ssim_l1_loss_backward(nn_node *node) {
    nn_tensor *pred = node->in[0], *target = node->in[1], *loss = node->out;
    if (!pred->requires_grad) return 0;
    nn_tensor *dpred = nn_tensor_grad(pred);
    if (!dpred) return -1;
    return nn_backend_of(loss->device)
        ->ssim_l1_loss_backward(dpred->data, loss->grad->data, pred->data, target->data, pred->shape[0],
                                pred->shape[1], pred->shape[2], pred->shape[3], (nn_real)node->farg[0]);
}

nn_tensor *nn_ssim_l1_loss(nn_graph *g, nn_tensor *pred, nn_tensor *target, double alpha) {
    if (!pred || !target) return NULL;
    if (!nn_tensor_same_shape(pred, target) || pred->device != target->device || pred->ndim != 4 ||
        pred->shape[2] < 3 || pred->shape[3] < 3) {
        char sp[64], st[64];
        nn_fail("ssim_l1_loss: pred %s on %s and target %s on %s (expected equal (N, C, H, W) with H, W >= 3 "
                "on one device)",
                nn_shape_str(pred, sp, sizeof sp), nn_device_name(pred->device), nn_shape_str(target, st, sizeof st),
                nn_device_name(target->device));
        return NULL;
    }
    if (!(alpha >= 0 && alpha <= 1)) {
        nn_fail("ssim_l1_loss: alpha %g is outside [0, 1]", alpha);
        return NULL;
    }
    const nn_backend *be = nn_op_backend(pred, "ssim_l1_loss", offsetof(nn_backend, ssim_l1_loss_forward));
    if (!be) return NULL;
    int one = 1;
    nn_tensor *loss = nn_tensor_new(pred->device, 1, &one);
    if (!loss || be->ssim_l1_loss_forward(loss->data, pred->data, target->data, pred->shape[0], pred->shape[1],
                                          pred->shape[2], pred->shape[3], (nn_real)alpha))
        goto fail;
    if (nn_graph_wants(g, pred, NULL, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, "ssim_l1_loss", ssim_l1_loss_backward, loss, pred, target, NULL, NULL);
        if (!node) goto fail;
        node->farg[0] = alpha;
    }
    return loss;
fail:
    nn_tensor_unref(loss);
    return NULL;
}
