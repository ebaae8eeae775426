#include "elementwise.h"

#include <stddef.h>
#include <stdlib.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int fill_cpu(nn_real *x, size_t n, nn_real value) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = value;
    return 0;
}

int axpy_cpu(nn_real *y, nn_real a, const nn_real *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
    return 0;
}

int add_cpu(nn_real *out, const nn_real *a, const nn_real *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return 0;
}

int relu_forward_cpu(nn_real *out, const nn_real *in, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0;
    return 0;
}

int relu_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0) din[i] += dout[i];
    return 0;
}

int relu_mask_cpu(nn_real *d, const nn_real *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] = out[i] > 0 ? d[i] : 0;
    return 0;
}

int channel_affine_cpu(nn_real *out, const nn_real *in, const nn_real *scale,
                       const nn_real *shift, int n, int c, int hw) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            size_t base = ((size_t)i * c + j) * hw;
            nn_real s = scale ? scale[j] : 1, t = shift ? shift[j] : 0;
            for (int k = 0; k < hw; k++) out[base + k] = in[base + k] * s + t;
        }
    return 0;
}

int channel_affine_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *scale,
                                int n, int c, int hw) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            size_t base = ((size_t)i * c + j) * hw;
            nn_real s = scale ? scale[j] : 1;
            for (int k = 0; k < hw; k++) din[base + k] += dout[base + k] * s;
        }
    return 0;
}

/* ---- ops ---------------------------------------------------------------------- */

static int relu_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    return nn_backend_of(y->device)->relu_backward(dx->data, y->grad->data, y->data, y->numel);
}

nn_tensor *nn_relu(nn_graph *g, nn_tensor *x) {
    if (!x) return NULL;
    const nn_backend *be = nn_op_backend(x, "relu", offsetof(nn_backend, relu_forward));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new_like(x);
    if (!y || be->relu_forward(y->data, x->data, x->numel)) goto fail;
    if (nn_graph_wants(g, x, NULL, NULL, NULL) &&
        !nn_graph_record(g, "relu", relu_backward, y, x, NULL, NULL, NULL))
        goto fail;
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

/* in[0] = a, in[1] = b; farg[0] = the scale of b (1 for nn_add) */
static int add_backward(nn_node *node) {
    const nn_backend *be = nn_backend_of(node->out->device);
    nn_tensor *dy = node->out->grad;
    for (int i = 0; i < 2; i++) {
        nn_tensor *in = node->in[i];
        if (!in->requires_grad) continue;
        nn_tensor *din = nn_tensor_grad(in);
        if (!din || be->axpy(din->data, i ? (nn_real)node->farg[0] : 1, dy->data, dy->numel)) return -1;
    }
    return 0;
}

/* out = a + scale * b: with the add kernel when scale is exactly 1 (nn_add), else a copy
 * of a and an axpy */
static nn_tensor *add_scaled(nn_graph *g, nn_tensor *a, nn_tensor *b, double scale, const char *op) {
    if (!a || !b) return NULL;
    if (!nn_tensor_same_shape(a, b) || a->device != b->device) {
        char sa[64], sb[64];
        nn_fail("%s: shapes %s and %s (devices %s, %s) differ", op, nn_shape_str(a, sa, sizeof sa),
                nn_shape_str(b, sb, sizeof sb), nn_device_name(a->device), nn_device_name(b->device));
        return NULL;
    }
    const nn_backend *be = nn_op_backend(a, op, offsetof(nn_backend, add));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new_like(a);
    if (!y) return NULL;
    if (scale == 1 ? be->add(y->data, a->data, b->data, a->numel)
                   : be->copy(y->data, a->data, a->numel * sizeof(nn_real)) ||
                         be->axpy(y->data, (nn_real)scale, b->data, a->numel))
        goto fail;
    if (nn_graph_wants(g, a, b, NULL, NULL)) {
        nn_node *node = nn_graph_record(g, op, add_backward, y, a, b, NULL, NULL);
        if (!node) goto fail;
        node->farg[0] = scale;
    }
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

nn_tensor *nn_add(nn_graph *g, nn_tensor *a, nn_tensor *b) { return add_scaled(g, a, b, 1, "add"); }

nn_tensor *nn_add_scaled(nn_graph *g, nn_tensor *a, nn_tensor *b, double scale) {
    return add_scaled(g, a, b, scale, "add_scaled");
}

static int sub_mean_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    return nn_backend_of(y->device)->axpy(dx->data, 1, y->grad->data, y->numel);
}

nn_tensor *nn_sub_channel_mean(nn_graph *g, nn_tensor *x, const nn_real *mean) {
    if (!x) return NULL;
    if (x->ndim < 2) {
        nn_fail("sub_channel_mean: input needs a channel dimension (N, C, ...)");
        return NULL;
    }
    const nn_backend *be = nn_op_backend(x, "sub_channel_mean", offsetof(nn_backend, channel_affine));
    if (!be) return NULL;
    int n = x->shape[0], c = x->shape[1];
    int hw = (int)(x->numel / ((size_t)n * c));
    nn_tensor *shift = nn_tensor_new(x->device, 1, &c);
    nn_tensor *y = nn_tensor_new_like(x);
    nn_real *neg = malloc((size_t)c * sizeof *neg);
    int err = !shift || !y || !neg;
    if (!err) {
        for (int i = 0; i < c; i++) neg[i] = -mean[i];
        err = nn_tensor_upload(shift, neg) || be->channel_affine(y->data, x->data, NULL, shift->data, n, c, hw);
    }
    free(neg);
    nn_tensor_unref(shift);
    if (!err && nn_graph_wants(g, x, NULL, NULL, NULL) &&
        !nn_graph_record(g, "sub_channel_mean", sub_mean_backward, y, x, NULL, NULL, NULL))
        err = 1;
    if (err) {
        if (!neg) nn_fail("sub_channel_mean: out of host memory");
        nn_tensor_unref(y);
        return NULL;
    }
    return y;
}
