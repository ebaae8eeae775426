/* 2-D convolution (NCHW): CPU kernels (im2col + GEMM) and the autograd op.
 *
 * Per image n the input patches are unrolled into a column matrix
 *   col (C_in*KH*KW, H_out*W_out),
 *   col[(c*KH + ki)*KW + kj][oy*W_out + ox] = in[c][oy*stride - pad + ki*dilation]
 *                                              [ox*stride - pad + kj*dilation]   (0 outside),
 * so that the convolution is one matrix product (Chellapilla, Puri, Simard 2006;
 * Caffe's im2col):
 *   forward          out_n (C_out, HWo)   = W (C_out, CKK) . col (CKK, HWo)      + bias
 *   backward data    dcol  (CKK, HWo)     = W^T (CKK, C_out) . dout_n (C_out, HWo),
 *                    din_n += col2im(dcol)  (the adjoint of im2col: scatter-add)
 *   backward weight  dW (C_out, CKK)     += dout_n (C_out, HWo) . col^T (HWo, CKK)
 *                    dbias[c]            += sum over n, y, x of dout[n, c, y, x]
 * The weight gradient may batch images: the column matrices of nc images side by side
 * (CKK, nc*HWo) and their output gradients gathered alongside (C_out, nc*HWo) make one
 * product with an nc times longer reduction (backward_weight_im2col), which saves the
 * hand-overs between OpenMP and OpenBLAS threads of per-image products where those
 * are costly (conv2d_im2col_images).
 * The products are nn_cblas_gemm (OpenBLAS, itself multi-threaded); im2col and col2im
 * are OpenMP loops. A 1x1 kernel with stride 1 and no padding needs no im2col: the
 * image (C_in, H*W) already is the column matrix.
 *
 * The column matrix lives in one workspace per calling thread, grown to the largest
 * need seen so far and reused by every later call (never freed before exit), as
 * darknet's shared scratch buffer.
 *
 * The forward pass, the input gradient and the weight gradient of 3x3 stride-1
 * dilation-1 convolutions may instead run Winograd F(2x2, 3x3) (layers/conv2d_winograd.c,
 * same workspace), as conv2d_algo_cpu decides (DEEP3D_CONV_ALGO, layers/conv2d.h).
 */
#include "conv2d.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../nn/status.h"
#include "conv2d_winograd.h"

/* ---- workspace ------------------------------------------------------------- */

static _Thread_local nn_real *ws_data;
static _Thread_local size_t ws_cap;  /* elements */

/* The thread's workspace with room for n elements, or NULL + nn_fail
 * (declared in conv2d_winograd.h, which uses it too). */
nn_real *conv2d_workspace(size_t n, const char *who) {
    if (n <= ws_cap) return ws_data;
    size_t bytes = (n * sizeof(nn_real) + 63) / 64 * 64;
    nn_real *p = aligned_alloc(64, bytes);
    if (!p) {
        nn_fail("%s: out of host memory for the convolution workspace (%zu bytes)", who, bytes);
        return NULL;
    }
    free(ws_data);
    ws_data = p;
    ws_cap = n;
    return p;
}

/* ---- im2col / col2im ---------------------------------------------------------- */

/* The output columns ox whose input column ox*stride + off lies in [0, w): [*lo, *hi). */
static void valid_range(int off, int stride, int w, int w_out, int *lo, int *hi) {
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = w - 1 - off >= 0 ? (w - 1 - off) / stride + 1 : 0;
    if (a > w_out) a = w_out;
    if (b > w_out) b = w_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* Row r of the column matrix of one image im (C_in, H_in, W_in): dst (H_out*W_out). */
static void im2col_row(nn_real *dst, const nn_real *im, const nn_conv_shape *s, int r) {
    const int kk = s->kh * s->kw;
    const int c = r / kk, ki = (r % kk) / s->kw, kj = r % s->kw;
    const nn_real *plane = im + (size_t)c * s->h_in * s->w_in;
    const int xoff = kj * s->dilation - s->pad;
    int lo, hi;
    valid_range(xoff, s->stride, s->w_in, s->w_out, &lo, &hi);
    for (int oy = 0; oy < s->h_out; oy++, dst += s->w_out) {
        const int iy = oy * s->stride - s->pad + ki * s->dilation;
        if (iy < 0 || iy >= s->h_in) {
            memset(dst, 0, (size_t)s->w_out * sizeof *dst);
            continue;
        }
        const nn_real *src = plane + (size_t)iy * s->w_in + xoff;
        for (int ox = 0; ox < lo; ox++) dst[ox] = 0;
        if (s->stride == 1)
            memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
        else
            for (int ox = lo; ox < hi; ox++) dst[ox] = src[(size_t)ox * s->stride];
        for (int ox = hi; ox < s->w_out; ox++) dst[ox] = 0;
    }
}

/* col (C_in*KH*KW, H_out*W_out) from one image im (C_in, H_in, W_in). */
static void im2col(nn_real *col, const nn_real *im, const nn_conv_shape *s) {
    const int rows = s->c_in * s->kh * s->kw;
    const size_t hwo = (size_t)s->h_out * s->w_out;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) im2col_row(col + (size_t)r * hwo, im, s, r);
}

/* im (C_in, H_in, W_in) += col2im(col): every column entry is added back to the input
 * pixel it was copied from. Parallel over channels (rows of different channels touch
 * different planes), so no two threads write the same pixel. */
static void col2im_add(nn_real *im, const nn_real *col, const nn_conv_shape *s) {
    const size_t hwo = (size_t)s->h_out * s->w_out;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c_in; c++) {
        nn_real *plane = im + (size_t)c * s->h_in * s->w_in;
        for (int ki = 0; ki < s->kh; ki++)
            for (int kj = 0; kj < s->kw; kj++) {
                const nn_real *src = col + ((size_t)(c * s->kh + ki) * s->kw + kj) * hwo;
                const int xoff = kj * s->dilation - s->pad;
                int lo, hi;
                valid_range(xoff, s->stride, s->w_in, s->w_out, &lo, &hi);
                for (int oy = 0; oy < s->h_out; oy++, src += s->w_out) {
                    const int iy = oy * s->stride - s->pad + ki * s->dilation;
                    if (iy < 0 || iy >= s->h_in) continue;
                    nn_real *dst = plane + (size_t)iy * s->w_in + xoff;
                    for (int ox = lo; ox < hi; ox++) dst[(size_t)ox * s->stride] += src[ox];
                }
            }
    }
}

static int is_pointwise(const nn_conv_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* ---- CPU kernels ------------------------------------------------------------ */

int bias_relu_cpu(nn_real *out, const nn_real *bias, int relu, int n, int c, int hw) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw > 65536)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            nn_real *restrict o = out + ((size_t)i * c + j) * hw;
            const nn_real b = bias ? bias[j] : 0;
            if (relu)
                for (int k = 0; k < hw; k++) o[k] = o[k] + b > 0 ? o[k] + b : 0;
            else
                for (int k = 0; k < hw; k++) o[k] += b;
        }
    return 0;
}

int conv2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                       const nn_real *bias, const nn_conv_shape *s) {
    const int algo = conv2d_algo_cpu(s, NN_CONV_DIR_FORWARD);
    if (algo < 0) return -1;
    if (algo == NN_CONV_ALGO_WINOGRAD) return conv2d_winograd_forward_cpu(out, in, weight, bias, s);
    const int ckk = s->c_in * s->kh * s->kw, hwo = s->h_out * s->w_out;
    const size_t in_sz = (size_t)s->c_in * s->h_in * s->w_in, out_sz = (size_t)s->c_out * hwo;
    const int pointwise = is_pointwise(s);
    nn_real *col = pointwise ? NULL : conv2d_workspace((size_t)ckk * hwo, "conv2d forward");
    if (!pointwise && !col) return -1;
    for (int n = 0; n < s->n; n++) {
        const nn_real *im = in + n * in_sz;
        nn_real *o = out + n * out_sz;
        if (!pointwise) im2col(col, im, s);
        nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, hwo, ckk, 1, weight, ckk,
                      pointwise ? im : col, hwo, 0, o, hwo);
        if (bias || s->relu) bias_relu_cpu(o, bias, s->relu, 1, s->c_out, hwo);
    }
    return 0;
}

int conv2d_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                             const nn_conv_shape *s) {
    const int algo = conv2d_algo_cpu(s, NN_CONV_DIR_BACKWARD_DATA);
    if (algo < 0) return -1;
    if (algo == NN_CONV_ALGO_WINOGRAD) return conv2d_winograd_backward_data_cpu(din, dout, weight, s);
    const int ckk = s->c_in * s->kh * s->kw, hwo = s->h_out * s->w_out;
    const size_t in_sz = (size_t)s->c_in * s->h_in * s->w_in, out_sz = (size_t)s->c_out * hwo;
    if (is_pointwise(s)) {  /* din_n (C_in, HW) += W^T . dout_n */
        for (int n = 0; n < s->n; n++)
            nn_cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, hwo, s->c_out, 1, weight, ckk,
                          dout + n * out_sz, hwo, 1, din + n * in_sz, hwo);
        return 0;
    }
    nn_real *col = conv2d_workspace((size_t)ckk * hwo, "conv2d backward data");
    if (!col) return -1;
    for (int n = 0; n < s->n; n++) {
        nn_cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, hwo, s->c_out, 1, weight, ckk,
                      dout + n * out_sz, hwo, 0, col, hwo);
        col2im_add(din + n * in_sz, col, s);
    }
    return 0;
}

/* Images per weight-gradient product on the im2col path (conv2d_im2col_images).
 * Batching saves hand-overs between the OpenMP threads (im2col) and OpenBLAS's own
 * threads (the products): with libgomp's default wait policy idle OpenMP threads spin,
 * OpenBLAS's threads spin-yield after each product, and on 2 cores each hand-over can
 * cost a scheduler slice. Measured (2 threads, a shared 2-core machine, batch 4, time
 * ratios batched / per-image, medians of A B alternations in one process):
 *   default wait policy: 3x3 C = K = 128 at 5x12 0.26, C = K = 64 at 20x48 0.36,
 *   C = 128 -> K = 33 at 40x96 0.77; the adjoints of Deep3D's transposed convolutions
 *   (33 channels, kernel 2s, stride s, to 40x96 .. 5x12, and to 80x192) 0.54-0.95;
 *   the RGB input conv (C = 3 -> 64 at 160x384) 0.74;
 *   OMP_WAIT_POLICY=passive (threads sleep; the hand-overs become cheap): the same
 *   adjoints 0.99-1.35, C = K = 64 at 20x48 1.13, C = K = 512 at 10x24 1.08, the RGB
 *   input conv 1.34 (the copies into the larger buffers cost more than they save);
 *   1x1 C = K = 512 at 10x24, default policy: 1.8-2.6 (the images copied, which the
 *   per-image products read in place).
 * Hence: one image at a time for pointwise kernels and when OpenMP threads sleep
 * (OMP_WAIT_POLICY=passive, or GOMP_SPINCOUNT at most 10000: the environment libgomp
 * read at start-up); otherwise as many images as fit the workspace budget (the column
 * matrices and the gathered output gradient of a chunk together), at least 1. */
enum { WGRAD_BUDGET = 16 << 20 }; /* values: 64 MB in float32 */

static _Atomic int wgrad_chunk_override;

void conv2d_im2col_set_chunk(int images) { atomic_store(&wgrad_chunk_override, images > 0 ? images : 0); }

/* 1 when idle OpenMP threads sleep rather than spin: the variables libgomp read at
 * start-up (read here at every call: a few dozen string comparisons). */
static int omp_threads_sleep(void) {
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    char *end = NULL;
    const double count = spin ? strtod(spin, &end) : 0;
    return (policy && !strcasecmp(policy, "passive")) || (spin && end != spin && count <= 10000);
}

int conv2d_im2col_images(const nn_conv_shape *s) {
    const long ckk = (long)s->c_in * s->kh * s->kw, hwo = (long)s->h_out * s->w_out;
    long nc = atomic_load(&wgrad_chunk_override);
    if (nc == 0 && (is_pointwise(s) || omp_threads_sleep())) nc = 1;
    if (nc == 0) {
        const long per_image = (ckk + s->c_out) * hwo;
        nc = per_image > 0 ? WGRAD_BUDGET / per_image : s->n;
        if (nc < 1) nc = 1;
    }
    if (nc > s->n) nc = s->n;
    return (int)nc;
}

/* dweight (C_out, CKK) += dout . im2col(in)^T, the images nc at a time: for a chunk of
 * nc > 1 images the column matrices are laid side by side, col (CKK, nc*HWo), and the
 * output gradients gathered to match, dcat (C_out, nc*HWo), so one product covers the
 * chunk (a reduction nc times longer than one image's). With nc = 1 the product reads
 * dout in place (and, for a pointwise kernel, the image itself as the column matrix). */
static int backward_weight_im2col(nn_real *dweight, const nn_real *dout, const nn_real *in,
                                  const nn_conv_shape *s) {
    const int ckk = s->c_in * s->kh * s->kw, hwo = s->h_out * s->w_out;
    const size_t in_sz = (size_t)s->c_in * s->h_in * s->w_in, out_sz = (size_t)s->c_out * hwo;
    const int nc = conv2d_im2col_images(s), pointwise = is_pointwise(s);
    if (nc <= 0) return 0; /* empty batch */
    if (nc == 1) {
        nn_real *col = pointwise ? NULL : conv2d_workspace((size_t)ckk * hwo, "conv2d backward weight");
        if (!pointwise && !col) return -1;
        for (int n = 0; n < s->n; n++) {
            const nn_real *im = in + n * in_sz;
            if (!pointwise) im2col(col, im, s);
            nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, ckk, hwo, 1, dout + n * out_sz, hwo,
                          pointwise ? im : col, hwo, 1, dweight, ckk);
        }
        return 0;
    }
    const size_t ld = (size_t)nc * hwo;
    nn_real *col = conv2d_workspace(((size_t)ckk + s->c_out) * ld, "conv2d backward weight");
    if (!col) return -1;
    nn_real *dcat = col + (size_t)ckk * ld;
    for (int n0 = 0; n0 < s->n; n0 += nc) {
        const int cnt = s->n - n0 < nc ? s->n - n0 : nc;
        const size_t l = (size_t)cnt * hwo; /* this chunk's columns: the row stride of col and dcat */
        /* one parallel loop over the rows of both matrices and the images of the chunk:
         * item (j, r) is row r of image j, a column-matrix row for r < CKK, else output
         * channel r - CKK of dout */
        const long items = (long)cnt * (ckk + s->c_out);
#pragma omp parallel for schedule(static)
        for (long i = 0; i < items; i++) {
            const int j = (int)(i / (ckk + s->c_out)), r = (int)(i % (ckk + s->c_out));
            if (r < ckk)
                im2col_row(col + (size_t)r * l + (size_t)j * hwo, in + (n0 + j) * in_sz, s, r);
            else
                memcpy(dcat + (size_t)(r - ckk) * l + (size_t)j * hwo,
                       dout + (n0 + j) * out_sz + (size_t)(r - ckk) * hwo, (size_t)hwo * sizeof *dcat);
        }
        nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, ckk, (int)l, 1, dcat, (int)l, col, (int)l,
                      1, dweight, ckk);
    }
    return 0;
}

int conv2d_backward_weight_cpu(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                               const nn_real *in, const nn_conv_shape *s) {
    if (dweight) {
        const int algo = conv2d_algo_cpu(s, NN_CONV_DIR_BACKWARD_WEIGHT);
        if (algo < 0) return -1;
        if (algo == NN_CONV_ALGO_WINOGRAD ? conv2d_winograd_backward_weight_cpu(dweight, dout, in, s)
                                          : backward_weight_im2col(dweight, dout, in, s))
            return -1;
    }
    if (dbias) bias_backward_cpu(dbias, dout, s->n, s->c_out, s->h_out * s->w_out);
    return 0;
}

int bias_forward_cpu(nn_real *out, const nn_real *bias, int n, int c, int hw) {
    return bias_relu_cpu(out, bias, 0, n, c, hw);
}

int bias_backward_cpu(nn_real *dbias, const nn_real *dout, int n, int c, int hw) {
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 65536)
    for (int j = 0; j < c; j++) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            const nn_real *d = dout + ((size_t)i * c + j) * hw;
            for (int k = 0; k < hw; k++) sum += d[k];
        }
        dbias[j] += (nn_real)sum;
    }
    return 0;
}

/* ---- op ------------------------------------------------------------------------ */

int nn_conv_shape_make(nn_conv_shape *s, const nn_tensor *x, const nn_tensor *weight,
                       int stride, int pad, int dilation) {
    char sx[64], sw[64];
    if (x->ndim != 4 || weight->ndim != 4)
        return nn_fail("conv2d: input %s and weight %s must both be 4-D (N, C_in, H, W) and "
                       "(C_out, C_in, KH, KW)",
                       nn_shape_str(x, sx, sizeof sx), nn_shape_str(weight, sw, sizeof sw));
    if (x->shape[1] != weight->shape[1])
        return nn_fail("conv2d: input %s has %d channels, weight %s expects %d",
                       nn_shape_str(x, sx, sizeof sx), x->shape[1], nn_shape_str(weight, sw, sizeof sw),
                       weight->shape[1]);
    if (stride < 1 || pad < 0 || dilation < 1)
        return nn_fail("conv2d: stride %d, padding %d, dilation %d (need stride >= 1, padding >= 0, "
                       "dilation >= 1)", stride, pad, dilation);
    memset(s, 0, sizeof *s);
    s->n = x->shape[0];
    s->c_in = x->shape[1];
    s->h_in = x->shape[2];
    s->w_in = x->shape[3];
    s->c_out = weight->shape[0];
    s->kh = weight->shape[2];
    s->kw = weight->shape[3];
    s->stride = stride;
    s->pad = pad;
    s->dilation = dilation;
    long eh = (long)s->h_in + 2L * pad - (long)dilation * (s->kh - 1) - 1;
    long ew = (long)s->w_in + 2L * pad - (long)dilation * (s->kw - 1) - 1;
    if (eh < 0 || ew < 0)
        return nn_fail("conv2d: input %s, kernel %dx%d, padding %d, dilation %d gives an empty output",
                       nn_shape_str(x, sx, sizeof sx), s->kh, s->kw, pad, dilation);
    s->h_out = (int)(eh / stride + 1);
    s->w_out = (int)(ew / stride + 1);
    if ((long long)s->h_out * s->w_out > INT32_MAX ||
        (long long)s->c_in * s->kh * s->kw > INT32_MAX)
        return nn_fail("conv2d: input %s with kernel %dx%d is too large for one matrix product",
                       nn_shape_str(x, sx, sizeof sx), s->kh, s->kw);
    return 0;
}

/* iarg: stride, pad, dilation, relu. With the fused ReLU, dy becomes the gradient of
 * the convolution's pre-activation, dy * (y > 0), masked in place in y's gradient
 * (every consumer of y has added its part by now; y's gradient is not read again). */
static int conv2d_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    const nn_backend *be = nn_backend_of(y->device);
    nn_conv_shape s;
    if (!be || nn_conv_shape_make(&s, x, w, node->iarg[0], node->iarg[1], node->iarg[2])) return -1;
    if (node->iarg[3] && be->relu_mask(y->grad->data, y->data, y->numel)) return -1;
    const nn_real *dy = y->grad->data;
    if (x->requires_grad) {
        nn_tensor *dx = nn_tensor_grad(x);
        if (!dx || be->conv2d_backward_data(dx->data, dy, w->data, &s)) return -1;
    }
    nn_tensor *db = NULL;
    if (b && b->requires_grad && !(db = nn_tensor_grad(b))) return -1;
    if (w->requires_grad) {
        nn_tensor *dw = nn_tensor_grad(w);
        if (!dw || be->conv2d_backward_weight(dw->data, db ? db->data : NULL, dy, x->data, &s)) return -1;
    } else if (db) {
        if (be->bias_backward(db->data, dy, s.n, s.c_out, s.h_out * s.w_out)) return -1;
    }
    return 0;
}

static nn_tensor *conv2d_op(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias, int stride, int pad,
                            int dilation, int relu) {
    if (!x || !weight) return NULL;
    char sx[64], sb[64];
    nn_conv_shape s;
    if (nn_conv_shape_make(&s, x, weight, stride, pad, dilation)) return NULL;
    s.relu = relu;
    if (bias && (bias->numel != (size_t)s.c_out || bias->ndim != 1)) {
        nn_fail("conv2d: bias %s does not match the %d output channels of weight %s",
                nn_shape_str(bias, sb, sizeof sb), s.c_out, nn_shape_str(weight, sx, sizeof sx));
        return NULL;
    }
    if (weight->device != x->device || (bias && bias->device != x->device)) {
        nn_fail("conv2d: input on %s, weight on %s%s%s", nn_device_name(x->device),
                nn_device_name(weight->device), bias ? ", bias on " : "",
                bias ? nn_device_name(bias->device) : "");
        return NULL;
    }
    const char *name = relu ? "conv2d+relu" : "conv2d";
    const nn_backend *be = nn_op_backend(x, name, offsetof(nn_backend, conv2d_forward));
    if (!be) return NULL;
    nn_tensor *y = nn_tensor_new4(x->device, s.n, s.c_out, s.h_out, s.w_out);
    if (!y || be->conv2d_forward(y->data, x->data, weight->data, bias ? bias->data : NULL, &s)) goto fail;
    if (nn_graph_wants(g, x, weight, bias, NULL)) {
        nn_node *node = nn_graph_record(g, name, conv2d_backward, y, x, weight, bias, NULL);
        if (!node) goto fail;
        node->iarg[0] = stride;
        node->iarg[1] = pad;
        node->iarg[2] = dilation;
        node->iarg[3] = relu;
    }
    return y;
fail:
    nn_tensor_unref(y);
    return NULL;
}

nn_tensor *nn_conv2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                     int stride, int pad, int dilation) {
    return conv2d_op(g, x, weight, bias, stride, pad, dilation, 0);
}

nn_tensor *nn_conv2d_relu(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                          int stride, int pad, int dilation) {
    return conv2d_op(g, x, weight, bias, stride, pad, dilation, 1);
}
