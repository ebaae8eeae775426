/* CUDA softmax over channels (layers/softmax.h; semantics in nn/backend.h) on cuDNN: at
 * every pixel (n, y, x) of an (N, C, H, W) tensor,
 *   p_k = exp(x_k - max_j x_j) / sum_j exp(x_j - max_j x_j),
 *   din_k += p_k * (dp_k - sum_j p_j dp_j).
 *   forward   cudnnSoftmaxForward,  alpha 1, beta 0
 *   backward  cudnnSoftmaxBackward, alpha 1, beta 1 (din accumulates), from the output p
 * CUDNN_SOFTMAX_ACCURATE (the maximum is subtracted first, as above) and
 * CUDNN_SOFTMAX_MODE_CHANNEL (over C at every (n, h, w)), on packed float32 NCHW
 * descriptors (N, C, H*W, 1). Descriptors are made per call and destroyed on every
 * path, as in conv2d.cu. */
#include "../nn/cuda_check.h"

namespace {

int check(const char *what, int n, int c, int hw) {
    if (n <= 0 || c <= 0 || hw <= 0) return nn_fail("%s (cuda): bad sizes N=%d C=%d HW=%d", what, n, c, hw);
    return 0;
}

int forward_body(cudnnTensorDescriptor_t t, float *out, const float *in) {
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(cudnnSoftmaxForward(nn_cuda_cudnn(), CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one, t, in, &zero,
                                 t, out));
    return 0;
}

int backward_body(cudnnTensorDescriptor_t t, float *din, const float *dout, const float *out) {
    const float one = 1.0f;
    NN_CUDNN(cudnnSoftmaxBackward(nn_cuda_cudnn(), CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one, t, out, t,
                                  dout, &one, t, din));
    return 0;
}

} // namespace

int softmax_forward_cuda(nn_real *out, const nn_real *in, int n, int c, int hw) {
    if (check("softmax", n, c, hw)) return -1;
    cudnnTensorDescriptor_t t = nullptr;
    int rc = nn_cudnn_tensor(&t, n, c, hw, 1);
    if (!rc) rc = forward_body(t, out, in);
    return nn_cudnn_tensors_destroy(rc, &t, 1);
}

int softmax_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *out, int n, int c, int hw) {
    if (check("softmax backward", n, c, hw)) return -1;
    if (!din) return 0; /* not wanted */
    cudnnTensorDescriptor_t t = nullptr;
    int rc = nn_cudnn_tensor(&t, n, c, hw, 1);
    if (!rc) rc = backward_body(t, din, dout, out);
    return nn_cudnn_tensors_destroy(rc, &t, 1);
}
