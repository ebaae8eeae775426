#include "reshape.h"

#include <stddef.h>

#include "../nn/status.h"

static int reshape_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    return nn_backend_of(y->device)->axpy(dx->data, 1, y->grad->data, y->numel);
}

nn_tensor *nn_reshape(nn_graph *g, nn_tensor *x, int ndim, const int *shape) {
    if (!x) return NULL;
    const nn_backend *be = nn_op_backend(x, "reshape", offsetof(nn_backend, copy));
    if (!be) return NULL;
    char sx[64];
    nn_tensor *y = nn_tensor_new(x->device, ndim, shape);  /* checks ndim and the dimensions */
    if (!y) {
        nn_fail_context("reshape of %s", nn_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (y->numel != x->numel) {
        nn_fail("reshape: %s has %zu elements, the new shape %zu", nn_shape_str(x, sx, sizeof sx), x->numel,
                y->numel);
        goto fail;
    }
    if (be->copy(y->data, x->data, x->numel * sizeof(nn_real))) goto fail;
    if (nn_graph_wants(g, x, NULL, NULL, NULL) &&
        !nn_graph_record(g, "reshape", reshape_backward, y, x, NULL, NULL, NULL))
        goto fail;
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

nn_tensor *nn_flatten(nn_graph *g, nn_tensor *x) {
    if (!x) return NULL;
    int shape[2] = {x->shape[0], (int)(x->numel / (size_t)x->shape[0])};
    return nn_reshape(g, x, 2, shape);
}
