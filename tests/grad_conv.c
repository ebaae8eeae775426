/* Finite-difference gradient checks (float64 build) of the convolution and the
 * transposed convolution: every input (x, weight, bias), several geometries. */
#include "../layers/conv2d_winograd.h"
#include "testutil.h"

typedef struct {
    int stride, pad, dil;
} conv_args;

static nn_tensor *conv_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const conv_args *a = ctx;
    return nn_conv2d(g, in[0], in[1], in[2], a->stride, a->pad, a->dil);
}

static nn_tensor *conv_relu_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const conv_args *a = ctx;
    return nn_conv2d_relu(g, in[0], in[1], in[2], a->stride, a->pad, a->dil);
}

static nn_tensor *tconv_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const conv_args *a = ctx;
    return nn_conv_transpose2d(g, in[0], in[1], in[2], a->stride, a->pad);
}

/* x (n, ci, h, w), weight (co, ci, kh, kw), bias (co) */
static void grad_conv(const char *name, int n, int ci, int h, int w, int co, int kh, int kw, conv_args a,
                      uint64_t seed) {
    nn_tensor *in[3] = {tu_uniform4(n, ci, h, w, -1, 1, seed), tu_uniform4(co, ci, kh, kw, -1, 1, seed + 1),
                        tu_uniform4(co, 0, 0, 0, -1, 1, seed + 2)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    tu_gradcheck(name, conv_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", name, nn_tensor_live_count());
}

/* x (n, ci, h, w), weight (ci, co, k, k), bias (co) */
static void grad_tconv(const char *name, int n, int ci, int h, int w, int co, int k, conv_args a,
                       uint64_t seed) {
    nn_tensor *in[3] = {tu_uniform4(n, ci, h, w, -1, 1, seed), tu_uniform4(ci, co, k, k, -1, 1, seed + 1),
                        tu_uniform4(co, 0, 0, 0, -1, 1, seed + 2)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    tu_gradcheck(name, tconv_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    cr_assert_eq(nn_tensor_live_count(), 0, "%s: %ld tensors leaked", name, nn_tensor_live_count());
}

Test(grad, conv2d_k3_s1_p1) { grad_conv("conv2d k3 s1 p1", 2, 3, 5, 6, 4, 3, 3, (conv_args){1, 1, 1}, 21); }

Test(grad, conv2d_k1_pointwise) { grad_conv("conv2d k1", 2, 3, 4, 5, 2, 1, 1, (conv_args){1, 0, 1}, 22); }

Test(grad, conv2d_k4_s2_p1) { grad_conv("conv2d k4 s2 p1", 2, 2, 7, 6, 3, 4, 4, (conv_args){2, 1, 1}, 23); }

Test(grad, conv2d_k5_s3_p2_nonsquare) {
    grad_conv("conv2d k5 s3 p2", 1, 2, 9, 7, 2, 5, 5, (conv_args){3, 2, 1}, 24);
}

Test(grad, conv2d_k3_dilation2_s2) {
    grad_conv("conv2d k3 d2 s2 p2", 2, 2, 8, 7, 3, 3, 3, (conv_args){2, 2, 2}, 25);
}

Test(grad, conv2d_kernel_2x3) { grad_conv("conv2d k2x3 p1", 1, 2, 5, 5, 2, 2, 3, (conv_args){1, 1, 1}, 26); }

/* The fused ReLU: kinks where a pre-activation is within the step of 0 are detected by
 * tu_gradcheck's one-sided differences. On the im2col path (auto: 3 channels) and, for
 * the 3x3 case, on forced Winograd F(2x2, 3x3) and F(4x4, 3x3). */
Test(grad, conv2d_relu_fused) {
    conv_args a = {1, 1, 1};
    nn_tensor *in[3] = {tu_uniform4(2, 3, 5, 6, -1, 1, 41), tu_uniform4(4, 3, 3, 3, -1, 1, 42),
                        tu_uniform4(4, 0, 0, 0, -1, 1, 43)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    tu_gradcheck("conv2d+relu k3 s1 p1", conv_relu_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD);
    tu_gradcheck("conv2d+relu k3 s1 p1 winograd F(2x2,3x3)", conv_relu_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    nn_conv_algo_set(NN_CONV_ALGO_WINOGRAD4);
    tu_gradcheck("conv2d+relu k3 s1 p1 winograd F(4x4,3x3)", conv_relu_fn, in, 3, &a, 1e-6, 1e-8, 1e-6, 300, 0);
    nn_conv_algo_set(NN_CONV_ALGO_AUTO);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    conv_args b = {2, 1, 1};
    nn_tensor *in2[3] = {tu_uniform4(1, 2, 7, 6, -1, 1, 44), tu_uniform4(3, 2, 4, 4, -1, 1, 45),
                         tu_uniform4(3, 0, 0, 0, -1, 1, 46)};
    for (int i = 0; i < 3; i++) in2[i]->requires_grad = 1;
    tu_gradcheck("conv2d+relu k4 s2 p1", conv_relu_fn, in2, 3, &b, 1e-6, 1e-8, 1e-6, 300, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in2[i]);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(grad, conv_transpose2d_k1_s1) { grad_tconv("conv_transpose2d k1", 2, 3, 3, 4, 2, 1, (conv_args){1, 0, 1}, 31); }

Test(grad, conv_transpose2d_k4_s2_p1) {
    grad_tconv("conv_transpose2d k4 s2 p1", 2, 3, 3, 4, 2, 4, (conv_args){2, 1, 1}, 32);
}

Test(grad, conv_transpose2d_k8_s4_p2) {
    grad_tconv("conv_transpose2d k8 s4 p2", 1, 2, 2, 3, 2, 8, (conv_args){4, 2, 1}, 33);
}

Test(grad, conv_transpose2d_k16_s8_p4) {
    grad_tconv("conv_transpose2d k16 s8 p4", 1, 2, 2, 2, 2, 16, (conv_args){8, 4, 1}, 34);
}

Test(grad, conv_transpose2d_k3_s2_p1) {
    grad_tconv("conv_transpose2d k3 s2 p1", 2, 2, 3, 3, 3, 3, (conv_args){2, 1, 1}, 35);
}

Test(grad, conv_transpose2d_k2_s3_gaps) {
    grad_tconv("conv_transpose2d k2 s3", 1, 2, 3, 2, 2, 2, (conv_args){3, 0, 1}, 36);
}
