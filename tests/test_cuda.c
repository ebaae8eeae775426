/* CPU vs CUDA: every kernel of the CUDA backend table against the CPU kernel of the
 * same slot (nn_backend_cpu()), forward and backward, on random inputs of small
 * shapes, including the Deep3D transposed-convolution geometries. Backward kernels
 * start from random gradients on both sides, so the accumulation (+=) is checked too.
 *
 * Tolerances (|cuda - cpu| <= atol + rtol*|cpu|): exact where both sides do the same
 * IEEE operations (fill, add, ReLU, max pooling; the dropout mask up to the rounding
 * of 1/(1-p)); 1e-6 where a
 * fused multiply-add may differ by an ulp (axpy, affine); for sums of T terms in
 * [-1, 1] (convolutions, linear), atol = 2e-6 * T, which bounds float32 rounding of
 * a sum in any order with margin (each partial sum rounds by <= 6e-8 relative);
 * TF32 (10-bit mantissa, relative rounding 2^-11 per product): atol = 2e-3*sqrt(T).
 *
 * Max pooling: the CUDA backward (cuDNN) finds the maxima again from the input and
 * output and may pick another maximum of a tied window than the CPU's first one, so the
 * backward is compared element by element on inputs without ties, and on inputs with
 * ties only by what any choice must satisfy (the gradient lands on maxima, and each
 * window's whole gradient arrives once).
 *
 * Every test skips itself, with "no CUDA device: ...", where nn_backend_cuda() finds
 * none (or the build has no CUDA); any other failure to start the backend fails. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "../nn/cuda_alloc.h"
#include "../nn/cuda_plan.h"
#include "testutil.h"

static const nn_backend *G;   /* the CUDA backend */
static const nn_backend *C;   /* the CPU backend: the reference */

static void gpu_or_skip(void) {
    G = tu_require_cuda();
    C = nn_backend_cpu();
}

/* The same array on both sides: h (host, CPU kernels) and d (device, CUDA kernels). */
typedef struct buf {
    nn_real *h, *d;
    size_t n;
} buf;

static buf mk(size_t n, double lo, double hi, uint64_t seed) {
    buf b = {malloc((n ? n : 1) * sizeof(nn_real)), NULL, n};
    cr_assert_not_null(b.h);
    for (size_t i = 0; i < n; i++) b.h[i] = (nn_real)(lo + (hi - lo) * nn_hash_uniform(seed, i));
    b.d = G->alloc(n * sizeof(nn_real));
    cr_assert_not_null(b.d, "cuda alloc: %s", nn_last_error());
    cr_assert_eq(G->upload(b.d, b.h, n * sizeof(nn_real)), 0, "upload: %s", nn_last_error());
    return b;
}

/* Values in {lo, lo + step, ...}: ties on purpose. */
static buf mk_steps(size_t n, int levels, double step, uint64_t seed) {
    buf b = mk(n, 0, 0, seed);
    for (size_t i = 0; i < n; i++) b.h[i] = (nn_real)(floor(nn_hash_uniform(seed, i) * levels) * step);
    cr_assert_eq(G->upload(b.d, b.h, n * sizeof(nn_real)), 0, "upload: %s", nn_last_error());
    return b;
}

/* Downloads b.d and compares it with b.h (the CPU result, the reference). */
static double same(buf b, double atol, double rtol, const char *what) {
    nn_real *got = malloc((b.n ? b.n : 1) * sizeof(nn_real));
    cr_assert_not_null(got);
    cr_assert_eq(G->download(got, b.d, b.n * sizeof(nn_real)), 0, "download: %s", nn_last_error());
    double e = tu_assert_close(got, b.h, b.n, atol, rtol, what);
    free(got);
    return e;
}

/* Same as `same`, within tol * max|b.h| (for gradients whose terms cancel). */
static void same_scaled(buf b, double tol, const char *what) {
    nn_real *got = malloc((b.n ? b.n : 1) * sizeof(nn_real));
    double *ref = malloc((b.n ? b.n : 1) * sizeof(double));
    cr_assert(got && ref);
    cr_assert_eq(G->download(got, b.d, b.n * sizeof(nn_real)), 0, "download: %s", nn_last_error());
    for (size_t i = 0; i < b.n; i++) ref[i] = b.h[i];
    tu_assert_close_scaled(got, ref, b.n, tol, what);
    free(got), free(ref);
}

static void drop(buf b) {
    G->release(b.d);
    free(b.h);
}

#define OK(call) cr_assert_eq((call), 0, "%s: %s", #call, nn_last_error())

/* ---- memory ------------------------------------------------------------------------- */

Test(cuda, memory_roundtrip_and_allocator_reuse) {
    gpu_or_skip();
    buf a = mk(1000, -1, 1, 1), b = mk(1000, 0, 0, 2);
    OK(G->copy(b.d, a.d, a.n * sizeof(nn_real)));
    memcpy(b.h, a.h, a.n * sizeof(nn_real));
    same(b, 0, 0, "upload, copy, download");
    OK(G->fill(b.d, b.n, 2.5f));
    OK(C->fill(b.h, b.n, 2.5f));
    same(b, 0, 0, "fill");
    OK(G->synchronize());
    drop(a), drop(b);

    /* a steady state of allocations is served from the cache */
    nn_cuda_alloc_stats s0, s1;
    for (int step = 0; step < 5; step++) {
        void *p[4] = {G->alloc(1000), G->alloc(1 << 20), G->alloc(12345678), G->alloc(4)};
        for (int i = 0; i < 4; i++) cr_assert_not_null(p[i], "%s", nn_last_error());
        for (int i = 3; i >= 0; i--) G->release(p[i]);
        if (step == 0) OK(nn_cuda_memory_stats(&s0));
    }
    OK(nn_cuda_memory_stats(&s1));
    cr_assert_eq(s1.n_device_malloc, s0.n_device_malloc, "later steps called cudaMalloc %ld times",
                 s1.n_device_malloc - s0.n_device_malloc);
    cr_assert(s1.n_reused >= s0.n_reused + 16);
    OK(nn_cuda_empty_cache());
}

Test(cuda, out_of_memory_is_a_clear_error) {
    gpu_or_skip();
    void *p = G->alloc((size_t)1 << 50);   /* 1 PiB */
    cr_assert_null(p);
    const char *e = nn_last_error();
    cr_assert(strstr(e, "out of GPU memory") && strstr(e, "requested") && strstr(e, "free of") &&
                  strstr(e, "lower the batch size"),
              "%s", e);
    void *q = G->alloc(1000);   /* and the backend still works */
    cr_assert_not_null(q, "%s", nn_last_error());
    G->release(q);
}

/* The tensor-level asynchronous upload (nn/tensor.h) on CUDA, in the training loop's
 * pattern: work queued before nn_tensor_upload_async reads the old contents of the
 * tensor, work queued after nn_device_wait_uploads the new ones; the host array may be
 * overwritten as soon as the upload returns. */
Test(cuda, tensor_upload_async_lets_queued_work_read_the_old_data) {
    gpu_or_skip();
    cr_assert(G->upload_async && G->wait_uploads, "the CUDA table lacks upload_async or wait_uploads");
    const int n = 1 << 20; /* 4 MB: the transfer takes a while */
    nn_tensor *t = nn_tensor_new4(NN_CUDA, n, 0, 0, 0), *before = nn_tensor_zeros(NN_CUDA, 1, &n);
    nn_tensor *after = nn_tensor_zeros(NN_CUDA, 1, &n);
    cr_assert(t && before && after, "%s", nn_last_error());
    nn_real *a = tu_uniform_array((size_t)n, 1), *b = tu_uniform_array((size_t)n, 2), *got = malloc((size_t)n * sizeof *got);
    cr_assert_not_null(got);
    OK(nn_tensor_upload(t, a));
    for (int round = 0; round < 3; round++) {
        const nn_real *old_data = round % 2 ? b : a, *new_data = round % 2 ? a : b;
        OK(G->fill(before->data, (size_t)n, 0));
        OK(G->axpy(before->data, 1, t->data, (size_t)n)); /* queued: reads t's old data */
        nn_real *host = malloc((size_t)n * sizeof *host);
        cr_assert_not_null(host);
        memcpy(host, new_data, (size_t)n * sizeof *host);
        OK(nn_tensor_upload_async(t, host));
        memset(host, 0xff, (size_t)n * sizeof *host); /* NaNs: must not arrive */
        free(host);
        OK(nn_device_wait_uploads(NN_CUDA));
        OK(G->fill(after->data, (size_t)n, 0));
        OK(G->axpy(after->data, 1, t->data, (size_t)n)); /* queued after the wait: the new data */
        OK(nn_tensor_download(before, got));
        tu_assert_close(got, old_data, (size_t)n, 0, 0, "work queued before the upload");
        OK(nn_tensor_download(after, got));
        tu_assert_close(got, new_data, (size_t)n, 0, 0, "work queued after the wait");
        OK(nn_tensor_download(t, got));
        tu_assert_close(got, new_data, (size_t)n, 0, 0, "the tensor after the wait");
    }
    OK(nn_device_wait_uploads(NN_CUDA)); /* nothing pending */
    free(a), free(b), free(got);
    nn_tensor_unref(t), nn_tensor_unref(before), nn_tensor_unref(after);
}

/* ---- element-wise ---------------------------------------------------------------------- */

Test(cuda, elementwise_kernels_match_cpu) {
    gpu_or_skip();
    const size_t n = 10007;
    buf x = mk(n, -1, 1, 3), y = mk(n, -1, 1, 4), out = mk(n, 0, 0, 5), g = mk(n, -1, 1, 6), dx = mk(n, -1, 1, 7);
    OK(C->axpy(y.h, 0.75f, x.h, n));
    OK(G->axpy(y.d, 0.75f, x.d, n));
    same(y, 1e-6, 1e-6, "axpy");
    OK(C->add(out.h, x.h, y.h, n));
    OK(G->add(out.d, x.d, y.d, n));
    same(out, 0, 0, "add");
    OK(C->relu_forward(out.h, x.h, n));
    OK(G->relu_forward(out.d, x.d, n));
    same(out, 0, 0, "relu_forward");
    OK(C->relu_backward(dx.h, g.h, out.h, n));
    OK(G->relu_backward(dx.d, g.d, out.d, n));
    same(dx, 0, 0, "relu_backward");
    OK(C->relu_mask(dx.h, x.h, n)); /* x has both signs: about half is zeroed */
    OK(G->relu_mask(dx.d, x.d, n));
    same(dx, 0, 0, "relu_mask");

    const int bn = 3, c = 7, hw = 13;   /* 273 elements of x */
    buf scale = mk(c, 0.5, 2, 8), shift = mk(c, -100, 100, 9);
    const nn_real *sc[2] = {scale.h, NULL}, *sh[2] = {shift.h, NULL};
    const nn_real *scd[2] = {scale.d, NULL}, *shd[2] = {shift.d, NULL};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            OK(C->channel_affine(out.h, x.h, sc[i], sh[j], bn, c, hw));
            OK(G->channel_affine(out.d, x.d, scd[i], shd[j], bn, c, hw));
            same(out, 1e-5, 1e-6, "channel_affine");
        }
    for (int i = 0; i < 2; i++) {
        OK(C->channel_affine_backward(dx.h, g.h, sc[i], bn, c, hw));
        OK(G->channel_affine_backward(dx.d, g.d, scd[i], bn, c, hw));
        same(dx, 1e-6, 1e-6, "channel_affine_backward");
    }
    drop(x), drop(y), drop(out), drop(g), drop(dx), drop(scale), drop(shift);
}

/* ---- convolutions ----------------------------------------------------------------------- */

static nn_conv_shape conv_shape(int n, int c_in, int h_in, int w_in, int c_out, int k, int stride, int pad, int dil) {
    nn_conv_shape s = {n, c_in, h_in, w_in, c_out, 0, 0, k, k, stride, pad, dil, 0};
    s.h_out = (h_in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    s.w_out = (w_in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    return s;
}

/* The convolution whose backward-data is the transposed convolution (C_in -> C_out,
 * kernel k, stride s, padding p) on an (N, C_in, H, W) input: its input is the
 * transposed output, (H-1)*s - 2p + k high. */
static nn_conv_shape transposed_geometry(int n, int c_in_t, int h, int w, int c_out_t, int k, int s, int p) {
    nn_conv_shape g = conv_shape(n, c_out_t, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k, c_in_t, k, s, p, 1);
    cr_assert(g.h_out == h && g.w_out == w, "adjoint geometry");
    return g;
}

/* Forward (with and without bias), backward data, backward weight (with and without
 * dbias) of one geometry, CUDA against CPU. */
static void conv_case(const nn_conv_shape *s, uint64_t seed, int tf32) {
    char what[160];
    snprintf(what, sizeof what, "conv (%d,%d,%d,%d)->(%d,%d,%d,%d) k%d s%d p%d d%d", s->n, s->c_in, s->h_in, s->w_in,
             s->n, s->c_out, s->h_out, s->w_out, s->kh, s->stride, s->pad, s->dilation);
    size_t n_in = (size_t)s->n * s->c_in * s->h_in * s->w_in, n_out = (size_t)s->n * s->c_out * s->h_out * s->w_out;
    size_t n_w = (size_t)s->c_out * s->c_in * s->kh * s->kw;
    buf in = mk(n_in, -1, 1, seed), w = mk(n_w, -1, 1, seed + 1), b = mk(s->c_out, -1, 1, seed + 2);
    buf out = mk(n_out, 0, 0, seed + 3), dout = mk(n_out, -1, 1, seed + 4), din = mk(n_in, -1, 1, seed + 5);
    buf dw = mk(n_w, -1, 1, seed + 6), db = mk(s->c_out, -1, 1, seed + 7);
    /* terms per sum: forward c_in*k*k (+ bias); backward data at most c_out*k*k;
     * backward weight n*h_out*w_out */
    double t_fwd = (double)s->c_in * s->kh * s->kw + 1, t_bd = (double)s->c_out * s->kh * s->kw + 1,
           t_bw = (double)s->n * s->h_out * s->w_out + 1;
#define TOL(t) (tf32 ? 2e-3 * sqrt(t) : 2e-6 * (t))
    char m[200];
    OK(C->conv2d_forward(out.h, in.h, w.h, b.h, s));
    OK(G->conv2d_forward(out.d, in.d, w.d, b.d, s));
    snprintf(m, sizeof m, "%s forward", what);
    same(out, TOL(t_fwd), 1e-5, m);
    OK(C->conv2d_forward(out.h, in.h, w.h, NULL, s));
    OK(G->conv2d_forward(out.d, in.d, w.d, NULL, s));
    snprintf(m, sizeof m, "%s forward without bias", what);
    same(out, TOL(t_fwd), 1e-5, m);
    nn_conv_shape sr = *s; /* the fused ReLU (nn_conv2d_relu) */
    sr.relu = 1;
    OK(C->conv2d_forward(out.h, in.h, w.h, b.h, &sr));
    OK(G->conv2d_forward(out.d, in.d, w.d, b.d, &sr));
    snprintf(m, sizeof m, "%s forward with the fused ReLU", what);
    same(out, TOL(t_fwd), 1e-5, m);
    OK(C->conv2d_backward_data(din.h, dout.h, w.h, s));
    OK(G->conv2d_backward_data(din.d, dout.d, w.d, s));
    snprintf(m, sizeof m, "%s backward data", what);
    same(din, TOL(t_bd), 1e-5, m);
    OK(C->conv2d_backward_weight(dw.h, db.h, dout.h, in.h, s));
    OK(G->conv2d_backward_weight(dw.d, db.d, dout.d, in.d, s));
    snprintf(m, sizeof m, "%s backward weight", what);
    same(dw, TOL(t_bw), 1e-5, m);
    snprintf(m, sizeof m, "%s backward bias", what);
    same(db, TOL(t_bw), 1e-5, m);
    OK(C->conv2d_backward_weight(dw.h, NULL, dout.h, in.h, s));
    OK(G->conv2d_backward_weight(dw.d, NULL, dout.d, in.d, s));
    snprintf(m, sizeof m, "%s backward weight without dbias", what);
    same(dw, 2 * TOL(t_bw), 1e-5, m);
#undef TOL
    drop(in), drop(w), drop(b), drop(out), drop(dout), drop(din), drop(dw), drop(db);
}

Test(cuda, conv2d_matches_cpu) {
    gpu_or_skip();
    nn_conv_shape g[] = {
        conv_shape(2, 3, 9, 11, 4, 3, 1, 1, 1),     /* VGG 3x3, stride 1, padding 1 */
        conv_shape(2, 3, 13, 12, 5, 3, 2, 0, 2),    /* stride 2, dilation 2, no padding */
        conv_shape(3, 8, 5, 7, 6, 1, 1, 0, 1),      /* 1x1 */
        conv_shape(2, 64, 6, 8, 33, 3, 1, 1, 1),    /* the pred_i heads: 64 -> 33 */
        conv_shape(1, 5, 10, 10, 3, 5, 3, 2, 1),    /* 5x5 stride 3: uneven coverage */
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) conv_case(&g[i], 100 + 10 * i, 0);
}

Test(cuda, conv2d_deep3d_transposed_geometries_match_cpu) {
    gpu_or_skip();
    /* DEEP3D.md: pred_1..pred_5 upsample by s = 1, 2, 4, 8, 16 with kernel 2s, stride s,
     * padding s/2 (pred_1: kernel 1, stride 1, padding 0); the final one has kernel 4,
     * stride 2, padding 1. Channels 3 -> 2 here instead of 33 -> 33 to stay small. */
    int scales[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++) {
        int s = scales[i], k = s == 1 ? 1 : 2 * s, p = s == 1 ? 0 : s / 2;
        nn_conv_shape g = transposed_geometry(2, 3, 3, 4, 2, k, s, p);
        conv_case(&g, 200 + 10 * i, 0);
    }
    nn_conv_shape last = transposed_geometry(2, 3, 5, 6, 2, 4, 2, 1);
    conv_case(&last, 300, 0);
}

Test(cuda, conv2d_tf32_is_close_to_fp32) {
    gpu_or_skip();
    cr_assert_eq(nn_cuda_set_precision("tf32"), 0);
    nn_conv_shape g = conv_shape(2, 16, 8, 8, 8, 3, 1, 1, 1);
    conv_case(&g, 400, 1);
    cr_assert_eq(nn_cuda_set_precision("fp32"), 0);   /* bf16: tests/test_cuda_render.c */
}

Test(cuda, conv2d_deterministic_mode_repeats_bitwise) {
    gpu_or_skip();
    nn_cuda_set_deterministic(1);
    nn_conv_shape s = conv_shape(4, 16, 12, 12, 8, 3, 1, 1, 1);
    size_t n_in = (size_t)s.n * s.c_in * s.h_in * s.w_in, n_out = (size_t)s.n * s.c_out * s.h_out * s.w_out;
    size_t n_w = (size_t)s.c_out * s.c_in * 9;
    buf in = mk(n_in, -1, 1, 1), w = mk(n_w, -1, 1, 2), dout = mk(n_out, -1, 1, 3);
    nn_real *first[3] = {0}, *again = NULL;
    for (int rep = 0; rep < 3; rep++) {
        buf out = mk(n_out, 0, 0, 4), din = mk(n_in, 0, 0, 5), dw = mk(n_w, 0, 0, 6);
        OK(G->conv2d_forward(out.d, in.d, w.d, NULL, &s));
        OK(G->conv2d_backward_data(din.d, dout.d, w.d, &s));
        OK(G->conv2d_backward_weight(dw.d, NULL, dout.d, in.d, &s));
        buf r[3] = {out, din, dw};
        for (int j = 0; j < 3; j++) {
            again = malloc(r[j].n * sizeof(nn_real));
            OK(G->download(again, r[j].d, r[j].n * sizeof(nn_real)));
            if (rep == 0) first[j] = again;
            else {
                cr_assert(!memcmp(first[j], again, r[j].n * sizeof(nn_real)), "result %d differs in run %d", j, rep);
                free(again);
            }
        }
        drop(out), drop(din), drop(dw);
    }
    for (int j = 0; j < 3; j++) free(first[j]);
    drop(in), drop(w), drop(dout);
}

Test(cuda, conv2d_second_step_allocates_nothing) {
    gpu_or_skip();
    nn_conv_shape s = conv_shape(2, 8, 16, 16, 8, 3, 1, 1, 1);
    size_t n_in = (size_t)s.n * s.c_in * s.h_in * s.w_in, n_out = (size_t)s.n * s.c_out * s.h_out * s.w_out;
    buf in = mk(n_in, -1, 1, 1), w = mk((size_t)8 * 8 * 9, -1, 1, 2), out = mk(n_out, 0, 0, 3);
    buf din = mk(n_in, 0, 0, 4), dw = mk((size_t)8 * 8 * 9, 0, 0, 5), b = mk(8, 0, 1, 6), db = mk(8, 0, 0, 7);
    nn_cuda_alloc_stats s0, s1;
    for (int step = 0; step < 3; step++) {
        if (step == 1) OK(nn_cuda_memory_stats(&s0));
        OK(G->conv2d_forward(out.d, in.d, w.d, b.d, &s));
        OK(G->conv2d_backward_data(din.d, out.d, w.d, &s));
        OK(G->conv2d_backward_weight(dw.d, db.d, out.d, in.d, &s));
    }
    OK(nn_cuda_memory_stats(&s1));
    cr_assert_eq(s1.n_device_malloc, s0.n_device_malloc, "steps 2 and 3 called cudaMalloc %ld times",
                 s1.n_device_malloc - s0.n_device_malloc);
    drop(in), drop(w), drop(out), drop(din), drop(dw), drop(b), drop(db);
}

Test(cuda, conv2d_inconsistent_geometry_is_an_error) {
    gpu_or_skip();
    nn_conv_shape s = conv_shape(1, 2, 8, 8, 3, 3, 1, 1, 1);
    s.h_out = 7;   /* should be 8 */
    buf in = mk(128, -1, 1, 1), w = mk(54, -1, 1, 2), out = mk(3 * 8 * 8, 0, 0, 3);
    cr_assert_eq(G->conv2d_forward(out.d, in.d, w.d, NULL, &s), -1);
    cr_assert(strstr(nn_last_error(), "inconsistent"), "%s", nn_last_error());
    drop(in), drop(w), drop(out);
}

Test(cuda, bias_kernels_match_cpu) {
    gpu_or_skip();
    const int n = 3, c = 5, hw = 37 * 11;
    buf out = mk((size_t)n * c * hw, -1, 1, 1), bias = mk(c, -1, 1, 2), dbias = mk(c, -1, 1, 3);
    OK(C->bias_forward(out.h, bias.h, n, c, hw));
    OK(G->bias_forward(out.d, bias.d, n, c, hw));
    same(out, 0, 0, "bias_forward");
    OK(C->bias_backward(dbias.h, out.h, n, c, hw));
    OK(G->bias_backward(dbias.d, out.d, n, c, hw));
    same(dbias, 2e-6 * n * hw, 1e-5, "bias_backward");
    drop(out), drop(bias), drop(dbias);
}

/* ---- max pooling ----------------------------------------------------------------------------- */

/* Distinct values (a shuffled ramp k / 1024, exact in float): no window has a tie. */
static buf mk_distinct(size_t n, uint64_t seed) {
    buf b = mk(n, 0, 0, seed);
    for (size_t i = 0; i < n; i++) b.h[i] = (nn_real)((double)i / 1024.0 - (double)n / 2048.0);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(nn_hash_uniform(seed, i) * (double)i);
        nn_real t = b.h[i - 1];
        b.h[i - 1] = b.h[j], b.h[j] = t;
    }
    cr_assert_eq(G->upload(b.d, b.h, n * sizeof(nn_real)), 0, "upload: %s", nn_last_error());
    return b;
}

/* {n, c, h_in, w_in, k, stride}: Deep3D's 2x2/2 (even and odd sizes: floor mode),
 * overlapping 3x3/2 and 3x3/1 */
static const int pool_cases[][6] = {{2, 3, 8, 10, 2, 2}, {1, 4, 9, 7, 2, 2}, {2, 2, 9, 11, 3, 2}, {1, 3, 6, 5, 3, 1}};

static nn_pool_shape pool_case(int i) {
    const int *p = pool_cases[i];
    nn_pool_shape s = {p[0], p[1], p[2], p[3], 0, 0, p[4], p[5]};
    s.h_out = (s.h_in - s.k) / s.stride + 1;
    s.w_out = (s.w_in - s.k) / s.stride + 1;
    return s;
}

/* The CUDA backend (cuDNN) keeps no argmax: its backward gets the forward's in and out
 * and finds the maxima again. Without ties the gradient goes to the same element as on
 * the CPU (the unique maximum of each window), so everything is compared; with ties
 * see the next test. The CUDA forward is given argmax NULL, as the op does. */
Test(cuda, maxpool2d_matches_cpu_without_ties_including_overlap) {
    gpu_or_skip();
    cr_assert_eq(G->maxpool2d_uses_argmax, 0, "the CUDA backend should not need an argmax");
    cr_assert_eq(C->maxpool2d_uses_argmax, 1);
    for (int i = 0; i < 4; i++) {
        nn_pool_shape s = pool_case(i);
        size_t n_in = (size_t)s.n * s.c * s.h_in * s.w_in, n_out = (size_t)s.n * s.c * s.h_out * s.w_out;
        buf in = mk_distinct(n_in, 10 + i);
        buf out = mk(n_out, 0, 0, 20), arg = mk(n_out, 0, 0, 21), dout = mk(n_out, -1, 1, 22), din = mk(n_in, -1, 1, 23);
        OK(C->maxpool2d_forward(out.h, arg.h, in.h, &s));
        OK(G->maxpool2d_forward(out.d, NULL, in.d, &s));
        same(out, 0, 0, "maxpool2d_forward out");
        OK(C->maxpool2d_backward(din.h, dout.h, NULL, NULL, arg.h, &s));
        OK(G->maxpool2d_backward(din.d, dout.d, in.d, out.d, NULL, &s));
        same(din, 1e-6, 1e-6, "maxpool2d_backward (accumulated into din)");
        drop(in), drop(out), drop(arg), drop(dout), drop(din);
    }
}

/* With ties (4 levels: many) the forward still matches exactly; the backward may pick
 * another maximum of a window than the CPU's first one. What must hold on CUDA: din
 * changes only at elements that are a maximum of a window covering them, and every
 * plane receives the whole sum of its dout (each window's gradient goes to one element,
 * not to all of its maxima). */
Test(cuda, maxpool2d_with_ties_routes_each_window_to_one_maximum) {
    gpu_or_skip();
    for (int i = 0; i < 4; i++) {
        nn_pool_shape s = pool_case(i);
        size_t n_in = (size_t)s.n * s.c * s.h_in * s.w_in, n_out = (size_t)s.n * s.c * s.h_out * s.w_out;
        size_t in_sz = (size_t)s.h_in * s.w_in, out_sz = (size_t)s.h_out * s.w_out;
        buf in = mk_steps(n_in, 4, 0.25, 10 + i);
        buf out = mk(n_out, 0, 0, 20), arg = mk(n_out, 0, 0, 21), dout = mk(n_out, -1, 1, 22), din = mk(n_in, -1, 1, 23);
        OK(C->maxpool2d_forward(out.h, arg.h, in.h, &s));
        OK(G->maxpool2d_forward(out.d, NULL, in.d, &s));
        same(out, 0, 0, "maxpool2d_forward out (ties)");
        OK(G->maxpool2d_backward(din.d, dout.d, in.d, out.d, NULL, &s));
        nn_real *got = malloc(n_in * sizeof *got);
        char *is_max = calloc(n_in, 1);
        cr_assert(got && is_max);
        OK(G->download(got, din.d, n_in * sizeof *got));
        for (size_t p = 0; p < (size_t)s.n * s.c; p++) {
            double want = 0, have = 0;
            for (int oy = 0; oy < s.h_out; oy++)
                for (int ox = 0; ox < s.w_out; ox++) {
                    nn_real m = out.h[p * out_sz + (size_t)oy * s.w_out + ox];
                    want += dout.h[p * out_sz + (size_t)oy * s.w_out + ox];
                    for (int ky = 0; ky < s.k; ky++)
                        for (int kx = 0; kx < s.k; kx++) {
                            size_t e = p * in_sz + (size_t)(oy * s.stride + ky) * s.w_in + ox * s.stride + kx;
                            if (in.h[e] == m) is_max[e] = 1;
                        }
                }
            for (size_t e = p * in_sz; e < (p + 1) * in_sz; e++) {
                double delta = (double)got[e] - din.h[e];
                have += delta;
                cr_assert(is_max[e] || fabs(delta) <= 1e-6, "case %d plane %zu: din[%zu] moved by %g but is no window's maximum",
                          i, p, e - p * in_sz, delta);
            }
            cr_assert(fabs(have - want) <= 1e-5 * (double)out_sz, "case %d plane %zu: din grew by %.7g in total, dout sums to %.7g",
                      i, p, have, want);
        }
        free(got), free(is_max);
        drop(in), drop(out), drop(arg), drop(dout), drop(din);
    }
}

/* ---- linear ------------------------------------------------------------------------------------ */

Test(cuda, linear_matches_cpu) {
    gpu_or_skip();
    const int n = 5, in = 37, out = 11;
    buf x = mk((size_t)n * in, -1, 1, 1), w = mk((size_t)out * in, -1, 1, 2), b = mk(out, -1, 1, 3);
    buf y = mk((size_t)n * out, 0, 0, 4), dy = mk((size_t)n * out, -1, 1, 5);
    buf dx = mk((size_t)n * in, -1, 1, 6), dw = mk((size_t)out * in, -1, 1, 7), db = mk(out, -1, 1, 8);
    OK(C->linear_forward(y.h, x.h, w.h, b.h, n, in, out));
    OK(G->linear_forward(y.d, x.d, w.d, b.d, n, in, out));
    same(y, 2e-6 * (in + 1), 1e-5, "linear_forward");
    OK(C->linear_forward(y.h, x.h, w.h, NULL, n, in, out));
    OK(G->linear_forward(y.d, x.d, w.d, NULL, n, in, out));
    same(y, 2e-6 * (in + 1), 1e-5, "linear_forward without bias");
    OK(C->linear_backward(dx.h, dw.h, db.h, dy.h, x.h, w.h, n, in, out));
    OK(G->linear_backward(dx.d, dw.d, db.d, dy.d, x.d, w.d, n, in, out));
    same(dx, 2e-6 * (out + 1), 1e-5, "linear_backward dx");
    same(dw, 2e-6 * (n + 1), 1e-5, "linear_backward dw");
    same(db, 2e-6 * (n + 1), 1e-5, "linear_backward db");
    OK(C->linear_backward(NULL, dw.h, NULL, dy.h, x.h, w.h, n, in, out));
    OK(G->linear_backward(NULL, dw.d, NULL, dy.d, x.d, w.d, n, in, out));
    same(dw, 4e-6 * (n + 1), 1e-5, "linear_backward dw only");
    drop(x), drop(w), drop(b), drop(y), drop(dy), drop(dx), drop(dw), drop(db);
}

/* ---- dropout ----------------------------------------------------------------------------------- */

Test(cuda, dropout_draws_the_cpu_mask) {
    gpu_or_skip();
    const size_t n = 10007;
    nn_real ps[] = {0.5f, 0.0f, 0.9f};
    for (int i = 0; i < 3; i++) {
        buf x = mk(n, -1, 1, 1), out = mk(n, 0, 0, 2), mask = mk(n, 0, 0, 3), g = mk(n, -1, 1, 4), dx = mk(n, -1, 1, 5);
        uint64_t seed = 0x5eed0000u + (uint64_t)i;
        OK(C->dropout_forward(out.h, mask.h, x.h, n, ps[i], seed));
        OK(G->dropout_forward(out.d, mask.d, x.d, n, ps[i], seed));
        /* the same elements dropped (atol 0: a zero must be a zero); the kept scale
         * 1/(1-p) may be rounded once more or less on one side: rtol 1e-6 */
        same(mask, 0, 1e-6, "dropout mask");
        same(out, 0, 1e-6, "dropout forward");
        OK(C->dropout_backward(dx.h, g.h, mask.h, n));
        OK(G->dropout_backward(dx.d, g.d, mask.d, n));
        same(dx, 1e-6, 1e-6, "dropout backward");
        drop(x), drop(out), drop(mask), drop(g), drop(dx);
    }
}

/* ---- batch normalisation ------------------------------------------------------------------------- */

Test(cuda, batchnorm_matches_cpu) {
    gpu_or_skip();
    const int n = 3, c = 5, hw = 7 * 9;
    size_t total = (size_t)n * c * hw;
    buf x = mk(total, 2, 5, 1);   /* offset from 0: the variance must not cancel */
    buf gamma = mk(c, 0.5, 1.5, 2), beta = mk(c, -1, 1, 3), rm = mk(c, -1, 1, 4), rv = mk(c, 0.5, 2, 5);
    buf out = mk(total, 0, 0, 6), mean = mk(c, 0, 0, 7), invstd = mk(c, 0, 0, 8);
    OK(C->batchnorm_forward_train(out.h, mean.h, invstd.h, rm.h, rv.h, x.h, gamma.h, beta.h, n, c, hw, 0.1f, 1e-5f));
    OK(G->batchnorm_forward_train(out.d, mean.d, invstd.d, rm.d, rv.d, x.d, gamma.d, beta.d, n, c, hw, 0.1f, 1e-5f));
    same(mean, 1e-5, 1e-5, "batchnorm save_mean");
    same(invstd, 1e-5, 1e-4, "batchnorm save_invstd");
    same(out, 1e-4, 1e-4, "batchnorm forward");
    same(rm, 1e-5, 1e-5, "batchnorm running_mean");
    same(rv, 1e-5, 1e-4, "batchnorm running_var (unbiased)");
    buf dout = mk(total, -1, 1, 9), din = mk(total, -1, 1, 10), dg = mk(c, -1, 1, 11), dbeta = mk(c, -1, 1, 12);
    /* backward from the same saved statistics on both sides */
    OK(G->upload(mean.d, mean.h, c * sizeof(nn_real)));
    OK(G->upload(invstd.d, invstd.h, c * sizeof(nn_real)));
    OK(C->batchnorm_backward(din.h, dg.h, dbeta.h, dout.h, x.h, gamma.h, mean.h, invstd.h, n, c, hw, 1e-5f));
    OK(G->batchnorm_backward(din.d, dg.d, dbeta.d, dout.d, x.d, gamma.d, mean.d, invstd.d, n, c, hw, 1e-5f));
    same(dbeta, 2e-6 * n * hw, 1e-5, "batchnorm dbeta");
    same(dg, 2e-5 * n * hw, 1e-4, "batchnorm dgamma");
    same(din, 1e-4, 1e-3, "batchnorm din");
    drop(x), drop(gamma), drop(beta), drop(rm), drop(rv), drop(out), drop(mean), drop(invstd);
    drop(dout), drop(din), drop(dg), drop(dbeta);
}

/* The all-reduce of the data-parallel batch norm, done here on the host: sums k doubles
 * at offset off of each part's device buffer and writes the total back into both. */
static void host_allreduce(double *const *dev, int parts, size_t off, int k) {
    double total[64] = {0}, h[64];
    cr_assert_leq(k, 64);
    for (int p = 0; p < parts; p++) {
        OK(G->download(h, dev[p] + off, (size_t)k * sizeof(double)));
        for (int j = 0; j < k; j++) total[j] += h[j];
    }
    for (int p = 0; p < parts; p++) OK(G->upload(dev[p] + off, total, (size_t)k * sizeof(double)));
}

/* The data-parallel batch-norm kernels (nn/backend.h batchnorm_sum ... _apply,
 * layers/batchnorm2d.cu): a batch of 4 as two parts of 2 on the GPU, the all-reduces done
 * on the host (host_allreduce), against the CPU's whole-batch batchnorm_forward_train and
 * batchnorm_backward: same output, saved and running statistics, input gradient, and
 * parameter gradients that add up to the whole batch's. Skips without a GPU. */
Test(cuda, batchnorm_data_parallel_kernels_match_the_whole_batch) {
    gpu_or_skip();
    enum { P = 2 };
    const int n = 4, part_n = n / P, c = 5, hw = 7 * 9;
    const size_t total = (size_t)n * c * hw, part = (size_t)part_n * c * hw;
    const double m = (double)n * hw;
    buf x = mk(total, 2, 5, 1), gamma = mk(c, 0.5, 1.5, 2), beta = mk(c, -1, 1, 3);
    buf rm = mk(c, -1, 1, 4), rv = mk(c, 0.5, 2, 5), out = mk(total, 0, 0, 6), mean = mk(c, 0, 0, 7);
    buf invstd = mk(c, 0, 0, 8), dout = mk(total, -1, 1, 9), din = mk(total, -1, 1, 10);
    buf dg = mk(c, 0, 0, 11), dbeta = mk(c, 0, 0, 12);
    buf prm[P], prv[P], pmean[P], pinv[P], pdg[P], pdb[P];
    double *stats[P], *sums[P];
    for (int p = 0; p < P; p++) {
        prm[p] = mk(c, -1, 1, 4), prv[p] = mk(c, 0.5, 2, 5); /* each part's running stats, from the same start */
        pmean[p] = mk(c, 0, 0, 7), pinv[p] = mk(c, 0, 0, 8), pdg[p] = mk(c, 0, 0, 11), pdb[p] = mk(c, 0, 0, 12);
        stats[p] = G->alloc(2 * (size_t)c * sizeof(double));
        sums[p] = G->alloc(2 * (size_t)c * sizeof(double));
        cr_assert(stats[p] && sums[p], "%s", nn_last_error());
    }
    /* the reference: the whole batch on the CPU */
    OK(C->batchnorm_forward_train(out.h, mean.h, invstd.h, rm.h, rv.h, x.h, gamma.h, beta.h, n, c, hw, 0.1f, 1e-5f));
    OK(C->batchnorm_backward(din.h, dg.h, dbeta.h, dout.h, x.h, gamma.h, mean.h, invstd.h, n, c, hw, 1e-5f));
    /* the parts on the GPU */
    for (int p = 0; p < P; p++) OK(G->batchnorm_sum(stats[p], x.d + p * part, part_n, c, hw));
    host_allreduce(stats, P, 0, c);
    for (int p = 0; p < P; p++) OK(G->batchnorm_sqdev(stats[p] + c, x.d + p * part, stats[p], m, part_n, c, hw));
    host_allreduce(stats, P, c, c);
    for (int p = 0; p < P; p++)
        OK(G->batchnorm_apply_train(out.d + p * part, pmean[p].d, pinv[p].d, prm[p].d, prv[p].d, x.d + p * part, gamma.d,
                                    beta.d, stats[p], m, part_n, c, hw, 0.1f, 1e-5f));
    for (int p = 0; p < P; p++)
        OK(G->batchnorm_backward_sums(sums[p], pdg[p].d, pdb[p].d, dout.d + p * part, x.d + p * part, pmean[p].d,
                                      pinv[p].d, part_n, c, hw));
    host_allreduce(sums, P, 0, 2 * c);
    for (int p = 0; p < P; p++)
        OK(G->batchnorm_backward_apply(din.d + p * part, dout.d + p * part, x.d + p * part, gamma.d, pmean[p].d,
                                       pinv[p].d, sums[p], m, part_n, c, hw));
    same(out, 1e-4, 1e-4, "data-parallel batchnorm forward");
    same(din, 1e-4, 1e-3, "data-parallel batchnorm din");
    nn_real dg_sum[8] = {0}, db_sum[8] = {0}, h[8];
    for (int p = 0; p < P; p++) {
        memcpy(pmean[p].h, mean.h, c * sizeof(nn_real)), memcpy(pinv[p].h, invstd.h, c * sizeof(nn_real));
        memcpy(prm[p].h, rm.h, c * sizeof(nn_real)), memcpy(prv[p].h, rv.h, c * sizeof(nn_real));
        same(pmean[p], 1e-5, 1e-5, "data-parallel save_mean");
        same(pinv[p], 1e-5, 1e-4, "data-parallel save_invstd");
        same(prm[p], 1e-5, 1e-5, "data-parallel running_mean");
        same(prv[p], 1e-5, 1e-4, "data-parallel running_var");
        OK(G->download(h, pdg[p].d, c * sizeof(nn_real)));
        for (int j = 0; j < c; j++) dg_sum[j] += h[j];
        OK(G->download(h, pdb[p].d, c * sizeof(nn_real)));
        for (int j = 0; j < c; j++) db_sum[j] += h[j];
    }
    tu_assert_close(dg_sum, dg.h, c, 2e-5 * n * hw, 1e-4, "data-parallel dgamma, summed over the parts");
    tu_assert_close(db_sum, dbeta.h, c, 2e-6 * n * hw, 1e-5, "data-parallel dbeta, summed over the parts");
    for (int p = 0; p < P; p++) {
        G->release(stats[p]), G->release(sums[p]);
        drop(prm[p]), drop(prv[p]), drop(pmean[p]), drop(pinv[p]), drop(pdg[p]), drop(pdb[p]);
    }
    drop(x), drop(gamma), drop(beta), drop(rm), drop(rv), drop(out), drop(mean), drop(invstd);
    drop(dout), drop(din), drop(dg), drop(dbeta);
}

/* A host copy of the device side of b. */
static nn_real *snapshot(buf b) {
    nn_real *h = malloc((b.n ? b.n : 1) * sizeof(nn_real));
    cr_assert_not_null(h);
    OK(G->download(h, b.d, b.n * sizeof(nn_real)));
    return h;
}

/* Gradients not wanted (NULL): cuDNN writes all three, so the CUDA kernel hands it
 * scratch memory for the others. Every subset of {din, dgamma, dbeta}: the wanted ones
 * accumulate as on the CPU, the others' buffers stay bit for bit untouched (they are
 * not passed, so only a stray write could change them). */
Test(cuda, batchnorm_backward_skips_unwanted_gradients) {
    gpu_or_skip();
    const int n = 2, c = 4, hw = 5 * 6;
    size_t total = (size_t)n * c * hw;
    buf x = mk(total, 2, 5, 1), gamma = mk(c, 0.5, 1.5, 2), beta = mk(c, -1, 1, 3), rm = mk(c, 0, 0, 4), rv = mk(c, 1, 1, 5);
    buf out = mk(total, 0, 0, 6), mean = mk(c, 0, 0, 7), invstd = mk(c, 0, 0, 8), dout = mk(total, -1, 1, 9);
    OK(C->batchnorm_forward_train(out.h, mean.h, invstd.h, rm.h, rv.h, x.h, gamma.h, beta.h, n, c, hw, 0.1f, 1e-5f));
    OK(G->upload(mean.d, mean.h, c * sizeof(nn_real)));
    OK(G->upload(invstd.d, invstd.h, c * sizeof(nn_real)));
    for (int want = 0; want < 8; want++) { /* bit 0: din, 1: dgamma, 2: dbeta */
        buf din = mk(total, -1, 1, 10 + want), dg = mk(c, -1, 1, 20 + want), dbeta = mk(c, -1, 1, 30 + want);
        nn_real *din0 = snapshot(din), *dg0 = snapshot(dg), *dbeta0 = snapshot(dbeta);
        OK(C->batchnorm_backward(want & 1 ? din.h : NULL, want & 2 ? dg.h : NULL, want & 4 ? dbeta.h : NULL, dout.h, x.h,
                                 gamma.h, mean.h, invstd.h, n, c, hw, 1e-5f));
        OK(G->batchnorm_backward(want & 1 ? din.d : NULL, want & 2 ? dg.d : NULL, want & 4 ? dbeta.d : NULL, dout.d, x.d,
                                 gamma.d, mean.d, invstd.d, n, c, hw, 1e-5f));
        char what[64];
        buf bufs[3] = {din, dg, dbeta};
        nn_real *before[3] = {din0, dg0, dbeta0};
        const char *names[3] = {"din", "dgamma", "dbeta"};
        const double atol[3] = {1e-4, 2e-5 * n * hw, 2e-6 * n * hw}, rtol[3] = {1e-3, 1e-4, 1e-5};
        for (int k = 0; k < 3; k++) {
            snprintf(what, sizeof what, "batchnorm %s (wanted: mask %d)", names[k], want);
            if (want & (1 << k)) {
                same(bufs[k], atol[k], rtol[k], what);
            } else {
                nn_real *now = snapshot(bufs[k]);
                cr_assert(!memcmp(now, before[k], bufs[k].n * sizeof(nn_real)), "%s: not wanted, but changed", what);
                free(now);
            }
        }
        free(din0), free(dg0), free(dbeta0);
        drop(din), drop(dg), drop(dbeta);
    }
    drop(x), drop(gamma), drop(beta), drop(rm), drop(rv), drop(out), drop(mean), drop(invstd), drop(dout);
}

Test(cuda, batchnorm_rejects_eps_below_cudnn_minimum) {
    gpu_or_skip();
    const int n = 2, c = 3, hw = 4;
    size_t total = (size_t)n * c * hw;
    buf x = mk(total, -1, 1, 1), gamma = mk(c, 1, 1, 2), beta = mk(c, 0, 0, 3), rm = mk(c, 0, 0, 4), rv = mk(c, 1, 1, 5);
    buf out = mk(total, 0, 0, 6), mean = mk(c, 0, 0, 7), invstd = mk(c, 0, 0, 8);
    cr_assert_eq(G->batchnorm_forward_train(out.d, mean.d, invstd.d, rm.d, rv.d, x.d, gamma.d, beta.d, n, c, hw, 0.1f,
                                            -1e-3f),
                 -1);
    cr_assert(strstr(nn_last_error(), "eps") && strstr(nn_last_error(), "CUDNN_BN_MIN_EPSILON"), "%s", nn_last_error());
    cr_assert_eq(G->batchnorm_backward(out.d, NULL, NULL, x.d, x.d, gamma.d, mean.d, invstd.d, n, c, hw, -1e-3f), -1);
    cr_assert(strstr(nn_last_error(), "CUDNN_BN_MIN_EPSILON"), "%s", nn_last_error());
    drop(x), drop(gamma), drop(beta), drop(rm), drop(rv), drop(out), drop(mean), drop(invstd);
}

/* ---- softmax ---------------------------------------------------------------------------------------- */

/* cuDNN's CUDNN_SOFTMAX_ACCURATE subtracts the maximum: logits of +-100 (exp(100)
 * overflows float) must come out as the CPU's; one channel gives all ones; hw = 1 is an
 * (N, C) softmax. Backward accumulates into dx (beta 1). */
Test(cuda, softmax_matches_cpu) {
    gpu_or_skip();
    /* {n, c, hw, range} */
    const int cases[][4] = {{2, 33, 5 * 7, 5}, {3, 7, 1, 100}, {2, 1, 9, 5}, {1, 5, 300, 100}};
    for (int i = 0; i < 4; i++) {
        const int n = cases[i][0], c = cases[i][1], hw = cases[i][2];
        size_t total = (size_t)n * c * hw;
        buf x = mk(total, -cases[i][3], cases[i][3], 1 + i), p = mk(total, 0, 0, 2), dp = mk(total, -1, 1, 3);
        buf dx = mk(total, -1, 1, 4);
        char what[64];
        snprintf(what, sizeof what, "softmax forward N%d C%d HW%d", n, c, hw);
        OK(C->softmax_forward(p.h, x.h, n, c, hw));
        OK(G->softmax_forward(p.d, x.d, n, c, hw));
        same(p, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "softmax backward N%d C%d HW%d", n, c, hw);
        OK(C->softmax_backward(dx.h, dp.h, p.h, n, c, hw));
        OK(G->softmax_backward(dx.d, dp.d, p.d, n, c, hw));
        same(dx, 1e-6, 1e-5, what);
        drop(x), drop(p), drop(dp), drop(dx);
    }
}

/* ---- selection -------------------------------------------------------------------------------------- */

static void selection_case(int n, int c, int h, int w, int d, int dmin, uint64_t seed) {
    size_t n_lr = (size_t)n * c * h * w, n_p = (size_t)n * d * h * w;
    buf prob = mk(n_p, 0, 1, seed), left = mk(n_lr, 0, 255, seed + 1), right = mk(n_lr, 0, 0, seed + 2);
    buf dright = mk(n_lr, -1, 1, seed + 3), dprob = mk(n_p, -1, 1, seed + 4), dleft = mk(n_lr, -1, 1, seed + 5);
    char m[120];
    snprintf(m, sizeof m, "selection N%d C%d H%d W%d D%d dmin %d", n, c, h, w, d, dmin);
    OK(C->selection_forward(right.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->selection_forward(right.d, prob.d, left.d, n, c, h, w, d, dmin));
    same(right, 2e-6 * d * 255, 1e-5, m);   /* d terms of up to 255 */
    OK(C->selection_backward(dprob.h, dleft.h, dright.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->selection_backward(dprob.d, dleft.d, dright.d, prob.d, left.d, n, c, h, w, d, dmin));
    same(dprob, 2e-6 * c * 255, 1e-5, m);
    same(dleft, 2e-6 * d * w, 1e-5, m);   /* an edge column collects up to d*w terms */
    /* dprob alone and dleft alone (NULL for the other) */
    OK(C->selection_backward(dprob.h, NULL, dright.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->selection_backward(dprob.d, NULL, dright.d, prob.d, left.d, n, c, h, w, d, dmin));
    same(dprob, 4e-6 * c * 255, 1e-5, m);
    OK(C->selection_backward(NULL, dleft.h, dright.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->selection_backward(NULL, dleft.d, dright.d, prob.d, left.d, n, c, h, w, d, dmin));
    same(dleft, 4e-6 * d * w, 1e-5, m);
    drop(prob), drop(left), drop(right), drop(dright), drop(dprob), drop(dleft);
}

Test(cuda, selection_matches_cpu) {
    gpu_or_skip();
    selection_case(2, 3, 4, 20, 33, -15, 1);   /* Deep3D's 33 shifts on a narrow image: heavy clamping */
    selection_case(1, 3, 3, 64, 33, -15, 2);   /* wider than the shift range */
    selection_case(2, 2, 2, 1, 5, -2, 3);      /* a single column: everything clamps onto it */
    selection_case(1, 1, 2, 9, 1, 3, 4);       /* one positive shift */
}

/* ---- L1 loss ------------------------------------------------------------------------------------------ */

Test(cuda, l1_loss_matches_cpu) {
    gpu_or_skip();
    const size_t n = 100003;
    buf pred = mk(n, 0, 255, 1), target = mk_steps(n, 256, 1, 2), loss = mk(1, 0, 0, 3);
    /* some exact zeros of pred - target: sign(0) = 0 */
    for (size_t i = 0; i < n; i += 7) pred.h[i] = target.h[i];
    OK(G->upload(pred.d, pred.h, n * sizeof(nn_real)));
    OK(C->l1_loss_forward(loss.h, pred.h, target.h, n));
    OK(G->l1_loss_forward(loss.d, pred.d, target.d, n));
    same(loss, 1e-4, 1e-5, "l1 loss");
    buf dloss = mk(1, 0.5, 2, 4), dpred = mk(n, -1e-5, 1e-5, 5);
    OK(C->l1_loss_backward(dpred.h, dloss.h, pred.h, target.h, n));
    OK(G->l1_loss_backward(dpred.d, dloss.d, pred.d, target.d, n));
    same(dpred, 1e-10, 1e-5, "l1 loss backward");
    drop(pred), drop(target), drop(loss), drop(dloss), drop(dpred);
}

/* ---- SSIM + L1 loss and disparity smoothness ------------------------------------------------------------ */

/* Both backends compute every window and pixel with the same header functions in double;
 * they differ in the order of the sums (float32 results of double sums: 1e-6 relative),
 * in fused multiply-adds (the device contracts, the C11 host does not) and so in an ulp
 * of the float gradient maps, whose terms can cancel: gradients are compared within
 * 1e-5 of their largest element. Some pixels have pred == target (sign 0),
 * one case has target = pred (SSIM 1, the clamp's end). Backward gradients start
 * random: the kernels accumulate. */
static void ssim_l1_case(int n, int c, int h, int w, int equal, uint64_t seed) {
    const size_t total = (size_t)n * c * h * w;
    buf pred = mk(total, 0, 255, seed), target = mk(total, 0, 255, seed + 1), loss = mk(1, 0, 0, seed + 2);
    for (size_t i = 0; i < total; i++) {
        if (equal || i % 10 == 0) target.h[i] = pred.h[i]; /* sign(0) = 0 */
        else if (i % 5 == 0) target.h[i] = pred.h[i] + (nn_real)(20 * nn_hash_uniform(seed, i) - 10);
    }
    OK(G->upload(target.d, target.h, total * sizeof(nn_real)));
    char m[96];
    snprintf(m, sizeof m, "ssim_l1 N%d C%d H%d W%d%s", n, c, h, w, equal ? " equal" : "");
    OK(C->ssim_l1_loss_forward(loss.h, pred.h, target.h, n, c, h, w, 0.85f));
    OK(G->ssim_l1_loss_forward(loss.d, pred.d, target.d, n, c, h, w, 0.85f));
    same(loss, 1e-5, 1e-5, m);
    buf dloss = mk(1, 0.5, 2, seed + 3), dpred = mk(total, -1.0 / total, 1.0 / total, seed + 4);
    OK(C->ssim_l1_loss_backward(dpred.h, dloss.h, pred.h, target.h, n, c, h, w, 0.85f));
    OK(G->ssim_l1_loss_backward(dpred.d, dloss.d, pred.d, target.d, n, c, h, w, 0.85f));
    same_scaled(dpred, 1e-5, m);
    drop(pred), drop(target), drop(loss), drop(dloss), drop(dpred);
}

Test(cuda, ssim_l1_loss_matches_cpu) {
    gpu_or_skip();
    ssim_l1_case(2, 3, 5, 7, 0, 1);
    ssim_l1_case(1, 2, 3, 3, 0, 10);      /* one window per channel */
    ssim_l1_case(4, 3, 160, 384, 0, 20);  /* Deep3D's training size, many blocks */
    ssim_l1_case(2, 3, 9, 4, 1, 30);      /* identical images: loss 0 */
}

/* prob uniform in [0, 1) (the layer takes any values), some rows of E constant (one-hot
 * prob: the |.| kink, sign 0); left 0..255 with flat areas (zero image gradients). */
static void smoothness_case(int n, int c, int h, int w, int d, int dmin, uint64_t seed) {
    const size_t n_p = (size_t)n * d * h * w, n_l = (size_t)n * c * h * w, plane = (size_t)h * w;
    buf prob = mk(n_p, 0, 1, seed), left = mk_steps(n_l, 4, 85, seed + 1), loss = mk(1, 0, 0, seed + 2);
    for (size_t i = 0; i < n_p; i++)
        if (i % plane / w == 1) prob.h[i] = (nn_real)(i / plane % d == 1); /* row 1: E = dmin + 1 */
    OK(G->upload(prob.d, prob.h, n_p * sizeof(nn_real)));
    char m[96];
    snprintf(m, sizeof m, "smoothness N%d C%d H%d W%d D%d dmin %d", n, c, h, w, d, dmin);
    OK(C->disparity_smoothness_forward(loss.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->disparity_smoothness_forward(loss.d, prob.d, left.d, n, c, h, w, d, dmin));
    same(loss, 1e-6, 1e-5, m);
    buf dloss = mk(1, 0.5, 2, seed + 3), dprob = mk(n_p, -1.0 / n_l, 1.0 / n_l, seed + 4);
    OK(C->disparity_smoothness_backward(dprob.h, dloss.h, prob.h, left.h, n, c, h, w, d, dmin));
    OK(G->disparity_smoothness_backward(dprob.d, dloss.d, prob.d, left.d, n, c, h, w, d, dmin));
    same_scaled(dprob, 1e-5, m);
    drop(prob), drop(left), drop(loss), drop(dloss), drop(dprob);
}

Test(cuda, disparity_smoothness_matches_cpu) {
    gpu_or_skip();
    smoothness_case(2, 3, 5, 7, 9, -4, 1);
    smoothness_case(1, 3, 3, 3, 5, 0, 10);
    smoothness_case(4, 3, 160, 384, 33, -15, 20);  /* Deep3D's training size */
    smoothness_case(2, 3, 1, 6, 3, -1, 30);        /* one row: no y differences */
    smoothness_case(3, 1, 6, 1, 4, 2, 40);         /* one column: no x differences */
}

/* ---- optimizers ---------------------------------------------------------------------------------------- */

Test(cuda, sgd_and_adam_steps_match_cpu) {
    gpu_or_skip();
    const size_t n = 1000;
    buf w = mk(n, -1, 1, 1), v = mk(n, 0, 0, 2), g = mk(n, -1, 1, 3);
    for (int step = 1; step <= 3; step++) {
        OK(C->sgd_step(w.h, v.h, g.h, n, 0.01f, 0.9f, 1e-4f));
        OK(G->sgd_step(w.d, v.d, g.d, n, 0.01f, 0.9f, 1e-4f));
    }
    same(v, 1e-6, 1e-5, "sgd velocity");
    same(w, 1e-6, 1e-5, "sgd weights");
    buf m = mk(n, 0, 0, 4), s = mk(n, 0, 0, 5);
    for (long step = 1; step <= 3; step++) {
        OK(C->adam_step(w.h, m.h, s.h, g.h, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, step));
        OK(G->adam_step(w.d, m.d, s.d, g.d, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, step));
    }
    same(m, 1e-6, 1e-5, "adam first moment");
    same(s, 1e-7, 1e-5, "adam second moment");
    same(w, 1e-6, 1e-5, "adam weights");
    drop(w), drop(v), drop(g), drop(m), drop(s);
}
