/* The GPU path of the warp renderer and of the comfort controls (infer/render.cu,
 * infer/render_cuda.h) against the CPU reference render_image (infer/render.c).
 *
 * Run on any machine (host code only):
 *   - the plan: the warp settings in source pixels as render_disparity derives them
 *     (render_radius, snap tau, the histogram's range), no overlap limit in warp mode;
 *     the convergence offset from a histogram (warp_convergence_offset);
 *   - the kernels' per-pixel and per-row code (warp.h and render_cuda.h, the functions
 *     the kernels call), run in plain loops in the kernels' order, with the GPU path's
 *     plane layout and in-place steps: the right view and the disparity equal
 *     render_image's BIT FOR BIT (tolerance 0) on single-window, tiled wide, tiled tall,
 *     smaller-than-network and non-integer-window frames, for every interpolation,
 *     both disparity kinds, refinement, snapping and convergence on and off, strength
 *     0.5 and 1.5; the blend mode's two passes with strength and convergence likewise;
 *     the NaN report names render_image's window and network pixel.
 * Run with a GPU (each skips itself, saying why, without one):
 *   - render_image_cuda vs render_image in warp mode on the same frames and settings,
 *     tolerance 0 for the right view and the disparity, the network called once on a
 *     batch, and without the disparity (two jobs overlapped: tests/test_cuda_render.c);
 *   - the blend mode with strength 0.5 / 1.5 / 0 and convergence 0.3 / 0 / none,
 *     tolerance 0;
 *   - strength 0: the left view exactly, in both modes;
 *   - NaN probabilities: the same window and network pixel as render_image.
 * The whole model through infer_render on both devices, in both modes, and deep3d infer
 * --device cuda: tests/test_cuda_render.c.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifndef NN_WITH_CUDA

Test(cuda_warp, needs_the_cuda_build) {
    cr_skip_test("no CUDA device: this deep3d was built without CUDA (the GPU warp renderer lives in the CUDA build)");
}

#else

#include "renderutil.h"

#define OK RU_OK

/* ------------------------------------------------------------ settings and frames */

/* The warp settings of one case. Every interpolation with both disparity kinds, and
 * refinement, snapping and convergence each on and off. */
typedef struct {
    int interp, kind;
    double refine, snap, convergence, strength;
} warp_case;

static const warp_case cases[] = {
    {WARP_INTERP_CUBIC, WARP_DISP_MEAN, 4, 1, -1, 1},       /* the defaults */
    {WARP_INTERP_LINEAR, WARP_DISP_MEAN, 0, 0, -1, 1},      /* no refinement, no snapping */
    {WARP_INTERP_LANCZOS3, WARP_DISP_MODE, 4, 1, 0.3, 1},   /* convergence */
    {WARP_INTERP_CUBIC, WARP_DISP_MODE, 0, 1, 0.7, 0.5},    /* snapping alone, strength 0.5 */
    {WARP_INTERP_LINEAR, WARP_DISP_MODE, 2.5, 0, 0, 1.5},   /* refinement alone, the nearest at the screen */
    {WARP_INTERP_LANCZOS3, WARP_DISP_MEAN, 1, 2, 1, 1},     /* wider snapping, the farthest at the screen */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static render_config case_config(int c) {
    render_config cfg = ru_small_config(RENDER_WARP);
    cfg.interp = cases[c].interp, cfg.disparity = cases[c].kind, cfg.refine_radius = cases[c].refine;
    cfg.snap_radius = cases[c].snap, cfg.convergence = cases[c].convergence, cfg.strength = cases[c].strength;
    return cfg;
}

/* A left view (3, H, W) with depth edges for the scene network (ru_net mode 3): a
 * textured dark background and a bright block (near: low disparity levels are far in
 * mode 3's mapping, so the block sits at high levels) of a few columns. */
static nn_real *scene(int H, int W, uint64_t seed) {
    nn_real *L = ru_uniform((size_t)3 * H * W, 0, 1, seed);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                nn_real *v = &L[((size_t)c * H + y) * W + x];
                const int block = x >= W / 3 && x < W / 2 + 2 && y >= H / 4 && y < H - H / 4;
                *v = (nn_real)((block ? 200 : 50) + 30 * sin(0.7 * x + 0.3 * y + c) + 20 * *v);
            }
    return L;
}

static nn_real *alloc_real(size_t n) {
    nn_real *a = calloc(n ? n : 1, sizeof *a);
    cr_assert_not_null(a);
    return a;
}

/* ------------------------------------------------------------ CPU emulation of the kernels */

/* box_filter of infer/render.cu: rows (a thread each) into tmp, then columns. */
static void emulate_box(nn_real *out, const nn_real *in, nn_real *tmp, int H, int W, int r) {
    for (int y = 0; y < H; y++) warp_box_line(tmp + (size_t)y * W, 1, in + (size_t)y * W, 1, W, r);
    for (int x = 0; x < W; x++) warp_box_line(out + x, (size_t)W, tmp + x, (size_t)W, H, r);
}

/* guided_filter of infer/render.cu: its kernels in its order, on its 8 scratch planes of
 * the coarse grid. */
static void emulate_guided(nn_real *p, const nn_real *left, nn_real *s8, int H, int W, int r, int k, nn_real eps) {
    const int h = (H + k - 1) / k, w = (W + k - 1) / k, rs = warp_guided_coarse_radius(r, k);
    const size_t n = (size_t)h * w, plane = (size_t)H * W;
    nn_real *I = s8, *II = s8 + n, *Ip = s8 + 2 * n, *mI = s8 + 3 * n, *mp = s8 + 4 * n, *mII = s8 + 5 * n,
            *mIp = s8 + 6 * n, *tmp = s8 + 7 * n;
    for (size_t i = 0; i < n; i++) { /* guide_kernel */
        warp_guided_down(&I[i], &mp[i], left, p, plane, H, W, k, (int)(i / w), (int)(i % w));
        II[i] = I[i] * I[i], Ip[i] = I[i] * mp[i];
    }
    emulate_box(mI, I, tmp, h, w, rs), emulate_box(mp, mp, tmp, h, w, rs);
    emulate_box(mII, II, tmp, h, w, rs), emulate_box(mIp, Ip, tmp, h, w, rs);
    for (size_t i = 0; i < n; i++) warp_guided_ab(&II[i], &Ip[i], mI[i], mp[i], mII[i], mIp[i], eps);
    emulate_box(mI, II, tmp, h, w, rs), emulate_box(mp, Ip, tmp, h, w, rs);
    for (size_t i = 0; i < plane; i++) { /* guided_out_kernel */
        const int y = (int)(i / W), x = (int)(i % W);
        p[i] = warp_guided_out(warp_upsample(mI, h, w, k, y, x), warp_upsample(mp, h, w, k, y, x),
                               warp_grey(left[i], left[plane + i], left[2 * plane + i]));
    }
}

/* hist_kernel and convergence_kernel: the offset q of d (H, W). */
static double emulate_offset(const nn_real *d, const render_cuda_plan *p) {
    static unsigned int hist[WARP_HIST_BINS];
    memset(hist, 0, sizeof hist);
    if (p->cfg.convergence >= 0 && p->hist_hi > p->hist_lo)
        for (size_t i = 0; i < (size_t)p->H * p->W; i++) hist[warp_hist_bin(d[i], p->hist_lo, p->hist_hi)]++;
    return warp_convergence_offset(hist, p->hist_lo, p->hist_hi, p->cfg.strength, p->cfg.convergence);
}

/* launch_warp of infer/render.cu on the CPU: one loop per kernel, in its order, each
 * iteration the code of one GPU thread: right (3, H, W), dl (H, W) <- probs
 * (n, D, net_h, net_w), left. Returns the smallest bad key (ULLONG_MAX if none). */
static unsigned long long emulate_warp(nn_real *right, nn_real *dl, const render_cuda_plan *p, const nn_real *probs,
                                       const nn_real *left) {
    const int H = p->H, W = p->W;
    const size_t plane = (size_t)H * W, net_plane = (size_t)p->net_h * p->net_w, total = p->n * net_plane;
    nn_real *dnet = alloc_real(total), *sp = alloc_real(8 * plane);
    unsigned long long bad = ULLONG_MAX;
    for (size_t q = 0; q < total; q++) { /* disparity_kernel */
        const size_t i = q / net_plane, j = q % net_plane;
        dnet[q] = warp_disparity_of(probs + i * p->D * net_plane + j, net_plane, p->D, p->dmin, p->cfg.disparity);
        if (isnan(dnet[q]) && q < bad) bad = q;
    }
    for (size_t q = 0; q < plane; q++) sp[q] = render_cuda_source_disparity(p, dnet, (int)(q / W), (int)(q % W));
    for (int y = 0; y < H; y++) { /* left_grid_kernel: d_R is the shift scratch */
        const size_t row = (size_t)y * W;
        warp_left_grid_row(dl + row, sp + row, sp + plane + row, sp + row, W, (nn_real)p->cfg.gap);
    }
    if (p->refine_r > 0) emulate_guided(dl, left, sp, H, W, p->refine_r, p->refine_k, (nn_real)p->cfg.refine_eps);
    if (p->snap_rho > 0) {
        memcpy(sp, dl, plane * sizeof *sp);
        for (size_t q = 0; q < plane; q++)
            dl[q] = warp_snap_pixel(sp, left, H, W, (int)(q / W), (int)(q % W), p->snap_rho, p->snap_tau,
                                    (nn_real)p->cfg.snap_kappa);
    }
    const nn_real qf = (nn_real)emulate_offset(dl, p);
    for (int y = 0; y < H; y++) { /* render_row_kernel */
        const size_t row = (size_t)y * W;
        warp_render_row(right + row, left + row, plane, dl + row, sp + row, sp + plane + row, sp + 2 * plane + row,
                        sp + 3 * plane + row, W, (nn_real)p->cfg.strength, qf, (nn_real)p->cfg.gap, p->cfg.interp);
    }
    free(dnet), free(sp);
    return bad;
}

/* launch_blend of infer/render.cu on the CPU: the first pass (convergence), the offset
 * and the shift table of convergence_kernel, the second pass, strength 0's copy. */
static unsigned long long emulate_blend_comfort(nn_real *right, nn_real *disp, const render_cuda_plan *p,
                                                const nn_real *probs, const nn_real *left) {
    unsigned long long bad = ULLONG_MAX;
    if (p->cfg.convergence >= 0) bad = ru_emulate_blend(right, disp, p, probs, left);
    const double q = emulate_offset(disp, p);
    int *off = malloc(p->D * sizeof *off);
    nn_real *frac = alloc_real(p->D);
    cr_assert_not_null(off);
    for (int k = 0; k < p->D; k++) render_cuda_shift_entry(&off[k], &frac[k], p->scale * p->cfg.strength, p->dmin + k, q);
    render_cuda_plan shifted = *p;
    shifted.shift_off = off, shifted.shift_frac = frac;
    const unsigned long long b2 = ru_emulate_blend(right, disp, &shifted, probs, left);
    if (p->cfg.strength == 0) memcpy(right, left, (size_t)3 * p->H * p->W * sizeof *right);
    free(off), free(frac);
    return b2 < bad ? b2 : bad;
}

/* The emulated GPU path of cfg on one frame (mode: the fake network's) == render_image,
 * tolerance 0. */
static void check_emulation(const render_config *cfg, int H, int W, int mode, const char *label) {
    ru_net f;
    ru_net_init(&f, cfg, mode);
    nn_real *L = scene(H, W, 5 + H + W), *R0 = alloc_real((size_t)3 * H * W), *E0 = alloc_real((size_t)H * W);
    nn_real *R = alloc_real((size_t)3 * H * W), *E = alloc_real((size_t)H * W);
    OK(render_image(R0, E0, NULL, cfg, ru_net_cpu, &f, L, H, W));
    render_cuda_plan p;
    OK(render_cuda_plan_make(&p, cfg, H, W));
    nn_real *probs = alloc_real((size_t)p.n * p.D * p.net_h * p.net_w);
    ru_emulate_net(probs, &f, &p, L);
    const unsigned long long bad = cfg->mode == RENDER_WARP ? emulate_warp(R, E, &p, probs, L)
                                                            : emulate_blend_comfort(R, E, &p, probs, L);
    cr_assert_eq(bad, ULLONG_MAX, "%s: a bad pixel", label);
    char what[160];
    snprintf(what, sizeof what, "%s: emulated right view of a %dx%d frame", label, W, H);
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, what);
    snprintf(what, sizeof what, "%s: emulated disparity of a %dx%d frame", label, W, H);
    tu_assert_close(E, E0, (size_t)H * W, 0, 0, what);
    free(L), free(R0), free(E0), free(R), free(E), free(probs);
    render_cuda_plan_free(&p);
    ru_net_free(&f);
}

/* ------------------------------------------------------------ host tests */

Test(cuda_warp_host, plan_carries_the_warp_settings_in_source_pixels) {
    render_config cfg = ru_small_config(RENDER_WARP);
    cfg.refine_radius = 2.5, cfg.snap_radius = 0.3, cfg.snap_tau = 1.5, cfg.convergence = 0.4, cfg.strength = 0.7;
    for (int f = 0; f < RU_N_FRAMES; f++) {
        render_cuda_plan p;
        OK(render_cuda_plan_make(&p, &cfg, ru_frames[f][0], ru_frames[f][1]));
        const double s = p.scale;
        cr_assert(!memcmp(&p.cfg, &cfg, sizeof cfg));
        cr_assert_eq(p.refine_r, (int)fmax(1, lround(2.5 * s)), "refine radius %d at s %g", p.refine_r, s);
        cr_assert_eq(p.snap_rho, (int)fmax(1, lround(0.3 * s)), "snap radius %d at s %g", p.snap_rho, s);
        cr_assert_eq(p.refine_k, warp_guided_subsample(s, p.refine_r), "coarse grid %d at s %g", p.refine_k, s);
        cr_assert_eq(p.snap_tau, (nn_real)(1.5 * s));
        cr_assert(p.hist_lo == (nn_real)(s * -3) && p.hist_hi == (nn_real)(s * 3), "range [%g, %g] at s %g",
                  (double)p.hist_lo, (double)p.hist_hi, s);
        render_cuda_plan_free(&p);
    }
    /* a step switched off has radius 0 */
    cfg.refine_radius = 0, cfg.snap_radius = 0;
    render_cuda_plan p;
    OK(render_cuda_plan_make(&p, &cfg, 20, 50));
    cr_assert(p.refine_r == 0 && p.snap_rho == 0);
    render_cuda_plan_free(&p);
    cr_assert(render_radius(0, 2) == 0 && render_radius(-1, 2) == 0 && render_radius(0.1, 1) == 1);
    cr_assert(render_radius(4, 1.25) == 5 && render_radius(4, 0.5) == 2 && render_radius(1, 2.6) == 3);
    /* many overlapping windows: fine for the warp (no per-pixel list), an error for the blend */
    cfg.min_overlap = 0.97;
    OK(render_cuda_plan_make(&p, &cfg, 20, 160));
    cr_assert_gt(p.max_cover, RENDER_CUDA_MAX_COVER);
    render_cuda_plan_free(&p);
    cfg.mode = RENDER_BLEND;
    cr_assert_eq(render_cuda_plan_make(&p, &cfg, 20, 160), -1);
    cr_assert(strstr(nn_last_error(), "windows overlap at one pixel"), "%s", nn_last_error());
}

Test(cuda_warp_host, convergence_offset_from_a_histogram) {
    render_config cfg = ru_small_config(RENDER_WARP);
    const size_t n = 5000;
    nn_real *d = ru_uniform(n, -9, 9, 3);
    static unsigned int hist[WARP_HIST_BINS];
    nn_real lo, hi;
    warp_hist_range(&lo, &hi, 3.0, cfg.dmin, cfg.D);
    cr_assert(lo == -9 && hi == 9);
    for (size_t i = 0; i < n; i++) hist[warp_hist_bin(d[i], lo, hi)]++;
    const double conv[] = {-1, 0, 0.3, 1};
    for (int c = 0; c < 4; c++) {
        cfg.convergence = conv[c], cfg.strength = 0.5;
        const double q = warp_convergence_offset(hist, lo, hi, cfg.strength, cfg.convergence);
        cr_assert_eq(q, render_convergence_offset(d, n, 3.0, &cfg), "convergence %g", conv[c]);
        if (conv[c] < 0) cr_assert_eq(q, 0);
        else cr_assert(fabs(q / 0.5 - (-9 + 18 * conv[c])) < 0.05, "convergence %g: q %g", conv[c], q);
    }
    /* D = 1: an empty range, the one level goes to the screen; the histogram is not read */
    cr_assert_eq(warp_convergence_offset(NULL, 2, 2, 0.5, 0.3), 1.0);
    cr_assert_eq(warp_convergence_offset(NULL, -1, 1, 0.5, -1), 0.0);
    free(d);
}

/* A check of one frame: the emulated or the real GPU path against render_image. */
typedef void (*frame_check)(const render_config *cfg, int H, int W, int mode, const char *label);

/* Every warp case on every frame with the scene network, and the defaults with the
 * smooth network (mode 1). */
static void all_warp_cases(frame_check check) {
    char label[64];
    for (int c = 0; c < N_CASES; c++)
        for (int f = 0; f < RU_N_FRAMES; f++) {
            const render_config cfg = case_config(c);
            snprintf(label, sizeof label, "warp case %d", c);
            check(&cfg, ru_frames[f][0], ru_frames[f][1], 3, label);
        }
    const render_config cfg = case_config(0);
    for (int f = 0; f < RU_N_FRAMES; f++) check(&cfg, ru_frames[f][0], ru_frames[f][1], 1, "warp, network 1");
}

/* The blend mode with strength and convergence on every frame. */
static void all_blend_settings(frame_check check) {
    const double settings[][2] = {{0.5, 0.3}, {0.5, -1}, {1.5, 0}, {0, 0.3}}; /* strength, convergence */
    char label[64];
    for (int c = 0; c < 4; c++)
        for (int f = 0; f < RU_N_FRAMES; f++) {
            render_config cfg = ru_small_config(RENDER_BLEND);
            cfg.strength = settings[c][0], cfg.convergence = settings[c][1];
            snprintf(label, sizeof label, "blend, strength %g, convergence %g", settings[c][0], settings[c][1]);
            check(&cfg, ru_frames[f][0], ru_frames[f][1], 1, label);
        }
}

Test(cuda_warp_host, emulated_kernels_equal_render_image_bit_for_bit) { all_warp_cases(check_emulation); }

Test(cuda_warp_host, emulated_blend_with_strength_and_convergence_equals_render_image) {
    all_blend_settings(check_emulation);
}

Test(cuda_warp_host, emulated_kernels_find_render_images_bad_network_pixel) {
    render_config cfg = ru_small_config(RENDER_WARP);
    const int H = 20, W = 160;
    ru_net f;
    ru_net_init(&f, &cfg, 4); /* window 1: zeros from network pixel (3, 5) on */
    nn_real *L = scene(H, W, 3), *R = alloc_real((size_t)3 * H * W), *E = alloc_real((size_t)H * W);
    cr_assert_eq(render_image(R, E, NULL, &cfg, ru_net_cpu, &f, L, H, W), -1);
    int wi, wy, wx;
    ru_parse_bad(nn_last_error(), &wi, &wy, &wx);
    cr_assert(wi == 1 && wy == 3 && wx == 5, "render_image: %s", nn_last_error());
    render_cuda_plan p;
    OK(render_cuda_plan_make(&p, &cfg, H, W));
    nn_real *probs = alloc_real((size_t)p.n * p.D * p.net_h * p.net_w);
    ru_emulate_net(probs, &f, &p, L);
    const unsigned long long bad = emulate_warp(R, E, &p, probs, L), net_plane = (unsigned long long)p.net_h * p.net_w;
    cr_assert_eq(bad, 1 * net_plane + 3 * (unsigned long long)p.net_w + 5, "key %llu", bad);
    free(L), free(R), free(E), free(probs);
    render_cuda_plan_free(&p);
    ru_net_free(&f);
}

/* ------------------------------------------------------------ GPU */

static void gpu_or_skip(void) { (void)tu_require_cuda(); }

/* render_image_cuda vs render_image on one frame, tolerance 0. */
static void check_gpu_frame(const render_config *cfg, int H, int W, int mode, const char *label) {
    ru_net fc, fg;
    ru_net_init(&fc, cfg, mode);
    ru_net_init(&fg, cfg, mode);
    nn_real *L = scene(H, W, 5 + H + W), *R0 = alloc_real((size_t)3 * H * W), *E0 = alloc_real((size_t)H * W);
    nn_real *R = alloc_real((size_t)3 * H * W), *E = alloc_real((size_t)H * W);
    render_info i0, i1;
    OK(render_image(R0, E0, &i0, cfg, ru_net_cpu, &fc, L, H, W));
    const long live = nn_tensor_live_count();
    OK(render_image_cuda(R, E, &i1, cfg, ru_net_gpu, &fg, L, H, W));
    cr_assert_eq(nn_tensor_live_count(), live, "tensors leaked");
    cr_assert_eq(fg.calls, 1, "the network should run once, on a batch");
    cr_assert(fg.batch == i0.n_windows && i1.n_windows == i0.n_windows && i1.axis == i0.axis &&
              i1.scale == i0.scale && i1.win_w == i0.win_w && i1.win_h == i0.win_h);
    char what[160];
    snprintf(what, sizeof what, "%s: GPU right view of a %dx%d frame", label, W, H);
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, what);
    snprintf(what, sizeof what, "%s: GPU disparity of a %dx%d frame", label, W, H);
    tu_assert_close(E, E0, (size_t)H * W, 0, 0, what);
    OK(render_image_cuda(R, NULL, NULL, cfg, ru_net_gpu, &fg, L, H, W)); /* without the disparity */
    snprintf(what, sizeof what, "%s: GPU right view of a %dx%d frame, no disparity", label, W, H);
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, what);
    free(L), free(R0), free(E0), free(R), free(E);
    ru_net_free(&fc), ru_net_free(&fg);
}

Test(cuda_warp, frames_match_render_image_bit_for_bit) {
    gpu_or_skip();
    all_warp_cases(check_gpu_frame);
}

Test(cuda_warp, blend_with_strength_and_convergence_matches_render_image_bit_for_bit) {
    gpu_or_skip();
    all_blend_settings(check_gpu_frame);
}

Test(cuda_warp, strength_zero_returns_the_left_view_exactly_in_both_modes) {
    gpu_or_skip();
    const int H = 20, W = 160;
    nn_real *L = scene(H, W, 9), *R = alloc_real((size_t)3 * H * W), *E = alloc_real((size_t)H * W);
    nn_real *E0 = alloc_real((size_t)H * W), *R0 = alloc_real((size_t)3 * H * W);
    for (int mode = RENDER_WARP; mode <= RENDER_BLEND; mode++) {
        render_config cfg = ru_small_config(mode);
        cfg.strength = 0, cfg.convergence = 0.3;
        ru_net f;
        ru_net_init(&f, &cfg, 3);
        OK(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &f, L, H, W));
        cr_assert(!memcmp(R, L, (size_t)3 * H * W * sizeof *R), "mode %d: the right view is not the left view", mode);
        OK(render_image(R0, E0, NULL, &cfg, ru_net_cpu, &f, L, H, W));
        tu_assert_close(E, E0, (size_t)H * W, 0, 0, mode == RENDER_WARP ? "warp disparity" : "blend disparity");
        ru_net_free(&f);
    }
    free(L), free(R), free(E), free(E0), free(R0);
}

Test(cuda_warp, nan_probabilities_name_the_cpus_window_and_network_pixel) {
    gpu_or_skip();
    render_config cfg = ru_small_config(RENDER_WARP);
    const int H = 20, W = 160;
    nn_real *L = scene(H, W, 3), *R = alloc_real((size_t)3 * H * W), *E = alloc_real((size_t)H * W);
    ru_net fc, fg;
    ru_net_init(&fc, &cfg, 4), ru_net_init(&fg, &cfg, 4);
    const long live = nn_tensor_live_count();
    cr_assert_eq(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &fg, L, H, W), -1);
    cr_assert_eq(nn_tensor_live_count(), live, "tensors leaked on the error");
    char gpu_msg[512];
    snprintf(gpu_msg, sizeof gpu_msg, "%s", nn_last_error());
    cr_assert(strstr(gpu_msg, "network pixel"), "%s", gpu_msg);
    cr_assert_eq(render_image(R, E, NULL, &cfg, ru_net_cpu, &fc, L, H, W), -1);
    int a[3], b[3];
    ru_parse_bad(gpu_msg, &a[0], &a[1], &a[2]);
    ru_parse_bad(nn_last_error(), &b[0], &b[1], &b[2]);
    cr_assert(!memcmp(a, b, sizeof a) && a[0] == 1 && a[1] == 3 && a[2] == 5, "GPU: %s; CPU: %s", gpu_msg,
              nn_last_error());
    free(L), free(R), free(E);
    ru_net_free(&fc), ru_net_free(&fg);
}

#endif
