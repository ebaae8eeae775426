/* Finite-difference gradient checks (float64 build) of max pooling and the fully
 * connected layer. Max pooling is not differentiable at ties: the inputs are distinct
 * values 0.01 apart (a shuffled ramp), far wider than the step h, so no element sits
 * on a kink and none may be skipped. */
#include "testutil.h"

typedef struct {
    int k, stride;
} pool_args;

static nn_tensor *pool_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    const pool_args *a = ctx;
    return nn_maxpool2d(g, in[0], a->k, a->stride);
}

static nn_tensor *linear_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_linear(g, in[0], in[1], in[2]);
}

static void grad_pool(const char *name, int n, int c, int h, int w, pool_args a) {
    nn_tensor *x = nn_tensor_new4(NN_CPU, n, c, h, w);
    size_t m = x->numel;
    /* i -> (i * 7919) mod m is a permutation when m is not a multiple of 7919 (prime) */
    for (size_t i = 0; i < m; i++) x->data[i] = (nn_real)(0.01 * (double)((i * 7919) % m) - 0.005 * (double)m);
    x->requires_grad = 1;
    tu_gradcheck(name, pool_fn, &x, 1, &a, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(x);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(grad, maxpool2d_k2_s2) { grad_pool("maxpool2d k2 s2", 2, 3, 6, 7, (pool_args){2, 2}); }

Test(grad, maxpool2d_k3_s2_overlapping) { grad_pool("maxpool2d k3 s2", 2, 2, 7, 8, (pool_args){3, 2}); }

Test(grad, maxpool2d_k2_s1) { grad_pool("maxpool2d k2 s1", 1, 2, 5, 6, (pool_args){2, 1}); }

Test(grad, linear) {
    nn_tensor *in[3] = {tu_uniform4(3, 2, 2, 3, -1, 1, 41), tu_uniform4(5, 12, 0, 0, -1, 1, 42),
                        tu_uniform4(5, 0, 0, 0, -1, 1, 43)};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = 1;
    tu_gradcheck("linear", linear_fn, in, 3, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    for (int i = 0; i < 3; i++) nn_tensor_unref(in[i]);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(grad, linear_no_bias) {
    nn_tensor *in[3] = {tu_uniform4(4, 6, 0, 0, -1, 1, 44), tu_uniform4(3, 6, 0, 0, -1, 1, 45), NULL};
    in[0]->requires_grad = in[1]->requires_grad = 1;
    tu_gradcheck("linear no bias", linear_fn, in, 2, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
    cr_assert_eq(nn_tensor_live_count(), 0);
}
