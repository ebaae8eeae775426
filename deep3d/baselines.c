#include "baselines.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

double baseline_shift_abs_sum(const nn_real *left, const nn_real *right, int n, int h, int w, int d) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int row = 0; row < n * 3 * h; row++) {
        const nn_real *l = left + (size_t)row * w, *r = right + (size_t)row * w;
        for (int x = 0; x < w; x++) {
            int src = x - d;
            src = src < 0 ? 0 : src >= w ? w - 1 : src;
            total += fabs((double)l[src] - (double)r[x]);
        }
    }
    return total;
}

double abs_diff_sum(const nn_real *a, const nn_real *b, size_t n) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < n; i++) total += fabs((double)a[i] - (double)b[i]);
    return total;
}

void shift_search_init(shift_search *s, int dmin, int dmax) {
    memset(s, 0, sizeof *s);
    if (dmax - dmin >= 1024) dmax = dmin + 1023;
    s->dmin = dmin;
    s->dmax = dmax;
}

void shift_search_add(shift_search *s, const nn_real *left, const nn_real *right, int n, int h, int w) {
    for (int d = s->dmin; d <= s->dmax; d++) s->sums[d - s->dmin] += baseline_shift_abs_sum(left, right, n, h, w, d);
    s->count += (double)n * 3 * h * w;
}

int shift_search_best(const shift_search *s, double *mae) {
    int best = s->dmin;
    for (int d = s->dmin; d <= s->dmax; d++)
        if (s->sums[d - s->dmin] < s->sums[best - s->dmin]) best = d;
    if (mae) *mae = s->count > 0 ? s->sums[best - s->dmin] / s->count : NAN;
    return best;
}
