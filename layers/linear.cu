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
 */
#include "../nn/cuda_check.h"

namespace {

int set_math(void) {
    NN_CUBLAS(cublasSetMathMode(nn_cuda_cublas(), nn_cuda_precision() == NN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                          : CUBLAS_DEFAULT_MATH));
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
    if (set_math()) return -1;
    const float one = 1.0f, zero = 0.0f;
    NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in, &zero, y, out));
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
    if (set_math()) return -1;
    const float one = 1.0f;
    if (dx) NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &one, dx, in));
    if (dw) NN_CUBLAS(cublasSgemm(nn_cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &one, dw, in));
    if (db) {
        column_sum_kernel<<<(unsigned)((out + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK), NN_CUDA_BLOCK>>>(db, dy, n, out);
        NN_CUDA_LAUNCHED("column_sum_kernel");
    }
    return 0;
}
