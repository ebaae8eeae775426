/* Letterbox and pillarbox bars. See letterbox.h. */
#include "letterbox.h"

#include <stdlib.h>
#include <string.h>

/* cropdetect's default limit (of 255): a line whose mean luma is at most this is black */
#define LETTERBOX_LIMIT 24.0

letterbox letterbox_full(int H, int W) { return (letterbox){0, 0, W, H}; }

int letterbox_is_full(const letterbox *r, int H, int W) { return r->x0 == 0 && r->y0 == 0 && r->w == W && r->h == H; }

static inline double luma_at(const nn_real *img, size_t plane, size_t i) {
    return 0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i];
}

/* Black lines counted from each end of n lines; mean(k) is line k's mean luma. */
static void count_black(const double *mean, int n, int *from_start, int *from_end) {
    int a = 0, b = 0;
    while (a < n && mean[a] <= LETTERBOX_LIMIT) a++;
    while (b < n && mean[n - 1 - b] <= LETTERBOX_LIMIT) b++;
    *from_start = a, *from_end = b;
}

/* The bar taken on both ends of a side of n lines (0 when none qualifies). */
static int bar_size(const double *mean, int n) {
    int a, b;
    count_black(mean, n, &a, &b);
    int bar = a < b ? a : b, least = n / 100 > 2 ? n / 100 : 2;
    if (bar < least || n - 2 * bar < (n + 1) / 2) return 0;
    return bar;
}

void letterbox_detect(letterbox *r, const nn_real *img, int H, int W) {
    *r = letterbox_full(H, W);
    double *row = calloc((size_t)H, sizeof *row), *col = calloc((size_t)W, sizeof *col);
    if (!row || !col) { /* no memory: no bars, which is always safe */
        free(row), free(col);
        return;
    }
    const size_t plane = (size_t)H * W;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double v = luma_at(img, plane, (size_t)y * W + x);
            row[y] += v, col[x] += v;
        }
    for (int y = 0; y < H; y++) row[y] /= W;
    for (int x = 0; x < W; x++) col[x] /= H;
    const int by = bar_size(row, H);
    /* columns are judged inside the letterbox only, so black bands above and below do
     * not make every column dark */
    if (by > 0) {
        memset(col, 0, (size_t)W * sizeof *col);
        for (int y = by; y < H - by; y++)
            for (int x = 0; x < W; x++) col[x] += luma_at(img, plane, (size_t)y * W + x);
        for (int x = 0; x < W; x++) col[x] /= H - 2 * by;
    }
    const int bx = bar_size(col, W);
    *r = (letterbox){bx, by, W - 2 * bx, H - 2 * by};
    free(row), free(col);
}

void letterbox_crop(nn_real *dst, const nn_real *src, int C, int H, int W, const letterbox *r) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < r->h; y++)
            memcpy(dst + ((size_t)c * r->h + y) * r->w, src + ((size_t)c * H + r->y0 + y) * W + r->x0,
                   (size_t)r->w * sizeof *dst);
}

void letterbox_paste(nn_real *dst, const nn_real *src, int C, int H, int W, const letterbox *r) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < r->h; y++)
            memcpy(dst + ((size_t)c * H + r->y0 + y) * W + r->x0, src + ((size_t)c * r->h + y) * r->w,
                   (size_t)r->w * sizeof *dst);
}
