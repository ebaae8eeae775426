/* Inference: the right view at the source resolution, the single-image path (one
 * network window or several tiled ones), and output compositions.
 *
 * Source: DEEP3D.md, "Selection layer", "Rendering at the source resolution" and
 * "Disparity map"; Xie et al., ECCV 2016, sec. 3.2 ("differentiable DIBR"); the
 * authors' released convert_movie.py (tiling, feathering) and parse.py (anaglyph,
 * side-by-side).
 *
 * Layouts (all host memory, row-major, no padding):
 *   image      (3, H, W)  planar RGB, nn_real, values 0..255
 *   prob       (D, h, w)  disparity probabilities p_k at the network resolution h x w,
 *                         for shifts d_k = dmin + k network pixels, k = 0..D-1
 *   prob_src   (D, H, W)  the same, resampled to the source resolution
 *   disparity  (H, W)     blend: E[d] = sum_k p_k d_k * s, in OUTPUT (source) pixels, on
 *                         the right view's grid; warp: the refined disparity d_L (warp.h)
 *                         in source pixels, on the LEFT view's grid (aligned with the
 *                         image a viewer sees); both before strength and convergence
 * s is the shift scale: source pixels per network pixel along x (W / w for a frame
 * sent to the network whole; window width at source / w for a tiled window).
 *
 * Resampling (render_resize and everything built on it): pixel-area ("half-pixel",
 * align_corners = false) convention: output pixel i of n_out has its centre at input
 * coordinate (i + 0.5) * n_in / n_out - 0.5, so the first and last pixel EDGES of the
 * two grids coincide and the network frame maps onto the whole source frame. When
 * enlarging (n_out >= n_in) this is exactly bilinear interpolation with border
 * clamping (= torch.nn.functional.interpolate(mode="bilinear", align_corners=False),
 * = OpenCV INTER_LINEAR). When shrinking, the triangle (tent) filter is widened by the
 * shrink factor so every input pixel contributes (antialiased bilinear, = PIL's
 * BILINEAR resize and torch interpolate(..., antialias=True)); weights are normalised
 * over the taps that fall inside the image.
 *
 * Errors: every function returns 0 (or a new pointer) on success and -1 (or NULL)
 * after nn_fail("render: ...") on bad sizes (any size < 1, D < 1), NULL arguments,
 * out of memory, or a pixel whose probabilities do not sum to a positive finite
 * number (the message names the pixel). Nothing prints.
 *
 * Threads: OpenMP over output rows. Results do not depend on the thread count.
 */
#ifndef INFER_RENDER_H
#define INFER_RENDER_H

#include "../nn/real.h"
#include "warp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the network on one window: window (3, net_h, net_w) raw RGB 0..255 (the
 * callback subtracts the mean if its network wants it) -> prob (D, net_h, net_w),
 * softmax probabilities over the D disparities. Returns 0, or nonzero after recording
 * a message with nn_fail(); render_image() then fails, keeping that message as the
 * cause. Called from the calling thread, one window at a time, in window order. */
typedef int (*render_net_fn)(void *ctx, const nn_real *window, nn_real *prob);

/* How the right view is made from the probabilities (render_config.mode). */
enum {
    RENDER_WARP = 0,  /* one disparity per pixel, refined, occlusion-aware warp (warp.h) */
    RENDER_BLEND = 1  /* the selection layer's soft blend of D shifted copies (DEEP3D.md),
                       * what training optimises: the reference */
};

/* Settings of the single-image path. */
typedef struct {
    int net_h, net_w;   /* network resolution: 160 x 384 (DEEP3D.md) */
    int D, dmin;        /* disparity levels and first shift: 33, -15 */
    double aspect_tol;  /* one window when max(r, 1/r) <= 1 + aspect_tol, where
                         * r = (W/H) / (net_w/net_h): 0.15 */
    double min_overlap; /* least overlap of neighbouring tiled windows, as a fraction
                         * of the window length along the sliding axis: 0.25 */
    /* rendering */
    int mode;             /* RENDER_WARP (default) or RENDER_BLEND */
    int disparity;        /* warp: WARP_DISP_MEAN (default), WARP_DISP_MEDIAN or WARP_DISP_MODE */
    int interp;           /* warp: WARP_INTERP_CUBIC (default), _LANCZOS3 or _LINEAR */
    double refine_radius; /* warp: guided-filter radius in network pixels (scaled by s
                           * to source pixels, at least 1); 0: no refinement. Default 32 */
    double refine_eps;    /* warp: guided-filter eps on the 0..1 grey guide: 1e-2 */
    double snap_radius;   /* warp: edge-snapping window radius in network pixels (scaled
                           * by s, at least 1); 0: no snapping. Default 1 */
    double snap_tau;      /* warp: a depth edge spans more than this, network pixels: 1 */
    double snap_kappa;    /* warp: an image edge: mean colours differ by more than this
                           * (0..255, mean over the channels): 12 */
    double gap;           /* warp: a map segment stretched beyond 1 + gap pixels per pixel
                           * is a depth edge: its pixels are disocclusions (warp.h): 1 */
    double strength;      /* both: every disparity times this (0: the left view exactly;
                           * 1: the model's own; default 1) */
    double convergence;   /* both: < 0 (default): the model's own zero plane; 0..1: shift
                           * every disparity so that this quantile of the frame's
                           * disparities is 0 (at the screen): 0 puts the nearest point
                           * there (all behind the screen), 1 the farthest (all in front) */
} render_config;

/* Fills the defaults above. */
void render_config_default(render_config *cfg);

/* One window of the plan, at source resolution. Its blending weight is
 *   w(x, y) = ramp(x - x0, w, ramp_left, ramp_right) * ramp(y - y0, h, ramp_top, ramp_bottom)
 *   ramp(t, n, a, b) = min(1, (t + 0.5) / a, (n - t - 0.5) / b)   (a term is dropped when 0)
 * i.e. a linear ramp across each overlap with a neighbour, flat elsewhere and at frame
 * edges. Where just two windows overlap by at most half a window the two ramps sum to
 * 1; the blend divides by the sum of the weights in any case. */
typedef struct {
    int x0, y0, w, h;
    int ramp_left, ramp_right, ramp_top, ramp_bottom;  /* pixels; 0 = no ramp */
} render_window;

/* What render_image() did. */
typedef struct {
    int n_windows;   /* network calls */
    int axis;        /* 0: whole frame in one window; 1: windows slide along x (wide
                      * frame); 2: windows slide along y (tall frame) */
    int win_w, win_h;/* window size at source resolution */
    double scale;    /* s: source pixels per network pixel of disparity */
} render_info;

/* The window plan for an H x W frame (render_image uses exactly this).
 * - max(r, 1/r) <= 1 + aspect_tol: one window, the whole frame (stretched to the
 *   network resolution), s = W / net_w.
 * - wide (r > 1 + tol): windows of full height H and width ww = round(H * net_w/net_h)
 *   (the network aspect), n = 1 + ceil((W - ww) / ((1 - min_overlap) * ww)) of them,
 *   x0_i = round(i * (W - ww) / (n - 1)): the first starts at 0, the last ends at W,
 *   neighbours overlap by >= min_overlap * ww (up to rounding). s = ww / net_w.
 * - tall (r < 1 / (1 + tol)): the same along y, windows of full width W and height
 *   wh = max(1, round(W * net_h/net_w)); s = W / net_w.
 * Writes min(n, max_windows) windows to win (win may be NULL to count) and s to
 * *scale (may be NULL). Returns n, or -1 on bad sizes or settings. */
int render_plan_windows(render_window *win, int max_windows, double *scale,
                        const render_config *cfg, int H, int W);

/* The whole single-image path: left (3, H, W) 0..255 -> right (3, H, W) and, when
 * disparity is not NULL, the disparity map (H, W) in output pixels (top of this file);
 * info (may be NULL) says what was done.
 * cfg->mode RENDER_WARP: render_disparity, then render_warp (below).
 * cfg->mode RENDER_BLEND, what follows (with strength and convergence applied to the
 * shifts: s_k = strength * s * d_k - q, q = strength * the convergence quantile of E[d]). For each window of render_plan_windows(): crop the left view, resize it to
 * net_h x net_w (render_resize), run net; then, row by row at source resolution,
 * resample every window's probabilities to its place (render_resize convention),
 * renormalise them per window, blend them with the window weights, renormalise over
 * the D values, and render (render_right_view) with the plan's s.
 * Blending probabilities (not rendered views) keeps one disparity distribution per
 * pixel, so E[d] and the right view stay consistent; identical probabilities blend to
 * themselves exactly. (The released convert_movie.py instead averaged five rendered
 * 384x160 crops of a 432x180 frame, at offsets (24,10) (0,0) (0,20) (48,0) (48,20),
 * with a weight ramping over 32 px from the top and left window edges.)
 * Memory (blend): the windows run in bounded groups (segments along the sliding axis,
 * each covered by a run of consecutive windows; the network runs on a window when the
 * first segment needing it comes, and its probabilities are dropped after the last):
 * at most max_cover (2-3 with the default overlap) * D * net_h * net_w values for the
 * network outputs, plus a row of D * W per thread; the full-resolution (D, H, W)
 * probabilities are never stored. With convergence the frame is rendered twice (E[d]
 * first) and the network runs twice on every window.
 * Memory (warp): render_disparity's 2 H W values plus one window, then the guided
 * filter's 8 H W / k^2 values (render_guided_filter, k = warp_guided_subsample).
 * Errors: bad sizes or settings, NULL arguments, out of memory, a failing callback
 * ("render: network failed on window i of n (x0, y0, w x h): <callback's message>"),
 * probabilities that do not sum to a positive finite number. */
int render_image(nn_real *right, nn_real *disparity, render_info *info,
                 const render_config *cfg, render_net_fn net, void *ctx,
                 const nn_real *left, int H, int W);

/* Warp, steps 1-4 of warp.h: left (3, H, W) 0..255 -> disp (H, W), the refined disparity
 * d_L in source pixels on the left view's grid. For each window of
 * render_plan_windows(): crop, resize to the network, run net, take one disparity per
 * network pixel (cfg->disparity), resample it to the window's place at the source
 * (render_resize convention) and blend it with the window weights (a running weighted
 * sum over the windows in order, so memory does not grow with the number of windows:
 * 2 H W values plus one window's D net_h net_w); times s; then d_R -> d_L
 * (warp_invert_row), then the guided filter (radius max(1, round(refine_radius * s)),
 * coefficients on a grid warp_guided_subsample(s, radius) times coarser),
 * then edge snapping (render_snap_edges).
 * Errors: as render_image; a pixel whose probabilities do not sum to a positive finite
 * number names its window and network pixel. */
int render_disparity(nn_real *disp, render_info *info, const render_config *cfg, render_net_fn net, void *ctx,
                     const nn_real *left, int H, int W);

/* Warp, steps 5-6 of warp.h: left (3, H, W) 0..255 and disp (H, W) (render_disparity's,
 * source pixels) -> right (3, H, W) 0..255: strength and convergence applied (the
 * quantile over a histogram of disp on [s dmin, s dmax], s = scale: source pixels per
 * network pixel), then every row inverted and sampled (cfg->interp). strength 0 gives
 * the left view exactly. Errors: NULL arrays, sizes, s not positive, out of memory. */
int render_warp(nn_real *right, const nn_real *left, const nn_real *disp, int H, int W, double scale,
                const render_config *cfg);

/* A warp radius given in network pixels (refine_radius, snap_radius) in source pixels
 * at scale s: max(1, round(radius * s)); 0 (the step is off) when radius <= 0. */
int render_radius(double radius, double scale);

/* The convergence offset of render_warp: strength * the cfg->convergence quantile of
 * disp (H * W values) over WARP_HIST_BINS bins on [s dmin, s (dmin + D - 1)]; 0 when
 * cfg->convergence < 0. */
double render_convergence_offset(const nn_real *disp, size_t n, double scale, const render_config *cfg);

/* The guided filter of warp.h step 4 on the CPU: p (H, W) filtered in place with the
 * grey of left (3, H, W) 0..255 as the guide, box radius r pixels, eps on the 0..1
 * guide, its coefficients on a grid k times coarser (the fast guided filter of He and
 * Sun 2015: warp_guided_down, box radius max(1, round(r / k)) there, warp_upsample;
 * k = 1 is the plain filter of He, Sun and Tang 2013, Algorithm 1). Memory: 8 planes of
 * ceil(H / k) x ceil(W / k). Errors: sizes, r < 1, k < 1, out of memory. */
int render_guided_filter(nn_real *p, const nn_real *left, int H, int W, int r, int k, double eps);

/* Edge snapping of warp.h step 4b on the CPU: d (H, W) in place, img (3, H, W) 0..255,
 * window radius rho >= 1 pixels, tau in d's units, kappa 0..255. Errors: sizes, out of
 * memory. */
int render_snap_edges(nn_real *d, const nn_real *img, int H, int W, int rho, double tau, double kappa);

/* Step 1 with the network output given: prob (D, h, w) for the whole frame, left
 * (3, H, W) -> right (3, H, W), disparity (H, W) or NULL. Equals
 * render_upsample_prob() followed by render_right_view() with s = W / w, fused row by
 * row (no (D, H, W) buffer). */
int render_from_prob(nn_real *right, nn_real *disparity, const nn_real *left, int H, int W,
                     const nn_real *prob, int D, int dmin, int h, int w);

/* Resamples prob (D, h, w) to prob_src (D, H, W) (render_resize convention) and
 * renormalises so the D values sum to 1 at every pixel (any positive scale of the
 * input is removed). Errors: sizes, a pixel whose sum is not positive and finite. */
int render_upsample_prob(nn_real *prob_src, const nn_real *prob, int D, int h, int w,
                         int H, int W);

/* The selection layer at source resolution with fractional shifts:
 *   R(c, y, x) = sum_k p_k(y, x) * L(c, y, u_k),  u_k = clamp(x - s * d_k, 0, W - 1),
 *   L(c, y, u) = (1 - f) L(c, y, floor u) + f L(c, y, min(floor u + 1, W - 1)), f = u - floor u,
 *   E[d](y, x) = s * sum_k p_k(y, x) d_k,          d_k = dmin + k,
 * with prob_src (D, H, W) used as given (not renormalised). With s = 1 it is exactly
 * the training-time selection layer (DEEP3D.md). disparity may be NULL.
 * Errors: sizes, s not positive and finite, NULL arguments. */
int render_right_view(nn_real *right, nn_real *disparity, const nn_real *left,
                      const nn_real *prob_src, int D, int dmin, double s, int H, int W);

/* Resamples in (C, H, W) to out (C, H2, W2): bilinear when enlarging, antialiased
 * bilinear when shrinking (see the top of this file). Identity when the sizes match. */
int render_resize(nn_real *out, const nn_real *in, int C, int H, int W, int H2, int W2);

/* Side-by-side: (3, H, 2W), the left view in columns 0..W-1, the right view in
 * W..2W-1, both at full width (a "full SBS" frame; parse.py's sbs() squeezed each
 * view to half width). New array (free() it), NULL on error. */
nn_real *render_side_by_side(const nn_real *left, const nn_real *right, int H, int W);

/* Over-under (top-bottom): (3, 2H, W), the left view in rows 0..H-1, the right view
 * below. New array (free() it), NULL on error. */
nn_real *render_over_under(const nn_real *left, const nn_real *right, int H, int W);

/* Red-cyan colour anaglyph, the simple channel-swap kind (no Dubois matrices): red
 * from the left view, green and blue from the right view, for glasses with the red
 * filter on the left eye. parse.py's anaglyph() does the same on BGR frames.
 * (3, H, W), new array (free() it), NULL on error. */
nn_real *render_anaglyph(const nn_real *left, const nn_real *right, int H, int W);

/* Grey depth map from disparity (H, W) in output pixels (as render_image writes it):
 *   v = 255 * (dmax * s - disparity) / ((dmax - dmin) * s),  dmax = dmin + D - 1,
 * clamped to 0..255: the most negative disparity (near, DEEP3D.md) is white (255),
 * the most positive (far) black. The range is fixed by the disparity levels, not by
 * the image, so maps of different images compare. D = 1 gives mid-grey 127.5.
 * Returns 3 equal channels (3, H, W) so it writes like any RGB image; new array
 * (free() it), NULL on error. */
nn_real *render_depth_map(const nn_real *disparity, int H, int W, int D, int dmin, double s);

#ifdef __cplusplus
}
#endif

#endif
