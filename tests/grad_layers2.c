/* Finite-difference gradient checks (float64 build) of batch norm (training and
 * inference mode), dropout, softmax, selection (prob and left), L1 loss and reshape. */
#include "testutil.h"

/* inputs: x, gamma, beta, running_mean, running_var */
static nn_tensor *bn_train_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_batchnorm2d(g, in[0], in[1], in[2], in[3], in[4], 0.1, 1e-5);
}

/* the same with the layers in inference mode (running statistics), still recording */
static nn_tensor *bn_eval_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    int training = g->training;
    g->training = 0;
    nn_tensor *y = nn_batchnorm2d(g, in[0], in[1], in[2], in[3], in[4], 0.1, 1e-5);
    g->training = training;
    return y;
}

static void bn_check(const char *name, tu_forward_fn fn) {
    const int c = 3;
    nn_tensor *in[5] = {tu_uniform4(2, c, 3, 4, -1, 2, 201), tu_uniform4(c, 0, 0, 0, 0.5, 1.5, 202),
                        tu_uniform4(c, 0, 0, 0, -1, 1, 203), tu_uniform4(c, 0, 0, 0, -0.5, 0.5, 204),
                        tu_uniform4(c, 0, 0, 0, 0.5, 2, 205)};
    in[0]->requires_grad = in[1]->requires_grad = in[2]->requires_grad = 1;
    tu_gradcheck(name, fn, in, 5, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    for (int i = 0; i < 5; i++) nn_tensor_unref(in[i]);
}

Test(grad, batchnorm2d_training) { bn_check("batchnorm2d training", bn_train_fn); }

Test(grad, batchnorm2d_inference) { bn_check("batchnorm2d inference", bn_eval_fn); }

static nn_tensor *dropout_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_dropout(g, in[0], 0.4);
}

Test(grad, dropout) {
    /* tu_gradcheck resets g->dropout_seed before every evaluation: the mask is fixed */
    nn_tensor *x = tu_uniform4(2, 3, 4, 4, -1, 1, 206);
    x->requires_grad = 1;
    tu_gradcheck("dropout", dropout_fn, &x, 1, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(x);
}

static nn_tensor *softmax_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_softmax_channels(g, in[0]);
}

Test(grad, softmax_channels) {
    nn_tensor *x = tu_uniform4(2, 5, 3, 3, -3, 3, 207);
    x->requires_grad = 1;
    tu_gradcheck("softmax", softmax_fn, &x, 1, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(x);
}

static nn_tensor *selection_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    return nn_selection(g, in[0], in[1], *(const int *)ctx);
}

Test(grad, selection_prob_and_left) {
    /* shifts -3..3 on 6 columns: both clamped runs and the in-range run are exercised;
     * the second case has every shift at least as wide as the row. The output is linear
     * in each single element of prob and of left, so central differences are exact for
     * any step: h = 1e-3 keeps the rounding of the 0..255-sized sums out of them. */
    const int cases[2][3] = {{7, -3, 6}, {9, -4, 3}};
    for (int t = 0; t < 2; t++) {
        int d = cases[t][0], dmin = cases[t][1], w = cases[t][2];
        nn_tensor *in[2] = {tu_uniform4(2, d, 3, w, 0, 1, 208 + t), tu_uniform4(2, 3, 3, w, 0, 255, 210 + t)};
        in[0]->requires_grad = in[1]->requires_grad = 1;
        tu_gradcheck("selection", selection_fn, in, 2, &dmin, 1e-3, 1e-8, 1e-6, 1000, 0);
        nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
    }
}

static nn_tensor *l1_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    return nn_l1_loss(g, in[0], in[1]);
}

Test(grad, l1_loss_pred) {
    /* pred - target is at least 0.01 away from the kink at 0 (|x| is not smooth there):
     * target = pred +- (0.01 .. 1) */
    nn_tensor *in[2] = {tu_uniform4(2, 3, 4, 4, 0, 255, 212), tu_uniform4(2, 3, 4, 4, 0.01, 1, 213)};
    for (size_t i = 0; i < in[0]->numel; i++)
        in[1]->data[i] = in[0]->data[i] + (nn_hash_uniform(214, i) < 0.5 ? -1 : 1) * in[1]->data[i];
    in[0]->requires_grad = 1;
    tu_gradcheck("l1_loss", l1_fn, in, 2, NULL, 1e-6, 1e-9, 1e-6, 1000, 0);
    nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
}

static nn_tensor *reshape_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    (void)ctx;
    const int shape[3] = {3, 4, 4};
    nn_tensor *y = nn_reshape(g, in[0], 3, shape);
    return nn_then(y, nn_flatten(g, y));
}

Test(grad, reshape_and_flatten) {
    nn_tensor *x = tu_uniform4(2, 3, 2, 4, -1, 1, 215);
    x->requires_grad = 1;
    tu_gradcheck("reshape", reshape_fn, &x, 1, NULL, 1e-6, 1e-8, 1e-6, 1000, 0);
    nn_tensor_unref(x);
}
