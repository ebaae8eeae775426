#include "selection.h"

#include <stddef.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* For shift s over a row of w columns, clamp(x - s, 0, w-1) is 0 for x < lo,
 * x - s for lo <= x < hi, and w-1 for x >= hi. */
static inline void shift_runs(int s, int w, int *lo, int *hi) {
    *lo = clampi(s, 0, w);
    *hi = clampi(w + s, 0, w);
}

int selection_forward_cpu(nn_real *right, const nn_real *prob, const nn_real *left,
                          int n, int c, int h, int w, int d, int dmin) {
    const size_t plane = (size_t)h * w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++) {
            const nn_real *prow = prob + (size_t)i * d * plane + (size_t)y * w;   /* k = 0 */
            for (int ch = 0; ch < c; ch++) {
                const size_t row = ((size_t)i * c + ch) * plane + (size_t)y * w;
                const nn_real *l = left + row;
                nn_real *r = right + row;
                const nn_real first = l[0], last = l[w - 1];
                for (int x = 0; x < w; x++) r[x] = 0;
                for (int k = 0; k < d; k++) {
                    const nn_real *p = prow + (size_t)k * plane;
                    const int s = dmin + k;
                    int lo, hi;
                    shift_runs(s, w, &lo, &hi);
                    for (int x = 0; x < lo; x++) r[x] += p[x] * first;
                    for (int x = lo; x < hi; x++) r[x] += p[x] * l[x - s];
                    for (int x = hi; x < w; x++) r[x] += p[x] * last;
                }
            }
        }
    return 0;
}

int selection_backward_cpu(nn_real *dprob, nn_real *dleft, const nn_real *dright,
                           const nn_real *prob, const nn_real *left,
                           int n, int c, int h, int w, int d, int dmin) {
    const size_t plane = (size_t)h * w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++) {
            const size_t prow = (size_t)i * d * plane + (size_t)y * w;   /* k = 0 */
            for (int k = 0; k < d; k++) {
                const nn_real *p = prob + prow + (size_t)k * plane;
                nn_real *dp = dprob ? dprob + prow + (size_t)k * plane : NULL;
                const int s = dmin + k;
                int lo, hi;
                shift_runs(s, w, &lo, &hi);
                for (int ch = 0; ch < c; ch++) {
                    const size_t row = ((size_t)i * c + ch) * plane + (size_t)y * w;
                    const nn_real *l = left + row, *g = dright + row;
                    /* dprob: the forward's gather with dright in place of right */
                    if (dp) {
                        for (int x = 0; x < lo; x++) dp[x] += g[x] * l[0];
                        for (int x = lo; x < hi; x++) dp[x] += g[x] * l[x - s];
                        for (int x = hi; x < w; x++) dp[x] += g[x] * l[w - 1];
                    }
                    if (!dleft) continue;
                    /* dleft: the scatter; the clamped runs all land on the edge pixels */
                    nn_real *dl = dleft + row;
                    nn_real edge = 0;
                    for (int x = 0; x < lo; x++) edge += g[x] * p[x];
                    dl[0] += edge;
                    for (int x = lo; x < hi; x++) dl[x - s] += g[x] * p[x];
                    edge = 0;
                    for (int x = hi; x < w; x++) edge += g[x] * p[x];
                    dl[w - 1] += edge;
                }
            }
        }
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* in[0] = prob (N, D, H, W), in[1] = left (N, C, H, W); iarg[0] = dmin */
static int selection_backward(nn_node *node) {
    nn_tensor *prob = node->in[0], *left = node->in[1], *right = node->out;
    /* a gradient that is not wanted is passed as NULL: the kernel skips it (in
     * training, the raw left view needs none) */
    nn_tensor *dp = prob->requires_grad ? nn_tensor_grad(prob) : NULL;
    nn_tensor *dl = left->requires_grad ? nn_tensor_grad(left) : NULL;
    if ((prob->requires_grad && !dp) || (left->requires_grad && !dl)) return -1;
    return nn_backend_of(right->device)->selection_backward(
        dp ? dp->data : NULL, dl ? dl->data : NULL, right->grad->data, prob->data, left->data, left->shape[0],
        left->shape[1], left->shape[2], left->shape[3], prob->shape[1], node->iarg[0]);
}

int nn_check_prob_and_view(const char *op, const nn_tensor *prob, const nn_tensor *left) {
    if (prob->ndim == 4 && left->ndim == 4 && prob->shape[0] == left->shape[0] && prob->shape[2] == left->shape[2] &&
        prob->shape[3] == left->shape[3] && prob->device == left->device)
        return 0;
    char sp[64], sl[64];
    return nn_fail("%s: prob %s on %s and left %s on %s do not match (expected (N, D, H, W) and (N, C, H, W) on "
                   "one device)",
                   op, nn_shape_str(prob, sp, sizeof sp), nn_device_name(prob->device),
                   nn_shape_str(left, sl, sizeof sl), nn_device_name(left->device));
}

nn_tensor *nn_selection(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin) {
    if (!prob || !left || nn_check_prob_and_view("selection", prob, left)) return NULL;
    const nn_backend *be = nn_op_backend(left, "selection", offsetof(nn_backend, selection_forward));
    if (!be) return NULL;
    nn_tensor *right = nn_tensor_new_like(left);
    if (!right || be->selection_forward(right->data, prob->data, left->data, left->shape[0], left->shape[1],
                                        left->shape[2], left->shape[3], prob->shape[1], dmin))
        goto fail;
    if (nn_graph_wants(g, prob, left, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, "selection", selection_backward, right, prob, left, NULL, NULL);
        if (!node) goto fail;
        node->iarg[0] = dmin;
    }
    return right;
fail:
    nn_tensor_unref(right);
    return NULL;
}
