/* The transposed convolution's forward pass (nn_conv_transpose2d) on the geometries of
 * its CPU sub-pixel (phase) path (stride 2..8, kernel a multiple of the stride:
 * layers/conv_transpose2d.c) and of its fallback, against (a) a naive scatter loop
 * written from the torch.nn.ConvTranspose2d definition and (b) the composed backend
 * path (fill + conv2d_backward_data + bias_forward, the im2col/col2im adjoint of a
 * convolution). Deep3D's geometries at their real sizes, batch 1 and 2, odd sizes,
 * kernel = stride, 2*stride, 3*stride, padding > stride. */
#include <stdio.h>

#include "testutil.h"

typedef struct {
    int n, ci, h, w, co, k, stride, pad;
} sgeom;

/* out (N, CO, HO, WO) = bias + sum of x[n, c, y, x] * w[c, o, i, j] scattered to
 * (y*stride - pad + i, x*stride - pad + j), double accumulation */
static void naive_scatter(nn_real *out, const nn_real *x, const nn_real *w, const nn_real *b, const sgeom *g,
                          int ho, int wo) {
    size_t nout = (size_t)g->n * g->co * ho * wo;
    double *acc = calloc(nout, sizeof *acc);
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->ci; c++)
            for (int y = 0; y < g->h; y++)
                for (int xx = 0; xx < g->w; xx++) {
                    double v = x[((size_t)(n * g->ci + c) * g->h + y) * g->w + xx];
                    for (int o = 0; o < g->co; o++)
                        for (int i = 0; i < g->k; i++) {
                            int oy = y * g->stride - g->pad + i;
                            if (oy < 0 || oy >= ho) continue;
                            for (int j = 0; j < g->k; j++) {
                                int ox = xx * g->stride - g->pad + j;
                                if (ox < 0 || ox >= wo) continue;
                                acc[((size_t)(n * g->co + o) * ho + oy) * wo + ox] +=
                                    v * w[(((size_t)c * g->co + o) * g->k + i) * g->k + j];
                            }
                        }
                }
    for (size_t i = 0; i < nout; i++) out[i] = (nn_real)(acc[i] + (b ? b[(i / ((size_t)ho * wo)) % g->co] : 0));
    free(acc);
}

/* The backend path: the adjoint convolution's conv2d_backward_data into a zeroed
 * output, then bias_forward (what nn_conv_transpose2d ran before the fast path). */
static void backend_path(nn_real *out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b,
                         const sgeom *g, int ho, int wo) {
    const nn_backend *be = nn_backend_of(NN_CPU);
    nn_conv_shape s = {.n = g->n, .c_in = g->co, .h_in = ho, .w_in = wo, .c_out = g->ci, .h_out = g->h,
                       .w_out = g->w, .kh = g->k, .kw = g->k, .stride = g->stride, .pad = g->pad,
                       .dilation = 1};
    size_t nout = (size_t)g->n * g->co * ho * wo;
    cr_assert_eq(be->fill(out, nout, 0), 0);
    cr_assert_eq(be->conv2d_backward_data(out, x->data, w->data, &s), 0, "%s", nn_last_error());
    if (b) cr_assert_eq(be->bias_forward(out, b->data, g->n, g->co, ho * wo), 0);
}

/* Checks nn_conv_transpose2d against the backend path, and against the naive loop when
 * naive is set. Tolerance: float32 sums of C_in*(K/s)^2 products of values in [-1, 1)
 * (at most 33*4 = 132 terms here), atol 2e-5 + rtol 1e-5. */
static void check(const sgeom *g, int naive, int with_bias, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "subpixel N%d C%d %dx%d -> C%d k%d s%d p%d%s", g->n, g->ci, g->h, g->w, g->co,
             g->k, g->stride, g->pad, with_bias ? "" : " no bias");
    int ho = (g->h - 1) * g->stride - 2 * g->pad + g->k, wo = (g->w - 1) * g->stride - 2 * g->pad + g->k;
    nn_tensor *x = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, seed);
    nn_tensor *w = tu_uniform4(g->ci, g->co, g->k, g->k, -1, 1, seed + 1);
    nn_tensor *b = with_bias ? tu_uniform4(g->co, 0, 0, 0, -1, 1, seed + 2) : NULL;
    nn_tensor *y = nn_conv_transpose2d(NULL, x, w, b, g->stride, g->pad);
    cr_assert_not_null(y, "%s: %s", what, nn_last_error());
    cr_assert(y->shape[0] == g->n && y->shape[1] == g->co && y->shape[2] == ho && y->shape[3] == wo,
              "%s: output shape %d %d %d %d", what, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    nn_real *want = malloc(y->numel * sizeof *want);
    backend_path(want, x, w, b, g, ho, wo);
    char w2[200];
    snprintf(w2, sizeof w2, "%s vs backend path", what);
    tu_assert_close(y->data, want, y->numel, 2e-5, 1e-5, w2);
    if (naive) {
        naive_scatter(want, x->data, w->data, b ? b->data : NULL, g, ho, wo);
        snprintf(w2, sizeof w2, "%s vs naive loop", what);
        tu_assert_close(y->data, want, y->numel, 2e-5, 1e-5, w2);
    }
    /* the fused ReLU: max(0, .) of the same values */
    nn_tensor *yr = nn_conv_transpose2d_relu(NULL, x, w, b, g->stride, g->pad);
    cr_assert_not_null(yr, "%s: %s", what, nn_last_error());
    for (size_t i = 0; i < y->numel; i++) want[i] = y->data[i] > 0 ? y->data[i] : 0;
    snprintf(w2, sizeof w2, "%s, fused ReLU", what);
    tu_assert_close(yr->data, want, y->numel, 0, 0, w2);
    nn_tensor_unref(yr);
    free(want);
    nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", what, nn_tensor_live_count());
}

/* Backward of nn_conv_transpose2d_relu against nn_relu(nn_conv_transpose2d): the two
 * separately tested ops composed, same upstream gradient (sub-pixel and fallback). */
Test(subpixel, fused_relu_backward_matches_the_composition) {
    const sgeom gs[] = {{2, 5, 7, 9, 4, 4, 2, 1}, {1, 3, 3, 2, 3, 32, 16, 8}};
    for (size_t i = 0; i < 2; i++) {
        const sgeom *g = &gs[i];
        nn_tensor *x = tu_uniform4(g->n, g->ci, g->h, g->w, -1, 1, 40 + i);
        nn_tensor *w = tu_uniform4(g->ci, g->co, g->k, g->k, -1, 1, 50 + i);
        nn_tensor *b = tu_uniform4(g->co, 0, 0, 0, -1, 1, 60 + i);
        nn_real *grads[2][3];
        for (int fused = 0; fused < 2; fused++) {
            x->requires_grad = w->requires_grad = b->requires_grad = 1;
            nn_graph gr;
            nn_graph_init(&gr, 1);
            nn_tensor *y;
            if (fused) {
                y = nn_conv_transpose2d_relu(&gr, x, w, b, g->stride, g->pad);
            } else {
                nn_tensor *t = nn_conv_transpose2d(&gr, x, w, b, g->stride, g->pad);
                y = nn_relu(&gr, t);
                nn_tensor_unref(t);
            }
            cr_assert_not_null(y, "%s", nn_last_error());
            nn_tensor *r = tu_uniform(y->ndim, y->shape, -1, 1, 70 + i);
            cr_assert_eq(nn_graph_backward_from(&gr, y, r), 0, "%s", nn_last_error());
            grads[fused][0] = tu_host(x->grad), grads[fused][1] = tu_host(w->grad), grads[fused][2] = tu_host(b->grad);
            nn_graph_free(&gr);
            nn_tensor_unref(r), nn_tensor_unref(y);
            nn_tensor_unref(x->grad), nn_tensor_unref(w->grad), nn_tensor_unref(b->grad);
            x->grad = w->grad = b->grad = NULL;
        }
        tu_assert_close(grads[1][0], grads[0][0], x->numel, 0, 0, "fused ReLU dx");
        tu_assert_close(grads[1][1], grads[0][1], w->numel, 0, 0, "fused ReLU dweight");
        tu_assert_close(grads[1][2], grads[0][2], b->numel, 0, 0, "fused ReLU dbias");
        for (int f = 0; f < 2; f++)
            for (int k = 0; k < 3; k++) free(grads[f][k]);
        nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    }
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

/* DEEP3D.md: 33 -> 33 channels, kernel 2s, stride s, pad s/2 from pool1..pool4 sizes
 * (40x96, 20x48, 10x24, 5x12 at 160x384 input) to 80x192; kernel 4 stride 2 pad 1
 * from 80x192 to 160x384. Full size against the backend path; 3 channels at the same
 * spatial sizes against the naive loop. */
Test(subpixel, deep3d_geometries_match_backend_and_naive) {
    const sgeom gs[] = {
        {1, 33, 40, 96, 33, 4, 2, 1},  {1, 33, 20, 48, 33, 8, 4, 2},  {1, 33, 10, 24, 33, 16, 8, 4},
        {1, 33, 5, 12, 33, 32, 16, 8}, {1, 33, 80, 192, 33, 4, 2, 1},
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check(&gs[i], 0, 1, 700 + 10 * i);
        sgeom small = gs[i];
        small.ci = 3, small.co = 3, small.n = 2;
        check(&small, 1, 1, 800 + 10 * i);
    }
}

Test(subpixel, other_geometries_match_backend_and_naive) {
    const sgeom gs[] = {
        {2, 3, 5, 7, 2, 2, 2, 0},   /* K = s, no padding: each input pixel owns an s x s block */
        {1, 2, 3, 5, 3, 3, 3, 1},   /* K = s, odd, padding crops */
        {2, 3, 7, 5, 4, 4, 2, 1},   /* K = 2s, odd sizes */
        {2, 2, 5, 3, 3, 6, 2, 2},   /* K = 3s, s = 2 */
        {1, 3, 4, 5, 2, 9, 3, 1},   /* K = 3s, s = 3, padding not s/2: unequal phase counts */
        {2, 2, 3, 4, 2, 12, 4, 5},  /* padding > stride: phases start past the first input */
        {1, 2, 1, 1, 2, 8, 4, 3},   /* 1x1 input: most taps outside */
        {2, 2, 4, 3, 3, 6, 3, 0},   /* K = 2s, s = 3, no padding */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check(&gs[i], 1, 1, 900 + 10 * i);
        check(&gs[i], 1, 0, 950 + 10 * i);
    }
}
