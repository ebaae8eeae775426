/* infer/render: source-resolution rendering against the selection-layer formula
 * (DEEP3D.md), resampling and renormalisation, the tiled single-image path, output
 * compositions, errors. Shapes are tiny; the network is a fake callback. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/render.h"
#include "testutil.h"

static nn_real *uniform(size_t n, double lo, double hi, uint64_t seed) {
    nn_real *a = malloc(n * sizeof *a);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++) a[i] = (nn_real)(lo + (hi - lo) * nn_hash_uniform(seed, i));
    return a;
}

/* Positive probabilities (D, h, w) normalised over D. */
static nn_real *random_prob(int D, int h, int w, uint64_t seed) {
    size_t plane = (size_t)h * w;
    nn_real *p = uniform((size_t)D * plane, 0.05, 1, seed);
    for (size_t i = 0; i < plane; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) s += p[k * plane + i];
        for (int k = 0; k < D; k++) p[k * plane + i] = (nn_real)(p[k * plane + i] / s);
    }
    return p;
}

/* One-hot probabilities (D, h, w) at level k0. */
static nn_real *one_hot(int D, int h, int w, int k0) {
    size_t plane = (size_t)h * w;
    nn_real *p = calloc((size_t)D * plane, sizeof *p);
    cr_assert_not_null(p);
    for (size_t i = 0; i < plane; i++) p[k0 * plane + i] = 1;
    return p;
}

/* The selection layer, written plainly (DEEP3D.md):
 *   R(c, y, x) = sum_k p(k, y, x) * L(c, y, clamp(x - d_k, 0, W-1)),  d_k = dmin + k
 *   E(y, x)    = sum_k p(k, y, x) * d_k */
static void naive_selection(nn_real *R, nn_real *E, const nn_real *L, const nn_real *p, int D, int dmin,
                            int H, int W) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double r = 0, e = 0;
                for (int k = 0; k < D; k++) {
                    int xs = x - (dmin + k);
                    if (xs < 0) xs = 0;
                    if (xs > W - 1) xs = W - 1;
                    double pk = p[((size_t)k * H + y) * W + x];
                    r += pk * L[((size_t)c * H + y) * W + xs];
                    e += pk * (dmin + k);
                }
                R[((size_t)c * H + y) * W + x] = (nn_real)r;
                if (c == 0) E[(size_t)y * W + x] = (nn_real)e;
            }
}

/* Plain bilinear, align_corners = false: output (Y, X) of H2 x W2 reads input
 * (y, x) = ((Y + 0.5) h / H2 - 0.5, (X + 0.5) w / W2 - 0.5), clamped to the image. */
static double naive_bilinear(const nn_real *a, int h, int w, int H2, int W2, int Y, int X) {
    double v = (Y + 0.5) * h / H2 - 0.5, u = (X + 0.5) * w / W2 - 0.5;
    v = v < 0 ? 0 : v > h - 1 ? h - 1 : v;
    u = u < 0 ? 0 : u > w - 1 ? w - 1 : u;
    int y0 = (int)floor(v), x0 = (int)floor(u), y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
    double fy = v - y0, fx = u - x0;
    return (1 - fy) * ((1 - fx) * a[y0 * w + x0] + fx * a[y0 * w + x1]) +
           fy * ((1 - fx) * a[y1 * w + x0] + fx * a[y1 * w + x1]);
}

Test(render, scale_1_reproduces_the_selection_layer) {
    const int D = 7, dmin = -3, H = 4, W = 9; /* shifts up to 3 px on a 9 px row: clamping is hit */
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 1), *p = random_prob(D, H, W, 2);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    naive_selection(R0, E0, L, p, D, dmin, H, W);
    cr_assert_eq(render_right_view(R, E, L, p, D, dmin, 1.0, H, W), 0, "%s", nn_last_error());
    tu_assert_close(R, R0, (size_t)3 * H * W, 1e-3, 1e-5, "render_right_view s=1");
    tu_assert_close(E, E0, (size_t)H * W, 1e-5, 1e-5, "disparity s=1");
    /* network resolution == source resolution: the resampling is the identity */
    cr_assert_eq(render_from_prob(R, E, L, H, W, p, D, dmin, H, W), 0, "%s", nn_last_error());
    tu_assert_close(R, R0, (size_t)3 * H * W, 1e-3, 1e-5, "render_from_prob s=1");
    tu_assert_close(E, E0, (size_t)H * W, 1e-5, 1e-5, "disparity from prob s=1");
    free(L), free(p), free(R), free(E), free(R0), free(E0);
}

Test(render, one_hot_at_scale_2_shifts_by_exactly_2d) {
    const int D = 9, dmin = -4, h = 3, w = 8, H = 6, W = 16; /* source twice the network size */
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 3);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    for (int k0 = 0; k0 < D; k0 += 2) {
        int d = dmin + k0;
        nn_real *p = one_hot(D, h, w, k0);
        cr_assert_eq(render_from_prob(R, E, L, H, W, p, D, dmin, h, w), 0, "%s", nn_last_error());
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int xs = x - 2 * d; /* integer positions: borders clamp exactly too */
                    xs = xs < 0 ? 0 : xs > W - 1 ? W - 1 : xs;
                    nn_real got = R[((size_t)c * H + y) * W + x], want = L[((size_t)c * H + y) * W + xs];
                    cr_assert_eq(got, want, "d %d: R(%d,%d,%d) = %g, want L(x=%d) = %g", d, c, y, x, got, xs,
                                 want);
                }
        for (int i = 0; i < H * W; i++) cr_assert_eq(E[i], 2 * d, "E[d] %g, want %d", E[i], 2 * d);
        free(p);
    }
    free(L), free(R), free(E);
}

Test(render, fractional_shift_interpolates_linearly) {
    /* w = 8 -> W = 12: s = 1.5; one-hot at d = 1: shift 1.5 px. With L(c, y, x) =
     * 10x + c + 100y, R(c, y, 5) = 0.5 L(c, y, 3) + 0.5 L(c, y, 4) = 35 + c + 100y
     * (by hand from the formula), and R(c, y, x) = 10(x - 1.5) + c + 100y for x >= 2;
     * x = 0, 1 read u = x - 1.5 < 0, clamped to column 0. */
    const int D = 4, dmin = -1, h = 2, w = 8, H = 3, W = 12;
    nn_real *L = malloc(sizeof(nn_real) * 3 * H * W), *R = malloc(sizeof(nn_real) * 3 * H * W);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) L[((size_t)c * H + y) * W + x] = (nn_real)(10 * x + c + 100 * y);
    nn_real *p = one_hot(D, h, w, 1 - dmin);
    cr_assert_eq(render_from_prob(R, NULL, L, H, W, p, D, dmin, h, w), 0, "%s", nn_last_error());
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++) {
            cr_assert_float_eq(R[((size_t)c * H + y) * W + 5], 35 + c + 100 * y, 1e-4, "hand value");
            for (int x = 0; x < W; x++) {
                double want = x >= 2 ? 10 * (x - 1.5) + c + 100 * y : c + 100 * y;
                cr_assert_float_eq(R[((size_t)c * H + y) * W + x], want, 1e-4, "R(%d,%d,%d)", c, y, x);
            }
        }
    free(L), free(R), free(p);
}

Test(render, upsampling_is_bilinear_and_renormalised) {
    const int D = 5, h = 5, w = 12, H = 13, W = 37;
    /* unnormalised positive input (sums 0.25..15): the output must still sum to 1 */
    nn_real *p = uniform((size_t)D * h * w, 0.05, 3, 4), *q = malloc(sizeof(nn_real) * D * H * W);
    cr_assert_eq(render_upsample_prob(q, p, D, h, w, H, W), 0, "%s", nn_last_error());
    size_t plane = (size_t)H * W;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double sum = 0, want[5], wsum = 0;
            for (int k = 0; k < D; k++) {
                sum += q[k * plane + (size_t)y * W + x];
                want[k] = naive_bilinear(p + (size_t)k * h * w, h, w, H, W, y, x);
                wsum += want[k];
            }
            cr_assert_float_eq(sum, 1.0, 1e-6, "sum at (%d, %d) = %.9g", y, x, sum);
            for (int k = 0; k < D; k++)
                cr_assert_float_eq(q[k * plane + (size_t)y * W + x], want[k] / wsum, 1e-6, "p'(%d,%d,%d)", k, y, x);
        }
    free(p), free(q);
}

Test(render, resize_shrinks_with_a_widened_tent_and_keeps_identity) {
    /* 8 -> 4 columns (factor 2): output i is centred at input 2i + 1 (pixel-area
     * convention) and the tent has half-width 2, so columns 2i-1, 2i, 2i+1, 2i+2 (centres
     * 1.5, 0.5, 0.5, 1.5 px away) weigh 1/4, 3/4, 3/4, 1/4, normalised: 1/8 3/8 3/8 1/8.
     * At the left edge column -1 is missing: 3/4, 3/4, 1/4 over 7/4 -> 3/7 3/7 1/7. */
    nn_real in[8] = {0, 8, 16, 40, 80, 8, 24, 64}, out[4];
    cr_assert_eq(render_resize(out, in, 1, 1, 8, 1, 4), 0, "%s", nn_last_error());
    cr_assert_float_eq(out[1], (in[1] + 3 * in[2] + 3 * in[3] + in[4]) / 8.0, 1e-4);
    cr_assert_float_eq(out[0], (3 * in[0] + 3 * in[1] + in[2]) / 7.0, 1e-4);
    nn_real *a = uniform(3 * 5 * 7, 0, 255, 5), *b = malloc(sizeof(nn_real) * 3 * 5 * 7);
    cr_assert_eq(render_resize(b, a, 3, 5, 7, 5, 7), 0, "%s", nn_last_error());
    tu_assert_close(b, a, 3 * 5 * 7, 0, 0, "identity resize");
    free(a), free(b);
}

Test(render, fused_rendering_equals_upsample_then_render) {
    const int D = 6, dmin = -2, h = 5, w = 12, H = 11, W = 29;
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 6), *p = random_prob(D, h, w, 7);
    nn_real *q = malloc(sizeof(nn_real) * D * H * W);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    cr_assert_eq(render_upsample_prob(q, p, D, h, w, H, W), 0, "%s", nn_last_error());
    cr_assert_eq(render_right_view(R0, E0, L, q, D, dmin, (double)W / w, H, W), 0, "%s", nn_last_error());
    cr_assert_eq(render_from_prob(R, E, L, H, W, p, D, dmin, h, w), 0, "%s", nn_last_error());
    tu_assert_close(R, R0, (size_t)3 * H * W, 1e-3, 1e-5, "right view");
    tu_assert_close(E, E0, (size_t)H * W, 1e-5, 1e-5, "disparity");
    free(L), free(p), free(q), free(R), free(E), free(R0), free(E0);
}

/* ------------------------------------------------------------ single-image path */

#define MAX_CALLS 64
typedef struct {
    int D, h, w, calls, fail_at;  /* fail_at: call index that fails (-1: none) */
    int mode;                     /* 0: one-hot at k0; 1: one-hot at k = call index; 2: random; 3: zeros */
    int k0;
    nn_real *windows[MAX_CALLS];  /* copies of the windows received */
} fake_net;

static int fake_run(void *ctx, const nn_real *window, nn_real *prob) {
    fake_net *f = ctx;
    int i = f->calls++;
    if (i == f->fail_at) return nn_fail("fake network: out of device memory");
    size_t plane = (size_t)f->h * f->w, n = (size_t)f->D * plane;
    if (i < MAX_CALLS) {
        f->windows[i] = malloc(3 * plane * sizeof(nn_real));
        memcpy(f->windows[i], window, 3 * plane * sizeof(nn_real));
    }
    if (f->mode == 2) {
        nn_real *p = random_prob(f->D, f->h, f->w, 100 + i);
        memcpy(prob, p, n * sizeof *p);
        free(p);
        return 0;
    }
    memset(prob, 0, n * sizeof *prob);
    if (f->mode == 3) return 0;
    int k = f->mode == 0 ? f->k0 : i % f->D;
    for (size_t j = 0; j < plane; j++) prob[k * plane + j] = 1;
    return 0;
}

static void fake_free(fake_net *f) {
    for (int i = 0; i < MAX_CALLS; i++) free(f->windows[i]), f->windows[i] = NULL;
}

static render_config small_config(void) {
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_h = 10, cfg.net_w = 24, cfg.D = 7, cfg.dmin = -3; /* 2.4:1 like 384x160 */
    cfg.mode = RENDER_BLEND; /* these tests are about the blend path; test_warp.c the warp path */
    return cfg;
}

/* Tiled path with identical one-hot windows == one-hot rendering at the plan's s. */
static void check_tiled_one_hot(int H, int W, int want_axis, double want_scale) {
    render_config cfg = small_config();
    fake_net f = {.D = cfg.D, .h = cfg.net_h, .w = cfg.net_w, .fail_at = -1, .mode = 0, .k0 = 5};
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 8);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    render_info info;
    cr_assert_eq(render_image(R, E, &info, &cfg, fake_run, &f, L, H, W), 0, "%s", nn_last_error());
    render_window win[MAX_CALLS];
    double s;
    int n = render_plan_windows(win, MAX_CALLS, &s, &cfg, H, W);
    cr_assert(n >= 3, "a %d x %d frame should need several windows, got %d", W, H, n);
    cr_assert_eq(f.calls, n); cr_assert_eq(info.n_windows, n); cr_assert_eq(info.axis, want_axis);
    cr_assert_float_eq(s, want_scale, 1e-12); cr_assert_float_eq(info.scale, want_scale, 1e-12);
    /* windows keep the network aspect, cover the frame, overlap by >= ~25% */
    int along_x = want_axis == 1, total = along_x ? W : H, len = along_x ? win[0].w : win[0].h;
    cr_assert_float_eq((double)win[0].w / win[0].h, 2.4, 0.1);
    cr_assert_eq(along_x ? win[0].x0 : win[0].y0, 0);
    cr_assert_eq((along_x ? win[n - 1].x0 : win[n - 1].y0) + len, total);
    for (int i = 1; i < n; i++) {
        int ov = (along_x ? win[i - 1].x0 - win[i].x0 : win[i - 1].y0 - win[i].y0) + len;
        cr_assert(ov >= 0.25 * len - 1, "overlap %d of a %d px window", ov, len);
    }
    /* the network saw each crop resized to its resolution */
    nn_real *crop = malloc(sizeof(nn_real) * 3 * win[0].h * win[0].w), *want = malloc(sizeof(nn_real) * 3 * 240);
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < win[i].h; y++)
                for (int x = 0; x < win[i].w; x++)
                    crop[((size_t)c * win[i].h + y) * win[i].w + x] =
                        L[((size_t)c * H + win[i].y0 + y) * W + win[i].x0 + x];
        cr_assert_eq(render_resize(want, crop, 3, win[i].h, win[i].w, 10, 24), 0);
        tu_assert_close(f.windows[i], want, 3 * 240, 0, 0, "window input");
    }
    /* blending identical probabilities is a no-op: bit-identical to one pass */
    nn_real *p = one_hot(cfg.D, H, W, f.k0);
    cr_assert_eq(render_right_view(R0, E0, L, p, cfg.D, cfg.dmin, s, H, W), 0, "%s", nn_last_error());
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, "tiled right view");
    tu_assert_close(E, E0, (size_t)H * W, 0, 0, "tiled disparity");
    free(crop), free(want), free(p), free(L), free(R), free(E), free(R0), free(E0);
    fake_free(&f);
}

Test(render, wide_frame_tiles_along_x_and_blends_identical_windows_exactly) {
    check_tiled_one_hot(20, 160, 1, 48.0 / 24); /* 8:1; windows 48 x 20, s = 2 */
}

Test(render, tall_frame_tiles_along_y_and_blends_identical_windows_exactly) {
    check_tiled_one_hot(60, 24, 2, 1.0); /* windows 24 x 10, s = 1 */
}

Test(render, near_network_aspect_takes_one_window) {
    render_config cfg = small_config();
    const int H = 20, W = 50; /* 2.5:1, within 15% of 2.4:1 */
    fake_net f = {.D = cfg.D, .h = cfg.net_h, .w = cfg.net_w, .fail_at = -1, .mode = 2};
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 9);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    nn_real *want = malloc(sizeof(nn_real) * 3 * 240);
    render_info info;
    cr_assert_eq(render_image(R, E, &info, &cfg, fake_run, &f, L, H, W), 0, "%s", nn_last_error());
    cr_assert_eq(f.calls, 1); cr_assert_eq(info.n_windows, 1); cr_assert_eq(info.axis, 0);
    cr_assert_float_eq(info.scale, 50.0 / 24, 1e-12);
    cr_assert_eq(render_resize(want, L, 3, H, W, 10, 24), 0);
    tu_assert_close(f.windows[0], want, 3 * 240, 0, 0, "whole frame resized");
    nn_real *p = random_prob(cfg.D, 10, 24, 100); /* what the fake network returned */
    cr_assert_eq(render_from_prob(R0, E0, L, H, W, p, cfg.D, cfg.dmin, 10, 24), 0, "%s", nn_last_error());
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, "right view");
    tu_assert_close(E, E0, (size_t)H * W, 0, 0, "disparity");
    free(p), free(want), free(L), free(R), free(E), free(R0), free(E0);
    fake_free(&f);
}

/* Window i answers a one-hot at k = i, so E[d] = s * sum_i w_i d_i / sum_i w_i with
 * the documented weights w_i = min(1, (t + 0.5) / a_i, (n - t - 0.5) / b_i), t the
 * position inside window i along the sliding axis, restated here. Where one window
 * covers a pixel, E = s * d_i exactly. */
static void check_feathering(int H, int W, int along_x) {
    render_config cfg = small_config();
    fake_net f = {.D = cfg.D, .h = cfg.net_h, .w = cfg.net_w, .fail_at = -1, .mode = 1};
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 10);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    cr_assert_eq(render_image(R, E, NULL, &cfg, fake_run, &f, L, H, W), 0, "%s", nn_last_error());
    render_window win[MAX_CALLS];
    double s;
    int n = render_plan_windows(win, MAX_CALLS, &s, &cfg, H, W), single = 0, mixed = 0;
    cr_assert(n >= 3 && n < cfg.D, "n %d", n);
    int total = along_x ? W : H, len = along_x ? win[0].w : win[0].h;
    for (int x = 0; x < total; x++) {
        double num = 0, den = 0;
        int covering = 0;
        for (int i = 0; i < n; i++) {
            int t = x - (along_x ? win[i].x0 : win[i].y0);
            int a = along_x ? win[i].ramp_left : win[i].ramp_top, b = along_x ? win[i].ramp_right : win[i].ramp_bottom;
            if (t < 0 || t >= len) continue;
            double wt = 1;
            if (a) wt = fmin(wt, (t + 0.5) / a);
            if (b) wt = fmin(wt, (len - t - 0.5) / b);
            num += wt * (cfg.dmin + i), den += wt, covering++;
        }
        single += covering == 1, mixed += covering > 1;
        for (int y = 0; y < (along_x ? H : W); y += 7) {
            size_t at = along_x ? (size_t)y * W + x : (size_t)x * W + y;
            cr_assert_float_eq(E[at], s * num / den, 1e-4, "E at %zu", at);
        }
    }
    cr_assert(single > 0 && mixed > 0, "single %d, mixed %d", single, mixed);
    free(L), free(R), free(E);
    fake_free(&f);
}

Test(render, feathered_blend_ramps_linearly_across_overlaps_along_x) { check_feathering(20, 130, 1); }

Test(render, feathered_blend_ramps_linearly_across_overlaps_along_y) { check_feathering(45, 24, 0); }

/* ------------------------------------------------------------ compositions */

Test(render, side_by_side_over_under_and_anaglyph_layouts) {
    const int H = 3, W = 4;
    nn_real *l = uniform(3 * H * W, 0, 255, 11), *r = uniform(3 * H * W, 0, 255, 12);
    nn_real *sbs = render_side_by_side(l, r, H, W), *ou = render_over_under(l, r, H, W),
            *ana = render_anaglyph(l, r, H, W);
    cr_assert(sbs && ou && ana, "%s", nn_last_error());
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                nn_real lv = l[(c * H + y) * W + x], rv = r[(c * H + y) * W + x];
                cr_assert_eq(sbs[(c * H + y) * 2 * W + x], lv, "sbs: left view on the left");
                cr_assert_eq(sbs[(c * H + y) * 2 * W + W + x], rv, "sbs: right view on the right");
                cr_assert_eq(ou[(c * 2 * H + y) * W + x], lv, "over-under: left view on top");
                cr_assert_eq(ou[(c * 2 * H + H + y) * W + x], rv, "over-under: right view below");
                cr_assert_eq(ana[(c * H + y) * W + x], c == 0 ? lv : rv, "anaglyph channel %d", c);
            }
    free(l), free(r), free(sbs), free(ou), free(ana);
}

Test(render, depth_map_is_brighter_for_nearer_disparity) {
    /* D = 9, dmin = -4: d in -4..4, s = 2: output disparities -8..8. v = 255 (8 - E) / 16. */
    const int W = 9;
    nn_real E[9], *m;
    for (int x = 0; x < W; x++) E[x] = (nn_real)(2 * (-4 + x));
    m = render_depth_map(E, 1, W, 9, -4, 2.0);
    cr_assert_not_null(m, "%s", nn_last_error());
    cr_assert_float_eq(m[0], 255, 1e-4, "nearest (most negative) is white");
    cr_assert_float_eq(m[W - 1], 0, 1e-4, "farthest is black");
    cr_assert_float_eq(m[4], 127.5, 1e-4, "d = 0 is mid-grey");
    for (int x = 1; x < W; x++) cr_assert_gt(m[x - 1], m[x], "brighter for more negative disparity");
    for (int x = 0; x < W; x++) cr_assert(m[x] == m[W + x] && m[x] == m[2 * W + x], "3 equal channels");
    free(m);
    nn_real out_of_range[2] = {-100, 100};
    m = render_depth_map(out_of_range, 1, 2, 9, -4, 2.0);
    cr_assert(m && m[0] == 255 && m[1] == 0, "clamped to 0..255");
    free(m);
}

/* ------------------------------------------------------------ errors */

Test(render, rejects_bad_sizes_and_levels) {
    nn_real a[64] = {0}, b[64] = {0}, c[64] = {0};
    cr_assert_eq(render_from_prob(a, NULL, b, 2, 2, c, 0, 0, 2, 2), -1);
    cr_assert(strstr(nn_last_error(), "render_from_prob: bad sizes D 0"), "%s", nn_last_error());
    cr_assert_eq(render_right_view(a, NULL, b, c, 0, 0, 1.0, 2, 2), -1);
    cr_assert(strstr(nn_last_error(), "render_right_view: bad sizes"), "%s", nn_last_error());
    cr_assert_eq(render_right_view(a, NULL, b, c, 1, 0, 0.0, 2, 2), -1);
    cr_assert(strstr(nn_last_error(), "shift scale"), "%s", nn_last_error());
    cr_assert_eq(render_upsample_prob(a, b, 1, 0, 2, 2, 2), -1);
    cr_assert(strstr(nn_last_error(), "render_upsample_prob: bad sizes"), "%s", nn_last_error());
    cr_assert_eq(render_resize(a, b, 1, 2, 2, 2, 0), -1);
    cr_assert_null(render_side_by_side(a, b, 0, 2));
    cr_assert_null(render_depth_map(a, 2, 2, 0, 0, 1.0));
    render_config cfg = small_config();
    fake_net f = {.D = cfg.D, .h = cfg.net_h, .w = cfg.net_w, .fail_at = -1};
    cr_assert_eq(render_image(a, NULL, NULL, &cfg, fake_run, &f, b, 0, 4), -1);
    cr_assert(strstr(nn_last_error(), "render_image: bad frame size 4 x 0"), "%s", nn_last_error());
    cfg.D = 0;
    cr_assert_eq(render_image(a, NULL, NULL, &cfg, fake_run, &f, b, 2, 4), -1);
    cr_assert(strstr(nn_last_error(), "D 0"), "%s", nn_last_error());
    cfg = small_config(), cfg.min_overlap = 1;
    cr_assert_eq(render_plan_windows(NULL, 0, NULL, &cfg, 2, 40), -1);
    cr_assert_eq(render_image(a, NULL, NULL, &cfg, NULL, &f, b, 2, 4), -1);
    cr_assert_eq(f.calls, 0);
    /* probabilities that sum to 0 cannot be renormalised */
    cr_assert_eq(render_upsample_prob(a, c, 2, 2, 2, 3, 3), -1);
    cr_assert(strstr(nn_last_error(), "do not sum to a positive"), "%s", nn_last_error());
    cfg = small_config();
    f.mode = 3;
    nn_real *L = uniform(3 * 10 * 24, 0, 255, 13), *R = malloc(sizeof(nn_real) * 3 * 10 * 24);
    cr_assert_eq(render_image(R, NULL, NULL, &cfg, fake_run, &f, L, 10, 24), -1);
    cr_assert(strstr(nn_last_error(), "render_image: probabilities of window 0"), "%s", nn_last_error());
    free(L), free(R);
    fake_free(&f);
}

Test(render, callback_failure_propagates_its_message) {
    render_config cfg = small_config();
    const int H = 20, W = 160;
    fake_net f = {.D = cfg.D, .h = cfg.net_h, .w = cfg.net_w, .fail_at = 1, .mode = 0, .k0 = 0};
    nn_real *L = uniform((size_t)3 * H * W, 0, 255, 14), *R = malloc(sizeof(nn_real) * 3 * H * W);
    nn_clear_error();
    cr_assert_eq(render_image(R, NULL, NULL, &cfg, fake_run, &f, L, H, W), -1);
    cr_assert_eq(f.calls, 2, "stops at the failing window");
    const char *msg = nn_last_error();
    cr_assert(strstr(msg, "render: network failed on window 1 of 5"), "%s", msg);
    cr_assert(strstr(msg, ": fake network: out of device memory"), "%s", msg);
    free(L), free(R);
    fake_free(&f);
}
