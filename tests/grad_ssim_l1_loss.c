/* Finite-difference gradient check (float64 build) of the SSIM + L1 photometric loss. */
#include "testutil.h"

static nn_tensor *ssim_l1_fn(nn_graph *g, nn_tensor **in, void *ctx) {
    return nn_ssim_l1_loss(g, in[0], in[1], *(const double *)ctx);
}

Test(grad, ssim_l1_loss_pred) {
    /* Unrelated images (SSIM near 0) and target = pred + noise (SSIM near 1); every
     * |pred - target| is at least 0.01, far from the L1 kink at 0 for the step 1e-4. The
     * SSIM part is smooth (the clamp's ends are SSIM = +-1, not reached here). */
    const int cases[3][4] = {{2, 2, 4, 5}, {1, 3, 3, 3}, {2, 1, 6, 3}};
    const double alphas[3] = {0.85, 0.85, 1};
    for (int t = 0; t < 3; t++) {
        const int *s = cases[t];
        nn_tensor *in[2] = {tu_uniform4(s[0], s[1], s[2], s[3], 0, 255, 301 + t),
                            tu_uniform4(s[0], s[1], s[2], s[3], 0.01, 20, 311 + t)};
        for (size_t i = 0; i < in[0]->numel; i++) {
            const double sign = nn_hash_uniform(321 + t, i) < 0.5 ? -1 : 1;
            in[1]->data[i] = t == 1 ? 255 * nn_hash_uniform(331, i) : in[0]->data[i] + sign * in[1]->data[i];
            if (fabs(in[1]->data[i] - in[0]->data[i]) < 0.01) in[1]->data[i] = in[0]->data[i] + 0.5;
        }
        in[0]->requires_grad = 1;
        tu_gradcheck("ssim_l1_loss", ssim_l1_fn, in, 2, (void *)&alphas[t], 1e-4, 1e-9, 1e-6, 1000, 0);
        nn_tensor_unref(in[0]), nn_tensor_unref(in[1]);
    }
}
