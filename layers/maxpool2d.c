/* 2-D max pooling (NCHW, k x k window, stride, no padding, floor mode), as
 * torch.nn.MaxPool2d(k, stride) and the VGG16 2x2/2 pooling (Simonyan & Zisserman 2015).
 *   out[n,c,oy,ox] = max over 0 <= i, j < k of in[n,c,oy*stride + i, ox*stride + j]
 *   argmax[n,c,oy,ox] = (oy*stride + i*) * W + (ox*stride + j*), the first maximum in
 *                       row-major window order, as an nn_real (exact below 2^24 in float)
 *   din[n,c,argmax] += dout[n,c,oy,ox]
 * The CPU kernels save and read the argmax; the CUDA backend (layers/maxpool2d.cu, cuDNN)
 * finds the maxima again from the input and output, so the op keeps an argmax only for a
 * backend whose maxpool2d_uses_argmax is set (nn/backend.h), and always keeps the input
 * and output (the node references both).
 */
#include "maxpool2d.h"

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

/* The 2x2 stride-2 window (VGG's pooling) over one output row: the same comparisons
 * in the same order as the general loop (first maximum, strict >), written as selects
 * so that GCC vectorises them. r0, r1: the two input rows; a: argmax row or NULL. */
static void pool2x2_row(nn_real *restrict o, nn_real *restrict a, const nn_real *restrict r0,
                        const nn_real *restrict r1, int w_out, size_t base0, size_t base1) {
    if (!a) {
        for (int ox = 0; ox < w_out; ox++) {
            nn_real m = r0[2 * ox];
            m = r0[2 * ox + 1] > m ? r0[2 * ox + 1] : m;
            m = r1[2 * ox] > m ? r1[2 * ox] : m;
            o[ox] = r1[2 * ox + 1] > m ? r1[2 * ox + 1] : m;
        }
        return;
    }
    const nn_real i0 = (nn_real)base0, i1 = (nn_real)base1; /* exact below 2^24 */
    for (int ox = 0; ox < w_out; ox++) {
        const nn_real x = (nn_real)(2 * ox);
        nn_real m = r0[2 * ox], best = i0 + x;
        best = r0[2 * ox + 1] > m ? i0 + x + 1 : best;
        m = r0[2 * ox + 1] > m ? r0[2 * ox + 1] : m;
        best = r1[2 * ox] > m ? i1 + x : best;
        m = r1[2 * ox] > m ? r1[2 * ox] : m;
        best = r1[2 * ox + 1] > m ? i1 + x + 1 : best;
        o[ox] = r1[2 * ox + 1] > m ? r1[2 * ox + 1] : m;
        a[ox] = best;
    }
}

int maxpool2d_forward_cpu(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s) {
    const int planes = s->n * s->c;
    const size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    if (s->k == 2 && s->stride == 2) {
#pragma omp parallel for schedule(static)
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < s->h_out; oy++) {
                const size_t b0 = (size_t)2 * oy * s->w_in, b1 = b0 + s->w_in, at = p * out_sz + (size_t)oy * s->w_out;
                pool2x2_row(out + at, argmax ? argmax + at : NULL, in + p * in_sz + b0, in + p * in_sz + b1,
                            s->w_out, b0, b1);
            }
        return 0;
    }
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const nn_real *im = in + p * in_sz;
        nn_real *o = out + p * out_sz, *a = argmax ? argmax + p * out_sz : NULL;
        for (int oy = 0; oy < s->h_out; oy++)
            for (int ox = 0; ox < s->w_out; ox++) {
                size_t best = (size_t)oy * s->stride * s->w_in + (size_t)ox * s->stride;
                nn_real m = im[best];
                for (int i = 0; i < s->k; i++) {
                    const size_t row = (size_t)(oy * s->stride + i) * s->w_in;
                    for (int j = 0; j < s->k; j++) {
                        const size_t idx = row + (size_t)ox * s->stride + j;
                        if (im[idx] > m) {
                            m = im[idx];
                            best = idx;
                        }
                    }
                }
                o[(size_t)oy * s->w_out + ox] = m;
                if (a) a[(size_t)oy * s->w_out + ox] = (nn_real)best;
            }
    }
    return 0;
}

int maxpool2d_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *out,
                           const nn_real *argmax, const nn_pool_shape *s) {
    (void)in, (void)out; /* the argmax says where the maxima were */
    if (!argmax) return nn_fail("maxpool2d backward (cpu): no argmax (the forward was given none)");
    const int planes = s->n * s->c;
    const size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {  /* overlapping windows stay inside one thread */
        nn_real *d = din + p * in_sz;
        const nn_real *g = dout + p * out_sz, *a = argmax + p * out_sz;
        for (size_t i = 0; i < out_sz; i++) d[(size_t)a[i]] += g[i];
    }
    return 0;
}

/* ---- op ------------------------------------------------------------------------ */

static int pool_shape(nn_pool_shape *s, const nn_tensor *x, int k, int stride) {
    char sx[64];
    if (x->ndim != 4)
        return nn_fail("maxpool2d: input %s must be 4-D (N, C, H, W)", nn_shape_str(x, sx, sizeof sx));
    if (k < 1 || stride < 1)
        return nn_fail("maxpool2d: window %d, stride %d (both must be >= 1)", k, stride);
    if (x->shape[2] < k || x->shape[3] < k)
        return nn_fail("maxpool2d: input %s is smaller than the %dx%d window",
                       nn_shape_str(x, sx, sizeof sx), k, k);
    if (sizeof(nn_real) == 4 && (double)x->shape[2] * x->shape[3] > 16777216.0)
        return nn_fail("maxpool2d: input %s has planes over 2^24 pixels (argmax is stored as float)",
                       nn_shape_str(x, sx, sizeof sx));
    s->n = x->shape[0];
    s->c = x->shape[1];
    s->h_in = x->shape[2];
    s->w_in = x->shape[3];
    s->k = k;
    s->stride = stride;
    s->h_out = (s->h_in - k) / stride + 1;
    s->w_out = (s->w_in - k) / stride + 1;
    return 0;
}

/* The node references x (in[0]) and y (out), which the backward passes to the kernel
 * with the argmax (aux[0], NULL on a backend that does not use one). */
static int maxpool2d_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *y = node->out;
    if (!x->requires_grad) return 0;
    nn_pool_shape s;
    if (pool_shape(&s, x, node->iarg[0], node->iarg[1])) return -1;
    nn_tensor *dx = nn_tensor_grad(x);
    if (!dx) return -1;
    const nn_real *argmax = node->aux[0] ? node->aux[0]->data : NULL;
    return nn_backend_of(y->device)->maxpool2d_backward(dx->data, y->grad->data, x->data, y->data, argmax, &s);
}

nn_tensor *nn_maxpool2d(nn_graph *g, nn_tensor *x, int k, int stride) {
    if (!x) return NULL;
    nn_pool_shape s;
    if (pool_shape(&s, x, k, stride)) return NULL;
    const nn_backend *be = nn_op_backend(x, "maxpool2d", offsetof(nn_backend, maxpool2d_forward));
    if (!be) return NULL;
    const int wants = nn_graph_wants(g, x, NULL, NULL, NULL);
    nn_tensor *y = nn_tensor_new4(x->device, s.n, s.c, s.h_out, s.w_out), *argmax = NULL;
    /* an argmax only where a backward will read it */
    if (y && wants && be->maxpool2d_uses_argmax && !(argmax = nn_tensor_new4(x->device, s.n, s.c, s.h_out, s.w_out)))
        goto fail;
    if (!y || be->maxpool2d_forward(y->data, argmax ? argmax->data : NULL, x->data, &s)) goto fail;
    if (wants) {
        nn_node *node = nn_graph_record(g, "maxpool2d", maxpool2d_backward, y, x, NULL, NULL, NULL);
        if (!node) goto fail;
        node->aux[0] = argmax;  /* the node owns it now (NULL when the backend needs none) */
        node->iarg[0] = k;
        node->iarg[1] = stride;
        return y;
    }
    return y;
fail:
    nn_tensor_unref(argmax);
    nn_tensor_unref(y);
    return NULL;
}
