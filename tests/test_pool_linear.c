/* Max pooling and the fully connected layer (float32): forward and backward against
 * naive loops written from the definitions (torch.nn.MaxPool2d, torch.nn.Linear), tie
 * handling, and the shape errors. */
#include <stdio.h>

#include "testutil.h"

/* ---- max pooling ------------------------------------------------------------------- */

/* out = max over each window; din[first argmax] += dout (row-major first maximum) */
static void naive_pool(nn_real *out, nn_real *din, const nn_real *dout, const nn_real *x, int n, int c,
                       int h, int w, int k, int stride) {
    int ho = (h - k) / stride + 1, wo = (w - k) / stride + 1;
    for (int p = 0; p < n * c; p++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                int by = oy * stride, bx = ox * stride;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int y = oy * stride + i, xx = ox * stride + j;
                        if (x[((size_t)p * h + y) * w + xx] > x[((size_t)p * h + by) * w + bx]) by = y, bx = xx;
                    }
                size_t o = ((size_t)p * ho + oy) * wo + ox;
                out[o] = x[((size_t)p * h + by) * w + bx];
                din[((size_t)p * h + by) * w + bx] += dout[o];
            }
}

/* With ties set, x is rounded to -1, 0 or 1, so most windows hold equal maxima. */
static void check_pool_ties(int n, int c, int h, int w, int k, int stride, uint64_t seed, int ties) {
    char what[96];
    snprintf(what, sizeof what, "maxpool2d (%d, %d, %d, %d) k%d s%d%s", n, c, h, w, k, stride, ties ? " ties" : "");
    int ho = (h - k) / stride + 1, wo = (w - k) / stride + 1;
    nn_tensor *x = tu_uniform4(n, c, h, w, -1, 1, seed);
    if (ties)
        for (size_t i = 0; i < x->numel; i++) x->data[i] = (nn_real)round(1.4 * x->data[i]);
    x->requires_grad = 1;
    x->grad = tu_uniform4(n, c, h, w, -1, 1, seed + 1); /* backward must add to it */
    nn_real *want_dx = tu_host(x->grad);
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_maxpool2d(&g, x, k, stride);
    cr_assert_not_null(y, "%s: %s", what, nn_last_error());
    cr_assert(y->ndim == 4 && y->shape[0] == n && y->shape[1] == c && y->shape[2] == ho && y->shape[3] == wo,
              "%s: output %d %d %d %d", what, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    nn_tensor *r = tu_uniform(4, y->shape, -1, 1, seed + 2);
    nn_real *want = malloc(y->numel * sizeof *want);
    naive_pool(want, want_dx, r->data, x->data, n, c, h, w, k, stride);
    tu_assert_close(y->data, want, y->numel, 0, 0, what);
    cr_assert_eq(nn_graph_backward_from(&g, y, r), 0, "%s: %s", what, nn_last_error());
    tu_assert_close(x->grad->data, want_dx, x->numel, 1e-6, 1e-6, "maxpool2d dx");
    /* inference (no argmax kept): the same values */
    nn_tensor *y2 = nn_maxpool2d(NULL, x, k, stride);
    cr_assert_not_null(y2, "%s: %s", what, nn_last_error());
    tu_assert_close(y2->data, want, y2->numel, 0, 0, "maxpool2d inference");
    nn_tensor_unref(y2);
    free(want), free(want_dx);
    nn_graph_free(&g);
    nn_tensor_unref(r), nn_tensor_unref(y), nn_tensor_unref(x);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", what, nn_tensor_live_count());
}

static void check_pool(int n, int c, int h, int w, int k, int stride, uint64_t seed) {
    check_pool_ties(n, c, h, w, k, stride, seed, 0);
}

/* rows wide enough for the vectorised 2x2 stride-2 path (and its remainder loop) */
Test(maxpool2d, wide_rows_and_ties_match_naive_loops) {
    check_pool_ties(2, 3, 10, 70, 2, 2, 11, 0);
    check_pool_ties(2, 3, 9, 71, 2, 2, 12, 1);
    check_pool_ties(1, 2, 8, 67, 3, 2, 13, 1); /* general path, ties */
}

Test(maxpool2d, matches_naive_loops) {
    check_pool(2, 3, 8, 6, 2, 2, 1);  /* the VGG 2x2/2 pooling */
    check_pool(2, 2, 7, 9, 2, 2, 2);  /* odd sizes: last row/column dropped (floor) */
    check_pool(1, 3, 7, 8, 3, 2, 3);  /* overlapping windows: gradients add up */
    check_pool(2, 2, 5, 6, 3, 1, 4);  /* stride 1 */
    check_pool(1, 2, 9, 10, 2, 3, 5); /* stride larger than the window: gaps */
    check_pool(1, 1, 4, 5, 1, 1, 6);  /* 1x1 window: identity */
}

Test(maxpool2d, ties_go_to_the_first_maximum) {
    nn_tensor *x = nn_tensor_new4(NN_CPU, 1, 1, 4, 4);
    nn_tensor_fill(x, 3);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_maxpool2d(&g, x, 2, 2);
    cr_assert_not_null(y, "%s", nn_last_error());
    cr_assert_eq(nn_graph_backward_from(&g, y, NULL), 0, "%s", nn_last_error());
    for (int i = 0; i < 16; i++) {
        int yy = i / 4, xx = i % 4;
        nn_real want = (yy % 2 == 0 && xx % 2 == 0) ? 1 : 0; /* top-left of each window */
        cr_assert_eq(x->grad->data[i], want, "dx[%d][%d] = %g", yy, xx, x->grad->data[i]);
    }
    nn_graph_free(&g);
    nn_tensor_unref(y), nn_tensor_unref(x);
}

Test(maxpool2d, inference_records_nothing_and_keeps_no_argmax) {
    nn_tensor *x = tu_uniform4(1, 2, 4, 4, -1, 1, 7);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 0);
    nn_tensor *y = nn_maxpool2d(&g, x, 2, 2);
    cr_assert_not_null(y, "%s", nn_last_error());
    cr_assert_eq(g.n_nodes, 0);
    cr_assert_eq(nn_tensor_live_count(), 2, "x and y only, got %ld", nn_tensor_live_count());
    nn_tensor_unref(y), nn_tensor_unref(x);
    nn_graph_free(&g);
}

Test(maxpool2d, rejects_bad_shapes_with_a_clear_message) {
    nn_tensor *x = tu_uniform4(1, 2, 3, 5, 0, 1, 1), *v = tu_uniform4(2, 6, 0, 0, 0, 1, 2);
    cr_assert_null(nn_maxpool2d(NULL, x, 4, 2));
    cr_assert(strstr(nn_last_error(), "maxpool2d: input (1, 2, 3, 5) is smaller than the 4x4 window"),
              "message: %s", nn_last_error());
    cr_assert_null(nn_maxpool2d(NULL, v, 2, 2));
    cr_assert(strstr(nn_last_error(), "maxpool2d: input (2, 6) must be 4-D"), "message: %s", nn_last_error());
    nn_tensor_unref(x), nn_tensor_unref(v);
}

/* ---- linear -------------------------------------------------------------------------- */

static void check_linear(int n, int c, int h, int w, int out, int with_bias, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "linear (%d, %d, %d, %d) -> %d%s", n, c, h, w, out, with_bias ? "" : " no bias");
    int in = c * (h ? h : 1) * (w ? w : 1); /* 0s drop, as in tu_uniform4 */
    nn_tensor *x = tu_uniform4(n, c, h, w, -1, 1, seed), *wt = tu_uniform4(out, in, 0, 0, -1, 1, seed + 1);
    nn_tensor *b = with_bias ? tu_uniform4(out, 0, 0, 0, -1, 1, seed + 2) : NULL;
    x->requires_grad = wt->requires_grad = 1;
    x->grad = tu_uniform4(n, c, h, w, -1, 1, seed + 3);
    wt->grad = tu_uniform4(out, in, 0, 0, -1, 1, seed + 4);
    if (b) b->requires_grad = 1, b->grad = tu_uniform4(out, 0, 0, 0, -1, 1, seed + 5);
    nn_real *dx = tu_host(x->grad), *dw = tu_host(wt->grad), *db = b ? tu_host(b->grad) : NULL;

    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_linear(&g, x, wt, b);
    cr_assert_not_null(y, "%s: %s", what, nn_last_error());
    cr_assert(y->ndim == 2 && y->shape[0] == n && y->shape[1] == out, "%s: output shape", what);
    nn_tensor *r = tu_uniform(2, y->shape, -1, 1, seed + 6);
    nn_real *want = malloc(y->numel * sizeof *want);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b->data[o] : 0, d = r->data[i * out + o];
            for (int j = 0; j < in; j++) {
                s += (double)x->data[i * in + j] * wt->data[o * in + j];
                dx[i * in + j] += (nn_real)(d * wt->data[o * in + j]);
                dw[o * in + j] += (nn_real)(d * x->data[i * in + j]);
            }
            want[i * out + o] = (nn_real)s;
            if (db) db[o] += (nn_real)d;
        }
    tu_assert_close(y->data, want, y->numel, 1e-5, 1e-5, what);
    cr_assert_eq(nn_graph_backward_from(&g, y, r), 0, "%s: %s", what, nn_last_error());
    tu_assert_close(x->grad->data, dx, x->numel, 1e-5, 1e-5, "linear dx");
    tu_assert_close(wt->grad->data, dw, wt->numel, 1e-5, 1e-5, "linear dweight");
    if (b) tu_assert_close(b->grad->data, db, b->numel, 1e-5, 1e-5, "linear dbias");
    free(want), free(dx), free(dw), free(db);
    nn_graph_free(&g);
    nn_tensor_unref(r), nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(wt), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", what, nn_tensor_live_count());
}

Test(linear, matches_naive_loops) {
    check_linear(3, 2, 2, 3, 5, 1, 10); /* 4-D input flattened to 12 features */
    check_linear(4, 7, 0, 0, 3, 1, 20); /* 2-D input */
    check_linear(1, 3, 4, 0, 6, 0, 30); /* no bias, batch 1 */
    check_linear(5, 2, 5, 12, 9, 1, 40);
}

Test(linear, backward_computes_only_required_gradients) {
    nn_tensor *x = tu_uniform4(2, 4, 0, 0, -1, 1, 1), *w = tu_uniform4(3, 4, 0, 0, -1, 1, 2),
              *b = tu_uniform4(3, 0, 0, 0, -1, 1, 3);
    w->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_linear(&g, x, w, b);
    cr_assert_eq(nn_graph_backward_from(&g, y, NULL), 0, "%s", nn_last_error());
    cr_assert_null(x->grad);
    cr_assert_null(b->grad);
    /* dW[o][j] = sum over the batch of x[i][j] (upstream gradient all ones) */
    for (int o = 0; o < 3; o++)
        for (int j = 0; j < 4; j++)
            cr_assert_float_eq(w->grad->data[o * 4 + j], x->data[j] + x->data[4 + j], 1e-6);
    nn_graph_free(&g);
    nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(linear, rejects_mismatched_shapes_with_a_clear_message) {
    nn_tensor *x = tu_uniform4(2, 3, 4, 0, 0, 1, 1), *w = tu_uniform4(5, 10, 0, 0, 0, 1, 2);
    nn_tensor *w2 = tu_uniform4(5, 12, 0, 0, 0, 1, 3), *b = tu_uniform4(4, 0, 0, 0, 0, 1, 4);
    cr_assert_null(nn_linear(NULL, x, w, NULL));
    cr_assert(strstr(nn_last_error(), "linear: input (2, 3, 4) has 12 features per sample, weight (5, 10) expects 10"),
              "message: %s", nn_last_error());
    cr_assert_null(nn_linear(NULL, x, w2, b));
    cr_assert(strstr(nn_last_error(), "linear: bias (4) does not match the 5 outputs of weight (5, 12)"),
              "message: %s", nn_last_error());
    nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(w2), nn_tensor_unref(b);
}
