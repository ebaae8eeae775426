/* Winograd F(4x4, 3x3) (layers/conv2d_winograd.c, DEEP3D_CONV_ALGO=winograd4), float32:
 * forward and input gradient against naive loops written from the definition (the
 * 7-loop convolution of torch.nn.Conv2d's documentation, accumulated in double) on
 * shapes with every remainder of H and W modulo 4 (partial tiles), paddings 0 to 3,
 * batches, chunks that split rows of tiles; its error against F(2x2, 3x3)'s on a
 * Deep3D-sized layer; the settings winograd2 / winograd4 and the tile choice.
 *
 * Tolerance: every element within 1e-4 * max|reference| (the output scale). F(4x4, 3x3)
 * has the non-dyadic constants 1/6, 1/12, 1/24 and transform entries up to 8 (A^T) and
 * 5 (B^T), so its float32 rounding error is about 10x F(2x2, 3x3)'s (Lavin & Gray 2016
 * section 5 report F(4x4, 3x3) float32 errors ~1e-5 relative at their layer sizes,
 * against ~1e-6 and below for F(2x2, 3x3)); measured here ~1e-5 at C = K = 128 against
 * 5e-7 for F(2x2) (the accuracy test below prints the values). */
#include <math.h>
#include <stdio.h>

#include "../layers/conv2d_winograd.h"
#include "testutil.h"

static const double TOL4 = 1e-4; /* of max|reference| */

/* forward (with algo forced) against the naive loops; returns the relative error */
static double fwd_err(const tu_wgeom *g, nn_conv_algo algo, int with_bias, uint64_t seed, double tol) {
    char what[160];
    snprintf(what, sizeof what, "F(%dx%d) forward N%d C%d %dx%d -> C%d pad %d", algo == NN_CONV_ALGO_WINOGRAD4 ? 4 : 2,
             algo == NN_CONV_ALGO_WINOGRAD4 ? 4 : 2, g->n, g->ci, g->h, g->w, g->co, g->pad);
    nn_conv_shape s = tu_wgeom_shape(g);
    const size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->co * g->ci * 9,
                 ny = (size_t)g->n * g->co * s.h_out * s.w_out;
    nn_real *x = tu_uniform_array(nx, seed), *w = tu_uniform_array(nw, seed + 1), *b = with_bias ? tu_uniform_array(g->co, seed + 2) : NULL;
    const nn_conv_shape sh = tu_wgeom_shape(g);
    double *want = tu_naive_conv2d(x, w, b, &sh);
    nn_conv_algo_set(algo);
    cr_assert_eq(conv2d_algo_cpu(&s, NN_CONV_DIR_FORWARD), NN_CONV_ALGO_WINOGRAD, "%s: not on the Winograd path", what);
    cr_assert_eq(conv2d_winograd_tile(&s, NN_CONV_DIR_FORWARD), algo == NN_CONV_ALGO_WINOGRAD4 ? 4 : 2, "%s", what);
    nn_real *y = malloc(ny * sizeof *y);
    for (size_t i = 0; i < ny; i++) y[i] = NAN; /* every element must be written */
    cr_assert_eq(conv2d_forward_cpu(y, x, w, b, &s), 0, "%s: %s", what, nn_last_error());
    double e = tu_assert_close_scaled(y, want, ny, tol, what);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    free(y), free(want), free(x), free(w), free(b);
    return e;
}

/* input gradient (with algo forced) into a din holding values (+=), against the loops */
static double bwd_err(const tu_wgeom *g, nn_conv_algo algo, uint64_t seed, double tol) {
    char what[160];
    snprintf(what, sizeof what, "F(%dx%d) backward data N%d C%d %dx%d -> C%d pad %d",
             algo == NN_CONV_ALGO_WINOGRAD4 ? 4 : 2, algo == NN_CONV_ALGO_WINOGRAD4 ? 4 : 2, g->n, g->ci, g->h,
             g->w, g->co, g->pad);
    nn_conv_shape s = tu_wgeom_shape(g);
    const size_t nx = (size_t)g->n * g->ci * g->h * g->w, nw = (size_t)g->co * g->ci * 9,
                 ny = (size_t)g->n * g->co * s.h_out * s.w_out;
    nn_real *dout = tu_uniform_array(ny, seed), *w = tu_uniform_array(nw, seed + 1), *dx = tu_uniform_array(nx, seed + 2);
    const nn_conv_shape sh = tu_wgeom_shape(g);
    double *want = tu_naive_conv2d_backward_data(dx, dout, w, &sh);
    nn_conv_algo_set(algo);
    cr_assert_eq(conv2d_algo_cpu(&s, NN_CONV_DIR_BACKWARD_DATA), NN_CONV_ALGO_WINOGRAD, "%s", what);
    cr_assert_eq(conv2d_backward_data_cpu(dx, dout, w, &s), 0, "%s: %s", what, nn_last_error());
    double e = tu_assert_close_scaled(dx, want, nx, tol, what);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    free(dx), free(want), free(dout), free(w);
    return e;
}

/* H and W of every remainder modulo 4 (partial tiles of 1, 2, 3 rows/columns), padding
 * 0 to 3 (3: the input gradient's core padding is -1), batches, 1x1 outputs, a single
 * row or column, C and K not multiples of anything, an RGB input */
static const tu_wgeom SHAPES4[] = {
    {1, 16, 8, 8, 16, 1},  {1, 5, 7, 9, 7, 1},   {3, 3, 10, 11, 13, 1}, {3, 7, 9, 6, 5, 0},
    {1, 6, 6, 7, 3, 0},    {2, 4, 5, 5, 6, 2},   {1, 9, 3, 3, 4, 0},    {1, 4, 1, 1, 3, 1},
    {1, 3, 2, 17, 5, 1},   {3, 11, 13, 1, 2, 1}, {2, 17, 12, 10, 19, 1}, {1, 4, 4, 5, 3, 3},
    {2, 5, 14, 15, 4, 1},  {1, 3, 16, 13, 2, 0}, {2, 6, 11, 12, 5, 2},  {1, 2, 9, 18, 3, 1},
};

Test(winograd4, forward_matches_naive_loops) {
    for (size_t i = 0; i < sizeof SHAPES4 / sizeof SHAPES4[0]; i++)
        fwd_err(&SHAPES4[i], NN_CONV_ALGO_WINOGRAD4, (int)(i % 2 == 0), 3000 + 10 * i, TOL4);
}

Test(winograd4, backward_data_accumulates_and_matches_naive_loops) {
    for (size_t i = 0; i < sizeof SHAPES4 / sizeof SHAPES4[0]; i++)
        bwd_err(&SHAPES4[i], NN_CONV_ALGO_WINOGRAD4, 3500 + 10 * i, TOL4);
}

/* chunks of 7, 1 and 5 tiles (conv2d_winograd_set_chunk): ending inside rows of tiles
 * and inside images */
Test(winograd4, chunks_that_split_rows_and_images_match_naive_loops) {
    const tu_wgeom gs[] = {{3, 5, 13, 11, 6, 1}, {3, 4, 10, 17, 3, 0}};
    const int chunks[] = {7, 1, 5};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        conv2d_winograd_set_chunk(chunks[c]);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
            fwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD4, 1, 4000 + 10 * i, TOL4);
            bwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD4, 4100 + 10 * i, TOL4);
        }
    }
    conv2d_winograd_set_chunk(0);
}

/* Deep3D-sized layers (C = K = 128 on 12x20; C = K = 512 on 10x24, as conv5 at
 * 384x160): F(4x4)'s error within 1e-4 of the output scale, and F(2x2)'s, both printed.
 * F(4x4) stays far inside the model-vs-PyTorch tolerance (2e-3 of each tensor's scale,
 * tests/test_model.c). */
Test(winograd4, accuracy_against_f2x2_on_deep3d_layers) {
    const tu_wgeom gs[] = {{1, 128, 12, 20, 128, 1}, {1, 512, 10, 24, 512, 1}};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        double e2 = fwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD, 1, 5000 + i, TOL4);
        double e4 = fwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD4, 1, 5000 + i, TOL4);
        double b2 = bwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD, 5100 + i, TOL4);
        double b4 = bwd_err(&gs[i], NN_CONV_ALGO_WINOGRAD4, 5100 + i, TOL4);
        cr_log_info("C = K = %d, %dx%d: forward error F(2x2) %.3g, F(4x4) %.3g; input gradient %.3g, %.3g "
                    "(of the output scale)", gs[i].ci, gs[i].h, gs[i].w, e2, e4, b2, b4);
        cr_assert(e4 <= 5e-5 && b4 <= 5e-5, "F(4x4) error %.3g / %.3g above 5e-5", e4, b4);
    }
}

/* The settings: winograd2 = winograd = F(2x2); winograd4; the weight gradient always
 * F(3x3, 2x2); the kernels refuse other shapes. */
Test(winograd4, settings_and_tile_choice) {
    nn_conv_algo a = NN_CONV_ALGO_AUTO;
    cr_assert_eq(nn_conv_algo_parse("winograd2", &a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(nn_conv_algo_parse("winograd4", &a), 0);
    cr_assert_eq(a, NN_CONV_ALGO_WINOGRAD4);
    cr_assert_eq(nn_conv_algo_parse("winograd8", &a), -1);
    cr_assert(strstr(nn_last_error(), "winograd4"), "message: %s", nn_last_error());
    const nn_conv_shape big = {1, 64, 160, 384, 64, 160, 384, 3, 3, 1, 1, 1, 0};
    const nn_conv_shape s2 = {1, 64, 40, 96, 64, 20, 48, 3, 3, 2, 1, 1, 0};
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD4);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_FORWARD), 4);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_BACKWARD_DATA), 4);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_BACKWARD_WEIGHT), 2);
    cr_assert_eq(conv2d_algo_cpu(&s2, NN_CONV_DIR_FORWARD), NN_CONV_ALGO_IM2COL);
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_FORWARD), 2);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_BACKWARD_DATA), 2);
    /* auto: F(4x4) from 200 4x4 tiles (measured, layers/conv2d_winograd.c) */
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    const nn_conv_shape c256 = {1, 256, 40, 96, 256, 40, 96, 3, 3, 1, 1, 1, 0};  /* 10 x 24 = 240 tiles */
    const nn_conv_shape c512 = {1, 512, 20, 48, 512, 20, 48, 3, 3, 1, 1, 1, 0};  /* 60 tiles */
    const nn_conv_shape b4 = {4, 512, 20, 48, 512, 20, 48, 3, 3, 1, 1, 1, 0};    /* batch 4: 240 tiles */
    const nn_conv_shape p0 = {1, 64, 58, 58, 64, 56, 56, 3, 3, 1, 0, 1, 0};      /* 196 output, 225 input tiles */
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_FORWARD), 4);
    cr_assert_eq(conv2d_winograd_tile(&c256, NN_CONV_DIR_FORWARD), 4);
    cr_assert_eq(conv2d_winograd_tile(&c512, NN_CONV_DIR_FORWARD), 2);
    cr_assert_eq(conv2d_winograd_tile(&c512, NN_CONV_DIR_BACKWARD_DATA), 2);
    cr_assert_eq(conv2d_winograd_tile(&b4, NN_CONV_DIR_FORWARD), 4);
    cr_assert_eq(conv2d_winograd_tile(&p0, NN_CONV_DIR_FORWARD), 2);
    cr_assert_eq(conv2d_winograd_tile(&p0, NN_CONV_DIR_BACKWARD_DATA), 4);
    cr_assert_eq(conv2d_winograd_tile(&big, NN_CONV_DIR_BACKWARD_WEIGHT), 2);
}
