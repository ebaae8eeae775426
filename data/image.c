/* Planar RGB images: decoding, atomic PNG writing, crop, resize, flip. See image.h. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "../nn/status.h"
#include "files.h"

/* The data pipeline is compiled in the float32 product build only (Makefile: APP_SRC). */
_Static_assert(sizeof(nn_real) == sizeof(float), "data/ is float32 only (nn_real = float)");

/* Largest side we accept: stb_image's own limit (STBI_MAX_DIMENSIONS). */
#define IMAGE_MAX_SIDE (1 << 24)

image *image_new(int w, int h) {
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE) {
        nn_fail("image: bad size %dx%d", w, h);
        return NULL;
    }
    image *im = malloc(sizeof *im);
    nn_real *data = calloc((size_t)3 * (size_t)w * (size_t)h, sizeof(nn_real));
    if (!im || !data) {
        free(im), free(data);
        nn_fail("image: out of memory for %dx%d pixels", w, h);
        return NULL;
    }
    im->w = w, im->h = h, im->data = data;
    return im;
}

void image_free(image *im) {
    if (!im) return;
    free(im->data);
    free(im);
}

image *image_clone(const image *im) {
    image *out = image_new(im->w, im->h);
    if (out) memcpy(out->data, im->data, (size_t)3 * im->w * im->h * sizeof(nn_real));
    return out;
}

image *image_load(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        nn_fail("image: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        nn_fail("image: '%s' is a folder, not an image", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        nn_fail("image: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
        fclose(f);
        nn_fail("image: '%s' is empty (0 bytes)", path);
        return NULL;
    }
    int w = 0, h = 0, n = 0;
    unsigned char *pix = stbi_load_from_file(f, &w, &h, &n, 3);
    fclose(f);
    if (!pix) {
        const char *why = stbi_failure_reason();
        nn_fail("image: cannot decode '%s': %s", path, why ? why : "unknown reason");
        return NULL;
    }
    image *im = image_new(w, h);
    if (!im) {
        stbi_image_free(pix);
        nn_fail_context("image: '%s' (%dx%d)", path, w, h);
        return NULL;
    }
    size_t plane = (size_t)w * (size_t)h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) im->data[c * plane + i] = (nn_real)pix[3 * i + (size_t)c];
    stbi_image_free(pix);
    return im;
}

/* stb_image_write callback: appends to a FILE*, remembering the first short write. */
typedef struct {
    FILE *f;
    int failed;
    int err;
} png_sink;

static void png_sink_write(void *ctx, void *data, int size) {
    png_sink *s = ctx;
    if (s->failed || size <= 0) return;
    if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = 1, s->err = errno;
}

static unsigned char to_byte(nn_real v) {
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 255) return 255;
    return (unsigned char)(v + (nn_real)0.5);
}

int image_write_rgb8(const char *path, const uint8_t *rgb, int w, int h, image_codec kind, int replace) {
    if (!rgb || w <= 0 || h <= 0) return nn_fail("image: cannot write '%s': empty image", path);
    char tmp[4200];
    files_tmp_name(tmp, sizeof tmp, path);
    png_sink sink = {fopen(tmp, "wb"), 0, 0};
    if (!sink.f) return nn_fail("image: cannot write '%s': %s", path, strerror(errno));
    int ok = kind == IMAGE_JPEG ? stbi_write_jpg_to_func(png_sink_write, &sink, w, h, 3, rgb, 95)
                               : stbi_write_png_to_func(png_sink_write, &sink, w, h, 3, rgb, 3 * w);
    const char *why = NULL;
    int e = 0;
    if (!ok) why = "stb_image_write failed to encode";
    else if (sink.failed) e = sink.err ? sink.err : EIO;
    else if (fflush(sink.f) != 0) e = errno;
    if (fclose(sink.f) != 0 && !why && !e) e = errno;
    if (why || e) {
        unlink(tmp);
        return nn_fail("image: cannot write '%s': %s", path, why ? why : strerror(e));
    }
    if (files_commit(tmp, path, replace)) return nn_fail_context("image");
    return 0;
}

int image_save_png(const image *im, const char *path) {
    if (!im || !im->data || im->w <= 0 || im->h <= 0)
        return nn_fail("image: cannot write '%s': empty image", path);
    size_t plane = (size_t)im->w * (size_t)im->h;
    unsigned char *pix = malloc(3 * plane);
    if (!pix) return nn_fail("image: cannot write '%s': out of memory", path);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) pix[3 * i + (size_t)c] = to_byte(im->data[c * plane + i]);
    int rc = image_write_rgb8(path, pix, im->w, im->h, IMAGE_PNG, 1);
    free(pix);
    return rc;
}

image *image_crop(const image *src, int x, int y, int w, int h) {
    if (w <= 0 || h <= 0 || x < 0 || y < 0 || x > src->w - w || y > src->h - h) {
        nn_fail("image: crop %dx%d at (%d, %d) lies outside the %dx%d image", w, h, x, y, src->w,
                src->h);
        return NULL;
    }
    image *out = image_new(w, h);
    if (!out) return NULL;
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < h; r++)
            memcpy(out->data + ((size_t)c * h + r) * w,
                   src->data + ((size_t)c * src->h + (size_t)(y + r)) * src->w + x,
                   (size_t)w * sizeof(nn_real));
    return out;
}

/* Mitchell-Netravali cubic with parameters (B, C), support [-2, 2].
 * Source: D. Mitchell, A. Netravali, "Reconstruction Filters in Computer Graphics",
 * SIGGRAPH 1988, eq. 8. Catmull-Rom is (0, 1/2), "Mitchell" (1/3, 1/3). */
static double cubic(double x, double B, double C) {
    x = fabs(x);
    if (x < 1) return ((12 - 9 * B - 6 * C) * x * x * x + (-18 + 12 * B + 6 * C) * x * x + (6 - 2 * B)) / 6;
    if (x < 2)
        return ((-B - 6 * C) * x * x * x + (6 * B + 30 * C) * x * x + (-12 * B - 48 * C) * x +
                (8 * B + 24 * C)) / 6;
    return 0;
}

/* The taps of one axis resampled from n_in to n_out pixels: output pixel o reads
 * the nt input pixels first[o] .. first[o] + nt - 1 (clamped to the edge: idx holds
 * the clamped indices) with weights wt[o * nt + k]. Output pixel o's centre sits at
 * input coordinate (o + 0.5) * n_in / n_out - 0.5 (pixel centres aligned, as in
 * stb_image_resize). Enlarging or keeping the size: Catmull-Rom, interpolating, so
 * an unchanged axis is copied exactly. Reducing: Mitchell widened by the reduction
 * factor (anti-aliasing). The weights of each output pixel sum to 1. */
typedef struct {
    int nt;
    int *first, *idx;
    float *wt;
} axis_taps;

static void free_taps(axis_taps *t) { free(t->first), free(t->idx), free(t->wt); }

static int make_taps(axis_taps *t, int n_in, int n_out) {
    double ratio = (double)n_in / n_out, stretch = ratio > 1 ? ratio : 1;
    double B = ratio > 1 ? 1.0 / 3 : 0, C = ratio > 1 ? 1.0 / 3 : 0.5;
    double radius = 2 * stretch;
    t->nt = 2 * (int)ceil(radius) + 2;
    t->first = malloc((size_t)n_out * sizeof *t->first);
    t->idx = malloc((size_t)n_out * t->nt * sizeof *t->idx);
    t->wt = malloc((size_t)n_out * t->nt * sizeof *t->wt);
    double *wd = malloc((size_t)t->nt * sizeof *wd);
    if (!t->first || !t->idx || !t->wt || !wd) {
        free(wd);
        return -1;
    }
    for (int o = 0; o < n_out; o++) {
        double centre = (o + 0.5) * ratio - 0.5, sum = 0;
        int lo = (int)floor(centre - radius);
        t->first[o] = lo;
        for (int k = 0; k < t->nt; k++) {
            int i = lo + k;
            wd[k] = cubic((i - centre) / stretch, B, C);
            sum += wd[k];
            t->idx[(size_t)o * t->nt + k] = i < 0 ? 0 : i >= n_in ? n_in - 1 : i;
        }
        for (int k = 0; k < t->nt; k++) t->wt[(size_t)o * t->nt + k] = (float)(wd[k] / sum);
    }
    free(wd);
    return 0;
}

image *image_resize(const image *src, int w, int h) {
    if (w == src->w && h == src->h) return image_clone(src);
    image *out = image_new(w, h);
    if (!out) return NULL;
    const int W = src->w, H = src->h;
    axis_taps th = {0}, tv = {0};
    int ok = make_taps(&th, W, w) == 0 && make_taps(&tv, H, h) == 0;
    int pad = th.nt + 1; /* first[o] >= -pad, first[o] + nt <= W + pad */
    float *tmp = malloc((size_t)h * W * sizeof *tmp);        /* one plane, height done */
    float *row = malloc((size_t)(W + 2 * pad) * sizeof *row); /* one row, edges repeated */
    ok = ok && tmp && row;
    for (int c = 0; ok && c < 3; c++) {
        const nn_real *in = src->data + (size_t)c * W * H;
        nn_real *dst = out->data + (size_t)c * w * h;
        for (int o = 0; o < h; o++) { /* vertical pass: whole rows at a time */
            float *trow = tmp + (size_t)o * W;
            const int *idx = tv.idx + (size_t)o * tv.nt;
            const float *wt = tv.wt + (size_t)o * tv.nt;
            for (int x = 0; x < W; x++) trow[x] = 0;
            for (int k = 0; k < tv.nt; k++) {
                if (wt[k] == 0) continue;
                const nn_real *irow = in + (size_t)idx[k] * W;
                const float wk = wt[k];
                for (int x = 0; x < W; x++) trow[x] += wk * irow[x];
            }
        }
        for (int y = 0; y < h; y++) { /* horizontal pass on the padded row */
            const float *trow = tmp + (size_t)y * W;
            for (int x = 0; x < pad; x++) row[x] = trow[0], row[pad + W + x] = trow[W - 1];
            memcpy(row + pad, trow, (size_t)W * sizeof *row);
            nn_real *drow = dst + (size_t)y * w;
            for (int o = 0; o < w; o++) {
                const float *r = row + pad + th.first[o], *wt = th.wt + (size_t)o * th.nt;
                float acc = 0;
                for (int k = 0; k < th.nt; k++) acc += wt[k] * r[k];
                drow[o] = acc < 0 ? 0 : acc > 255 ? 255 : acc;
            }
        }
    }
    free(tmp), free(row);
    free_taps(&th), free_taps(&tv);
    if (!ok) {
        image_free(out);
        nn_fail("image: out of memory resizing %dx%d to %dx%d", src->w, src->h, w, h);
        return NULL;
    }
    return out;
}

void image_flip_horizontal(image *im) {
    for (size_t r = 0; r < (size_t)3 * im->h; r++) {
        nn_real *row = im->data + r * im->w;
        for (int a = 0, b = im->w - 1; a < b; a++, b--) {
            nn_real t = row[a];
            row[a] = row[b], row[b] = t;
        }
    }
}

/* ---- in-memory codecs ---- */

image *image_decode(const void *bytes, size_t n, const char *name) {
    if (n == 0 || n > INT32_MAX) {
        nn_fail("image: cannot decode '%s': %zu bytes", name, n);
        return NULL;
    }
    int w = 0, h = 0, comp = 0;
    unsigned char *pix = stbi_load_from_memory(bytes, (int)n, &w, &h, &comp, 3);
    if (!pix) {
        const char *why = stbi_failure_reason();
        nn_fail("image: cannot decode '%s': %s", name, why ? why : "unknown reason");
        return NULL;
    }
    image *im = image_new(w, h);
    if (im) {
        size_t plane = (size_t)w * (size_t)h;
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++) im->data[c * plane + i] = (nn_real)pix[3 * i + (size_t)c];
    } else {
        nn_fail_context("image: '%s' (%dx%d)", name, w, h);
    }
    stbi_image_free(pix);
    return im;
}

/* stb_image_write callback: appends to a growing memory buffer. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    int failed;
} mem_sink;

static void mem_sink_write(void *ctx, void *data, int size) {
    mem_sink *s = ctx;
    if (s->failed || size <= 0) return;
    if (s->n + (size_t)size > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 65536;
        while (cap < s->n + (size_t)size) cap *= 2;
        unsigned char *p = realloc(s->p, cap);
        if (!p) {
            s->failed = 1;
            return;
        }
        s->p = p, s->cap = cap;
    }
    memcpy(s->p + s->n, data, (size_t)size);
    s->n += (size_t)size;
}

int image_encode(const image *im, image_codec codec, int quality, const char *name, unsigned char **out,
                 size_t *n) {
    *out = NULL, *n = 0;
    if (codec != IMAGE_JPEG && codec != IMAGE_PNG)
        return nn_fail("image: cannot encode %s: unknown codec %d", name, (int)codec);
    if (codec == IMAGE_JPEG && (quality < 1 || quality > 100))
        return nn_fail("image: cannot encode %s: JPEG quality %d outside 1..100", name, quality);
    size_t plane = (size_t)im->w * (size_t)im->h;
    unsigned char *pix = malloc(3 * plane);
    if (!pix) return nn_fail("image: cannot encode %s: out of memory", name);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) pix[3 * i + (size_t)c] = to_byte(im->data[c * plane + i]);
    mem_sink sink = {0};
    int ok = codec == IMAGE_JPEG ? stbi_write_jpg_to_func(mem_sink_write, &sink, im->w, im->h, 3, pix, quality)
                                 : stbi_write_png_to_func(mem_sink_write, &sink, im->w, im->h, 3, pix, 3 * im->w);
    free(pix);
    if (!ok || sink.failed || sink.n == 0) {
        free(sink.p);
        return nn_fail("image: cannot encode %s: %s", name, sink.failed ? "out of memory" : "stb_image_write failed");
    }
    *out = sink.p, *n = sink.n;
    return 0;
}
