#ifndef LAYERS_SSIM_L1_LOSS_H
#define LAYERS_SSIM_L1_LOSS_H

#include <math.h>

#include "../nn/graph.h"

/* The photometric loss of Godard, Mac Aodha, Brostow, "Unsupervised Monocular Depth
 * Estimation with Left-Right Consistency", CVPR 2017, eq. 2: SSIM and L1 mixed with
 * alpha (the paper: 0.85), in the units of nn_l1_loss (0..255).
 *
 * pred, target: (N, C, H, W) NCHW, equal shapes, one device, images in 0..255 with
 * H, W >= 3 -> a 1-element tensor (shape (1)):
 *   loss = 255 alpha mean_w clamp((1 - SSIM_w) / 2, 0, 1) + (1 - alpha) mean_i |pred_i - target_i|
 * The L1 mean runs over all N*C*H*W values. SSIM is computed per channel on the images
 * divided by 255 (0..1), over every full 3x3 window w (Godard's code: 3x3 average
 * pooling, 'VALID' padding), so the SSIM map of a channel is (H-2) x (W-2) and the mean
 * runs over N*C*(H-2)*(W-2) windows; with x = pred/255, y = target/255 on the window:
 *   mu_x = mean x, sigma_x = mean x^2 - mu_x^2, sigma_xy = mean xy - mu_x mu_y (same for y)
 *   SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x + sigma_y + C2))
 *   C1 = 0.01^2, C2 = 0.03^2.
 * The factor 255 puts the SSIM part in 0..255 units like the L1 part, so that --loss l1
 * and --loss ssim-l1 are of comparable size. Identical images give 0.
 * Gradient only to pred (target is data even when it requires a gradient); the clamp
 * passes the gradient where 0 <= (1 - SSIM)/2 <= 1 (as torch.clamp); sign(0) = 0 in the
 * L1 part (as nn_l1_loss). Sums in double; the CUDA sum has a fixed order.
 * Errors: shapes or devices differ, not 4-D, H or W below 3, alpha outside [0, 1]. */
nn_tensor *nn_ssim_l1_loss(nn_graph *g, nn_tensor *pred, nn_tensor *target, double alpha);

/* CPU kernels over n images of c channels, h x w (nn/backend.h): the loss above, and
 * dpred += dloss[0] * d loss / d pred. */
int ssim_l1_loss_forward_cpu(nn_real *loss, const nn_real *pred, const nn_real *target, int n, int c, int h,
                             int w, nn_real alpha);
int ssim_l1_loss_backward_cpu(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                              const nn_real *target, int n, int c, int h, int w, nn_real alpha);

/* ---- per-window and per-pixel arithmetic, shared by the CPU and CUDA kernels --------- */

/* The weights of the two parts: ws = 255 alpha / (number of windows), wl = (1 - alpha) /
 * (number of values), so that loss = the sum over all pixels of ssim_l1_term. */

NN_HOST_DEVICE void ssim_l1_weights(int n, int c, int h, int w, double alpha, double *ws, double *wl) {
    const double planes = (double)n * c;
    *ws = 255.0 * alpha / (planes * (h - 2) * (w - 2));
    *wl = (1.0 - alpha) / (planes * h * w);
}

/* SSIM of the 3x3 window whose top-left values are p[0], t[0] (row stride w, 0..255),
 * computed on the values / 255 in double. When k is not NULL, also the derivative of
 * that SSIM by each pred value of the window: dSSIM/dp_j = k[0] + k[1] p_j + k[2] t_j.
 * With A1 = 2 mu_x mu_y + C1, A2 = 2 sigma_xy + C2, B1 = mu_x^2 + mu_y^2 + C1,
 * B2 = sigma_x + sigma_y + C2 (SSIM = A1 A2 / (B1 B2)) and dmu_x/dx_j = 1/9,
 * dsigma_x/dx_j = 2 (x_j - mu_x)/9, dsigma_xy/dx_j = (y_j - mu_y)/9:
 *   dSSIM/dx_j = 2/9 (a + b x_j + c y_j),  c = A1/(B1 B2),  b = -SSIM/B2,
 *   a = mu_y A2/(B1 B2) - c mu_y - SSIM mu_x/B1 + SSIM mu_x/B2,
 * and dx_j/dp_j = 1/255. */
NN_HOST_DEVICE double ssim_3x3(const nn_real *p, const nn_real *t, int w, double *k) {
    const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03, u = 1.0 / 255;
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            const double x = p[i * w + j] * u, y = t[i * w + j] * u;
            sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
        }
    const double mx = sx / 9, my = sy / 9;
    const double vx = sxx / 9 - mx * mx, vy = syy / 9 - my * my, cxy = sxy / 9 - mx * my;
    const double a1 = 2 * mx * my + C1, a2 = 2 * cxy + C2, b1 = mx * mx + my * my + C1, b2 = vx + vy + C2;
    const double s = a1 * a2 / (b1 * b2);
    if (k) {
        const double c = a1 / (b1 * b2), b = -s / b2;
        const double a = my * a2 / (b1 * b2) - c * my - s * mx / b1 + s * mx / b2;
        const double f = 2.0 / 9 * u; /* 2/9 and dx/dp */
        k[0] = f * a, k[1] = f * b * u, k[2] = f * c * u;
    }
    return s;
}

/* clamp((1 - s)/2, 0, 1), and its derivative by s (-1/2 inside [0, 1], ends included) */
NN_HOST_DEVICE double ssim_dissimilarity(double s, double *ds) {
    const double v = (1 - s) / 2;
    if (ds) *ds = v >= 0 && v <= 1 ? -0.5 : 0;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* The loss term of pixel (y, x) of one h x w plane (p, t point at the plane): wl times
 * its |p - t|, plus, when it is the top-left of a full 3x3 window, ws times that
 * window's clamped (1 - SSIM)/2. */
NN_HOST_DEVICE double ssim_l1_term(const nn_real *p, const nn_real *t, int y, int x, int h, int w, double ws,
                                   double wl) {
    const size_t i = (size_t)y * w + x;
    double term = wl * fabs((double)p[i] - (double)t[i]);
    if (y < h - 2 && x < w - 2) term += ws * ssim_dissimilarity(ssim_3x3(p + i, t + i, w, NULL), NULL);
    return term;
}

/* Backward, first pass, window (y, x) (top-left) of a plane: k[0..2] = the SSIM
 * derivative coefficients of ssim_3x3 times dloss * ws * d clamp / d SSIM. */
NN_HOST_DEVICE void ssim_window_grad(nn_real *k, const nn_real *p, const nn_real *t, int y, int x, int w,
                                     double dloss_ws) {
    double kd[3], dv;
    ssim_dissimilarity(ssim_3x3(p + (size_t)y * w + x, t + (size_t)y * w + x, w, kd), &dv);
    for (int j = 0; j < 3; j++) k[j] = (nn_real)(dloss_ws * dv * kd[j]);
}

/* Backward, second pass: d loss / d pred at pixel (y, x) of a plane. k holds the plane's
 * (h-2) x (w-2) windows' coefficient triples (row-major); the pixel sums those of the up
 * to 9 windows that cover it, and adds dloss * wl * sign(p - t) (sign(0) = 0). */
NN_HOST_DEVICE double ssim_l1_pixel_grad(const nn_real *k, const nn_real *p, const nn_real *t, int y, int x,
                                         int h, int w, double dloss_wl) {
    const size_t i = (size_t)y * w + x;
    double ka = 0, kb = 0, kc = 0;
    for (int wy = y - 2 > 0 ? y - 2 : 0; wy <= y && wy < h - 2; wy++)
        for (int wx = x - 2 > 0 ? x - 2 : 0; wx <= x && wx < w - 2; wx++) {
            const nn_real *kw = k + 3 * ((size_t)wy * (w - 2) + wx);
            ka += kw[0], kb += kw[1], kc += kw[2];
        }
    const double d = (double)p[i] - (double)t[i];
    return ka + kb * p[i] + kc * t[i] + (d > 0 ? dloss_wl : d < 0 ? -dloss_wl : 0);
}

#endif
