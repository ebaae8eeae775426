/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the CPU (Lavin & Gray 2016;
 * formulas and layouts in layers/conv2d_winograd.h), and the choice of algorithm.
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
 * Wo is odd; with F(4x4, 3x3), 4x4 tiles of 6x6 inputs, and 36 matrices instead of the
 * 16 below), numbered t = (n*tiles_y + ty)*tiles_x + tx across the whole batch, so
 * that small late layers still give wide matrix products. The tiles are processed in
 * chunks of nt (chunk_tiles: a 64 MB budget, so few chunks and few thread hand-overs
 * between OpenMP and OpenBLAS):
 *   U (16, K, C)   filter transform, once per call (OpenMP over filter rows; built as
 *                  (16, C, K) and read transposed for the input gradient)
 *   V (16, C, nt)  input transform of the chunk (OpenMP over channels)
 *   M (16, K, nt)  = U[xi] . V[xi], 16 nn_cblas_gemm calls (OpenBLAS threads)
 *   out            inverse transform of M (OpenMP over output channels)
 * all in the calling thread's conv2d workspace (layers/conv2d.c), so the steady state
 * allocates nothing. The transforms work on segments of up to SEG tiles of one row of
 * tiles, with the tile index innermost, so that their loops vectorise.
 *
 * The weight gradient (conv2d_winograd_backward_weight_cpu) reuses the forward tiling:
 * per chunk, V (16, C, nt) (the forward input transform) and Y (16, K, nt) (A y A^T of
 * the 2x2 output-gradient tiles) in one OpenMP loop over C + K rows, then 16 products
 * M[xi] (K, C) += Y[xi] . V[xi]^T reducing over the chunk's tiles (OpenBLAS), and once
 * per call dweight[k,c] += G^T M[.][k][c] G (OpenMP over output channels).
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
    else if (!strcmp(text, "winograd") || !strcmp(text, "winograd2"))
        *out = NN_CONV_ALGO_WINOGRAD;
    else if (!strcmp(text, "winograd4"))
        *out = NN_CONV_ALGO_WINOGRAD4;
    else
        return nn_fail("DEEP3D_CONV_ALGO: unknown convolution algorithm \"%.40s\" (use im2col, winograd, "
                       "winograd2, winograd4 or auto)", text);
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
        return nn_fail("DEEP3D_CONV_ALGO: unknown convolution algorithm \"%.40s\" (use im2col, winograd, "
                       "winograd2, winograd4 or auto)", env ? env : "");
    }
    *out = (nn_conv_algo)v;
    return 0;
}

void nn_conv_algo_set(nn_conv_algo algo) { atomic_store(&algo_setting, (int)algo); }

int conv2d_winograd_applies(const nn_conv_shape *s) {
    return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->dilation == 1;
}

/* Auto bounds, from single-thread CPU times (OpenBLAS 0.3.21, AVX-512 Xeon) of
 * im2col / Winograd, forward and input gradient:
 *   C = K = 512, 10x24, batch 4 (240 tiles): 1.8, 1.9; batch 1 (60 tiles): 1.1, 1.0;
 *   5x12 (18 tiles): 0.6, 0.5 (the filter transform and reading U, 16/9 the size of the
 *   weights, are not repaid);  C = K = 64: 16x16 (64 tiles) 1.7, 1.4;
 *   C = K = 128, 80x192: 1.9, 1.5;  C = K = 16, 40x96: 2.2, 1.9;
 *   C = 3 -> K = 64, 160x384: 0.4 (a reduction over 3 channels makes thin products).
 * With 2 threads (wall clock, machine shared, noisy) at C = K = 128 and 256: forward
 * 1.5-2.1, input gradient 1.1-1.2 (the memory-bound transforms scale less than GEMM).
 * Hence: at least 16 channels each way (Deep3D has none between 3 and 33) and 64 tiles.
 * Weight gradient, 2 threads on a shared 2-core machine, time ratios Winograd /
 * per-image im2col (medians of A B alternations in one process), with
 * OMP_WAIT_POLICY=passive (steady): C = K = 512 at 10x24: batch 4 (240 tiles) 0.64,
 * batch 2 (120) 0.77; at 5x12 batch 4 (60 tiles) 1.08;  C = K = 256 at 10x24 batch 4
 * 0.71;  C = K = 128 at 20x48: 0.61;  C = K = 64 at 10x24: 0.80;  C = K = 33 at 20x48:
 * 0.75;  C = 512 -> K = 33 at 10x24: 0.66;  C = 3 -> K = 64 at 160x384: 3.0.  With the
 * default (spinning) wait policy, noisier and against the batched im2col path: 512
 * channels at 10x24 batch 4: 0.8, batch 2: 0.85-1.3, 16x16 batch 1 (64 tiles): 1.2;
 * C = K = 256 at 16x16 batch 1: 1.5. The fixed costs (the 16 (C_out, C_in) products M
 * and their inverse transform) want more tiles than the forward pass: 128. */
enum { AUTO_MIN_CHANNELS = 16, AUTO_MIN_TILES = 64, AUTO_MIN_TILES_WGRAD = 128 };

/* F(4x4, 3x3) rather than F(2x2, 3x3) under auto, by the number of 4x4 tiles. Time
 * ratios F(4x4) / F(2x2), N = 1, C = K, padding 1, 2 threads (OMP_WAIT_POLICY=passive)
 * on the shared 2-core AVX-512 machine (medians of 7 A B alternations of 5 calls in one
 * process; load ~2 from other jobs, so +-10%), forward / input gradient:
 *   C = 64, 160x384 (3840 tiles): 0.83 / 0.91;  C = 128, 80x192 (960): 0.89 / 0.74;
 *   C = 256, 40x96 (240): 0.97 / 0.91;  C = 512, 20x48 (60): 1.29 / 1.48;
 *   C = 512, 10x24 (18): 1.84 / 1.89.
 * F(4x4) saves 28 of 64 multiply-adds per 4x4 outputs but builds and reads a filter
 * transform 36/16 the size of F(2x2)'s (36 K C values) once per call, and its 36
 * products are thin when there are few tiles; the cost per tile does not depend on the
 * channel counts to first order, so the bound is a tile count: 200. */
enum { AUTO4_MIN_TILES = 200 };

int conv2d_algo_cpu(const nn_conv_shape *s, int dir) {
    nn_conv_algo a = NN_CONV_ALGO_AUTO;
    if (nn_conv_algo_get(&a)) return -1;
    if (a == NN_CONV_ALGO_IM2COL || !conv2d_winograd_applies(s)) return NN_CONV_ALGO_IM2COL;
    if (a == NN_CONV_ALGO_WINOGRAD || a == NN_CONV_ALGO_WINOGRAD4) return NN_CONV_ALGO_WINOGRAD;
    const int on_input = dir == NN_CONV_DIR_BACKWARD_DATA;
    const long h = on_input ? s->h_in : s->h_out, w = on_input ? s->w_in : s->w_out;
    const long tiles = (long)s->n * ((h + 1) / 2) * ((w + 1) / 2);
    const long min_tiles = dir == NN_CONV_DIR_BACKWARD_WEIGHT ? AUTO_MIN_TILES_WGRAD : AUTO_MIN_TILES;
    return s->c_in >= AUTO_MIN_CHANNELS && s->c_out >= AUTO_MIN_CHANNELS && tiles >= min_tiles
               ? NN_CONV_ALGO_WINOGRAD
               : NN_CONV_ALGO_IM2COL;
}

int conv2d_winograd_tile(const nn_conv_shape *s, int dir) {
    nn_conv_algo a = NN_CONV_ALGO_AUTO;
    if (nn_conv_algo_get(&a)) return -1;
    if (dir == NN_CONV_DIR_BACKWARD_WEIGHT || a == NN_CONV_ALGO_WINOGRAD) return 2;
    if (a == NN_CONV_ALGO_WINOGRAD4) return 4;
    const int on_input = dir == NN_CONV_DIR_BACKWARD_DATA;
    const long h = on_input ? s->h_in : s->h_out, w = on_input ? s->w_in : s->w_out;
    const long tiles4 = (long)s->n * ((h + 3) / 4) * ((w + 3) / 4);
    return tiles4 >= AUTO4_MIN_TILES ? 4 : 2;
}

/* ---- the three transforms (Lavin & Gray 2016, F(2x2, 3x3)) ------------------------- */

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
    int m; /* output tile size: 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)) */
    int relu; /* forward only: out = max(0, conv + bias), applied as each row is stored */
} wg_geom;

/* max(0, v) over one stored run of an output row (still in cache): the fused ReLU. */
static inline void relu_run(nn_real *restrict row, int len) {
    for (int u = 0; u < len; u++) row[u] = row[u] > 0 ? row[u] : 0;
}

/* Tiles are transformed a segment at a time: up to SEG consecutive tiles of one row of
 * tiles of one image, so that the loops over a segment run on contiguous arrays and
 * vectorise. */
enum { SEG = 64 };

/* Stores the cnt m x m output tiles of one segment (tile row ty, tiles tx0 ..) into
 * plane (Ho, Wo) of the output: y[(i*m + j)*SEG + u] is row i, column j of tile u. Each
 * value is written plus b, or added (accumulate); the last tile row and column may be
 * partial (Ho, Wo not multiples of m); then the fused ReLU, if any. Called with m a
 * constant (2 or 4), so that the column loop unrolls once inlined. */
static inline void store_tiles(nn_real *plane, const wg_geom *g, int m, int ty, int tx0, int cnt,
                               const nn_real *y, int accumulate, nn_real b) {
    const int rows = g->ho - m * ty < m ? g->ho - m * ty : m;
    const int whole = m * (tx0 + cnt) <= g->wo ? cnt : cnt - 1; /* tiles m columns wide */
    const int last = g->wo - m * (tx0 + whole);                 /* columns of a partial one */
    const int len = m * whole + (whole < cnt ? last : 0);
    for (int i = 0; i < rows; i++) {
        nn_real *restrict row = plane + (size_t)(m * ty + i) * g->wo + (size_t)m * tx0;
        const nn_real *yi = y + (size_t)i * m * SEG;
        if (accumulate)
            for (int u = 0; u < whole; u++)
                for (int j = 0; j < m; j++) row[m * u + j] += yi[j * SEG + u];
        else
            for (int u = 0; u < whole; u++)
                for (int j = 0; j < m; j++) row[m * u + j] = yi[j * SEG + u] + b;
        if (whole < cnt)
            for (int j = 0; j < last; j++)
                row[m * whole + j] = accumulate ? row[m * whole + j] + yi[j * SEG + whole] : yi[j * SEG + whole] + b;
        if (g->relu) relu_run(row, len);
    }
}

/* The segment that starts at tile t of a chunk ending before tile t_end: image *n, tile
 * row *ty, tiles *tx0 .. *tx0 + cnt - 1; returns cnt. */
static inline int segment(const wg_geom *g, long t, long t_end, long *n, int *ty, int *tx0) {
    const long tpi = (long)g->tiles_y * g->tiles_x, r = t % tpi;
    *n = t / tpi;
    *ty = (int)(r / g->tiles_x);
    *tx0 = (int)(r % g->tiles_x);
    long cnt = g->tiles_x - *tx0;
    if (cnt > SEG) cnt = SEG;
    if (cnt > t_end - t) cnt = t_end - t;
    return (int)cnt;
}

/* U (16 matrices us values apart, each (rows, cols)), row r: the transforms G g G^T of
 * the filters q = 0 .. cols-1, filter q's tap (i, j) read at f[q*qs + (3i + j)*ts]
 * (ts = -1 with f at tap 8 reads the filter rotated by 180 degrees). */
static void filter_transform_row(nn_real *U, size_t us, size_t r, int cols, const nn_real *f, long qs, int ts) {
    const nn_real h = (nn_real)0.5;
    for (int q0 = 0; q0 < cols; q0 += SEG) {
        const int cnt = cols - q0 < SEG ? cols - q0 : SEG;
        nn_real g[9][SEG], a[4][3][SEG];
        for (int q = 0; q < cnt; q++)
            for (int t = 0; t < 9; t++) g[t][q] = f[(q0 + q) * qs + t * ts];
        for (int j = 0; j < 3; j++) /* a = G g */
            for (int q = 0; q < cnt; q++) {
                a[0][j][q] = g[j][q];
                a[1][j][q] = h * (g[j][q] + g[3 + j][q] + g[6 + j][q]);
                a[2][j][q] = h * (g[j][q] - g[3 + j][q] + g[6 + j][q]);
                a[3][j][q] = g[6 + j][q];
            }
        nn_real *restrict dst = U + r * cols + q0;
        for (int i = 0; i < 4; i++) /* u = a G^T */
            for (int q = 0; q < cnt; q++) {
                dst[(4 * i + 0) * us + q] = a[i][0][q];
                dst[(4 * i + 1) * us + q] = h * (a[i][0][q] + a[i][1][q] + a[i][2][q]);
                dst[(4 * i + 2) * us + q] = h * (a[i][0][q] - a[i][1][q] + a[i][2][q]);
                dst[(4 * i + 3) * us + q] = a[i][2][q];
            }
    }
}

/* *e = row[x], *o = row[x + 1], zero outside [0, w). */
static inline void load_pair(nn_real *e, nn_real *o, const nn_real *row, long x, int w) {
    *e = x >= 0 && x < w ? row[x] : 0;
    *o = x + 1 >= 0 && x + 1 < w ? row[x + 1] : 0;
}

/* V (16 matrices xs values apart, each (C, nt)), row c: the transformed 4x4 input tiles
 * t0 .. t0+nt-1 of channel c (input_transform: of every channel, in parallel). The 4
 * input rows of a segment are first split into even and odd columns (zero outside the
 * image), so tile u reads columns e[u], o[u], e[u+1], o[u+1] of each row. */
static void input_transform_channel(nn_real *V, size_t xs, const nn_real *in, const wg_geom *g, long t0, int nt,
                                    int c) {
    const size_t plane = (size_t)g->h * g->w;
    for (long t = t0, cnt; t < t0 + nt; t += cnt) {
        long n;
        int ty, tx0;
        cnt = segment(g, t, t0 + nt, &n, &ty, &tx0);
        const long u0 = t - t0;
        const nn_real *p = in + ((size_t)n * g->c + c) * plane;
        nn_real e[4][SEG + 1], o[4][SEG + 1];
        /* columns x = xa + 2m (e) and xa + 2m + 1 (o), m = 0 .. cnt; m in [ma, mb) reads
         * both inside the image */
        const long xa = 2 * tx0 - g->pad;
        long ma = xa >= 0 ? 0 : (-xa + 1) / 2, mb = xa + 1 < g->w ? (g->w - xa) / 2 : 0;
        if (mb > cnt + 1) mb = cnt + 1;
        if (ma > mb) ma = mb;
        for (int i = 0; i < 4; i++) {
            const long y = 2 * ty - g->pad + i;
            if (y < 0 || y >= g->h) {
                for (int m = 0; m <= cnt; m++) e[i][m] = o[i][m] = 0;
                continue;
            }
            const nn_real *row = p + y * g->w;
            for (long m = ma; m < mb; m++) {
                e[i][m] = row[xa + 2 * m];
                o[i][m] = row[xa + 2 * m + 1];
            }
            for (long m = 0; m < ma; m++) load_pair(&e[i][m], &o[i][m], row, xa + 2 * m, g->w);
            for (long m = mb; m <= cnt; m++) load_pair(&e[i][m], &o[i][m], row, xa + 2 * m, g->w);
        }
        /* a[i][j] = (d B)[i][j] for every tile of the segment, then v = B^T (d B) */
        nn_real a[4][4][SEG];
        for (int i = 0; i < 4; i++)
            for (int u = 0; u < cnt; u++) {
                a[i][0][u] = e[i][u] - e[i][u + 1];
                a[i][1][u] = o[i][u] + e[i][u + 1];
                a[i][2][u] = e[i][u + 1] - o[i][u];
                a[i][3][u] = o[i][u] - o[i][u + 1];
            }
        nn_real *restrict dst = V + (size_t)c * nt + u0;
        for (int j = 0; j < 4; j++)
            for (int u = 0; u < cnt; u++) {
                dst[(0 + j) * xs + u] = a[0][j][u] - a[2][j][u];
                dst[(4 + j) * xs + u] = a[1][j][u] + a[2][j][u];
                dst[(8 + j) * xs + u] = a[2][j][u] - a[1][j][u];
                dst[(12 + j) * xs + u] = a[1][j][u] - a[3][j][u];
            }
    }
}

/* y (4 x SEG, row q = 2*i + j of the 2x2 tile) = A^T m A of the cnt tiles whose 16
 * transformed values lie xs apart from src (F(2x2, 3x3)). */
static void inverse_segment2(nn_real *restrict y, const nn_real *restrict src, size_t xs, int cnt) {
    for (int u = 0; u < cnt; u++) {
        nn_real m[16], yt[4];
        for (int xi = 0; xi < 16; xi++) m[xi] = src[xi * xs + u];
        output_tf(yt, m);
        for (int q = 0; q < 4; q++) y[q * SEG + u] = yt[q];
    }
}

/* ---- F(4x4, 3x3) (Lavin & Gray 2016, section 4.2) ------------------------------------ */

/* The F(4x4, 3x3) matrices, from Lavin & Gray 2016 section 4.2 (interpolation points
 * 0, 1, -1, 2, -2 and infinity; the same matrices as the authors' wincnn generator and
 * NNPACK / cuDNN's F(4x4, 3x3)):
 *   B^T = [4  0 -5  0 1 0;   G = [ 1/4     0    0  ;   A^T = [1 1  1 1  1 0;
 *          0 -4 -4  1 1 0;         -1/6  -1/6 -1/6 ;          0 1 -1 2 -2 0;
 *          0  4 -4 -1 1 0;         -1/6   1/6 -1/6 ;          0 1  1 4  4 0;
 *          0 -2 -1  2 1 0;          1/24  1/12 1/6 ;          0 1 -1 8 -8 1]
 *          0  2 -1 -2 1 0;          1/24 -1/12 1/6 ;
 *          0  4  0 -5 0 1]          0     0    1   ]
 * A 6x6 input tile d gives the 4x4 output tile A^T [(G g G^T) (.) (B^T d B)] A: 36
 * multiplications for 16 outputs (2.25 per output, against 4 for F(2x2, 3x3) and 9
 * directly). Tiles are 6x6 input windows 4 apart (rows 4*ty - pad + i), 36 products. */

/* U (36 matrices us values apart), row r: G g G^T of the filters q = 0 .. cols-1 (as
 * filter_transform_row). */
static void filter_transform4_row(nn_real *U, size_t us, size_t r, int cols, const nn_real *f, long qs, int ts) {
    const nn_real q4 = (nn_real)0.25, s6 = (nn_real)(1.0 / 6), s12 = (nn_real)(1.0 / 12),
                  s24 = (nn_real)(1.0 / 24);
    for (int q0 = 0; q0 < cols; q0 += SEG) {
        const int cnt = cols - q0 < SEG ? cols - q0 : SEG;
        nn_real g[9][SEG], a[6][3][SEG];
        for (int q = 0; q < cnt; q++)
            for (int t = 0; t < 9; t++) g[t][q] = f[(q0 + q) * qs + t * ts];
        for (int j = 0; j < 3; j++) /* a = G g */
            for (int q = 0; q < cnt; q++) {
                const nn_real g0 = g[j][q], g1 = g[3 + j][q], g2 = g[6 + j][q];
                a[0][j][q] = q4 * g0;
                a[1][j][q] = -s6 * (g0 + g1 + g2);
                a[2][j][q] = -s6 * (g0 - g1 + g2);
                a[3][j][q] = s24 * g0 + s12 * g1 + s6 * g2;
                a[4][j][q] = s24 * g0 - s12 * g1 + s6 * g2;
                a[5][j][q] = g2;
            }
        nn_real *restrict dst = U + r * cols + q0;
        for (int i = 0; i < 6; i++) /* u = a G^T */
            for (int q = 0; q < cnt; q++) {
                const nn_real a0 = a[i][0][q], a1 = a[i][1][q], a2 = a[i][2][q];
                dst[(6 * i + 0) * us + q] = q4 * a0;
                dst[(6 * i + 1) * us + q] = -s6 * (a0 + a1 + a2);
                dst[(6 * i + 2) * us + q] = -s6 * (a0 - a1 + a2);
                dst[(6 * i + 3) * us + q] = s24 * a0 + s12 * a1 + s6 * a2;
                dst[(6 * i + 4) * us + q] = s24 * a0 - s12 * a1 + s6 * a2;
                dst[(6 * i + 5) * us + q] = a2;
            }
    }
}

/* V (36 matrices xs values apart, each (C, nt)), row c: B^T d B of the 6x6 input tiles
 * t0 .. t0+nt-1 of channel c. The 6 input rows of a segment are split into 4 column
 * phases (p[k][m] = column 4m + k of the segment's window, zero outside the image), so
 * tile u reads p[0..3][u], p[0][u+1], p[1][u+1]. */
static void input_transform4_channel(nn_real *V, size_t xs, const nn_real *in, const wg_geom *g, long t0, int nt,
                                     int c) {
    const size_t plane = (size_t)g->h * g->w;
    for (long t = t0, cnt; t < t0 + nt; t += cnt) {
        long n;
        int ty, tx0;
        cnt = segment(g, t, t0 + nt, &n, &ty, &tx0);
        const long u0 = t - t0;
        const nn_real *p = in + ((size_t)n * g->c + c) * plane;
        nn_real ph[6][4][SEG + 1];
        const long xa = 4 * tx0 - g->pad;
        /* m in [ma, mb): columns xa + 4m .. xa + 4m + 3 all inside the image */
        long ma = xa >= 0 ? 0 : (-xa + 3) / 4, mb = xa + 3 < g->w ? (g->w - xa) / 4 : 0;
        if (mb > cnt + 1) mb = cnt + 1;
        if (ma > mb) ma = mb;
        for (int i = 0; i < 6; i++) {
            const long y = 4 * ty - g->pad + i;
            if (y < 0 || y >= g->h) {
                for (int k = 0; k < 4; k++)
                    for (int m = 0; m <= cnt; m++) ph[i][k][m] = 0;
                continue;
            }
            const nn_real *row = p + y * g->w;
            for (long m = ma; m < mb; m++)
                for (int k = 0; k < 4; k++) ph[i][k][m] = row[xa + 4 * m + k];
            for (long m = 0; m <= cnt; m++) {
                if (m >= ma && m < mb) continue;
                for (int k = 0; k < 4; k++) {
                    const long x = xa + 4 * m + k;
                    ph[i][k][m] = x >= 0 && x < g->w ? row[x] : 0;
                }
            }
        }
        /* a[i][j] = (d B)[i][j] = sum_k d[i][k] B^T[j][k], then v = B^T a */
        nn_real a[6][6][SEG];
        for (int i = 0; i < 6; i++)
            for (int u = 0; u < cnt; u++) {
                const nn_real d0 = ph[i][0][u], d1 = ph[i][1][u], d2 = ph[i][2][u], d3 = ph[i][3][u],
                              d4 = ph[i][0][u + 1], d5 = ph[i][1][u + 1];
                a[i][0][u] = 4 * d0 - 5 * d2 + d4;
                a[i][1][u] = -4 * (d1 + d2) + d3 + d4;
                a[i][2][u] = 4 * (d1 - d2) - d3 + d4;
                a[i][3][u] = 2 * (d3 - d1) - d2 + d4;
                a[i][4][u] = 2 * (d1 - d3) - d2 + d4;
                a[i][5][u] = 4 * d1 - 5 * d3 + d5;
            }
        nn_real *restrict dst = V + (size_t)c * nt + u0;
        for (int j = 0; j < 6; j++)
            for (int u = 0; u < cnt; u++) {
                const nn_real d0 = a[0][j][u], d1 = a[1][j][u], d2 = a[2][j][u], d3 = a[3][j][u],
                              d4 = a[4][j][u], d5 = a[5][j][u];
                dst[(0 + j) * xs + u] = 4 * d0 - 5 * d2 + d4;
                dst[(6 + j) * xs + u] = -4 * (d1 + d2) + d3 + d4;
                dst[(12 + j) * xs + u] = 4 * (d1 - d2) - d3 + d4;
                dst[(18 + j) * xs + u] = 2 * (d3 - d1) - d2 + d4;
                dst[(24 + j) * xs + u] = 2 * (d1 - d3) - d2 + d4;
                dst[(30 + j) * xs + u] = 4 * d1 - 5 * d3 + d5;
            }
    }
}

/* y (16 x SEG, row 4*i + j of the 4x4 tile) = A^T m A of the cnt tiles whose 36
 * transformed values lie xs apart from src (F(4x4, 3x3)). */
static void inverse_segment4(nn_real *restrict y, const nn_real *restrict src, size_t xs, int cnt) {
    nn_real s[4][6][SEG]; /* s = A^T m, y = s A */
    for (int j = 0; j < 6; j++)
        for (int u = 0; u < cnt; u++) {
            const nn_real m0 = src[j * xs + u], m1 = src[(6 + j) * xs + u], m2 = src[(12 + j) * xs + u],
                          m3 = src[(18 + j) * xs + u], m4 = src[(24 + j) * xs + u], m5 = src[(30 + j) * xs + u];
            const nn_real p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
            s[0][j][u] = m0 + p12 + p34;
            s[1][j][u] = d12 + 2 * d34;
            s[2][j][u] = p12 + 4 * p34;
            s[3][j][u] = d12 + 8 * d34 + m5;
        }
    for (int i = 0; i < 4; i++)
        for (int u = 0; u < cnt; u++) {
            const nn_real p12 = s[i][1][u] + s[i][2][u], d12 = s[i][1][u] - s[i][2][u],
                          p34 = s[i][3][u] + s[i][4][u], d34 = s[i][3][u] - s[i][4][u];
            nn_real *yi = y + (size_t)4 * i * SEG;
            yi[0 * SEG + u] = s[i][0][u] + p12 + p34;
            yi[1 * SEG + u] = d12 + 2 * d34;
            yi[2 * SEG + u] = p12 + 4 * p34;
            yi[3 * SEG + u] = d12 + 8 * d34 + s[i][5][u];
        }
}

/* out tiles t0 .. t0+nt-1 (=, or += when accumulate) from M (16 or 36 matrices xs
 * values apart, each (K, nt)): A^T m A per segment of tiles, plus bias (OpenMP over
 * output channels). */
static void output_transform(nn_real *out, int accumulate, const nn_real *bias, const nn_real *M, size_t xs,
                             const wg_geom *g, long t0, int nt) {
    const size_t plane = (size_t)g->ho * g->wo;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < g->k; k++) {
        const nn_real b = bias ? bias[k] : 0;
        nn_real y[16 * SEG];
        for (long t = t0, cnt; t < t0 + nt; t += cnt) {
            long n;
            int ty, tx0;
            cnt = segment(g, t, t0 + nt, &n, &ty, &tx0);
            const nn_real *src = M + (size_t)k * nt + (t - t0);
            nn_real *dst = out + ((size_t)n * g->k + k) * plane;
            if (g->m == 4) {
                inverse_segment4(y, src, xs, (int)cnt);
                store_tiles(dst, g, 4, ty, tx0, (int)cnt, y, accumulate, b);
            } else {
                inverse_segment2(y, src, xs, (int)cnt);
                store_tiles(dst, g, 2, ty, tx0, (int)cnt, y, accumulate, b);
            }
        }
    }
}

/* Workspace budget for V and M together, in values (64 MB in float32): chunks of
 * tiles are sized to it, but never below MIN_CHUNK tiles (wide enough products). */
enum { WS_BUDGET = 16 << 20, MIN_CHUNK = 256 };

static _Atomic int chunk_override; /* conv2d_winograd_set_chunk; 0 = sized to WS_BUDGET */

void conv2d_winograd_set_chunk(int tiles) { atomic_store(&chunk_override, tiles > 0 ? tiles : 0); }

static int chunk_tiles(const wg_geom *g, long total, int nxi) {
    long nt = atomic_load(&chunk_override);
    if (nt == 0) {
        nt = WS_BUDGET / ((long)nxi * (g->c + g->k));
        if (nt < MIN_CHUNK) nt = MIN_CHUNK;
    }
    if (nt > total) nt = total;
    return (int)nt;
}

/* The distance between two of the 16 matrices of U, V or M holding `size` values each:
 * rounded up to 64 bytes, plus 3 cache lines, so that the 16 streams a transform reads
 * or writes at once do not all fall into the same cache set when size is a multiple
 * of 4 KiB. */
static size_t mat_stride(size_t size) { return (size + 15) / 16 * 16 + 48; }

/* The core convolution of g by F(m x m, 3x3), m = g->m (2: 16 products, 4: 36). U[xi]
 * is built from the filters f, filter (r, q) at f + r*fr + q*fq, tap t at stride ts
 * (filter_transform_row), as a (K, C) matrix, or, with `trans`, as a (C, K) one that
 * the products read transposed (so that the filters are always read row by row in
 * memory order). Returns 0, or -1 + nn_fail when the workspace cannot be allocated. */
static int wg_conv(nn_real *out, int accumulate, const nn_real *bias, const nn_real *in, const wg_geom *g,
                   const nn_real *f, long fr, long fq, int ts, int trans, const char *who) {
    const int f4 = g->m == 4, nxi = f4 ? 36 : 16;
    const long total = (long)g->n * g->tiles_y * g->tiles_x;
    const int nt = chunk_tiles(g, total, nxi);
    const size_t us = mat_stride((size_t)g->k * g->c), vs = mat_stride((size_t)g->c * nt),
                 ms = mat_stride((size_t)g->k * nt);
    nn_real *U = conv2d_workspace(nxi * (us + vs + ms), who);
    if (!U) return -1;
    nn_real *V = U + nxi * us, *M = V + nxi * vs;
    const int rows = trans ? g->c : g->k, cols = trans ? g->k : g->c;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        if (f4)
            filter_transform4_row(U, us, r, cols, f + r * fr, fq, ts);
        else
            filter_transform_row(U, us, r, cols, f + r * fr, fq, ts);
    for (long t0 = 0; t0 < total; t0 += nt) {
        const int cnt = (int)(total - t0 < nt ? total - t0 : nt);
        const size_t xv = mat_stride((size_t)g->c * cnt), xm = mat_stride((size_t)g->k * cnt);
#pragma omp parallel for schedule(static)
        for (int c = 0; c < g->c; c++)
            if (f4)
                input_transform4_channel(V, xv, in, g, t0, cnt, c);
            else
                input_transform_channel(V, xv, in, g, t0, cnt, c);
        for (int xi = 0; xi < nxi; xi++) /* M[xi] (K, cnt) = U[xi] (K, C) . V[xi] (C, cnt) */
            nn_cblas_gemm(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, g->k, cnt, g->c, 1,
                          U + xi * us, cols, V + xi * xv, cnt, 0, M + xi * xm, cnt);
        output_transform(out, accumulate, bias, M, xm, g, t0, cnt);
    }
    return 0;
}

/* Tiles of m x m outputs over the output of g (the last row/column partial). */
static void geom_tiles(wg_geom *g, int m) {
    g->m = m;
    g->tiles_y = (g->ho + m - 1) / m;
    g->tiles_x = (g->wo + m - 1) / m;
}

int conv2d_winograd_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                                const nn_real *bias, const nn_conv_shape *s) {
    if (!conv2d_winograd_applies(s))
        return nn_fail("conv2d winograd forward: kernel %dx%d, stride %d, dilation %d (needs 3x3, stride 1, "
                       "dilation 1)", s->kh, s->kw, s->stride, s->dilation);
    const int m = conv2d_winograd_tile(s, NN_CONV_DIR_FORWARD);
    if (m < 0) return -1;
    wg_geom g = {s->n, s->c_in, s->h_in, s->w_in, s->c_out, s->h_out, s->w_out, s->pad, 0, 0, 0, s->relu};
    geom_tiles(&g, m);
    /* filter (k, c) = weight[k, c, :, :], U (K, C) */
    return wg_conv(out, 0, bias, in, &g, weight, 9L * s->c_in, 9, 1, 0, "conv2d winograd forward");
}

int conv2d_winograd_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                                      const nn_conv_shape *s) {
    if (!conv2d_winograd_applies(s))
        return nn_fail("conv2d winograd backward data: kernel %dx%d, stride %d, dilation %d (needs 3x3, "
                       "stride 1, dilation 1)", s->kh, s->kw, s->stride, s->dilation);
    /* core: dout (N, C_out, H_out, W_out) -> din (N, C_in, H_in, W_in), padding 2 - pad,
     * filter (ci, co) = weight[co, ci] rotated by 180 degrees (tap t at 8 - t), built as
     * U (C_out, C_in) in weight's order and read transposed */
    const int m = conv2d_winograd_tile(s, NN_CONV_DIR_BACKWARD_DATA);
    if (m < 0) return -1;
    wg_geom g = {s->n, s->c_out, s->h_out, s->w_out, s->c_in, s->h_in, s->w_in, 2 - s->pad, 0, 0, 0, 0};
    geom_tiles(&g, m);
    return wg_conv(din, 1, NULL, dout, &g, weight + 8, 9L * s->c_in, 9, -1, 1, "conv2d winograd backward data");
}

/* ---- weight gradient ------------------------------------------------------------------ */

/* Wd (16 matrices xs values apart, each (K, nt)), row k: the transforms A y A^T of the
 * 2x2 output-gradient tiles t0 .. t0+nt-1 of channel k (zero beyond the output: the
 * last tile row or column may be partial), A = (A^T)^T = [1 0; 1 1; 1 -1; 0 -1]. */
static void dout_transform_channel(nn_real *Wd, size_t xs, const nn_real *dout, const wg_geom *g, long t0, int nt,
                                   int k) {
    const size_t plane = (size_t)g->ho * g->wo;
    for (long t = t0, cnt; t < t0 + nt; t += cnt) {
        long n;
        int ty, tx0;
        cnt = segment(g, t, t0 + nt, &n, &ty, &tx0);
        const long u0 = t - t0;
        const nn_real *p = dout + ((size_t)n * g->k + k) * plane;
        const int rows = 2 * ty + 1 < g->ho ? 2 : 1;
        const int pairs = 2 * (tx0 + cnt) <= g->wo ? (int)cnt : (int)cnt - 1; /* whole 2x2 tiles */
        nn_real y[2][2][SEG]; /* y[a][b][u]: tile u's value at row a, column b */
        for (int a = 0; a < 2; a++) {
            if (a >= rows) {
                for (int u = 0; u < cnt; u++) y[a][0][u] = y[a][1][u] = 0;
                continue;
            }
            const nn_real *row = p + (size_t)(2 * ty + a) * g->wo + 2 * tx0;
            for (int u = 0; u < pairs; u++) y[a][0][u] = row[2 * u], y[a][1][u] = row[2 * u + 1];
            if (pairs < cnt) y[a][0][pairs] = row[2 * pairs], y[a][1][pairs] = 0;
        }
        /* h = A y (4x2), then A y A^T = h A^T (4x4) */
        nn_real h[4][2][SEG];
        for (int b = 0; b < 2; b++)
            for (int u = 0; u < cnt; u++) {
                h[0][b][u] = y[0][b][u];
                h[1][b][u] = y[0][b][u] + y[1][b][u];
                h[2][b][u] = y[0][b][u] - y[1][b][u];
                h[3][b][u] = -y[1][b][u];
            }
        nn_real *restrict dst = Wd + (size_t)k * nt + u0;
        for (int i = 0; i < 4; i++)
            for (int u = 0; u < cnt; u++) {
                dst[(4 * i + 0) * xs + u] = h[i][0][u];
                dst[(4 * i + 1) * xs + u] = h[i][0][u] + h[i][1][u];
                dst[(4 * i + 2) * xs + u] = h[i][0][u] - h[i][1][u];
                dst[(4 * i + 3) * xs + u] = -h[i][1][u];
            }
    }
}

/* dweight (K, C, 3, 3) += G^T M[.][k][c] G for every (k, c), M 16 matrices (K, C) ms
 * values apart. */
static void filter_grad_transform(nn_real *dweight, const nn_real *M, size_t ms, int K, int C) {
    const nn_real h = (nn_real)0.5;
#pragma omp parallel for schedule(static) if ((long)K * C >= 16384)
    for (int k = 0; k < K; k++)
        for (int c0 = 0; c0 < C; c0 += SEG) {
            const int cnt = C - c0 < SEG ? C - c0 : SEG;
            const nn_real *src = M + (size_t)k * C + c0;
            nn_real a[3][4][SEG]; /* a = G^T m */
            for (int j = 0; j < 4; j++)
                for (int q = 0; q < cnt; q++) {
                    const nn_real m0 = src[j * ms + q], m1 = src[(4 + j) * ms + q], m2 = src[(8 + j) * ms + q],
                                  m3 = src[(12 + j) * ms + q];
                    a[0][j][q] = m0 + h * (m1 + m2);
                    a[1][j][q] = h * (m1 - m2);
                    a[2][j][q] = h * (m1 + m2) + m3;
                }
            nn_real *dst = dweight + ((size_t)k * C + c0) * 9;
            for (int q = 0; q < cnt; q++)
                for (int i = 0; i < 3; i++) { /* r = a G */
                    dst[9 * q + 3 * i + 0] += a[i][0][q] + h * (a[i][1][q] + a[i][2][q]);
                    dst[9 * q + 3 * i + 1] += h * (a[i][1][q] - a[i][2][q]);
                    dst[9 * q + 3 * i + 2] += h * (a[i][1][q] + a[i][2][q]) + a[i][3][q];
                }
        }
}

int conv2d_winograd_backward_weight_cpu(nn_real *dweight, const nn_real *dout, const nn_real *in,
                                        const nn_conv_shape *s) {
    if (!conv2d_winograd_applies(s))
        return nn_fail("conv2d winograd backward weight: kernel %dx%d, stride %d, dilation %d (needs 3x3, "
                       "stride 1, dilation 1)", s->kh, s->kw, s->stride, s->dilation);
    /* the forward geometry: input tiles of x, output tiles of dout */
    wg_geom g = {s->n, s->c_in, s->h_in, s->w_in, s->c_out, s->h_out, s->w_out, s->pad, 0, 0, 0, 0};
    geom_tiles(&g, 2);
    const long total = (long)g.n * g.tiles_y * g.tiles_x;
    if (total == 0) return 0; /* an empty batch adds nothing */
    const int nt = chunk_tiles(&g, total, 16);
    const size_t ms = mat_stride((size_t)g.k * g.c), vs = mat_stride((size_t)g.c * nt),
                 ws = mat_stride((size_t)g.k * nt);
    nn_real *M = conv2d_workspace(16 * (ms + vs + ws), "conv2d winograd backward weight");
    if (!M) return -1;
    nn_real *V = M + 16 * ms, *Wd = V + 16 * vs;
    for (long t0 = 0; t0 < total; t0 += nt) {
        const int cnt = (int)(total - t0 < nt ? total - t0 : nt);
        const size_t xv = mat_stride((size_t)g.c * cnt), xw = mat_stride((size_t)g.k * cnt);
        /* both transforms in one parallel loop (one hand-over between OpenMP and OpenBLAS
         * threads per chunk less) */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < g.c + g.k; r++)
            if (r < g.c)
                input_transform_channel(V, xv, in, &g, t0, cnt, r);
            else
                dout_transform_channel(Wd, xw, dout, &g, t0, cnt, r - g.c);
        for (int xi = 0; xi < 16; xi++) /* M[xi] (K, C) (+)= Wd[xi] (K, cnt) . V[xi]^T (cnt, C) */
            nn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.k, g.c, cnt, 1, Wd + xi * xw, cnt,
                          V + xi * xv, cnt, t0 ? 1 : 0, M + xi * ms, g.c);
    }
    filter_grad_transform(dweight, M, ms, g.k, g.c);
    return 0;
}
