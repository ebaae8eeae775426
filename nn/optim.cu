/* CUDA kernels of the optimizers (nn/optim.h has the update formulas and sources):
 *   SGD with momentum (PyTorch torch.optim.SGD form):
 *     g = grad + wd*w;  v = momentum*v + g;  w -= lr*v
 *   Adam (Kingma & Ba 2015, algorithm 1; torch.optim.Adam form, L2 weight decay):
 *     g = grad + wd*w;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps),  t = step (1 at the first update)
 * One thread per parameter; the bias corrections are computed once on the host in double. */
#include <math.h>

#include "cuda_check.h"

namespace {

__global__ void sgd_kernel(float *w, float *vel, const float *grad, size_t n, float lr, float momentum, float wd) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i] + wd * w[i];
        float v = momentum * vel[i] + g;
        vel[i] = v;
        w[i] -= lr * v;
    }
}

__global__ void adam_kernel(float *w, float *m, float *v, const float *grad, size_t n, float lr, float b1, float b2,
                            float eps, float wd, float bc1, float bc2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i] + wd * w[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    }
}

} // namespace

int sgd_step_cuda(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n, nn_real lr, nn_real momentum,
                  nn_real weight_decay) {
    if (!n) return 0;
    sgd_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(w, velocity, grad, n, lr, momentum, weight_decay);
    NN_CUDA_LAUNCHED("sgd_kernel");
    return 0;
}

int adam_step_cuda(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n, nn_real lr, nn_real beta1,
                   nn_real beta2, nn_real eps, nn_real weight_decay, long step) {
    if (step < 1) return nn_fail("adam (cuda): step %ld, must be >= 1 (the count of updates including this one)", step);
    if (!n) return 0;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    adam_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(w, m, v, grad, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
    NN_CUDA_LAUNCHED("adam_kernel");
    return 0;
}
