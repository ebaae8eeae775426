/* Helpers of the tests that compare the GPU rendering path with render_image
 * (tests/test_cuda_render.c: plan, crop and the blend mode; tests/test_cuda_warp.c: the
 * warp mode and the comfort controls): small settings and frames, fake networks for
 * both paths, and the CPU emulation of the crop and blend kernels. */
#ifndef TESTS_RENDERUTIL_H
#define TESTS_RENDERUTIL_H

#include "../deep3d/model.h"
#include "../infer/render.h"
#include "../infer/render_cuda.h"
#include "testutil.h"

#define RU_OK(call) cr_assert_eq((call), 0, "%s: %s", #call, nn_last_error())

/* n values uniform in [lo, hi) from seed (nn_hash_uniform); malloc'd, at least one. */
nn_real *ru_uniform(size_t n, double lo, double hi, uint64_t seed);

/* The settings of tests/test_render.c in the given mode (RENDER_BLEND or RENDER_WARP,
 * the other settings at their defaults): a 24 x 10 network (2.4:1), D = 7 from -3. */
render_config ru_small_config(int mode);

/* Frames of the tests: {H, W}. One window (2.5:1), tiled wide (8:1, windows 48 x 20),
 * tiled tall (windows 24 x 10), a frame smaller than the network (the probabilities
 * shrink: the antialiased branch), a wide frame with a non-integer window size. */
#define RU_N_FRAMES 5
extern const int ru_frames[RU_N_FRAMES][2];

/* A fake network for both paths. Its answer for window i depends on `mode`:
 *   0: random per window index;  1: from the window's pixels;
 *   2: mode 1 but window 1 all zeros;
 *   3: a scene: peaked at a disparity that follows the window's brightness (depth
 *      edges where the image has edges: occlusions, snapping);
 *   4: mode 3 but window 1 zeros from network row 3, column 5 on (a bad pixel that is
 *      not the window's first). */
#define RU_MAX_WIN 64
typedef struct {
    int D, h, w;
    int mode;
    int calls;     /* callback calls */
    int batch;     /* N of the last GPU call */
    int n_seen;
    nn_real *seen; /* (RU_MAX_WIN, 3, h, w): the windows received, in order */
    int fail;      /* 1: the callback fails */
    int bad_shape; /* GPU: return a tensor of a wrong shape */
} ru_net;

void ru_net_init(ru_net *f, const render_config *cfg, int mode);
void ru_net_free(ru_net *f);
/* prob (D, h, w) of window `index` whose pixels are `window` (3, h, w). */
void ru_prob(const ru_net *f, int index, const nn_real *window, nn_real *prob);
/* render_net_fn (CPU: one window per call) and render_cuda_net_fn (GPU: the batch is
 * downloaded, answered with ru_prob per window and uploaded). */
int ru_net_cpu(void *ctx, const nn_real *window, nn_real *prob);
int ru_net_gpu(void *ctx, nn_tensor *windows, nn_tensor **prob);
/* The probabilities (p->n, D, h, w) the GPU path would get: the emulated crop of left
 * answered per window. probs must hold p->n * D * h * w values. */
void ru_emulate_net(nn_real *probs, const ru_net *f, const render_cuda_plan *p, const nn_real *left);

/* The crop kernel on the CPU: windows (n, 3, net_h, net_w) <- left. */
void ru_emulate_crop(nn_real *windows, const render_cuda_plan *p, const nn_real *left);
/* The blend kernel on the CPU with p's shift table: right, disp (may be NULL). Returns
 * the smallest bad-pixel key (ULLONG_MAX if none), as the kernel's atomicMin. */
unsigned long long ru_emulate_blend(nn_real *right, nn_real *disp, const render_cuda_plan *p, const nn_real *probs,
                                    const nn_real *left);

/* A bad-probability message, render_image's or the GPU's, "...window I at (y Y, x X)..."
 * (blend) or "...window I at network pixel (y Y, x X)..." (warp) -> I, Y, X. */
void ru_parse_bad(const char *msg, int *i, int *y, int *x);

/* Asserts |a - b| <= tol for all but a share `frac` of the n values (b is the
 * reference), reporting the count and the worst value. */
void ru_assert_mostly_close(const nn_real *a, const nn_real *b, size_t n, double tol, double frac, const char *what);

/* A tiny Deep3D model: 64 x 32, D = 9 from -4. */
deep3d_config ru_tiny_model_config(void);

#endif
