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
 *                           (the backend's conv_transpose2d_forward when it has one: on
 *                           the CPU the sub-pixel form below where K is a multiple of
 *                           the stride)
 *   backward data    dx  += C dout         = conv2d_forward of C (no bias)
 *   backward weight  dW  += conv2d_backward_weight of C with dout = x (C's "output"
 *                           gradient) and in = dout (C's "input")
 *   backward bias    db  += bias_backward(dout)
 */
#include "conv_transpose2d.h"

#include <cblas.h>

#include <math.h>
#include <string.h>

#include "../nn/status.h"
#include "conv2d.h"
#include "conv2d_winograd.h" /* conv2d_workspace */
#include "elementwise.h"

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

/* ---- CPU forward: sub-pixel (phase) decomposition ------------------------------------
 *
 * For kernel K = m * stride (Deep3D's upsamplers: K = 2s), output row oy receives, from
 * input row iy, the tap ky = oy + pad - iy*s in [0, K): with phase f = (oy + pad) mod s
 * and a = (oy + pad - f) / s, exactly the m rows iy = a - d (d = 0 .. m-1) with tap
 * f + d*s (likewise for columns). So every output pixel is a small m x m convolution of
 * the input around (a, b) whose filter depends only on its phase (fy, fx) (Shi et al.
 * 2016, "Real-time single image and video super-resolution using an efficient sub-pixel
 * convolutional neural network", the equivalence in their section 2.2):
 *   col (C_in*m*m, A*B)        col[(c,dy,dx), (a,b)] = x[c, a-dy, b-dx] (0 outside),
 *                              a in [0, A = H+m-1), b in [0, B = W+m-1)
 *   Wp  (C_out*s*s, C_in*m*m)  Wp[(o,fy,fx), (c,dy,dx)] = weight[c, o, fy+dy*s, fx+dx*s]
 *   Y   = Wp . col             one product with a reduction over C_in*m*m (132 for
 *                              Deep3D) rather than col2im's C_in (33)
 *   out[o, a*s+fy-pad, b*s+fx-pad] = Y[(o,fy,fx), (a,b)] + bias[o], where inside.
 * Every output pixel is written once, so there is no zero fill, no scatter-add and no
 * (C_out*K*K, H*W) column matrix (4x the output for K = 2s): the product writes
 * (A*B)/(H*W) times the output (1.02 for 80x192 inputs, 1.3 for 5x12). Images of a
 * batch share one product while the matrices fit SUBPIXEL_BUDGET values. */
enum { SUBPIXEL_BUDGET = 16 << 20 }; /* values of col + Y per product: 64 MB in float32 */

/* The adjoint shape s (the transposed convolution maps (n, c_out, h_out, w_out) to
 * (n, c_in, h_in, w_in)) takes the sub-pixel path. Measured on Deep3D's upsamplers (33
 * channels, batch 1, 2 threads, best of 10, sub-pixel / zero fill + col2im + bias, ms):
 * 40x96 k4 s2 2.2 / 3.3; 20x48 k8 s4 2.0 / 3.5; 10x24 k16 s8 2.9 / 4.0; 5x12 k32 s16
 * 6.1 / 5.2 (the s*s*C_out x 78 product is thin and Wp as large as the weights);
 * 80x192 k4 s2 8.7 / 15.3. Hence strides 2 to 8. */
static int subpixel_applies(const nn_conv_shape *s) {
    return s->stride > 1 && s->stride <= 8 && s->kh == s->kw && s->kh % s->stride == 0 && s->dilation == 1;
}

static int conv_transpose2d_subpixel_cpu(nn_real *out, const nn_real *x, const nn_real *weight,
                                         const nn_real *bias, const nn_conv_shape *s) {
    const int st = s->stride, k = s->kh, m = k / st, pad = s->pad;
    const int ci = s->c_out, h = s->h_out, w = s->w_out; /* the transposed conv's input */
    const int co = s->c_in, ho = s->h_in, wo = s->w_in;  /* and its output */
    const int A = h + m - 1, B = w + m - 1, rows = ci * m * m, yrows = co * st * st;
    const size_t ab = (size_t)A * B, per_image = (size_t)(rows + yrows) * ab;
    int chunk = (int)(SUBPIXEL_BUDGET / per_image);
    chunk = chunk < 1 ? 1 : chunk > s->n ? s->n : chunk;
    const size_t cols = (size_t)chunk * ab, wp_size = (size_t)yrows * rows;
    nn_real *Wp = conv2d_workspace(wp_size + (size_t)(rows + yrows) * cols, "conv_transpose2d forward");
    if (!Wp) return -1;
    nn_real *col = Wp + wp_size, *Y = col + (size_t)rows * cols;
    /* Wp rows (o, fy, fx), columns (c, dy, dx): the K x K block weight[c, o] is read in
     * memory order; the rows of one o (s*s*C_in*m*m values) stay in cache meanwhile */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < co; o++)
        for (int c = 0; c < ci; c++) {
            const nn_real *blk = weight + ((size_t)c * co + o) * k * k;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const int r = (o * st + ky % st) * st + kx % st, q = (c * m + ky / st) * m + kx / st;
                    Wp[(size_t)r * rows + q] = blk[ky * k + kx];
                }
        }
    const size_t in_sz = (size_t)ci * h * w, out_sz = (size_t)co * ho * wo;
    for (int n0 = 0; n0 < s->n; n0 += chunk) {
        const int cnt = s->n - n0 < chunk ? s->n - n0 : chunk;
        const size_t ncols = (size_t)cnt * ab;
#pragma omp parallel for collapse(2) schedule(static)
        for (int q = 0; q < rows; q++)
            for (int i = 0; i < cnt; i++) {
                const int c = q / (m * m), dy = q / m % m, dx = q % m;
                const nn_real *plane = x + (size_t)(n0 + i) * in_sz + (size_t)c * h * w;
                nn_real *dst = col + (size_t)q * ncols + (size_t)i * ab;
                for (int a = 0; a < A; a++, dst += B) {
                    const int iy = a - dy;
                    if (iy < 0 || iy >= h) {
                        for (int b = 0; b < B; b++) dst[b] = 0;
                        continue;
                    }
                    const nn_real *src = plane + (size_t)iy * w - dx; /* src[b] = x[iy, b - dx] */
                    for (int b = 0; b < dx; b++) dst[b] = 0;
                    for (int b = dx; b < w + dx; b++) dst[b] = src[b];
                    for (int b = w + dx; b < B; b++) dst[b] = 0;
                }
            }
        nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, yrows, (int)ncols, rows, 1, Wp, rows, col,
                      (int)ncols, 0, Y, (int)ncols);
        /* out[o, oy, ox] = Y[(o, fy, fx), (a, b)] + bias: oy = a*st + fy - pad */
#pragma omp parallel for collapse(3) schedule(static)
        for (int i = 0; i < cnt; i++)
            for (int o = 0; o < co; o++)
                for (int oy = 0; oy < ho; oy++) {
                    const int fy = (oy + pad) % st, a = (oy + pad) / st;
                    const nn_real bo = bias ? bias[o] : 0;
                    nn_real *dst = out + (size_t)(n0 + i) * out_sz + ((size_t)o * ho + oy) * wo;
                    for (int fx = 0; fx < st; fx++) {
                        /* ox = b*st + fx - pad for b with 0 <= ox < wo */
                        const int b0 = fx >= pad ? 0 : (pad - fx + st - 1) / st;
                        const nn_real *src =
                            Y + ((size_t)(o * st + fy) * st + fx) * ncols + (size_t)i * ab + (size_t)a * B;
                        if (s->relu)
                            for (int b = b0, ox = b0 * st + fx - pad; ox < wo; b++, ox += st)
                                dst[ox] = src[b] + bo > 0 ? src[b] + bo : 0;
                        else
                            for (int b = b0, ox = b0 * st + fx - pad; ox < wo; b++, ox += st)
                                dst[ox] = src[b] + bo;
                    }
                }
    }
    return 0;
}

int conv_transpose2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight, const nn_real *bias,
                                 const nn_conv_shape *s) {
    if (subpixel_applies(s)) return conv_transpose2d_subpixel_cpu(out, in, weight, bias, s);
    if (fill_cpu(out, (size_t)s->n * s->c_in * s->h_in * s->w_in, 0) || conv2d_backward_data_cpu(out, in, weight, s))
        return -1;
    return bias || s->relu ? bias_relu_cpu(out, bias, s->relu, s->n, s->c_in, s->h_in * s->w_in) : 0;
}

/* iarg: stride, pad, relu (the fused ReLU: y's gradient is masked by y > 0 in place
 * first, as in layers/conv2d.c) */
static int conv_transpose2d_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    const nn_backend *be = nn_backend_of(y->device);
    nn_conv_shape s;
    if (!be || adjoint_shape(&s, x, w, node->iarg[0], node->iarg[1])) return -1;
    if (node->iarg[2] && be->relu_mask(y->grad->data, y->data, y->numel)) return -1;
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

static nn_tensor *conv_transpose2d_op(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias, int stride,
                                      int pad, int relu) {
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
    const char *name = relu ? "conv_transpose2d+relu" : "conv_transpose2d";
    const nn_backend *be = nn_op_backend(x, name, offsetof(nn_backend, conv2d_backward_data));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new4(x->device, s.n, s.c_in, s.h_in, s.w_in);
    if (!y) goto fail;
    const nn_real *b = bias ? bias->data : NULL;
    s.relu = relu; /* read by conv_transpose2d_forward only (nn/backend.h) */
    if (be->conv_transpose2d_forward) {
        if (be->conv_transpose2d_forward(y->data, x->data, weight->data, b, &s)) goto fail;
    } else if (be->fill(y->data, y->numel, 0) || be->conv2d_backward_data(y->data, x->data, weight->data, &s) ||
               (b && be->bias_forward(y->data, b, s.n, s.c_in, s.h_in * s.w_in)) ||
               (relu && be->relu_forward(y->data, y->data, y->numel))) {
        goto fail;
    }
    if (nn_graph_wants(g, x, weight, bias, NULL)) {
        nn_node *node = nn_graph_record(g, name, conv_transpose2d_backward, y, x, weight, bias, NULL);
        if (!node) goto fail;
        node->iarg[0] = stride;
        node->iarg[1] = pad;
        node->iarg[2] = relu;
    }
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

nn_tensor *nn_conv_transpose2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                               int stride, int pad) {
    return conv_transpose2d_op(g, x, weight, bias, stride, pad, 0);
}

nn_tensor *nn_conv_transpose2d_relu(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                                    int stride, int pad) {
    return conv_transpose2d_op(g, x, weight, bias, stride, pad, 1);
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
