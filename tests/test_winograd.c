/* Winograd F(2x2, 3x3) convolution (layers/conv2d_winograd.c), float32: forward and
 * input gradient against naive loops written from the definition (the 7-loop
 * convolution of torch.nn.Conv2d's documentation, accumulated in double) and against
 * the im2col + GEMM path, on many shapes; the accumulate (+=) contract of the input
 * gradient; the algorithm choice and the DEEP3D_CONV_ALGO values.
 *
 * Tolerance: every element within 1e-5 * max|reference| of the reference (the output
 * scale; Lavin & Gray 2016 report F(2x2, 3x3) errors close to direct convolution's,
 * and float32 rounding of a sum of C*9 products is ~1e-7 * sqrt(C*9) of its scale). */
#include <math.h>
#include <stdio.h>

#include "../layers/conv2d_winograd.h"
#include "testutil.h"

static const double TOL = 1e-5; /* of max|reference| */

static void use_algo(nn_conv_algo algo, const nn_conv_shape *s, int backward_data, const char *what) {
    nn_conv_algo_set(algo);
    int got = conv2d_algo_cpu(s, backward_data);
    cr_assert_eq(got, (int)algo, "%s: conv2d_algo_cpu picked %d, expected %d (%s)", what, got, (int)algo,
                 nn_last_error());
}

static const nn_conv_algo ALGOS[2] = {NN_CONV_ALGO_IM2COL, NN_CONV_ALGO_WINOGRAD};
static const char *ALGO_NAME[3] = {"auto", "im2col", "winograd"};

/* Forward on both paths vs the naive loops, and Winograd vs im2col. bias may be absent. */
static void check_forward(const tu_wgeom *g, int with_bias, uint64_t seed, double *rel_err) {
    char what[160];
    nn_conv_shape s = tu_wgeom_shape(g);
    const size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->co * g->ci * 9,
                 ny = (size_t)g->n * g->co * s.h_out * s.w_out;
    nn_real *x = tu_uniform_array(nx, seed), *w = tu_uniform_array(nw, seed + 1), *b = with_bias ? tu_uniform_array(g->co, seed + 2) : NULL;
    const nn_conv_shape sh = tu_wgeom_shape(g);
    double *want = tu_naive_conv2d(x, w, b, &sh);
    nn_real *y[2];
    for (int a = 0; a < 2; a++) {
        snprintf(what, sizeof what, "%s forward N%d C%d %dx%d -> C%d pad %d%s", ALGO_NAME[ALGOS[a]], g->n, g->ci,
                 g->h, g->w, g->co, g->pad, with_bias ? " + bias" : "");
        use_algo(ALGOS[a], &s, 0, what);
        y[a] = malloc(ny * sizeof *y[a]);
        for (size_t i = 0; i < ny; i++) y[a][i] = NAN; /* every element must be written */
        cr_assert_eq(conv2d_forward_cpu(y[a], x, w, b, &s), 0, "%s: %s", what, nn_last_error());
        double e = tu_assert_close_scaled(y[a], want, ny, TOL, what);
        if (rel_err) rel_err[a] = e;
    }
    /* the two paths agree with each other as well */
    double *y0 = malloc(ny * sizeof *y0);
    for (size_t i = 0; i < ny; i++) y0[i] = y[0][i];
    tu_assert_close_scaled(y[1], y0, ny, TOL, "winograd vs im2col forward");
    free(y0), free(y[0]), free(y[1]), free(want), free(x), free(w), free(b);
}

/* Input gradient on both paths, into a din that already holds values (+=). */
static void check_backward_data(const tu_wgeom *g, uint64_t seed, double *rel_err) {
    char what[160];
    nn_conv_shape s = tu_wgeom_shape(g);
    const size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->co * g->ci * 9,
                 ny = (size_t)g->n * g->co * s.h_out * s.w_out;
    nn_real *dout = tu_uniform_array(ny, seed), *w = tu_uniform_array(nw, seed + 1), *init = tu_uniform_array(nx, seed + 2);
    const nn_conv_shape sh = tu_wgeom_shape(g);
    double *want = tu_naive_conv2d_backward_data(init, dout, w, &sh);
    nn_real *dx[2];
    for (int a = 0; a < 2; a++) {
        snprintf(what, sizeof what, "%s backward data N%d C%d %dx%d -> C%d pad %d", ALGO_NAME[ALGOS[a]], g->n,
                 g->ci, g->h, g->w, g->co, g->pad);
        use_algo(ALGOS[a], &s, 1, what);
        dx[a] = malloc(nx * sizeof *dx[a]);
        memcpy(dx[a], init, nx * sizeof *init);
        cr_assert_eq(conv2d_backward_data_cpu(dx[a], dout, w, &s), 0, "%s: %s", what, nn_last_error());
        double e = tu_assert_close_scaled(dx[a], want, nx, TOL, what);
        if (rel_err) rel_err[a] = e;
    }
    double *d0 = malloc(nx * sizeof *d0);
    for (size_t i = 0; i < nx; i++) d0[i] = dx[0][i];
    tu_assert_close_scaled(dx[1], d0, nx, TOL, "winograd vs im2col backward data");
    free(d0), free(dx[0]), free(dx[1]), free(want), free(dout), free(w), free(init);
}

/* odd and even sizes (partial tiles in either direction), padding 0, 1 and 2, channel
 * counts that are multiples of nothing, batch 1 and 3, a 3-channel (RGB) input, outputs
 * of a single pixel */
static const tu_wgeom SHAPES[] = {
    {1, 16, 8, 8, 16, 1},   /* whole tiles */
    {1, 5, 7, 9, 7, 1},     /* odd H and W: partial last tile row and column */
    {3, 3, 10, 11, 13, 1},  /* RGB input, batch 3 */
    {3, 7, 9, 6, 5, 0},     /* padding 0 (valid): 7x4 output */
    {1, 6, 6, 7, 3, 0},     /* padding 0, odd W */
    {2, 4, 5, 5, 6, 2},     /* padding 2: output larger than the input */
    {1, 9, 3, 3, 4, 0},     /* 1x1 output */
    {1, 4, 1, 1, 3, 1},     /* 1x1 input and output */
    {1, 3, 2, 17, 5, 1},    /* 2 rows, one row of tiles */
    {3, 11, 13, 1, 2, 1},   /* a single column */
    {2, 17, 12, 10, 19, 1}, /* C and K above 16 (the auto bound) */
    {1, 4, 4, 5, 3, 3},     /* padding 3: the input gradient's core padding is -1 */
};

Test(winograd, forward_matches_naive_loops_and_im2col) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) check_forward(&SHAPES[i], (int)(i % 2 == 0), 500 + 10 * i, NULL);
}

Test(winograd, backward_data_accumulates_and_matches_naive_loops_and_im2col) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) check_backward_data(&SHAPES[i], 700 + 10 * i, NULL);
}

/* A Deep3D-like layer (C = K = 128, a 12x20 map): the measured error of both paths
 * against the double-precision loops, relative to the output scale. F(2x2, 3x3) stays
 * within 1e-5 (typically ~1e-7) and within 4x the error of im2col + GEMM. */
Test(winograd, accuracy_is_close_to_im2col_on_a_wide_layer) {
    const tu_wgeom g = {1, 128, 12, 20, 128, 1};
    double ef[2], eb[2];
    check_forward(&g, 1, 900, ef);
    check_backward_data(&g, 910, eb);
    cr_assert(ef[1] <= 4 * ef[0] + 1e-7, "forward: winograd error %.3g, im2col %.3g (of the output scale)", ef[1], ef[0]);
    cr_assert(eb[1] <= 4 * eb[0] + 1e-7, "backward data: winograd error %.3g, im2col %.3g", eb[1], eb[0]);
}

/* The tiles processed in chunks (conv2d_winograd_set_chunk) of 7 tiles, which end inside
 * rows of tiles and inside images, and of 1 tile; batch 3, odd sizes, padding 0 and 1. */
Test(winograd, chunks_that_split_rows_and_images_match_naive_loops) {
    const tu_wgeom gs[] = {{3, 5, 9, 7, 6, 1}, {3, 4, 6, 9, 3, 0}};
    const int chunks[] = {7, 1, 5};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        conv2d_winograd_set_chunk(chunks[c]);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
            check_forward(&gs[i], 1, 1100 + 10 * i, NULL);
            check_backward_data(&gs[i], 1200 + 10 * i, NULL);
        }
    }
    conv2d_winograd_set_chunk(0);
}

/* The default chunk size on a layer that needs several chunks: 16M / (16 (C + K)) = 1024
 * tiles at C + K = 1024, here 2 images of 5 x 110 tiles, the second chunk starting inside
 * the second image and inside a row of tiles. Against im2col only (the naive loops would
 * take seconds; im2col is checked against them in tests/test_conv.c). */
Test(winograd, default_chunks_match_im2col) {
    const tu_wgeom g = {2, 16, 10, 220, 1008, 1};
    nn_conv_shape s = tu_wgeom_shape(&g);
    const size_t nx = (size_t)g.n * g.ci * g.h * g.w, nw = (size_t)g.co * g.ci * 9,
                 ny = (size_t)g.n * g.co * s.h_out * s.w_out;
    nn_real *x = tu_uniform_array(nx, 1), *w = tu_uniform_array(nw, 2), *b = tu_uniform_array(g.co, 3), *init = tu_uniform_array(nx, 4);
    nn_real *y[2], *dx[2];
    for (int a = 0; a < 2; a++) {
        use_algo(ALGOS[a], &s, 0, "default chunks");
        y[a] = malloc(ny * sizeof *y[a]);
        dx[a] = malloc(nx * sizeof *dx[a]);
        memcpy(dx[a], init, nx * sizeof *init);
        cr_assert_eq(conv2d_forward_cpu(y[a], x, w, b, &s), 0, "%s", nn_last_error());
        /* the upstream gradient: the im2col output y[0] (any values of the output shape) */
        cr_assert_eq(conv2d_backward_data_cpu(dx[a], y[0], w, &s), 0, "%s", nn_last_error());
    }
    double *ref = malloc((nx > ny ? nx : ny) * sizeof *ref);
    for (size_t i = 0; i < ny; i++) ref[i] = y[0][i];
    tu_assert_close_scaled(y[1], ref, ny, TOL, "winograd vs im2col forward, several chunks");
    for (size_t i = 0; i < nx; i++) ref[i] = dx[0][i];
    tu_assert_close_scaled(dx[1], ref, nx, TOL, "winograd vs im2col backward data, several chunks");
    free(ref), free(x), free(w), free(b), free(init), free(y[0]), free(y[1]), free(dx[0]), free(dx[1]);
}

/* Through the ops with Winograd forced: nn_conv2d (forward + autograd, every gradient
 * by Winograd) and nn_conv_transpose2d with a 3x3 stride-1 kernel (whose forward
 * pass is conv2d_backward_data) against the im2col path. */
Test(winograd, ops_match_the_im2col_path) {
    nn_tensor *x = tu_uniform4(2, 6, 9, 8, -1, 1, 11), *w = tu_uniform4(5, 6, 3, 3, -1, 1, 12),
              *b = tu_uniform4(5, 0, 0, 0, -1, 1, 13);
    nn_tensor *wt = tu_uniform4(6, 4, 3, 3, -1, 1, 14); /* transposed conv 6 -> 4 channels */
    nn_tensor *y[2], *yt[2], *dx[2], *dw[2], *db[2];
    x->requires_grad = w->requires_grad = b->requires_grad = 1;
    for (int a = 0; a < 2; a++) {
        nn_conv_algo_set(ALGOS[a]);
        nn_graph g;
        nn_graph_init(&g, 1);
        y[a] = nn_conv2d(&g, x, w, b, 1, 1, 1);
        cr_assert_not_null(y[a], "%s", nn_last_error());
        cr_assert_eq(nn_graph_backward_from(&g, y[a], NULL), 0, "%s", nn_last_error());
        dx[a] = x->grad, dw[a] = w->grad, db[a] = b->grad;
        x->grad = w->grad = b->grad = NULL;
        nn_graph_free(&g);
        yt[a] = nn_conv_transpose2d(NULL, x, wt, NULL, 1, 1);
        cr_assert_not_null(yt[a], "%s", nn_last_error());
    }
    tu_assert_tensors_close(y[1], y[0], 1e-5, 1e-5, "nn_conv2d winograd vs im2col");
    tu_assert_tensors_close(dx[1], dx[0], 1e-5, 1e-5, "nn_conv2d dx winograd vs im2col");
    tu_assert_tensors_close(dw[1], dw[0], 1e-5, 1e-5, "nn_conv2d dweight winograd vs im2col");
    tu_assert_tensors_close(db[1], db[0], 1e-5, 1e-5, "nn_conv2d dbias winograd vs im2col");
    tu_assert_tensors_close(yt[1], yt[0], 1e-5, 1e-5, "nn_conv_transpose2d k3 s1 winograd vs im2col");
    for (int a = 0; a < 2; a++)
        nn_tensor_unref(y[a]), nn_tensor_unref(yt[a]), nn_tensor_unref(dx[a]), nn_tensor_unref(dw[a]),
            nn_tensor_unref(db[a]);
    nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b), nn_tensor_unref(wt);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

/* Auto: Winograd for the Deep3D backbone's 3x3 convolutions (C, K >= 16, enough
 * tiles), im2col for the RGB input layer, other kernels, strides, dilations, thin or
 * tiny layers; the forced settings. */
Test(winograd, algorithm_choice) {
    struct {
        nn_conv_shape s;
        int want_fwd, want_bwd;
    } cases[] = {
        {{1, 64, 160, 384, 64, 160, 384, 3, 3, 1, 1, 1, 0}, 2, 2},  /* conv1_2, 15360 tiles */
        {{4, 512, 10, 24, 512, 10, 24, 3, 3, 1, 1, 1, 0}, 2, 2},    /* conv5, batch 4: 240 tiles */
        {{2, 512, 10, 24, 33, 10, 24, 3, 3, 1, 1, 1, 0}, 2, 2},     /* pred4, batch 2: 120 tiles */
        {{1, 512, 10, 24, 33, 10, 24, 3, 3, 1, 1, 1, 0}, 1, 1},     /* 60 tiles < 64 */
        {{1, 3, 160, 384, 64, 160, 384, 3, 3, 1, 1, 1, 0}, 1, 1},   /* RGB input */
        {{1, 64, 160, 384, 8, 160, 384, 3, 3, 1, 1, 1, 0}, 1, 1},   /* thin output */
        {{1, 64, 16, 16, 16, 16, 16, 3, 3, 1, 1, 1, 0}, 2, 2},      /* exactly 64 tiles, 16 channels */
        {{1, 64, 40, 96, 64, 40, 96, 1, 1, 1, 0, 1, 0}, 1, 1},      /* 1x1 */
        {{1, 64, 40, 96, 64, 20, 48, 3, 3, 2, 1, 1, 0}, 1, 1},      /* stride 2 */
        {{1, 64, 40, 96, 64, 40, 96, 3, 3, 1, 2, 2, 0}, 1, 1},      /* dilation 2 */
        {{1, 64, 14, 16, 64, 14, 16, 3, 3, 1, 1, 1, 0}, 1, 1},      /* 56 tiles */
        {{1, 64, 15, 16, 64, 13, 14, 3, 3, 1, 0, 1, 0}, 1, 2},      /* padding 0: 7x7 = 49 output tiles,
                                                                    8x8 = 64 input-gradient tiles */
    };
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(conv2d_algo_cpu(&cases[i].s, 0), cases[i].want_fwd, "case %zu forward", i);
        cr_assert_eq(conv2d_algo_cpu(&cases[i].s, 1), cases[i].want_bwd, "case %zu backward data", i);
    }
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD); /* forced: every 3x3/s1/d1 conv, others stay */
    cr_assert_eq(conv2d_algo_cpu(&cases[4].s, 0), NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(conv2d_algo_cpu(&cases[7].s, 0), NN_CONV_ALGO_IM2COL);
    cr_assert_eq(conv2d_algo_cpu(&cases[8].s, 1), NN_CONV_ALGO_IM2COL);
    nn_conv_algo_set(NN_CONV_ALGO_IM2COL);
    cr_assert_eq(conv2d_algo_cpu(&cases[0].s, 0), NN_CONV_ALGO_IM2COL);
    /* the Winograd kernels refuse other shapes with a message */
    nn_real dummy[1] = {0};
    cr_assert_eq(conv2d_winograd_forward_cpu(dummy, dummy, dummy, NULL, &cases[8].s), -1);
    cr_assert(strstr(nn_last_error(), "needs 3x3, stride 1, dilation 1"), "message: %s", nn_last_error());
}

Test(winograd, conv_algo_values) {
    nn_conv_algo a = NN_CONV_ALGO_WINOGRAD;
    cr_assert_eq(nn_conv_algo_parse("auto", &a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_AUTO);
    cr_assert_eq(nn_conv_algo_parse(NULL, &a), 0); /* unset */
    cr_assert_eq(a, NN_CONV_ALGO_AUTO);
    cr_assert_eq(nn_conv_algo_parse("im2col", &a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_IM2COL);
    cr_assert_eq(nn_conv_algo_parse("winograd", &a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(nn_conv_algo_parse("fft", &a), -1);
    cr_assert(strstr(nn_last_error(), "DEEP3D_CONV_ALGO: unknown convolution algorithm \"fft\""), "message: %s",
              nn_last_error());
    nn_conv_algo_set(NN_CONV_ALGO_IM2COL);
    cr_assert_eq(nn_conv_algo_get(&a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_IM2COL);
}
