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

#include <stddef.h>
#include <stdint.h>

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

/* The decoding budget: the most pixels (width x height) image_load decodes, shared by
 * every command and the training loader (deep3d infer, train and eval set it from
 * --max-pixels). Default IMAGE_DEFAULT_MAX_PIXELS, 100 MP (a 12000x8000 photo fits).
 * n <= 0 restores the default. Set it before starting threads that load images. */
#define IMAGE_DEFAULT_MAX_PIXELS 100000000LL
void image_set_max_pixels(long long n);
long long image_get_max_pixels(void);

/* Decodes any format stb_image reads (PNG, JPEG, BMP, TGA, GIF first frame, PSD, HDR,
 * PIC, PNM). Grayscale is replicated to R, G, B; the alpha channel of RGBA / gray+alpha
 * is dropped (not composited); 16-bit PNGs are reduced to 8 bits by stb_image.
 *
 * Before decoding, the header's size (stbi_info) is checked against the budget and
 * against what the file can hold, so a small file cannot claim a huge image:
 *   pixels <= image_get_max_pixels();
 *   file size >= the fewest bytes that format needs for w x h pixels:
 *     PNG   33 + h * (1 + ceil(w * channels * depth / 8)) / 1032 (deflate's largest
 *           ratio is 1032:1: a 258-byte match in 2 bits of a fixed-Huffman block;
 *           RFC 1951 sec. 3.2.5-3.2.6);
 *     JPEG  2 + ceil(blocks / 8), blocks = ceil(w/8) * ceil(h/8): every 8x8 block of
 *           the first component costs at least one Huffman-coded bit (its DC;
 *           ITU T.81 F.1.2.1, G.1.2.1), codes are at least 1 bit long;
 *     BMP   14 + header + h * stride, stride = ceil(w * bpp / 32) * 4 (uncompressed:
 *           stb_image reads no RLE BMP);
 *     PNM   header + w * h * channels * (maxval > 255 ? 2 : 1) (P5/P6, raw samples);
 *     TGA   18 + id + colour map + w * h * bytes per pixel, or for RLE types
 *           ceil(w * h / 128) * (1 + bytes per pixel) (a packet covers <= 128 pixels);
 *     GIF   13 + w * h * 3 / 8 / 4096 (LZW codes of >= 3 bits yield <= 4096 pixels each);
 *     PSD   26 + w * h * channels / 64 (PackBits: >= 2 bytes per 128 samples);
 *     HDR   h * min(4 w, 4 + 8 ceil(w / 127)) (flat RGBE or new-style RLE rows);
 *     PIC   no bound (mixed RLE with 16-bit counts; only the pixel limit).
 * Peak memory of a call is then bounded by what stb_image allocates for that many
 * pixels: 3 bytes per pixel for its 8-bit result plus its decoder's buffers (JPEG: the
 * component planes, <= 3 bytes per pixel, and for progressive files 2 bytes per
 * coefficient, <= 6 per pixel; GIF: 9 bytes per pixel of the screen; PNG: the raw
 * scanlines, <= 8 bytes per pixel), and 12 bytes per pixel for the float image made
 * here: at most about 30 bytes per pixel of the budget (3 GB at 100 MP).
 *
 * Truncation: stb_image fills data missing at the end of a file with zeros and
 * succeeds. Here it reads the file through callbacks that note any read or skip past
 * the end of the file; a decoder that asks for bytes beyond the end means a truncated
 * or inconsistent file, refused. That check serves every format (a PNG's IDAT and IEND,
 * a JPEG's entropy data and EOI marker, which stb_image's decoder reads before it
 * returns, a BMP/PNM/TGA raster cut short, an HDR scanline, a PSD channel). A GIF also
 * must end with its trailer byte 0x3B (stb_image returns after the first frame without
 * reading on).
 *
 * Errors (NULL + nn_fail), each naming the file:
 *   "image: cannot open '<path>': <strerror>", "image: '<path>' is a folder, not an
 *   image", "image: '<path>' is empty (0 bytes)", "image: '<path>' is not a regular file",
 *   "image: cannot decode '<path>': <stb's reason>" (a corrupt or foreign file),
 *   "image: '<path>' is corrupt: a JPEG Huffman table of N codes (at most 256)" (and
 *   two more for a table cut off by or running past its segment), "image: '<path>' is
 *   corrupt: a JPEG scan uses the DC|AC Huffman table N, which no DHT segment before
 *   it defines", "image: '<path>' is truncated: a JPEG Huffman table|scan header
 *   segment of N bytes has M before the end of the file", "image: '<path>' is
 *   corrupt: its PNM header's width|height|maxval is over N", "image: '<path>' is
 *   truncated: its PNG chunk TYPE at byte N claims L bytes and a CRC, the file has M
 *   after the chunk's header" (these checked before stb_image reads the file:
 *   data/image.c says which stb_image 2.27 flaw each avoids),
 *   "image: '<path>' is WxH = N pixels, over the limit of M (--max-pixels)",
 *   "image: '<path>' is corrupt: its <FMT> header says WxH" (a side of 0),
 *   "image: '<path>' is truncated or inconsistent: its <FMT> header says WxH, which
 *   needs at least N bytes, the file has M",
 *   "image: '<path>' is truncated: the <FMT> decoder read past its end (M bytes)" (it
 *   read past the end and still returned an image),
 *   "image: '<path>' is truncated: the <FMT> decoder needed more than its M bytes
 *   (stb_image: <reason>)" (it failed after asking for bytes past the end),
 *   "image: '<path>' is truncated: a GIF ends with the trailer byte 0x3B, ...". */
image *image_load(const char *path);

/* Writes im as an 8-bit RGB PNG, values rounded half up and clamped to 0..255:
 * image_write_rgb8 with IMAGE_PNG, replacing an existing file at path. */
int image_save_png(const image *im, const char *path);

/* Encoders of image_write_rgb8 and image_encode. */
typedef enum { IMAGE_JPEG = 0, IMAGE_PNG = 1 } image_codec;
/* Writes packed 8-bit RGB (h rows of 3 w bytes) as a PNG (stbi_write_png_to_func) or
 * a JPEG of quality 95 (stbi_write_jpg_to_func, baseline, 4:2:0 chroma as stb writes
 * it). Atomic: written to a temporary "<folder>/.deep3d-XXXXXX" (nn_atomic_open,
 * nn/atomic_file.h: legal wherever path's name is), flushed to disk, then committed with
 * files_commit (data/files.h): replace = 1 replaces an existing file, replace = 0
 * fails ("'<path>' exists (not replaced)") and leaves it. On any failure the temporary
 * file is removed and path is untouched.
 * Returns 0, or -1 + nn_fail("image: cannot write '<path>': <reason>"). */
int image_write_rgb8(const char *path, const uint8_t *rgb, int w, int h, image_codec kind, int replace);

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

/* ---- in-memory codecs (the packed dataset's records, data/dataset.h) ---- */

/* Decodes n bytes holding an image in any format image_load reads (stb_image's
 * stbi_load_from_memory), with image_load's conversions. name is used in messages only.
 * Errors (NULL + nn_fail): "image: cannot decode '<name>': <stb's reason>" (corrupt,
 * truncated, foreign or empty bytes), or image_new's. Safe to call from several threads. */
image *image_decode(const void *bytes, size_t n, const char *name);


/* Encodes im as 8-bit RGB into a new malloc'd buffer (*out, *n bytes; the caller frees
 * it): IMAGE_JPEG (baseline JPEG, stb_image_write's stbi_write_jpg_to_func, 4:2:0 chroma
 * at quality <= 90 and 4:4:4 above, quality 1..100) or IMAGE_PNG (stbi_write_png_to_func,
 * lossless; quality unused). Values are rounded and clamped to 0..255 as in
 * image_save_png, so a PNG decodes back to exactly those bytes.
 * Returns 0, or -1 + nn_fail("image: cannot encode <name>: <why>") (bad codec or quality,
 * out of memory). Safe to call from several threads. */
int image_encode(const image *im, image_codec codec, int quality, const char *name, unsigned char **out,
                 size_t *n);

#endif
