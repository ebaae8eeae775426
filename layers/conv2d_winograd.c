/* Winograd F(2x2, 3x3) convolution on the CPU (Lavin & Gray 2016; formulas and
 * layouts in layers/conv2d_winograd.h), and the choice of algorithm.
 *
 * One "core" convolution serves both directions:
 *   out[n,k,y,x] (=, or += when accumulating) bias[k] +
 *       sum over c, i, j of g[k,c,i,j] * in[n, c, y - pad + i, x - pad + j]   (0 outside)
 * for in (N, C, H, W) -> out (N, K, Ho, Wo), 3x3 filters g.
 *   forward:        in = x, out = y, g = weight, pad = pad
 *   input gradient: in = dout (N, C_out, H_out, W_out), out = din (N, C_in, H_in, W_in),
 *                   accumulating, g[c,k,i,j] = weight[k,c,2-i,2-j], pad = 2 - pad
 *                   (dx[y,x] = sum dout[y',x'] w[y-y'+pad, x-x'+pad] over the 3x3 taps,
 *                   i.e. a correlation with the rotated filter and padding 2 - pad).
 *
 * The output is covered by 2x2 tiles (the last row/column of tiles partial when Ho or
 * Wo is odd), numbered t = (n*tiles_y + ty)*tiles_x + tx across the whole batch, so
 * that small late layers still give wide matrix products. The tiles are processed in
 * chunks of `nt` (bounded so that the workspace stays a few tens of MB):
 *   U (16, K, C)   filter transform, once per call (16*K*C values; recomputed, cheap)
 *   V (16, C, nt)  input transform of the chunk (OpenMP over channels)
 *   M (16, K, nt)  = U[xi] . V[xi], 16 nn_cblas_gemm calls (OpenBLAS threads)
 *   out            inverse transform of M (OpenMP over output channels)
 * all in the calling thread's conv2d workspace (layers/conv2d.c).
 */
#include "conv2d_winograd.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/status.h"

/* ---- algorithm setting ----------------------------------------------------------- */

enum { SETTING_UNREAD = -1, SETTING_BAD = -2 };
static _Atomic int algo_setting = SETTING_UNREAD;

int nn_conv_algo_parse(const char *text, nn_conv_algo *out) {
    if (!text || !*text || !strcmp(text, "auto"))
        *out = NN_CONV_ALGO_AUTO;
    else if (!strcmp(text, "im2col"))
        *out = NN_CONV_ALGO_IM2COL;
    else if (!strcmp(text, "winograd"))
        *out = NN_CONV_ALGO_WINOGRAD;
    else
        return nn_fail("DEEP3D_CONV_ALGO: unknown convolution algorithm \"%.40s\" (use im2col, winograd "
                       "or auto)", text);
    return 0;
}

int nn_conv_algo_get(nn_conv_algo *out) {
    int v = atomic_load(&algo_setting);
    if (v == SETTING_UNREAD) {
        nn_conv_algo a = NN_CONV_ALGO_AUTO;
        int want = nn_conv_algo_parse(getenv("DEEP3D_CONV_ALGO"), &a) ? SETTING_BAD : (int)a;
        int expected = SETTING_UNREAD;
        atomic_compare_exchange_strong(&algo_setting, &expected, want);
        v = atomic_load(&algo_setting);
    }
    if (v == SETTING_BAD) {
        const char *env = getenv("DEEP3D_CONV_ALGO");
        return nn_fail("DEEP3D_CONV_ALGO: unknown convolution algorithm \"%.40s\" (use im2col, winograd "
                       "or auto)", env ? env : "");
    }
    *out = (nn_conv_algo)v;
    return 0;
}

void nn_conv_algo_set(nn_conv_algo algo) { atomic_store(&algo_setting, (int)algo); }

int conv2d_winograd_applies(const nn_conv_shape *s) {
    return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->dilation == 1;
}

/* Auto bounds. Below 16 channels the matrix products are too thin for the saved
 * multiplications to outweigh the transforms; below 32 tiles in all, likewise. */
enum { AUTO_MIN_CHANNELS = 16, AUTO_MIN_TILES = 32 };

int conv2d_algo_cpu(const nn_conv_shape *s, int backward_data) {
    nn_conv_algo a = NN_CONV_ALGO_AUTO;
    if (nn_conv_algo_get(&a)) return -1;
    if (a == NN_CONV_ALGO_IM2COL || !conv2d_winograd_applies(s)) return NN_CONV_ALGO_IM2COL;
    if (a == NN_CONV_ALGO_WINOGRAD) return NN_CONV_ALGO_WINOGRAD;
    const long h = backward_data ? s->h_in : s->h_out, w = backward_data ? s->w_in : s->w_out;
    const long tiles = (long)s->n * ((h + 1) / 2) * ((w + 1) / 2);
    return s->c_in >= AUTO_MIN_CHANNELS && s->c_out >= AUTO_MIN_CHANNELS && tiles >= AUTO_MIN_TILES
               ? NN_CONV_ALGO_WINOGRAD
               : NN_CONV_ALGO_IM2COL;
}

/* ---- the three transforms (Lavin & Gray 2016, F(2x2, 3x3)) ------------------------- */

/* u (4x4, row-major) = G g G^T for the 3x3 filter g[i][j] = f[i*si + j*sj]. */
static inline void filter_tf(nn_real *u, const nn_real *f, int si, int sj) {
    const nn_real h = (nn_real)0.5;
    nn_real t[4][3];
    for (int j = 0; j < 3; j++) {
        const nn_real g0 = f[j * sj], g1 = f[si + j * sj], g2 = f[2 * si + j * sj];
        t[0][j] = g0;
        t[1][j] = h * (g0 + g1 + g2);
        t[2][j] = h * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = t[i][0];
        u[4 * i + 1] = h * (t[i][0] + t[i][1] + t[i][2]);
        u[4 * i + 2] = h * (t[i][0] - t[i][1] + t[i][2]);
        u[4 * i + 3] = t[i][2];
    }
}

/* v (4x4) = B^T d B for the 4x4 input tile d (row-major). */
static inline void input_tf(nn_real *v, const nn_real *d) {
    nn_real t[16];
    for (int j = 0; j < 4; j++) {
        t[0 + j] = d[0 + j] - d[8 + j];
        t[4 + j] = d[4 + j] + d[8 + j];
        t[8 + j] = d[8 + j] - d[4 + j];
        t[12 + j] = d[4 + j] - d[12 + j];
    }
    for (int i = 0; i < 4; i++) {
        const nn_real *r = t + 4 * i;
        v[4 * i + 0] = r[0] - r[2];
        v[4 * i + 1] = r[1] + r[2];
        v[4 * i + 2] = r[2] - r[1];
        v[4 * i + 3] = r[1] - r[3];
    }
}

/* y (2x2) = A^T m A for the 4x4 m (row-major). */
static inline void output_tf(nn_real *y, const nn_real *m) {
    nn_real s[2][4];
    for (int j = 0; j < 4; j++) {
        s[0][j] = m[j] + m[4 + j] + m[8 + j];
        s[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
    }
    for (int i = 0; i < 2; i++) {
        y[2 * i + 0] = s[i][0] + s[i][1] + s[i][2];
        y[2 * i + 1] = s[i][1] - s[i][2] - s[i][3];
    }
}

/* ---- the core convolution ----------------------------------------------------------- */

typedef struct {
    int n, c, h, w;     /* input (N, C, H, W) */
    int k, ho, wo;      /* output (N, K, Ho, Wo) */
    int pad;            /* offset of the 3x3 window: input row y - pad + i; may be < 0 */
    int tiles_y, tiles_x;
} wg_geom;

/* V (16, C, nt): the transformed 4x4 input tiles t0 .. t0+nt-1 of every channel. */
static void input_transform(nn_real *V, const nn_real *in, const wg_geom *g, long t0, int nt) {
    const long tpi = (long)g->tiles_y * g->tiles_x;
    const size_t plane = (size_t)g->h * g->w, xs = (size_t)g->c * nt;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->c; c++) {
        long n = t0 / tpi;
        int ty = (int)(t0 % tpi) / g->tiles_x, tx = (int)(t0 % tpi) % g->tiles_x;
        nn_real *dst = V + (size_t)c * nt;
        for (int tt = 0; tt < nt; tt++) {
            const nn_real *p = in + ((size_t)n * g->c + c) * plane;
            const int y0 = 2 * ty - g->pad, x0 = 2 * tx - g->pad;
            nn_real d[16], v[16];
            if (y0 >= 0 && x0 >= 0 && y0 + 4 <= g->h && x0 + 4 <= g->w) {
                const nn_real *q = p + (size_t)y0 * g->w + x0;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) d[4 * i + j] = q[(size_t)i * g->w + j];
            } else {
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        const int y = y0 + i, x = x0 + j;
                        d[4 * i + j] = y >= 0 && y < g->h && x >= 0 && x < g->w ? p[(size_t)y * g->w + x] : 0;
                    }
            }
            input_tf(v, d);
            for (int xi = 0; xi < 16; xi++) dst[xi * xs + tt] = v[xi];
            if (++tx == g->tiles_x) {
                tx = 0;
                if (++ty == g->tiles_y) ty = 0, n++;
            }
        }
    }
}

/* out tiles t0 .. t0+nt-1 (=, or += when accumulate) from M (16, K, nt), plus bias. */
static void output_transform(nn_real *out, int accumulate, const nn_real *bias, const nn_real *M,
                             const wg_geom *g, long t0, int nt) {
    const long tpi = (long)g->tiles_y * g->tiles_x;
    const size_t plane = (size_t)g->ho * g->wo, xs = (size_t)g->k * nt;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < g->k; k++) {
        long n = t0 / tpi;
        int ty = (int)(t0 % tpi) / g->tiles_x, tx = (int)(t0 % tpi) % g->tiles_x;
        const nn_real *src = M + (size_t)k * nt;
        const nn_real b = bias ? bias[k] : 0;
        for (int tt = 0; tt < nt; tt++) {
            nn_real m[16], y[4];
            for (int xi = 0; xi < 16; xi++) m[xi] = src[xi * xs + tt];
            output_tf(y, m);
            nn_real *o = out + ((size_t)n * g->k + k) * plane + (size_t)(2 * ty) * g->wo + 2 * tx;
            const int rows = 2 * ty + 1 < g->ho ? 2 : 1, cols = 2 * tx + 1 < g->wo ? 2 : 1;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) {
                    nn_real *q = o + (size_t)i * g->wo + j;
                    *q = accumulate ? *q + y[2 * i + j] : y[2 * i + j] + b;
                }
            if (++tx == g->tiles_x) {
                tx = 0;
                if (++ty == g->tiles_y) ty = 0, n++;
            }
        }
    }
}

/* Workspace budget for V and M together, in values (32 MB in float32): chunks of
 * tiles are sized to it, but never below MIN_CHUNK tiles (wide enough products). */
enum { WS_BUDGET = 8 << 20, MIN_CHUNK = 256 };

static int chunk_tiles(const wg_geom *g, long total) {
    long nt = WS_BUDGET / (16L * (g->c + g->k));
    if (nt < MIN_CHUNK) nt = MIN_CHUNK;
    if (nt > total) nt = total;
    return (int)nt;
}

/* The core convolution: U (16, K, C) already transformed, in the workspace at ws. */
static void wg_run(nn_real *out, int accumulate, const nn_real *bias, const nn_real *in, const nn_real *U,
                   nn_real *V, nn_real *M, const wg_geom *g, int nt) {
    const long total = (long)g->n * g->tiles_y * g->tiles_x;
    for (long t0 = 0; t0 < total; t0 += nt) {
        const int cnt = (int)(total - t0 < nt ? total - t0 : nt);
        input_transform(V, in, g, t0, cnt);
        for (int xi = 0; xi < 16; xi++)
            nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->k, cnt, g->c, 1,
                          U + (size_t)xi * g->k * g->c, g->c, V + (size_t)xi * g->c * cnt, cnt, 0,
                          M + (size_t)xi * g->k * cnt, cnt);
        output_transform(out, accumulate, bias, M, g, t0, cnt);
    }
}

/* Workspace for U, V, M of the core geometry g: U at the start, V and M after it. */
static nn_real *wg_workspace(const wg_geom *g, int nt, nn_real **V, nn_real **M, const char *who) {
    const size_t u = 16 * (size_t)g->k * g->c, v = 16 * (size_t)g->c * nt, m = 16 * (size_t)g->k * nt;
    nn_real *U = conv2d_workspace(u + v + m, who);
    if (!U) return NULL;
    *V = U + u;
    *M = U + u + v;
    return U;
}

static void geom_tiles(wg_geom *g) {
    g->tiles_y = (g->ho + 1) / 2;
    g->tiles_x = (g->wo + 1) / 2;
}

int conv2d_winograd_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                                const nn_real *bias, const nn_conv_shape *s) {
    if (!conv2d_winograd_applies(s))
        return nn_fail("conv2d winograd forward: kernel %dx%d, stride %d, dilation %d (needs 3x3, stride 1, "
                       "dilation 1)", s->kh, s->kw, s->stride, s->dilation);
    wg_geom g = {s->n, s->c_in, s->h_in, s->w_in, s->c_out, s->h_out, s->w_out, s->pad, 0, 0};
    geom_tiles(&g);
    const int nt = chunk_tiles(&g, (long)g.n * g.tiles_y * g.tiles_x);
    nn_real *V, *M, *U = wg_workspace(&g, nt, &V, &M, "conv2d winograd forward");
    if (!U) return -1;
    const size_t kc = (size_t)g.k * g.c;
    /* U[xi][k][c] = (G w[k,c] G^T)[xi] */
#pragma omp parallel for schedule(static)
    for (int k = 0; k < g.k; k++)
        for (int c = 0; c < g.c; c++) {
            nn_real u[16];
            filter_tf(u, weight + ((size_t)k * g.c + c) * 9, 3, 1);
            for (int xi = 0; xi < 16; xi++) U[xi * kc + (size_t)k * g.c + c] = u[xi];
        }
    wg_run(out, 0, bias, in, U, V, M, &g, nt);
    return 0;
}

int conv2d_winograd_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                                      const nn_conv_shape *s) {
    if (!conv2d_winograd_applies(s))
        return nn_fail("conv2d winograd backward data: kernel %dx%d, stride %d, dilation %d (needs 3x3, "
                       "stride 1, dilation 1)", s->kh, s->kw, s->stride, s->dilation);
    /* core: dout (N, C_out, H_out, W_out) -> din (N, C_in, H_in, W_in), padding 2 - pad */
    wg_geom g = {s->n, s->c_out, s->h_out, s->w_out, s->c_in, s->h_in, s->w_in, 2 - s->pad, 0, 0};
    geom_tiles(&g);
    const int nt = chunk_tiles(&g, (long)g.n * g.tiles_y * g.tiles_x);
    nn_real *V, *M, *U = wg_workspace(&g, nt, &V, &M, "conv2d winograd backward data");
    if (!U) return -1;
    const size_t kc = (size_t)g.k * g.c;
    /* U[xi][ci][co] = (G rot180(w[co,ci]) G^T)[xi]: rot180(f)[i][j] = f[8 - 3i - j] */
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < g.k; ci++)
        for (int co = 0; co < g.c; co++) {
            nn_real u[16];
            filter_tf(u, weight + ((size_t)co * g.k + ci) * 9 + 8, -3, -1);
            for (int xi = 0; xi < 16; xi++) U[xi * kc + (size_t)ci * g.c + co] = u[xi];
        }
    wg_run(din, 1, NULL, dout, U, V, M, &g, nt);
    return 0;
}
