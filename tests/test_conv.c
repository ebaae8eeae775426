/* Convolution and transposed convolution (float32): forward and backward against
 * naive loops written straight from the definitions (torch.nn.Conv2d and
 * torch.nn.ConvTranspose2d documentation), the bilinear initialisation against the
 * DEEP3D.md formula and the properties of bilinear interpolation, and the errors. */
#include <math.h>
#include <stdio.h>

#include "../layers/conv2d_winograd.h"
#include "testutil.h"

typedef struct {
    int n, ci, h, w, co, kh, kw, stride, pad, dil;
} geom;

static int conv_out(int in, int k, int stride, int pad, int dil) {
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

/* ---- naive convolution ------------------------------------------------------- */

/* out (N, CO, HO, WO) = conv(x, w) + b, 7 nested loops, double accumulation */
static void naive_conv_forward(nn_real *out, const nn_real *x, const nn_real *w, const nn_real *b,
                               const geom *g, int ho, int wo) {
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->co; o++)
            for (int y = 0; y < ho; y++)
                for (int xx = 0; xx < wo; xx++) {
                    double s = b ? b[o] : 0;
                    for (int c = 0; c < g->ci; c++)
                        for (int i = 0; i < g->kh; i++)
                            for (int j = 0; j < g->kw; j++) {
                                int iy = y * g->stride - g->pad + i * g->dil;
                                int ix = xx * g->stride - g->pad + j * g->dil;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                s += (double)w[((o * g->ci + c) * g->kh + i) * g->kw + j] *
                                     x[((n * g->ci + c) * g->h + iy) * g->w + ix];
                            }
                    out[((n * g->co + o) * ho + y) * wo + xx] = (nn_real)s;
                }
}

/* dx, dw, db += the same loops with the products routed back (accumulated in double) */
static void naive_conv_backward(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dout,
                                const nn_real *x, const nn_real *w, const geom *g, int ho, int wo) {
    size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->co * g->ci * g->kh * g->kw;
    double *ax = calloc(nx, sizeof *ax), *aw = calloc(nw, sizeof *aw), *ab = calloc(g->co, sizeof *ab);
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->co; o++)
            for (int y = 0; y < ho; y++)
                for (int xx = 0; xx < wo; xx++) {
                    double d = dout[((n * g->co + o) * ho + y) * wo + xx];
                    ab[o] += d;
                    for (int c = 0; c < g->ci; c++)
                        for (int i = 0; i < g->kh; i++)
                            for (int j = 0; j < g->kw; j++) {
                                int iy = y * g->stride - g->pad + i * g->dil;
                                int ix = xx * g->stride - g->pad + j * g->dil;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                size_t xi = ((size_t)(n * g->ci + c) * g->h + iy) * g->w + ix;
                                size_t wi = ((size_t)(o * g->ci + c) * g->kh + i) * g->kw + j;
                                ax[xi] += d * w[wi];
                                aw[wi] += d * x[xi];
                            }
                }
    for (size_t i = 0; i < nx; i++) dx[i] += (nn_real)ax[i];
    for (size_t i = 0; i < nw; i++) dw[i] += (nn_real)aw[i];
    for (int i = 0; i < g->co; i++) db[i] += (nn_real)ab[i];
    free(ax), free(aw), free(ab);
}

/* Forward, then backward from a random upstream gradient into gradients that already
 * hold values (the kernels must add, not overwrite), all against the naive loops. With
 * relu, nn_conv2d_relu against max(0, naive) and the naive backward of the upstream
 * gradient masked by naive > 0. */
static void check_conv_act(const geom *g, uint64_t seed, int relu) {
    char what[160];
    snprintf(what, sizeof what, "conv2d%s N%d C%d %dx%d -> C%d k%dx%d s%d p%d d%d", relu ? "+relu" : "", g->n,
             g->ci, g->h, g->w, g->co, g->kh, g->kw, g->stride, g->pad, g->dil);
    int ho = conv_out(g->h, g->kh, g->stride, g->pad, g->dil), wo = conv_out(g->w, g->kw, g->stride, g->pad, g->dil);
    nn_tensor *x = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, seed);
    nn_tensor *w = tu_uniform4(g->co, g->ci, g->kh, g->kw, -1, 1, seed + 1);
    nn_tensor *b = tu_uniform4(g->co, 0, 0, 0, -1, 1, seed + 2);
    x->requires_grad = w->requires_grad = b->requires_grad = 1;
    x->grad = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, seed + 3);
    w->grad = tu_uniform4(g->co, g->ci, g->kh, g->kw, -1, 1, seed + 4);
    b->grad = tu_uniform4(g->co, 0, 0, 0, -1, 1, seed + 5);
    nn_real *want_dx = tu_host(x->grad), *want_dw = tu_host(w->grad), *want_db = tu_host(b->grad);

    nn_graph gr;
    nn_graph_init(&gr, 1);
    nn_tensor *y = (relu ? nn_conv2d_relu : nn_conv2d)(&gr, x, w, b, g->stride, g->pad, g->dil);
    cr_assert_not_null(y, "%s: %s", what, nn_last_error());
    cr_assert(y->ndim == 4 && y->shape[0] == g->n && y->shape[1] == g->co && y->shape[2] == ho &&
                  y->shape[3] == wo,
              "%s: output shape %d %d %d %d", what, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    nn_real *want = malloc(y->numel * sizeof *want);
    naive_conv_forward(want, x->data, w->data, b->data, g, ho, wo);
    nn_real *pre = malloc(y->numel * sizeof *pre);
    memcpy(pre, want, y->numel * sizeof *pre);
    size_t positive = 0;
    if (relu)
        for (size_t i = 0; i < y->numel; i++) want[i] = want[i] > 0 ? want[i] : 0, positive += want[i] > 0;
    if (relu) cr_assert(positive > y->numel / 4 && positive < y->numel * 3 / 4, "%s: %zu of %zu positive", what,
                        positive, y->numel);
    /* Winograd (forced in the relu test) rounds differently: its bound, not im2col's */
    const double tol = relu ? 1e-4 : 1e-5;
    tu_assert_close(y->data, want, y->numel, tol, tol, what);

    nn_tensor *r = tu_uniform(y->ndim, y->shape, -1, 1, seed + 6);
    nn_real *dpre = tu_host(r);
    if (relu) /* pre-activations within 1e-4 of 0 could fall either way in float: excluded */
        for (size_t i = 0; i < y->numel; i++) {
            if (pre[i] <= 0) dpre[i] = 0;
            if (fabs(pre[i]) < 1e-4) dpre[i] = r->data[i] = 0;
        }
    cr_assert_eq(nn_graph_backward_from(&gr, y, r), 0, "%s: %s", what, nn_last_error());
    naive_conv_backward(want_dx, want_dw, want_db, dpre, x->data, w->data, g, ho, wo);
    tu_assert_close(x->grad->data, want_dx, x->numel, tol, tol, "conv2d dx");
    tu_assert_close(w->grad->data, want_dw, w->numel, tol, tol, "conv2d dweight");
    tu_assert_close(b->grad->data, want_db, b->numel, tol, tol, "conv2d dbias");

    free(want), free(pre), free(dpre), free(want_dx), free(want_dw), free(want_db);
    nn_graph_free(&gr);
    nn_tensor_unref(r), nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", what, nn_tensor_live_count());
}

static void check_conv(const geom *g, uint64_t seed) { check_conv_act(g, seed, 0); }

/* The fused ReLU on every CPU path: im2col (with and without bias-only 1x1), Winograd
 * F(2x2, 3x3) and F(4x4, 3x3), with partial last tiles (odd sizes). */
Test(conv2d, relu_fused_matches_naive_loops_on_every_algorithm) {
    const geom gs[] = {
        {2, 16, 9, 11, 16, 3, 3, 1, 1, 1}, /* 3x3: Winograd when forced */
        {1, 17, 13, 7, 18, 3, 3, 1, 0, 1}, /* padding 0, odd output */
        {2, 3, 8, 8, 4, 4, 4, 2, 1, 1},    /* im2col only */
        {2, 5, 6, 4, 3, 1, 1, 1, 0, 1},    /* pointwise fast path */
    };
    const nn_conv_algo algos[] = {NN_CONV_ALGO_IM2COL, NN_CONV_ALGO_WINOGRAD, NN_CONV_ALGO_WINOGRAD4};
    for (size_t a = 0; a < sizeof algos / sizeof *algos; a++) {
        nn_conv_algo_set(algos[a]);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) check_conv_act(&gs[i], 700 + 10 * i, 1);
    }
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
}

Test(conv2d, kernel3_stride1_pad1_matches_naive_loops) {
    geom g = {2, 3, 7, 9, 4, 3, 3, 1, 1, 1};
    check_conv(&g, 100);
}

Test(conv2d, kernel1_pointwise_fast_path_matches_naive_loops) {
    geom a = {2, 5, 6, 4, 3, 1, 1, 1, 0, 1};
    check_conv(&a, 110);
    geom b = {2, 4, 7, 5, 3, 1, 1, 2, 0, 1}; /* 1x1 with stride 2: the im2col path */
    check_conv(&b, 120);
    geom c = {1, 3, 4, 4, 2, 1, 1, 1, 1, 1}; /* 1x1 with padding 1 */
    check_conv(&c, 130);
}

Test(conv2d, strides_paddings_kernels_match_naive_loops) {
    const geom gs[] = {
        {2, 3, 8, 8, 4, 4, 4, 2, 1, 1},   /* kernel 4, stride 2, pad 1 */
        {2, 2, 11, 8, 3, 5, 5, 3, 2, 1},  /* kernel 5, stride 3, pad 2, non-square */
        {1, 3, 9, 6, 2, 5, 5, 1, 0, 1},   /* valid convolution */
        {2, 2, 5, 7, 3, 3, 3, 1, 2, 1},   /* padding larger than needed: output grows */
        {1, 2, 10, 9, 3, 3, 3, 3, 0, 1},  /* stride 3, last rows unused (floor) */
        {2, 3, 6, 8, 2, 1, 3, 1, 1, 1},   /* non-square kernel 1x3 */
        {1, 2, 7, 6, 3, 4, 2, 2, 1, 1},   /* non-square kernel 4x2, stride 2 */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) check_conv(&gs[i], 200 + 10 * i);
}

Test(conv2d, dilation_matches_naive_loops) {
    const geom gs[] = {
        {2, 3, 9, 8, 4, 3, 3, 1, 2, 2},   /* kernel 3, dilation 2, "same" padding */
        {1, 2, 11, 10, 3, 3, 3, 2, 1, 2}, /* dilation 2, stride 2 */
        {2, 2, 12, 11, 2, 4, 4, 1, 0, 3}, /* kernel 4, dilation 3 */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) check_conv(&gs[i], 300 + 10 * i);
}

Test(conv2d, backward_computes_only_required_gradients) {
    nn_tensor *x = tu_uniform4(1, 2, 5, 5, -1, 1, 1), *w = tu_uniform4(3, 2, 3, 3, -1, 1, 2),
              *b = tu_uniform4(3, 0, 0, 0, -1, 1, 3);
    nn_graph g;
    nn_graph_init(&g, 1);
    /* nothing requires a gradient: nothing is recorded */
    nn_tensor *y = nn_conv2d(&g, x, w, b, 1, 1, 1);
    cr_assert_not_null(y, "%s", nn_last_error());
    cr_assert_eq(g.n_nodes, 0);
    nn_tensor_unref(y);
    /* only the bias: x and the weight get no gradient, the bias the channel sums */
    b->requires_grad = 1;
    y = nn_conv2d(&g, x, w, b, 1, 1, 1);
    cr_assert_eq(g.n_nodes, 1);
    cr_assert_eq(nn_graph_backward_from(&g, y, NULL), 0, "%s", nn_last_error());
    cr_assert_null(x->grad);
    cr_assert_null(w->grad);
    for (int c = 0; c < 3; c++) cr_assert_eq(b->grad->data[c], 25, "dbias[%d] = %g", c, b->grad->data[c]);
    nn_tensor_unref(y);
    nn_graph_free(&g);
    nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(conv2d, rejects_mismatched_shapes_with_a_clear_message) {
    nn_tensor *x = tu_uniform4(2, 3, 8, 8, 0, 1, 1), *w = tu_uniform4(4, 5, 3, 3, 0, 1, 2);
    nn_tensor *w2 = tu_uniform4(4, 3, 3, 3, 0, 1, 3), *b = tu_uniform4(5, 0, 0, 0, 0, 1, 4);
    cr_assert_null(nn_conv2d(NULL, x, w, NULL, 1, 1, 1));
    cr_assert(strstr(nn_last_error(), "conv2d: input (2, 3, 8, 8) has 3 channels, weight (4, 5, 3, 3) expects 5"),
              "message: %s", nn_last_error());
    cr_assert_null(nn_conv2d(NULL, x, w2, b, 1, 1, 1));
    cr_assert(strstr(nn_last_error(), "conv2d: bias (5) does not match the 4 output channels"), "message: %s",
              nn_last_error());
    cr_assert_null(nn_conv2d(NULL, x, w2, NULL, 1, 0, 5));
    cr_assert(strstr(nn_last_error(), "gives an empty output"), "message: %s", nn_last_error());
    cr_assert_null(nn_conv2d(NULL, x, w2, NULL, 0, 1, 1));
    cr_assert(strstr(nn_last_error(), "stride 0"), "message: %s", nn_last_error());
    cr_assert_null(nn_conv2d(NULL, NULL, w2, NULL, 1, 1, 1)); /* NULL propagates */
    nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(w2), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

/* ---- naive transposed convolution -------------------------------------------------- */

typedef struct {
    int n, ci, h, w, co, k, stride, pad;
} tgeom;

/* out (N, CO, HO, WO): every input pixel scatters weight[c, o] * x into the output */
static void naive_tconv_forward(nn_real *out, const nn_real *x, const nn_real *w, const nn_real *b,
                                const tgeom *g, int ho, int wo) {
    size_t nout = (size_t)g->n * g->co * ho * wo;
    double *acc = calloc(nout, sizeof *acc);
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->ci; c++)
            for (int y = 0; y < g->h; y++)
                for (int xx = 0; xx < g->w; xx++)
                    for (int o = 0; o < g->co; o++)
                        for (int i = 0; i < g->k; i++)
                            for (int j = 0; j < g->k; j++) {
                                int oy = y * g->stride - g->pad + i, ox = xx * g->stride - g->pad + j;
                                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                                acc[((size_t)(n * g->co + o) * ho + oy) * wo + ox] +=
                                    (double)x[((n * g->ci + c) * g->h + y) * g->w + xx] *
                                    w[((c * g->co + o) * g->k + i) * g->k + j];
                            }
    for (size_t i = 0; i < nout; i++) out[i] = (nn_real)(acc[i] + (b ? b[(i / ((size_t)ho * wo)) % g->co] : 0));
    free(acc);
}

static void naive_tconv_backward(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dout,
                                 const nn_real *x, const nn_real *w, const tgeom *g, int ho, int wo) {
    size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->ci * g->co * g->k * g->k;
    double *ax = calloc(nx, sizeof *ax), *aw = calloc(nw, sizeof *aw), *ab = calloc(g->co, sizeof *ab);
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->co; o++)
            for (int i = 0; i < ho * wo; i++) ab[o] += dout[(size_t)(n * g->co + o) * ho * wo + i];
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->ci; c++)
            for (int y = 0; y < g->h; y++)
                for (int xx = 0; xx < g->w; xx++)
                    for (int o = 0; o < g->co; o++)
                        for (int i = 0; i < g->k; i++)
                            for (int j = 0; j < g->k; j++) {
                                int oy = y * g->stride - g->pad + i, ox = xx * g->stride - g->pad + j;
                                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                                size_t xi = ((size_t)(n * g->ci + c) * g->h + y) * g->w + xx;
                                size_t wi = ((size_t)(c * g->co + o) * g->k + i) * g->k + j;
                                double d = dout[((size_t)(n * g->co + o) * ho + oy) * wo + ox];
                                ax[xi] += d * w[wi];
                                aw[wi] += d * x[xi];
                            }
    for (size_t i = 0; i < nx; i++) dx[i] += (nn_real)ax[i];
    for (size_t i = 0; i < nw; i++) dw[i] += (nn_real)aw[i];
    for (int i = 0; i < g->co; i++) db[i] += (nn_real)ab[i];
    free(ax), free(aw), free(ab);
}

static void check_tconv(const tgeom *g, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "conv_transpose2d N%d C%d %dx%d -> C%d k%d s%d p%d", g->n, g->ci, g->h, g->w,
             g->co, g->k, g->stride, g->pad);
    int ho = (g->h - 1) * g->stride - 2 * g->pad + g->k, wo = (g->w - 1) * g->stride - 2 * g->pad + g->k;
    nn_tensor *x = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, seed);
    nn_tensor *w = tu_uniform4(g->ci, g->co, g->k, g->k, -1, 1, seed + 1);
    nn_tensor *b = tu_uniform4(g->co, 0, 0, 0, -1, 1, seed + 2);
    x->requires_grad = w->requires_grad = b->requires_grad = 1;
    x->grad = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, seed + 3);
    w->grad = tu_uniform4(g->ci, g->co, g->k, g->k, -1, 1, seed + 4);
    b->grad = tu_uniform4(g->co, 0, 0, 0, -1, 1, seed + 5);
    nn_real *want_dx = tu_host(x->grad), *want_dw = tu_host(w->grad), *want_db = tu_host(b->grad);

    nn_graph gr;
    nn_graph_init(&gr, 1);
    nn_tensor *y = nn_conv_transpose2d(&gr, x, w, b, g->stride, g->pad);
    cr_assert_not_null(y, "%s: %s", what, nn_last_error());
    cr_assert(y->ndim == 4 && y->shape[0] == g->n && y->shape[1] == g->co && y->shape[2] == ho &&
                  y->shape[3] == wo,
              "%s: output shape %d %d %d %d", what, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    nn_real *want = malloc(y->numel * sizeof *want);
    naive_tconv_forward(want, x->data, w->data, b->data, g, ho, wo);
    tu_assert_close(y->data, want, y->numel, 1e-5, 1e-5, what);

    nn_tensor *r = tu_uniform(y->ndim, y->shape, -1, 1, seed + 6);
    cr_assert_eq(nn_graph_backward_from(&gr, y, r), 0, "%s: %s", what, nn_last_error());
    naive_tconv_backward(want_dx, want_dw, want_db, r->data, x->data, w->data, g, ho, wo);
    tu_assert_close(x->grad->data, want_dx, x->numel, 1e-5, 1e-5, "conv_transpose2d dx");
    tu_assert_close(w->grad->data, want_dw, w->numel, 1e-5, 1e-5, "conv_transpose2d dweight");
    tu_assert_close(b->grad->data, want_db, b->numel, 1e-5, 1e-5, "conv_transpose2d dbias");

    free(want), free(want_dx), free(want_dw), free(want_db);
    nn_graph_free(&gr);
    nn_tensor_unref(r), nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", what, nn_tensor_live_count());
}

Test(conv_transpose2d, deep3d_upsampling_geometries_match_naive_loops) {
    const tgeom gs[] = {
        {2, 3, 5, 4, 2, 1, 1, 0},   /* pred_1: kernel 1, stride 1, pad 0 */
        {2, 3, 4, 5, 2, 4, 2, 1},   /* pred_2 and the final x2: kernel 4, stride 2, pad 1 */
        {2, 2, 3, 4, 3, 8, 4, 2},   /* pred_3: kernel 8, stride 4, pad 2 */
        {1, 2, 3, 2, 2, 16, 8, 4},  /* pred_4: kernel 16, stride 8, pad 4 */
        {1, 2, 2, 3, 2, 32, 16, 8}, /* pred_5: kernel 32, stride 16, pad 8 */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) check_tconv(&gs[i], 400 + 10 * i);
}

Test(conv_transpose2d, other_geometries_match_naive_loops) {
    const tgeom gs[] = {
        {2, 3, 4, 3, 2, 3, 1, 0}, /* kernel 3, stride 1: a "full" convolution */
        {2, 2, 3, 5, 3, 3, 2, 1}, /* odd kernel, stride 2 */
        {1, 3, 4, 4, 2, 2, 3, 0}, /* stride larger than the kernel: gaps in the output */
        {2, 2, 5, 4, 3, 5, 3, 2}, /* kernel 5, stride 3, pad 2 */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) check_tconv(&gs[i], 500 + 10 * i);
}

Test(conv_transpose2d, rejects_mismatched_shapes_with_a_clear_message) {
    nn_tensor *x = tu_uniform4(1, 3, 4, 4, 0, 1, 1), *w = tu_uniform4(4, 2, 4, 4, 0, 1, 2);
    nn_tensor *w2 = tu_uniform4(3, 2, 4, 4, 0, 1, 3), *b = tu_uniform4(3, 0, 0, 0, 0, 1, 4);
    cr_assert_null(nn_conv_transpose2d(NULL, x, w, NULL, 2, 1));
    cr_assert(strstr(nn_last_error(), "conv_transpose2d: input (1, 3, 4, 4) has 3 channels, weight (4, 2, 4, 4) "
                                      "expects 4"),
              "message: %s", nn_last_error());
    cr_assert_null(nn_conv_transpose2d(NULL, x, w2, b, 2, 1));
    cr_assert(strstr(nn_last_error(), "conv_transpose2d: bias (3) does not match the 2 output channels"),
              "message: %s", nn_last_error());
    nn_tensor *one = tu_uniform4(1, 3, 1, 1, 0, 1, 5);
    cr_assert_null(nn_conv_transpose2d(NULL, one, w2, NULL, 1, 2)); /* (1-1)*1 - 4 + 4 = 0 */
    cr_assert(strstr(nn_last_error(), "gives an output of 0x0"), "message: %s", nn_last_error());
    nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(w2), nn_tensor_unref(b), nn_tensor_unref(one);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

/* ---- bilinear initialisation ------------------------------------------------------- */

/* DEEP3D.md "Initialisation": f = ceil(k/2), c = (2f - 1 - f mod 2)/(2f),
 * w(i, j) = (1 - |i/f - c|)(1 - |j/f - c|) on the channel diagonal, 0 elsewhere. */
static void check_bilinear_values(int channels, int k) {
    size_t nw = (size_t)channels * channels * k * k;
    nn_real *w = malloc(nw * sizeof *w), *want = calloc(nw, sizeof *want);
    for (size_t i = 0; i < nw; i++) w[i] = 42; /* every entry must be written */
    nn_bilinear_kernel(w, channels, k);
    int f = k / 2 + k % 2;
    double c = (2.0 * f - 1 - f % 2) / (2.0 * f);
    for (int ch = 0; ch < channels; ch++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                want[(((size_t)ch * channels + ch) * k + i) * k + j] =
                    (nn_real)((1 - fabs((double)i / f - c)) * (1 - fabs((double)j / f - c)));
    char what[64];
    snprintf(what, sizeof what, "bilinear kernel %d", k);
    tu_assert_close(w, want, nw, 1e-7, 0, what);
    free(w), free(want);
}

Test(bilinear_kernel, values_follow_the_deep3d_formula) {
    check_bilinear_values(3, 1);
    check_bilinear_values(3, 4);
    check_bilinear_values(2, 32);
    check_bilinear_values(2, 3); /* odd kernel: f = 2, c = 0.5 */
    /* K = 1: f = 1, c = 0, the single tap is 1 (identity); K = 4: f = 2, c = 3/4, the
     * 1-D taps 1 - |a/2 - 3/4| are 1/4, 3/4, 3/4, 1/4 (exact in binary) */
    nn_real w1[4], w4[16];
    nn_bilinear_kernel(w1, 2, 1);
    cr_assert(w1[0] == 1 && w1[1] == 0 && w1[2] == 0 && w1[3] == 1);
    nn_bilinear_kernel(w4, 1, 4);
    const nn_real t[4] = {0.25, 0.75, 0.75, 0.25};
    for (int i = 0; i < 16; i++) cr_assert_eq(w4[i], t[i / 4] * t[i % 4], "w4[%d] = %g", i, w4[i]);
}

/* Upsampling with the bilinear kernel, kernel 2s, stride s, pad s/2 (and kernel 1 for
 * s = 1): a constant image stays constant and a horizontal ramp x -> x becomes the
 * ramp sampled at pixel centres, (ox + 0.5)/s - 0.5, away from the borders (where an
 * output pixel has both neighbours; bilinear interpolation, align_corners=False). */
Test(bilinear_kernel, upsamples_constants_and_ramps_bilinearly) {
    for (int s = 1; s <= 16; s *= 2) {
        int k = s == 1 ? 1 : 2 * s, pad = s / 2, h = 3, wd = 4, ch = 2;
        nn_tensor *w = nn_tensor_new4(NN_CPU, ch, ch, k, k);
        nn_bilinear_kernel(w->data, ch, k);
        nn_tensor *x = nn_tensor_new4(NN_CPU, 1, ch, h, wd);
        for (size_t i = 0; i < x->numel; i++) x->data[i] = (i / (size_t)(h * wd)) == 0 ? 5 : (nn_real)(i % wd);
        nn_tensor *y = nn_conv_transpose2d(NULL, x, w, NULL, s, pad);
        cr_assert_not_null(y, "%s", nn_last_error());
        int ho = h * s, wo = wd * s;
        cr_assert(y->shape[2] == ho && y->shape[3] == wo, "s=%d: %dx%d", s, y->shape[2], y->shape[3]);
        for (int oy = s / 2; oy < ho - s / 2; oy++)
            for (int ox = s / 2; ox < wo - s / 2; ox++) {
                nn_real c = y->data[(size_t)oy * wo + ox], r = y->data[(size_t)(ho + oy) * wo + ox];
                cr_assert_float_eq(c, 5, 1e-5, "s=%d constant at (%d, %d): %g", s, oy, ox, c);
                double want = (ox + 0.5) / s - 0.5;
                cr_assert_float_eq(r, want, 1e-5, "s=%d ramp at (%d, %d): %g, expected %g", s, oy, ox, r, want);
            }
        nn_tensor_unref(w), nn_tensor_unref(x), nn_tensor_unref(y);
    }
    cr_assert_eq(nn_tensor_live_count(), 0);
}
