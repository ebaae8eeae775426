#include "softmax.h"

#include <stddef.h>
#include <tgmath.h> /* exp of nn_real: expf in the float build, exp in the double one */

#include "../nn/status.h"

/* Pixels per tile: the channel loop runs outside, a contiguous run of TILE pixels
 * inside, so every access is unit-stride and the per-pixel sums live on the stack. */
#define TILE 256

/* ---- CPU kernels ------------------------------------------------------------ */

int softmax_forward_cpu(nn_real *out, const nn_real *in, int n, int c, int hw) {
    const int tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int t = 0; t < tiles; t++) {
            const int x0 = t * TILE, len = hw - x0 < TILE ? hw - x0 : TILE;
            const nn_real *src = in + (size_t)i * c * hw + x0;
            nn_real *dst = out + (size_t)i * c * hw + x0;
            nn_real mx[TILE], sum[TILE];
            for (int x = 0; x < len; x++) mx[x] = src[x], sum[x] = 0;
            for (int j = 1; j < c; j++)
                for (int x = 0; x < len; x++) {
                    nn_real v = src[(size_t)j * hw + x];
                    mx[x] = v > mx[x] ? v : mx[x];
                }
            for (int j = 0; j < c; j++)
                for (int x = 0; x < len; x++) {
                    nn_real e = exp(src[(size_t)j * hw + x] - mx[x]);
                    dst[(size_t)j * hw + x] = e;
                    sum[x] += e;
                }
            for (int x = 0; x < len; x++) sum[x] = 1 / sum[x];
            for (int j = 0; j < c; j++)
                for (int x = 0; x < len; x++) dst[(size_t)j * hw + x] *= sum[x];
        }
    return 0;
}

int softmax_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw) {
    const int tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int t = 0; t < tiles; t++) {
            const int x0 = t * TILE, len = hw - x0 < TILE ? hw - x0 : TILE;
            const size_t base = (size_t)i * c * hw + x0;
            nn_real dot[TILE];
            for (int x = 0; x < len; x++) dot[x] = 0;
            for (int j = 0; j < c; j++)
                for (int x = 0; x < len; x++) dot[x] += out[base + (size_t)j * hw + x] * dout[base + (size_t)j * hw + x];
            for (int j = 0; j < c; j++)
                for (int x = 0; x < len; x++) {
                    size_t k = base + (size_t)j * hw + x;
                    din[k] += out[k] * (dout[k] - dot[x]);
                }
        }
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* iarg: n, c, hw; the output p is node->out */
static int softmax_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    return nn_backend_of(y->device)->softmax_backward(dx->data, y->grad->data, y->data, node->iarg[0],
                                                      node->iarg[1], node->iarg[2]);
}

nn_tensor *nn_softmax_channels(nn_graph *g, nn_tensor *x) {
    if (!x) return NULL;
    if (x->ndim < 2) {
        char s[64];
        nn_fail("softmax: input %s needs a channel dimension (N, C, H, W)", nn_shape_str(x, s, sizeof s));
        return NULL;
    }
    const nn_backend *be = nn_op_backend(x, "softmax", offsetof(nn_backend, softmax_forward));
    if (!be) return NULL;
    int n = x->shape[0], c = x->shape[1];
    int hw = (int)(x->numel / ((size_t)n * c));
    nn_tensor *y = nn_tensor_new_like(x);
    if (!y || be->softmax_forward(y->data, x->data, n, c, hw)) goto fail;
    if (nn_graph_wants(g, x, NULL, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, "softmax", softmax_backward, y, x, NULL, NULL, NULL);
        if (!node) goto fail;
        node->iarg[0] = n, node->iarg[1] = c, node->iarg[2] = hw;
    }
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}
