#include "dropout.h"

#include <stddef.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int dropout_forward_cpu(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p,
                        uint64_t seed) {
    const double pd = (double)p;
    const nn_real scale = (nn_real)(1.0 / (1.0 - pd));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        nn_real m = nn_hash_uniform(seed, i) < pd ? 0 : scale;
        mask[i] = m;
        out[i] = in[i] * m;
    }
    return 0;
}

int dropout_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* aux[0] = mask */
static int dropout_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    return nn_backend_of(y->device)->dropout_backward(dx->data, y->grad->data, node->aux[0]->data, y->numel);
}

nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, nn_real p) {
    if (!x) return NULL;
    if (!(p >= 0 && p < 1)) {
        nn_fail("dropout: probability %g is outside [0, 1)", (double)p);
        return NULL;
    }
    if (p == 0 || !g || !g->training) return nn_tensor_ref(x);
    const nn_backend *be = nn_op_backend(x, "dropout", offsetof(nn_backend, dropout_forward));
    if (!be) return NULL;
    if (g->sample_offset < 0) {
        nn_fail("dropout: sample offset %ld is negative", g->sample_offset);
        return NULL;
    }
    uint64_t seed = g->dropout_seed;
    g->dropout_seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    /* the elements of this part of the batch draw their global indices (dropout.h) */
    const uint64_t per_sample = x->numel / (size_t)(x->shape[0] > 0 ? x->shape[0] : 1);
    seed += 0x9E3779B97F4A7C15ull * ((uint64_t)g->sample_offset * per_sample);
    nn_tensor *y = nn_tensor_new_like(x), *mask = nn_tensor_new_like(x);
    if (!y || !mask || be->dropout_forward(y->data, mask->data, x->data, x->numel, p, seed)) goto fail;
    if (nn_graph_wants(g, x, NULL, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, "dropout", dropout_backward, y, x, NULL, NULL, NULL);
        if (!node) goto fail;
        node->aux[0] = mask;
        return y;
    }
    nn_tensor_unref(mask);
    return y;
fail:
    nn_tensor_unref(mask);
    nn_tensor_unref(y);
    return NULL;
}
