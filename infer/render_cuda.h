/* Inference on the GPU: render_image (render.h) with every step on the device, and the
 * CUDA backend's pinned / asynchronous uploads it uses.
 *
 * The single-image path of `deep3d infer --device cuda` (render_image_cuda):
 *   1. upload the source frame once (and a few KB of tables: the plan below);
 *   2. crop every window of render_plan_windows() and resize it to the network
 *      resolution (render_resize's convention: half-pixel centres, bilinear when
 *      enlarging, antialiased tent when shrinking)                         kernel
 *   3. run the network once on all windows as ONE batch (N = number of windows);
 *   4. render, as render_image does in the configured mode (render_config.mode):
 *      RENDER_WARP (the default; render_disparity then render_warp, warp.h's steps):
 *        a. one disparity per network pixel of every window (warp_disparity_of);
 *           the probabilities are released right after        kernel per network pixel
 *        b. at every source pixel, the covering windows' disparities resampled and
 *           blended with the window weights, times s: d_R      kernel per source pixel
 *        c. d_R -> d_L (warp_left_grid_row)                     kernel per row
 *        d. the guided filter (refine_radius > 0) on a grid refine_k times coarser:
 *           the block means (warp_guided_down), 6 box filters (warp_box_line along
 *           rows, then columns), warp_guided_ab, then at full resolution
 *           warp_upsample and warp_guided_out, in render_guided_filter's order
 *                                                   kernels per pixel, row and column
 *        e. edge snapping (snap_radius > 0) from a copy of d_L  kernel per pixel
 *        f. the convergence offset (convergence >= 0): a WARP_HIST_BINS histogram of
 *           d_L (atomicAdd of integer counts: exact, independent of the order), its
 *           quantile (warp_convergence_offset) in ONE thread, left in device memory
 *           for g (no round trip through the host)             kernels per pixel, 1
 *        g. the right view (warp_render_row: strength, offset, inversion, sampling)
 *                                                               kernel per row
 *      RENDER_BLEND: at every source pixel, resample each covering window's
 *        probabilities to the source resolution, renormalise them per window, blend
 *        them with the feathered window weights, renormalise over the D levels, and
 *        render the right view and E[d] with fractional shifts and clamped borders
 *        (kernel per source pixel). With convergence >= 0 a first pass gives E[d],
 *        whose histogram quantile q (as f) sets the shifts of the second pass,
 *        u_k = -(strength s) d_k + q (render_cuda_shift_entry, in one thread); with
 *        strength 0 the right view is the left view exactly (a device copy);
 *   5. download the right view and the disparity map once each (the warp mode's
 *      disparity is d_L after refinement and snapping, as render_image's).
 * The formulas are render.c's (render.h states them); the reference stays render_image
 * on the CPU (also the --device cpu path). The kernels are in infer/render.cu.
 *
 * Same numbers as the CPU: the kernels run the very functions render.c runs (warp.h) or
 * the per-pixel code below, which is shared with the CPU tests that emulate them
 * (tests/test_cuda_render.c, tests/test_cuda_warp.c), in render.c's order and from the
 * same resampling weights. No product and sum is contracted into a fused multiply-add
 * on either side (render_hd.h: the C11 build does not contract, infer/render.cu is
 * compiled with --fmad=false; the older blend code also spells every rounding out with
 * __fmul_rn / __fadd_rn), and float and double division are IEEE on both. Sums that
 * render.c runs in a fixed order run in the same order here (one thread per pixel,
 * row or column; the histogram counts integers). So the GPU result is expected to
 * equal render_image bit for bit (tests/test_cuda_warp.c checks the warp mode and the
 * comfort controls with tolerance 0; test_cuda_render.c's older blend checks allow a few
 * float ulps). floor, ceil and the conversions are exact; the one library function
 * that is not is sin() in warp_sample's Lanczos weights, correctly rounded on neither
 * side (CUDA's double sin is within 2 ulp): a double differing in its last bits rounds
 * to the same float weight unless it lies within those bits of a float rounding
 * boundary (odds of order 2^-28 per weight).
 *
 * Layouts: as render.h (host arrays planar RGB (3, H, W) 0..255, prob (D, h, w)); on the
 * device the windows are a (N, 3, net_h, net_w) tensor and the network's answer a
 * (N, D, net_h, net_w) tensor, N = number of windows, window i at batch index i.
 *
 * Memory on the device: the frame (3 H W floats), the windows and the probabilities
 * (N (3 + D) net_h net_w floats), the right view and disparity (4 H W floats), besides
 * what the network itself needs for a batch of N. The full-resolution (D, H, W)
 * probabilities are never stored: every pixel recomputes its few taps. The warp mode
 * keeps only the N net_h net_w disparities once step a has run, plus 8 (H, W) planes of
 * scratch with the guided filter (4 without) and a 16 KB histogram; the blend mode a
 * 16 KB histogram and the D-entry shift table besides.
 *
 * Errors: 0 / -1 + nn_fail, as render.h: bad sizes or settings, NULL arguments, no
 * CUDA device or a build without CUDA ("... built without CUDA"), out of device
 * memory, a failing network callback ("render (cuda): network failed on the batch of
 * N windows ...: <callback's message>"), probabilities that do not sum to a positive
 * finite number: blend, "render (cuda): probabilities of window i at (y Y, x X) ...",
 * the first such pixel in (row, window, column) order; warp, "render (cuda):
 * probabilities of window i at network pixel (y Y, x X) ...", the first window that has
 * one and its first network pixel in row order (render_disparity's report).
 *
 * Everything declared here needs the CUDA build (infer/render.cu, nn/backend_cuda.cu);
 * the plan functions are host code but live in the same .cu file, so callers and tests
 * guard them with #ifdef NN_WITH_CUDA.
 */
#ifndef INFER_RENDER_CUDA_H
#define INFER_RENDER_CUDA_H

#include <float.h>
#include <stddef.h>

#include "render.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "../nn/cuda_upload.h"
#include "../nn/tensor.h"

/* ---------------------------------------------------------------- the plan */

/* Most windows that may cover one source pixel (the kernels keep one weight per
 * covering window in registers). The default plan covers a pixel at most 3 times;
 * only a min_overlap close to 1 exceeds this, and render_cuda_plan_make then fails. */
#define RENDER_CUDA_MAX_COVER 16

/* Everything the kernels read besides the images: the window plan of
 * render_plan_windows(), the four resampling tables (all windows have one size) and
 * the shift table. All arrays live in one host block (block, bytes), uploaded as one;
 * render_cuda_plan_rebase() makes the copy whose pointers point into the device block. */
typedef struct {
    int H, W;                       /* source frame */
    int n;                          /* windows = network batch */
    int D, dmin;                    /* disparity levels d_k = dmin + k, network pixels */
    int net_h, net_w;
    int win_w, win_h;               /* window size at the source */
    int axis;                       /* as render_info.axis */
    int max_cover;                  /* most windows covering one pixel */
    double scale;                   /* s: source pixels per network pixel of disparity */
    render_config cfg;              /* the settings: mode, warp steps, comfort controls */
    int refine_r, snap_rho;         /* warp: render_radius of refine_radius, snap_radius (0: off) */
    int refine_k;                   /* warp: the guided filter's coarse grid, warp_guided_subsample */
    nn_real snap_tau;               /* warp: snap_tau * s */
    nn_real hist_lo, hist_hi;       /* the convergence histogram's range (warp_hist_range) */
    render_window *win;             /* (n) */
    render_axis_table in_x, in_y;   /* window -> network: win_w -> net_w, win_h -> net_h */
    render_axis_table out_x, out_y; /* network -> window: net_w -> win_w, net_h -> win_h */
    int *shift_off;                 /* (D) floor(-s d_k) */
    nn_real *shift_frac;            /* (D) -s d_k - floor(-s d_k), in [0, 1) */
    void *block;                    /* every array above; free with render_cuda_plan_free */
    size_t bytes;
} render_cuda_plan;

/* Builds the plan of an H x W frame: render_plan_windows(cfg, H, W) and tables equal
 * to render.c's, the shift table of the plain selection (strength 1, no convergence
 * offset), the warp settings in source pixels as render_disparity derives them. Host
 * only (no GPU needed). 0, or -1 + nn_fail (bad config or sizes, out of memory, in
 * blend mode more than RENDER_CUDA_MAX_COVER windows over one pixel). */
int render_cuda_plan_make(render_cuda_plan *p, const render_config *cfg, int H, int W);

/* Frees p->block and zeroes p (NULL-safe, idempotent). */
void render_cuda_plan_free(render_cuda_plan *p);

/* *out = *p with every array pointer moved from p->block to the same offset in `base`
 * (a copy of the block elsewhere, e.g. on the device). */
void render_cuda_plan_rebase(render_cuda_plan *out, const render_cuda_plan *p, void *base);

/* ---------------------------------------------------------------- the GPU path */

/* The network on a batch of windows: windows (N, 3, net_h, net_w) CUDA tensor, raw RGB
 * 0..255 (the callback subtracts the mean if its network wants it). On success *prob is
 * a new CUDA tensor (N, D, net_h, net_w) of softmax probabilities, owned by the caller
 * of the callback. Returns 0, or nonzero after nn_fail() (the message becomes the
 * cause of render's error). Called once per frame, from the calling thread. */
typedef int (*render_cuda_net_fn)(void *ctx, nn_tensor *windows, nn_tensor **prob);

/* render_image on the GPU (see the top of this file): left (3, H, W) host, 0..255 ->
 * right (3, H, W) and, when disparity is not NULL, render_image's disparity map (H, W)
 * in output pixels (blend: E[d]; warp: d_L); info (may be NULL) as render_image's.
 * Equals render_cuda_prepare + render_cuda_launch + render_cuda_finish. */
int render_image_cuda(nn_real *right, nn_real *disparity, render_info *info, const render_config *cfg,
                      render_cuda_net_fn net, void *ctx, const nn_real *left, int H, int W);

/* The same in three steps, so that a caller can overlap frames (deep3d infer decodes
 * the next image and encodes the previous outputs while the GPU works):
 *  - render_cuda_prepare: plans, allocates the device frame, and starts its upload on
 *    the copy stream (nn_cuda_upload_async); `left` may be reused on return. Cheap for
 *    the GPU: it can run while an earlier frame's job computes.
 *  - render_cuda_launch: waits for the uploads (on the device, not the host), crops and
 *    resizes the windows, runs net on the batch, launches the rendering; returns once
 *    everything is queued (the network callback's host work aside).
 *  - render_cuda_finish: waits for the job, checks it, downloads right (3, H, W) and
 *    disparity (H, W; may be NULL), fills info (may be NULL) and frees the job, whether
 *    it succeeds or not.
 *  - render_cuda_free: frees a job without finishing it (NULL-safe).
 * Run one job's launch .. finish before the next job's launch (prepare may come in
 * between). Errors as render_image_cuda; a failed step frees nothing, so call
 * render_cuda_free (or finish) on the job in any case. */
typedef struct render_cuda_job render_cuda_job;
int render_cuda_prepare(render_cuda_job **job, const render_config *cfg, const nn_real *left, int H, int W);
int render_cuda_launch(render_cuda_job *job, render_cuda_net_fn net, void *ctx);
int render_cuda_finish(render_cuda_job *job, nn_real *right, nn_real *disparity, render_info *info);
void render_cuda_free(render_cuda_job *job);

/* The two kernels, for tests (device pointers; dplan from render_cuda_plan_rebase onto
 * the device copy of the block; queued on the compute stream, not waited for):
 *   windows (n, 3, net_h, net_w) <- left (3, H, W)
 *   right (3, H, W), disparity (H, W) or NULL <- probs (n, D, net_h, net_w), left;
 *   *bad (device, 1 value) is lowered (atomicMin) to the key (y * n + i) * W + x of
 *   every pixel (y, x) where window i's probabilities do not sum to a positive finite
 *   number; initialise it to UINT64_MAX. */
int render_cuda_crop_windows(nn_real *windows, const render_cuda_plan *dplan, const nn_real *left);
int render_cuda_blend(nn_real *right, nn_real *disparity, unsigned long long *bad, const render_cuda_plan *dplan,
                      const nn_real *probs, const nn_real *left);

/* ---------------------------------------------------------------- CUDA backend uploads
 * nn_cuda_upload_async / nn_cuda_wait_uploads and their statistics: nn/cuda_upload.h
 * (included above). */

#ifdef __cplusplus
}
#endif

/* ---------------------------------------------------------------- per-pixel code
 * Shared by the kernels (infer/render.cu) and the CPU tests that emulate them. Nothing
 * is contracted into fused multiply-adds: the C11 build does not contract (as
 * render.c), infer/render.cu is compiled with --fmad=false, and the blend code below
 * also spells each device rounding out (RG_*, render_hd.h). */

#include "render_hd.h"

/* Network input of window i: channel c, row y, column x at the network resolution =
 * render_resize of the window's crop of left (3, H, W), in resample()'s order:
 * vertical taps per input column, then horizontal. */
RENDER_HD nn_real render_cuda_window_input(const render_cuda_plan *p, const nn_real *left, int i, int c, int y,
                                           int x) {
    const render_window *r = &p->win[i];
    const render_axis_table *fy = &p->in_y, *fx = &p->in_x;
    const nn_real *wy = fy->w + (size_t)y * fy->max_taps, *wx = fx->w + (size_t)x * fx->max_taps;
    const nn_real *src = left + (size_t)c * p->H * p->W + (size_t)(r->y0 + fy->first[y]) * p->W + r->x0 + fx->first[x];
    int cy = fy->count[y], cx = fx->count[x];
    nn_real acc = 0;
    for (int jx = 0; jx < cx; jx++) {
        nn_real t = RG_FMUL(wy[0], src[jx]);
        for (int jy = 1; jy < cy; jy++) t = RG_FADD(t, RG_FMUL(wy[jy], src[(size_t)jy * p->W + jx]));
        acc = RG_FADD(acc, RG_FMUL(wx[jx], t));
    }
    return acc;
}

/* Level k of one window's probabilities prob (D, net_h, net_w) resampled to the window
 * pixel (ty, tx): blend_render's vertical pass (from 0), then its horizontal pass. */
RENDER_HD nn_real render_cuda_window_prob(const render_cuda_plan *p, const nn_real *prob, int k, int ty, int tx) {
    const render_axis_table *fy = &p->out_y, *fx = &p->out_x;
    const nn_real *wy = fy->w + (size_t)ty * fy->max_taps, *wx = fx->w + (size_t)tx * fx->max_taps;
    const nn_real *src = prob + ((size_t)k * p->net_h + fy->first[ty]) * p->net_w + fx->first[tx];
    int cy = fy->count[ty], cx = fx->count[tx];
    nn_real hp = 0;
    for (int jx = 0; jx < cx; jx++) {
        nn_real v = 0;
        for (int jy = 0; jy < cy; jy++) v = RG_FADD(v, RG_FMUL(wy[jy], src[(size_t)jy * p->net_w + jx]));
        hp = jx == 0 ? RG_FMUL(wx[0], v) : RG_FADD(hp, RG_FMUL(wx[jx], v));
    }
    return hp;
}

/* render.h's window weight along one axis: min(1, (t + 0.5) / a, (n - t - 0.5) / b). */
RENDER_HD double render_cuda_ramp(int t, int n, int a, int b) {
    double v = 1;
    if (a > 0) {
        double q = RG_DDIV(RG_DADD((double)t, 0.5), (double)a);
        if (q < v) v = q;
    }
    if (b > 0) {
        double q = RG_DDIV(RG_DSUB((double)(n - t), 0.5), (double)b);
        if (q < v) v = q;
    }
    return v;
}

/* The blended, renormalised probability of level k at the pixel, before the division
 * by the total: sum over the m covering windows (idx[c], weight g[c]) in window order. */
RENDER_HD nn_real render_cuda_blend_level(const render_cuda_plan *p, const nn_real *probs, const int *idx,
                                          const nn_real *g, int m, int k, int y, int x) {
    size_t psize = (size_t)p->D * p->net_h * p->net_w;
    nn_real a = 0;
    for (int c = 0; c < m; c++) {
        const render_window *r = &p->win[idx[c]];
        a = RG_FADD(a, RG_FMUL(g[c], render_cuda_window_prob(p, probs + (size_t)idx[c] * psize, k, y - r->y0,
                                                             x - r->x0)));
    }
    return a;
}

/* One source pixel (y, x) of the GPU path: probs (n, D, net_h, net_w), left (3, H, W) ->
 * rgb[0..2] = R(:, y, x), *e = E[d](y, x) in output pixels. Returns -1 on success, or
 * the first window (in index order) whose probabilities at this pixel do not sum to a
 * positive finite number (rgb and e are then not written). */
RENDER_HD int render_cuda_pixel(const render_cuda_plan *p, const nn_real *probs, const nn_real *left, int y, int x,
                                nn_real *rgb, nn_real *e) {
    int idx[RENDER_CUDA_MAX_COVER];
    nn_real g[RENDER_CUDA_MAX_COVER];
    int m = 0;
    size_t psize = (size_t)p->D * p->net_h * p->net_w;
    for (int i = 0; i < p->n; i++) {
        const render_window *r = &p->win[i];
        if (y < r->y0 || y >= r->y0 + r->h || x < r->x0 || x >= r->x0 + r->w) continue;
        int ty = y - r->y0, tx = x - r->x0;
        nn_real sum = 0;
        for (int k = 0; k < p->D; k++) sum = RG_FADD(sum, render_cuda_window_prob(p, probs + (size_t)i * psize, k, ty, tx));
        if (!(sum > 0) || !(sum <= FLT_MAX)) return i;
        if (m == RENDER_CUDA_MAX_COVER) continue; /* excluded by render_cuda_plan_make */
        double wy = render_cuda_ramp(ty, r->h, r->ramp_top, r->ramp_bottom);
        double wx = render_cuda_ramp(tx, r->w, r->ramp_left, r->ramp_right);
        idx[m] = i;
        g[m] = (nn_real)RG_DDIV(RG_DMUL(wy, wx), (double)sum);
        m++;
    }
    nn_real tot = 0;
    for (int k = 0; k < p->D; k++) tot = RG_FADD(tot, render_cuda_blend_level(p, probs, idx, g, m, k, y, x));
    size_t plane = (size_t)p->H * p->W;
    const nn_real *l0 = left + (size_t)y * p->W, *l1 = l0 + plane, *l2 = l1 + plane;
    const int W = p->W;
    nn_real r0 = 0, r1 = 0, r2 = 0, ed = 0;
    for (int k = 0; k < p->D; k++) {
        nn_real pk = RG_FDIV(render_cuda_blend_level(p, probs, idx, g, m, k, y, x), tot);
        int i0 = x + p->shift_off[k];
        if (i0 < 0) {
            r0 = RG_FADD(r0, RG_FMUL(pk, l0[0]));
            r1 = RG_FADD(r1, RG_FMUL(pk, l1[0]));
            r2 = RG_FADD(r2, RG_FMUL(pk, l2[0]));
        } else if (i0 >= W - 1) {
            r0 = RG_FADD(r0, RG_FMUL(pk, l0[W - 1]));
            r1 = RG_FADD(r1, RG_FMUL(pk, l1[W - 1]));
            r2 = RG_FADD(r2, RG_FMUL(pk, l2[W - 1]));
        } else {
            nn_real f = p->shift_frac[k];
            r0 = RG_FADD(r0, RG_FMUL(pk, RG_FADD(l0[i0], RG_FMUL(f, RG_FSUB(l0[i0 + 1], l0[i0])))));
            r1 = RG_FADD(r1, RG_FMUL(pk, RG_FADD(l1[i0], RG_FMUL(f, RG_FSUB(l1[i0 + 1], l1[i0])))));
            r2 = RG_FADD(r2, RG_FMUL(pk, RG_FADD(l2[i0], RG_FMUL(f, RG_FSUB(l2[i0 + 1], l2[i0])))));
        }
        ed = RG_FADD(ed, RG_FMUL(pk, (nn_real)(p->dmin + k)));
    }
    rgb[0] = r0, rgb[1] = r1, rgb[2] = r2;
    *e = (nn_real)RG_DMUL(p->scale, (double)ed);
    return -1;
}

/* One entry of the blend path's shift table, for level d_k = d: u = -ss d + q, split
 * into off = floor(u) and frac = u - off in [0, 1) (render.c's shift_table_init: ss = s
 * strength, q the convergence offset; the plan's own table has ss = s, q = 0). */
RENDER_HD void render_cuda_shift_entry(int *off, nn_real *frac, double ss, int d, double q) {
    const double u = -ss * d + q, f = floor(u);
    *off = (int)f, *frac = (nn_real)(u - f);
}

/* Warp step 2 at source pixel (y, x): dnet (n, net_h, net_w), one disparity per
 * network pixel of every window (warp_disparity_of) -> d_R in source pixels. The
 * covering windows in index order, each resampled to the pixel (warp_resampled) with
 * the weight g = (float) ramp_y * (float) ramp_x: num = sum g v, den = sum g, d_R =
 * (float) s * (num / den), render_disparity's running sums over the windows. */
RENDER_HD nn_real render_cuda_source_disparity(const render_cuda_plan *p, const nn_real *dnet, int y, int x) {
    const size_t net_plane = (size_t)p->net_h * p->net_w;
    nn_real num = 0, den = 0;
    for (int i = 0; i < p->n; i++) {
        const render_window *r = &p->win[i];
        if (y < r->y0 || y >= r->y0 + r->h || x < r->x0 || x >= r->x0 + r->w) continue;
        const int ty = y - r->y0, tx = x - r->x0;
        const nn_real g = (nn_real)render_cuda_ramp(ty, r->h, r->ramp_top, r->ramp_bottom) *
                          (nn_real)render_cuda_ramp(tx, r->w, r->ramp_left, r->ramp_right);
        num = num + g * warp_resampled(&p->out_y, &p->out_x, dnet + (size_t)i * net_plane, p->net_w, ty, tx);
        den = den + g;
    }
    return (nn_real)p->scale * (num / den);
}

#endif
