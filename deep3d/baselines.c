#include "baselines.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/status.h"

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

/* ---- disparity coverage --------------------------------------------------------- */

void disparity_coverage_init(disparity_coverage *c, int w) {
    memset(c, 0, sizeof *c);
    c->search_min = -(w / 4), c->search_max = w / 8;
    if (c->search_max - c->search_min >= DISPARITY_COVERAGE_MAX) c->search_min = c->search_max - DISPARITY_COVERAGE_MAX + 1;
}

/* In place: p (h, w) <- its (2r+1)^2 box sums, borders clamped; tmp is (h, w) scratch. */
static void box_sum(float *p, float *tmp, int h, int w, int r) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int j = -r; j <= r; j++) s += p[(size_t)y * w + (x + j < 0 ? 0 : x + j >= w ? w - 1 : x + j)];
            tmp[(size_t)y * w + x] = s;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int j = -r; j <= r; j++) s += tmp[(size_t)(y + j < 0 ? 0 : y + j >= h ? h - 1 : y + j) * w + x];
            p[(size_t)y * w + x] = s;
        }
}

int disparity_coverage_add(disparity_coverage *c, const nn_real *left, const nn_real *right, int h, int w) {
    enum { R = 3 };
    const int nd = c->search_max - c->search_min + 1;
    const size_t plane = (size_t)h * w;
    /* cost (nd, h, w): per-pixel |R - L(x - d)| summed over channels, then 7x7 box sums */
    float *cost = malloc((size_t)nd * plane * sizeof *cost), *tex = malloc(plane * sizeof *tex);
    float *tmp = malloc(plane * sizeof *tmp);
    if (!cost || !tex || !tmp) {
        free(cost), free(tex), free(tmp);
        return nn_fail("disparity coverage: out of memory for %d shifts of %dx%d", nd, w, h);
    }
    for (int k = 0; k < nd; k++) {
        const int d = c->search_min + k;
        float *ck = cost + (size_t)k * plane;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int u = x - d;
                u = u < 0 ? 0 : u >= w ? w - 1 : u;
                float s = 0;
                for (int ch = 0; ch < 3; ch++)
                    s += fabsf((float)right[ch * plane + (size_t)y * w + x] - (float)left[ch * plane + (size_t)y * w + u]);
                ck[(size_t)y * w + x] = s;
            }
        box_sum(ck, tmp, h, w, R);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int x1 = x + 1 < w ? x + 1 : x;
            float g = 0;
            for (int ch = 0; ch < 3; ch++) g += (float)left[ch * plane + i - x + x1] - (float)left[ch * plane + i];
            tex[i] = fabsf(g) / 3;
        }
    box_sum(tex, tmp, h, w, R);
    const float tex_min = 4.0f * (2 * R + 1) * (2 * R + 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            c->total += 1;
            /* every searched window inside the image: x - d - R >= 0 and x - d + R < w */
            if (x - c->search_max - R < 0 || x - c->search_min + R >= w || tex[i] < tex_min) continue;
            int best = 0;
            for (int k = 1; k < nd; k++)
                if (cost[(size_t)k * plane + i] < cost[(size_t)best * plane + i]) best = k;
            float other = INFINITY;
            for (int k = 0; k < nd; k++)
                if (abs(k - best) >= 3 && cost[(size_t)k * plane + i] < other) other = cost[(size_t)k * plane + i];
            if (!(cost[(size_t)best * plane + i] < 0.9f * other)) continue;
            c->hist[best] += 1, c->counted += 1;
        }
    free(cost), free(tex), free(tmp);
    return 0;
}

double disparity_coverage_outside(const disparity_coverage *c, int dmin, int dmax) {
    if (!(c->counted > 0)) return 0;
    double out = 0;
    for (int k = 0; k <= c->search_max - c->search_min; k++) {
        int d = c->search_min + k;
        if (d < dmin || d > dmax) out += c->hist[k];
    }
    return out / c->counted;
}

int disparity_coverage_quantile(const disparity_coverage *c, double q) {
    double target = q * c->counted, acc = 0;
    for (int k = 0; k <= c->search_max - c->search_min; k++) {
        acc += c->hist[k];
        if (acc >= target && c->hist[k] > 0) return c->search_min + k;
    }
    return c->search_max;
}
