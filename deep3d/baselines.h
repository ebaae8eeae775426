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

#endif
