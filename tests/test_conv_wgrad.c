/* The weight gradient of the convolution on the CPU (conv2d_backward_weight_cpu,
 * float32): the Winograd F(3x3, 2x2) path (layers/conv2d_winograd.c) and the im2col
 * path that multiplies several images at once (layers/conv2d.c), against a naive loop
 * written from the definition (torch.nn.Conv2d's documentation, the products routed to
 * the weights and accumulated in double) and against the per-image im2col products
 * (chunks of one image: the earlier implementation), with the chunks of images and of
 * tiles forced small, batch 1 and 3, odd sizes, every padding, the += contract, NULL
 * outputs, an empty batch, and the automatic choice.
 *
 * Tolerance: every element within 1e-5 * max|reference| (the gradient's scale), as for
 * the forward pass in tests/test_winograd.c: float32 rounding of a sum of N*H*W
 * products is ~1e-7 * sqrt(N*H*W) of its scale, and the Winograd constants (0, +-1,
 * +-1/2) are exact in binary. */
#include <math.h>
#include <stdio.h>

#include "../layers/conv2d.h"
#include "../layers/conv2d_winograd.h"
#include "testutil.h"

typedef struct {
    int n, ci, h, w, co, kh, kw, stride, pad, dil;
} geom;

static const double TOL = 1e-5; /* of max|reference| */

static nn_conv_shape shape_of(const geom *g) {
    nn_conv_shape s = {g->n, g->ci, g->h, g->w, g->co, 0, 0, g->kh, g->kw, g->stride, g->pad, g->dil, 0};
    s.h_out = (g->h + 2 * g->pad - g->dil * (g->kh - 1) - 1) / g->stride + 1;
    s.w_out = (g->w + 2 * g->pad - g->dil * (g->kw - 1) - 1) / g->stride + 1;
    return s;
}

static size_t n_in(const nn_conv_shape *s) { return (size_t)s->n * s->c_in * s->h_in * s->w_in; }
static size_t n_out(const nn_conv_shape *s) { return (size_t)s->n * s->c_out * s->h_out * s->w_out; }
static size_t n_w(const nn_conv_shape *s) { return (size_t)s->c_out * s->c_in * s->kh * s->kw; }

/* dw (C_out, C_in, KH, KW) = dw0 + sum over n, y, x of dout[n,o,y,x] * x[n, c, y*stride -
 * pad + i*dil, x*stride - pad + j*dil] (0 outside), db (C_out) = db0 + sum of dout[n,o,:,:],
 * in double */
static void naive_wgrad(double *dw, double *db, const nn_real *dw0, const nn_real *db0, const nn_real *dout,
                        const nn_real *x, const nn_conv_shape *s) {
    const size_t nw = n_w(s);
    for (size_t i = 0; i < nw; i++) dw[i] = dw0[i];
    for (int o = 0; o < s->c_out; o++) db[o] = db0[o];
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->c_out; o++)
            for (int y = 0; y < s->h_out; y++)
                for (int xx = 0; xx < s->w_out; xx++) {
                    const double d = dout[((size_t)(n * s->c_out + o) * s->h_out + y) * s->w_out + xx];
                    db[o] += d;
                    for (int c = 0; c < s->c_in; c++)
                        for (int i = 0; i < s->kh; i++)
                            for (int j = 0; j < s->kw; j++) {
                                const int iy = y * s->stride - s->pad + i * s->dilation;
                                const int ix = xx * s->stride - s->pad + j * s->dilation;
                                if (iy < 0 || iy >= s->h_in || ix < 0 || ix >= s->w_in) continue;
                                dw[((size_t)(o * s->c_in + c) * s->kh + i) * s->kw + j] +=
                                    d * x[((size_t)(n * s->c_in + c) * s->h_in + iy) * s->w_in + ix];
                            }
                }
}

static nn_real *copy_of(const nn_real *a, size_t n) {
    nn_real *p = malloc((n ? n : 1) * sizeof *p);
    memcpy(p, a, n * sizeof *p);
    return p;
}

static double *to_double(const nn_real *a, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

/* One configuration of the CPU kernels: the algorithm, the images per im2col product
 * and the tiles per Winograd chunk (0 = the defaults). */
typedef struct {
    nn_conv_algo algo;
    int images, tiles;
} config;

static void use(const config *c, const nn_conv_shape *s, const char *what) {
    nn_conv_algo_set(c->algo);
    conv2d_im2col_set_chunk(c->images);
    conv2d_winograd_set_chunk(c->tiles);
    const int want = c->algo == NN_CONV_ALGO_WINOGRAD && conv2d_winograd_applies(s) ? NN_CONV_ALGO_WINOGRAD
                                                                                     : NN_CONV_ALGO_IM2COL;
    const int got = conv2d_algo_cpu(s, NN_CONV_DIR_BACKWARD_WEIGHT);
    cr_assert_eq(got, want, "%s: conv2d_algo_cpu picked %d, expected %d (%s)", what, got, want, nn_last_error());
}

static void reset(void) {
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    conv2d_im2col_set_chunk(0);
    conv2d_winograd_set_chunk(0);
}

static void describe(char *buf, size_t len, const geom *g, const config *c, const char *extra) {
    snprintf(buf, len, "%s (images %d, tiles %d) N%d C%d %dx%d -> C%d k%dx%d s%d p%d d%d%s",
             c->algo == NN_CONV_ALGO_WINOGRAD ? "winograd" : "im2col", c->images, c->tiles, g->n, g->ci, g->h, g->w,
             g->co, g->kh, g->kw, g->stride, g->pad, g->dil, extra);
}

/* Under configuration c: into gradients that already hold values (+=), both outputs,
 * then each alone with the other NULL (left untouched), against the naive loop. */
static void check_config(const geom *g, const config *c, uint64_t seed) {
    char what[200];
    const nn_conv_shape s = shape_of(g);
    const size_t nx = n_in(&s), ny = n_out(&s), nw = n_w(&s);
    nn_real *x = tu_uniform_array(nx, seed), *dout = tu_uniform_array(ny, seed + 1), *dw0 = tu_uniform_array(nw, seed + 2),
            *db0 = tu_uniform_array(s.c_out, seed + 3);
    double *want_dw = malloc(nw * sizeof *want_dw), *want_db = malloc(s.c_out * sizeof *want_db);
    naive_wgrad(want_dw, want_db, dw0, db0, dout, x, &s);

    describe(what, sizeof what, g, c, "");
    use(c, &s, what);
    nn_real *dw = copy_of(dw0, nw), *db = copy_of(db0, s.c_out);
    cr_assert_eq(conv2d_backward_weight_cpu(dw, db, dout, x, &s), 0, "%s: %s", what, nn_last_error());
    tu_assert_close_scaled(dw, want_dw, nw, TOL, what);
    tu_assert_close_scaled(db, want_db, s.c_out, TOL, what);

    /* dbias NULL: the weight gradient alone */
    describe(what, sizeof what, g, c, ", dbias NULL");
    memcpy(dw, dw0, nw * sizeof *dw);
    cr_assert_eq(conv2d_backward_weight_cpu(dw, NULL, dout, x, &s), 0, "%s: %s", what, nn_last_error());
    tu_assert_close_scaled(dw, want_dw, nw, TOL, what);

    /* dweight NULL: the bias gradient alone */
    describe(what, sizeof what, g, c, ", dweight NULL");
    memcpy(db, db0, s.c_out * sizeof *db);
    cr_assert_eq(conv2d_backward_weight_cpu(NULL, db, dout, x, &s), 0, "%s: %s", what, nn_last_error());
    tu_assert_close_scaled(db, want_db, s.c_out, TOL, what);

    /* both NULL: nothing to do */
    cr_assert_eq(conv2d_backward_weight_cpu(NULL, NULL, dout, x, &s), 0, "%s: %s", what, nn_last_error());
    reset();
    free(x), free(dout), free(dw0), free(db0), free(want_dw), free(want_db), free(dw), free(db);
}

/* 3x3 stride-1 shapes (the Winograd path): odd and even sizes (partial tiles), padding
 * 0 to 3, batch 1 and 3, channel counts that are multiples of nothing, outputs of one
 * pixel, a single row or column */
static const geom WG_SHAPES[] = {
    {1, 16, 8, 8, 16, 3, 3, 1, 1, 1},  /* whole tiles */
    {1, 5, 7, 9, 7, 3, 3, 1, 1, 1},    /* odd H and W: partial last tile row and column */
    {3, 3, 10, 11, 13, 3, 3, 1, 1, 1}, /* RGB input, batch 3 */
    {3, 7, 9, 6, 5, 3, 3, 1, 0, 1},    /* padding 0: 7x4 output */
    {1, 6, 6, 7, 3, 3, 3, 1, 0, 1},    /* padding 0, odd W */
    {2, 4, 5, 5, 6, 3, 3, 1, 2, 1},    /* padding 2: output larger than the input */
    {1, 9, 3, 3, 4, 3, 3, 1, 0, 1},    /* 1x1 output */
    {1, 4, 1, 1, 3, 3, 3, 1, 1, 1},    /* 1x1 input and output */
    {1, 3, 2, 17, 5, 3, 3, 1, 1, 1},   /* one row of tiles */
    {3, 11, 13, 1, 2, 3, 3, 1, 1, 1},  /* a single column */
    {1, 4, 4, 5, 3, 3, 3, 1, 3, 1},    /* padding 3: tiles reading only padding */
    {2, 17, 12, 10, 19, 3, 3, 1, 1, 1},
};

/* other geometries (the im2col path under every setting) */
static const geom OTHER_SHAPES[] = {
    {3, 5, 6, 4, 3, 1, 1, 1, 0, 1},   /* pointwise, batch 3 */
    {3, 4, 7, 5, 3, 1, 1, 2, 0, 1},   /* 1x1, stride 2 */
    {2, 3, 8, 8, 4, 4, 4, 2, 1, 1},   /* kernel 4, stride 2 (Deep3D's upsampling adjoints) */
    {3, 2, 11, 8, 3, 5, 5, 3, 2, 1},  /* kernel 5, stride 3, non-square input */
    {3, 3, 9, 8, 4, 3, 3, 1, 2, 2},   /* dilation 2 */
    {1, 2, 7, 6, 3, 4, 2, 2, 1, 1},   /* non-square kernel 4x2 */
    {3, 2, 10, 9, 3, 3, 3, 2, 1, 1},  /* 3x3 stride 2 */
};

static const config IM2COL_CONFIGS[] = {
    {NN_CONV_ALGO_IM2COL, 0, 0}, /* default: all images of these small shapes in one product, or one */
    {NN_CONV_ALGO_IM2COL, 3, 0}, /* 3 images (all of batch 3) in one product */
    {NN_CONV_ALGO_IM2COL, 1, 0}, /* one image a product (the earlier path) */
    {NN_CONV_ALGO_IM2COL, 2, 0}, /* 2 images: with batch 3 a last chunk of 1 */
};

static const config WG_CONFIGS[] = {
    {NN_CONV_ALGO_WINOGRAD, 0, 0}, /* default: one chunk */
    {NN_CONV_ALGO_WINOGRAD, 0, 1}, /* one tile a chunk */
    {NN_CONV_ALGO_WINOGRAD, 0, 5}, /* chunks ending inside rows of tiles and images */
    {NN_CONV_ALGO_WINOGRAD, 0, 7},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

Test(conv_wgrad, winograd_matches_naive_loop) {
    for (size_t i = 0; i < COUNT(WG_SHAPES); i++)
        for (size_t c = 0; c < COUNT(WG_CONFIGS); c++) check_config(&WG_SHAPES[i], &WG_CONFIGS[c], 100 + 10 * i);
}

Test(conv_wgrad, im2col_chunks_of_images_match_naive_loop) {
    for (size_t i = 0; i < COUNT(WG_SHAPES); i++)
        for (size_t c = 0; c < COUNT(IM2COL_CONFIGS); c++)
            check_config(&WG_SHAPES[i], &IM2COL_CONFIGS[c], 300 + 10 * i);
    for (size_t i = 0; i < COUNT(OTHER_SHAPES); i++)
        for (size_t c = 0; c < COUNT(IM2COL_CONFIGS); c++)
            check_config(&OTHER_SHAPES[i], &IM2COL_CONFIGS[c], 500 + 10 * i);
    /* Winograd forced: the shapes it does not apply to stay on im2col */
    for (size_t i = 0; i < COUNT(OTHER_SHAPES); i++) check_config(&OTHER_SHAPES[i], &WG_CONFIGS[2], 700 + 10 * i);
}

/* dweight under configuration c from zero, for the comparisons between paths */
static nn_real *wgrad_with(const config *c, const nn_real *dout, const nn_real *x, const nn_conv_shape *s,
                           const char *what) {
    use(c, s, what);
    nn_real *dw = calloc(n_w(s), sizeof *dw);
    cr_assert_eq(conv2d_backward_weight_cpu(dw, NULL, dout, x, s), 0, "%s: %s", what, nn_last_error());
    reset();
    return dw;
}

/* Chunks on shapes whose default products need several of them, against the
 * per-image im2col products (the naive loop would take seconds; the per-image path is
 * checked against it above):
 *   im2col: (C_in*9 + C_out) * H*W = (2304 + 16) * 1920 values an image, so 3 images
 *   fit the 16M-value budget (the default where OpenMP threads spin; forced here, as
 *   the environment may make the default 1): chunks of 3 and 1;
 *   Winograd: 16M / (16 (C_in + C_out)) = 1024 tiles a chunk at C_in + C_out = 1024,
 *   here 2 images of 5 x 110 tiles, the second chunk starting inside the second image
 *   and inside a row of tiles. */
Test(conv_wgrad, default_chunks_match_per_image_products) {
    const geom gs[] = {{4, 256, 40, 48, 16, 3, 3, 1, 1, 1}, {2, 16, 10, 220, 1008, 3, 3, 1, 1, 1}};
    const config per_image = {NN_CONV_ALGO_IM2COL, 1, 0}, batched = {NN_CONV_ALGO_IM2COL, 3, 0},
                 winograd = {NN_CONV_ALGO_WINOGRAD, 0, 0};
    for (size_t i = 0; i < COUNT(gs); i++) {
        const nn_conv_shape s = shape_of(&gs[i]);
        nn_real *x = tu_uniform_array(n_in(&s), 900 + i), *dout = tu_uniform_array(n_out(&s), 910 + i);
        nn_real *ref = wgrad_with(&per_image, dout, x, &s, "per-image im2col");
        double *refd = to_double(ref, n_w(&s));
        nn_real *a = wgrad_with(&batched, dout, x, &s, "batched im2col");
        tu_assert_close_scaled(a, refd, n_w(&s), TOL, "im2col, 3 images a product, vs per-image im2col");
        nn_real *b = wgrad_with(&winograd, dout, x, &s, "winograd");
        tu_assert_close_scaled(b, refd, n_w(&s), TOL, "winograd vs per-image im2col, default chunks");
        free(x), free(dout), free(ref), free(refd), free(a), free(b);
    }
}

/* The images per im2col product: as many as fit 16M values when OpenMP threads spin
 * (the default wait policy), 1 when they sleep or for a pointwise kernel, never more
 * than N; the forced values. */
Test(conv_wgrad, images_per_product) {
    const nn_conv_shape big = shape_of(&(geom){4, 256, 40, 48, 16, 3, 3, 1, 1, 1}),   /* 3 fit */
        small = shape_of(&(geom){3, 33, 10, 24, 33, 3, 3, 1, 1, 1}),                 /* all fit */
        huge = shape_of(&(geom){4, 33, 160, 384, 33, 3, 3, 1, 1, 1}),                /* none fits */
        point = shape_of(&(geom){4, 64, 10, 24, 64, 1, 1, 1, 0, 1});
    unsetenv("GOMP_SPINCOUNT");
    setenv("OMP_WAIT_POLICY", "active", 1);
    cr_assert_eq(conv2d_im2col_images(&big), 3);
    cr_assert_eq(conv2d_im2col_images(&small), 3);
    cr_assert_eq(conv2d_im2col_images(&huge), 1);
    cr_assert_eq(conv2d_im2col_images(&point), 1);
    unsetenv("OMP_WAIT_POLICY");
    cr_assert_eq(conv2d_im2col_images(&big), 3);
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    cr_assert_eq(conv2d_im2col_images(&big), 1);
    cr_assert_eq(conv2d_im2col_images(&small), 1);
    unsetenv("OMP_WAIT_POLICY");
    setenv("GOMP_SPINCOUNT", "100", 1);
    cr_assert_eq(conv2d_im2col_images(&small), 1);
    setenv("GOMP_SPINCOUNT", "300000", 1);
    cr_assert_eq(conv2d_im2col_images(&small), 3);
    setenv("GOMP_SPINCOUNT", "infinite", 1);
    cr_assert_eq(conv2d_im2col_images(&small), 3);
    conv2d_im2col_set_chunk(2);
    cr_assert_eq(conv2d_im2col_images(&huge), 2);
    cr_assert_eq(conv2d_im2col_images(&point), 2);
    conv2d_im2col_set_chunk(7);
    cr_assert_eq(conv2d_im2col_images(&small), 3);
    conv2d_im2col_set_chunk(0);
    unsetenv("GOMP_SPINCOUNT");
}

/* A Deep3D-like layer (C = K = 128, 12x20, batch 2): the measured error of each path
 * against the double-precision loop, relative to the gradient's scale. Winograd stays
 * within 1e-5 and within 4x the error of the per-image im2col products. */
Test(conv_wgrad, winograd_accuracy_is_close_to_im2col_on_a_wide_layer) {
    const geom g = {2, 128, 12, 20, 128, 3, 3, 1, 1, 1};
    const nn_conv_shape s = shape_of(&g);
    const size_t nw = n_w(&s);
    nn_real *x = tu_uniform_array(n_in(&s), 1000), *dout = tu_uniform_array(n_out(&s), 1001), *zero = calloc(nw, sizeof *zero),
            *zb = calloc(s.c_out, sizeof *zb);
    double *want = malloc(nw * sizeof *want), *want_db = malloc(s.c_out * sizeof *want_db);
    naive_wgrad(want, want_db, zero, zb, dout, x, &s);
    const config cs[3] = {{NN_CONV_ALGO_IM2COL, 1, 0}, {NN_CONV_ALGO_IM2COL, 0, 0}, {NN_CONV_ALGO_WINOGRAD, 0, 0}};
    const char *names[3] = {"per-image im2col", "batched im2col", "winograd"};
    double err[3];
    for (int i = 0; i < 3; i++) {
        nn_real *dw = wgrad_with(&cs[i], dout, x, &s, names[i]);
        err[i] = tu_assert_close_scaled(dw, want, nw, TOL, names[i]);
        free(dw);
    }
    cr_log_info("weight gradient error of the scale, C = K = 128, 12x20, batch 2: per-image im2col %.2g, "
                "batched %.2g, winograd %.2g", err[0], err[1], err[2]);
    cr_assert(err[2] <= 4 * err[0] + 1e-7, "winograd error %.3g, per-image im2col %.3g (of the gradient scale)",
              err[2], err[0]);
    cr_assert(err[1] <= 4 * err[0] + 1e-7, "batched im2col error %.3g, per-image %.3g", err[1], err[0]);
    free(x), free(dout), free(zero), free(zb), free(want), free(want_db);
}

/* An empty batch adds nothing on either path. */
Test(conv_wgrad, empty_batch_adds_nothing) {
    const geom g = {0, 16, 8, 8, 16, 3, 3, 1, 1, 1};
    const nn_conv_shape s = shape_of(&g);
    const size_t nw = n_w(&s);
    nn_real *dw0 = tu_uniform_array(nw, 1100), *db0 = tu_uniform_array(s.c_out, 1101), dummy[1] = {0};
    for (int a = 0; a < 2; a++) {
        const config c = {a ? NN_CONV_ALGO_WINOGRAD : NN_CONV_ALGO_IM2COL, 0, 0};
        use(&c, &s, "empty batch");
        nn_real *dw = copy_of(dw0, nw), *db = copy_of(db0, s.c_out);
        cr_assert_eq(conv2d_backward_weight_cpu(dw, db, dummy, dummy, &s), 0, "%s", nn_last_error());
        cr_assert(!memcmp(dw, dw0, nw * sizeof *dw), "dweight changed (%s)", a ? "winograd" : "im2col");
        cr_assert(!memcmp(db, db0, s.c_out * sizeof *db), "dbias changed (%s)", a ? "winograd" : "im2col");
        free(dw), free(db);
    }
    reset();
    free(dw0), free(db0);
}

/* Auto: Winograd for the weight gradient of Deep3D's 3x3 convolutions at batch 4
 * (>= 128 tiles of the output, >= 16 channels each way), im2col elsewhere; the
 * Winograd kernel refuses other shapes with a message. */
Test(conv_wgrad, algorithm_choice) {
    struct {
        nn_conv_shape s;
        int want;
    } cases[] = {
        {{4, 512, 10, 24, 512, 10, 24, 3, 3, 1, 1, 1, 0}, 2},   /* conv5, batch 4: 240 tiles */
        {{4, 512, 10, 24, 33, 10, 24, 3, 3, 1, 1, 1, 0}, 2},    /* pred4 */
        {{4, 33, 160, 384, 33, 160, 384, 3, 3, 1, 1, 1, 0}, 2}, /* the final conv */
        {{2, 512, 10, 24, 512, 10, 24, 3, 3, 1, 1, 1, 0}, 1},   /* 120 tiles < 128 */
        {{2, 16, 16, 16, 16, 16, 16, 3, 3, 1, 1, 1, 0}, 2},     /* exactly 128 tiles, 16 channels */
        {{1, 64, 16, 16, 64, 16, 16, 3, 3, 1, 1, 1, 0}, 1},     /* 64 tiles: Winograd forward, not here */
        {{4, 3, 160, 384, 64, 160, 384, 3, 3, 1, 1, 1, 0}, 1},  /* RGB input */
        {{4, 64, 160, 384, 8, 160, 384, 3, 3, 1, 1, 1, 0}, 1},  /* thin output */
        {{4, 64, 40, 96, 64, 20, 48, 3, 3, 2, 1, 1, 0}, 1},     /* stride 2 */
        {{4, 64, 40, 96, 64, 40, 96, 3, 3, 1, 2, 2, 0}, 1},     /* dilation 2 */
        {{4, 33, 80, 192, 33, 40, 96, 4, 4, 2, 1, 1, 0}, 1},    /* a transposed conv's adjoint */
    };
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    for (size_t i = 0; i < COUNT(cases); i++)
        cr_assert_eq(conv2d_algo_cpu(&cases[i].s, NN_CONV_DIR_BACKWARD_WEIGHT), cases[i].want, "case %zu", i);
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(conv2d_algo_cpu(&cases[3].s, NN_CONV_DIR_BACKWARD_WEIGHT), NN_CONV_ALGO_WINOGRAD);
    cr_assert_eq(conv2d_algo_cpu(&cases[8].s, NN_CONV_DIR_BACKWARD_WEIGHT), NN_CONV_ALGO_IM2COL);
    nn_conv_algo_set(NN_CONV_ALGO_IM2COL);
    cr_assert_eq(conv2d_algo_cpu(&cases[0].s, NN_CONV_DIR_BACKWARD_WEIGHT), NN_CONV_ALGO_IM2COL);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    nn_real dummy[1] = {0};
    cr_assert_eq(conv2d_winograd_backward_weight_cpu(dummy, dummy, dummy, &cases[8].s), -1);
    cr_assert(strstr(nn_last_error(), "conv2d winograd backward weight: kernel 3x3, stride 2"), "message: %s",
              nn_last_error());
}

/* Through the op with the automatic choice on a shape where the weight gradient runs
 * Winograd (2 images of 8x8 tiles, 16 channels each way): nn_conv2d's backward against
 * the naive loop, into gradients that already hold values. */
Test(conv_wgrad, op_backward_on_the_auto_winograd_path) {
    const geom g = {2, 16, 16, 16, 16, 3, 3, 1, 1, 1};
    const nn_conv_shape s = shape_of(&g);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    cr_assert_eq(conv2d_algo_cpu(&s, NN_CONV_DIR_BACKWARD_WEIGHT), NN_CONV_ALGO_WINOGRAD);
    nn_tensor *x = tu_uniform4(g.n, g.ci, g.h, g.w, -1, 1, 1200), *w = tu_uniform4(g.co, g.ci, 3, 3, -1, 1, 1201),
              *b = tu_uniform4(g.co, 0, 0, 0, -1, 1, 1202);
    w->requires_grad = b->requires_grad = 1;
    w->grad = tu_uniform4(g.co, g.ci, 3, 3, -1, 1, 1203);
    b->grad = tu_uniform4(g.co, 0, 0, 0, -1, 1, 1204);
    double *want_dw = malloc(w->numel * sizeof *want_dw), *want_db = malloc(b->numel * sizeof *want_db);
    nn_graph gr;
    nn_graph_init(&gr, 1);
    nn_tensor *y = nn_conv2d(&gr, x, w, b, 1, 1, 1);
    cr_assert_not_null(y, "%s", nn_last_error());
    nn_tensor *r = tu_uniform(y->ndim, y->shape, -1, 1, 1205);
    naive_wgrad(want_dw, want_db, w->grad->data, b->grad->data, r->data, x->data, &s);
    cr_assert_eq(nn_graph_backward_from(&gr, y, r), 0, "%s", nn_last_error());
    cr_assert_null(x->grad);
    tu_assert_close_scaled(w->grad->data, want_dw, w->numel, TOL, "nn_conv2d dweight (auto: winograd)");
    tu_assert_close_scaled(b->grad->data, want_db, b->numel, TOL, "nn_conv2d dbias (auto: winograd)");
    nn_graph_free(&gr);
    free(want_dw), free(want_db);
    nn_tensor_unref(r), nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(w), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}
