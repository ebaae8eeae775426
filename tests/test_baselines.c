/* The baselines against the selection layer with a one-hot probability (an independent
 * implementation of the same shift), and the global-shift search on a known shift. */
#include "../deep3d/baselines.h"
#include "testutil.h"

Test(baselines, shift_matches_selection_with_one_hot) {
    const int n = 2, h = 3, w = 17, dmin = -4, d = 9;
    nn_tensor *left = tu_uniform4(n, 3, h, w, 0, 255, 7), *right = tu_uniform4(n, 3, h, w, 0, 255, 8);
    for (int k = 0; k < d; k++) {
        nn_tensor *prob = nn_tensor_zeros(NN_CPU, 4, (int[]){n, d, h, w});
        for (int i = 0; i < n; i++)
            for (int p = 0; p < h * w; p++) prob->data[((size_t)i * d + k) * h * w + p] = 1;
        nn_tensor *shifted = nn_selection(NULL, prob, left, dmin);
        cr_assert_not_null(shifted, "%s", nn_last_error());
        double want = abs_diff_sum(shifted->data, right->data, right->numel);
        double got = baseline_shift_abs_sum(left->data, right->data, n, h, w, dmin + k);
        cr_assert(fabs(got - want) <= 1e-9 * want, "shift %d: %.9g vs selection %.9g", dmin + k, got, want);
        nn_tensor_unref(prob), nn_tensor_unref(shifted);
    }
    nn_tensor_unref(left), nn_tensor_unref(right);
}

Test(baselines, global_search_finds_the_true_shift) {
    const int h = 4, w = 40, true_d = -6;
    nn_tensor *left = tu_uniform4(1, 3, h, w, 0, 255, 9), *right = nn_tensor_new_like(left);
    for (int row = 0; row < 3 * h; row++)
        for (int x = 0; x < w; x++) {
            int src = x - true_d;
            right->data[row * w + x] = left->data[row * w + (src < 0 ? 0 : src >= w ? w - 1 : src)];
        }
    shift_search s;
    shift_search_init(&s, -15, 17);
    shift_search_add(&s, left->data, right->data, 1, h, w);
    double mae;
    cr_assert_eq(shift_search_best(&s, &mae), true_d);
    cr_assert_eq(mae, 0);
    cr_assert_gt(baseline_shift_abs_sum(left->data, right->data, 1, h, w, 0), 0, "identity must not be exact");
    nn_tensor_unref(left), nn_tensor_unref(right);
}
