/* Fully connected layer (torch.nn.Linear), row-major:
 *   forward   y (N, OUT)  = x (N, IN) . W^T (IN, OUT) + b       one GEMM (b pre-filled, beta 1)
 *   backward  dx (N, IN) += dy (N, OUT) . W (OUT, IN)            one GEMM
 *             dW (OUT, IN) += dy^T (OUT, N) . x (N, IN)          one GEMM
 *             db[o]      += sum over n of dy[n, o]
 * Products: nn_cblas_gemm (OpenBLAS).
 */
#include "linear.h"

#include <cblas.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int linear_forward_cpu(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b,
                       int n, int in, int out) {
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)n * out > 65536)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) y[(size_t)i * out + o] = b[o];
    }
    nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1, x, in, w, in, b ? 1 : 0, y,
                  out);
    return 0;
}

int linear_backward_cpu(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy,
                        const nn_real *x, const nn_real *w, int n, int in, int out) {
    if (dx)
        nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1, dy, out, w, in, 1, dx, in);
    if (dw)
        nn_cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1, dy, out, x, in, 1, dw, in);
    if (db) {
#pragma omp parallel for schedule(static) if ((size_t)n * out > 65536)
        for (int o = 0; o < out; o++) {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += dy[(size_t)i * out + o];
            db[o] += (nn_real)sum;
        }
    }
    return 0;
}

/* ---- op ------------------------------------------------------------------------ */

static int linear_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    nn_tensor *dx = NULL, *dw = NULL, *db = NULL;
    if (x->requires_grad && !(dx = nn_tensor_grad(x))) return -1;
    if (w->requires_grad && !(dw = nn_tensor_grad(w))) return -1;
    if (b && b->requires_grad && !(db = nn_tensor_grad(b))) return -1;
    return nn_backend_of(y->device)->linear_backward(dx ? dx->data : NULL, dw ? dw->data : NULL,
                                                     db ? db->data : NULL, y->grad->data, x->data,
                                                     w->data, y->shape[0], w->shape[1], w->shape[0]);
}

nn_tensor *nn_linear(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias) {
    if (!x || !weight) return NULL;
    char sx[64], sw[64], sb[64];
    if (weight->ndim != 2 || x->ndim < 1) {
        nn_fail("linear: weight %s must be 2-D (OUT, IN)", nn_shape_str(weight, sw, sizeof sw));
        return NULL;
    }
    const int n = x->shape[0], out = weight->shape[0], in = weight->shape[1];
    if (x->numel != (size_t)n * in) {
        nn_fail("linear: input %s has %zu features per sample, weight %s expects %d",
                nn_shape_str(x, sx, sizeof sx), x->numel / n, nn_shape_str(weight, sw, sizeof sw), in);
        return NULL;
    }
    if (bias && (bias->ndim != 1 || bias->numel != (size_t)out)) {
        nn_fail("linear: bias %s does not match the %d outputs of weight %s",
                nn_shape_str(bias, sb, sizeof sb), out, nn_shape_str(weight, sw, sizeof sw));
        return NULL;
    }
    if (weight->device != x->device || (bias && bias->device != x->device)) {
        nn_fail("linear: input on %s, weight on %s%s%s", nn_device_name(x->device),
                nn_device_name(weight->device), bias ? ", bias on " : "",
                bias ? nn_device_name(bias->device) : "");
        return NULL;
    }
    const nn_backend *be = nn_op_backend(x, "linear", offsetof(nn_backend, linear_forward));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new4(x->device, n, out, 0, 0);
    if (!y || be->linear_forward(y->data, x->data, weight->data, bias ? bias->data : NULL, n, in, out))
        goto fail;
    if (nn_graph_wants(g, x, weight, bias, NULL) &&
        !nn_graph_record(g, "linear", linear_backward, y, x, weight, bias, NULL))
        goto fail;
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}
