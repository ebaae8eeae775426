/* Images in memory for the data pipeline: planar RGB, values 0..255.
 *
 * An image holds 3 planes (R, G, B) of h rows of w columns each, the layout of one
 * NCHW sample: data[(c * h + y) * w + x], c = 0, 1, 2, values 0..255 (not 0..1) as
 * DEEP3D.md "Conventions" asks. Decoding and encoding go through stb_image and
 * stb_image_write (Sean Barrett's single-file libraries, Debian's libstb, whose
 * library holds the implementations); resizing is our own separable cubic filter with
 * stb_image_resize's conventions, checked against it in the tests.
 *
 * Errors: functions return NULL or -1 after nn_fail() with one line naming the file
 * and what is wrong; they never print and never exit.
 * The data pipeline is float32 only (nn_real = float); see image.c.
 */
#ifndef DATA_IMAGE_H
#define DATA_IMAGE_H

#include "../nn/real.h"

typedef struct image {
    int w, h;      /* width and height in pixels */
    nn_real *data; /* (3, h, w) planar RGB, 0..255 */
} image;

/* A w x h image filled with zeros, or NULL + nn_fail (bad size, out of memory). */
image *image_new(int w, int h);

/* Frees the image and its pixels; NULL is allowed. */
void image_free(image *im);

/* A copy of im, or NULL + nn_fail. */
image *image_clone(const image *im);

/* Decodes any format stb_image reads (PNG, JPEG, BMP, TGA, GIF first frame, PSD, HDR,
 * PIC, PNM). Grayscale is replicated to R, G, B; the alpha channel of RGBA / gray+alpha
 * is dropped (not composited); 16-bit PNGs are reduced to 8 bits by stb_image.
 * Errors (NULL + nn_fail): "image: cannot open '<path>': <strerror>", "image: '<path>'
 * is a folder", "image: '<path>' is empty", "image: cannot decode '<path>': <stb's
 * reason>" (a corrupt, truncated or foreign file; stb_image's stbi_failure_reason). */
image *image_load(const char *path);

/* Writes im as an 8-bit RGB PNG (stb_image_write's stbi_write_png_to_func), values
 * rounded and clamped to 0..255. Atomic (nn/atomic_file.h): the PNG is written to a
 * temporary "<folder>/.deep3d-XXXXXX", flushed to disk (fsync) and renamed onto path;
 * on any failure the temporary file is removed and an existing file at path is left
 * untouched. Returns 0, or -1 + nn_fail("image: cannot write '<path>': <reason>"). */
int image_save_png(const image *im, const char *path);

/* The w x h rectangle of src whose top-left pixel is (x, y); it must lie inside src.
 * NULL + nn_fail("image: crop ... outside ...") otherwise. */
image *image_crop(const image *src, int x, int y, int w, int h);

/* src resampled to w x h by a separable cubic filter (vertical pass, then horizontal),
 * with stb_image_resize v1's conventions: pixel centres aligned (output pixel o sits at
 * input coordinate (o + 0.5) * in / out - 0.5), edges clamped, per axis Catmull-Rom
 * when the axis grows or keeps its size (interpolating: an unchanged axis is copied
 * exactly) and Mitchell-Netravali (B = C = 1/3) widened by the factor when it shrinks
 * (anti-aliased). Filters: Mitchell & Netravali, SIGGRAPH 1988. It agrees with
 * stbir_resize given the same filters to within 1e-3 (tests/test_data.c) and runs
 * several times faster, which matters in the loader; stb's own default would take
 * Mitchell at scale 1 and blur an unchanged axis. The cubic filters can overshoot
 * slightly, so results are clamped to 0..255. A same-size resize is an exact copy.
 * NULL + nn_fail on a bad size or out of memory. */
image *image_resize(const image *src, int w, int h);

/* Mirrors im left-right in place: column x becomes column w - 1 - x. */
void image_flip_horizontal(image *im);

#endif
