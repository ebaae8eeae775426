/* Inference rendering: see render.h for the formulas, layouts and conventions. */
#include "render.h"
#include "render_cuda.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/status.h"

/* ---------------------------------------------------------------- resampling */

/* Separable resampling along one axis: output i reads input first[i] .. first[i] +
 * count[i] - 1 with weights w[i * max_taps + j] (normalised to sum 1). Tent filter of
 * half-width max(1, n_in / n_out) input pixels around the centre (i + 0.5) * n_in /
 * n_out (pixel-area convention; PIL's BILINEAR filter). */
typedef render_axis_table axis_filter;

void render_axis_table_fill(render_axis_table *f, double *tw) {
    const int n_in = f->n_in, n_out = f->n_out;
    const double scale = (double)n_in / n_out, support = scale > 1 ? scale : 1.0;
    for (int i = 0; i < n_out; i++) {
        double centre = (i + 0.5) * scale;
        int lo = (int)floor(centre - support - 0.5), hi = (int)ceil(centre + support - 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in - 1) hi = n_in - 1;
        int first = -1, count = 0;
        double total = 0;
        for (int j = lo; j <= hi; j++) {
            double t = 1.0 - fabs((j + 0.5 - centre) / support);
            if (t <= 0) {
                if (first >= 0) break;
                continue;
            }
            if (first < 0) first = j;
            tw[count++] = t, total += t;
        }
        /* the nearest input pixel is within 0.5 of the centre, so total >= 0.5 */
        f->first[i] = first, f->count[i] = count;
        for (int j = 0; j < count; j++) f->w[(size_t)i * f->max_taps + j] = (nn_real)(tw[j] / total);
    }
}

static void axis_filter_free(axis_filter *f) {
    free(f->first), free(f->count), free(f->w);
    memset(f, 0, sizeof *f);
}

static int axis_filter_init(axis_filter *f, int n_in, int n_out) {
    memset(f, 0, sizeof *f);
    double scale = (double)n_in / n_out, support = scale > 1 ? scale : 1.0;
    f->n_in = n_in, f->n_out = n_out, f->max_taps = (int)ceil(2 * support) + 3;
    f->first = malloc((size_t)n_out * sizeof *f->first);
    f->count = malloc((size_t)n_out * sizeof *f->count);
    f->w = malloc((size_t)n_out * (size_t)f->max_taps * sizeof *f->w);
    double *tw = malloc((size_t)f->max_taps * sizeof *tw);
    if (!f->first || !f->count || !f->w || !tw) {
        free(tw), axis_filter_free(f);
        return nn_fail("render: out of memory for a %d -> %d resampling table", n_in, n_out);
    }
    render_axis_table_fill(f, tw);
    free(tw);
    return 0;
}

/* out (C, fy.n_out, fx.n_out) from a (C, fy.n_in, fx.n_in) region of `in` whose planes
 * are plane_stride apart and rows row_stride apart. Vertical pass into a per-thread
 * row, then horizontal. */
static int resample(nn_real *out, const nn_real *in, size_t plane_stride, size_t row_stride, int C,
                    const axis_filter *fy, const axis_filter *fx) {
    int H2 = fy->n_out, W = fx->n_in, W2 = fx->n_out, nt = omp_get_max_threads();
    nn_real *rows = malloc((size_t)nt * (size_t)W * sizeof *rows);
    if (!rows) return nn_fail("render: out of memory resampling %d planes to %d x %d", C, H2, W2);
#pragma omp parallel for collapse(2) schedule(static)
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H2; y++) {
            nn_real *t = rows + (size_t)omp_get_thread_num() * W;
            const nn_real *wy = fy->w + (size_t)y * fy->max_taps;
            const nn_real *src = in + (size_t)c * plane_stride + (size_t)fy->first[y] * row_stride;
            for (int x = 0; x < W; x++) t[x] = wy[0] * src[x];
            for (int j = 1; j < fy->count[y]; j++)
                for (int x = 0; x < W; x++) t[x] += wy[j] * src[(size_t)j * row_stride + x];
            nn_real *o = out + ((size_t)c * H2 + y) * W2;
            for (int x = 0; x < W2; x++) {
                const nn_real *wx = fx->w + (size_t)x * fx->max_taps, *tt = t + fx->first[x];
                nn_real acc = 0;
                for (int j = 0; j < fx->count[x]; j++) acc += wx[j] * tt[j];
                o[x] = acc;
            }
        }
    free(rows);
    return 0;
}

int render_resize(nn_real *out, const nn_real *in, int C, int H, int W, int H2, int W2) {
    if (!out || !in) return nn_fail("render_resize: NULL array");
    if (C < 1 || H < 1 || W < 1 || H2 < 1 || W2 < 1)
        return nn_fail("render_resize: bad sizes (%d, %d, %d) -> (%d, %d)", C, H, W, H2, W2);
    axis_filter fy, fx;
    if (axis_filter_init(&fy, H, H2)) return -1;
    if (axis_filter_init(&fx, W, W2)) return axis_filter_free(&fy), -1;
    int rc = resample(out, in, (size_t)H * W, (size_t)W, C, &fy, &fx);
    axis_filter_free(&fy), axis_filter_free(&fx);
    return rc;
}

int render_upsample_prob(nn_real *prob_src, const nn_real *prob, int D, int h, int w, int H, int W) {
    if (!prob_src || !prob) return nn_fail("render_upsample_prob: NULL array");
    if (D < 1 || h < 1 || w < 1 || H < 1 || W < 1)
        return nn_fail("render_upsample_prob: bad sizes D %d, %d x %d -> %d x %d", D, h, w, H, W);
    if (render_resize(prob_src, prob, D, h, w, H, W)) return nn_fail_context("render_upsample_prob");
    size_t plane = (size_t)H * W;
    long bad = -1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < plane; i++) {
        nn_real sum = 0;
        for (int k = 0; k < D; k++) sum += prob_src[k * plane + i];
        if (!(sum > 0) || !isfinite(sum)) {
#pragma omp critical(render_bad)
            if (bad < 0 || (long)i < bad) bad = (long)i;
            continue;
        }
        for (int k = 0; k < D; k++) prob_src[k * plane + i] /= sum;
    }
    if (bad >= 0)
        return nn_fail("render_upsample_prob: probabilities at (y %ld, x %ld) do not sum to a positive "
                       "finite number", bad / W, bad % W);
    return 0;
}

/* ---------------------------------------------------------------- rendering */

/* The source column read for shift k at output column x is u = x + off[k] + frac[k]
 * (off = floor(-ss d_k + q), 0 <= frac < 1), before clamping to 0..W-1: ss = s, q = 0
 * for the selection layer itself; ss = strength * s and q the convergence offset for
 * the comfort controls. */
typedef struct {
    int *off;
    nn_real *frac;
} shift_table;

static int shift_table_init(shift_table *t, int D, int dmin, double ss, double q) {
    t->off = malloc((size_t)D * sizeof *t->off);
    t->frac = malloc((size_t)D * sizeof *t->frac);
    if (!t->off || !t->frac) return free(t->off), free(t->frac), -1;
    for (int k = 0; k < D; k++) render_cuda_shift_entry(&t->off[k], &t->frac[k], ss, dmin + k, q);
    return 0;
}

static void shift_table_free(shift_table *t) { free(t->off), free(t->frac); }

/* One output pixel (y, x): p (D values, stride pstride) -> right(:, y, x), disparity. */
static inline void render_pixel(nn_real *right, nn_real *disparity, const nn_real *left, int H, int W,
                                int y, int x, const nn_real *p, size_t pstride, int D, int dmin,
                                const shift_table *st, double s) {
    size_t plane = (size_t)H * W, row = (size_t)y * W;
    const nn_real *l0 = left + row, *l1 = l0 + plane, *l2 = l1 + plane;
    nn_real r0 = 0, r1 = 0, r2 = 0, e = 0;
    for (int k = 0; k < D; k++) {
        nn_real pk = p[k * pstride];
        int i0 = x + st->off[k];
        if (i0 < 0) { /* u < 0: the first column */
            r0 += pk * l0[0], r1 += pk * l1[0], r2 += pk * l2[0];
        } else if (i0 >= W - 1) { /* u >= W - 1: the last column */
            r0 += pk * l0[W - 1], r1 += pk * l1[W - 1], r2 += pk * l2[W - 1];
        } else {
            nn_real f = st->frac[k];
            r0 += pk * (l0[i0] + f * (l0[i0 + 1] - l0[i0]));
            r1 += pk * (l1[i0] + f * (l1[i0 + 1] - l1[i0]));
            r2 += pk * (l2[i0] + f * (l2[i0 + 1] - l2[i0]));
        }
        e += pk * (nn_real)(dmin + k);
    }
    right[row + x] = r0, right[plane + row + x] = r1, right[2 * plane + row + x] = r2;
    if (disparity) disparity[row + x] = (nn_real)(s * e);
}

int render_right_view(nn_real *right, nn_real *disparity, const nn_real *left, const nn_real *prob_src,
                      int D, int dmin, double s, int H, int W) {
    if (!right || !left || !prob_src) return nn_fail("render_right_view: NULL array");
    if (D < 1 || H < 1 || W < 1) return nn_fail("render_right_view: bad sizes D %d, %d x %d", D, H, W);
    if (!(s > 0) || !isfinite(s)) return nn_fail("render_right_view: shift scale %g is not positive", s);
    shift_table st;
    if (shift_table_init(&st, D, dmin, s, 0)) return nn_fail("render_right_view: out of memory");
    size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            render_pixel(right, disparity, left, H, W, y, x, prob_src + (size_t)y * W + x, plane, D, dmin,
                         &st, s);
    shift_table_free(&st);
    return 0;
}

/* A window's network probabilities placed on the source frame. */
typedef struct {
    render_window r;
    const nn_real *prob;          /* (D, h, w) */
    const axis_filter *fx, *fy;   /* w -> r.w, h -> r.h */
} placed_window;

static inline double ramp(int t, int n, int a, int b) {
    double v = 1;
    if (a > 0 && (t + 0.5) / a < v) v = (t + 0.5) / a;
    if (b > 0 && (n - t - 0.5) / b < v) v = (n - t - 0.5) / b;
    return v;
}

/* Row by row over the region [x_lo, x_hi) x [y_lo, y_hi): resample each of the n windows
 * pw (window indices first .. first + n - 1) covering the row, renormalise it, blend with
 * the window weights, renormalise over D, render with the shifts of
 * shift_table_init(ss, q) (disparity: E[d] times s). The windows given must be every
 * window covering the region, in index order. `what` names the caller in messages. */
static int blend_render(nn_real *right, nn_real *disparity, const nn_real *left, int H, int W,
                        const placed_window *pw, int n, int first, int D, int dmin, int h, int w, double s,
                        double ss, double q, int x_lo, int x_hi, int y_lo, int y_hi, const char *what) {
    int nt = omp_get_max_threads();
    size_t per = (size_t)w * D + (size_t)D + (size_t)W * D;
    nn_real *scratch = malloc((size_t)nt * per * sizeof *scratch);
    shift_table st = {NULL, NULL};
    if (!scratch || shift_table_init(&st, D, dmin, ss, q)) {
        free(scratch);
        return nn_fail("%s: out of memory for %d threads x %zu row values", what, nt, per);
    }
    int bad = 0, bad_y = 0, bad_x = 0, bad_win = -1;
#pragma omp parallel for schedule(dynamic, 4)
    for (int y = y_lo; y < y_hi; y++) {
        int failed;
#pragma omp atomic read
        failed = bad;
        if (failed) continue;
        nn_real *vrow = scratch + (size_t)omp_get_thread_num() * per; /* (w, D) */
        nn_real *hp = vrow + (size_t)w * D;                              /* (D) */
        nn_real *acc = hp + D;                                           /* (W, D) */
        memset(acc, 0, (size_t)W * D * sizeof *acc);
        for (int i = 0; i < n && !failed; i++) {
            const render_window *r = &pw[i].r;
            if (y < r->y0 || y >= r->y0 + r->h) continue;
            int ty = y - r->y0;
            double wy = ramp(ty, r->h, r->ramp_top, r->ramp_bottom);
            const axis_filter *fy = pw[i].fy, *fx = pw[i].fx;
            const nn_real *wgt = fy->w + (size_t)ty * fy->max_taps;
            /* vertical pass: vrow(t, k) = sum_j wgt[j] * prob(k, first + j, t) */
            for (int k = 0; k < D; k++) {
                const nn_real *src = pw[i].prob + ((size_t)k * h + fy->first[ty]) * w;
                for (int t = 0; t < w; t++) {
                    nn_real v = 0;
                    for (int j = 0; j < fy->count[ty]; j++) v += wgt[j] * src[(size_t)j * w + t];
                    vrow[(size_t)t * D + k] = v;
                }
            }
            const int tx_lo = x_lo - r->x0 > 0 ? x_lo - r->x0 : 0, tx_hi = x_hi - r->x0 < r->w ? x_hi - r->x0 : r->w;
            for (int tx = tx_lo; tx < tx_hi; tx++) {
                const nn_real *wx = fx->w + (size_t)tx * fx->max_taps;
                const nn_real *v = vrow + (size_t)fx->first[tx] * D;
                for (int k = 0; k < D; k++) hp[k] = wx[0] * v[k];
                for (int j = 1; j < fx->count[tx]; j++)
                    for (int k = 0; k < D; k++) hp[k] += wx[j] * v[(size_t)j * D + k];
                nn_real sum = 0;
                for (int k = 0; k < D; k++) sum += hp[k];
                if (!(sum > 0) || !isfinite(sum)) {
#pragma omp critical(render_bad)
                    if (bad_win < 0 || y < bad_y) bad_y = y, bad_x = r->x0 + tx, bad_win = first + i;
#pragma omp atomic write
                    bad = 1;
                    failed = 1;
                    break;
                }
                nn_real g = (nn_real)(wy * ramp(tx, r->w, r->ramp_left, r->ramp_right) / sum);
                nn_real *a = acc + (size_t)(r->x0 + tx) * D;
                for (int k = 0; k < D; k++) a[k] += g * hp[k];
            }
        }
        if (failed) continue;
        for (int x = x_lo; x < x_hi; x++) {
            nn_real *p = acc + (size_t)x * D, tot = 0;
            for (int k = 0; k < D; k++) tot += p[k];
            /* every pixel lies in a window with a positive weight, so tot > 0 */
            for (int k = 0; k < D; k++) p[k] /= tot;
            render_pixel(right, disparity, left, H, W, y, x, p, 1, D, dmin, &st, s);
        }
    }
    free(scratch), shift_table_free(&st);
    if (bad)
        return nn_fail("%s: probabilities of window %d at (y %d, x %d) do not sum to a positive finite "
                       "number", what, bad_win, bad_y, bad_x);
    return 0;
}

int render_from_prob(nn_real *right, nn_real *disparity, const nn_real *left, int H, int W,
                     const nn_real *prob, int D, int dmin, int h, int w) {
    if (!right || !left || !prob) return nn_fail("render_from_prob: NULL array");
    if (D < 1 || h < 1 || w < 1 || H < 1 || W < 1)
        return nn_fail("render_from_prob: bad sizes D %d, %d x %d -> %d x %d", D, h, w, H, W);
    axis_filter fy, fx;
    if (axis_filter_init(&fy, h, H)) return -1;
    if (axis_filter_init(&fx, w, W)) return axis_filter_free(&fy), -1;
    placed_window pw = {{0, 0, W, H, 0, 0, 0, 0}, prob, &fx, &fy};
    int rc = blend_render(right, disparity, left, H, W, &pw, 1, 0, D, dmin, h, w, (double)W / w, (double)W / w, 0,
                          0, W, 0, H, "render_from_prob");
    axis_filter_free(&fy), axis_filter_free(&fx);
    return rc;
}

/* ---------------------------------------------------------------- single-image path */

void render_config_default(render_config *cfg) {
    cfg->net_h = 160, cfg->net_w = 384, cfg->D = 33, cfg->dmin = -15;
    cfg->aspect_tol = 0.15, cfg->min_overlap = 0.25;
    cfg->mode = RENDER_WARP, cfg->disparity = WARP_DISP_MEAN, cfg->interp = WARP_INTERP_CUBIC;
    cfg->refine_radius = 32, cfg->refine_eps = 1e-2, cfg->gap = 1;
    cfg->snap_radius = 1, cfg->snap_tau = 1, cfg->snap_kappa = 12;
    cfg->strength = 1, cfg->convergence = -1;
}

static int check_config(const render_config *cfg, const char *what) {
    if (!cfg) return nn_fail("%s: NULL config", what);
    if (cfg->net_h < 1 || cfg->net_w < 1 || cfg->D < 1)
        return nn_fail("%s: bad config: network %d x %d, D %d", what, cfg->net_w, cfg->net_h, cfg->D);
    if (!(cfg->aspect_tol >= 0) || !isfinite(cfg->aspect_tol) || !(cfg->min_overlap >= 0) ||
        !(cfg->min_overlap < 1))
        return nn_fail("%s: bad config: aspect_tol %g (want >= 0), min_overlap %g (want 0 <= . < 1)", what,
                       cfg->aspect_tol, cfg->min_overlap);
    if ((cfg->mode != RENDER_WARP && cfg->mode != RENDER_BLEND) ||
        (cfg->disparity < WARP_DISP_MEAN || cfg->disparity > WARP_DISP_MEDIAN) || cfg->interp < WARP_INTERP_LINEAR ||
        cfg->interp > WARP_INTERP_LANCZOS3)
        return nn_fail("%s: bad config: render mode %d, disparity kind %d, interpolation %d", what, cfg->mode,
                       cfg->disparity, cfg->interp);
    if (!(cfg->refine_radius >= 0) || !(cfg->refine_radius <= 1e4) || !(cfg->refine_eps > 0) ||
        !isfinite(cfg->refine_eps) || !(cfg->gap >= 0) || !isfinite(cfg->gap))
        return nn_fail("%s: bad config: refine radius %g (want 0..1e4), eps %g (want > 0), gap %g (want >= 0)", what,
                       cfg->refine_radius, cfg->refine_eps, cfg->gap);
    if (!(cfg->snap_radius >= 0) || !(cfg->snap_radius <= 1e4) || !(cfg->snap_tau >= 0) || !isfinite(cfg->snap_tau) ||
        !(cfg->snap_kappa >= 0) || !isfinite(cfg->snap_kappa))
        return nn_fail("%s: bad config: snap radius %g (want 0..1e4), tau %g, kappa %g (want >= 0)", what,
                       cfg->snap_radius, cfg->snap_tau, cfg->snap_kappa);
    if (!(cfg->strength >= 0) || !isfinite(cfg->strength) || !(cfg->convergence <= 1) || isnan(cfg->convergence))
        return nn_fail("%s: bad config: strength %g (want >= 0), convergence %g (want 0..1, or < 0 for none)", what,
                       cfg->strength, cfg->convergence);
    return 0;
}

/* n windows of length len sliding over [0, total): starts and overlap-ramps. */
static int slide(int total, int len, double min_overlap, int *start) {
    if (len >= total) {
        if (start) start[0] = 0;
        return 1;
    }
    int n = 1 + (int)ceil((double)(total - len) / ((1 - min_overlap) * len));
    if (start)
        for (int i = 0; i < n; i++) start[i] = (int)lround((double)i * (total - len) / (n - 1));
    return n;
}

static int plan(render_window *win, int max_windows, double *scale, int *axis_out, const render_config *cfg,
                int H, int W) {
    if (check_config(cfg, "render_plan_windows")) return -1;
    if (H < 1 || W < 1) return nn_fail("render_plan_windows: bad frame size %d x %d", W, H);
    double an = (double)cfg->net_w / cfg->net_h, r = ((double)W / H) / an, lim = 1 + cfg->aspect_tol;
    int axis = (r <= lim && 1 / r <= lim) ? 0 : r > 1 ? 1 : 2;
    int ww = W, wh = H;
    if (axis == 1) {
        ww = (int)lround(H * an);
        ww = ww < 1 ? 1 : ww > W ? W : ww;
    } else if (axis == 2) {
        wh = (int)lround(W / an);
        wh = wh < 1 ? 1 : wh > H ? H : wh;
    }
    int total = axis == 2 ? H : W, len = axis == 2 ? wh : ww;
    int n = axis == 0 ? 1 : slide(total, len, cfg->min_overlap, NULL);
    if (scale) *scale = (double)ww / cfg->net_w;
    if (axis_out) *axis_out = axis;
    if (!win || max_windows < 1) return n;
    int *start = malloc((size_t)n * sizeof *start);
    if (!start) return nn_fail("render_plan_windows: out of memory for %d windows", n);
    if (axis == 0) start[0] = 0;
    else slide(total, len, cfg->min_overlap, start);
    for (int i = 0; i < n && i < max_windows; i++) {
        int before = i > 0 ? start[i - 1] + len - start[i] : 0;
        int after = i < n - 1 ? start[i] + len - start[i + 1] : 0;
        before = before < 0 ? 0 : before, after = after < 0 ? 0 : after;
        render_window *o = &win[i];
        memset(o, 0, sizeof *o);
        o->w = ww, o->h = wh;
        if (axis == 2) o->y0 = start[i], o->ramp_top = before, o->ramp_bottom = after;
        else o->x0 = start[i], o->ramp_left = before, o->ramp_right = after;
    }
    free(start);
    return n;
}

int render_plan_windows(render_window *win, int max_windows, double *scale, const render_config *cfg,
                        int H, int W) {
    return plan(win, max_windows, scale, NULL, cfg, H, W);
}

/* The blend path of render_image, in bounded memory: the windows slide along one axis,
 * so the frame splits into segments (between consecutive window starts and ends along
 * that axis) each covered by a run of consecutive windows. Segment by segment, the
 * network runs on the windows the segment needs that have not run yet, and windows that
 * no later segment needs are dropped: at most max_cover windows' probabilities are kept
 * (2 or 3 with the default overlap), whatever the frame's size. */
typedef struct {
    const render_config *cfg;
    render_net_fn net;
    void *ctx;
    const nn_real *left;
    int H, W, n, axis;
    double s;
    render_window *win;     /* (n) */
    placed_window *pw;      /* (n); prob set while the window is held */
    int *bounds, n_bounds;  /* segment boundaries along the axis, sorted, unique */
    int max_cover;
    nn_real *probs;         /* (max_cover, D, net_h, net_w): window i in slot i % max_cover */
    nn_real *input;         /* (3, net_h, net_w) */
    axis_filter in_x, in_y, out_x, out_y;
} blend_job;

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

static void blend_job_free(blend_job *j) {
    axis_filter_free(&j->in_x), axis_filter_free(&j->in_y), axis_filter_free(&j->out_x), axis_filter_free(&j->out_y);
    free(j->win), free(j->pw), free(j->bounds), free(j->probs), free(j->input);
}

/* Start and length of window i along the sliding axis. */
static int win_start(const blend_job *j, int i) { return j->axis == 2 ? j->win[i].y0 : j->win[i].x0; }
static int win_len(const blend_job *j, int i) { return j->axis == 2 ? j->win[i].h : j->win[i].w; }

static int blend_job_init(blend_job *j) {
    const render_config *cfg = j->cfg;
    const int n = j->n, nh = cfg->net_h, nw = cfg->net_w;
    j->win = malloc((size_t)n * sizeof *j->win);
    j->pw = malloc((size_t)n * sizeof *j->pw);
    j->bounds = malloc((size_t)2 * n * sizeof *j->bounds);
    j->input = malloc((size_t)3 * nh * nw * sizeof *j->input);
    if (!j->win || !j->pw || !j->bounds || !j->input)
        return nn_fail("render_image: out of memory planning %d windows for a %d x %d frame", n, j->W, j->H);
    if (render_plan_windows(j->win, n, NULL, cfg, j->H, j->W) != n) return -1;
    const int ww = j->win[0].w, wh = j->win[0].h; /* all windows have the same size */
    if (axis_filter_init(&j->in_x, ww, nw) || axis_filter_init(&j->in_y, wh, nh) ||
        axis_filter_init(&j->out_x, nw, ww) || axis_filter_init(&j->out_y, nh, wh))
        return -1;
    for (int i = 0; i < n; i++) {
        j->bounds[2 * i] = win_start(j, i), j->bounds[2 * i + 1] = win_start(j, i) + win_len(j, i);
        j->pw[i] = (placed_window){j->win[i], NULL, &j->out_x, &j->out_y};
    }
    qsort(j->bounds, (size_t)2 * n, sizeof *j->bounds, cmp_int);
    j->n_bounds = 0;
    for (int i = 0; i < 2 * n; i++)
        if (j->n_bounds == 0 || j->bounds[i] != j->bounds[j->n_bounds - 1]) j->bounds[j->n_bounds++] = j->bounds[i];
    j->max_cover = 1;
    for (int b = 0; b + 1 < j->n_bounds; b++) {
        int c = 0;
        for (int i = 0; i < n; i++) c += win_start(j, i) <= j->bounds[b] && win_start(j, i) + win_len(j, i) > j->bounds[b];
        j->max_cover = c > j->max_cover ? c : j->max_cover;
    }
    const size_t psize = (size_t)cfg->D * nh * nw;
    j->probs = malloc((size_t)j->max_cover * psize * sizeof *j->probs);
    if (!j->probs)
        return nn_fail("render_image: out of memory for %d windows of %d x %d x %d probabilities (%d x %d frame)",
                       j->max_cover, cfg->D, nh, nw, j->W, j->H);
    return 0;
}

/* One rendering of the whole frame (render_pixel's shifts from ss and q), segment by
 * segment; the network runs once per window. */
static int blend_pass(blend_job *j, nn_real *right, nn_real *disparity, double ss, double q) {
    const render_config *cfg = j->cfg;
    const size_t psize = (size_t)cfg->D * cfg->net_h * cfg->net_w;
    int next = 0; /* the first window the network has not run on in this pass */
    for (int b = 0; b + 1 < j->n_bounds; b++) {
        const int a = j->bounds[b], e = j->bounds[b + 1];
        int i0 = -1, i1 = -1; /* the windows covering [a, e): consecutive */
        for (int i = 0; i < j->n; i++)
            if (win_start(j, i) <= a && win_start(j, i) + win_len(j, i) >= e) {
                if (i0 < 0) i0 = i;
                i1 = i;
            }
        if (i0 < 0) continue; /* not reached: the windows cover the frame */
        for (; next <= i1; next++) {
            const render_window *r = &j->win[next];
            nn_real *slot = j->probs + (size_t)(next % j->max_cover) * psize;
            if (resample(j->input, j->left + (size_t)r->y0 * j->W + r->x0, (size_t)j->H * j->W, (size_t)j->W, 3,
                         &j->in_y, &j->in_x))
                return -1;
            if (j->net(j->ctx, j->input, slot) != 0)
                return nn_fail_context("render: network failed on window %d of %d (x0 %d, y0 %d, %d x %d)", next, j->n,
                                       r->x0, r->y0, r->w, r->h);
            j->pw[next].prob = slot;
        }
        const int x_lo = j->axis == 2 ? 0 : a, x_hi = j->axis == 2 ? j->W : e;
        const int y_lo = j->axis == 2 ? a : 0, y_hi = j->axis == 2 ? e : j->H;
        if (blend_render(right, disparity, j->left, j->H, j->W, j->pw + i0, i1 - i0 + 1, i0, cfg->D, cfg->dmin,
                         cfg->net_h, cfg->net_w, j->s, ss, q, x_lo, x_hi, y_lo, y_hi, "render_image"))
            return -1;
    }
    return 0;
}

int render_image(nn_real *right, nn_real *disparity, render_info *info, const render_config *cfg,
                 render_net_fn net, void *ctx, const nn_real *left, int H, int W) {
    if (check_config(cfg, "render_image")) return -1;
    if (!right || !left || !net) return nn_fail("render_image: NULL array or network callback");
    if (H < 1 || W < 1) return nn_fail("render_image: bad frame size %d x %d", W, H);
    if (cfg->mode == RENDER_WARP) {
        render_info ri;
        nn_real *d = disparity ? disparity : malloc((size_t)H * W * sizeof *d);
        if (!d) return nn_fail("render_image: out of memory for a %d x %d disparity map", W, H);
        int rc = render_disparity(d, &ri, cfg, net, ctx, left, H, W) || render_warp(right, left, d, H, W, ri.scale, cfg);
        if (d != disparity) free(d);
        if (rc == 0 && info) *info = ri;
        return rc ? -1 : 0;
    }
    double s;
    int axis;
    const int n = plan(NULL, 0, &s, &axis, cfg, H, W);
    if (n < 1) return nn_fail_context("render_image");
    int rc = -1;
    blend_job job = {.cfg = cfg, .net = net, .ctx = ctx, .left = left, .H = H, .W = W, .n = n, .axis = axis, .s = s};
    if (blend_job_init(&job)) goto done;
    double q = 0;
    if (cfg->convergence >= 0) { /* a first pass for E[d], whose quantile goes to the screen */
        nn_real *e = disparity ? disparity : malloc((size_t)H * W * sizeof *e);
        if (!e) {
            nn_fail("render_image: out of memory for a %d x %d disparity map (%s)", W, H, "convergence");
            goto done;
        }
        rc = blend_pass(&job, right, e, s, 0);
        if (rc == 0) q = render_convergence_offset(e, (size_t)H * W, s, cfg);
        if (e != disparity) free(e);
        if (rc) goto done;
    }
    rc = blend_pass(&job, right, disparity, s * cfg->strength, q);
    if (rc == 0 && cfg->strength == 0) memcpy(right, left, (size_t)3 * H * W * sizeof *right);
    if (rc == 0 && info) {
        info->n_windows = n, info->win_w = job.win[0].w, info->win_h = job.win[0].h, info->scale = s;
        info->axis = axis;
    }
done:
    blend_job_free(&job);
    return rc;
}

/* ---------------------------------------------------------------- compositions */

static nn_real *new_image(const char *what, const void *a, const void *b, int H, int W, size_t numel) {
    if (!a || !b) return nn_fail("%s: NULL image", what), NULL;
    if (H < 1 || W < 1) return nn_fail("%s: bad size %d x %d", what, W, H), NULL;
    nn_real *out = malloc(numel * sizeof *out);
    if (!out) nn_fail("%s: out of memory for %zu values", what, numel);
    return out;
}

nn_real *render_side_by_side(const nn_real *left, const nn_real *right, int H, int W) {
    nn_real *out = new_image("render_side_by_side", left, right, H, W, (size_t)6 * H * W);
    if (!out) return NULL;
    size_t plane = (size_t)H * W;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++) {
            nn_real *o = out + ((size_t)c * H + y) * 2 * W;
            memcpy(o, left + c * plane + (size_t)y * W, (size_t)W * sizeof *o);
            memcpy(o + W, right + c * plane + (size_t)y * W, (size_t)W * sizeof *o);
        }
    return out;
}

nn_real *render_over_under(const nn_real *left, const nn_real *right, int H, int W) {
    nn_real *out = new_image("render_over_under", left, right, H, W, (size_t)6 * H * W);
    if (!out) return NULL;
    size_t plane = (size_t)H * W;
    for (int c = 0; c < 3; c++) {
        memcpy(out + 2 * c * plane, left + c * plane, plane * sizeof *out);
        memcpy(out + (2 * c + 1) * plane, right + c * plane, plane * sizeof *out);
    }
    return out;
}

nn_real *render_anaglyph(const nn_real *left, const nn_real *right, int H, int W) {
    nn_real *out = new_image("render_anaglyph", left, right, H, W, (size_t)3 * H * W);
    if (!out) return NULL;
    size_t plane = (size_t)H * W;
    memcpy(out, left, plane * sizeof *out);                           /* red   <- left  */
    memcpy(out + plane, right + plane, 2 * plane * sizeof *out);      /* green, blue <- right */
    return out;
}

nn_real *render_depth_map(const nn_real *disparity, int H, int W, int D, int dmin, double s) {
    if (D < 1) return nn_fail("render_depth_map: D %d < 1", D), NULL;
    if (!(s > 0) || !isfinite(s)) return nn_fail("render_depth_map: shift scale %g is not positive", s), NULL;
    nn_real *out = new_image("render_depth_map", disparity, disparity, H, W, (size_t)3 * H * W);
    if (!out) return NULL;
    size_t plane = (size_t)H * W;
    double dmax = dmin + D - 1, range = (dmax - dmin) * s;
    for (size_t i = 0; i < plane; i++) {
        double v = range > 0 ? 255.0 * (dmax * s - disparity[i]) / range : 127.5;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[i] = out[plane + i] = out[2 * plane + i] = (nn_real)v;
    }
    return out;
}

/* ---------------------------------------------------------------- warp rendering */

int render_radius(double radius, double scale) {
    if (!(radius > 0)) return 0;
    const long r = lround(radius * scale);
    return r < 1 ? 1 : (int)r;
}

double render_convergence_offset(const nn_real *disp, size_t n, double scale, const render_config *cfg) {
    if (!(cfg->convergence >= 0) || n == 0) return 0;
    nn_real lo, hi;
    warp_hist_range(&lo, &hi, scale, cfg->dmin, cfg->D);
    unsigned int hist[WARP_HIST_BINS] = {0};
    if (hi > lo)
        for (size_t i = 0; i < n; i++) hist[warp_hist_bin(disp[i], lo, hi)]++;
    return warp_convergence_offset(hist, lo, hi, cfg->strength, cfg->convergence);
}

/* out (H, W) = the 2-D box mean of in (H, W), radius r, clipped at the borders:
 * warp_box_line along every row into tmp, then along every column. */
static void box_filter(nn_real *out, const nn_real *in, nn_real *tmp, int H, int W, int r) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) warp_box_line(tmp + (size_t)y * W, 1, in + (size_t)y * W, 1, W, r);
#pragma omp parallel for schedule(static)
    for (int x = 0; x < W; x++) warp_box_line(out + x, (size_t)W, tmp + x, (size_t)W, H, r);
}

int render_guided_filter(nn_real *p, const nn_real *left, int H, int W, int r, int k, double eps) {
    if (!p || !left) return nn_fail("render_guided_filter: NULL array");
    if (H < 1 || W < 1 || r < 1 || k < 1)
        return nn_fail("render_guided_filter: bad size %d x %d, radius %d or subsampling %d", W, H, r, k);
    /* the coarse grid (h, w) and the radius on it */
    const int h = (H + k - 1) / k, w = (W + k - 1) / k;
    const int rs = warp_guided_coarse_radius(r, k);
    const size_t n = (size_t)h * w, plane = (size_t)H * W;
    /* planes: guide, I*I, I*p, then their means (and those of a, b), scratch */
    nn_real *buf = malloc(8 * n * sizeof *buf);
    if (!buf) return nn_fail("render_guided_filter: out of memory for a %d x %d grid", w, h);
    nn_real *I = buf, *II = buf + n, *Ip = buf + 2 * n, *mI = buf + 3 * n, *mp = buf + 4 * n, *mII = buf + 5 * n,
            *mIp = buf + 6 * n, *tmp = buf + 7 * n;
#pragma omp parallel for schedule(static)
    for (int ys = 0; ys < h; ys++)
        for (int xs = 0; xs < w; xs++) {
            const size_t i = (size_t)ys * w + xs;
            warp_guided_down(&I[i], &mp[i], left, p, plane, H, W, k, ys, xs); /* mp holds p for now */
            II[i] = I[i] * I[i], Ip[i] = I[i] * mp[i];
        }
    box_filter(mI, I, tmp, h, w, rs);
    box_filter(mp, mp, tmp, h, w, rs); /* in place: box_filter reads `in` whole before writing `out` */
    box_filter(mII, II, tmp, h, w, rs);
    box_filter(mIp, Ip, tmp, h, w, rs);
    nn_real *a = II, *b = Ip; /* reused */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) warp_guided_ab(&a[i], &b[i], mI[i], mp[i], mII[i], mIp[i], (nn_real)eps);
    box_filter(mI, a, tmp, h, w, rs); /* mean a */
    box_filter(mp, b, tmp, h, w, rs); /* mean b */
    /* the output: warp_upsample's arithmetic, with its interpolation along y done once
     * per row (into a row of mean a and one of mean b per thread) and its x indices and
     * weights once per frame */
    const int nt = omp_get_max_threads();
    int *x0 = malloc((size_t)W * 2 * sizeof *x0);
    nn_real *tx = malloc((size_t)W * sizeof *tx), *rows = malloc((size_t)nt * 2 * w * sizeof *rows);
    if (!x0 || !tx || !rows) {
        free(x0), free(tx), free(rows), free(buf);
        return nn_fail("render_guided_filter: out of memory for a %d x %d frame", W, H);
    }
    int *x1 = x0 + W;
    for (int x = 0; x < W; x++) warp_upsample_axis(x, w, k, &x0[x], &x1[x], &tx[x]);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        nn_real *ra = rows + (size_t)omp_get_thread_num() * 2 * w, *rb = ra + w, ty;
        int y0, y1;
        warp_upsample_axis(y, h, k, &y0, &y1, &ty);
        for (int xs = 0; xs < w; xs++) {
            ra[xs] = warp_lerp(mI[(size_t)y0 * w + xs], mI[(size_t)y1 * w + xs], ty);
            rb[xs] = warp_lerp(mp[(size_t)y0 * w + xs], mp[(size_t)y1 * w + xs], ty);
        }
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            p[i] = warp_guided_out(warp_lerp(ra[x0[x]], ra[x1[x]], tx[x]), warp_lerp(rb[x0[x]], rb[x1[x]], tx[x]),
                                   warp_grey(left[i], left[plane + i], left[2 * plane + i]));
        }
    }
    free(x0), free(tx), free(rows), free(buf);
    return 0;
}

int render_snap_edges(nn_real *d, const nn_real *img, int H, int W, int rho, double tau, double kappa) {
    if (!d || !img) return nn_fail("render_snap_edges: NULL array");
    if (H < 1 || W < 1 || rho < 1) return nn_fail("render_snap_edges: bad size %d x %d or radius %d", W, H, rho);
    /* warp_snap_pixel's window minimum and maximum, separably (those of a rectangle are
     * the minimum and maximum of its rows' ones): rlo/rhi over x +- rho in each row,
     * then over y +- rho; the same values, O(rho) instead of O(rho^2) per pixel. */
    const size_t plane = (size_t)H * W;
    nn_real *in = malloc(3 * plane * sizeof *in), *rlo = in + plane, *rhi = rlo + plane;
    if (!in) return nn_fail("render_snap_edges: out of memory for a %d x %d frame", W, H);
    memcpy(in, d, plane * sizeof *in);
    /* each pass runs over the offsets, then along the row, so its inner loop is a
     * contiguous min / max the compiler vectorises (min and max are exact: any order
     * gives warp_snap_pixel's values) */
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        const nn_real *row = in + (size_t)y * W;
        nn_real *lo = rlo + (size_t)y * W, *hi = rhi + (size_t)y * W;
        memcpy(lo, row, (size_t)W * sizeof *lo), memcpy(hi, row, (size_t)W * sizeof *hi);
        for (int u = 1; u <= rho && u < W; u++) {
            for (int x = 0; x + u < W; x++) { /* x + u, the right neighbour */
                lo[x] = row[x + u] < lo[x] ? row[x + u] : lo[x];
                hi[x] = row[x + u] > hi[x] ? row[x + u] : hi[x];
            }
            for (int x = u; x < W; x++) { /* x - u, the left one */
                lo[x] = row[x - u] < lo[x] ? row[x - u] : lo[x];
                hi[x] = row[x - u] > hi[x] ? row[x - u] : hi[x];
            }
        }
    }
    const int nt = omp_get_max_threads();
    nn_real *cols = malloc((size_t)nt * 2 * W * sizeof *cols);
    if (!cols) {
        free(in);
        return nn_fail("render_snap_edges: out of memory for %d threads x 2 rows of %d", nt, W);
    }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        nn_real *lo = cols + (size_t)omp_get_thread_num() * 2 * W, *hi = lo + W;
        const int v0 = y - rho < 0 ? 0 : y - rho, v1 = y + rho > H - 1 ? H - 1 : y + rho;
        memcpy(lo, rlo + (size_t)v0 * W, (size_t)W * sizeof *lo), memcpy(hi, rhi + (size_t)v0 * W, (size_t)W * sizeof *hi);
        for (int v = v0 + 1; v <= v1; v++) {
            const nn_real *a = rlo + (size_t)v * W, *b = rhi + (size_t)v * W;
            for (int x = 0; x < W; x++) lo[x] = a[x] < lo[x] ? a[x] : lo[x], hi[x] = b[x] > hi[x] ? b[x] : hi[x];
        }
        for (int x = 0; x < W; x++)
            d[(size_t)y * W + x] = warp_snap_decide(in, img, H, W, y, x, rho, (nn_real)tau, (nn_real)kappa, lo[x], hi[x]);
    }
    free(cols), free(in);
    return 0;
}

int render_warp(nn_real *right, const nn_real *left, const nn_real *disp, int H, int W, double scale,
                const render_config *cfg) {
    if (check_config(cfg, "render_warp")) return -1;
    if (!right || !left || !disp) return nn_fail("render_warp: NULL array");
    if (H < 1 || W < 1) return nn_fail("render_warp: bad frame size %d x %d", W, H);
    if (!(scale > 0) || !isfinite(scale)) return nn_fail("render_warp: shift scale %g is not positive", scale);
    const size_t plane = (size_t)H * W;
    const int nt = omp_get_max_threads();
    nn_real *scratch = malloc((size_t)nt * 4 * W * sizeof *scratch);
    if (!scratch) return nn_fail("render_warp: out of memory for %d threads x 4 rows of %d", nt, W);
    const nn_real q = (nn_real)render_convergence_offset(disp, plane, scale, cfg), st = (nn_real)cfg->strength;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        nn_real *shift = scratch + (size_t)omp_get_thread_num() * 4 * W, *src = shift + W, *out = src + W,
                *key = out + W;
        const size_t row = (size_t)y * W;
        warp_render_row(right + row, left + row, plane, disp + row, shift, src, out, key, W, st, q, (nn_real)cfg->gap,
                        cfg->interp);
    }
    free(scratch);
    return 0;
}

/* d_L (H, W) from d_R (H, W): every row inverted (warp.h step 3); scratch 2 W per thread. */
static int right_to_left_grid(nn_real *dl, const nn_real *dr, int H, int W, double gap) {
    const int nt = omp_get_max_threads();
    nn_real *scratch = malloc((size_t)nt * 2 * W * sizeof *scratch);
    if (!scratch) return nn_fail("render_disparity: out of memory for %d threads x 2 rows of %d", nt, W);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        nn_real *shift = scratch + (size_t)omp_get_thread_num() * 2 * W, *key = shift + W;
        warp_left_grid_row(dl + (size_t)y * W, shift, key, dr + (size_t)y * W, W, (nn_real)gap);
    }
    free(scratch);
    return 0;
}

/* warp_disparity_of(prob + j, n, D, dmin, WARP_DISP_MEAN) for every pixel j of a (D, n)
 * window, the same double sums in the same order per pixel, blocks of pixels at a time
 * so that the loop over pixels is the inner one (contiguous, vectorised) instead of a
 * chain of D dependent additions per pixel. */
#define MEAN_BLOCK 256
static void disparity_means(nn_real *dnet, const nn_real *prob, size_t n, int D, int dmin) {
    const size_t blocks = (n + MEAN_BLOCK - 1) / MEAN_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        const size_t j0 = b * MEAN_BLOCK, m = n - j0 < MEAN_BLOCK ? n - j0 : MEAN_BLOCK;
        double sum[MEAN_BLOCK], e[MEAN_BLOCK];
        for (size_t j = 0; j < m; j++) sum[j] = 0, e[j] = 0;
        for (int k = 0; k < D; k++) {
            const nn_real *p = prob + (size_t)k * n + j0;
            const double dk = (double)(dmin + k);
            for (size_t j = 0; j < m; j++) {
                const double v = (double)p[j];
                sum[j] = sum[j] + v;
                e[j] = e[j] + v * dk;
            }
        }
        for (size_t j = 0; j < m; j++)
            dnet[j0 + j] = !(sum[j] > 0) || !(sum[j] <= DBL_MAX) ? (nn_real)NAN : (nn_real)(e[j] / sum[j]);
    }
}

int render_disparity(nn_real *disp, render_info *info, const render_config *cfg, render_net_fn net, void *ctx,
                     const nn_real *left, int H, int W) {
    if (check_config(cfg, "render_disparity")) return -1;
    if (!disp || !left || !net) return nn_fail("render_disparity: NULL array or network callback");
    if (H < 1 || W < 1) return nn_fail("render_disparity: bad frame size %d x %d", W, H);
    double s;
    int axis;
    const int n = plan(NULL, 0, &s, &axis, cfg, H, W);
    if (n < 1) return nn_fail_context("render_disparity");
    const int D = cfg->D, nh = cfg->net_h, nw = cfg->net_w;
    const size_t plane = (size_t)H * W, net_plane = (size_t)nh * nw;
    int rc = -1;
    render_window *win = malloc((size_t)n * sizeof *win);
    nn_real *prob = malloc((size_t)D * net_plane * sizeof *prob), *input = malloc(3 * net_plane * sizeof *input);
    nn_real *dnet = malloc(net_plane * sizeof *dnet), *num = calloc(plane, sizeof *num), *den = calloc(plane, sizeof *den);
    nn_real *gx = NULL, *cols = NULL; /* (window width) horizontal ramp, (threads, nw) rows */
    axis_filter in_x = {0}, in_y = {0}, out_x = {0}, out_y = {0};
    if (!win || !prob || !input || !dnet || !num || !den) {
        nn_fail("render_disparity: out of memory for a %d x %d frame (%d windows)", W, H, n);
        goto done;
    }
    if (render_plan_windows(win, n, NULL, cfg, H, W) != n) goto done;
    const int ww = win[0].w, wh = win[0].h;
    gx = malloc((size_t)ww * sizeof *gx), cols = malloc((size_t)omp_get_max_threads() * nw * sizeof *cols);
    if (!gx || !cols) {
        nn_fail("render_disparity: out of memory for a %d x %d frame (%d windows)", W, H, n);
        goto done;
    }
    if (axis_filter_init(&in_x, ww, nw) || axis_filter_init(&in_y, wh, nh) || axis_filter_init(&out_x, nw, ww) ||
        axis_filter_init(&out_y, nh, wh))
        goto done;
    for (int i = 0; i < n; i++) {
        const render_window *r = &win[i];
        if (resample(input, left + (size_t)r->y0 * W + r->x0, plane, (size_t)W, 3, &in_y, &in_x)) goto done;
        if (net(ctx, input, prob) != 0) {
            nn_fail_context("render: network failed on window %d of %d (x0 %d, y0 %d, %d x %d)", i, n, r->x0, r->y0,
                            r->w, r->h);
            goto done;
        }
        size_t bad = net_plane;
        if (cfg->disparity == WARP_DISP_MEAN) {
            disparity_means(dnet, prob, net_plane, D, cfg->dmin);
#pragma omp parallel for schedule(static) reduction(min : bad)
            for (size_t j = 0; j < net_plane; j++)
                if (isnan(dnet[j]) && j < bad) bad = j;
        } else {
#pragma omp parallel for schedule(static) reduction(min : bad)
            for (size_t j = 0; j < net_plane; j++) {
                dnet[j] = warp_disparity_of(prob + j, net_plane, D, cfg->dmin, cfg->disparity);
                if (isnan(dnet[j]) && j < bad) bad = j;
            }
        }
        if (bad < net_plane) {
            nn_fail("render_disparity: probabilities of window %d at network pixel (y %zu, x %zu) do not sum to a "
                    "positive finite number", i, bad / nw, bad % nw);
            goto done;
        }
        /* the running weighted sum, in window order; warp_resampled's arithmetic with
         * its vertical taps summed once per row (into a row of nw values per thread)
         * and the horizontal ramp once per window */
        for (int tx = 0; tx < r->w; tx++) gx[tx] = (nn_real)ramp(tx, r->w, r->ramp_left, r->ramp_right);
#pragma omp parallel for schedule(static)
        for (int ty = 0; ty < r->h; ty++) {
            const nn_real wy = (nn_real)ramp(ty, r->h, r->ramp_top, r->ramp_bottom);
            const nn_real *ty_w = out_y.w + (size_t)ty * out_y.max_taps, *src = dnet + (size_t)out_y.first[ty] * nw;
            nn_real *col = cols + (size_t)omp_get_thread_num() * nw;
            for (int xs = 0; xs < nw; xs++) {
                nn_real v = 0;
                for (int jy = 0; jy < out_y.count[ty]; jy++) v = v + ty_w[jy] * src[(size_t)jy * nw + xs];
                col[xs] = v;
            }
            for (int tx = 0; tx < r->w; tx++) {
                const nn_real g = wy * gx[tx], *wx = out_x.w + (size_t)tx * out_x.max_taps, *c = col + out_x.first[tx];
                nn_real acc = 0;
                for (int jx = 0; jx < out_x.count[tx]; jx++) acc = acc + wx[jx] * c[jx];
                const size_t at = (size_t)(r->y0 + ty) * W + r->x0 + tx;
                num[at] += g * acc;
                den[at] += g;
            }
        }
    }
    /* d_R = s * num / den (every pixel lies in a window with a positive weight) */
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < plane; j++) num[j] = (nn_real)s * (num[j] / den[j]);
    if (right_to_left_grid(disp, num, H, W, cfg->gap)) goto done;
    const int refine_r = render_radius(cfg->refine_radius, s), snap_rho = render_radius(cfg->snap_radius, s);
    if (refine_r > 0 &&
        render_guided_filter(disp, left, H, W, refine_r, warp_guided_subsample(s, refine_r), cfg->refine_eps))
        goto done;
    if (snap_rho > 0 && render_snap_edges(disp, left, H, W, snap_rho, cfg->snap_tau * s, cfg->snap_kappa)) goto done;
    if (info) info->n_windows = n, info->win_w = ww, info->win_h = wh, info->scale = s, info->axis = axis;
    rc = 0;
done:
    axis_filter_free(&in_x), axis_filter_free(&in_y), axis_filter_free(&out_x), axis_filter_free(&out_y);
    free(win), free(prob), free(input), free(dnet), free(num), free(den), free(gx), free(cols);
    return rc;
}
