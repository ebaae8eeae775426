/* CUDA kernels of the fully connected layer (layers/linear.h; semantics in
 * nn/backend.h): x (N, IN), W (OUT, IN) as torch.nn.Linear, b (OUT), y (N, OUT).
 *
 * cuBLAS is column-major; a row-major (R, C) matrix is the column-major (C, R)
 * matrix, its transpose, so (cublasSgemm, alpha 1):
 *   y  = x W^T + b    ->  y^T (OUT, N)  = op_T(W^T) x^T             beta 0, then + b
 *   dx += dy W        ->  dx^T (IN, N)  = W^T dy^T                  beta 1
 *   dW += dy^T x      ->  dW^T (IN, OUT) = x^T op_T(dy^T)           beta 1
 *   db += sum_n dy    ->  own kernel, one thread per output, rows in order
 * Precision tf32 sets CUBLAS_TF32_TENSOR_OP_MATH, fp32 CUBLAS_DEFAULT_MATH (which
 * keeps float32 precision: it never drops mantissa bits).
 * Precision bf16 (mixed precision): the operands of each product are converted to bf16
 * scratch copies (round to nearest even) and multiplied by cublasGemmEx with A and B
 * CUDA_R_16BF, C CUDA_R_32F, CUBLAS_COMPUTE_32F (a combination the cuBLAS reference
 * lists for cublasGemmEx): the products see 8-bit mantissas, the sums and the result
 * stay float32, so y is written and dx, dW accumulated (beta 1) directly in float32.
 * The bias and its gradient are float32 as in the other precisions.
 */
#include "../nn/cuda_check.h"

namespace {

int set_math(nn_precision prec) {
    NN_CUBLAS(cublasSetMathMode(nn_cuda_cublas(), prec == NN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                           : CUBLAS_DEFAULT_MATH));
    return 0;
}

/* C (m, n, column-major, ldc) = alpha op(A) op(B) + beta C with A, B bf16 and C float32. */
int gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *a, int lda, const void *b,
              int ldb, float beta, float *c, int ldc) {
    const float one = 1.0f;
    NN_CUBLAS(cublasGemmEx(nn_cuda_cublas(), ta, tb, m, n, k, &one, a, CUDA_R_16BF, lda, b, CUDA_R_16BF, ldb, &beta, c,
                           CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

__global__ void add_row_bias_kernel(float *y, const float *b, size_t total, int out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % (size_t)out];
}

/* db[o] += sum_i dy[i*out + o]: adjacent threads read adjacent columns (coalesced). */
__global__ void column_sum_kernel(float *db, const float *dy, int n, int out) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= out) return;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * out + o];
    db[o] += (float)s;
}

} // namespace

int linear_forward_cuda(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b, int n, int in, int out) {
    if (n <= 0 || in <= 0 || out <= 0) return nn_fail("linear (cuda): bad sizes N=%d IN=%d OUT=%d", n, in, out);
    const nn_precision prec = nn_cuda_precision();
    if (set_math(prec)) return -1;
    const float one = 1.0f, zero = 0.0f;
    if (prec == NN_PRECISION_BF16) {
        NnScratch t;
        if (!(t.p[0] = nn_cuda_bf16_copy(w, (size_t)out * in)) || !(t.p[1] = nn_cuda_bf16_copy(x, (size_t)n * in)))
            return nn_fail_context("linear (cuda) forward: bf16 operands");
        if (gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, t.p[0], in, t.p[1], in, 0.0f, y, out)) return -1;
    } else {
        NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y, out));
    }
    if (b) {
        size_t total = (size_t)n * out;
        add_row_bias_kernel<<<nn_cuda_grid(total), NN_CUDA_BLOCK>>>(y, b, total, out);
        NN_CUDA_LAUNCHED("add_row_bias_kernel");
    }
    return 0;
}

int linear_backward_cuda(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy, const nn_real *x, const nn_real *w,
                         int n, int in, int out) {
    if (n <= 0 || in <= 0 || out <= 0) return nn_fail("linear (cuda): bad sizes N=%d IN=%d OUT=%d", n, in, out);
    const nn_precision prec = nn_cuda_precision();
    if (set_math(prec)) return -1;
    const float one = 1.0f;
    if (prec == NN_PRECISION_BF16 && (dx || dw)) {
        NnScratch t;   /* dy, then W for dx, x for dW */
        if (!(t.p[0] = nn_cuda_bf16_copy(dy, (size_t)n * out)) ||
            (dx && !(t.p[1] = nn_cuda_bf16_copy(w, (size_t)out * in))) ||
            (dw && !(t.p[2] = nn_cuda_bf16_copy(x, (size_t)n * in))))
            return nn_fail_context("linear (cuda) backward: bf16 operands");
        if (dx && gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, t.p[1], in, t.p[0], out, 1.0f, dx, in)) return -1;
        if (dw && gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, t.p[2], in, t.p[0], out, 1.0f, dw, in)) return -1;
    } else {
        if (dx)
            NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &one, dx, in));
        if (dw)
            NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &one, dw, in));
    }
    if (db) {
        column_sum_kernel<<<(unsigned)((out + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK), NN_CUDA_BLOCK>>>(db, dy, n, out);
        NN_CUDA_LAUNCHED("column_sum_kernel");
    }
    return 0;
}
