#include "softmax.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h> /* exp of nn_real: exp in the float64 gradient-check build */

#include "../nn/status.h"

/* exp(x) for float x <= 0 (the softmax's x - max), written with arithmetic, integer
 * selects and bit operations only, so that GCC vectorises the softmax's loop over
 * pixels (libm's expf is a scalar call; its vector variants need -ffast-math, and
 * fmaxf/floorf/float selects block vectorisation without it). Cephes expf (S. Moshier,
 * cephes/single/expf.c): x = n ln2 + r with n the nearest integer to x / ln2 (for
 * x <= 0, truncating x / ln2 - 0.5 rounds), |r| <= ln2/2, ln2 split in a high part
 * exact in float and a low part; exp(r) by Cephes' polynomial; 2^n built in the
 * exponent bits. Where n < -125 (x < -87.0, exp < 1.7e-38) the result is 0.
 * Relative error at most 4e-7 against libm over [-86, 0] (tests/test_softmax.c). */
float nn_exp_nonpositive(float x) {
    int32_t n = (int32_t)(x * 1.44269504088896341f - 0.5f);
    const int32_t keep = n >= -125;
    n = keep ? n : -125;
    const float nf = (float)n;
    const float r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return (p * r * r + r + 1.0f) * scale * (float)keep;
}

#ifdef NN_REAL_DOUBLE
#define SOFTMAX_EXP(x) exp(x) /* the gradient checks want libm's accuracy */
#else
#define SOFTMAX_EXP(x) nn_exp_nonpositive(x)
#endif

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
            for (int j = 0; j < c; j++) {
                const nn_real *restrict s = src + (size_t)j * hw;
                nn_real *restrict d = dst + (size_t)j * hw;
                for (int x = 0; x < len; x++) {
                    nn_real e = SOFTMAX_EXP(s[x] - mx[x]);
                    d[x] = e;
                    sum[x] += e;
                }
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
