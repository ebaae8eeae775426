/* Finite-difference gradient check (float64 build) of the edge-aware disparity smoothness. */
#include "testutil.h"

static nn_tensor *smoothness_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    return nn_disparity_smoothness(g, in[0], in[1], *(const int *)ctx);
}

Test(grad, disparity_smoothness_prob) {
    /* Random prob in [0, 1): neighbouring E differ by O(1), far from the |.| kink at 0
     * for the step 1e-6 (tu_gradcheck skips an element whose step straddles one, none
     * allowed here). The loss is linear in each single element of prob between kinks.
     * Shapes: batch 2 with H = 4, W = 5; a single row (x term only); W = 3. */
    const int cases[3][6] = {{2, 3, 4, 5, 7, -3}, {1, 3, 1, 6, 4, 0}, {2, 1, 5, 3, 5, 1}};
    for (int t = 0; t < 3; t++) {
        const int *s = cases[t];
        int dmin = s[5];
        nn_tensor *in[2] = {tu_uniform4(s[0], s[4], s[2], s[3], 0, 1, 341 + t),
                            tu_uniform4(s[0], s[1], s[2], s[3], 0, 255, 351 + t)};
        in[0]->requires_grad = 1;
        tu_gradcheck("disparity_smoothness", smoothness_fn, in, 2, &dmin, 1e-6, 1e-9, 1e-6, 1000, 0);
        nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
    }
}
