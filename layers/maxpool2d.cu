/* CUDA max pooling (layers/maxpool2d.h; semantics in nn/backend.h) on cuDNN:
 *   forward   out  = max over each window           cudnnPoolingForward, alpha 1, beta 0
 *   backward  din += dout routed to each maximum    cudnnPoolingBackward, alpha 1, beta 1
 * Pooling descriptor: CUDNN_POOLING_MAX_DETERMINISTIC (the backward gives the same
 * result run to run, also for overlapping windows, stride < k), window k x k, stride,
 * no padding; its output size 1 + (H - k) / stride (floor) is the CPU's, and checked
 * against the geometry. CUDNN_PROPAGATE_NAN: a window holding a NaN yields NaN (as
 * torch.nn.MaxPool2d), so a diverging network is seen at the loss.
 * cuDNN keeps no indices: its backward finds each window's maximum again from the
 * forward's input x and output y, so this backend needs no argmax
 * (maxpool2d_uses_argmax = 0): the forward ignores it and the backward requires in and
 * out instead. In a window with several maxima the gradient goes to one of them, which
 * one being cuDNN's choice (the CPU takes the first in row-major order).
 * Descriptors are made per call and destroyed on every path, as in conv2d.cu. */
#include "../nn/cuda_check.h"

namespace {

struct PoolDesc {
    cudnnTensorDescriptor_t t[2] = {nullptr, nullptr};   /* x (input), y (output) */
    cudnnPoolingDescriptor_t pool = nullptr;
};

int check_shape(const nn_pool_shape *s) {
    if (s->n <= 0 || s->c <= 0 || s->k <= 0 || s->stride <= 0 || s->h_out <= 0 || s->w_out <= 0 ||
        (s->h_out - 1) * s->stride + s->k > s->h_in || (s->w_out - 1) * s->stride + s->k > s->w_in)
        return nn_fail("maxpool2d (cuda): inconsistent geometry: input %dx%d, output %dx%d, window %d, stride %d",
                       s->h_in, s->w_in, s->h_out, s->w_out, s->k, s->stride);
    return 0;
}

int desc_create(PoolDesc *d, const nn_pool_shape *s) {
    if (check_shape(s) || nn_cudnn_tensor(&d->t[0], s->n, s->c, s->h_in, s->w_in) ||
        nn_cudnn_tensor(&d->t[1], s->n, s->c, s->h_out, s->w_out))
        return -1;
    NN_CUDNN(cudnnCreatePoolingDescriptor(&d->pool));
    NN_CUDNN(cudnnSetPooling2dDescriptor(d->pool, CUDNN_POOLING_MAX_DETERMINISTIC, CUDNN_PROPAGATE_NAN, s->k, s->k, 0,
                                         0, s->stride, s->stride));
    int n = 0, c = 0, h = 0, w = 0;
    NN_CUDNN(cudnnGetPooling2dForwardOutputDim(d->pool, d->t[0], &n, &c, &h, &w));
    if (n != s->n || c != s->c || h != s->h_out || w != s->w_out)
        return nn_fail("maxpool2d (cuda): inconsistent geometry: input %dx%d, window %d, stride %d gives %dx%d in "
                       "cuDNN, not %dx%d",
                       s->h_in, s->w_in, s->k, s->stride, h, w, s->h_out, s->w_out);
    return 0;
}

/* Destroys the descriptors; keeps rc and its message when the body failed, else
 * reports a failed destroy. */
int desc_finish(PoolDesc *d, int rc) {
    if (d->pool) {
        cudnnStatus_t st = cudnnDestroyPoolingDescriptor(d->pool);
        d->pool = nullptr;
        if (st != CUDNN_STATUS_SUCCESS && rc == 0)
            rc = nn_cuda_fail_cudnn(st, "cudnnDestroyPoolingDescriptor(d->pool)", __FILE__, __LINE__);
    }
    return nn_cudnn_tensors_destroy(rc, d->t, 2);
}

int forward_body(const PoolDesc *d, float *out, const float *in) {
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(cudnnPoolingForward(nn_cuda_cudnn(), d->pool, &one, d->t[0], in, &zero, d->t[1], out));
    return 0;
}

/* din = 1 * (gradient routed to the maxima) + 1 * din: accumulates. */
int backward_body(const PoolDesc *d, float *din, const float *dout, const float *in, const float *out) {
    const float one = 1.0f;
    NN_CUDNN(cudnnPoolingBackward(nn_cuda_cudnn(), d->pool, &one, d->t[1], out, d->t[1], dout, d->t[0], in, &one,
                                  d->t[0], din));
    return 0;
}

} // namespace

int maxpool2d_forward_cuda(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s) {
    (void)argmax; /* not used by this backend (maxpool2d_uses_argmax = 0) */
    PoolDesc d;
    int rc = desc_create(&d, s);
    if (!rc) rc = forward_body(&d, out, in);
    return desc_finish(&d, rc);
}

int maxpool2d_backward_cuda(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *out,
                            const nn_real *argmax, const nn_pool_shape *s) {
    (void)argmax; /* the maxima are found again from in and out */
    if (!in || !out) return nn_fail("maxpool2d backward (cuda): needs the forward's input and output (cuDNN)");
    PoolDesc d;
    int rc = desc_create(&d, s);
    if (!rc) rc = backward_body(&d, din, dout, in, out);
    return desc_finish(&d, rc);
}
