/* 2-D transposed convolution (PyTorch ConvTranspose2d, no output_padding, no groups,
 * dilation 1), built only from the backend's convolution kernels.
 *
 * Let C be the convolution that maps (N, C_out, H_out, W_out) to (N, C_in, H, W)
 * with the same kernel, stride and padding: c_in(C) = C_out, c_out(C) = C_in, and
 * its weight (c_out(C), c_in(C), K, K) = (C_in, C_out, K, K) is exactly the transposed
 * convolution's weight. Since H_out = (H-1)*stride - 2*pad + K, C's output height
 * (H_out + 2*pad - K)/stride + 1 is exactly H. The transposed convolution is the
 * adjoint (the transpose of the matrix) of C (Dumoulin & Visin 2016, "A guide to
 * convolution arithmetic", section 4), so
 *   forward          out  = C^T x + bias   = conv2d_backward_data of C, then bias_forward
 *   backward data    dx  += C dout         = conv2d_forward of C (no bias)
 *   backward weight  dW  += conv2d_backward_weight of C with dout = x (C's "output"
 *                           gradient) and in = dout (C's "input")
 *   backward bias    db  += bias_backward(dout)
 */
#include "conv_transpose2d.h"

#include <math.h>
#include <string.h>

#include "../nn/status.h"

/* The convolution C described above, for x (N, C_in, H, W) and weight (C_in, C_out, K, K). */
static int adjoint_shape(nn_conv_shape *s, const nn_tensor *x, const nn_tensor *weight, int stride,
                         int pad) {
    char sx[64], sw[64];
    if (x->ndim != 4 || weight->ndim != 4)
        return nn_fail("conv_transpose2d: input %s and weight %s must both be 4-D (N, C_in, H, W) and "
                       "(C_in, C_out, K, K)",
                       nn_shape_str(x, sx, sizeof sx), nn_shape_str(weight, sw, sizeof sw));
    if (x->shape[1] != weight->shape[0])
        return nn_fail("conv_transpose2d: input %s has %d channels, weight %s expects %d",
                       nn_shape_str(x, sx, sizeof sx), x->shape[1], nn_shape_str(weight, sw, sizeof sw),
                       weight->shape[0]);
    if (stride < 1 || pad < 0)
        return nn_fail("conv_transpose2d: stride %d, padding %d (need stride >= 1, padding >= 0)", stride,
                       pad);
    memset(s, 0, sizeof *s);
    s->n = x->shape[0];
    s->c_out = x->shape[1];
    s->h_out = x->shape[2];
    s->w_out = x->shape[3];
    s->c_in = weight->shape[1];
    s->kh = weight->shape[2];
    s->kw = weight->shape[3];
    s->stride = stride;
    s->pad = pad;
    s->dilation = 1;
    long h = (long)(s->h_out - 1) * stride - 2L * pad + s->kh;
    long w = (long)(s->w_out - 1) * stride - 2L * pad + s->kw;
    if (h < 1 || w < 1 || h > 1L << 30 || w > 1L << 30)
        return nn_fail("conv_transpose2d: input %s, kernel %dx%d, stride %d, padding %d gives an output "
                       "of %ldx%ld",
                       nn_shape_str(x, sx, sizeof sx), s->kh, s->kw, stride, pad, h, w);
    s->h_in = (int)h;
    s->w_in = (int)w;
    return 0;
}

static int conv_transpose2d_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    const nn_backend *be = nn_backend_of(y->device);
    nn_conv_shape s;
    if (!be || adjoint_shape(&s, x, w, node->iarg[0], node->iarg[1])) return -1;
    const nn_real *dy = y->grad->data;
    if (x->requires_grad) {
        if (!x->grad) {  /* a fresh gradient: the convolution may write it directly */
            x->grad = nn_tensor_new_like(x);
            if (!x->grad || be->conv2d_forward(x->grad->data, dy, w->data, NULL, &s)) return -1;
        } else {
            nn_tensor *t = nn_tensor_new_like(x);
            int err = !t || be->conv2d_forward(t->data, dy, w->data, NULL, &s) ||
                      be->axpy(x->grad->data, 1, t->data, t->numel);
            nn_tensor_unref(t);
            if (err) return -1;
        }
    }
    if (w->requires_grad) {
        nn_tensor *dw = nn_tensor_grad(w);
        if (!dw || be->conv2d_backward_weight(dw->data, NULL, x->data, dy, &s)) return -1;
    }
    if (b && b->requires_grad) {
        nn_tensor *db = nn_tensor_grad(b);
        if (!db || be->bias_backward(db->data, dy, s.n, s.c_in, s.h_in * s.w_in)) return -1;
    }
    return 0;
}

nn_tensor *nn_conv_transpose2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                               int stride, int pad) {
    if (!x || !weight) return NULL;
    char sb[64], sw[64];
    nn_conv_shape s;
    if (adjoint_shape(&s, x, weight, stride, pad)) return NULL;
    if (bias && (bias->numel != (size_t)s.c_in || bias->ndim != 1)) {
        nn_fail("conv_transpose2d: bias %s does not match the %d output channels of weight %s",
                nn_shape_str(bias, sb, sizeof sb), s.c_in, nn_shape_str(weight, sw, sizeof sw));
        return NULL;
    }
    if (weight->device != x->device || (bias && bias->device != x->device)) {
        nn_fail("conv_transpose2d: input on %s, weight on %s%s%s", nn_device_name(x->device),
                nn_device_name(weight->device), bias ? ", bias on " : "",
                bias ? nn_device_name(bias->device) : "");
        return NULL;
    }
    const nn_backend *be =
        nn_op_backend(x, "conv_transpose2d", offsetof(nn_backend, conv2d_backward_data));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new4(x->device, s.n, s.c_in, s.h_in, s.w_in);
    if (!y || be->fill(y->data, y->numel, 0) ||
        be->conv2d_backward_data(y->data, x->data, weight->data, &s) ||
        (bias && be->bias_forward(y->data, bias->data, s.n, s.c_in, s.h_in * s.w_in)))
        goto fail;
    if (nn_graph_wants(g, x, weight, bias, NULL)) {
        nn_node *node = nn_graph_record(g, "conv_transpose2d", conv_transpose2d_backward, y, x, weight,
                                        bias, NULL);
        if (!node) goto fail;
        node->iarg[0] = stride;
        node->iarg[1] = pad;
    }
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

void nn_bilinear_kernel(nn_real *weight, int channels, int k) {
    const int f = (k + 1) / 2;  /* ceil(k / 2) */
    const double c = (2.0 * f - 1 - f % 2) / (2.0 * f);
    memset(weight, 0, (size_t)channels * channels * k * k * sizeof *weight);
    for (int i = 0; i < channels; i++) {
        nn_real *w = weight + ((size_t)i * channels + i) * k * k;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                w[a * k + b] = (nn_real)((1 - fabs((double)a / f - c)) * (1 - fabs((double)b / f - c)));
    }
}
