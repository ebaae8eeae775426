/* CUDA kernels of the L1 loss (layers/l1_loss.h; semantics in nn/backend.h):
 *   loss[0] = mean |pred - target| over n elements (a device scalar),
 *   dpred += dloss[0] * sign(pred - target) / n, sign(0) = 0.
 * The sum is taken in double in two stages of fixed order (a fixed number of
 * blocks write partial sums, one block adds them in order), so it is deterministic. */
#include "../nn/cuda_check.h"

namespace {

enum { L1_BLOCKS = 1024 };

__global__ void l1_partial_kernel(double *partial, const float *pred, const float *target, size_t n) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += fabs((double)pred[i] - (double)target[i]);
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void l1_finish_kernel(float *loss, const double *partial, int blocks, size_t n) {
    double acc = 0.0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) acc += partial[b];
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) loss[0] = (float)(acc / (double)n);
}

__global__ void l1_backward_kernel(float *dpred, const float *dloss, const float *pred, const float *target, size_t n) {
    float scale = dloss[0] / (float)n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float diff = pred[i] - target[i];
        if (diff > 0.0f) dpred[i] += scale;
        else if (diff < 0.0f) dpred[i] -= scale;
    }
}

} // namespace

int l1_loss_forward_cuda(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n) {
    if (!n) return nn_fail("l1 loss (cuda): no elements");
    size_t want = (n + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    int blocks = want < L1_BLOCKS ? (int)want : L1_BLOCKS;
    double *partial = (double *)nn_cuda_scratch((size_t)blocks * sizeof(double));
    if (!partial) return nn_fail_context("l1 loss (cuda)");
    l1_partial_kernel<<<(unsigned)blocks, NN_CUDA_BLOCK>>>(partial, pred, target, n);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
        l1_finish_kernel<<<1, 1024>>>(loss, partial, blocks, n);
        e = cudaGetLastError();
    }
    nn_cuda_scratch_release(partial);
    if (e != cudaSuccess) return nn_cuda_fail_rt(e, "l1 loss kernels launch", __FILE__, __LINE__);
    return 0;
}

int l1_loss_backward_cuda(nn_real *dpred, const nn_real *dloss, const nn_real *pred, const nn_real *target,
                          size_t n) {
    if (!n) return 0;
    l1_backward_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(dpred, dloss, pred, target, n);
    NN_CUDA_LAUNCHED("l1_backward_kernel");
    return 0;
}
