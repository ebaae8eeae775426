/* The evaluation metric and its baselines (DEEP3D.md "Evaluation and baselines").
 * Images are planar (N, 3, H, W) host arrays, 0..255. */
#ifndef DEEP3D_BASELINES_H
#define DEEP3D_BASELINES_H

#include <stddef.h>

#include "../nn/real.h"

/* Sum over all elements of |L(n, c, y, clamp(x - d, 0, W-1)) - R(n, c, y, x)|: the
 * error of predicting the right view as the left view shifted by d pixels (d = 0 is
 * the identity baseline). Divide by N*3*H*W for the mean absolute error. */
double baseline_shift_abs_sum(const nn_real *left, const nn_real *right, int n, int h, int w, int d);

/* Sum of |a - b| over n elements (the model's error, same units). */
double abs_diff_sum(const nn_real *a, const nn_real *b, size_t n);

/* Running error sums for each integer shift in [dmin, dmax] over many pairs, so that the
 * best single ("global") disparity can be chosen on the training set. */
typedef struct shift_search {
    int dmin, dmax;
    double sums[1024];
    double count;
} shift_search;

void shift_search_init(shift_search *s, int dmin, int dmax);
void shift_search_add(shift_search *s, const nn_real *left, const nn_real *right, int n, int h, int w);
/* The shift with the smallest mean absolute error, and that error (0..255). */
int shift_search_best(const shift_search *s, double *mae);

/* Per-pixel best shift by block matching, to check that a disparity range [dmin, dmax]
 * covers the data (issue: "the share of pixels whose best shift falls outside").
 * For each pixel of the right view and each integer shift d in the search range
 * [search_min, search_max], the cost is the sum over a 7x7 window and the 3 channels of
 * |R(y, x') - L(y, x' - d)| (the selection layer's convention: R(x) = L(x - d)); the
 * best shift is the argmin (classic SAD block matching, Scharstein and Szeliski 2002,
 * sec. 3). A pixel is counted only where the match means something: its window has
 * texture (mean |horizontal gradient| of the grey left view >= 4 in 0..255 units), every
 * searched shift stays inside the image, and the best cost is below 0.9x the best cost
 * of any shift at least 3 px away (unique). Counts accumulate over pairs. */
#define DISPARITY_COVERAGE_MAX 1024
typedef struct disparity_coverage {
    int search_min, search_max;            /* shifts searched, network pixels */
    double hist[DISPARITY_COVERAGE_MAX];   /* counted pixels per best shift - search_min */
    double counted, total;                 /* counted pixels, all pixels seen */
} disparity_coverage;

/* Search range: [-w/4, w/8] for a w-pixel-wide view (a 96 px leftward shift at 384
 * px: twice Middlebury's median; DEEP3D.md's range ends at +17). */
void disparity_coverage_init(disparity_coverage *c, int w);

/* Adds one pair, left and right (3, h, w) planar 0..255. Returns 0, or -1 + nn_fail
 * (out of memory). */
int disparity_coverage_add(disparity_coverage *c, const nn_real *left, const nn_real *right, int h, int w);

/* Share (0..1) of counted pixels whose best shift is < dmin or > dmax. */
double disparity_coverage_outside(const disparity_coverage *c, int dmin, int dmax);

/* The q-quantile (0..1) of the counted best shifts (network pixels). */
int disparity_coverage_quantile(const disparity_coverage *c, double q);

#endif
