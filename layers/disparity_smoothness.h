#ifndef LAYERS_DISPARITY_SMOOTHNESS_H
#define LAYERS_DISPARITY_SMOOTHNESS_H

#include <math.h>

#include "../nn/graph.h"

/* Edge-aware disparity smoothness of Godard, Mac Aodha, Brostow, "Unsupervised Monocular
 * Depth Estimation with Left-Right Consistency", CVPR 2017, eq. 3, on Deep3D's expected
 * disparity (DEEP3D.md "Rendering at the source resolution"):
 *   E(n,y,x) = sum_k prob(n,k,y,x) d_k,  d_k = dmin + k  (network pixels)
 *   gx(n,y,x) = exp(-(1/C) sum_c |left(n,c,y,x+1) - left(n,c,y,x)| / 255), gy likewise in y
 *   loss = mean over (n, y, x < W-1) of |E(n,y,x+1) - E(n,y,x)| gx(n,y,x)
 *        + mean over (n, y < H-1, x) of |E(n,y+1,x) - E(n,y,x)| gy(n,y,x)
 * i.e. forward differences; each direction is averaged over its own valid differences
 * (N H (W-1) and N (H-1) W of them; a direction with none, W = 1 or H = 1, adds 0) and the
 * two means are summed, as Godard's code (mean of the x term + mean of the y term). The
 * image gradient is the mean over the C channels (3 for RGB) of the left view scaled to
 * 0..1, so a full black-to-white edge in every channel weighs exp(-1).
 * prob (N, D, H, W) (softmax probabilities; any values are accepted), left (N, C, H, W)
 * raw 0..255, one device -> a 1-element tensor (shape (1)), in pixels of disparity.
 * Gradient to prob only (the image is data):
 *   dprob(n,k,y,x) += dloss * d_k * dloss/dE(n,y,x), with sign(0) = 0 for |.| (as nn_l1_loss).
 * Sums in double; the CUDA sum has a fixed order.
 * Errors: prob or left not 4-D, N/H/W mismatch, devices differ. */
nn_tensor *nn_disparity_smoothness(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin);

/* CPU kernels (nn/backend.h), shapes as above (c = C, d = D): the loss above, and
 * dprob += dloss[0] * d loss / d prob. */
int disparity_smoothness_forward_cpu(nn_real *loss, const nn_real *prob, const nn_real *left, int n, int c,
                                     int h, int w, int d, int dmin);
int disparity_smoothness_backward_cpu(nn_real *dprob, const nn_real *dloss, const nn_real *prob,
                                      const nn_real *left, int n, int c, int h, int w, int d, int dmin);

/* ---- per-pixel arithmetic, shared by the CPU and CUDA kernels ------------------------
 * e: the E map of one image (h x w, double), left: that image's (C, H, W) view. */

/* The weights of the x and y means: 1 / (number of differences), 0 where there are none. */
NN_HOST_DEVICE void smoothness_weights(int n, int h, int w, double *ax, double *ay) {
    *ax = w > 1 ? 1.0 / ((double)n * h * (w - 1)) : 0;
    *ay = h > 1 ? 1.0 / ((double)n * (h - 1) * w) : 0;
}

/* E at one pixel: p points at prob(n, 0, y, x); plane = H*W */
NN_HOST_DEVICE double smoothness_expected(const nn_real *p, size_t plane, int d, int dmin) {
    double e = 0;
    for (int k = 0; k < d; k++) e += (double)p[k * plane] * (dmin + k);
    return e;
}

/* exp(-mean_c |l(c, at + step) - l(c, at)| / 255): l points at left(n, 0, y, x) */
NN_HOST_DEVICE double smoothness_edge_weight(const nn_real *l, size_t plane, int c, size_t step) {
    double s = 0;
    for (int j = 0; j < c; j++) s += fabs((double)l[j * plane + step] - (double)l[j * plane]);
    return exp(-s / (255.0 * c));
}

NN_HOST_DEVICE double smoothness_sign(double v) { return v > 0 ? 1 : v < 0 ? -1 : 0; }

/* The loss terms of the differences that start at pixel (y, x) (to x+1 and to y+1). */
NN_HOST_DEVICE double smoothness_term(const double *e, const nn_real *left, int c, int h, int w, int y, int x,
                                      double ax, double ay) {
    const size_t i = (size_t)y * w + x, plane = (size_t)h * w;
    double t = 0;
    if (x < w - 1) t += ax * fabs(e[i + 1] - e[i]) * smoothness_edge_weight(left + i, plane, c, 1);
    if (y < h - 1) t += ay * fabs(e[i + w] - e[i]) * smoothness_edge_weight(left + i, plane, c, (size_t)w);
    return t;
}

/* d loss / d E at pixel (y, x): the pixel ends one difference and starts another in
 * each direction. */
NN_HOST_DEVICE double smoothness_grad(const double *e, const nn_real *left, int c, int h, int w, int y, int x,
                                      double ax, double ay) {
    const size_t i = (size_t)y * w + x, plane = (size_t)h * w;
    double g = 0;
    if (x < w - 1) g -= ax * smoothness_sign(e[i + 1] - e[i]) * smoothness_edge_weight(left + i, plane, c, 1);
    if (x > 0) g += ax * smoothness_sign(e[i] - e[i - 1]) * smoothness_edge_weight(left + i - 1, plane, c, 1);
    if (y < h - 1)
        g -= ay * smoothness_sign(e[i + w] - e[i]) * smoothness_edge_weight(left + i, plane, c, (size_t)w);
    if (y > 0)
        g += ay * smoothness_sign(e[i] - e[i - w]) * smoothness_edge_weight(left + i - w, plane, c, (size_t)w);
    return g;
}

#endif
