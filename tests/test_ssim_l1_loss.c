/* SSIM + L1 photometric loss (layers/ssim_l1_loss.h): forward and gradient against a
 * naive reference written from the formula (Godard et al. 2017, eq. 2, and their code's
 * 3x3 average pooling), hand-checked values, alpha = 0 as the L1 loss, errors. */
#include "testutil.h"

static const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;

/* The loss, and its gradient by pred into grad (n*c*h*w), in double. Godard's graph as
 * plain loops: on x = pred/255, y = target/255, 3x3 average pooling without padding of
 * x, y, x^2, y^2, xy, the SSIM of each window, then reverse mode through the same
 * steps: SSIM = A1 A2 / (B1 B2), A1 = 2 mx my + C1, A2 = 2 sxy + C2, B1 = mx^2 + my^2 + C1,
 * B2 = sx + sy + C2, sx = E[x^2] - mx^2, sxy = E[xy] - mx my, and each pooled value
 * passes its gradient / 9 to the 9 pixels of its window. */
static double naive_ssim_l1(const nn_real *pred, const nn_real *target, int n, int c, int h, int w, double alpha,
                            double *grad) {
    const int planes = n * c;
    const double windows = (double)planes * (h - 2) * (w - 2), values = (double)planes * h * w;
    double loss = 0;
    for (size_t i = 0; i < (size_t)values; i++) {
        const double d = (double)pred[i] - (double)target[i];
        loss += (1 - alpha) * fabs(d) / values;
        grad[i] = (1 - alpha) / values * (d > 0 ? 1 : d < 0 ? -1 : 0);
    }
    for (int q = 0; q < planes; q++)
        for (int y0 = 0; y0 + 3 <= h; y0++)
            for (int x0 = 0; x0 + 3 <= w; x0++) {
                double mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        const size_t at = ((size_t)q * h + y0 + i) * w + x0 + j;
                        const double x = pred[at] / 255.0, y = target[at] / 255.0;
                        mx += x / 9, my += y / 9, exx += x * x / 9, eyy += y * y / 9, exy += x * y / 9;
                    }
                const double sx = exx - mx * mx, sy = eyy - my * my, sxy = exy - mx * my;
                const double a1 = 2 * mx * my + C1, a2 = 2 * sxy + C2, b1 = mx * mx + my * my + C1,
                             b2 = sx + sy + C2;
                const double ssim = a1 * a2 / (b1 * b2), v = (1 - ssim) / 2;
                loss += 255 * alpha * fmin(fmax(v, 0), 1) / windows;
                /* reverse mode */
                const double g_ssim = v >= 0 && v <= 1 ? -255 * alpha / (2 * windows) : 0;
                const double g_a1 = g_ssim * a2 / (b1 * b2), g_a2 = g_ssim * a1 / (b1 * b2);
                const double g_b1 = -g_ssim * ssim / b1, g_b2 = -g_ssim * ssim / b2;
                const double g_sx = g_b2, g_sxy = 2 * g_a2, g_exx = g_sx, g_exy = g_sxy;
                const double g_mx = 2 * my * g_a1 + 2 * mx * g_b1 - 2 * mx * g_sx - my * g_sxy;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        const size_t at = ((size_t)q * h + y0 + i) * w + x0 + j;
                        const double x = pred[at] / 255.0, y = target[at] / 255.0;
                        grad[at] += (g_mx / 9 + g_exx * 2 * x / 9 + g_exy * y / 9) / 255.0;
                    }
            }
    return loss;
}

/* The layer's loss and gradient (dloss = 1.5, onto a gradient that starts at 1) against
 * the reference. */
static void check_case(int n, int c, int h, int w, int correlated, uint64_t seed) {
    nn_tensor *pred = tu_uniform4(n, c, h, w, 0, 255, seed), *target = tu_uniform4(n, c, h, w, 0, 255, seed + 1);
    if (correlated) /* target = pred + noise in [-20, 20]: SSIM near 1 */
        for (size_t i = 0; i < pred->numel; i++)
            target->data[i] = pred->data[i] + (nn_real)(40 * nn_hash_uniform(seed + 2, i) - 20);
    pred->requires_grad = 1;
    double *want = malloc(pred->numel * sizeof *want);
    cr_assert_not_null(want);
    const double ref = naive_ssim_l1(pred->data, target->data, n, c, h, w, 0.85, want);
    for (size_t i = 0; i < pred->numel; i++) want[i] = 1 + 1.5 * want[i];

    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *loss = nn_ssim_l1_loss(&g, pred, target, 0.85), *dl = tu_uniform4(1, 0, 0, 0, 1.5, 1.5, 0);
    cr_assert_not_null(loss, "%s", nn_last_error());
    cr_assert_eq(nn_tensor_fill(nn_tensor_grad(pred), 1), 0);
    cr_assert_eq(nn_graph_backward_from(&g, loss, dl), 0, "%s", nn_last_error());
    char what[96];
    snprintf(what, sizeof what, "ssim_l1 N%d C%d H%d W%d%s", n, c, h, w, correlated ? " correlated" : "");
    cr_assert(fabs(loss->data[0] - ref) <= 1e-5 * ref, "%s: loss %.7g, reference %.7g", what, (double)loss->data[0],
              ref);
    tu_assert_close_scaled(pred->grad->data, want, pred->numel, 1e-5, what);
    free(want);
    nn_tensor_unref(loss), nn_tensor_unref(dl);
    nn_graph_free(&g);
    nn_tensor_unref(pred), nn_tensor_unref(target);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(ssim_l1_loss, matches_the_naive_reference) {
    check_case(1, 1, 3, 3, 0, 1); /* a single window */
    check_case(2, 3, 5, 7, 0, 10);
    check_case(2, 3, 5, 7, 1, 20);
    check_case(3, 2, 3, 9, 1, 30); /* H = 3: one row of windows */
    check_case(1, 3, 8, 3, 0, 40); /* W = 3 */
    check_case(2, 1, 11, 6, 1, 50);
}

/* Hand-checked values.
 * Identical images: every window has mu_x = mu_y, sigma_x = sigma_y = sigma_xy, so
 * A1 = B1 and A2 = B2 (the same double operations), SSIM = 1 exactly, (1 - SSIM)/2 = 0,
 * the L1 part is 0: loss 0. The gradient is 0 too (SSIM is at its maximum; sign(0) = 0),
 * up to the float rounding of the window coefficients, whose terms cancel there.
 * Constant images pred = 0, target = 255: mu_x = 0, mu_y = 1, all sigmas 0, so
 * SSIM = (0 + C1)(0 + C2) / ((0 + 1 + C1)(0 + C2)) = C1 / (1 + C1) and
 *   loss = 255 * 0.85 * (1 - C1/(1 + C1))/2 + 0.15 * 255 = 255 (0.425/(1 + C1) + 0.15)
 *        = 255 (0.42495750425 + 0.15) = 146.6141636 (C1 = 1e-4). */
Test(ssim_l1_loss, hand_checked_values) {
    nn_tensor *a = tu_uniform4(2, 3, 4, 5, 0, 255, 60), *zero = tu_uniform4(1, 3, 5, 4, 0, 0, 0),
              *white = tu_uniform4(1, 3, 5, 4, 255, 255, 0);
    a->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *same = nn_ssim_l1_loss(&g, a, a, 0.85);
    cr_assert_not_null(same, "%s", nn_last_error());
    cr_assert_eq(same->data[0], 0, "identical images: loss %.9g", (double)same->data[0]);
    cr_assert_eq(nn_graph_backward(&g, same), 0, "%s", nn_last_error());
    for (size_t i = 0; i < a->numel; i++)
        cr_assert(fabs(a->grad->data[i]) < 1e-6, "identical images: gradient[%zu] = %g", i, (double)a->grad->data[i]);
    nn_tensor *bw = nn_ssim_l1_loss(NULL, zero, white, 0.85);
    cr_assert_not_null(bw, "%s", nn_last_error());
    const double want = 255 * (0.425 / (1 + C1) + 0.15);
    cr_assert(fabs(bw->data[0] - want) < 1e-6 * want && fabs(want - 146.6141636) < 1e-6, "black vs white: %.9g, want %.9g",
              (double)bw->data[0], want);
    nn_tensor_unref(same), nn_tensor_unref(bw);
    nn_graph_free(&g);
    nn_tensor_unref(a), nn_tensor_unref(zero), nn_tensor_unref(white);
}

/* alpha = 0 leaves the L1 loss alone; alpha = 1 is in 0..255 units: two unrelated
 * random images have SSIM near 0, so 255 * (1 - SSIM)/2 is near 127.5. */
Test(ssim_l1_loss, alpha_0_is_the_l1_loss_and_alpha_1_is_in_0_255_units) {
    nn_tensor *p = tu_uniform4(2, 3, 6, 7, 0, 255, 70), *t = tu_uniform4(2, 3, 6, 7, 0, 255, 71);
    nn_tensor *l1 = nn_l1_loss(NULL, p, t), *a0 = nn_ssim_l1_loss(NULL, p, t, 0), *a1 = nn_ssim_l1_loss(NULL, p, t, 1);
    cr_assert(l1 && a0 && a1, "%s", nn_last_error());
    cr_assert(fabs(a0->data[0] - l1->data[0]) <= 1e-6 * l1->data[0], "alpha 0: %.7g, l1 %.7g", (double)a0->data[0],
              (double)l1->data[0]);
    cr_assert(a1->data[0] > 110 && a1->data[0] < 145, "alpha 1 on unrelated images: %.7g", (double)a1->data[0]);
    nn_tensor_unref(l1), nn_tensor_unref(a0), nn_tensor_unref(a1), nn_tensor_unref(p), nn_tensor_unref(t);
}

Test(ssim_l1_loss, rejects_bad_inputs) {
    nn_tensor *a = tu_uniform4(1, 3, 4, 5, 0, 255, 80), *b = tu_uniform4(1, 3, 5, 4, 0, 255, 81),
              *thin = tu_uniform4(1, 3, 2, 5, 0, 255, 82);
    cr_assert_null(nn_ssim_l1_loss(NULL, a, b, 0.85));
    cr_assert(strstr(nn_last_error(), "ssim_l1_loss: pred (1, 3, 4, 5)"), "message: %s", nn_last_error());
    cr_assert_null(nn_ssim_l1_loss(NULL, thin, thin, 0.85));
    cr_assert(strstr(nn_last_error(), "H, W >= 3"), "message: %s", nn_last_error());
    cr_assert_null(nn_ssim_l1_loss(NULL, a, a, 1.5));
    cr_assert(strstr(nn_last_error(), "alpha 1.5 is outside [0, 1]"), "message: %s", nn_last_error());
    cr_assert_null(nn_ssim_l1_loss(NULL, NULL, a, 0.85));
    nn_tensor_unref(a), nn_tensor_unref(b), nn_tensor_unref(thin);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}
