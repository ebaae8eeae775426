/* Planar RGB images: decoding, atomic PNG writing, crop, resize, flip. See image.h. */
#include "image.h"

#include <ctype.h>
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

#include "../nn/atomic_file.h"
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

/* ---- the decoding budget and the checks against the file (image.h) ---- */

static long long max_pixels = IMAGE_DEFAULT_MAX_PIXELS;

void image_set_max_pixels(long long n) { max_pixels = n > 0 ? n : IMAGE_DEFAULT_MAX_PIXELS; }

long long image_get_max_pixels(void) { return max_pixels; }

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* The format named by the first bytes (n of them), as stb_image tests them. */
static const char *sniff_format(const unsigned char *b, size_t n) {
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 2 && b[0] == 0xff) { /* stb_image skips any 0xFF fill before SOI (0xFF 0xD8) */
        size_t i = 1;
        while (i < n && b[i] == 0xff) i++;
        if (i == n || b[i] == 0xd8) return "JPEG";
    }
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 4 && !memcmp(b, "GIF8", 4)) return "GIF";
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return "PNM";
    if (n >= 4 && !memcmp(b, "8BPS", 4)) return "PSD";
    if (n >= 2 && b[0] == '#' && b[1] == '?') return "HDR";
    if (n >= 4 && !memcmp(b, "\x53\x80\xf6\x34", 4)) return "PIC";
    return "TGA"; /* the one format stb_image knows without a signature */
}

/* PNM header: "P5"/"P6", width, height, maxval (whitespace and '#' comments between),
 * then one whitespace byte. Sets *hdr to the header's length and *bps to the bytes per
 * sample (1, or 2 when maxval > 255); 0 when the header is not within the n bytes. */
static int pnm_header(const unsigned char *b, size_t n, size_t *hdr, int *bps) {
    size_t i = 2;
    long v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace and comments */
            while (i < n && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r'))) i++;
            if (i < n && b[i] == '#') {
                while (i < n && b[i] != '\n' && b[i] != '\r') i++;
                continue;
            }
            break;
        }
        if (i >= n || b[i] < '0' || b[i] > '9') return 0;
        while (i < n && b[i] >= '0' && b[i] <= '9' && v[k] < 1000000000) v[k] = 10 * v[k] + (b[i++] - '0');
    }
    if (i >= n) return 0;
    *hdr = i + 1;
    *bps = v[2] > 255 ? 2 : 1;
    return 1;
}

/* The fewest bytes a file of this format needs to hold a w x h image whose header is
 * in b[0..n) (see image.h for each bound and its source); 0 when no bound is known. */
static unsigned long long min_file_bytes(const char *fmt, const unsigned char *b, size_t n, long long w,
                                         long long h, int comp) {
    const unsigned long long px = (unsigned long long)w * (unsigned long long)h;
    if (!strcmp(fmt, "PNG") && n >= 29) { /* raw scanlines / deflate's 1032:1 */
        static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
        int depth = b[24], type = b[25] <= 6 ? b[25] : 0;
        int ch = channels[type] ? channels[type] : 4;
        unsigned long long row = 1 + ((unsigned long long)w * (unsigned long long)ch * (unsigned)depth + 7) / 8;
        return 8 + 25 + (unsigned long long)h * row / 1032;
    }
    if (!strcmp(fmt, "JPEG")) /* one bit per 8x8 block of the first component */
        return 2 + ((unsigned long long)(w + 7) / 8 * (unsigned long long)((h + 7) / 8) + 7) / 8;
    if (!strcmp(fmt, "BMP") && n >= 30) { /* uncompressed rows padded to 4 bytes */
        uint32_t hsz = le32(b + 14), bpp = hsz == 12 ? le16(b + 24) : le16(b + 28);
        if (bpp == 0 || bpp > 32) return 0;
        unsigned long long stride = ((unsigned long long)w * bpp + 31) / 32 * 4;
        return 14 + (unsigned long long)hsz + stride * (unsigned long long)h;
    }
    if (!strcmp(fmt, "PNM")) { /* raw samples after the header */
        size_t hdr;
        int bps;
        if (!pnm_header(b, n, &hdr, &bps)) return 0;
        return hdr + px * (unsigned long long)comp * (unsigned long long)bps;
    }
    if (!strcmp(fmt, "GIF")) /* LZW: codes of >= 3 bits, each at most 4096 pixels */
        return 13 + px * 3 / 8 / 4096;
    if (!strcmp(fmt, "TGA") && n >= 18) { /* raw, or RLE packets of <= 128 pixels */
        unsigned long long head = 18 + (unsigned long long)b[0];
        if (b[1]) head += (unsigned long long)le16(b + 5) * ((b[7] + 7u) / 8u);
        unsigned long long bytespp = (b[16] + 7u) / 8u;
        if (bytespp == 0) return 0;
        if (b[2] >= 9) return head + (px + 127) / 128 * (1 + bytespp);
        return head + px * bytespp;
    }
    if (!strcmp(fmt, "PSD") && n >= 26) /* PackBits: >= 2 bytes per 128 samples */
        return 26 + px * be16(b + 12) / 64;
    if (!strcmp(fmt, "HDR")) { /* per row: flat RGBE, or new RLE (4 + 2 bytes per run of 127) */
        unsigned long long flat = 4 * (unsigned long long)w, rle = 4 + 8 * (((unsigned long long)w + 126) / 127);
        return (unsigned long long)h * (w < 8 || w >= 32768 || flat < rle ? flat : rle);
    }
    return 0;
}

/* A buffer stbi_image_free can free: stb_image's default allocator is malloc/free. */
static unsigned char *stb_compatible_malloc(size_t n) { return malloc(n ? n : 1); }

/* stb_image reads the file through these callbacks: they note a read or a skip past
 * the end of the file, which only a truncated or inconsistent file makes a decoder
 * ask for (stb_image itself then goes on with zeros). Past the end, a reader with a
 * filler byte hands out that byte (up to filler_left of them) instead of ending the
 * file: stb_image's HDR decoder loops for ever on a run count of 0 at the end of a
 * cut file, and runs of 1 let it finish (and be refused). */
typedef struct {
    FILE *f;
    long long size, pos;
    int past_end;
    int filler;              /* -1: none (plain end of file) */
    long long filler_left;
} file_reader;

static int reader_read(void *user, char *data, int size) {
    file_reader *r = user;
    size_t got = size > 0 ? fread(data, 1, (size_t)size, r->f) : 0;
    r->pos += (long long)got;
    if (size > 0 && got == 0) {
        r->past_end = 1;
        if (r->filler >= 0 && r->filler_left > 0) {
            got = (size_t)(r->filler_left < size ? r->filler_left : size);
            memset(data, r->filler, got);
            r->filler_left -= (long long)got;
        }
    }
    return (int)got;
}

static void reader_skip(void *user, int n) {
    file_reader *r = user;
    if (n > 0 && r->pos + n > r->size) r->past_end = 1;
    if (fseek(r->f, n, SEEK_CUR) == 0) r->pos += n;
}

static int reader_eof(void *user) {
    file_reader *r = user;
    return r->pos >= r->size && !(r->filler >= 0 && r->filler_left > 0);
}

static const stbi_io_callbacks reader_io = {reader_read, reader_skip, reader_eof};

/* stb_image 2.27 (Debian's libstb) trusts a JPEG's Huffman tables:
 * - a table of more than 256 codes writes past the decoder's arrays (found by
 *   tests/fuzz/fuzz_image.c; stb_image 2.28 checks it), already in stbi_info, whose
 *   header scan builds the tables that come before the frame header (a second
 *   finding); a DHT segment cut by the end of the file is read on as zeros (a third);
 * - a scan that uses a table no DHT defined decodes with the uninitialised memory of
 *   its table (stb_image does not clear its decoder state: a fourth finding, UBSan's
 *   shift by 32 in stbi__jpeg_huff_decode; ITU T.81 B.2.4.2 requires the tables a scan
 *   uses to be defined before it).
 * So every marker segment of a JPEG is walked before stb_image sees the file: a DHT
 * segment must be whole and each of its tables' 16 counts sum to <= 256 and fit in
 * it; each scan (SOS) must use only defined tables, as stb_image uses them: DC and AC
 * tables in a sequential frame (SOF0, SOF1), in a progressive one (SOF2) the DC table
 * in a first DC scan (Ss = 0, Ah = 0), none in a DC refinement, the AC table in an AC
 * scan (Ss > 0). Segments stb_image refuses itself (a selector over 3, an SOS length
 * that is not 6 + 2 Ns) are left to it. The walk steps over entropy-coded data (0xFF
 * 0x00 stuffing, RSTn) to the next marker, as ITU T.81 B.1.1 lays the file out. */
static int check_jpeg_tables(const char *path, FILE *f) {
    rewind(f);
    unsigned char seg[65536];
    int c, progressive = 0, defined[2][4] = {{0}};
    if (getc(f) != 0xff) return 0;
    while ((c = getc(f)) == 0xff) {} /* fill bytes before SOI, which stb_image skips too */
    if (c != 0xd8) return 0;         /* no SOI: stb_image rejects it itself */
    while ((c = getc(f)) != EOF) {
        if (c != 0xff) continue;
        int m;
        while ((m = getc(f)) == 0xff) {}
        if (m == EOF || m == 0xd9) break;
        if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8)) continue;
        int hi = getc(f), lo = getc(f);
        if (lo == EOF) break;
        size_t len = (size_t)(hi << 8 | lo);
        if (len < 2) break;
        len -= 2;
        if (m >= 0xc0 && m <= 0xc2) progressive = m == 0xc2;
        if (m != 0xc4 && m != 0xda) {
            if (fseek(f, (long)len, SEEK_CUR)) break;
            continue;
        }
        /* a segment cut by the end of the file: stb_image would read zeros past the
         * end as counts and values (the third finding: a DHT segment of 31259 bytes
         * with 10 in the file, whose counts add up to 302 codes) */
        size_t got = fread(seg, 1, len, f);
        if (got < len)
            return nn_fail("image: '%s' is truncated: a JPEG %s segment of %zu bytes has %zu before the end of the "
                           "file", path, m == 0xc4 ? "Huffman table" : "scan header", len + 2, got + 2);
        if (m == 0xda) {
            const size_t ns = len ? seg[0] : 0;
            if (ns < 1 || ns > 4 || len != 4 + 2 * ns) continue;
            const int ss = seg[1 + 2 * ns], ah = seg[3 + 2 * ns] >> 4;
            const int use_dc = !progressive || (ss == 0 && ah == 0), use_ac = !progressive || ss > 0;
            for (size_t k = 0; k < ns; k++) {
                const int td = seg[2 + 2 * k] >> 4, ta = seg[2 + 2 * k] & 15;
                if (td > 3 || ta > 3) break;
                if ((use_dc && !defined[0][td]) || (use_ac && !defined[1][ta]))
                    return nn_fail("image: '%s' is corrupt: a JPEG scan uses the %s Huffman table %d, which no DHT "
                                   "segment before it defines", path, use_dc && !defined[0][td] ? "DC" : "AC",
                                   use_dc && !defined[0][td] ? td : ta);
            }
            continue;
        }
        for (size_t off = 0; off < len;) {
            if (len - off < 17)
                return nn_fail("image: '%s' is corrupt: a JPEG Huffman table is cut off by its segment", path);
            unsigned n = 0;
            for (int i = 1; i <= 16; i++) n += seg[off + (size_t)i];
            if (n > 256)
                return nn_fail("image: '%s' is corrupt: a JPEG Huffman table of %u codes (at most 256)", path, n);
            if (seg[off] >> 4 <= 1 && (seg[off] & 15) <= 3) defined[seg[off] >> 4][seg[off] & 15] = 1;
            off += 17 + n;
            if (off > len)
                return nn_fail("image: '%s' is corrupt: a JPEG Huffman table runs past its segment", path);
        }
    }
    return 0;
}

/* stb_image 2.27 grows its buffer for a PNG's IDAT data to the length a chunk claims
 * before reading it: a 179-byte file asked for 2 GiB (found by tests/fuzz/
 * fuzz_image.c, libFuzzer's malloc limit). So the chunks are walked first as stb_image
 * reads them (after the 8-byte signature: a 4-byte big-endian length, a 4-byte type,
 * the data, a 4-byte CRC; up to IEND), and a chunk that claims more bytes than the file
 * has left is refused: the data stb_image buffers is then bounded by the file's size.
 * 0 or -1 + nn_fail. */
static int check_png_chunks(const char *path, FILE *f, long long size) {
    unsigned char hd[8];
    for (long long pos = 8; pos + 8 <= size; ) {
        if (fseek(f, (long)pos, SEEK_SET) || fread(hd, 1, 8, f) != 8) return 0;
        const long long len = (long long)(be16(hd) << 16 | be16(hd + 2));
        if (len > size - pos - 12) {
            char type[5] = "????";
            if (isalpha(hd[4]) && isalpha(hd[5]) && isalpha(hd[6]) && isalpha(hd[7])) memcpy(type, hd + 4, 4);
            return nn_fail("image: '%s' is truncated: its PNG chunk %s at byte %lld claims %lld bytes and a CRC, the "
                           "file has %lld after the chunk's header", path, type, pos, len, size - pos - 8);
        }
        if (!memcmp(hd + 4, "IEND", 4)) break;
        pos += 12 + len;
    }
    return 0;
}

/* stb_image 2.27 reads a PNM header's numbers into an int with no bound: a width of
 * ten digits overflows it (undefined behaviour; found by tests/fuzz/fuzz_image.c in
 * stbi_info). So the header is read first as stb_image reads it (stbi__pnm_info:
 * "P5"/"P6", then width, height and maxval, each after whitespace and '#' comments,
 * digits until a non-digit), and a width or height over IMAGE_MAX_SIDE (stb_image's
 * STBI_MAX_DIMENSIONS, which it refuses after reading) or a maxval over 65535 (also
 * refused by it) is refused before any digit more is read. 0 or -1 + nn_fail. */
static int check_pnm_numbers(const char *path, FILE *f) {
    static const char *const names[3] = {"width", "height", "maxval"};
    const long long limits[3] = {IMAGE_MAX_SIDE, IMAGE_MAX_SIDE, 65535};
    rewind(f);
    if (getc(f) != 'P') return 0;
    int t = getc(f);
    if (t != '5' && t != '6') return 0;
    int c = getc(f);
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (c == ' ' || (c >= '\t' && c <= '\r')) c = getc(f);
            if (c != '#') break;
            while (c != EOF && c != '\n' && c != '\r') c = getc(f);
        }
        long long v = 0;
        for (; c >= '0' && c <= '9'; c = getc(f))
            if ((v = 10 * v + (c - '0')) > limits[k])
                return nn_fail("image: '%s' is corrupt: its PNM header's %s is over %lld", path, names[k], limits[k]);
    }
    return 0;
}

/* The format-specific checks made after decoding (image.h). 0 or -1 + nn_fail. */
static int check_trailer(const char *path, const char *fmt, FILE *f, long long size) {
    if (strcmp(fmt, "GIF")) return 0;
    unsigned char last = 0;
    if (fseek(f, -1, SEEK_END) || fread(&last, 1, 1, f) != 1 || last != 0x3b)
        return nn_fail("image: '%s' is truncated: a GIF ends with the trailer byte 0x3B, this one with 0x%02X "
                       "(%lld bytes)", path, last, size);
    return 0;
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
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        nn_fail("image: '%s' is not a regular file", path);
        return NULL;
    }
    if (st.st_size == 0) {
        fclose(f);
        nn_fail("image: '%s' is empty (0 bytes)", path);
        return NULL;
    }
    const long long size = (long long)st.st_size;
    unsigned char head[1024];
    size_t n_head = fread(head, 1, sizeof head, f);
    const char *fmt = sniff_format(head, n_head);
    int w = 0, h = 0, n = 0;
    /* before stbi_info too: its JPEG header scan builds the Huffman tables met before
     * the frame header (SOF), it reads a PNM header's numbers, and a PNG's chunks */
    if ((!strcmp(fmt, "JPEG") && check_jpeg_tables(path, f)) || (!strcmp(fmt, "PNM") && check_pnm_numbers(path, f)) ||
        (!strcmp(fmt, "PNG") && check_png_chunks(path, f, size))) {
        fclose(f);
        return NULL;
    }
    file_reader rd = {f, size, 0, 0, -1, 0};
    rewind(f);
    if (!stbi_info_from_callbacks(&reader_io, &rd, &w, &h, &n)) {
        fclose(f);
        const char *why = stbi_failure_reason();
        nn_fail("image: cannot decode '%s': %s", path, why ? why : "unknown reason");
        return NULL;
    }
    if (w <= 0 || h <= 0) {
        fclose(f);
        nn_fail("image: '%s' is corrupt: its %s header says %dx%d", path, fmt, w, h);
        return NULL;
    }
    if ((long long)w * h > max_pixels) {
        fclose(f);
        nn_fail("image: '%s' is %dx%d = %lld pixels, over the limit of %lld (--max-pixels)", path, w, h,
                (long long)w * h, max_pixels);
        return NULL;
    }
    unsigned long long need = min_file_bytes(fmt, head, n_head, w, h, n);
    if (need > (unsigned long long)size) {
        fclose(f);
        nn_fail("image: '%s' is truncated or inconsistent: its %s header says %dx%d, which needs at least %llu "
                "bytes, the file has %lld", path, fmt, w, h, need, size);
        return NULL;
    }
    rewind(f);
    /* HDR: at most 4 bytes per pixel more than the file holds, in runs of 1 */
    rd = (file_reader){f, size, 0, 0, strcmp(fmt, "HDR") ? -1 : 1, 4LL * w * h + 4096};
    /* the file's own channels (req_comp 0), spread to RGB below: stb_image 2.27 converts
     * the channels of a 16-bit file as if 8-bit and then reads past its buffer (a 16-bit
     * PGM asked for as RGB; found by tests/fuzz/fuzz_image.c) */
    unsigned char *pix = NULL;
    size_t hdr;
    int bps = 1;
    if (!strcmp(fmt, "PNM") && pnm_header(head, n_head, &hdr, &bps) && bps == 2) {
        /* 16-bit PNM: stb_image 2.27 reads the big-endian samples in the machine's order
         * and keeps their low byte; the high byte is the first one in the file */
        stbi_us *p16 = stbi_load_16_from_callbacks(&reader_io, &rd, &w, &h, &n, 0);
        if (p16 && (pix = stb_compatible_malloc((size_t)w * h * n)))
            for (size_t i = 0; i < (size_t)w * h * n; i++) pix[i] = ((const unsigned char *)&p16[i])[0];
        stbi_image_free(p16);
    } else {
        pix = stbi_load_from_callbacks(&reader_io, &rd, &w, &h, &n, 0);
    }
    if (!pix) {
        fclose(f);
        const char *why = stbi_failure_reason();
        /* the decoder asked for bytes past the end (a read that got none, or a short
         * read of the last bytes that stb_image calls "outofdata": a PNG chunk is read
         * whole): its reason ("outofdata", "expected marker", ...) follows from the cut */
        if (rd.past_end || (rd.pos >= size && why && !strcmp(why, "outofdata")))
            nn_fail("image: '%s' is truncated: the %s decoder needed more than its %lld bytes (stb_image: %s)", path,
                    fmt, size, why ? why : "unknown reason");
        else
            nn_fail("image: cannot decode '%s': %s", path, why ? why : "unknown reason");
        return NULL;
    }
    int bad = rd.past_end ? nn_fail("image: '%s' is truncated: the %s decoder read past its end (%lld bytes)", path,
                                    fmt, size)
                          : check_trailer(path, fmt, f, size);
    fclose(f);
    if (bad) {
        stbi_image_free(pix);
        return NULL;
    }
    image *im = image_new(w, h);
    if (!im) {
        stbi_image_free(pix);
        nn_fail_context("image: '%s' (%dx%d)", path, w, h);
        return NULL;
    }
    size_t plane = (size_t)w * (size_t)h, stride = (size_t)n;
    for (size_t i = 0; i < plane; i++)
        for (size_t c = 0; c < 3; c++) /* gray (+alpha): replicated; RGB(A): alpha dropped */
            im->data[c * plane + i] = (nn_real)pix[stride * i + (n >= 3 ? c : 0)];
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
    if (strlen(path) + 16 > sizeof tmp) return nn_fail("image: cannot write '%s': the name is too long", path);
    png_sink sink = {nn_atomic_open(path, tmp, sizeof tmp), 0, 0}; /* a short '.deep3d-XXXXXX' name */
    if (!sink.f) return nn_fail_context("image: cannot write '%s'", path);
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
