/* infer/warp.h and the warp path of infer/render.c: the row inversion and the sampling
 * against naive loops, the guided filter against direct box sums, the comfort controls,
 * the blend mode against the selection layer, and a synthetic two-layer scene whose
 * true right view is known. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../deep3d/metrics.h"
#include "../infer/render.h"
#include "../layers/selection.h"
#include "testutil.h"

#define OK(call) cr_assert_eq((call), 0, "%s", nn_last_error())

static nn_real *alloc_real(size_t n) {
    nn_real *a = calloc(n ? n : 1, sizeof *a);
    cr_assert_not_null(a);
    return a;
}

/* ---------------------------------------------------------------- naive references */

/* The row inversion of warp.h written as a brute force over (destination, segment), in
 * double: for pixel j, every segment i with 0 < t_i+1 - t_i <= 1 + gap and
 * t_i <= j <= t_i+1 is a candidate; the largest dir * shift wins (ties: lowest i).
 * Uncovered runs take the farther neighbour's shift and the mirrored source position. */
static void naive_invert(double *src, double *out_shift, const double *shift, int n, double dir, double gap) {
    char *covered = calloc((size_t)n, 1);
    for (int j = 0; j < n; j++) {
        double best = -INFINITY;
        for (int i = 0; i + 1 < n; i++) {
            double t0 = i + shift[i], t1 = i + 1 + shift[i + 1], len = t1 - t0;
            if (!(len > 0) || len > 1 + gap || j < t0 || j > t1) continue;
            double a = (j - t0) / len, sh = shift[i] + a * (shift[i + 1] - shift[i]);
            if (dir * sh > best) best = dir * sh, out_shift[j] = sh, src[j] = i + a, covered[j] = 1;
        }
    }
    for (int j = 0; j < n; j++) {
        if (covered[j]) continue;
        int j0 = j;
        while (j < n && !covered[j]) j++;
        int l = j0 - 1, r = j, nb = -1;
        if (l >= 0 && r < n) nb = dir * out_shift[l] <= dir * out_shift[r] ? l : r;
        else if (l >= 0) nb = l;
        else if (r < n) nb = r;
        for (int q = j0; q < j; q++) {
            if (nb < 0) {
                out_shift[q] = 0, src[q] = q;
                continue;
            }
            out_shift[q] = out_shift[nb];
            /* between two neighbours: mirrored; at a border: continued, then clamped */
            int mirror = l >= 0 && r < n;
            double u = mirror ? (nb > q ? src[nb] + (nb - q) : src[nb] - (q - nb)) : src[nb] + (q - nb);
            src[q] = u < 0 ? 0 : u > n - 1 ? n - 1 : u;
        }
        j--;
    }
    free(covered);
}

/* Keys cubic convolution (a = -0.5) at u, written from its kernel
 * k(t) = 1.5|t|^3 - 2.5|t|^2 + 1 (|t| <= 1), -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 (1 < |t| < 2),
 * edges clamped, result clamped to 0..255. */
static double naive_cubic(const nn_real *row, int n, double u) {
    double acc = 0;
    int i0 = (int)floor(u);
    for (int i = i0 - 1; i <= i0 + 2; i++) {
        double t = fabs(u - i), k = t <= 1 ? 1.5 * t * t * t - 2.5 * t * t + 1
                                    : t < 2 ? -0.5 * t * t * t + 2.5 * t * t - 4 * t + 2
                                            : 0;
        acc += k * row[i < 0 ? 0 : i > n - 1 ? n - 1 : i];
    }
    return acc < 0 ? 0 : acc > 255 ? 255 : acc;
}

/* A smooth random texture (3, H, W) around `mean` (+-amp). */
static nn_real *texture(int H, int W, double mean, double amp, uint64_t seed) {
    nn_real *t = alloc_real((size_t)3 * H * W);
    double ph[6];
    for (int i = 0; i < 6; i++) ph[i] = 6.283 * nn_hash_uniform(seed, (uint64_t)i);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                t[((size_t)c * H + y) * W + x] =
                    (nn_real)(mean + amp * (0.5 * sin(0.9 * x + 0.4 * y + ph[c]) + 0.3 * sin(0.23 * x - 0.7 * y + ph[c + 3]) +
                                            0.2 * (2 * nn_hash_uniform(seed + 9, ((size_t)c * H + y) * W + x) - 1)));
    return t;
}

/* ---------------------------------------------------------------- row inversion */

Test(warp, invert_row_matches_the_brute_force_on_random_maps) {
    const int n = 97;
    nn_real shift[97], src[97], out[97], key[97];
    double dshift[97], nsrc[97], nout[97];
    for (int trial = 0; trial < 40; trial++) {
        /* piecewise-smooth maps: a few layers at different depths with ramps between */
        double base = -12 * nn_hash_uniform(11, (uint64_t)trial);
        for (int i = 0; i < n; i++) {
            int layer = (int)(4 * nn_hash_uniform(100 + (uint64_t)trial, (uint64_t)(i / 13)));
            shift[i] = (nn_real)(base - 3.5 * layer + 0.4 * sin(0.3 * i + trial));
            dshift[i] = shift[i];
        }
        for (int dir = -1; dir <= 1; dir += 2) {
            const double gap = trial % 3 == 0 ? 0.5 : 1;
            warp_invert_row(src, out, key, shift, n, (nn_real)dir, (nn_real)gap);
            naive_invert(nsrc, nout, dshift, n, dir, gap);
            for (int j = 0; j < n; j++) {
                cr_assert(fabs(src[j] - nsrc[j]) <= 1e-4 * (1 + fabs(nsrc[j])), "trial %d dir %d pixel %d: src %.6f, naive %.6f",
                          trial, dir, j, (double)src[j], nsrc[j]);
                cr_assert(fabs(out[j] - nout[j]) <= 1e-4 * (1 + fabs(nout[j])), "trial %d dir %d pixel %d: shift %.6f, naive %.6f",
                          trial, dir, j, (double)out[j], nout[j]);
            }
        }
    }
}

Test(warp, zero_shift_is_the_identity_and_a_whole_shift_moves_every_pixel) {
    const int n = 40;
    nn_real shift[40], src[40], out[40], key[40];
    for (int i = 0; i < n; i++) shift[i] = 0;
    warp_invert_row(src, out, key, shift, n, -1, 1);
    for (int j = 0; j < n; j++) cr_assert_eq(src[j], (nn_real)j, "pixel %d reads %g", j, (double)src[j]);
    /* every source pixel moves 3 left (d = -3): destination j shows source j + 3; the last
     * 3 destination pixels see beyond the source's border: its edge column repeats */
    for (int i = 0; i < n; i++) shift[i] = -3;
    warp_invert_row(src, out, key, shift, n, -1, 1);
    for (int j = 0; j < n - 3; j++) cr_assert_eq(src[j], (nn_real)(j + 3), "pixel %d reads %g", j, (double)src[j]);
    for (int j = n - 3; j < n; j++) cr_assert_eq(src[j], (nn_real)(n - 1), "border pixel %d reads %g", j, (double)src[j]);
}

Test(warp, an_occluding_step_keeps_the_near_side_and_fills_the_hole_from_the_far_side) {
    /* source: background shift -2 on 0..19, foreground -8 on 20..29, background 30..49.
     * dir -1: more negative = nearer. */
    const int n = 50;
    nn_real shift[50], src[50], out[50], key[50];
    for (int i = 0; i < n; i++) shift[i] = i >= 20 && i < 30 ? -8 : -2;
    warp_invert_row(src, out, key, shift, n, -1, 1);
    /* the foreground lands on 12..21 and hides the background that lands on 18..21 */
    for (int j = 12; j <= 21; j++) cr_assert_eq(out[j], -8, "pixel %d: shift %g", j, (double)out[j]);
    for (int j = 12; j <= 21; j++) cr_assert_eq(src[j], (nn_real)(j + 8), "pixel %d reads %g", j, (double)src[j]);
    /* the disocclusion 22..27 (between the foreground's last pixel at 21 and the
     * background resuming at 28) takes the background's shift and mirrored source */
    for (int j = 22; j <= 27; j++) {
        cr_assert_eq(out[j], -2, "hole pixel %d: shift %g", j, (double)out[j]);
        cr_assert_eq(src[j], (nn_real)(30 + (28 - j)), "hole pixel %d reads %g", j, (double)src[j]);
    }
    for (int j = 28; j < 48; j++) cr_assert_eq(src[j], (nn_real)(j + 2), "pixel %d reads %g", j, (double)src[j]);
}

/* ---------------------------------------------------------------- sampling */

Test(warp, cubic_sampling_matches_keys_kernel_and_is_exact_at_integers) {
    const int n = 30;
    nn_real *row = texture(1, n, 128, 100, 5);
    for (int i = 0; i < 400; i++) {
        double u = -2 + (n + 3) * nn_hash_uniform(77, (uint64_t)i);
        double got = warp_sample(row, n, (nn_real)u, WARP_INTERP_CUBIC), want = naive_cubic(row, n, (nn_real)u);
        cr_assert(fabs(got - want) <= 1e-3, "u %.4f: %.5f, naive %.5f", u, got, want);
    }
    for (int j = 0; j < n; j++)
        for (int kind = 0; kind < 3; kind++)
            cr_assert_eq(warp_sample(row, n, (nn_real)j, kind), row[j], "kind %d at %d", kind, j);
    /* Lanczos-3 reproduces a linear ramp away from the ends (its weights are normalised) */
    nn_real ramp[30];
    for (int j = 0; j < n; j++) ramp[j] = (nn_real)(4 * j);
    for (double u = 4.1; u < 24; u += 0.77)
        cr_assert(fabs(warp_sample(ramp, n, (nn_real)u, WARP_INTERP_LANCZOS3) - 4 * u) <= 0.1, "lanczos ramp at %.2f: %.4f",
                  u, (double)warp_sample(ramp, n, (nn_real)u, WARP_INTERP_LANCZOS3));
    free(row);
}

/* ---------------------------------------------------------------- render_warp */

Test(warp, render_warp_matches_naive_inversion_and_cubic_sampling) {
    const int H = 9, W = 71;
    nn_real *left = texture(H, W, 120, 90, 3), *disp = alloc_real((size_t)H * W), *right = alloc_real((size_t)3 * H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            disp[(size_t)y * W + x] = (nn_real)(-6 + 4 * sin(0.11 * x + y) - (x > 30 && x < 45 ? 7 : 0));
    render_config cfg;
    render_config_default(&cfg);
    cfg.D = 33, cfg.dmin = -20, cfg.strength = 0.8, cfg.convergence = 0.5;
    OK(render_warp(right, left, disp, H, W, 1.0, &cfg));
    const double q = render_convergence_offset(disp, (size_t)H * W, 1.0, &cfg);
    double shift[71], src[71], out[71];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) shift[x] = (double)((nn_real)cfg.strength * disp[(size_t)y * W + x] - (nn_real)q);
        naive_invert(src, out, shift, W, -1, cfg.gap);
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < W; x++) {
                double want = naive_cubic(left + ((size_t)c * H + y) * W, W, src[x]);
                double got = right[((size_t)c * H + y) * W + x];
                cr_assert(fabs(got - want) <= 2e-3, "(c %d, y %d, x %d): %.5f, naive %.5f", c, y, x, got, want);
            }
    }
    free(left), free(disp), free(right);
}

Test(warp, convergence_puts_the_chosen_quantile_at_zero_shift) {
    /* 30% of the pixels at -10 (near), 70% at -2 (far), scale 1, range -20..12 */
    const int H = 10, W = 50;
    nn_real *disp = alloc_real((size_t)H * W);
    for (int i = 0; i < H * W; i++) disp[i] = i % 10 < 3 ? -10 : -2;
    render_config cfg;
    render_config_default(&cfg);
    cfg.D = 33, cfg.dmin = -20;
    const double half_bin = 32.0 / WARP_HIST_BINS / 2 + 1e-6;
    cfg.convergence = 0.1;
    cr_assert(fabs(render_convergence_offset(disp, (size_t)H * W, 1, &cfg) + 10) <= half_bin, "q(0.1) should be -10");
    cfg.convergence = 0.5;
    cr_assert(fabs(render_convergence_offset(disp, (size_t)H * W, 1, &cfg) + 2) <= half_bin, "q(0.5) should be -2");
    cfg.strength = 0.5;
    cr_assert(fabs(render_convergence_offset(disp, (size_t)H * W, 1, &cfg) + 1) <= half_bin, "strength scales q");
    cfg.convergence = -1;
    cr_assert_eq(render_convergence_offset(disp, (size_t)H * W, 1, &cfg), 0);
    free(disp);
}

/* ---------------------------------------------------------------- guided filter */

/* He et al. 2013, Algorithm 1, by direct sums in double over the clipped (2r+1)^2
 * window of an (h, w) plane: ma, mb = the box means of the coefficients a, b of the
 * guide I and the input p. */
static void direct_guided_means(double *ma, double *mb, const double *I, const double *p, int h, int w, int r,
                                double eps) {
    double *a = malloc(sizeof(double) * h * w), *b = malloc(sizeof(double) * h * w);
    cr_assert(a && b);
    for (int pass = 0; pass < 2; pass++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double n = 0, s1 = 0, s2 = 0, s11 = 0, s12 = 0;
                for (int v = y - r; v <= y + r; v++)
                    for (int u = x - r; u <= x + r; u++) {
                        if (v < 0 || v >= h || u < 0 || u >= w) continue;
                        const double c1 = pass ? a[v * w + u] : I[v * w + u], c2 = pass ? b[v * w + u] : p[v * w + u];
                        n++, s1 += c1, s2 += c2, s11 += c1 * c1, s12 += c1 * c2;
                    }
                const int i = y * w + x;
                if (pass) { /* the means of a and b */
                    ma[i] = s1 / n, mb[i] = s2 / n;
                    continue;
                }
                const double mi = s1 / n, mp = s2 / n, var = s11 / n - mi * mi;
                a[i] = (s12 / n - mi * mp) / ((var > 0 ? var : 0) + eps);
                b[i] = mp - a[i] * mi;
            }
    free(a), free(b);
}

Test(warp, guided_filter_matches_direct_box_sums) {
    const int H = 23, W = 31, r = 3;
    const double eps = 0.01;
    nn_real *left = texture(H, W, 100, 80, 8), *p = alloc_real((size_t)H * W);
    double *I = malloc(sizeof(double) * H * W), *ma = malloc(sizeof(double) * H * W), *mb = malloc(sizeof(double) * H * W);
    double *pin = malloc(sizeof(double) * H * W);
    for (int i = 0; i < H * W; i++) {
        p[i] = (nn_real)(-10 + 8 * nn_hash_uniform(4, (uint64_t)i));
        pin[i] = p[i];
        I[i] = (0.299 * left[i] + 0.587 * left[H * W + i] + 0.114 * left[2 * H * W + i]) / 255;
    }
    OK(render_guided_filter(p, left, H, W, r, 1, eps));
    direct_guided_means(ma, mb, I, pin, H, W, r, eps);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double want = ma[y * W + x] * I[y * W + x] + mb[y * W + x];
            cr_assert(fabs(p[y * W + x] - want) <= 1e-3, "(%d, %d): %.6f, direct %.6f", y, x, (double)p[y * W + x], want);
        }
    free(left), free(p), free(I), free(ma), free(mb), free(pin);
}

/* The fast guided filter (k > 1) against its definition computed directly in double
 * (He and Sun 2015, Algorithm 2): block means of the guide and the input on the grid k
 * times coarser (blocks clipped at the frame's bottom and right edges), the plain filter
 * there with radius round(r / k) by direct sums, the means of a and b upsampled
 * bilinearly (coarse pixel centres at (i + 0.5) k - 0.5, clamped) and applied to the
 * full-resolution guide. Frame sizes not multiples of k. Tolerance: float running sums
 * against double on values of magnitude 10. */
Test(warp, fast_guided_filter_matches_its_definition) {
    const int H = 29, W = 40, r = 7, k = 3, h = 10, w = 14, rs = 2;
    const double eps = 0.01;
    nn_real *left = texture(H, W, 100, 80, 8), *p = alloc_real((size_t)H * W);
    double *I = malloc(sizeof(double) * H * W), *Is = calloc((size_t)h * w, sizeof(double)),
           *ps = calloc((size_t)h * w, sizeof(double)), *cnt = calloc((size_t)h * w, sizeof(double)),
           *ma = malloc(sizeof(double) * h * w), *mb = malloc(sizeof(double) * h * w);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int i = y * W + x, c = (y / k) * w + x / k;
            p[i] = (nn_real)(-10 + 8 * nn_hash_uniform(5, (uint64_t)i) + (x > W / 2 ? -6 : 0));
            I[i] = (0.299 * left[i] + 0.587 * left[H * W + i] + 0.114 * left[2 * H * W + i]) / 255;
            Is[c] += I[i], ps[c] += p[i], cnt[c]++;
        }
    for (int c = 0; c < h * w; c++) Is[c] /= cnt[c], ps[c] /= cnt[c];
    OK(render_guided_filter(p, left, H, W, r, k, eps));
    direct_guided_means(ma, mb, Is, ps, h, w, rs, eps);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double fy = fmin(fmax((y + 0.5) / k - 0.5, 0), h - 1), fx = fmin(fmax((x + 0.5) / k - 0.5, 0), w - 1);
            const int y0 = (int)fy, x0 = (int)fx, y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
            const double ty = fy - y0, tx = fx - x0;
            double up[2];
            for (int t = 0; t < 2; t++) {
                const double *m = t ? mb : ma;
                up[t] = (1 - ty) * ((1 - tx) * m[y0 * w + x0] + tx * m[y0 * w + x1]) +
                        ty * ((1 - tx) * m[y1 * w + x0] + tx * m[y1 * w + x1]);
            }
            const double want = up[0] * I[y * W + x] + up[1];
            cr_assert(fabs(p[y * W + x] - want) <= 1e-3, "(%d, %d): %.6f, direct %.6f", y, x, (double)p[y * W + x], want);
        }
    free(left), free(p), free(I), free(Is), free(ps), free(cnt), free(ma), free(mb);
}

/* The coarse grid: floor(s), at least 1, at most the radius. */
Test(warp, fast_guided_filter_grid_follows_the_scale) {
    cr_assert_eq(warp_guided_subsample(0.4, 3), 1);
    cr_assert_eq(warp_guided_subsample(1.9, 60), 1);
    cr_assert_eq(warp_guided_subsample(2.34, 75), 2);
    cr_assert_eq(warp_guided_subsample(6.75, 216), 6);
    cr_assert_eq(warp_guided_subsample(6.75, 4), 4);
    cr_assert_eq(warp_guided_subsample(6.75, 1), 1);
}

/* ---------------------------------------------------------------- through render_image */

/* A fake network: one-hot probabilities at the level of a per-network-pixel map. */
typedef struct {
    int D, h, w;
    const int *level; /* (h, w) */
    int mode;         /* 0: the map; 1: random probabilities */
} fake_map_net;

static int fake_map_run(void *ctx, const nn_real *window, nn_real *prob) {
    (void)window;
    fake_map_net *f = ctx;
    const size_t plane = (size_t)f->h * f->w;
    memset(prob, 0, (size_t)f->D * plane * sizeof *prob);
    for (size_t j = 0; j < plane; j++) {
        if (f->mode == 0) {
            prob[(size_t)f->level[j] * plane + j] = 1;
            continue;
        }
        double s = 0;
        for (int k = 0; k < f->D; k++) s += prob[k * plane + j] = (nn_real)(0.05 + nn_hash_uniform(31, k * plane + j));
        for (int k = 0; k < f->D; k++) prob[k * plane + j] = (nn_real)(prob[k * plane + j] / s);
    }
    return 0;
}

Test(warp, strength_zero_returns_the_left_view_exactly_in_both_modes) {
    const int H = 30, W = 70;
    nn_real *left = texture(H, W, 128, 100, 12), *right = alloc_real((size_t)3 * H * W);
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_h = 10, cfg.net_w = 24, cfg.D = 9, cfg.dmin = -6, cfg.strength = 0;
    fake_map_net f = {cfg.D, cfg.net_h, cfg.net_w, NULL, 1};
    for (int mode = 0; mode < 2; mode++)
        for (int conv = 0; conv < 2; conv++) {
            cfg.mode = mode ? RENDER_BLEND : RENDER_WARP, cfg.convergence = conv ? 0.3 : -1;
            OK(render_image(right, NULL, NULL, &cfg, fake_map_run, &f, left, H, W));
            cr_assert_eq(memcmp(right, left, (size_t)3 * H * W * sizeof *left), 0, "mode %d convergence %d: not the left view",
                         mode, conv);
        }
    free(left), free(right);
}

Test(warp, blend_mode_equals_the_selection_layer_at_scale_1) {
    const int H = 10, W = 24, D = 7, dmin = -3;
    nn_real *left = texture(H, W, 128, 100, 13), *right = alloc_real((size_t)3 * H * W);
    nn_real *want = alloc_real((size_t)3 * H * W), *prob = alloc_real((size_t)D * H * W);
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_h = H, cfg.net_w = W, cfg.D = D, cfg.dmin = dmin, cfg.mode = RENDER_BLEND;
    fake_map_net f = {D, H, W, NULL, 1};
    render_info info;
    OK(render_image(right, NULL, &info, &cfg, fake_map_run, &f, left, H, W));
    cr_assert_eq(info.scale, 1.0);
    fake_map_run(&f, left, prob);
    OK(selection_forward_cpu(want, prob, left, 1, 3, H, W, D, dmin));
    tu_assert_close(right, want, (size_t)3 * H * W, 1e-3, 1e-5, "blend render vs selection layer");
    free(left), free(right), free(want), free(prob);
}

/* The two-layer scene: a background at disparity -2 network pixels and a textured
 * square at -8, seen at scale s = 2 (source 192 x 80, network 96 x 40). */
enum { SH = 80, SW = 192, SQ_X0 = 80, SQ_X1 = 120, SQ_Y0 = 20, SQ_Y1 = 60, D_BG = -4, D_FG = -16 };

static int in_square(int u, int y) { return u >= SQ_X0 && u < SQ_X1 && y >= SQ_Y0 && y < SQ_Y1; }

/* left, the true right view (R(x) = L(x - d) with occlusions: the square wins, and
 * behind it the right view sees background the left view hides), d_L. */
static void two_layer_scene(nn_real *left, nn_real *right, nn_real *dl, const nn_real *bg_wide, const nn_real *fg) {
    const int WW = SW + 64; /* the background texture extends 32 px beyond each side */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < SH; y++)
            for (int x = 0; x < SW; x++) {
                const size_t at = ((size_t)c * SH + y) * SW + x;
                const nn_real bgl = bg_wide[((size_t)c * SH + y) * WW + x + 32];
                left[at] = in_square(x, y) ? fg[at] : bgl;
                const int uf = x - D_FG, ub = x - D_BG;
                right[at] = in_square(uf, y) ? fg[((size_t)c * SH + y) * SW + uf] : bg_wide[((size_t)c * SH + y) * WW + ub + 32];
                if (c == 0) dl[(size_t)y * SW + x] = in_square(x, y) ? D_FG : D_BG;
            }
}

static double region_mae(const nn_real *a, const nn_real *b, int x0, int x1, int y0, int y1) {
    double s = 0, n = 0;
    for (int c = 0; c < 3; c++)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                size_t i = ((size_t)c * SH + y) * SW + x;
                s += fabs((double)a[i] - b[i]), n++;
            }
    return s / n;
}

static double region_mean(const nn_real *a, int x0, int x1, int y0, int y1) {
    double s = 0, n = 0;
    for (int c = 0; c < 3; c++)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) s += a[((size_t)c * SH + y) * SW + x], n++;
    return s / n;
}

/* The hole band of the true right view: x in [SQ_X1 + D_FG, SQ_X1 + D_BG), rows of the
 * square: background the left view hides. */
static void check_two_layer(const nn_real *got, const nn_real *want, double max_mae_left, double max_mae_right,
                            const char *what) {
    const int hx0 = SQ_X1 + D_FG, hx1 = SQ_X1 + D_BG;
    /* left of the hole band (the square and the background left of it) and right of it
     * up to the right border (which the left view never saw) */
    double mae_left = region_mae(got, want, 0, hx0, 0, SH), mae_right = region_mae(got, want, hx1 + 2, SW + D_BG, 0, SH);
    cr_assert(mae_left <= max_mae_left && mae_right <= max_mae_right,
              "%s: MAE outside the disocclusion %.3f (left of it, bound %.3f) / %.3f (right, bound %.3f)", what, mae_left,
              max_mae_left, mae_right, max_mae_right);
    /* the disocclusion is background (mean 60 +- 30), not stretched square (mean 200):
     * its mean within 25 of the background's (measured: 60.0 from the true map, 66.8
     * through the network path, whose soft corners put some square at its left end), and
     * every pixel but the 2 at each end of a row and the 2 rows at the square's top and
     * bottom (soft corners) darker than the square's darkest (130) */
    double hole = region_mean(got, hx0, hx1, SQ_Y0, SQ_Y1);
    cr_log_info("%s: disocclusion mean %.1f", what, hole);
    cr_assert(fabs(hole - 60) <= 25, "%s: the disocclusion's mean is %.1f: not filled from the background (60)", what, hole);
    for (int c = 0; c < 3; c++)
        for (int y = SQ_Y0 + 2; y < SQ_Y1 - 2; y++)
            for (int x = hx0 + 2; x < hx1 - 2; x++)
                cr_assert_lt(got[((size_t)c * SH + y) * SW + x], 130, "%s: hole pixel (%d, %d) is foreground-bright", what, y, x);
    /* the background next to the square stays sharp: its LoG variance over a strip right
     * of the hole is that of the true view within 10% */
    nn_real *a = alloc_real((size_t)3 * 40 * 40), *b = alloc_real((size_t)3 * 40 * 40);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++) {
                a[((size_t)c * 40 + y) * 40 + x] = got[((size_t)c * SH + y + SQ_Y0) * SW + hx1 + 1 + x];
                b[((size_t)c * 40 + y) * 40 + x] = want[((size_t)c * SH + y + SQ_Y0) * SW + hx1 + 1 + x];
            }
    double kept = metric_log_variance(a, 40, 40) / metric_log_variance(b, 40, 40);
    cr_assert(kept > 0.9 && kept < 1.1, "%s: background detail next to the square %.3f of the true view's", what, kept);
    free(a), free(b);
}

Test(warp, two_layer_scene_from_the_true_disparity) {
    nn_real *bg = texture(SH, SW + 64, 60, 30, 21), *fg = texture(SH, SW, 200, 30, 22);
    nn_real *left = alloc_real((size_t)3 * SH * SW), *want = alloc_real((size_t)3 * SH * SW);
    nn_real *dl = alloc_real((size_t)SH * SW), *got = alloc_real((size_t)3 * SH * SW);
    two_layer_scene(left, want, dl, bg, fg);
    render_config cfg;
    render_config_default(&cfg);
    cfg.D = 9, cfg.dmin = -8;
    OK(render_warp(got, left, dl, SH, SW, 2.0, &cfg));
    /* whole-pixel shifts: exact outside the disocclusion */
    check_two_layer(got, want, 1e-4, 1e-4, "true d_L");
    free(bg), free(fg), free(left), free(want), free(dl), free(got);
}

Test(warp, two_layer_scene_through_the_network_path) {
    nn_real *bg = texture(SH, SW + 64, 60, 30, 21), *fg = texture(SH, SW, 200, 30, 22);
    nn_real *left = alloc_real((size_t)3 * SH * SW), *want = alloc_real((size_t)3 * SH * SW);
    nn_real *dl = alloc_real((size_t)SH * SW), *got = alloc_real((size_t)3 * SH * SW), *disp = alloc_real((size_t)SH * SW);
    two_layer_scene(left, want, dl, bg, fg);
    /* the network's answer on its 96 x 40 grid, on the RIGHT view's grid (the selection
     * layer's): the square sits D_FG / 2 = -8 network pixels left of where the left
     * view has it; levels d_k = -8 + k, so k = d + 8 */
    const int h = SH / 2, w = SW / 2;
    int *level = malloc(sizeof(int) * h * w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int u = x - D_FG / 2; /* R(x) = L(x - d) */
            level[y * w + x] = in_square(2 * u, 2 * y) ? D_FG / 2 + 8 : D_BG / 2 + 8;
        }
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_h = h, cfg.net_w = w, cfg.D = 9, cfg.dmin = -8;
    /* a radius small against this 96 x 40 grid (the default, 32, spans it) */
    cfg.refine_radius = 4, cfg.refine_eps = 1e-3;
    fake_map_net f = {cfg.D, h, w, level, 0};
    render_info info;
    OK(render_image(got, disp, &info, &cfg, fake_map_run, &f, left, SH, SW));
    cr_assert_eq(info.scale, 2.0);
    /* the refined d_L is the true one away from the square's edges (within 0.05 px);
     * the guided filter's support is twice its radius (a and b are box means of box
     * means): 2 * 4 * s = 16 source pixels, plus up to k = 2 on each side for its coarse
     * grid (the block means and the bilinear upsampling of the fast guided filter) */
    cr_assert_eq(warp_guided_subsample(info.scale, render_radius(cfg.refine_radius, info.scale)), 2);
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++) {
            int near_edge = abs(x - SQ_X0) < 22 || abs(x - SQ_X1) < 22 || abs(y - SQ_Y0) < 22 || abs(y - SQ_Y1) < 22;
            if (!near_edge)
                cr_assert(fabs(disp[y * SW + x] - dl[y * SW + x]) < 0.05, "d_L at (%d, %d) %.3f, true %.0f", y, x,
                          (double)disp[y * SW + x], (double)dl[y * SW + x]);
        }
    /* The guided filter copies some of the square's texture into its disparity
     * (-14.5..-16 instead of -16), so the square's texture wobbles by up to 1.5 px; edge
     * snapping keeps its edges in place. Measured: MAE 3.63 left of the hole band (the
     * square's region), 0.19 right of it (3.54 and 0.16 with the plain filter, k = 1;
     * 3.72 left without snapping, when the left edge also lands up to 3 px off).
     * Bounds: 5 and 0.5. */
    if (getenv("DEEP3D_TEST_DUMP")) {
        FILE *fp = fopen(getenv("DEEP3D_TEST_DUMP"), "wb");
        fwrite(got, sizeof *got, (size_t)3 * SH * SW, fp), fwrite(want, sizeof *want, (size_t)3 * SH * SW, fp);
        fwrite(disp, sizeof *disp, (size_t)SH * SW, fp), fwrite(left, sizeof *left, (size_t)3 * SH * SW, fp);
        fclose(fp);
    }
    check_two_layer(got, want, 5.0, 0.5, "network path");
    free(level), free(bg), free(fg), free(left), free(want), free(dl), free(got), free(disp);
}

/* render_snap_edges finds each window's minimum and maximum separably: the result is
 * exactly warp_snap_pixel's on every pixel (borders included), on a depth ramp with
 * noise (d takes half-pixel values, so ties at the split occur) under an image edge in
 * the upper rows only. */
Test(warp, edge_snapping_equals_the_per_pixel_definition) {
    const int H = 37, W = 53;
    nn_real *d = alloc_real((size_t)H * W), *img = alloc_real((size_t)3 * H * W), *got = alloc_real((size_t)H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int i = y * W + x;
            const int ramp = x < 16 ? 0 : x > 24 ? 8 : x - 16;
            d[i] = (nn_real)(-ramp - 0.5 * (nn_hash_uniform(7, (uint64_t)i) < 0.2));
            for (int c = 0; c < 3; c++)
                img[c * H * W + i] = (nn_real)(y < 20 && x > 20 ? 200 : 40) + (nn_real)(30 * nn_hash_uniform(8 + c, (uint64_t)i));
        }
    for (int rho = 1; rho <= 7; rho += 3) {
        memcpy(got, d, (size_t)H * W * sizeof *got);
        OK(render_snap_edges(got, img, H, W, rho, 1, 12));
        int changed = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const nn_real want = warp_snap_pixel(d, img, H, W, y, x, rho, 1, 12);
                cr_assert_eq(got[y * W + x], want, "rho %d, (%d, %d): %g, per pixel %g", rho, x, y,
                             (double)got[y * W + x], (double)want);
                changed += want != d[y * W + x];
            }
        cr_assert_gt(changed, 0, "rho %d: nothing snapped, the comparison is blind", rho);
    }
    free(d), free(img), free(got);
}

Test(warp, edge_snapping_makes_steps_only_where_the_image_has_an_edge) {
    /* d ramps from -2 to -10 over columns 10..18; the image steps from 50 to 200 at
     * column 14 in the upper half and is flat (100) in the lower half */
    const int H = 20, W = 30;
    nn_real *d = alloc_real((size_t)H * W), *img = alloc_real((size_t)3 * H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            d[y * W + x] = (nn_real)(x <= 10 ? -2 : x >= 18 ? -10 : -2 - (x - 10));
            for (int c = 0; c < 3; c++) img[(c * H + y) * W + x] = (nn_real)(y < 10 ? (x < 14 ? 50 : 200) : 100);
        }
    OK(render_snap_edges(d, img, H, W, 4, 1, 12));
    for (int x = 0; x < W; x++) {
        /* row 4, the edge's middle: a step at the image edge, each side at its extreme */
        double want = x < 14 ? -2 : -10;
        if (x >= 7 && x <= 21) cr_assert_eq(d[4 * W + x], (nn_real)want, "row 4, x %d: %g", x, (double)d[4 * W + x]);
        /* row 15, no image edge: the ramp stays */
        double ramp = x <= 10 ? -2 : x >= 18 ? -10 : -2 - (x - 10);
        cr_assert_eq(d[15 * W + x], (nn_real)ramp, "row 15, x %d: %g", x, (double)d[15 * W + x]);
    }
    free(d), free(img);
}

/* ---------------------------------------------------------------- one disparity per pixel */

Test(warp, disparity_of_a_distribution_mean_mode_and_median) {
    /* bimodal: levels d_k = -5 + k, k = 0..9; a big mode around k = 2, a small one at 7 */
    const nn_real p[10] = {0.05f, 0.2f, 0.3f, 0.15f, 0.05f, 0.02f, 0.05f, 0.1f, 0.05f, 0.03f};
    double total = 0, mean = 0;
    for (int k = 0; k < 10; k++) total += p[k], mean += p[k] * (-5 + k);
    mean /= total;
    cr_assert(fabs(warp_disparity_of(p, 1, 10, -5, WARP_DISP_MEAN) - mean) < 1e-5, "mean");
    /* the dominant mode: from k = 2, down to k = 0 on the left (non-increasing) and to
     * k = 5 on the right (0.3, 0.15, 0.05, 0.02; 0.05 at k = 6 rises again) */
    double ms = 0, me = 0;
    for (int k = 0; k <= 5; k++) ms += p[k], me += p[k] * (-5 + k);
    cr_assert(fabs(warp_disparity_of(p, 1, 10, -5, WARP_DISP_MODE) - me / ms) < 1e-5, "mode: %g, want %g",
              (double)warp_disparity_of(p, 1, 10, -5, WARP_DISP_MODE), me / ms);
    /* median: the cumulative sum reaches total/2 = 0.5 inside level 2 (0.25 before it, 0.55
     * after), at 0.25/0.3 of the way through [d_2 - 1/2, d_2 + 1/2] = [-3.5, -2.5] */
    const double want = -3.5 + (0.5 * total - 0.25) / 0.3;
    cr_assert(fabs(warp_disparity_of(p, 1, 10, -5, WARP_DISP_MEDIAN) - want) < 1e-5, "median: %g, want %g",
              (double)warp_disparity_of(p, 1, 10, -5, WARP_DISP_MEDIAN), want);
    /* a strided layout (D planes of a (h, w) map) reads the same values */
    nn_real planes[30] = {0};
    for (int k = 0; k < 10; k++) planes[3 * k + 1] = p[k];
    for (int kind = 0; kind < 3; kind++)
        cr_assert_eq(warp_disparity_of(planes + 1, 3, 10, -5, kind), warp_disparity_of(p, 1, 10, -5, kind), "stride, kind %d", kind);
    /* no mass: NaN for the caller to report */
    const nn_real zero[10] = {0};
    for (int kind = 0; kind < 3; kind++) cr_assert(isnan(warp_disparity_of(zero, 1, 10, -5, kind)), "kind %d", kind);
}
