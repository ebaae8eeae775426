/* Finite-difference gradient checks (float64 build) through nn_conv_transpose2d on
 * geometries a sub-pixel forward path would take (stride > 1, kernel a multiple of the
 * stride, odd sizes, kernel 3*stride and kernel = stride), beyond the kernel = 2*stride
 * cases of tests/grad_conv.c. */
#include "testutil.h"

typedef struct {
    int stride, pad;
} targs;

static nn_tensor *tconv_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const targs *a = ctx;
    return nn_conv_transpose2d(g, in[0], in[1], in[2], a->stride, a->pad);
}

static nn_tensor *tconv_relu_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const targs *a = ctx;
    return nn_conv_transpose2d_relu(g, in[0], in[1], in[2], a->stride, a->pad);
}

/* x (n, ci, h, w), weight (ci, co, k, k), bias (co); relu: the fused ReLU variant */
static void grad_sub_act(const char *name, int n, int ci, int h, int w, int co, int k, targs a, uint64_t seed,
                         int relu) {
    nn_tensor *in[3] = {tu_uniform4(n, ci, h, w, -1, 1, seed), tu_uniform4(ci, co, k, k, -1, 1, seed + 1),
                        tu_uniform4(co, 0, 0, 0, -1, 1, seed + 2)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    tu_gradcheck(name, relu ? tconv_relu_fn : tconv_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", name, nn_tensor_live_count());
}

static void grad_sub(const char *name, int n, int ci, int h, int w, int co, int k, targs a, uint64_t seed) {
    grad_sub_act(name, n, ci, h, w, co, k, a, seed, 0);
}

/* the fused ReLU on the sub-pixel path (k4 s2) and on the fallback (k32 s16) */
Test(grad, conv_transpose2d_relu_fused) {
    grad_sub_act("conv_transpose2d+relu k4 s2 p1", 2, 3, 3, 4, 3, 4, (targs){2, 1}, 71, 1);
    grad_sub_act("conv_transpose2d+relu k32 s16 p8", 1, 2, 2, 2, 2, 32, (targs){16, 8}, 72, 1);
}

Test(grad, subpixel_k6_s2_p2_odd_sizes) { grad_sub("conv_transpose2d k6 s2 p2", 2, 2, 3, 5, 3, 6, (targs){2, 2}, 61); }

Test(grad, subpixel_k3_s3_p1) { grad_sub("conv_transpose2d k3 s3 p1", 1, 3, 3, 2, 2, 3, (targs){3, 1}, 62); }
