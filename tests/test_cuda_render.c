/* The GPU rendering path (infer/render_cuda.h, infer/render.cu) in blend mode (the warp
 * mode and the comfort controls: tests/test_cuda_warp.c; the fake networks and the
 * kernels' emulation: tests/renderutil.c), the CUDA backend's pinned and asynchronous
 * uploads, and bf16 mixed precision (layers/conv2d.cu, layers/linear.cu). The reference
 * is always the CPU: render_image (infer/render.c) and the CPU backend's kernels.
 *
 * Run on any machine (host code only):
 *   - the plan: windows, scale and axis equal render_image's; the resampling tables,
 *     applied in render.c's order, reproduce render_resize bit for bit; shift table;
 *     overlap limit; rebasing;
 *   - the kernels' per-pixel code (shared with the CPU through render_cuda.h), run in
 *     plain loops: the cropped windows and the rendered right view and disparity equal
 *     render_image's BIT FOR BIT (tolerance 0) on single-window, tiled wide, tiled tall
 *     and smaller-than-network frames, with fake networks (random probabilities and
 *     probabilities computed from the window); the first bad pixel is the one
 *     render_image reports.
 * Run with a GPU (each skips itself, saying why, without one):
 *   - render_image_cuda vs render_image on the same frames and fake networks: the
 *     network is called once with N = number of windows; windows within 1e-4, right
 *     view within 2e-3 and disparity within 2e-4 (+ 1e-5 relative). The kernels are
 *     expected to be bit-exact (same operations, no fused multiply-adds); the slack is
 *     a few float ulps of values up to 255 in case a library function rounds
 *     differently. Errors: network failure, bad probabilities, bad callback output;
 *     two jobs overlapped through prepare / launch / finish (blend and warp);
 *   - a real (tiny) Deep3D model through infer_render on the GPU (one batch) vs the
 *     same model on the CPU (one window at a time): right view within 0.05 of 255,
 *     disparity within 5e-3 px (float32 convolutions summed in different orders move
 *     the probabilities by ~1e-6); in warp mode (with and without convergence) all but
 *     0.1% of the values (a warp decision at a threshold, a snap or a fold of a row's
 *     map, may flip at a pixel after such a change);
 *   - deep3d infer --device cuda vs --device cpu on two images, --render blend and
 *     warp: PNG values within 1 (warp: all but 0.1% of them, tests/test_cuda_warp.c
 *     says why);
 *   - upload: sizes around the 16 MiB chunk, the host buffer reusable on return, the
 *     pinned staging reused (no new cudaHostAlloc in a steady state); asynchronous
 *     uploads: data placed at nn_cuda_wait_uploads and usable by later kernels, host
 *     buffers reusable on return, staging reused round after round, growth with
 *     uploads pending, releasing a pending destination;
 *   - bf16 against the CPU float32 kernels, per element (u = 2^-8, the unit roundoff
 *     of bf16's 8-bit significand; A = the same sum over |operands|, T terms):
 *       conv2d fwd / bwd data / bwd weight: |gpu - cpu| <= 3u A + u |result| + 2e-6 T
 *       (operands rounded once to bf16: <= 2u + u^2 per product, the result once
 *       more: u, float32 sums: 2e-6 per term; the third u leaves room for an
 *       algorithm's internal rounding);
 *       linear: |gpu - cpu| <= 3u A + 2e-6 T (float32 result, no final rounding);
 *     with operands already representable in bf16, linear must match to float32
 *     accuracy (2e-6 T): nothing but the operands may be rounded; and on general
 *     operands bf16 must differ from float32 by more than float32 rounding could
 *     (it really ran in bf16).
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#ifndef NN_WITH_CUDA

Test(cuda_render, needs_the_cuda_build) {
    cr_skip_test("no CUDA device: this deep3d was built without CUDA (the GPU render path, uploads and bf16 "
                 "live in the CUDA build)");
}

#else

#include "../data/image.h"
#include "../deep3d/model.h"
#include "../infer/infer.h"
#include "../infer/render.h"
#include "../infer/render_cuda.h"
#include "../nn/cuda_alloc.h"
#include "../nn/cuda_plan.h"
#include "renderutil.h"

#define OK(call) cr_assert_eq((call), 0, "%s: %s", #call, nn_last_error())

/* ------------------------------------------------------------ host: the plan */

Test(cuda_render_host, plan_matches_render_plan_windows_and_render_image) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    for (int f = 0; f < RU_N_FRAMES; f++) {
        const int H = ru_frames[f][0], W = ru_frames[f][1];
        render_cuda_plan p;
        OK(render_cuda_plan_make(&p, &cfg, H, W));
        render_window win[RU_MAX_WIN];
        double s;
        int n = render_plan_windows(win, RU_MAX_WIN, &s, &cfg, H, W);
        cr_assert_eq(p.n, n, "frame %dx%d", W, H);
        cr_assert(!memcmp(p.win, win, (size_t)n * sizeof *win), "frame %dx%d: windows differ", W, H);
        cr_assert_eq(p.scale, s);
        cr_assert(p.H == H && p.W == W && p.D == cfg.D && p.dmin == cfg.dmin && p.net_h == 10 && p.net_w == 24);
        cr_assert(p.win_w == win[0].w && p.win_h == win[0].h);
        /* the axis and scale render_image reports */
        ru_net fn;
        ru_net_init(&fn, &cfg, 0);
        nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 1), *R = malloc(sizeof(nn_real) * 3 * H * W);
        render_info info;
        OK(render_image(R, NULL, &info, &cfg, ru_net_cpu, &fn, L, H, W));
        cr_assert(info.axis == p.axis && info.n_windows == p.n && info.scale == p.scale && info.win_w == p.win_w &&
                      info.win_h == p.win_h,
                  "frame %dx%d: axis %d vs %d", W, H, info.axis, p.axis);
        free(L), free(R), ru_net_free(&fn);
        render_cuda_plan_free(&p);
        render_cuda_plan_free(&p); /* idempotent */
    }
}

/* Applies a pair of tables to in (C, fy.n_in, fx.n_in) in render.c resample()'s order. */
static void table_resize(nn_real *out, const nn_real *in, int C, const render_axis_table *fy,
                         const render_axis_table *fx) {
    int W = fx->n_in, H2 = fy->n_out, W2 = fx->n_out;
    nn_real *t = malloc((size_t)W * sizeof *t);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H2; y++) {
            const nn_real *wy = fy->w + (size_t)y * fy->max_taps;
            const nn_real *src = in + ((size_t)c * fy->n_in + fy->first[y]) * W;
            for (int x = 0; x < W; x++) t[x] = wy[0] * src[x];
            for (int j = 1; j < fy->count[y]; j++)
                for (int x = 0; x < W; x++) t[x] += wy[j] * src[(size_t)j * W + x];
            for (int x = 0; x < W2; x++) {
                const nn_real *wx = fx->w + (size_t)x * fx->max_taps;
                nn_real acc = 0;
                for (int j = 0; j < fx->count[x]; j++) acc += wx[j] * t[fx->first[x] + j];
                out[((size_t)c * H2 + y) * W2 + x] = acc;
            }
        }
    free(t);
}

Test(cuda_render_host, plan_tables_reproduce_render_resize_bit_for_bit) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    for (int f = 0; f < RU_N_FRAMES; f++) {
        render_cuda_plan p;
        OK(render_cuda_plan_make(&p, &cfg, ru_frames[f][0], ru_frames[f][1]));
        /* window -> network and network -> window, on random planes */
        nn_real *a = ru_uniform((size_t)2 * p.win_h * p.win_w, 0, 255, 10 + f);
        nn_real *got = malloc(sizeof(nn_real) * 2 * (p.win_h * p.win_w + p.net_h * p.net_w));
        nn_real *want = malloc(sizeof(nn_real) * 2 * (p.win_h * p.win_w + p.net_h * p.net_w));
        table_resize(got, a, 2, &p.in_y, &p.in_x);
        OK(render_resize(want, a, 2, p.win_h, p.win_w, p.net_h, p.net_w));
        tu_assert_close(got, want, (size_t)2 * p.net_h * p.net_w, 0, 0, "window -> network tables");
        nn_real *b = ru_uniform((size_t)2 * p.net_h * p.net_w, 0, 1, 20 + f);
        table_resize(got, b, 2, &p.out_y, &p.out_x);
        OK(render_resize(want, b, 2, p.net_h, p.net_w, p.win_h, p.win_w));
        tu_assert_close(got, want, (size_t)2 * p.win_h * p.win_w, 0, 0, "network -> window tables");
        /* shift table: u_k = -s d_k = off + frac, 0 <= frac < 1 */
        for (int k = 0; k < p.D; k++) {
            double u = -p.scale * (p.dmin + k);
            cr_assert_eq(p.shift_off[k], (int)floor(u));
            cr_assert_eq(p.shift_frac[k], (nn_real)(u - floor(u)));
            cr_assert(p.shift_frac[k] >= 0 && p.shift_frac[k] < 1);
        }
        free(a), free(b), free(got), free(want);
        render_cuda_plan_free(&p);
    }
}

Test(cuda_render_host, overlap_limit_and_rebase) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    render_cuda_plan p;
    /* default overlap: at most 3 windows over a pixel (render.h: >= 25% overlap) */
    OK(render_cuda_plan_make(&p, &cfg, 20, 160));
    cr_assert(p.max_cover >= 2 && p.max_cover <= 3, "max_cover %d", p.max_cover);
    /* brute force over the columns */
    int most = 0;
    for (int x = 0; x < p.W; x++) {
        int c = 0;
        for (int i = 0; i < p.n; i++) c += x >= p.win[i].x0 && x < p.win[i].x0 + p.win[i].w;
        most = c > most ? c : most;
    }
    cr_assert_eq(p.max_cover, most);
    /* rebase: same offsets from another base */
    char *base = (char *)0x100000;
    render_cuda_plan d;
    render_cuda_plan_rebase(&d, &p, base);
    cr_assert_eq((char *)d.win - base, (char *)p.win - (char *)p.block);
    cr_assert_eq((char *)d.out_y.w - base, (char *)p.out_y.w - (char *)p.block);
    cr_assert_eq((char *)d.shift_frac - base, (char *)p.shift_frac - (char *)p.block);
    cr_assert_eq((char *)d.in_x.first - base, (char *)p.in_x.first - (char *)p.block);
    cr_assert(d.n == p.n && d.bytes == p.bytes && d.block == base);
    render_cuda_plan_free(&p);
    /* overlap 97%: windows every ~1.4 px of a 48 px window: far more than 16 over a pixel */
    cfg.min_overlap = 0.97;
    cr_assert_eq(render_cuda_plan_make(&p, &cfg, 20, 160), -1);
    cr_assert(strstr(nn_last_error(), "windows overlap at one pixel"), "%s", nn_last_error());
    cr_assert_null(p.block);
    /* bad settings are render_plan_windows' errors */
    cfg = ru_small_config(RENDER_BLEND);
    cr_assert_eq(render_cuda_plan_make(&p, &cfg, 0, 10), -1);
    cr_assert(strstr(nn_last_error(), "bad frame size"), "%s", nn_last_error());
}

/* The kernels' per-pixel code on the CPU == render_image, bit for bit. */
static void check_emulation(int H, int W, int mode) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    ru_net f;
    ru_net_init(&f, &cfg, mode);
    nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 7 + H + W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    OK(render_image(R0, E0, NULL, &cfg, ru_net_cpu, &f, L, H, W));
    render_cuda_plan p;
    OK(render_cuda_plan_make(&p, &cfg, H, W));
    size_t wsize = (size_t)3 * p.net_h * p.net_w, psize = (size_t)p.D * p.net_h * p.net_w;
    nn_real *windows = malloc(sizeof(nn_real) * p.n * wsize), *probs = malloc(sizeof(nn_real) * p.n * psize);
    ru_emulate_crop(windows, &p, L);
    cr_assert_eq(f.n_seen, p.n);
    char what[96];
    snprintf(what, sizeof what, "windows of a %dx%d frame", W, H);
    tu_assert_close(windows, f.seen, p.n * wsize, 0, 0, what);
    for (int i = 0; i < p.n; i++) ru_prob(&f, i, windows + i * wsize, probs + i * psize);
    cr_assert_eq(ru_emulate_blend(R, E, &p, probs, L), ULLONG_MAX);
    snprintf(what, sizeof what, "right view of a %dx%d frame (mode %d)", W, H, mode);
    tu_assert_close(R, R0, (size_t)3 * H * W, 0, 0, what);
    snprintf(what, sizeof what, "disparity of a %dx%d frame (mode %d)", W, H, mode);
    tu_assert_close(E, E0, (size_t)H * W, 0, 0, what);
    free(L), free(R0), free(E0), free(R), free(E), free(windows), free(probs);
    render_cuda_plan_free(&p);
    ru_net_free(&f);
}

Test(cuda_render_host, emulated_kernels_equal_render_image_bit_for_bit) {
    for (int f = 0; f < RU_N_FRAMES; f++)
        for (int mode = 0; mode < 2; mode++) check_emulation(ru_frames[f][0], ru_frames[f][1], mode);
}

Test(cuda_render_host, emulated_kernels_find_render_images_bad_pixel) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    const int H = 20, W = 160;
    ru_net f;
    ru_net_init(&f, &cfg, 2); /* window 1 answers zeros */
    nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 3), *R = malloc(sizeof(nn_real) * 3 * H * W);
    nn_real *E = malloc(sizeof(nn_real) * H * W);
    cr_assert_eq(render_image(R, E, NULL, &cfg, ru_net_cpu, &f, L, H, W), -1);
    int wi, wy, wx;
    ru_parse_bad(nn_last_error(), &wi, &wy, &wx);
    render_cuda_plan p;
    OK(render_cuda_plan_make(&p, &cfg, H, W));
    size_t wsize = (size_t)3 * p.net_h * p.net_w, psize = (size_t)p.D * p.net_h * p.net_w;
    nn_real *windows = malloc(sizeof(nn_real) * p.n * wsize), *probs = malloc(sizeof(nn_real) * p.n * psize);
    ru_emulate_crop(windows, &p, L);
    for (int i = 0; i < p.n; i++) ru_prob(&f, i, windows + i * wsize, probs + i * psize);
    unsigned long long bad = ru_emulate_blend(R, E, &p, probs, L);
    cr_assert_neq(bad, ULLONG_MAX);
    int x = (int)(bad % (unsigned long long)W), i = (int)(bad / W % (unsigned long long)p.n), y = (int)(bad / W / p.n);
    cr_assert(i == wi && y == wy && x == wx, "emulation: window %d at (y %d, x %d); render_image: %d at (%d, %d)", i,
              y, x, wi, wy, wx);
    cr_assert_eq(i, 1);
    free(L), free(R), free(E), free(windows), free(probs);
    render_cuda_plan_free(&p);
    ru_net_free(&f);
}

/* ------------------------------------------------------------ GPU */

static const nn_backend *G; /* the CUDA backend */
static const nn_backend *C; /* the CPU backend */

static void gpu_or_skip(void) {
    G = tu_require_cuda();
    C = nn_backend_cpu();
}

/* render_image_cuda vs render_image on one frame. */
static void check_gpu_frame(int H, int W, int mode) {
    render_config cfg = ru_small_config(RENDER_BLEND);
    ru_net fc, fg;
    ru_net_init(&fc, &cfg, mode);
    ru_net_init(&fg, &cfg, mode);
    nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 7 + H + W);
    nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
    nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
    render_info i0, i1;
    OK(render_image(R0, E0, &i0, &cfg, ru_net_cpu, &fc, L, H, W));
    long live = nn_tensor_live_count();
    OK(render_image_cuda(R, E, &i1, &cfg, ru_net_gpu, &fg, L, H, W));
    cr_assert_eq(nn_tensor_live_count(), live, "tensors leaked");
    cr_assert_eq(fg.calls, 1, "the network should run once, on a batch");
    cr_assert_eq(fg.batch, i0.n_windows, "batch %d for %d windows", fg.batch, i0.n_windows);
    cr_assert(i1.n_windows == i0.n_windows && i1.axis == i0.axis && i1.scale == i0.scale && i1.win_w == i0.win_w &&
              i1.win_h == i0.win_h);
    char what[96];
    snprintf(what, sizeof what, "GPU windows of a %dx%d frame", W, H);
    tu_assert_close(fg.seen, fc.seen, (size_t)i0.n_windows * 3 * cfg.net_h * cfg.net_w, 1e-4, 1e-6, what);
    snprintf(what, sizeof what, "GPU right view of a %dx%d frame (mode %d)", W, H, mode);
    tu_assert_close(R, R0, (size_t)3 * H * W, 2e-3, 1e-5, what);
    snprintf(what, sizeof what, "GPU disparity of a %dx%d frame (mode %d)", W, H, mode);
    tu_assert_close(E, E0, (size_t)H * W, 2e-4, 1e-5, what);
    /* without the disparity */
    OK(render_image_cuda(R, NULL, NULL, &cfg, ru_net_gpu, &fg, L, H, W));
    tu_assert_close(R, R0, (size_t)3 * H * W, 2e-3, 1e-5, what);
    free(L), free(R0), free(E0), free(R), free(E);
    ru_net_free(&fc), ru_net_free(&fg);
}

Test(cuda_render, single_window_frame_matches_render_image) {
    gpu_or_skip();
    check_gpu_frame(20, 50, 0);
    check_gpu_frame(20, 50, 1);
    check_gpu_frame(7, 17, 1); /* smaller than the network */
}

Test(cuda_render, tiled_wide_frame_matches_render_image) {
    gpu_or_skip();
    check_gpu_frame(20, 160, 0);
    check_gpu_frame(20, 160, 1);
    check_gpu_frame(33, 190, 1);
}

Test(cuda_render, tiled_tall_frame_matches_render_image) {
    gpu_or_skip();
    check_gpu_frame(60, 24, 0);
    check_gpu_frame(60, 24, 1);
}

Test(cuda_render, errors_name_the_cause) {
    gpu_or_skip();
    render_config cfg = ru_small_config(RENDER_BLEND);
    const int H = 20, W = 160;
    nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 3), *R = malloc(sizeof(nn_real) * 3 * H * W);
    nn_real *E = malloc(sizeof(nn_real) * H * W);
    ru_net f;
    ru_net_init(&f, &cfg, 1);
    long live = nn_tensor_live_count();
    f.fail = 1;
    cr_assert_eq(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &f, L, H, W), -1);
    cr_assert(strstr(nn_last_error(), "network failed on the batch") && strstr(nn_last_error(), "fake network: refused"),
              "%s", nn_last_error());
    f.fail = 0, f.bad_shape = 1;
    cr_assert_eq(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &f, L, H, W), -1);
    cr_assert(strstr(nn_last_error(), "the network returned"), "%s", nn_last_error());
    f.bad_shape = 0, f.mode = 2; /* window 1 all zeros: the same pixel as render_image */
    cr_assert_eq(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &f, L, H, W), -1);
    char gpu_msg[512];
    snprintf(gpu_msg, sizeof gpu_msg, "%s", nn_last_error());
    ru_net fc;
    ru_net_init(&fc, &cfg, 2);
    cr_assert_eq(render_image(R, E, NULL, &cfg, ru_net_cpu, &fc, L, H, W), -1);
    int a[3], b[3];
    ru_parse_bad(gpu_msg, &a[0], &a[1], &a[2]);
    ru_parse_bad(nn_last_error(), &b[0], &b[1], &b[2]);
    cr_assert(!memcmp(a, b, sizeof a), "GPU: %s; CPU: %s", gpu_msg, nn_last_error());
    cr_assert_eq(nn_tensor_live_count(), live, "tensors leaked on errors");
    cr_assert_eq(render_image_cuda(R, E, NULL, &cfg, ru_net_gpu, &f, L, 0, W), -1);
    cr_assert_eq(render_image_cuda(NULL, E, NULL, &cfg, ru_net_gpu, &f, L, H, W), -1);
    free(L), free(R), free(E);
    ru_net_free(&f), ru_net_free(&fc);
}

/* Two frames overlapped as deep3d infer does: prepare B while A computes; both modes. */
Test(cuda_render, overlapped_jobs_give_the_single_job_results) {
    gpu_or_skip();
    for (int mode = RENDER_WARP; mode <= RENDER_BLEND; mode++) {
        render_config cfg = ru_small_config(mode);
        const int H1 = 20, W1 = 160, H2 = 60, W2 = 24;
        nn_real *L1 = ru_uniform((size_t)3 * H1 * W1, 0, 255, 1), *L2 = ru_uniform((size_t)3 * H2 * W2, 0, 255, 2);
        nn_real *R1 = malloc(sizeof(nn_real) * 3 * H1 * W1), *E1 = malloc(sizeof(nn_real) * H1 * W1);
        nn_real *R2 = malloc(sizeof(nn_real) * 3 * H2 * W2), *E2 = malloc(sizeof(nn_real) * H2 * W2);
        nn_real *S1 = malloc(sizeof(nn_real) * 3 * H1 * W1), *D1 = malloc(sizeof(nn_real) * H1 * W1);
        nn_real *S2 = malloc(sizeof(nn_real) * 3 * H2 * W2), *D2 = malloc(sizeof(nn_real) * H2 * W2);
        ru_net f;
        ru_net_init(&f, &cfg, mode == RENDER_WARP ? 3 : 1);
        OK(render_image_cuda(S1, D1, NULL, &cfg, ru_net_gpu, &f, L1, H1, W1));
        OK(render_image_cuda(S2, D2, NULL, &cfg, ru_net_gpu, &f, L2, H2, W2));
        render_cuda_job *a = NULL, *b = NULL;
        OK(render_cuda_prepare(&a, &cfg, L1, H1, W1));
        OK(render_cuda_launch(a, ru_net_gpu, &f));
        OK(render_cuda_prepare(&b, &cfg, L2, H2, W2));
        memset(L2, 0, sizeof(nn_real) * 3 * H2 * W2); /* the host frame may be reused once prepared */
        render_info info;
        OK(render_cuda_finish(a, R1, E1, &info));
        OK(render_cuda_launch(b, ru_net_gpu, &f));
        OK(render_cuda_finish(b, R2, E2, NULL));
        tu_assert_close(R1, S1, (size_t)3 * H1 * W1, 0, 0, "first frame");
        tu_assert_close(E1, D1, (size_t)H1 * W1, 0, 0, "first disparity");
        tu_assert_close(R2, S2, (size_t)3 * H2 * W2, 0, 0, "second frame");
        tu_assert_close(E2, D2, (size_t)H2 * W2, 0, 0, "second disparity");
        render_cuda_free(NULL);
        /* a prepared job freed without launching */
        OK(render_cuda_prepare(&a, &cfg, L1, H1, W1));
        render_cuda_free(a);
        free(L1), free(L2), free(R1), free(E1), free(R2), free(E2), free(S1), free(D1), free(S2), free(D2);
        ru_net_free(&f);
    }
}

/* A real (tiny) model through infer_render: the GPU batch path vs the CPU one-window
 * path, in blend mode, in warp mode, and in warp mode with convergence. */
Test(cuda_render, tiny_model_through_infer_render_on_both_devices) {
    gpu_or_skip();
    deep3d_config mc = ru_tiny_model_config();
    deep3d_model mcpu, mgpu;
    OK(deep3d_model_init(&mcpu, &mc, NN_CPU, 5));
    OK(deep3d_model_init(&mgpu, &mc, NN_CUDA, 5));
    render_config opts;
    render_config_default(&opts);
    const int sizes[][2] = {{30, 61}, {40, 300}}; /* one window; several */
    for (int setting = 0; setting < 3; setting++) {
        opts.mode = setting == 0 ? RENDER_BLEND : RENDER_WARP, opts.convergence = setting == 2 ? 0.3 : -1;
        const render_config cfg = infer_render_config(&mcpu, &opts);
        for (int f = 0; f < 2; f++) {
            const int H = sizes[f][0], W = sizes[f][1];
            nn_real *L = ru_uniform((size_t)3 * H * W, 0, 255, 40 + f);
            nn_real *R0 = malloc(sizeof(nn_real) * 3 * H * W), *E0 = malloc(sizeof(nn_real) * H * W);
            nn_real *R = malloc(sizeof(nn_real) * 3 * H * W), *E = malloc(sizeof(nn_real) * H * W);
            render_info i0, i1;
            OK(infer_render(&mcpu, &cfg, L, H, W, R0, E0, &i0));
            OK(infer_render(&mgpu, &cfg, L, H, W, R, E, &i1));
            cr_assert_eq(i1.n_windows, i0.n_windows);
            cr_assert(f == 0 || i0.n_windows > 1);
            char what[64];
            snprintf(what, sizeof what, "tiny model right view (setting %d)", setting);
            if (setting == 0) tu_assert_close(R, R0, (size_t)3 * H * W, 0.05, 1e-4, what);
            else ru_assert_mostly_close(R, R0, (size_t)3 * H * W, 0.05, 1e-3, what);
            snprintf(what, sizeof what, "tiny model disparity (setting %d)", setting);
            if (setting == 0) tu_assert_close(E, E0, (size_t)H * W, 5e-3, 1e-4, what);
            else ru_assert_mostly_close(E, E0, (size_t)H * W, 5e-3, 1e-3, what);
            free(L), free(R0), free(E0), free(R), free(E);
        }
    }
    deep3d_model_free(&mcpu), deep3d_model_free(&mgpu);
}

/* deep3d infer on both devices: the same PNGs up to 8-bit rounding. */
static void write_image(const char *path, int w, int h, uint64_t seed) {
    image im = {.w = w, .h = h, .data = ru_uniform((size_t)3 * w * h, 0, 255, seed)};
    OK(image_save_png(&im, path));
    free(im.data);
}

Test(cuda_render, deep3d_infer_on_cuda_writes_the_cpu_images) {
    gpu_or_skip();
    char root[] = "/tmp/deep3d_cuda_render_XXXXXX", path[512], a[512], b[512], outc[512], outg[512];
    cr_assert_not_null(mkdtemp(root));
    deep3d_config mc = ru_tiny_model_config();
    deep3d_model m;
    OK(deep3d_model_init(&m, &mc, NN_CPU, 3));
    snprintf(path, sizeof path, "%s/m.d3w", root);
    OK(deep3d_model_save(&m, path, 0));
    deep3d_model_free(&m);
    snprintf(a, sizeof a, "%s/a.png", root), write_image(a, 90, 36, 1);
    snprintf(b, sizeof b, "%s/b.png", root), write_image(b, 200, 30, 2);
    const char *modes[] = {"warp", "blend"};
    for (int mode = 0; mode < 2; mode++) {
        snprintf(outc, sizeof outc, "%s/cpu_%s", root, modes[mode]);
        snprintf(outg, sizeof outg, "%s/gpu_%s", root, modes[mode]);
        tc_result r;
        tc_run(&r, root,
               (const char *const[]){"infer", "--device", "cpu", "--render", modes[mode], "--model", path, "--out", outc,
                                     a, b, NULL});
        cr_assert(r.exited && r.status == 0, "cpu: %s", r.err);
        tc_free(&r);
        tc_run(&r, root,
               (const char *const[]){"infer", "--device", "cuda", "--render", modes[mode], "--model", path, "--out",
                                     outg, a, b, NULL});
        cr_assert(r.exited && r.status == 0, "cuda: %s", r.err);
        cr_assert(strstr(r.out, "a.png: 90x36") && strstr(r.out, "b.png: 200x30"), "%s", r.out);
        tc_free(&r);
        const char *names[] = {"a_right", "a_depth", "a_sbs", "a_anaglyph", "b_right", "b_depth", "b_sbs", "b_anaglyph"};
        for (int i = 0; i < 8; i++) {
            char pc[600], pg[600], what[96];
            snprintf(pc, sizeof pc, "%s/%s.png", outc, names[i]), snprintf(pg, sizeof pg, "%s/%s.png", outg, names[i]);
            image *ic = image_load(pc), *ig = image_load(pg);
            cr_assert(ic && ig, "%s: %s", names[i], nn_last_error());
            cr_assert(ic->w == ig->w && ic->h == ig->h);
            /* the warp takes decisions at thresholds (snapping, folds of a row's map): a
             * ~1e-6 change of the probabilities may flip one at a pixel */
            snprintf(what, sizeof what, "%s (%s)", names[i], modes[mode]);
            ru_assert_mostly_close(ig->data, ic->data, (size_t)3 * ic->w * ic->h, 1.0, mode == 0 ? 1e-3 : 0, what);
            image_free(ic), image_free(ig);
        }
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

/* ------------------------------------------------------------ uploads */

static void upload_case(size_t n, uint64_t seed) {
    nn_real *h = ru_uniform(n, -1, 1, seed), *copy = malloc(n * sizeof *copy), *back = malloc(n * sizeof *back);
    memcpy(copy, h, n * sizeof *h);
    nn_real *d = G->alloc(n * sizeof *h);
    cr_assert_not_null(d, "%s", nn_last_error());
    OK(G->upload(d, h, n * sizeof *h));
    memset(h, 0xff, n * sizeof *h); /* reusable at once: the data was staged */
    OK(G->download(back, d, n * sizeof *back));
    char what[64];
    snprintf(what, sizeof what, "upload of %zu values", n);
    tu_assert_close(back, copy, n, 0, 0, what);
    G->release(d);
    free(h), free(copy), free(back);
}

Test(cuda_upload, pinned_uploads_arrive_and_staging_is_reused) {
    gpu_or_skip();
    const size_t chunk = ((size_t)16 << 20) / sizeof(nn_real);
    size_t sizes[] = {1, 7, 1000, chunk - 1, chunk, chunk + 1, 2 * chunk + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) upload_case(sizes[i], 10 + i);
    nn_cuda_upload_stats s0, s1;
    OK(nn_cuda_upload_stats_get(&s0));
    cr_assert(s0.pinned_bytes > 0 && s0.pinned_bytes <= ((size_t)2 * 16 << 20) + ((size_t)1 << 17) + s0.staging_bytes);
    for (int rep = 0; rep < 4; rep++) upload_case(chunk + 1, 100 + rep);
    OK(nn_cuda_upload_stats_get(&s1));
    cr_assert_eq(s1.pinned_allocs, s0.pinned_allocs, "a steady state allocated pinned memory %ld times",
                 s1.pinned_allocs - s0.pinned_allocs);
    cr_assert_eq(s1.uploads, s0.uploads + 4);
    /* an upload queued behind a kernel: ordered on the compute stream */
    const size_t n = 100003;
    nn_real *x = ru_uniform(n, -1, 1, 1), *y = ru_uniform(n, -1, 1, 2), *want = malloc(n * sizeof *want);
    nn_real *dx = G->alloc(n * sizeof *x), *dy = G->alloc(n * sizeof *y);
    OK(G->upload(dy, y, n * sizeof *y));
    OK(G->fill(dx, n, 3));
    OK(G->upload(dx, x, n * sizeof *x)); /* after the fill */
    OK(G->axpy(dy, 2, dx, n));           /* after the upload */
    OK(C->axpy(y, 2, x, n));
    OK(G->download(want, dy, n * sizeof *want));
    tu_assert_close(want, y, n, 1e-6, 1e-6, "upload, fill, upload, axpy in order");
    G->release(dx), G->release(dy);
    free(x), free(y), free(want);
}

Test(cuda_upload, async_uploads_are_placed_at_wait) {
    gpu_or_skip();
    const size_t n[3] = {1000, 333333, 5};
    nn_real *h[3], *keep[3], *d[3], *back = malloc(333333 * sizeof *back);
    nn_cuda_upload_stats s0, s1;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) {
            h[i] = ru_uniform(n[i], -1, 1, 10 * round + i);
            keep[i] = malloc(n[i] * sizeof(nn_real));
            memcpy(keep[i], h[i], n[i] * sizeof(nn_real));
            d[i] = G->alloc(n[i] * sizeof(nn_real));
            cr_assert_not_null(d[i], "%s", nn_last_error());
            OK(G->fill(d[i], n[i], -7)); /* queued before: must not overwrite the upload */
            OK(nn_cuda_upload_async(d[i], h[i], n[i] * sizeof(nn_real)));
            memset(h[i], 0, n[i] * sizeof(nn_real)); /* reusable on return */
        }
        OK(nn_cuda_wait_uploads());
        OK(G->axpy(d[0], 1, d[0], n[0])); /* a kernel after the wait sees the data: d0 = 2 h0 */
        for (int i = 0; i < 3; i++) {
            OK(G->download(back, d[i], n[i] * sizeof(nn_real)));
            if (i == 0)
                for (size_t j = 0; j < n[0]; j++) keep[0][j] *= 2;
            tu_assert_close(back, keep[i], n[i], 0, 0, "async upload");
            G->release(d[i]);
            free(h[i]), free(keep[i]);
        }
        if (round == 0) OK(nn_cuda_upload_stats_get(&s0));
    }
    OK(nn_cuda_upload_stats_get(&s1));
    cr_assert_eq(s1.pinned_allocs, s0.pinned_allocs, "rounds after the first allocated pinned memory");
    cr_assert_eq(s1.staging_bytes, s0.staging_bytes);
    cr_assert_eq(s1.async_uploads, s0.async_uploads + 12);
    cr_assert_eq(s1.async_rounds, s0.async_rounds + 4);
    OK(nn_cuda_wait_uploads()); /* nothing pending: a no-op */
    free(back);
}

Test(cuda_upload, async_growth_with_pending_uploads_and_release_of_a_pending_destination) {
    gpu_or_skip();
    /* a small upload, then one larger than any staging so far: the first is placed,
     * the staging grows, both arrive */
    const size_t small = 100, big = (size_t)12 << 20;
    nn_real *hs = ru_uniform(small, 0, 1, 1), *hb = ru_uniform(big, 0, 1, 2), *back = malloc(big * sizeof *back);
    nn_real *ds = G->alloc(small * sizeof *hs), *db = G->alloc(big * sizeof *hb);
    nn_cuda_upload_stats s0, s1;
    OK(nn_cuda_upload_stats_get(&s0));
    OK(nn_cuda_upload_async(ds, hs, small * sizeof *hs));
    OK(nn_cuda_upload_async(db, hb, big * sizeof *hb));
    OK(nn_cuda_wait_uploads());
    OK(nn_cuda_upload_stats_get(&s1));
    cr_assert_geq(s1.staging_bytes, big * sizeof *hb);
    OK(G->download(back, ds, small * sizeof *back));
    tu_assert_close(back, hs, small, 0, 0, "small upload before the growth");
    OK(G->download(back, db, big * sizeof *back));
    tu_assert_close(back, hb, big, 0, 0, "large upload");
    /* releasing a destination still pending: the placement is queued first, so the
     * block's next owner sees its own data */
    G->release(db);
    OK(nn_cuda_upload_async(ds, hs, small * sizeof *hs));
    G->release(ds);
    nn_real *again = G->alloc(small * sizeof *hs);
    OK(G->fill(again, small, 5));
    OK(nn_cuda_wait_uploads());
    nn_real *five = malloc(small * sizeof *five);
    for (size_t i = 0; i < small; i++) five[i] = 5;
    OK(G->download(back, again, small * sizeof *back));
    tu_assert_close(back, five, small, 0, 0, "the next owner of a released pending destination");
    G->release(again);
    cr_assert_eq(nn_cuda_upload_async(NULL, hs, 4), -1);
    OK(nn_cuda_upload_async(ds, hs, 0)); /* nothing to do */
    free(hs), free(hb), free(back), free(five);
}

/* ------------------------------------------------------------ bf16 */

static const double U = 1.0 / 256; /* bf16 unit roundoff, 2^-8 */

/* Rounds to the nearest bf16 (ties to even), as __float2bfloat16_rn. */
static nn_real bf16_round(nn_real v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    b += 0x7fffu + ((b >> 16) & 1u);
    b &= 0xffff0000u;
    memcpy(&v, &b, 4);
    return v;
}

static void set_bf16_or_fail(void) {
    cr_assert_eq(nn_cuda_set_precision("bf16"), 0,
                 "nn/cuda_plan.c must accept --precision bf16 (the change is in the cuda2 report): %s", nn_last_error());
}

/* Host and device copies of one array. */
typedef struct {
    nn_real *h, *d;
    size_t n;
} buf;

static buf mk(size_t n, double lo, double hi, uint64_t seed, int rounded) {
    buf b = {ru_uniform(n, lo, hi, seed), NULL, n};
    if (rounded)
        for (size_t i = 0; i < n; i++) b.h[i] = bf16_round(b.h[i]);
    b.d = G->alloc((n ? n : 1) * sizeof(nn_real));
    cr_assert_not_null(b.d, "%s", nn_last_error());
    OK(G->upload(b.d, b.h, n * sizeof(nn_real)));
    return b;
}

static buf mk_abs(buf b) {
    buf a = {malloc(b.n * sizeof(nn_real)), NULL, b.n};
    for (size_t i = 0; i < b.n; i++) a.h[i] = fabsf(b.h[i]);
    return a;
}

static nn_real *zeros(size_t n) {
    nn_real *z = calloc(n ? n : 1, sizeof(nn_real));
    cr_assert_not_null(z);
    return z;
}

static void drop(buf b) {
    if (b.d) G->release(b.d);
    free(b.h);
}

/* Per element: |gpu - (base + part)| <= 3u abs + u_out |part| + 2e-6 T + 1e-6 |base + part|.
 * base: the accumulated-into values (NULL: 0); u_out: rounding of the result (u or 0).
 * Returns the largest |gpu - reference|. */
static double check_bf16(const char *what, const nn_real *d_gpu, const nn_real *base, const nn_real *part,
                         const nn_real *abs_sum, size_t n, double T, double u_out) {
    nn_real *got = malloc(n * sizeof *got);
    OK(G->download(got, d_gpu, n * sizeof *got));
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double ref = (base ? base[i] : 0) + (double)part[i], err = fabs(got[i] - ref);
        double tol = 3 * U * abs_sum[i] + u_out * fabs(part[i]) + 2e-6 * T + 1e-6 * fabs(ref);
        cr_assert(err <= tol, "%s: element %zu: gpu %.8g, cpu %.8g, |diff| %.3g > %.3g (abs sum %.4g)", what, i,
                  (double)got[i], ref, err, tol, (double)abs_sum[i]);
        worst = err > worst ? err : worst;
    }
    free(got);
    return worst;
}

static nn_conv_shape conv_shape(int n, int c_in, int h_in, int w_in, int c_out, int k, int stride, int pad) {
    nn_conv_shape s = {n, c_in, h_in, w_in, c_out, 0, 0, k, k, stride, pad, 1, 0};
    s.h_out = (h_in + 2 * pad - (k - 1) - 1) / stride + 1;
    s.w_out = (w_in + 2 * pad - (k - 1) - 1) / stride + 1;
    return s;
}

/* One geometry in bf16 against CPU float32; rounded: operands already in bf16.
 * Returns the largest forward error (to show bf16 was used). */
static double conv_bf16_case(const nn_conv_shape *s, uint64_t seed, int rounded) {
    size_t n_in = (size_t)s->n * s->c_in * s->h_in * s->w_in, n_out = (size_t)s->n * s->c_out * s->h_out * s->w_out;
    size_t n_w = (size_t)s->c_out * s->c_in * s->kh * s->kw;
    buf in = mk(n_in, -1, 1, seed, rounded), w = mk(n_w, -1, 1, seed + 1, rounded), b = mk(s->c_out, -1, 1, seed + 2, 0);
    buf dout = mk(n_out, -1, 1, seed + 3, rounded), din = mk(n_in, -1, 1, seed + 4, 0), dw = mk(n_w, -1, 1, seed + 5, 0);
    buf db = mk(s->c_out, -1, 1, seed + 6, 0), out = mk(n_out, 0, 0, seed + 7, 0);
    buf ain = mk_abs(in), aw = mk_abs(w), adout = mk_abs(dout);
    double T_fwd = (double)s->c_in * s->kh * s->kw + 1, T_bd = (double)s->c_out * s->kh * s->kw,
           T_bw = (double)s->n * s->h_out * s->w_out;
    nn_real *ref = zeros(n_out), *abs_sum = zeros(n_out > n_in ? (n_out > n_w ? n_out : n_w) : (n_in > n_w ? n_in : n_w));
    char what[160];
    snprintf(what, sizeof what, "bf16 conv (%d,%d,%d,%d) k%d s%d p%d%s", s->n, s->c_in, s->h_in, s->w_in, s->kh,
             s->stride, s->pad, rounded ? " (bf16 operands)" : "");
    /* forward with bias: out = conv + b; the rounded part is the convolution alone */
    OK(C->conv2d_forward(ref, in.h, w.h, NULL, s));
    OK(C->conv2d_forward(abs_sum, ain.h, aw.h, NULL, s));
    OK(G->conv2d_forward(out.d, in.d, w.d, b.d, s));
    nn_real *bias_full = zeros(n_out);
    OK(C->bias_forward(bias_full, b.h, s->n, s->c_out, s->h_out * s->w_out));
    double fwd = check_bf16(what, out.d, bias_full, ref, abs_sum, n_out, T_fwd, U);
    /* backward data: din += conv^T(dout, w) */
    nn_real *part = zeros(n_in), *aparts = zeros(n_in);
    OK(C->conv2d_backward_data(part, dout.h, w.h, s));
    OK(C->conv2d_backward_data(aparts, adout.h, aw.h, s));
    OK(G->conv2d_backward_data(din.d, dout.d, w.d, s));
    check_bf16(what, din.d, din.h, part, aparts, n_in, T_bd, U);
    free(part), free(aparts);
    /* backward weight: dw += corr(in, dout), db += sum dout (float32) */
    part = zeros(n_w), aparts = zeros(n_w);
    OK(C->conv2d_backward_weight(part, NULL, dout.h, in.h, s));
    OK(C->conv2d_backward_weight(aparts, NULL, adout.h, ain.h, s));
    OK(G->conv2d_backward_weight(dw.d, db.d, dout.d, in.d, s));
    check_bf16(what, dw.d, dw.h, part, aparts, n_w, T_bw, U);
    OK(C->bias_backward(db.h, dout.h, s->n, s->c_out, s->h_out * s->w_out));
    nn_real *got = malloc(s->c_out * sizeof *got);
    OK(G->download(got, db.d, s->c_out * sizeof *got));
    tu_assert_close(got, db.h, s->c_out, 2e-6 * T_bw, 1e-5, "bf16 conv: the bias gradient stays float32");
    free(got), free(part), free(aparts), free(ref), free(abs_sum), free(bias_full);
    drop(in), drop(w), drop(b), drop(dout), drop(din), drop(dw), drop(db), drop(out);
    free(ain.h), free(aw.h), free(adout.h);
    return fwd;
}

Test(cuda_bf16, conv2d_is_within_bf16_bounds_of_fp32) {
    gpu_or_skip();
    set_bf16_or_fail();
    nn_conv_shape g[] = {
        conv_shape(2, 16, 9, 11, 8, 3, 1, 1), /* 3x3, padding 1 */
        conv_shape(2, 8, 13, 12, 5, 3, 2, 0), /* stride 2 */
        conv_shape(3, 32, 5, 7, 33, 1, 1, 0), /* 1x1 to 33 levels */
        conv_shape(2, 4, 12, 10, 4, 4, 2, 1), /* Deep3D's final transposed-conv geometry */
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        double e = conv_bf16_case(&g[i], 100 + 10 * i, 0);
        worst = e > worst ? e : worst;
        conv_bf16_case(&g[i], 200 + 10 * i, 1);
    }
    /* float32 alone would stay below 2e-6 T (< 3e-4 here): bf16 really ran */
    cr_assert(worst > 1e-3, "bf16 forward is as accurate as float32 (%.3g): was bf16 used?", worst);
    cr_assert_eq(nn_cuda_set_precision("fp32"), 0);
}

Test(cuda_bf16, linear_is_within_bf16_bounds_and_exact_on_bf16_operands) {
    gpu_or_skip();
    set_bf16_or_fail();
    const int n = 5, in = 300, out = 11;
    for (int rounded = 0; rounded < 2; rounded++) {
        buf x = mk((size_t)n * in, -1, 1, 1, rounded), w = mk((size_t)out * in, -1, 1, 2, rounded);
        buf b = mk(out, -1, 1, 3, 0), y = mk((size_t)n * out, 0, 0, 4, 0), dy = mk((size_t)n * out, -1, 1, 5, rounded);
        buf dx = mk((size_t)n * in, -1, 1, 6, 0), dw = mk((size_t)out * in, -1, 1, 7, 0), db = mk(out, -1, 1, 8, 0);
        buf ax = mk_abs(x), aw = mk_abs(w), ady = mk_abs(dy);
        /* when the operands are bf16 already nothing may be rounded: float32 bounds */
        const double a = rounded ? 0 : 1;
        nn_real *ref = zeros((size_t)n * out), *abs_sum = zeros((size_t)out * in);
        OK(C->linear_forward(ref, x.h, w.h, b.h, n, in, out));
        OK(C->linear_forward(abs_sum, ax.h, aw.h, NULL, n, in, out));
        for (size_t i = 0; i < (size_t)n * out; i++) abs_sum[i] *= (nn_real)a;
        OK(G->linear_forward(y.d, x.d, w.d, b.d, n, in, out));
        double fwd = check_bf16(rounded ? "bf16 linear forward, bf16 operands" : "bf16 linear forward", y.d, NULL, ref,
                                abs_sum, (size_t)n * out, in + 1, 0);
        if (!rounded) cr_assert(fwd > 1e-4, "bf16 linear is as accurate as float32 (%.3g): was bf16 used?", fwd);
        nn_real *pdx = zeros((size_t)n * in), *adx = zeros((size_t)n * in), *pdw = zeros((size_t)out * in);
        nn_real *adw = zeros((size_t)out * in);
        OK(C->linear_backward(pdx, pdw, NULL, dy.h, x.h, w.h, n, in, out));
        OK(C->linear_backward(adx, adw, NULL, ady.h, ax.h, aw.h, n, in, out));
        for (size_t i = 0; i < (size_t)n * in; i++) adx[i] *= (nn_real)a;
        for (size_t i = 0; i < (size_t)out * in; i++) adw[i] *= (nn_real)a;
        OK(G->linear_backward(dx.d, dw.d, db.d, dy.d, x.d, w.d, n, in, out));
        check_bf16("bf16 linear dx", dx.d, dx.h, pdx, adx, (size_t)n * in, out, 0);
        check_bf16("bf16 linear dW", dw.d, dw.h, pdw, adw, (size_t)out * in, n, 0);
        OK(C->linear_backward(NULL, NULL, db.h, dy.h, x.h, w.h, n, in, out));
        nn_real got[11];
        OK(G->download(got, db.d, sizeof got));
        tu_assert_close(got, db.h, out, 2e-6 * n, 1e-5, "bf16 linear: the bias gradient stays float32");
        free(ref), free(abs_sum), free(pdx), free(adx), free(pdw), free(adw);
        drop(x), drop(w), drop(b), drop(y), drop(dy), drop(dx), drop(dw), drop(db);
        free(ax.h), free(aw.h), free(ady.h);
    }
    cr_assert_eq(nn_cuda_set_precision("fp32"), 0);
}

#endif
