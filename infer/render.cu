/* The GPU path of the single-image rendering, beside its CPU code infer/render.c (the
 * reference); infer/render_cuda.h states the API, the steps and the exactness argument.
 *
 * Host: the plan (window plan of render_plan_windows, resampling tables equal to
 * render.c's axis filters, shift table, the warp settings in source pixels) packed in
 * one block for one upload; the job (prepare: upload; launch: crop kernel, network on
 * the batch, the kernels of the mode; finish: download).
 * Device, one thread per output value, pixel, row or column, each running warp.h's
 * functions or the per-pixel code of render_cuda.h (so CPU tests can run it too):
 *   crop_resize_kernel   windows (n, 3, net_h, net_w) <- left (3, H, W)
 *   blend mode:
 *   blend_render_kernel  right (3, H, W), disparity (H, W) <- probs (n, D, net_h, net_w)
 *   warp mode (render_disparity, then render_warp):
 *   disparity_kernel     dnet (n, net_h, net_w) <- probs; then the probabilities go
 *   source_disparity_kernel, left_grid_kernel: d_R, then d_L (H, W)
 *   guide_kernel, box_rows_kernel, box_cols_kernel, guided_ab_kernel,
 *   guided_out_kernel: the guided filter;  snap_kernel: edge snapping
 *   render_row_kernel    right (3, H, W) <- left, d_L, the convergence offset
 *   both: hist_kernel, convergence_kernel: the convergence offset (and the blend's
 *   shift table) computed on the device.
 * The blend kernel reads each covering window's few probability taps per level three
 * times (sum per window, total, then the rendering) instead of storing D values per
 * pixel: no (D, H, W) buffer and no limit on D. Threads of a block are adjacent pixels
 * of a row, so their reads of the probabilities and of the left view are adjacent. The
 * warp's row steps (inversion, box filter along x) are sequential along the row, as
 * on the CPU; a thread per row is enough for frames a few thousand pixels wide.
 */
#include <initializer_list>
#include <math.h>
#include <stdlib.h>

#include "../nn/cuda_check.h"

#include "render_cuda.h"

/* ---- the plan (host) ------------------------------------------------------------------- */

namespace {

int axis_taps(int n_in, int n_out) {
    double scale = (double)n_in / n_out, support = scale > 1 ? scale : 1.0;
    return (int)ceil(2 * support) + 3;
}

size_t align16(size_t b) { return (b + 15) & ~(size_t)15; }

/* Lays out (pass 1: base NULL, sizes only) or assigns (pass 2) the arrays of p in a
 * block at base; returns the bytes used. */
size_t layout(render_cuda_plan *p, char *base) {
    size_t off = 0;
    auto take = [&](size_t bytes) -> void * {
        void *q = base ? base + off : nullptr;
        off += align16(bytes);
        return q;
    };
    p->win = (render_window *)take((size_t)p->n * sizeof(render_window));
    render_axis_table *t[4] = {&p->in_x, &p->in_y, &p->out_x, &p->out_y};
    for (int a = 0; a < 4; a++) {
        t[a]->first = (int *)take((size_t)t[a]->n_out * sizeof(int));
        t[a]->count = (int *)take((size_t)t[a]->n_out * sizeof(int));
        t[a]->w = (nn_real *)take((size_t)t[a]->n_out * t[a]->max_taps * sizeof(nn_real));
    }
    p->shift_off = (int *)take((size_t)p->D * sizeof(int));
    p->shift_frac = (nn_real *)take((size_t)p->D * sizeof(nn_real));
    return off;
}

/* Most windows covering one position along the sliding axis (all windows span the
 * other axis whole). */
int max_cover(const render_cuda_plan *p) {
    int total = p->axis == 2 ? p->H : p->W, most = 0;
    for (int t = 0; t < total; t++) {
        int c = 0;
        for (int i = 0; i < p->n; i++) {
            int lo = p->axis == 2 ? p->win[i].y0 : p->win[i].x0, len = p->axis == 2 ? p->win[i].h : p->win[i].w;
            c += t >= lo && t < lo + len;
        }
        most = c > most ? c : most;
    }
    return most;
}

} // namespace

extern "C" void render_cuda_plan_free(render_cuda_plan *p) {
    if (!p) return;
    free(p->block);
    memset(p, 0, sizeof *p);
}

extern "C" int render_cuda_plan_make(render_cuda_plan *p, const render_config *cfg, int H, int W) {
    if (!p) return nn_fail("render_cuda_plan_make: NULL plan");
    memset(p, 0, sizeof *p);
    double s = 0;
    int n = render_plan_windows(nullptr, 0, &s, cfg, H, W);
    if (n < 1) return nn_fail_context("render (cuda): planning a %d x %d frame", W, H);
    p->H = H, p->W = W, p->n = n, p->D = cfg->D, p->dmin = cfg->dmin, p->net_h = cfg->net_h, p->net_w = cfg->net_w;
    p->scale = s;
    /* render.c's axis rule, same expression */
    double an = (double)cfg->net_w / cfg->net_h, r = ((double)W / H) / an, lim = 1 + cfg->aspect_tol;
    p->axis = (r <= lim && 1 / r <= lim) ? 0 : r > 1 ? 1 : 2;
    /* the window size first (render_plan_windows into a temporary), then the layout */
    render_window *tmp = (render_window *)malloc((size_t)n * sizeof *tmp);
    if (!tmp) return nn_fail("render (cuda): out of memory for %d windows", n);
    if (render_plan_windows(tmp, n, nullptr, cfg, H, W) != n) {
        free(tmp);
        return nn_fail_context("render (cuda): planning a %d x %d frame", W, H);
    }
    p->win_w = tmp[0].w, p->win_h = tmp[0].h;
    p->in_x = {p->win_w, p->net_w, axis_taps(p->win_w, p->net_w), nullptr, nullptr, nullptr};
    p->in_y = {p->win_h, p->net_h, axis_taps(p->win_h, p->net_h), nullptr, nullptr, nullptr};
    p->out_x = {p->net_w, p->win_w, axis_taps(p->net_w, p->win_w), nullptr, nullptr, nullptr};
    p->out_y = {p->net_h, p->win_h, axis_taps(p->net_h, p->win_h), nullptr, nullptr, nullptr};
    size_t bytes = layout(p, nullptr);
    int taps = 0;
    for (const render_axis_table *t : {&p->in_x, &p->in_y, &p->out_x, &p->out_y}) taps = t->max_taps > taps ? t->max_taps : taps;
    char *block = (char *)calloc(1, bytes);
    double *tw = (double *)malloc((size_t)taps * sizeof *tw);
    if (!block || !tw) {
        free(tmp), free(block), free(tw);
        return nn_fail("render (cuda): out of memory for a %zu-byte plan", bytes);
    }
    layout(p, block);
    p->block = block, p->bytes = bytes;
    memcpy(p->win, tmp, (size_t)n * sizeof *tmp);
    free(tmp);
    for (render_axis_table *t : {&p->in_x, &p->in_y, &p->out_x, &p->out_y}) render_axis_table_fill(t, tw);
    free(tw);
    for (int k = 0; k < p->D; k++) render_cuda_shift_entry(&p->shift_off[k], &p->shift_frac[k], s, p->dmin + k, 0);
    /* the warp settings as render_disparity and render_warp derive them */
    p->cfg = *cfg;
    p->refine_r = render_radius(cfg->refine_radius, s), p->snap_rho = render_radius(cfg->snap_radius, s);
    p->refine_k = p->refine_r > 0 ? warp_guided_subsample(s, p->refine_r) : 1;
    p->snap_tau = (nn_real)(cfg->snap_tau * s);
    warp_hist_range(&p->hist_lo, &p->hist_hi, s, p->dmin, p->D);
    p->max_cover = max_cover(p);
    if (cfg->mode == RENDER_BLEND && p->max_cover > RENDER_CUDA_MAX_COVER) { /* the warp keeps no per-window state */
        int m = p->max_cover;
        render_cuda_plan_free(p);
        return nn_fail("render (cuda): %d windows overlap at one pixel (at most %d on the GPU); lower min_overlap", m,
                       RENDER_CUDA_MAX_COVER);
    }
    return 0;
}

extern "C" void render_cuda_plan_rebase(render_cuda_plan *out, const render_cuda_plan *p, void *base) {
    *out = *p;
    char *from = (char *)p->block, *to = (char *)base;
    auto at = [&](auto *q) { return (decltype(q))(to + ((char *)q - from)); };
    out->win = at(p->win);
    render_axis_table *o[4] = {&out->in_x, &out->in_y, &out->out_x, &out->out_y};
    const render_axis_table *i[4] = {&p->in_x, &p->in_y, &p->out_x, &p->out_y};
    for (int a = 0; a < 4; a++) {
        o[a]->first = at(i[a]->first);
        o[a]->count = at(i[a]->count);
        o[a]->w = at(i[a]->w);
    }
    out->shift_off = at(p->shift_off);
    out->shift_frac = at(p->shift_frac);
    out->block = base;
}

/* ---- kernels ---------------------------------------------------------------------------- */

namespace {
/* One thread per window value (i, c, y, x), x fastest. */
__global__ void crop_resize_kernel(float *windows, const __grid_constant__ render_cuda_plan p, const float *left,
                                   size_t total) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < total; q += (size_t)gridDim.x * blockDim.x) {
        int x = (int)(q % (size_t)p.net_w);
        size_t rest = q / (size_t)p.net_w;
        int y = (int)(rest % (size_t)p.net_h);
        rest /= (size_t)p.net_h;
        int c = (int)(rest % 3), i = (int)(rest / 3);
        windows[q] = render_cuda_window_input(&p, left, i, c, y, x);
    }
}

/* One thread per source pixel: blockIdx.y walks the rows (grid-stride), x the columns. */
__global__ void blend_render_kernel(float *right, float *disparity, unsigned long long *bad,
                                    const __grid_constant__ render_cuda_plan p, const float *probs, const float *left) {
    const size_t plane = (size_t)p.H * p.W;
    for (int y = blockIdx.y; y < p.H; y += gridDim.y)
        for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < p.W; x += gridDim.x * blockDim.x) {
            float rgb[3], e;
            int w = render_cuda_pixel(&p, probs, left, y, x, rgb, &e);
            size_t at = (size_t)y * p.W + x;
            if (w >= 0) {
                atomicMin(bad, ((unsigned long long)y * (unsigned long long)p.n + (unsigned long long)w) *
                                   (unsigned long long)p.W + (unsigned long long)x);
                continue;
            }
            right[at] = rgb[0], right[plane + at] = rgb[1], right[2 * plane + at] = rgb[2];
            if (disparity) disparity[at] = e;
        }
}

} // namespace

extern "C" int render_cuda_crop_windows(nn_real *windows, const render_cuda_plan *dplan, const nn_real *left) {
    size_t total = (size_t)dplan->n * 3 * dplan->net_h * dplan->net_w;
    crop_resize_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(windows, *dplan, left, total);
    NN_CUDA_LAUNCHED("crop_resize_kernel");
    return 0;
}

extern "C" int render_cuda_blend(nn_real *right, nn_real *disparity, unsigned long long *bad,
                                 const render_cuda_plan *dplan, const nn_real *probs, const nn_real *left) {
    /* 128 threads along a row; rows spread over the rest of the grid */
    const int threads = 128;
    unsigned gx = (unsigned)((dplan->W + threads - 1) / threads);
    size_t most = (size_t)nn_cuda_sm_count() * 32;
    size_t gy = most / gx > 0 ? most / gx : 1;
    if (gy > (size_t)dplan->H) gy = (size_t)dplan->H;
    if (gy > 65535) gy = 65535;
    blend_render_kernel<<<dim3(gx, (unsigned)gy), threads>>>(right, disparity, bad, *dplan, probs, left);
    NN_CUDA_LAUNCHED("blend_render_kernel");
    return 0;
}

/* ---- kernels of the warp mode and of the comfort controls --------------------------------- */

namespace {

/* Step a, one thread per network pixel q = i * net_plane + j of window i: dnet[q] from
 * window i's probabilities (D values net_plane apart); a NaN lowers *bad to q (the first
 * window with a bad pixel, then its first pixel: render_disparity's report). */
__global__ void disparity_kernel(float *dnet, unsigned long long *bad, const float *probs, size_t total,
                                 size_t net_plane, int D, int dmin, int kind) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < total; q += (size_t)gridDim.x * blockDim.x) {
        const size_t i = q / net_plane, j = q % net_plane;
        const float v = warp_disparity_of(probs + i * D * net_plane + j, net_plane, D, dmin, kind);
        dnet[q] = v;
        if (isnan(v)) atomicMin(bad, (unsigned long long)q);
    }
}

/* Step b, one thread per source pixel: dr (H, W) = d_R. */
__global__ void source_disparity_kernel(float *dr, const __grid_constant__ render_cuda_plan p, const float *dnet) {
    const size_t plane = (size_t)p.H * p.W;
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < plane; q += (size_t)gridDim.x * blockDim.x)
        dr[q] = render_cuda_source_disparity(&p, dnet, (int)(q / p.W), (int)(q % p.W));
}

/* Step c, one thread per row: dl (H, W) = d_L from dr (H, W), which becomes the shift
 * scratch; key (H, W) scratch. */
__global__ void left_grid_kernel(float *dl, float *dr, float *key, int H, int W, float gap) {
    for (int y = blockIdx.x * blockDim.x + threadIdx.x; y < H; y += gridDim.x * blockDim.x) {
        const size_t row = (size_t)y * W;
        warp_left_grid_row(dl + row, dr + row, key + row, dr + row, W, gap);
    }
}

/* Step d's inputs on the coarse (h, w) grid, one thread per coarse pixel: the block
 * means I of the grey guide and p of the disparity (warp_guided_down; p goes into mp,
 * filtered in place next), I*I, I*p. */
__global__ void guide_kernel(float *I, float *II, float *Ip, float *mp, const float *left, const float *p, int H, int W,
                             int k, int h, int w) {
    const size_t n = (size_t)h * w, plane = (size_t)H * W;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        warp_guided_down(&I[i], &mp[i], left, p, plane, H, W, k, (int)(i / w), (int)(i % w));
        II[i] = I[i] * I[i], Ip[i] = I[i] * mp[i];
    }
}

/* Step d's box filter: along every row (one thread per row), along every column (one
 * thread per column; the threads of a warp read adjacent values). */
__global__ void box_rows_kernel(float *out, const float *in, int H, int W, int r) {
    for (int y = blockIdx.x * blockDim.x + threadIdx.x; y < H; y += gridDim.x * blockDim.x)
        warp_box_line(out + (size_t)y * W, 1, in + (size_t)y * W, 1, W, r);
}

__global__ void box_cols_kernel(float *out, const float *in, int H, int W, int r) {
    for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < W; x += gridDim.x * blockDim.x)
        warp_box_line(out + x, (size_t)W, in + x, (size_t)W, H, r);
}

/* Step d's coefficients a, b (into II and Ip) and output (into p), one thread per pixel. */
__global__ void guided_ab_kernel(float *a, float *b, const float *mI, const float *mp, const float *mII,
                                 const float *mIp, size_t n, float eps) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        warp_guided_ab(&a[i], &b[i], mI[i], mp[i], mII[i], mIp[i], eps);
}

/* Step d's output at full resolution, one thread per pixel: the coarse means of a and b
 * upsampled (warp_upsample), with the full-resolution grey guide. */
__global__ void guided_out_kernel(float *p, const float *ma, const float *mb, const float *left, int H, int W, int k,
                                  int h, int w) {
    const size_t plane = (size_t)H * W;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < plane; i += (size_t)gridDim.x * blockDim.x) {
        const int y = (int)(i / W), x = (int)(i % W);
        p[i] = warp_guided_out(warp_upsample(ma, h, w, k, y, x), warp_upsample(mb, h, w, k, y, x),
                               warp_grey(left[i], left[plane + i], left[2 * plane + i]));
    }
}

/* Step e, one thread per pixel: d (H, W) snapped, reading the copy `in`. */
__global__ void snap_kernel(float *d, const float *in, const float *img, int H, int W, int rho, float tau,
                            float kappa) {
    const size_t plane = (size_t)H * W;
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < plane; q += (size_t)gridDim.x * blockDim.x)
        d[q] = warp_snap_pixel(in, img, H, W, (int)(q / W), (int)(q % W), rho, tau, kappa);
}

/* Step f's histogram, one thread per value: integer counts, so the order of the atomic
 * additions does not matter. */
__global__ void hist_kernel(unsigned int *hist, const float *d, size_t n, float lo, float hi) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        atomicAdd(&hist[warp_hist_bin(d[i], lo, hi)], 1u);
}

/* Step f's offset, one thread: *q = warp_convergence_offset (0 when convergence < 0);
 * when off is not NULL, the blend mode's shift table for ss = s strength and that q. */
__global__ void convergence_kernel(double *q, int *off, float *frac, const unsigned int *hist,
                                   const __grid_constant__ render_cuda_plan p) {
    const double v = warp_convergence_offset(hist, p.hist_lo, p.hist_hi, p.cfg.strength, p.cfg.convergence);
    *q = v;
    if (off)
        for (int k = 0; k < p.D; k++) render_cuda_shift_entry(&off[k], &frac[k], p.scale * p.cfg.strength, p.dmin + k, v);
}

/* Step g, one thread per row: right (3, H, W) from left (3, H, W) and d (H, W); s4:
 * 4 (H, W) planes of scratch (shift, source column, inverted shift, key). */
__global__ void render_row_kernel(float *right, const float *left, const float *d, float *s4,
                                  const __grid_constant__ render_cuda_plan p, const double *q) {
    const size_t plane = (size_t)p.H * p.W;
    const float qf = (float)*q;
    for (int y = blockIdx.x * blockDim.x + threadIdx.x; y < p.H; y += gridDim.x * blockDim.x) {
        const size_t row = (size_t)y * p.W;
        warp_render_row(right + row, left + row, plane, d + row, s4 + row, s4 + plane + row, s4 + 2 * plane + row,
                        s4 + 3 * plane + row, p.W, (float)p.cfg.strength, qf, (float)p.cfg.gap, p.cfg.interp);
    }
}

/* out (H, W) = the 2-D box mean of in, radius r: rows into tmp, then columns (render.c's
 * box_filter). */
int box_filter(float *out, const float *in, float *tmp, int H, int W, int r) {
    box_rows_kernel<<<nn_cuda_grid((size_t)H), NN_CUDA_BLOCK>>>(tmp, in, H, W, r);
    NN_CUDA_LAUNCHED("box_rows_kernel");
    box_cols_kernel<<<nn_cuda_grid((size_t)W), NN_CUDA_BLOCK>>>(out, tmp, H, W, r);
    NN_CUDA_LAUNCHED("box_cols_kernel");
    return 0;
}

/* Step d: p (H, W) filtered in place, render_guided_filter's steps in its order, the
 * coefficients on a grid k times coarser; s8: 8 planes of that grid (at most 8 (H, W)). */
int guided_filter(float *p, const float *left, float *s8, int H, int W, int r, int k, float eps) {
    const int h = (H + k - 1) / k, w = (W + k - 1) / k;
    const int rs = warp_guided_coarse_radius(r, k);
    const size_t n = (size_t)h * w;
    float *I = s8, *II = s8 + n, *Ip = s8 + 2 * n, *mI = s8 + 3 * n, *mp = s8 + 4 * n, *mII = s8 + 5 * n,
          *mIp = s8 + 6 * n, *tmp = s8 + 7 * n;
    guide_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(I, II, Ip, mp, left, p, H, W, k, h, w);
    NN_CUDA_LAUNCHED("guide_kernel");
    if (box_filter(mI, I, tmp, h, w, rs) || box_filter(mp, mp, tmp, h, w, rs) || box_filter(mII, II, tmp, h, w, rs) ||
        box_filter(mIp, Ip, tmp, h, w, rs))
        return -1;
    float *a = II, *b = Ip; /* reused, as render.c */
    guided_ab_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(a, b, mI, mp, mII, mIp, n, eps);
    NN_CUDA_LAUNCHED("guided_ab_kernel");
    if (box_filter(mI, a, tmp, h, w, rs) || box_filter(mp, b, tmp, h, w, rs)) return -1; /* means of a and b */
    guided_out_kernel<<<nn_cuda_grid((size_t)H * W), NN_CUDA_BLOCK>>>(p, mI, mp, left, H, W, k, h, w);
    NN_CUDA_LAUNCHED("guided_out_kernel");
    return 0;
}

/* Device scratch of the comfort controls, in one block: the histogram, the offset q,
 * and (blend) the shift table of the second pass (D entries). */
struct comfort {
    unsigned int *hist; /* (WARP_HIST_BINS) */
    double *q;
    int *off;           /* (D) */
    float *frac;        /* (D) */
};

size_t comfort_bytes(int D) {
    return WARP_HIST_BINS * sizeof(unsigned int) + sizeof(double) + (size_t)D * (sizeof(int) + sizeof(float));
}

comfort comfort_at(void *block, int D) {
    char *b = (char *)block; /* 16 KB of counts keep q 8-byte aligned */
    comfort c;
    c.hist = (unsigned int *)b;
    c.q = (double *)(b + WARP_HIST_BINS * sizeof(unsigned int));
    c.off = (int *)(c.q + 1);
    c.frac = (float *)(c.off + D);
    return c;
}

/* Step f: c->q = the convergence offset of d (H, W) (and, when table, the shift table
 * of the blend mode's second pass). */
int convergence_offset(const comfort *c, const float *d, const render_cuda_plan *p, int table) {
    const size_t n = (size_t)p->H * p->W;
    if (p->cfg.convergence >= 0 && p->hist_hi > p->hist_lo) {
        NN_CUDA(cudaMemsetAsync(c->hist, 0, WARP_HIST_BINS * sizeof(unsigned int), 0));
        hist_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(c->hist, d, n, p->hist_lo, p->hist_hi);
        NN_CUDA_LAUNCHED("hist_kernel");
    }
    convergence_kernel<<<1, 1>>>(c->q, table ? c->off : nullptr, c->frac, c->hist, *p);
    NN_CUDA_LAUNCHED("convergence_kernel");
    return 0;
}

} // namespace

/* ---- the job ------------------------------------------------------------------------------ */

struct render_cuda_job {
    const nn_backend *be;
    render_cuda_plan plan;      /* host tables */
    render_cuda_plan dplan;     /* the same, pointing into dblock */
    void *dblock;               /* device copy of plan.block */
    float *dleft;               /* (3, H, W) */
    float *dright;              /* (3, H, W) then (H, W): right view and disparity */
    unsigned long long *dbad;   /* first bad pixel key, UINT64_MAX if none */
    int launched;
};

namespace {
void job_release_inputs(render_cuda_job *j) {
    /* the allocator is ordered on the compute stream: queued kernels still read them */
    if (j->dblock) j->be->release(j->dblock);
    if (j->dleft) j->be->release(j->dleft);
    j->dblock = nullptr, j->dleft = nullptr;
}

__global__ void set_u64_kernel(unsigned long long *p, unsigned long long v) { *p = v; }

/* The warp mode, steps a-g of render_cuda.h, into dright (right view, then d_L); *prob
 * is released (and NULLed) once step a has read it. */
int launch_warp(render_cuda_job *j, nn_tensor **prob) {
    const render_cuda_plan *p = &j->plan;
    const size_t plane = (size_t)p->H * p->W, net_plane = (size_t)p->net_h * p->net_w, total = p->n * net_plane;
    float *right = j->dright, *dl = j->dright + 3 * plane;
    NnScratch s;
    float *dnet = (float *)(s.p[0] = nn_cuda_scratch(total * sizeof(float)));
    if (!dnet) return nn_fail_context("render (cuda): the disparities of %d windows", p->n);
    disparity_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(dnet, j->dbad, (*prob)->data, total, net_plane, p->D,
                                                              p->dmin, p->cfg.disparity);
    NN_CUDA_LAUNCHED("disparity_kernel");
    nn_tensor_unref(*prob); /* the release is ordered after the kernel */
    *prob = nullptr;
    const int n_planes = p->refine_r > 0 ? 8 : 4;
    float *sp = (float *)(s.p[1] = nn_cuda_scratch(n_planes * plane * sizeof(float)));
    s.p[2] = sp ? nn_cuda_scratch(comfort_bytes(0)) : nullptr;
    if (!s.p[2]) return nn_fail_context("render (cuda): %d scratch planes of %d x %d", n_planes, p->W, p->H);
    const comfort c = comfort_at(s.p[2], 0);
    source_disparity_kernel<<<nn_cuda_grid(plane), NN_CUDA_BLOCK>>>(sp, j->dplan, dnet);
    NN_CUDA_LAUNCHED("source_disparity_kernel");
    left_grid_kernel<<<nn_cuda_grid((size_t)p->H), NN_CUDA_BLOCK>>>(dl, sp, sp + plane, p->H, p->W, (float)p->cfg.gap);
    NN_CUDA_LAUNCHED("left_grid_kernel");
    if (p->refine_r > 0 &&
        guided_filter(dl, j->dleft, sp, p->H, p->W, p->refine_r, p->refine_k, (float)p->cfg.refine_eps))
        return -1;
    if (p->snap_rho > 0) {
        NN_CUDA(cudaMemcpyAsync(sp, dl, plane * sizeof(float), cudaMemcpyDeviceToDevice, 0));
        snap_kernel<<<nn_cuda_grid(plane), NN_CUDA_BLOCK>>>(dl, sp, j->dleft, p->H, p->W, p->snap_rho, p->snap_tau,
                                                            (float)p->cfg.snap_kappa);
        NN_CUDA_LAUNCHED("snap_kernel");
    }
    if (convergence_offset(&c, dl, &j->dplan, 0)) return -1;
    render_row_kernel<<<nn_cuda_grid((size_t)p->H), NN_CUDA_BLOCK>>>(right, j->dleft, dl, sp, j->dplan, c.q);
    NN_CUDA_LAUNCHED("render_row_kernel");
    return 0;
}

/* The blend mode into dright (right view, then E[d]): with convergence, a first pass
 * for E[d] and its offset; the pass with the shifts of strength and offset; strength 0
 * copies the left view (render_image's memcpy). */
int launch_blend(render_cuda_job *j, const nn_tensor *prob) {
    const render_cuda_plan *p = &j->plan;
    const size_t plane = (size_t)p->H * p->W;
    float *right = j->dright, *disp = j->dright + 3 * plane;
    NnScratch s;
    if (!(s.p[0] = nn_cuda_scratch(comfort_bytes(p->D)))) return nn_fail_context("render (cuda): the shift table");
    const comfort c = comfort_at(s.p[0], p->D);
    if (p->cfg.convergence >= 0 && render_cuda_blend(right, disp, j->dbad, &j->dplan, prob->data, j->dleft)) return -1;
    if (convergence_offset(&c, disp, &j->dplan, 1)) return -1;
    render_cuda_plan shifted = j->dplan;
    shifted.shift_off = c.off, shifted.shift_frac = c.frac;
    if (render_cuda_blend(right, disp, j->dbad, &shifted, prob->data, j->dleft)) return -1;
    if (p->cfg.strength == 0)
        NN_CUDA(cudaMemcpyAsync(right, j->dleft, 3 * plane * sizeof(float), cudaMemcpyDeviceToDevice, 0));
    return 0;
}

} // namespace

extern "C" void render_cuda_free(render_cuda_job *j) {
    if (!j) return;
    job_release_inputs(j);
    if (j->dright) j->be->release(j->dright);
    if (j->dbad) j->be->release(j->dbad);
    render_cuda_plan_free(&j->plan);
    free(j);
}

extern "C" int render_cuda_prepare(render_cuda_job **out, const render_config *cfg, const nn_real *left, int H,
                                   int W) {
    if (!out) return nn_fail("render_cuda_prepare: NULL job");
    *out = nullptr;
    if (!cfg || !left) return nn_fail("render_image_cuda: NULL config or image");
    const nn_backend *be = nn_backend_cuda();
    if (!be) return nn_fail_context("render (cuda)");
    render_cuda_job *j = (render_cuda_job *)calloc(1, sizeof *j);
    if (!j) return nn_fail("render (cuda): out of host memory");
    j->be = be;
    *out = j;
    if (render_cuda_plan_make(&j->plan, cfg, H, W)) return -1;
    size_t frame = (size_t)3 * H * W * sizeof(float);
    j->dblock = be->alloc(j->plan.bytes);
    j->dleft = j->dblock ? (float *)be->alloc(frame) : nullptr;
    if (!j->dleft) return nn_fail_context("render (cuda): the %d x %d frame", W, H);
    render_cuda_plan_rebase(&j->dplan, &j->plan, j->dblock);
    if (nn_cuda_upload_async(j->dblock, j->plan.block, j->plan.bytes) || nn_cuda_upload_async(j->dleft, left, frame))
        return nn_fail_context("render (cuda): uploading the frame");
    return 0;
}

extern "C" int render_cuda_launch(render_cuda_job *j, render_cuda_net_fn net, void *ctx) {
    if (!j || !net) return nn_fail("render_cuda_launch: NULL job or network callback");
    if (j->launched || !j->dleft) return nn_fail("render_cuda_launch: the job was launched already or not prepared");
    j->launched = 1;
    const render_cuda_plan *p = &j->plan;
    if (nn_cuda_wait_uploads()) return nn_fail_context("render (cuda): uploading the frame");
    nn_tensor *windows = nn_tensor_new4(NN_CUDA, p->n, 3, p->net_h, p->net_w), *prob = nullptr;
    if (!windows) return nn_fail_context("render (cuda): %d network windows", p->n);
    if (render_cuda_crop_windows(windows->data, &j->dplan, j->dleft)) {
        nn_tensor_unref(windows);
        return -1;
    }
    int rc = net(ctx, windows, &prob);
    nn_tensor_unref(windows);
    if (rc) {
        nn_tensor_unref(prob);
        return nn_fail_context("render (cuda): network failed on the batch of %d window%s (%d x %d each at the source)",
                               p->n, p->n == 1 ? "" : "s", p->win_w, p->win_h);
    }
    if (!prob || prob->device != NN_CUDA || prob->ndim != 4 || prob->shape[0] != p->n || prob->shape[1] != p->D ||
        prob->shape[2] != p->net_h || prob->shape[3] != p->net_w) {
        char got[64];
        if (prob) nn_shape_str(prob, got, sizeof got);
        nn_fail("render (cuda): the network returned %s%s, expected a cuda tensor (%d, %d, %d, %d)",
                prob ? got : "nothing", prob && prob->device != NN_CUDA ? " on the cpu" : "", p->n, p->D, p->net_h,
                p->net_w);
        nn_tensor_unref(prob);
        return -1;
    }
    size_t plane = (size_t)p->H * p->W;
    j->dright = (float *)j->be->alloc(4 * plane * sizeof(float));
    j->dbad = j->dright ? (unsigned long long *)j->be->alloc(sizeof(unsigned long long)) : nullptr;
    if (!j->dbad) {
        nn_tensor_unref(prob);
        return nn_fail_context("render (cuda): the %d x %d right view", p->W, p->H);
    }
    set_u64_kernel<<<1, 1>>>(j->dbad, ~0ull);
    cudaError_t e = cudaGetLastError();
    rc = e != cudaSuccess               ? nn_cuda_fail_rt(e, "set_u64_kernel launch", __FILE__, __LINE__)
         : p->cfg.mode == RENDER_WARP ? launch_warp(j, &prob)
                                       : launch_blend(j, prob);
    nn_tensor_unref(prob);
    job_release_inputs(j);
    return rc;
}

extern "C" int render_cuda_finish(render_cuda_job *j, nn_real *right, nn_real *disparity, render_info *info) {
    if (!j) return nn_fail("render_cuda_finish: NULL job");
    int rc = -1;
    const render_cuda_plan *p = &j->plan;
    size_t plane = (size_t)p->H * p->W;
    unsigned long long bad = 0;
    if (!right) nn_fail("render_image_cuda: NULL right view");
    else if (!j->dright) nn_fail("render_cuda_finish: the job was not launched");
    else if (!j->be->download(&bad, j->dbad, sizeof bad)) { /* waits for the job */
        if (bad != ~0ull && p->cfg.mode == RENDER_WARP) { /* key i * net_h * net_w + network pixel */
            const unsigned long long nw = (unsigned long long)p->net_w, px = bad % (nw * p->net_h);
            nn_fail("render (cuda): probabilities of window %llu at network pixel (y %llu, x %llu) do not sum to a "
                    "positive finite number", bad / (nw * p->net_h), px / nw, px % nw);
        } else if (bad != ~0ull) { /* key (y * n + i) * W + x */
            unsigned long long x = bad % (unsigned long long)p->W, rest = bad / (unsigned long long)p->W;
            nn_fail("render (cuda): probabilities of window %llu at (y %llu, x %llu) do not sum to a positive finite "
                    "number", rest % (unsigned long long)p->n, rest / (unsigned long long)p->n, x);
        } else if (!j->be->download(right, j->dright, 3 * plane * sizeof(float)) &&
                   (!disparity || !j->be->download(disparity, j->dright + 3 * plane, plane * sizeof(float)))) {
            rc = 0;
        }
    }
    if (rc == 0 && info) {
        info->n_windows = p->n, info->axis = p->axis, info->win_w = p->win_w, info->win_h = p->win_h;
        info->scale = p->scale;
    }
    render_cuda_free(j);
    return rc;
}

extern "C" int render_image_cuda(nn_real *right, nn_real *disparity, render_info *info, const render_config *cfg,
                                 render_cuda_net_fn net, void *ctx, const nn_real *left, int H, int W) {
    if (!right || !left || !net) return nn_fail("render_image_cuda: NULL array or network callback");
    render_cuda_job *j = nullptr;
    if (render_cuda_prepare(&j, cfg, left, H, W) || render_cuda_launch(j, net, ctx)) {
        render_cuda_free(j);
        return -1;
    }
    return render_cuda_finish(j, right, disparity, info);
}
