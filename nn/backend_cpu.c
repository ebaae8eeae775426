/* The CPU backend: host memory (64-byte aligned), OpenMP loops, OpenBLAS products.
 * The kernels themselves live next to their ops in layers/ and nn/optim.c. */
#include <stdlib.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <string.h>

#include "../layers/batchnorm2d.h"
#include "../layers/conv2d.h"
#include "../layers/conv_transpose2d.h"
#include "../layers/disparity_smoothness.h"
#include "../layers/dropout.h"
#include "../layers/elementwise.h"
#include "../layers/l1_loss.h"
#include "../layers/linear.h"
#include "../layers/maxpool2d.h"
#include "../layers/selection.h"
#include "../layers/softmax.h"
#include "../layers/ssim_l1_loss.h"
#include "backend.h"
#include "optim.h"
#include "status.h"

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) nn_fail("out of host memory: %zu bytes requested", bytes);
    return p;
}

static void cpu_release(void *p) { free(p); }

static int cpu_copy(void *dst, const void *src, size_t bytes) {
    if (dst != src) memcpy(dst, src, bytes);
    return 0;
}

static int cpu_synchronize(void) { return 0; } /* every CPU kernel is done on return */

static const nn_backend cpu_backend = {
    .name = "cpu",
    .device = NN_CPU,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
    .upload_async = cpu_copy,        /* complete on return: nothing to wait for */
    .wait_uploads = cpu_synchronize,
    .fill = fill_cpu,
    .axpy = axpy_cpu,
    .add = add_cpu,
    .relu_forward = relu_forward_cpu,
    .relu_backward = relu_backward_cpu,
    .relu_mask = relu_mask_cpu,
    .channel_affine = channel_affine_cpu,
    .channel_affine_backward = channel_affine_backward_cpu,
    .conv2d_forward = conv2d_forward_cpu,
    .conv2d_backward_data = conv2d_backward_data_cpu,
    .conv_transpose2d_forward = conv_transpose2d_forward_cpu,
    .conv2d_backward_weight = conv2d_backward_weight_cpu,
    .bias_forward = bias_forward_cpu,
    .bias_backward = bias_backward_cpu,
    .maxpool2d_forward = maxpool2d_forward_cpu,
    .maxpool2d_backward = maxpool2d_backward_cpu,
    .maxpool2d_uses_argmax = 1,
    .linear_forward = linear_forward_cpu,
    .linear_backward = linear_backward_cpu,
    .dropout_forward = dropout_forward_cpu,
    .dropout_backward = dropout_backward_cpu,
    .batchnorm_forward_train = batchnorm_forward_train_cpu,
    .batchnorm_backward = batchnorm_backward_cpu,
    .batchnorm_sum = batchnorm_sum_cpu,
    .batchnorm_sqdev = batchnorm_sqdev_cpu,
    .batchnorm_apply_train = batchnorm_apply_train_cpu,
    .batchnorm_backward_sums = batchnorm_backward_sums_cpu,
    .batchnorm_backward_apply = batchnorm_backward_apply_cpu,
    .softmax_forward = softmax_forward_cpu,
    .softmax_backward = softmax_backward_cpu,
    .selection_forward = selection_forward_cpu,
    .selection_backward = selection_backward_cpu,
    .l1_loss_forward = l1_loss_forward_cpu,
    .l1_loss_backward = l1_loss_backward_cpu,
    .ssim_l1_loss_forward = ssim_l1_loss_forward_cpu,
    .ssim_l1_loss_backward = ssim_l1_loss_backward_cpu,
    .disparity_smoothness_forward = disparity_smoothness_forward_cpu,
    .disparity_smoothness_backward = disparity_smoothness_backward_cpu,
    .sgd_step = sgd_step_cpu,
    .adam_step = adam_step_cpu,
};

/* Flush-to-zero and denormals-are-zero on every OpenMP thread (and the main one).
 * Gradients through the softmax reach ~1e-40, and x86 computes on such subnormal
 * floats up to 100x slower; deep learning frameworks (PyTorch's set_flush_denormal,
 * oneDNN) flush them the same way. Results differ from IEEE only below 1.2e-38. */
static void flush_denormals(void) {
#if defined(__SSE__)
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

const nn_backend *nn_backend_cpu(void) {
    static int ready;
    if (!ready) { /* first use happens on the main thread, before any op runs */
        flush_denormals();
        ready = 1;
    }
    return &cpu_backend;
}
