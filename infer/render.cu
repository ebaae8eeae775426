/* The GPU path of the single-image rendering (infer/render_cuda.h states the API, the
 * steps and the exactness argument; infer/render.c is the reference).
 *
 * Host: the plan (window plan of render_plan_windows, resampling tables equal to
 * render.c's axis filters, shift table) packed in one block for one upload; the job
 * (prepare: upload; launch: crop kernel, network on the batch, render kernel; finish:
 * download).
 * Device: two kernels, one thread per output value / pixel, each running the per-pixel
 * code of infer/render_cuda.h:
 *   crop_resize_kernel   windows (n, 3, net_h, net_w) <- left (3, H, W)
 *   blend_render_kernel  right (3, H, W), disparity (H, W) <- probs (n, D, net_h, net_w)
 * The render kernel reads each covering window's few probability taps per level three
 * times (sum per window, total, then the rendering) instead of storing D values per
 * pixel: no (D, H, W) buffer and no limit on D. Threads of a block are adjacent pixels
 * of a row, so their reads of the probabilities and of the left view are adjacent.
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
    for (int k = 0; k < p->D; k++) { /* render.c's shift_table_init */
        double u = -s * (p->dmin + k), f = floor(u);
        p->shift_off[k] = (int)f, p->shift_frac[k] = (nn_real)(u - f);
    }
    p->max_cover = max_cover(p);
    if (p->max_cover > RENDER_CUDA_MAX_COVER) {
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
    rc = e != cudaSuccess ? nn_cuda_fail_rt(e, "set_u64_kernel launch", __FILE__, __LINE__)
                          : render_cuda_blend(j->dright, j->dright + 3 * plane, j->dbad, &j->dplan, prob->data, j->dleft);
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
        if (bad != ~0ull) {
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
