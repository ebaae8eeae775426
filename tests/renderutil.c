/* Helpers of the GPU rendering tests: see renderutil.h. */
#include "renderutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int ru_frames[RU_N_FRAMES][2] = {{20, 50}, {20, 160}, {60, 24}, {7, 17}, {33, 190}};

nn_real *ru_uniform(size_t n, double lo, double hi, uint64_t seed) {
    nn_real *a = malloc((n ? n : 1) * sizeof *a);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++) a[i] = (nn_real)(lo + (hi - lo) * nn_hash_uniform(seed, i));
    return a;
}

render_config ru_small_config(int mode) {
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_h = 10, cfg.net_w = 24, cfg.D = 7, cfg.dmin = -3;
    cfg.mode = mode;
    return cfg;
}

void ru_net_init(ru_net *f, const render_config *cfg, int mode) {
    memset(f, 0, sizeof *f);
    f->D = cfg->D, f->h = cfg->net_h, f->w = cfg->net_w, f->mode = mode;
    f->seen = calloc((size_t)RU_MAX_WIN * 3 * f->h * f->w, sizeof(nn_real));
    cr_assert_not_null(f->seen);
}

void ru_net_free(ru_net *f) { free(f->seen); }

void ru_prob(const ru_net *f, int index, const nn_real *window, nn_real *prob) {
    size_t plane = (size_t)f->h * f->w;
    for (size_t j = 0; j < plane; j++) {
        double v[64], s = 0;
        const double grey = (window[j] + window[plane + j] + window[2 * plane + j]) / (3 * 255.0);
        const int zero = (f->mode == 2 && index == 1) ||
                         (f->mode == 4 && index == 1 && (int)(j / f->w) >= 3 && (int)(j % f->w) >= 5);
        for (int k = 0; k < f->D; k++) {
            if (zero) v[k] = 0;
            else if (f->mode == 0) v[k] = 0.05 + nn_hash_uniform(1000 + (uint64_t)index, (uint64_t)k * plane + j);
            else if (f->mode >= 3) v[k] = exp(-0.5 * pow((k - (f->D - 1) * grey) / 0.6, 2)) + 0.02;
            else
                v[k] = 1 + k * window[j] / 255.0 + 0.5 * window[plane + j] / 255.0 * ((k + (int)j) % 3) +
                       0.25 * (window[2 * plane + j] > 128) * (k == f->D - 1);
            s += v[k];
        }
        for (int k = 0; k < f->D; k++) prob[k * plane + j] = (nn_real)(s > 0 ? v[k] / s : 0);
    }
}

int ru_net_cpu(void *ctx, const nn_real *window, nn_real *prob) {
    ru_net *f = ctx;
    if (f->fail) return nn_fail("fake network: refused");
    size_t n = (size_t)3 * f->h * f->w;
    if (f->n_seen < RU_MAX_WIN) memcpy(f->seen + (size_t)f->n_seen++ * n, window, n * sizeof(nn_real));
    ru_prob(f, f->calls++, window, prob);
    return 0;
}

int ru_net_gpu(void *ctx, nn_tensor *windows, nn_tensor **prob) {
    ru_net *f = ctx;
    f->calls++;
    if (f->fail) return nn_fail("fake network: refused");
    cr_assert_eq(windows->device, NN_CUDA);
    cr_assert(windows->ndim == 4 && windows->shape[1] == 3 && windows->shape[2] == f->h && windows->shape[3] == f->w);
    int n = windows->shape[0];
    f->batch = n;
    size_t wsize = (size_t)3 * f->h * f->w, psize = (size_t)f->D * f->h * f->w;
    nn_real *host = malloc(sizeof(nn_real) * n * wsize), *p = malloc(sizeof(nn_real) * n * psize);
    cr_assert(host && p);
    RU_OK(nn_tensor_download(windows, host));
    for (int i = 0; i < n && i < RU_MAX_WIN; i++) memcpy(f->seen + i * wsize, host + i * wsize, wsize * sizeof(nn_real));
    f->n_seen = n;
    for (int i = 0; i < n; i++) ru_prob(f, i, host + i * wsize, p + i * psize);
    *prob = nn_tensor_new4(NN_CUDA, n, f->D + f->bad_shape, f->h, f->w);
    cr_assert_not_null(*prob, "%s", nn_last_error());
    if (!f->bad_shape) RU_OK(nn_tensor_upload(*prob, p));
    free(host), free(p);
    return 0;
}

void ru_emulate_crop(nn_real *windows, const render_cuda_plan *p, const nn_real *left) {
    size_t q = 0;
    for (int i = 0; i < p->n; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < p->net_h; y++)
                for (int x = 0; x < p->net_w; x++) windows[q++] = render_cuda_window_input(p, left, i, c, y, x);
}

void ru_emulate_net(nn_real *probs, const ru_net *f, const render_cuda_plan *p, const nn_real *left) {
    const size_t wsize = (size_t)3 * p->net_h * p->net_w, psize = (size_t)p->D * p->net_h * p->net_w;
    nn_real *windows = malloc(sizeof(nn_real) * p->n * wsize);
    cr_assert_not_null(windows);
    ru_emulate_crop(windows, p, left);
    for (int i = 0; i < p->n; i++) ru_prob(f, i, windows + i * wsize, probs + i * psize);
    free(windows);
}

unsigned long long ru_emulate_blend(nn_real *right, nn_real *disp, const render_cuda_plan *p, const nn_real *probs,
                                    const nn_real *left) {
    unsigned long long bad = ULLONG_MAX;
    size_t plane = (size_t)p->H * p->W;
    for (int y = 0; y < p->H; y++)
        for (int x = 0; x < p->W; x++) {
            nn_real rgb[3], e;
            int w = render_cuda_pixel(p, probs, left, y, x, rgb, &e);
            size_t at = (size_t)y * p->W + x;
            if (w >= 0) {
                unsigned long long key = ((unsigned long long)y * p->n + w) * p->W + x;
                if (key < bad) bad = key;
                continue;
            }
            right[at] = rgb[0], right[plane + at] = rgb[1], right[2 * plane + at] = rgb[2];
            if (disp) disp[at] = e;
        }
    return bad;
}

void ru_parse_bad(const char *msg, int *i, int *y, int *x) {
    const char *at = strstr(msg, "window ");
    cr_assert_not_null(at, "%s", msg);
    cr_assert(sscanf(at, "window %d at (y %d, x %d)", i, y, x) == 3 ||
                  sscanf(at, "window %d at network pixel (y %d, x %d)", i, y, x) == 3,
              "%s", msg);
}

void ru_assert_mostly_close(const nn_real *a, const nn_real *b, size_t n, double tol, double frac, const char *what) {
    size_t over = 0, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - b[i]);
        over += !(e <= tol);
        if (!(e <= worst)) worst = e, worst_i = i;
    }
    cr_assert(over <= frac * n, "%s: %zu of %zu values differ by more than %g (worst %g at %zu: %g vs %g)", what, over,
              n, tol, worst, worst_i, n ? (double)a[worst_i] : 0.0, n ? (double)b[worst_i] : 0.0);
}

deep3d_config ru_tiny_model_config(void) {
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 64, cfg.height = 32, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 16;
    return cfg;
}
