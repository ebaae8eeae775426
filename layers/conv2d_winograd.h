/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for the CPU backend, and the choice
 * between them and im2col + GEMM (layers/conv2d.c).
 *
 * Source: Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016
 * (arXiv 1509.09308), section 4: a 3x3 convolution of a 4x4 input tile d with filter g
 * gives the 2x2 output tile
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A            ((.) = element-wise product)
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2;
 * 1/2 -1/2 1/2; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1]: 16 multiplications instead of 36.
 * Summed over the input channels, the 16 element-wise products become 16 independent
 * matrix products (their eq. 12): for every xi in 0..15,
 *     M[xi] (K, T) = U[xi] (K, C) . V[xi] (C, T)
 * with U[xi][k][c] = (G g[k,c] G^T)[xi] (filter transform), V[xi][c][t] = (B^T d[c,t] B)[xi]
 * (input transform of tile t of channel c), T = tiles. Each output tile is then
 * A^T M[.][k][t] A (inverse transform). The constants are 0, +-1, +-1/2, exact in
 * binary, so the rounding error stays close to the direct sum's (measured at C = K = 128,
 * float32: 5e-7 of the output scale forward, 4e-7 for the input gradient, against 5e-7
 * and 3e-7 for im2col + GEMM; tests/test_winograd.c).
 *
 * Used for 3x3 convolutions with stride 1 and dilation 1 (any padding, odd sizes
 * handled by partial tiles): the forward pass, and the input gradient, which is the
 * 3x3 stride-1 convolution of dout with the filters rotated by 180 degrees and the
 * channels swapped, with padding 2 - pad; and the weight gradient, F(3x3, 2x2) by the
 * same trilinear form (conv2d_winograd_backward_weight_cpu below: the forward pass's
 * input transform, the output-gradient transform A y A^T, 16 products reducing over the
 * tiles, and the inverse transform G^T M G).
 */
#ifndef LAYERS_CONV2D_WINOGRAD_H
#define LAYERS_CONV2D_WINOGRAD_H

#include "../nn/backend.h"

/* The convolution algorithm of the CPU backend.
 *   NN_CONV_ALGO_AUTO:     Winograd where it is expected to be faster (conv2d_algo_cpu),
 *                          im2col + GEMM elsewhere (the default)
 *   NN_CONV_ALGO_IM2COL:   im2col + GEMM for every convolution
 *   NN_CONV_ALGO_WINOGRAD: Winograd F(2x2, 3x3) for every 3x3 stride-1 dilation-1
 *                          convolution, im2col + GEMM for the others
 *   NN_CONV_ALGO_WINOGRAD4: as NN_CONV_ALGO_WINOGRAD, but F(4x4, 3x3) for the forward
 *                          pass and the input gradient (the weight gradient stays
 *                          F(3x3, 2x2))
 * Under auto, a Winograd convolution uses F(4x4, 3x3) or F(2x2, 3x3) as
 * conv2d_winograd_tile decides. */
typedef enum {
    NN_CONV_ALGO_AUTO = 0,
    NN_CONV_ALGO_IM2COL = 1,
    NN_CONV_ALGO_WINOGRAD = 2,
    NN_CONV_ALGO_WINOGRAD4 = 3,
} nn_conv_algo;

/* Parses "auto", "im2col", "winograd" or "winograd2" (both NN_CONV_ALGO_WINOGRAD), or
 * "winograd4" (the values of DEEP3D_CONV_ALGO) into *out;
 * returns 0, or -1 + nn_fail naming the value and the accepted ones. */
int nn_conv_algo_parse(const char *text, nn_conv_algo *out);

/* The algorithm setting in force: the one given to nn_conv_algo_set, else the
 * environment variable DEEP3D_CONV_ALGO (read once, at the first call; unset or empty
 * = auto). Returns 0, or -1 + nn_fail when the variable holds an unknown value (every
 * CPU convolution then fails with that message). Thread-safe. */
int nn_conv_algo_get(nn_conv_algo *out);

/* Overrides DEEP3D_CONV_ALGO for the whole process (tests, benchmarks). */
void nn_conv_algo_set(nn_conv_algo algo);

/* 1 when the Winograd kernels apply to s: a 3x3 kernel, stride 1, dilation 1. */
int conv2d_winograd_applies(const nn_conv_shape *s);

/* Which CPU kernel conv2d_algo_cpu decides for. */
typedef enum {
    NN_CONV_DIR_FORWARD = 0,         /* conv2d_forward_cpu */
    NN_CONV_DIR_BACKWARD_DATA = 1,   /* conv2d_backward_data_cpu */
    NN_CONV_DIR_BACKWARD_WEIGHT = 2, /* conv2d_backward_weight_cpu */
} nn_conv_dir;

/* The algorithm the CPU kernels use for s under the current setting:
 * NN_CONV_ALGO_IM2COL or NN_CONV_ALGO_WINOGRAD (also under NN_CONV_ALGO_WINOGRAD4: the
 * tile size is conv2d_winograd_tile's); -1 + nn_fail on a bad setting.
 * `dir` (an nn_conv_dir) names the kernel. Auto picks Winograd when it applies, both
 * channel counts are >= 16 and there are at least 64 2x2 tiles in all (forward pass:
 * N * ceil(H_out/2) * ceil(W_out/2); input gradient: N * ceil(H_in/2) * ceil(W_in/2)),
 * or at least 128 for the weight gradient (tiles of the output, as the forward pass);
 * see layers/conv2d_winograd.c for the measurements behind these bounds. */
int conv2d_algo_cpu(const nn_conv_shape *s, int dir);

/* The output tile size m of F(m x m, 3x3) that conv2d_winograd_forward_cpu (dir
 * NN_CONV_DIR_FORWARD) and conv2d_winograd_backward_data_cpu (NN_CONV_DIR_BACKWARD_DATA)
 * use for s: 2 or 4; -1 + nn_fail on a bad setting. Setting winograd: 2; winograd4: 4;
 * auto (and im2col, should the kernels be called directly): 4 when there are at least
 * 200 4x4 tiles (forward: N * ceil(H_out/4) * ceil(W_out/4); input gradient: of H_in,
 * W_in), else 2 (measurements in layers/conv2d_winograd.c). NN_CONV_DIR_BACKWARD_WEIGHT:
 * always 2 (F(3x3, 2x2)). */
int conv2d_winograd_tile(const nn_conv_shape *s, int dir);

/* Winograd kernels, same contracts as conv2d_forward_cpu and conv2d_backward_data_cpu
 * (layers/conv2d.h) for a shape where conv2d_winograd_applies (any padding):
 *   conv2d_winograd_forward_cpu:       out (N, C_out, H_out, W_out) = conv(in, weight)
 *                                      + bias (bias may be NULL)
 *   conv2d_winograd_backward_data_cpu: din (N, C_in, H_in, W_in) += the input gradient
 *                                      for dout (N, C_out, H_out, W_out)
 * weight is (C_out, C_in, 3, 3); F(m x m, 3x3) with m = conv2d_winograd_tile(s, dir).
 * They use the calling thread's conv2d workspace: the transformed filters
 * (X*C_out*C_in values, X = 16 for m = 2, 36 for m = 4) plus X*(C_in + C_out) values
 * per tile of the chunk of tiles processed at once (chunks of 16M / (X*(C_in + C_out))
 * tiles, at least 256: 64 MB in float32); -1 + nn_fail when it cannot be allocated, or when the
 * shape does not apply. */
int conv2d_winograd_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight,
                                const nn_real *bias, const nn_conv_shape *s);
int conv2d_winograd_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight,
                                      const nn_conv_shape *s);

/* Winograd weight gradient, same contract as conv2d_backward_weight_cpu (layers/conv2d.h)
 * without the bias: dweight (C_out, C_in, 3, 3) += the weight gradient for the input
 * in (N, C_in, H_in, W_in) and the output gradient dout (N, C_out, H_out, W_out), for a
 * shape where conv2d_winograd_applies (any padding). Lavin & Gray 2016 section 5 (the
 * weight gradient is F(3x3, 2x2): a correlation of 4x4 input tiles with the 2x2 output-
 * gradient tiles): by the same trilinear form as the forward pass,
 *     dW[k,c] += G^T [ sum over tiles t of (A y[k,t] A^T) (.) (B^T d[c,t] B) ] G
 * i.e. 16 products M[xi] (C_out, C_in) += Y[xi] (C_out, T) . V[xi]^T (T, C_in) with the
 * input transform V of the forward pass, the output-gradient transform Y = A y A^T, and
 * the inverse transform G^T M G once per call. Rounding error as im2col + GEMM's
 * (measured at C = K = 128, 12x20, batch 2, float32: 5.4e-7 of the gradient's scale,
 * against 5.3e-7; tests/test_conv_wgrad.c). Workspace: 16*C_out*C_in values for M
 * plus 16*(C_in + C_out) per tile of a chunk (chunks as in the forward pass); -1 +
 * nn_fail when it cannot be allocated, or when the shape does not apply. */
int conv2d_winograd_backward_weight_cpu(nn_real *dweight, const nn_real *dout, const nn_real *in,
                                        const nn_conv_shape *s);

/* Tests: process the tiles in chunks of at most `tiles` (> 0), or, with 0, in chunks
 * sized to the workspace budget (the default). Applies to the three Winograd kernels. */
void conv2d_winograd_set_chunk(int tiles);

/* The images per product of the im2col weight gradient (layers/conv2d.c) for s: the
 * column matrices of several images side by side make one product with a longer
 * reduction. By default (see layers/conv2d.c for the measurements) 1 for a pointwise
 * kernel, and 1 when idle OpenMP threads sleep (OMP_WAIT_POLICY=passive or
 * GOMP_SPINCOUNT <= 10000 in the environment), else as many as fit a 64 MB workspace;
 * never more than N. conv2d_im2col_set_chunk(images > 0) forces `images` (tests), 0
 * restores the default. */
int conv2d_im2col_images(const nn_conv_shape *s);
void conv2d_im2col_set_chunk(int images);

/* The per-thread workspace shared by the CPU convolution kernels (layers/conv2d.c):
 * room for n values, grown on demand and kept for reuse; NULL + nn_fail("<who>: out
 * of host memory ...") when it cannot be allocated. Internal to layers/conv2d*.c. */
nn_real *conv2d_workspace(size_t n, const char *who);

#endif
