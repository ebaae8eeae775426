/* Finite-difference gradient checks (float64 build) of nn_conv2d and of the 3x3
 * stride-1 nn_conv_transpose2d with the Winograd path forced (nn_conv_algo_set), so
 * that the forward pass, the input gradient and the weight gradient run through
 * layers/conv2d_winograd.c. */
#include "../layers/conv2d_winograd.h"
#include "testutil.h"

typedef struct {
    int pad, transposed;
} wg_args;

static nn_tensor *fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const wg_args *a = ctx;
    return a->transposed ? nn_conv_transpose2d(g, in[0], in[1], in[2], 1, a->pad)
                         : nn_conv2d(g, in[0], in[1], in[2], 1, a->pad, 1);
}

/* x (n, ci, h, w); conv2d weight (co, ci, 3, 3), or for the transposed convolution
 * weight (ci, co, 3, 3); bias (co) */
static void grad_wg(const char *name, int n, int ci, int h, int w, int co, wg_args a, uint64_t seed) {
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD);
    nn_tensor *in[3] = {tu_uniform4(n, ci, h, w, -1, 1, seed),
                        a.transposed ? tu_uniform4(ci, co, 3, 3, -1, 1, seed + 1)
                                     : tu_uniform4(co, ci, 3, 3, -1, 1, seed + 1),
                        tu_uniform4(co, 0, 0, 0, -1, 1, seed + 2)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    /* the path under test really is Winograd: conv2d (forward, input gradient) or the
     * adjoint convolution of the transposed one (its forward is conv2d_backward_data) */
    nn_conv_shape s;
    if (a.transposed) {
        int ho = h + 2 - 2 * a.pad, wo = w + 2 - 2 * a.pad;
        s = (nn_conv_shape){n, co, ho, wo, ci, h, w, 3, 3, 1, a.pad, 1, 0};
    } else {
        cr_assert_eq(nn_conv_shape_make(&s, in[0], in[1], 1, a.pad, 1), 0, "%s", nn_last_error());
    }
    cr_assert_eq(conv2d_algo_cpu(&s, 0), NN_CONV_ALGO_WINOGRAD, "%s: forward not on the Winograd path", name);
    cr_assert_eq(conv2d_algo_cpu(&s, 1), NN_CONV_ALGO_WINOGRAD, "%s: input gradient not on the Winograd path", name);
    tu_gradcheck(name, fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", name, nn_tensor_live_count());
}

Test(grad, winograd_conv2d_pad1_odd_sizes) { grad_wg("winograd conv2d p1 5x7", 2, 3, 5, 7, 4, (wg_args){1, 0}, 41); }

Test(grad, winograd_conv2d_pad0) { grad_wg("winograd conv2d p0 6x5", 1, 4, 6, 5, 3, (wg_args){0, 0}, 42); }

Test(grad, winograd_conv2d_pad2_batch3) { grad_wg("winograd conv2d p2 3x4", 3, 2, 3, 4, 5, (wg_args){2, 0}, 43); }

Test(grad, winograd_conv2d_tiny) { grad_wg("winograd conv2d p1 1x2", 2, 5, 1, 2, 2, (wg_args){1, 0}, 44); }

Test(grad, winograd_conv_transpose2d_k3_s1) {
    grad_wg("winograd conv_transpose2d k3 s1 p1", 2, 3, 4, 5, 2, (wg_args){1, 1}, 45);
    grad_wg("winograd conv_transpose2d k3 s1 p0", 1, 2, 3, 3, 3, (wg_args){0, 1}, 46);
}
