/* Edge-aware disparity smoothness (layers/disparity_smoothness.h): forward and gradient
 * against a naive reference written from the formula (Godard et al. 2017, eq. 3, on
 * E[d] = sum_k p_k d_k), hand-checked values, errors. */
#include "testutil.h"

/* The loss, and its gradient by prob into grad (n*d*h*w), in double: E at every pixel,
 * then every forward difference in x and in y adds |dE| * exp(-mean_c |dI| / 255) / count
 * to the loss and scatters +-sign(dE) * weight / count onto the E of its two pixels;
 * dprob(k) = d_k * dE. */
static double naive_smoothness(const nn_real *prob, const nn_real *left, int n, int c, int h, int w, int d,
                               int dmin, double *grad) {
    const size_t hw = (size_t)h * w;
    double *e = calloc((size_t)n * hw, sizeof *e), *ge = calloc((size_t)n * hw, sizeof *ge);
    cr_assert(e && ge);
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < d; k++) e[i * hw + p] += prob[((size_t)i * d + k) * hw + p] * (double)(dmin + k);
    const double count[2] = {(double)n * h * (w - 1), (double)n * (h - 1) * w};
    double loss = 0;
    for (int dir = 0; dir < 2; dir++) { /* 0: x, 1: y */
        const int dy = dir, dx = 1 - dir;
        for (int i = 0; i < n; i++)
            for (int y = 0; y + dy < h; y++)
                for (int x = 0; x + dx < w; x++) {
                    const size_t a = (size_t)y * w + x, b = (size_t)(y + dy) * w + x + dx;
                    double grad_i = 0;
                    for (int ch = 0; ch < c; ch++) {
                        const nn_real *l = left + ((size_t)i * c + ch) * hw;
                        grad_i += fabs((double)l[b] - (double)l[a]) / 255.0 / c;
                    }
                    const double weight = exp(-grad_i), de = e[i * hw + b] - e[i * hw + a];
                    const double s = de > 0 ? 1 : de < 0 ? -1 : 0;
                    loss += fabs(de) * weight / count[dir];
                    ge[i * hw + b] += s * weight / count[dir];
                    ge[i * hw + a] -= s * weight / count[dir];
                }
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++)
            for (size_t p = 0; p < hw; p++) grad[((size_t)i * d + k) * hw + p] = (dmin + k) * ge[i * hw + p];
    free(e), free(ge);
    return loss;
}

/* prob: random positive values normalised over the D levels at each pixel (softmax-like) */
static nn_tensor *random_prob(int n, int d, int h, int w, uint64_t seed) {
    nn_tensor *p = tu_uniform4(n, d, h, w, 0.01, 1, seed);
    const size_t hw = (size_t)h * w;
    for (int i = 0; i < n; i++)
        for (size_t q = 0; q < hw; q++) {
            double sum = 0;
            for (int k = 0; k < d; k++) sum += p->data[((size_t)i * d + k) * hw + q];
            for (int k = 0; k < d; k++) p->data[((size_t)i * d + k) * hw + q] /= (nn_real)sum;
        }
    return p;
}

/* The layer's loss and gradient (dloss = 0.7, onto a gradient that starts at 1) against
 * the reference. */
static void check_case(int n, int c, int h, int w, int d, int dmin, uint64_t seed) {
    nn_tensor *prob = random_prob(n, d, h, w, seed), *left = tu_uniform4(n, c, h, w, 0, 255, seed + 1);
    prob->requires_grad = 1;
    double *want = malloc(prob->numel * sizeof *want);
    cr_assert_not_null(want);
    const double ref = naive_smoothness(prob->data, left->data, n, c, h, w, d, dmin, want);
    for (size_t i = 0; i < prob->numel; i++) want[i] = 1 + 0.7 * want[i];

    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *loss = nn_disparity_smoothness(&g, prob, left, dmin), *dl = tu_uniform4(1, 0, 0, 0, 0.7, 0.7, 0);
    cr_assert_not_null(loss, "%s", nn_last_error());
    cr_assert_eq(nn_tensor_fill(nn_tensor_grad(prob), 1), 0);
    cr_assert_eq(nn_graph_backward_from(&g, loss, dl), 0, "%s", nn_last_error());
    char what[96];
    snprintf(what, sizeof what, "smoothness N%d C%d H%d W%d D%d dmin %d", n, c, h, w, d, dmin);
    cr_assert(fabs(loss->data[0] - ref) <= 1e-5 * ref, "%s: loss %.7g, reference %.7g", what,
              (double)loss->data[0], ref);
    tu_assert_close_scaled(prob->grad->data, want, prob->numel, 1e-5, what);
    free(want);
    nn_tensor_unref(loss), nn_tensor_unref(dl);
    nn_graph_free(&g);
    nn_tensor_unref(prob), nn_tensor_unref(left);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(disparity_smoothness, matches_the_naive_reference) {
    check_case(1, 3, 3, 3, 5, -2, 1);
    check_case(2, 3, 4, 7, 9, -4, 10);
    check_case(3, 3, 5, 3, 4, 0, 20);  /* W = 3, batch 3 */
    check_case(2, 1, 1, 6, 3, -1, 30); /* one row: the x term only */
    check_case(2, 3, 6, 1, 3, 2, 40);  /* one column: the y term only */
    check_case(2, 3, 8, 11, 33, -15, 50);
}

/* prob one-hot: p(k, y, x) = 1 where k = K(y, x) */
static nn_tensor *one_hot(int d, int h, int w, int (*level)(int y, int x)) {
    nn_tensor *p = tu_uniform4(1, d, h, w, 0, 0, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) p->data[((size_t)level(y, x) * h + y) * w + x] = 1;
    return p;
}

static int level_constant(int y, int x) { return (void)y, (void)x, 2; }
static int level_ramp(int y, int x) { return (void)y, x; }

/* Hand-checked values, 1 image 3 x 5, D = 5, dmin = -2.
 * Constant disparity (level 2 everywhere): every difference of E is 0: loss 0, and
 * gradient 0 (sign(0) = 0).
 * Ramp: level x, so E = -2 + x: |dx E| = 1, |dy E| = 0. The left view has channel 0
 * = 0 for x < 3 and 255 from x = 3, channels 1 and 2 constant 100, so the mean image
 * gradient is (1 + 0 + 0)/3 = 1/3 between x = 2 and x = 3 and 0 elsewhere. Each row
 * has 4 x differences, weights 1, 1, exp(-1/3), 1; the y mean is 0:
 *   loss = (3 + exp(-1/3)) / 4 = (3 + 0.7165313106) / 4 = 0.9291328277.
 * Its gradient at pixel (y, 0) (E starts the first x difference only):
 *   dE = -1 / (3 rows * 4 differences) = -1/12, so dprob(k, y, 0) = (k - 2) * (-1/12). */
Test(disparity_smoothness, hand_checked_values) {
    const int h = 3, w = 5, d = 5, dmin = -2;
    nn_tensor *left = tu_uniform4(1, 3, h, w, 100, 100, 0);
    for (int y = 0; y < h; y++)
        for (int x = 3; x < w; x++) left->data[y * w + x] = 255;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < 3; x++) left->data[y * w + x] = 0;
    nn_tensor *flat = one_hot(d, h, w, level_constant), *ramp = one_hot(d, h, w, level_ramp);
    flat->requires_grad = ramp->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *l_flat = nn_disparity_smoothness(&g, flat, left, dmin);
    cr_assert_not_null(l_flat, "%s", nn_last_error());
    cr_assert_eq(l_flat->data[0], 0, "constant disparity: %.9g", (double)l_flat->data[0]);
    cr_assert_eq(nn_graph_backward(&g, l_flat), 0, "%s", nn_last_error());
    for (size_t i = 0; i < flat->numel; i++) cr_assert_eq(flat->grad->data[i], 0, "constant disparity: gradient[%zu]", i);
    nn_graph_clear(&g);
    nn_tensor *l_ramp = nn_disparity_smoothness(&g, ramp, left, dmin);
    cr_assert_not_null(l_ramp, "%s", nn_last_error());
    const double want = (3 + exp(-1.0 / 3)) / 4;
    cr_assert(fabs(l_ramp->data[0] - want) < 1e-6 && fabs(want - 0.9291328277) < 1e-9, "ramp: %.9g, want %.9g",
              (double)l_ramp->data[0], want);
    cr_assert_eq(nn_graph_backward(&g, l_ramp), 0, "%s", nn_last_error());
    for (int k = 0; k < d; k++)
        for (int y = 0; y < h; y++) {
            const double got = ramp->grad->data[((size_t)k * h + y) * w];
            cr_assert(fabs(got - (k + dmin) * (-1.0 / 12)) < 1e-7, "ramp: dprob(%d, %d, 0) = %.9g", k, y, got);
        }
    nn_tensor_unref(l_flat), nn_tensor_unref(l_ramp);
    nn_graph_free(&g);
    nn_tensor_unref(left), nn_tensor_unref(flat), nn_tensor_unref(ramp);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(disparity_smoothness, rejects_mismatched_inputs) {
    nn_tensor *prob = tu_uniform4(2, 5, 4, 6, 0, 1, 90), *left = tu_uniform4(2, 3, 4, 7, 0, 255, 91);
    cr_assert_null(nn_disparity_smoothness(NULL, prob, left, -2));
    cr_assert(strstr(nn_last_error(), "disparity_smoothness: prob (2, 5, 4, 6)"), "message: %s", nn_last_error());
    cr_assert_null(nn_disparity_smoothness(NULL, NULL, left, -2));
    nn_tensor_unref(prob), nn_tensor_unref(left);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}
