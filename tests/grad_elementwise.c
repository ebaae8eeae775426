/* Finite-difference gradient checks (float64 build) of the element-wise ops. */
#include "testutil.h"

static nn_tensor *relu_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_relu(g, in[0]);
}

static nn_tensor *add_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_add(g, in[0], in[1]);
}

static nn_tensor *add_scaled_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_add_scaled(g, in[0], in[1], -0.7);
}

static nn_tensor *mean_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    static const nn_real mean[2] = {1.5, -0.5};
    (void)ctx;
    return nn_sub_channel_mean(g, in[0], mean);
}

Test(grad, relu) {
    nn_tensor *x = tu_uniform4(2, 3, 4, 4, -1, 1, 11);
    x->requires_grad = 1;
    tu_gradcheck("relu", relu_fn, &x, 1, NULL, 1e-6, 1e-8, 1e-6, 1000, 0.05);
    nn_tensor_unref(x);
}

Test(grad, add) {
    nn_tensor *in[2] = {tu_uniform4(2, 3, 4, 0, -1, 1, 12), tu_uniform4(2, 3, 4, 0, -1, 1, 13)};
    in[0]->requires_grad = in[1]->requires_grad = 1;
    tu_gradcheck("add", add_fn, in, 2, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
}

Test(grad, add_scaled) {
    nn_tensor *in[2] = {tu_uniform4(2, 3, 4, 0, -1, 1, 15), tu_uniform4(2, 3, 4, 0, -1, 1, 16)};
    in[0]->requires_grad = in[1]->requires_grad = 1;
    tu_gradcheck("add_scaled", add_scaled_fn, in, 2, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
}

Test(grad, sub_channel_mean) {
    nn_tensor *x = tu_uniform4(2, 2, 3, 3, -1, 1, 14);
    x->requires_grad = 1;
    tu_gradcheck("sub_channel_mean", mean_fn, &x, 1, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(x);
}
