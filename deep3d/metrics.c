#include "metrics.h"

#include <math.h>
#include <stdlib.h>

#include "../nn/status.h"

/* A normalised 1-D Gaussian of sigma, radius r, into k (2r + 1 values). */
static void gaussian(double *k, int r, double sigma) {
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
}

/* out (H, W) = in (H, W) convolved with the separable kernel k (radius r), edges
 * replicated; tmp (H, W) scratch. */
static void blur(double *out, const double *in, double *tmp, int H, int W, const double *k, int r) {
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0;
            for (int j = -r; j <= r; j++) {
                int u = x + j < 0 ? 0 : x + j >= W ? W - 1 : x + j;
                s += k[j + r] * in[(size_t)y * W + u];
            }
            tmp[(size_t)y * W + x] = s;
        }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0;
            for (int j = -r; j <= r; j++) {
                int v = y + j < 0 ? 0 : y + j >= H ? H - 1 : y + j;
                s += k[j + r] * tmp[(size_t)v * W + x];
            }
            out[(size_t)y * W + x] = s;
        }
}

double metric_ssim(const nn_real *a, const nn_real *b, int H, int W) {
    enum { R = 5 };
    if (H < 2 * R + 1 || W < 2 * R + 1) return nn_fail("ssim: image %d x %d is smaller than the 11 x 11 window", W, H), NAN;
    const size_t n = (size_t)H * W;
    double *buf = malloc(8 * n * sizeof *buf), k[2 * R + 1];
    if (!buf) return nn_fail("ssim: out of memory for a %d x %d image", W, H), NAN;
    gaussian(k, R, 1.5);
    double *x = buf, *y = buf + n, *mx = buf + 2 * n, *my = buf + 3 * n, *sxx = buf + 4 * n, *syy = buf + 5 * n,
           *sxy = buf + 6 * n, *tmp = buf + 7 * n;
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    double total = 0;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < n; i++) x[i] = a[c * n + i], y[i] = b[c * n + i];
        blur(mx, x, tmp, H, W, k, R);
        blur(my, y, tmp, H, W, k, R);
        for (size_t i = 0; i < n; i++) x[i] = (double)a[c * n + i] * a[c * n + i];
        blur(sxx, x, tmp, H, W, k, R);
        for (size_t i = 0; i < n; i++) x[i] = (double)b[c * n + i] * b[c * n + i];
        blur(syy, x, tmp, H, W, k, R);
        for (size_t i = 0; i < n; i++) x[i] = (double)a[c * n + i] * b[c * n + i];
        blur(sxy, x, tmp, H, W, k, R);
        double sum = 0;
        for (int yy = R; yy < H - R; yy++)
            for (int xx = R; xx < W - R; xx++) {
                size_t i = (size_t)yy * W + xx;
                double ux = mx[i], uy = my[i];
                double vx = sxx[i] - ux * ux, vy = syy[i] - uy * uy, cxy = sxy[i] - ux * uy;
                sum += (2 * ux * uy + C1) * (2 * cxy + C2) / ((ux * ux + uy * uy + C1) * (vx + vy + C2));
            }
        total += sum / ((double)(H - 2 * R) * (W - 2 * R));
    }
    free(buf);
    return total / 3;
}

double metric_log_variance(const nn_real *img, int H, int W) {
    enum { R = 4 };
    if (H < 3 || W < 3) return nn_fail("detail: image %d x %d is smaller than 3 x 3", W, H), NAN;
    const size_t n = (size_t)H * W;
    double *buf = malloc(3 * n * sizeof *buf), k[2 * R + 1];
    if (!buf) return nn_fail("detail: out of memory for a %d x %d image", W, H), NAN;
    gaussian(k, R, 1.0);
    double *g = buf, *s = buf + n, *tmp = buf + 2 * n;
    for (size_t i = 0; i < n; i++) g[i] = 0.299 * img[i] + 0.587 * img[n + i] + 0.114 * img[2 * n + i];
    blur(s, g, tmp, H, W, k, R);
    const int x0 = (int)(0.05 * W), x1 = W - x0;
    double sum = 0, sum2 = 0, count = 0;
    for (int y = 0; y < H; y++)
        for (int x = x0 < 1 ? 1 : x0; x < (x1 > W - 1 ? W - 1 : x1); x++) {
            int yu = y > 0 ? y - 1 : 0, yd = y < H - 1 ? y + 1 : H - 1;
            double v = s[(size_t)yu * W + x] + s[(size_t)yd * W + x] + s[(size_t)y * W + x - 1] +
                       s[(size_t)y * W + x + 1] - 4 * s[(size_t)y * W + x];
            sum += v, sum2 += v * v, count += 1;
        }
    free(buf);
    const double mean = sum / count;
    return sum2 / count - mean * mean;
}

double metric_detail_kept(const nn_real *pred, const nn_real *left, int H, int W) {
    double p = metric_log_variance(pred, H, W), l = metric_log_variance(left, H, W);
    return l > 0 ? p / l : NAN;
}
