#include "disparity_smoothness.h"

#include <stddef.h>
#include <stdlib.h>

#include "../nn/status.h"
#include "selection.h"

/* ---- CPU kernels ------------------------------------------------------------ */

/* A malloc'd (n, h, w) map of E in double, after `extra` more maps of that size
 * (scratch for the caller); NULL + nn_fail when out of memory. */
static double *expected_map(const nn_real *prob, int n, int h, int w, int d, int dmin, int extra) {
    const size_t plane = (size_t)h * w, count = (size_t)n * plane;
    double *e = malloc((size_t)(1 + extra) * count * sizeof *e);
    if (!e) {
        nn_fail("disparity_smoothness: out of host memory for %zu values", (size_t)(1 + extra) * count);
        return NULL;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++)
        e[i] = smoothness_expected(prob + (i / plane * d) * plane + i % plane, plane, d, dmin);
    return e;
}

int disparity_smoothness_forward_cpu(nn_real *loss, const nn_real *prob, const nn_real *left, int n, int c,
                                     int h, int w, int d, int dmin) {
    double *e = expected_map(prob, n, h, w, d, dmin, 0);
    if (!e) return -1;
    double ax, ay, sum = 0;
    smoothness_weights(n, h, w, &ax, &ay);
    const size_t plane = (size_t)h * w;
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : sum)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                sum += smoothness_term(e + i * plane, left + (size_t)i * c * plane, c, h, w, y, x, ax, ay);
    free(e);
    loss[0] = (nn_real)sum;
    return 0;
}

int disparity_smoothness_backward_cpu(nn_real *dprob, const nn_real *dloss, const nn_real *prob,
                                      const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    double *e = expected_map(prob, n, h, w, d, dmin, 1);
    if (!e) return -1;
    const size_t plane = (size_t)h * w;
    double *ge = e + (size_t)n * plane; /* dloss * d loss / d E */
    double ax, ay;
    smoothness_weights(n, h, w, &ax, &ay);
    ax *= dloss[0], ay *= dloss[0];
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                ge[i * plane + (size_t)y * w + x] =
                    smoothness_grad(e + i * plane, left + (size_t)i * c * plane, c, h, w, y, x, ax, ay);
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) {
            nn_real *dp = dprob + ((size_t)i * d + k) * plane;
            const double *g = ge + i * plane;
            for (size_t j = 0; j < plane; j++) dp[j] += (nn_real)((dmin + k) * g[j]);
        }
    free(e);
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* in[0] = prob (N, D, H, W), in[1] = left (N, C, H, W); iarg[0] = dmin */
static int disparity_smoothness_backward(nn_node *node) {
    nn_tensor *prob = node->in[0], *left = node->in[1], *loss = node->out;
    if (!prob->requires_grad) return 0;
    nn_tensor *dprob = nn_tensor_grad(prob);
    if (!dprob) return -1;
    return nn_backend_of(loss->device)
        ->disparity_smoothness_backward(dprob->data, loss->grad->data, prob->data, left->data, left->shape[0],
                                        left->shape[1], left->shape[2], left->shape[3], prob->shape[1],
                                        node->iarg[0]);
}

nn_tensor *nn_disparity_smoothness(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin) {
    if (!prob || !left || nn_check_prob_and_view("disparity_smoothness", prob, left)) return NULL;
    const nn_backend *be =
        nn_op_backend(prob, "disparity_smoothness", offsetof(nn_backend, disparity_smoothness_forward));
    if (!be) return NULL;
    int one = 1;
    nn_tensor *loss = nn_tensor_new(prob->device, 1, &one);
    if (!loss || be->disparity_smoothness_forward(loss->data, prob->data, left->data, left->shape[0],
                                                  left->shape[1], left->shape[2], left->shape[3], prob->shape[1],
                                                  dmin))
        goto fail;
    if (nn_graph_wants(g, prob, NULL, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, "disparity_smoothness", disparity_smoothness_backward, loss, prob, left,
                                        NULL, NULL);
        if (!node) goto fail;
        node->iarg[0] = dmin;
    }
    return loss;
fail:
    nn_tensor_unref(loss);
    return NULL;
}
