/* Warp rendering, the per-pixel and per-row steps: one disparity per pixel instead of
 * the selection layer's blend of D shifted copies, so every edge of the left view
 * appears once in the right view. These functions are the whole arithmetic of the warp
 * path; infer/render.c runs them over rows with OpenMP and infer/render.cu runs the
 * same definitions in CUDA threads (render_hd.h says why the results agree bit for bit).
 *
 * Conventions (DEEP3D.md): disparity d in pixels, R(x) = L(x - d): a point at column u
 * of the left view appears at column u + d of the right view; the most negative d is
 * the nearest. Arrays are rows of nn_real, images 0..255.
 *
 * The steps of one frame (render.h, render_image with RENDER_WARP, gives the order):
 *   1. warp_disparity_of: a pixel's probabilities -> one disparity (network pixels);
 *   2. (windows blended at the source resolution: render.c / render.cu)
 *      -> d_R, a disparity per pixel of the RIGHT view (the selection layer's grid);
 *   3. warp_invert_row with dir = +1 on -d_R: d_L, the disparity of the point each
 *      LEFT-view pixel shows (the grid of the image a viewer sees, and of depth maps);
 *   4. the guided filter (warp_box_line, warp_guided_ab, warp_guided_out; He, Sun and
 *      Tang, "Guided Image Filtering", TPAMI 2013, Algorithm 1) of d_L with the grey
 *      left view as the guide, its coefficients on a grid of about the network's
 *      resolution (warp_guided_down, warp_upsample: the fast guided filter of He and
 *      Sun 2015): depth edges move onto image edges, the network's block pattern is
 *      smoothed away; then edge snapping (warp_snap_pixel) makes the depth
 *      edges that the image shows steps instead of ramps;
 *   5. comfort controls: d' = strength * d_L - q, q = strength * the convergence
 *      quantile of d_L (warp_hist_bin, a 4096-bin histogram over the model's range);
 *   6. warp_invert_row with dir = -1 on d': for every right-view pixel, the left-view
 *      column it shows, occlusions resolved by depth and disocclusions filled from the
 *      background side; warp_sample reads the left view there (cubic along x).
 */
#ifndef INFER_WARP_H
#define INFER_WARP_H

#include <float.h>
#include <math.h>
#include <stddef.h>

#include "../nn/real.h"
#include "render_hd.h"

/* Separable resampling along one axis (render.c's axis filter, same formula): output
 * pixel i reads input pixels first[i] .. first[i] + count[i] - 1 with weights
 * w[i * max_taps + j] (normalised to sum 1): a tent of half-width max(1, n_in / n_out)
 * input pixels around (i + 0.5) * n_in / n_out (pixel-area convention). */
typedef struct {
    int n_in, n_out, max_taps;
    int *first;   /* (n_out) */
    int *count;   /* (n_out) */
    nn_real *w;   /* (n_out, max_taps) */
} render_axis_table;

/* Fills f->first, f->count and f->w for f->n_in -> f->n_out (max_taps already set and
 * the arrays allocated); tw is scratch of max_taps doubles. Defined in render.c: the CPU
 * and the GPU paths resample with the same table. */
#ifdef __cplusplus
extern "C"
#endif
void render_axis_table_fill(render_axis_table *f, double *tw);

/* The value of a (h, w) plane (row stride w) resampled with the tables fy (h -> H') and
 * fx (w -> W') at pixel (ty, tx) of the H' x W' result: for each horizontal tap the
 * vertical taps summed first, then the horizontal ones, in tap order. */
RENDER_HD nn_real warp_resampled(const render_axis_table *fy, const render_axis_table *fx, const nn_real *plane, int w,
                                 int ty, int tx) {
    const nn_real *wy = fy->w + (size_t)ty * fy->max_taps, *wx = fx->w + (size_t)tx * fx->max_taps;
    const nn_real *src = plane + (size_t)fy->first[ty] * w + fx->first[tx];
    const int cy = fy->count[ty], cx = fx->count[tx];
    nn_real acc = 0;
    for (int jx = 0; jx < cx; jx++) {
        nn_real v = 0;
        for (int jy = 0; jy < cy; jy++) v = v + wy[jy] * src[(size_t)jy * w + jx];
        acc = acc + wx[jx] * v;
    }
    return acc;
}

/* How one disparity is taken from a pixel's probabilities p_k over d_k = dmin + k. */
enum {
    WARP_DISP_MEAN = 0, /* E[d] = sum_k p_k d_k / sum_k p_k (the selection layer's mean shift) */
    WARP_DISP_MODE = 1, /* E[d] within the dominant mode: from the argmax, the levels reached
                           while p does not increase on either side, renormalised there
                           (a second, smaller mode does not pull the value between the two) */
    WARP_DISP_MEDIAN = 2 /* the median of the distribution, linear between levels: the d
                            where the cumulative probability reaches half, reading level k
                            as the interval [d_k - 1/2, d_k + 1/2] (minimises E|d - d*|) */
};

/* Interpolation of the left view along x at a fractional column. */
enum {
    WARP_INTERP_LINEAR = 0,   /* 2 taps */
    WARP_INTERP_CUBIC = 1,    /* Keys cubic convolution, a = -0.5 (Keys 1981; Catmull-Rom), 4 taps */
    WARP_INTERP_LANCZOS3 = 2  /* windowed sinc, sinc(t) sinc(t/3), 6 taps, normalised */
};

/* Bins of the histogram behind the convergence quantile. */
#define WARP_HIST_BINS 4096

/* Step 1. p: D probabilities `stride` apart; returns the disparity in network pixels
 * (kind WARP_DISP_MEAN or WARP_DISP_MODE), or NAN when the probabilities taken do not
 * sum to a positive finite number (the caller reports the pixel). Sums in double. */
RENDER_HD nn_real warp_disparity_of(const nn_real *p, size_t stride, int D, int dmin, int kind) {
    int lo = 0, hi = D - 1;
    if (kind == WARP_DISP_MODE) {
        int best = 0;
        for (int k = 1; k < D; k++)
            if (p[(size_t)k * stride] > p[(size_t)best * stride]) best = k;
        lo = hi = best;
        while (lo > 0 && p[(size_t)(lo - 1) * stride] <= p[(size_t)lo * stride]) lo--;
        while (hi < D - 1 && p[(size_t)(hi + 1) * stride] <= p[(size_t)hi * stride]) hi++;
    }
    if (kind == WARP_DISP_MEDIAN) {
        double total = 0, run = 0;
        for (int k = 0; k < D; k++) total = total + (double)p[(size_t)k * stride];
        if (!(total > 0) || !(total <= DBL_MAX)) return (nn_real)NAN;
        for (int k = 0; k < D; k++) {
            const double v = (double)p[(size_t)k * stride];
            if (run + v >= 0.5 * total && v > 0) return (nn_real)((double)(dmin + k) - 0.5 + (0.5 * total - run) / v);
            run = run + v;
        }
        return (nn_real)(dmin + D - 1);
    }
    double sum = 0, e = 0;
    for (int k = lo; k <= hi; k++) {
        double v = (double)p[(size_t)k * stride];
        sum = sum + v;
        e = e + v * (double)(dmin + k);
    }
    if (!(sum > 0) || !(sum <= DBL_MAX)) return (nn_real)NAN;
    return (nn_real)(e / sum);
}

/* Steps 3 and 6: inverts one row of a forward map. Source sample i (0..n-1) lands at
 * t_i = i + shift[i] of the destination row; between samples the map is linear. For
 * every destination pixel j it finds the source position it shows:
 *  - each segment [t_i, t_i+1] with 0 < t_i+1 - t_i <= 1 + gap covers the pixels j in
 *    it: source position i + a, a = (j - t_i) / (t_i+1 - t_i), shift interpolated alike;
 *  - a segment that folds (t_i+1 <= t_i) is hidden by its neighbours (an occlusion);
 *    one stretched wider than 1 + gap pixels spans a depth edge and covers nothing;
 *  - where segments overlap, the nearest wins: the largest dir * shift (dir = -1 for
 *    Deep3D disparities, where negative is near; +1 for their negation); ties keep
 *    the lower i;
 *  - pixels no segment covers (disocclusions: the destination view sees what the source
 *    view hid, or beyond its border) take, run by run, the shift of the FARTHER of the
 *    run's two neighbours (the background), and a source position mirrored from that
 *    neighbour into the background: src[j] = src[nb] + |nb - j| on the background's
 *    side. The background's texture continues into the hole; the foreground is not
 *    stretched over it. A run at a border of the row (the destination sees beyond the
 *    source's edge) takes its only neighbour's shift and continues its source position
 *    towards the border: src[j] = src[nb] +- |nb - j|, so past the source's edge the
 *    edge column repeats (as the selection layer's clamping does). Source positions are
 *    clamped to [0, n-1]. A row that nothing covers keeps src = j, shift 0.
 * Outputs (n each): src (may be NULL), out_shift, and key (scratch, overwritten).
 * With shift = 0 everywhere, src[j] = j exactly. */
RENDER_HD void warp_invert_row(nn_real *src, nn_real *out_shift, nn_real *key, const nn_real *shift, int n,
                               nn_real dir, nn_real gap) {
    for (int j = 0; j < n; j++) key[j] = -INFINITY, out_shift[j] = 0;
    for (int i = 0; i + 1 < n; i++) {
        const nn_real s0 = shift[i], s1 = shift[i + 1];
        const nn_real t0 = (nn_real)i + s0, t1 = (nn_real)(i + 1) + s1, len = t1 - t0;
        if (!(len > 0) || len > 1 + gap) continue;
        int jlo = (int)ceilf(t0), jhi = (int)floorf(t1);
        if (t1 < 0 || t0 > (nn_real)(n - 1)) continue;
        jlo = jlo < 0 ? 0 : jlo;
        jhi = jhi > n - 1 ? n - 1 : jhi;
        for (int j = jlo; j <= jhi; j++) {
            const nn_real a = ((nn_real)j - t0) / len, sh = s0 + a * (s1 - s0), k = dir * sh;
            if (k > key[j]) {
                key[j] = k, out_shift[j] = sh;
                if (src) src[j] = (nn_real)i + a;
            }
        }
    }
    if (n == 1) key[0] = 0, out_shift[0] = shift[0] * 0, src ? src[0] = 0 : 0;
    for (int j = 0; j < n;) {
        if (key[j] != -INFINITY) {
            j++;
            continue;
        }
        const int j0 = j;
        while (j < n && key[j] == -INFINITY) j++;
        const int l = j0 - 1, r = j; /* neighbours; valid when 0 <= l, r < n */
        int nb;
        if (l >= 0 && r < n) nb = key[l] <= key[r] ? l : r; /* the farther: smaller dir * shift */
        else nb = l >= 0 ? l : r < n ? r : -1;
        for (int q = j0; q < j; q++) {
            if (nb < 0) {
                out_shift[q] = 0;
                if (src) src[q] = (nn_real)q;
                continue;
            }
            out_shift[q] = out_shift[nb];
            if (src) {
                /* between two neighbours: mirrored into the background; at a border:
                 * continued towards the border (then clamped: the edge column repeats) */
                const nn_real step = (nn_real)(nb > q ? nb - q : q - nb);
                const int mirror = l >= 0 && r < n;
                nn_real u = (nb > q) == mirror ? src[nb] + step : src[nb] - step;
                src[q] = u < 0 ? 0 : u > (nn_real)(n - 1) ? (nn_real)(n - 1) : u;
            }
        }
        /* the run is filled: mark it so a later run does not take it as a neighbour's key */
        for (int q = j0; q < j; q++) key[q] = nb < 0 ? 0 : key[nb];
    }
}

/* Step 3 on one row: dl (n), the row's d_L, from dr (n), its d_R: shift = -d_R,
 * warp_invert_row with dir = +1, d_L = minus the inverted shift. shift and key are
 * scratch (n each); shift may be dr itself (dr is then overwritten). */
RENDER_HD void warp_left_grid_row(nn_real *dl, nn_real *shift, nn_real *key, const nn_real *dr, int n, nn_real gap) {
    for (int x = 0; x < n; x++) shift[x] = -dr[x];
    warp_invert_row(NULL, dl, key, shift, n, 1, gap);
    for (int x = 0; x < n; x++) dl[x] = -dl[x];
}

/* Step 6's sampling, in two parts so that the 3 channels of a pixel share one set of
 * weights: warp_taps_at computes the taps at the fractional column u of a row of n
 * values (indices clamped to the row), warp_taps_apply reads a row with them (result
 * clamped to 0..255: cubic and Lanczos overshoot at edges). At an integer u every kind
 * returns row[u] exactly. */
typedef struct {
    int idx[6];   /* clamped column of each tap */
    nn_real w[6]; /* its weight */
    nn_real t;    /* u - floor(u): 0 reads idx[0] alone */
    nn_real wsum; /* Lanczos: the weights' sum, divided out */
} warp_taps;

RENDER_HD void warp_taps_at(warp_taps *tp, int n, nn_real u, int interp) {
    const nn_real f0 = floorf(u), t = u - f0;
    const int i = (int)f0;
#define WARP_CLAMP(k) ((k) < 0 ? 0 : (k) > n - 1 ? n - 1 : (k))
    tp->t = t;
    if (t == 0) {
        tp->idx[0] = WARP_CLAMP(i);
        return;
    }
    if (interp == WARP_INTERP_LINEAR) {
        tp->idx[0] = WARP_CLAMP(i), tp->idx[1] = WARP_CLAMP(i + 1);
    } else if (interp == WARP_INTERP_CUBIC) {
        const nn_real t2 = t * t, t3 = t2 * t;
        tp->w[0] = -0.5f * t3 + t2 - 0.5f * t, tp->w[1] = 1.5f * t3 - 2.5f * t2 + 1.0f;
        tp->w[2] = -1.5f * t3 + 2.0f * t2 + 0.5f * t, tp->w[3] = 0.5f * t3 - 0.5f * t2;
        for (int k = 0; k < 4; k++) tp->idx[k] = WARP_CLAMP(i - 1 + k);
    } else {
        nn_real wsum = 0;
        for (int k = -2; k <= 3; k++) {
            const double x = (double)k - (double)t, px = 3.14159265358979323846 * x;
            const nn_real w = (nn_real)(3.0 * sin(px) * sin(px / 3.0) / (px * px));
            tp->w[k + 2] = w, tp->idx[k + 2] = WARP_CLAMP(i + k);
            wsum += w;
        }
        tp->wsum = wsum;
    }
#undef WARP_CLAMP
}

RENDER_HD nn_real warp_taps_apply(const nn_real *row, const warp_taps *tp, int interp) {
    const int *j = tp->idx;
    if (tp->t == 0) return row[j[0]];
    nn_real v;
    if (interp == WARP_INTERP_LINEAR) {
        v = row[j[0]] + tp->t * (row[j[1]] - row[j[0]]);
    } else if (interp == WARP_INTERP_CUBIC) {
        v = tp->w[0] * row[j[0]] + tp->w[1] * row[j[1]] + tp->w[2] * row[j[2]] + tp->w[3] * row[j[3]];
    } else {
        nn_real acc = 0;
        for (int k = 0; k < 6; k++) acc += tp->w[k] * row[j[k]];
        v = acc / tp->wsum;
    }
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* One sample: warp_taps_at, then warp_taps_apply. */
RENDER_HD nn_real warp_sample(const nn_real *row, int n, nn_real u, int interp) {
    warp_taps tp;
    warp_taps_at(&tp, n, u, interp);
    return warp_taps_apply(row, &tp, interp);
}

/* Steps 5-6 on one row: the row of the right view from the left view's row and its
 * disparity d (n): shift = strength * d - q, warp_invert_row with dir = -1, then
 * warp_sample (interp) of the 3 channels. right and left point at channel 0 of the row,
 * the channels `plane` values apart; shift, src, out and key are scratch (n each). */
RENDER_HD void warp_render_row(nn_real *right, const nn_real *left, size_t plane, const nn_real *d, nn_real *shift,
                               nn_real *src, nn_real *out, nn_real *key, int n, nn_real strength, nn_real q,
                               nn_real gap, int interp) {
    for (int x = 0; x < n; x++) shift[x] = strength * d[x] - q;
    warp_invert_row(src, out, key, shift, n, -1, gap);
    for (int x = 0; x < n; x++) {
        warp_taps tp;
        warp_taps_at(&tp, n, src[x], interp);
        for (int c = 0; c < 3; c++) right[c * plane + x] = warp_taps_apply(left + c * plane, &tp, interp);
    }
}

/* Step 4's box filter along one line: out[i * so] = the mean of in[j * si] over
 * |j - i| <= r, j in [0, n-1] (the window clipped at the ends, divided by the number of
 * values inside). A running sum in double, in index order. */
RENDER_HD void warp_box_line(nn_real *out, size_t so, const nn_real *in, size_t si, int n, int r) {
    double s = 0;
    for (int j = 0; j <= r && j < n; j++) s = s + (double)in[(size_t)j * si];
    for (int i = 0; i < n; i++) {
        const int lo = i - r < 0 ? 0 : i - r, hi = i + r > n - 1 ? n - 1 : i + r;
        out[(size_t)i * so] = (nn_real)(s / (double)(hi - lo + 1));
        if (i + r + 1 < n) s = s + (double)in[(size_t)(i + r + 1) * si];
        if (i - r >= 0) s = s - (double)in[(size_t)(i - r) * si];
    }
}

/* Step 4's coefficients (He et al. 2013, eq. 5-6) from the box means of the guide I, the
 * input p, I*I and I*p: a = cov(I, p) / (var(I) + eps), b = mean(p) - a mean(I). */
RENDER_HD void warp_guided_ab(nn_real *a, nn_real *b, nn_real mean_i, nn_real mean_p, nn_real mean_ii,
                              nn_real mean_ip, nn_real eps) {
    const nn_real var = mean_ii - mean_i * mean_i, cov = mean_ip - mean_i * mean_p;
    const nn_real va = cov / ((var > 0 ? var : 0) + eps);
    *a = va;
    *b = mean_p - va * mean_i;
}

/* Step 4's output (eq. 8): q = mean(a) I + mean(b). */
RENDER_HD nn_real warp_guided_out(nn_real mean_a, nn_real mean_b, nn_real guide) { return mean_a * guide + mean_b; }

/* The guide: BT.601 luma of an RGB pixel, scaled to 0..1. */
RENDER_HD nn_real warp_grey(nn_real r, nn_real g, nn_real b) {
    return (0.299f * r + 0.587f * g + 0.114f * b) * (1.0f / 255.0f);
}

/* Step 4 at a reduced resolution, the fast guided filter (He and Sun, "Fast Guided
 * Filter", arXiv:1505.00996, 2015, Algorithm 2): the coefficients a, b are computed on
 * a grid k times coarser and the output q = mean(a) I + mean(b) uses the full-resolution
 * guide I, so the depth edges still follow the image's edges pixel for pixel. The
 * disparity being refined comes from the network's grid, s >= k source pixels per
 * network pixel, so the coarse grid loses nothing of it. k = 1 is the plain filter.
 *
 * warp_guided_down: the mean of the grey guide (warp_grey of left (3, H, W) 0..255,
 * channels `plane` apart) and of p (H, W) over the k x k block of coarse pixel (ys, xs)
 * (blocks at the bottom and right edges clipped to the frame). */
RENDER_HD void warp_guided_down(nn_real *mean_i, nn_real *mean_p, const nn_real *left, const nn_real *p, size_t plane,
                                int H, int W, int k, int ys, int xs) {
    const int y0 = ys * k, x0 = xs * k, y1 = y0 + k < H ? y0 + k : H, x1 = x0 + k < W ? x0 + k : W;
    nn_real si = 0, sp = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const size_t i = (size_t)y * W + x;
            si += warp_grey(left[i], left[plane + i], left[2 * plane + i]), sp += p[i];
        }
    const nn_real n = (nn_real)((y1 - y0) * (x1 - x0));
    *mean_i = si / n, *mean_p = sp / n;
}

/* The bilinear upsampling of the fast guided filter, along one axis: full-resolution
 * index i reads coarse indices *i0, *i1 (of n) with weight *t on *i1; coarse pixel j is
 * the block of k pixels centred on j k + (k - 1) / 2; clamped at the ends. k = 1 gives
 * i0 = i1 = i, t = 0. */
RENDER_HD void warp_upsample_axis(int i, int n, int k, int *i0, int *i1, nn_real *t) {
    nn_real f = ((nn_real)i + 0.5f) * (1.0f / (nn_real)k) - 0.5f;
    f = f < 0 ? 0 : f > (nn_real)(n - 1) ? (nn_real)(n - 1) : f;
    *i0 = (int)f, *i1 = *i0 + 1 < n ? *i0 + 1 : *i0, *t = f - (nn_real)*i0;
}

/* Linear interpolation from a (t = 0) to b (t = 1). */
RENDER_HD nn_real warp_lerp(nn_real a, nn_real b, nn_real t) { return a * (1 - t) + b * t; }

/* The value at full-resolution pixel (y, x) of a coarse (h, w) plane, bilinear
 * (warp_upsample_axis along y, then x: first the two columns interpolated along y,
 * then along x). k = 1 returns a[y w + x] exactly. */
RENDER_HD nn_real warp_upsample(const nn_real *a, int h, int w, int k, int y, int x) {
    int y0, y1, x0, x1;
    nn_real ty, tx;
    warp_upsample_axis(y, h, k, &y0, &y1, &ty);
    warp_upsample_axis(x, w, k, &x0, &x1, &tx);
    return warp_lerp(warp_lerp(a[(size_t)y0 * w + x0], a[(size_t)y1 * w + x0], ty),
                     warp_lerp(a[(size_t)y0 * w + x1], a[(size_t)y1 * w + x1], ty), tx);
}

/* The fast guided filter's box radius on the coarse grid: max(1, round(r / k)) for a
 * radius of r source pixels. */
RENDER_HD int warp_guided_coarse_radius(int r, int k) {
    const int rs = (int)lround((double)r / k);
    return rs < 1 ? 1 : rs;
}

/* The fast guided filter's coarse grid factor at s source pixels per network pixel and a
 * box radius of r source pixels: floor(s), at least 1 and at most r. */
RENDER_HD int warp_guided_subsample(double s, int r) {
    int k = s >= 1 ? (int)s : 1;
    return k > r ? (r > 1 ? r : 1) : k;
}

/* The second half of warp_snap_pixel (below): given lo and hi, the least and greatest d
 * in the pixel's window (the CPU's render_snap_edges finds them separably, by rows then
 * columns). */
RENDER_HD nn_real warp_snap_decide(const nn_real *d, const nn_real *img, int H, int W, int y, int x, int rho,
                                   nn_real tau, nn_real kappa, nn_real lo, nn_real hi) {
    const nn_real own = d[(size_t)y * W + x];
    if (!(hi - lo > tau)) return own;
    const size_t plane = (size_t)H * W;
    const int y0 = y - rho < 0 ? 0 : y - rho, y1 = y + rho > H - 1 ? H - 1 : y + rho;
    const int x0 = x - rho < 0 ? 0 : x - rho, x1 = x + rho > W - 1 ? W - 1 : x + rho;
    const nn_real mid = 0.5f * (lo + hi);
    nn_real ca[3] = {0, 0, 0}, cb[3] = {0, 0, 0}, na = 0, nb = 0;
    for (int v = y0; v <= y1; v++)
        for (int u = x0; u <= x1; u++) {
            const size_t i = (size_t)v * W + u;
            nn_real *c = d[i] <= mid ? ca : cb;
            for (int k = 0; k < 3; k++) c[k] += img[k * plane + i];
            if (d[i] <= mid) na += 1;
            else nb += 1;
        }
    nn_real sep = 0, da = 0, db = 0;
    for (int k = 0; k < 3; k++) {
        const nn_real ma = ca[k] / na, mb = cb[k] / nb, p = img[k * plane + (size_t)y * W + x];
        sep += fabsf(ma - mb), da += fabsf(p - ma), db += fabsf(p - mb);
    }
    if (!(sep > 3 * kappa)) return own;
    return da <= db ? lo : hi;
}

/* Step 4b, edge snapping: the disparity at pixel (y, x) of d (H, W) after the guided
 * filter, with its depth edges made steps where the image has an edge. The filter
 * leaves a ramp a few pixels wide across every depth edge (the network's output is
 * soft there), and a warp by a ramp stretches the pixels on it into a rubber band
 * between the two depths. In the (2 rho + 1)^2 window around the pixel: when the
 * disparities span more than tau pixels, split them at the middle of their range into a
 * low and a high group; when the groups' mean colours (img (3, H, W) 0..255) differ by
 * more than kappa (mean absolute difference over the channels), the pixel takes the
 * extreme disparity (min or max) of the group whose mean colour is closer to its own.
 * Elsewhere (no depth edge, or a depth edge the image does not show, such as the
 * network's block pattern) the value is kept. Source: our own; it is a guided form of
 * the min-max "toggle" filter (Kramer and Bruckner 1975) applied to depth maps. */
RENDER_HD nn_real warp_snap_pixel(const nn_real *d, const nn_real *img, int H, int W, int y, int x, int rho,
                                  nn_real tau, nn_real kappa) {
    const int y0 = y - rho < 0 ? 0 : y - rho, y1 = y + rho > H - 1 ? H - 1 : y + rho;
    const int x0 = x - rho < 0 ? 0 : x - rho, x1 = x + rho > W - 1 ? W - 1 : x + rho;
    nn_real lo = INFINITY, hi = -INFINITY;
    for (int v = y0; v <= y1; v++)
        for (int u = x0; u <= x1; u++) {
            const nn_real t = d[(size_t)v * W + u];
            lo = t < lo ? t : lo, hi = t > hi ? t : hi;
        }
    return warp_snap_decide(d, img, H, W, y, x, rho, tau, kappa, lo, hi);
}

/* Step 5: the histogram bin of a disparity v in [lo, hi] (values outside go to the end
 * bins; lo < hi). */
RENDER_HD int warp_hist_bin(nn_real v, nn_real lo, nn_real hi) {
    const nn_real f = (v - lo) / (hi - lo) * (nn_real)WARP_HIST_BINS;
    return !(f > 0) ? 0 : f >= (nn_real)(WARP_HIST_BINS - 1) ? WARP_HIST_BINS - 1 : (int)f;
}

/* Step 5: the q-quantile (0..1) of the values counted in hist (WARP_HIST_BINS bins over
 * [lo, hi]): the centre of the first bin where the running count reaches q * total
 * (at least one value). Exact to half a bin: (hi - lo) / 8192. */
RENDER_HD nn_real warp_hist_quantile(const unsigned int *hist, nn_real lo, nn_real hi, double q) {
    double total = 0;
    for (int b = 0; b < WARP_HIST_BINS; b++) total += hist[b];
    double want = q * total, run = 0;
    if (want < 1) want = 1;
    int b = 0;
    for (; b < WARP_HIST_BINS - 1; b++) {
        run += hist[b];
        if (run >= want) break;
    }
    return lo + ((nn_real)b + 0.5f) * ((hi - lo) / (nn_real)WARP_HIST_BINS);
}

/* Step 5: the histogram's range for a map at scale s (source pixels per network pixel):
 * [lo, hi] = [s dmin, s (dmin + D - 1)], the model's disparities. */
RENDER_HD void warp_hist_range(nn_real *lo, nn_real *hi, double scale, int dmin, int D) {
    *lo = (nn_real)(scale * dmin), *hi = (nn_real)(scale * (dmin + D - 1));
}

/* Step 5: the convergence offset q = strength * the `convergence` quantile (0..1) of the
 * values counted in hist (warp_hist_bin on [lo, hi]); 0 when convergence < 0, and
 * strength * lo when the range is empty (hi <= lo, D = 1). hist is read only in the
 * first case. */
RENDER_HD double warp_convergence_offset(const unsigned int *hist, nn_real lo, nn_real hi, double strength,
                                         double convergence) {
    if (!(convergence >= 0)) return 0;
    if (!(hi > lo)) return strength * lo;
    return strength * (double)warp_hist_quantile(hist, lo, hi, convergence);
}

#endif
