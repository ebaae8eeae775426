/* Hostile files and interruptions (issue 11): images whose header claims more pixels
 * than the budget or than the file can hold, files of every format cut short, and the
 * real binary on such files (exit status, one line naming the file, peak memory of the
 * child from wait4, no output under a final name, no temporary left). The training
 * side (signals, run folders, resume) is in tests/test_interrupt.c.
 *
 * Fixtures are written here: stb_image_write for PNG, JPEG, BMP, TGA (RLE and raw) and
 * HDR, PPM/PGM by hand, a 5x3 GIF as bytes, and headers patched to claim huge sizes. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "../data/image.h"
#include "../deep3d/model.h"
#include "../nn/nn.h"
#include "../nn/status.h"
#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_hostile"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }

TestSuite(image_budget, .init = make_root, .fini = remove_root, .timeout = 60);
TestSuite(hostile_cli, .init = make_root, .fini = remove_root, .timeout = 120);

/* ---- fixtures ------------------------------------------------------------------- */

static unsigned char *noise_rgb(int w, int h, uint64_t seed) {
    unsigned char *px = malloc((size_t)3 * w * h);
    for (size_t i = 0; i < (size_t)3 * w * h; i++) px[i] = (unsigned char)(256 * nn_hash_uniform(seed, i));
    return px;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A 5x3 palette GIF (89 bytes less: GIF87a, one image, LZW data, trailer 0x3B). */
static const unsigned char gif_5x3[55] = {
    0x47, 0x49, 0x46, 0x38, 0x37, 0x61, 0x05, 0x00, 0x03, 0x00, 0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00,
    0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x03, 0x00, 0x00, 0x08, 0x10, 0x00,
    0x01, 0x04, 0x10, 0x30, 0x40, 0xe0, 0x40, 0x82, 0x03, 0x04, 0x04, 0x00, 0x00, 0x20, 0x20, 0x00, 0x3b};

/* A binary PPM (P6, maxval 255) or 16-bit PGM (P5, maxval 65535) with a comment. */
static void write_pnm(const char *path, int w, int h, int gray16) {
    char head[64];
    int n = snprintf(head, sizeof head, "P%c\n# made by test_hostile\n%d %d\n%d\n", gray16 ? '5' : '6', w, h,
                     gray16 ? 65535 : 255);
    size_t body = (size_t)w * h * (gray16 ? 2 : 3);
    unsigned char *b = malloc((size_t)n + body);
    memcpy(b, head, (size_t)n);
    unsigned char *px = noise_rgb(w, h, 9);
    memcpy(b + n, px, body < (size_t)3 * w * h ? body : (size_t)3 * w * h);
    write_bytes(path, b, (size_t)n + body);
    free(b), free(px);
}

/* Writes a valid image of the format named by ext (w x h where the format allows). */
static void write_format(const char *path, const char *ext) {
    const int w = 37, h = 23;
    unsigned char *px = noise_rgb(w, h, 3);
    int ok = 1;
    if (!strcmp(ext, "png")) ok = stbi_write_png(path, w, h, 3, px, 3 * w);
    else if (!strcmp(ext, "jpg")) ok = stbi_write_jpg(path, w, h, 3, px, 90);
    else if (!strcmp(ext, "bmp")) ok = stbi_write_bmp(path, w, h, 3, px);
    else if (!strcmp(ext, "tga")) stbi_write_tga_with_rle = 1, ok = stbi_write_tga(path, w, h, 3, px);
    else if (!strcmp(ext, "raw.tga")) stbi_write_tga_with_rle = 0, ok = stbi_write_tga(path, w, h, 3, px);
    else if (!strcmp(ext, "hdr")) {
        float *f = malloc(sizeof(float) * 3 * w * h);
        for (int i = 0; i < 3 * w * h; i++) f[i] = px[i] / 255.0f;
        ok = stbi_write_hdr(path, w, h, 3, f);
        free(f);
    } else if (!strcmp(ext, "ppm")) write_pnm(path, w, h, 0);
    else if (!strcmp(ext, "pgm")) write_pnm(path, w, h, 1);
    else if (!strcmp(ext, "gif")) write_bytes(path, gif_5x3, sizeof gif_5x3);
    else cr_assert_fail("unknown format %s", ext);
    stbi_write_tga_with_rle = 1;
    cr_assert(ok, "stb_image_write %s", path);
    free(px);
}

static void assert_msg(const char *needle) {
    cr_assert(strstr(nn_last_error(), needle), "message lacks '%s': %s", needle, nn_last_error());
}

/* ---- image_load: truncation of every format ------------------------------------ */

/* Each format loads whole, and is refused, naming the file, when cut at several
 * points: its last byte, the last 2, a quarter and half of it. */
Test(image_budget, every_format_is_refused_when_cut) {
    const char *exts[] = {"png", "jpg", "bmp", "tga", "raw.tga", "hdr", "ppm", "pgm", "gif"};
    for (size_t k = 0; k < sizeof exts / sizeof *exts; k++) {
        char name[64], cut[64];
        snprintf(name, sizeof name, "whole.%s", exts[k]);
        snprintf(cut, sizeof cut, "cut.%s", exts[k]);
        write_format(P(name), exts[k]);
        image *im = image_load(P(name));
        cr_assert_not_null(im, "%s: a whole file is refused: %s", exts[k], nn_last_error());
        image_free(im);
        size_t n;
        unsigned char *b = tu_read_file(P(name), &n);
        const size_t cuts[] = {n - 1, n - 2, n * 3 / 4, n / 2};
        for (int c = 0; c < 4; c++) {
            write_bytes(P(cut), b, cuts[c]);
            im = image_load(P(cut));
            cr_assert_null(im, "%s cut to %zu of %zu bytes was accepted", exts[k], cuts[c], n);
            cr_assert(strstr(nn_last_error(), P(cut)), "%s cut to %zu: the message does not name the file: %s",
                      exts[k], cuts[c], nn_last_error());
            cr_assert(strstr(nn_last_error(), "truncated"), "%s cut to %zu: the message does not say truncated: %s",
                      exts[k], cuts[c], nn_last_error());
        }
        free(b);
    }
}

/* ---- image_load: headers that claim more than the file holds -------------------- */

/* Patches a JPEG's SOF0 frame size (big-endian height then width after the marker,
 * its length and the precision byte). */
static void patch_jpeg_size(unsigned char *b, size_t n, int w, int h) {
    for (size_t i = 0; i + 9 < n; i++)
        if (b[i] == 0xff && b[i + 1] == 0xc0) {
            b[i + 5] = (unsigned char)(h >> 8), b[i + 6] = (unsigned char)h;
            b[i + 7] = (unsigned char)(w >> 8), b[i + 8] = (unsigned char)w;
            return;
        }
    cr_assert_fail("no SOF0 marker");
}

/* A small valid JPEG (37x23) whose SOF0 header is patched to say w x h. */
static void write_jpeg_claiming(const char *path, int w, int h) {
    size_t len;
    write_format(P("small.jpg"), "jpg");
    unsigned char *b = tu_read_file(P("small.jpg"), &len);
    patch_jpeg_size(b, len, w, h);
    write_bytes(path, b, len);
    free(b);
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_be32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * (3 - i)));
}

/* A 118-byte BMP whose header says w x h, 24 bits, uncompressed (64 bytes of pixels). */
static void write_bmp_claiming(const char *path, int w, int h) {
    unsigned char bmp[118] = {'B', 'M'};
    put_le32(bmp + 10, 54), put_le32(bmp + 14, 40), put_le32(bmp + 18, (uint32_t)w), put_le32(bmp + 22, (uint32_t)h);
    bmp[26] = 1, bmp[28] = 24;
    write_bytes(path, bmp, sizeof bmp);
}

/* Writes small files whose headers say 9000x9000 (81 MP, within the default budget)
 * in each format with a bound: PPM, BMP, JPEG, PNG, GIF, TGA. */
static void write_claiming_files(void) {
    char ppm[128];
    int n = snprintf(ppm, sizeof ppm, "P6\n9000 9000\n255\n");
    memset(ppm + n, 7, 64);
    write_bytes(P("claim.ppm"), ppm, (size_t)n + 64);

    write_bmp_claiming(P("claim.bmp"), 9000, 9000);

    write_jpeg_claiming(P("claim.jpg"), 9000, 9000);

    size_t len;
    write_format(P("small.png"), "png");
    unsigned char *b = tu_read_file(P("small.png"), &len);
    put_be32(b + 16, 9000), put_be32(b + 20, 9000); /* IHDR; stb_image checks no CRC */
    write_bytes(P("claim.png"), b, len);
    free(b);

    unsigned char gif[sizeof gif_5x3];
    memcpy(gif, gif_5x3, sizeof gif);
    gif[6] = 9000 & 255, gif[7] = 9000 >> 8, gif[8] = 9000 & 255, gif[9] = 9000 >> 8;
    write_bytes(P("claim.gif"), gif, sizeof gif);

    unsigned char tga[18 + 64] = {0, 0, 2};
    tga[12] = 9000 & 255, tga[13] = 9000 >> 8, tga[14] = 9000 & 255, tga[15] = 9000 >> 8, tga[16] = 24;
    write_bytes(P("claim.tga"), tga, sizeof tga);
}

/* Refused before decoding: the message names the file and the size the header claims,
 * and this process (one per test) never came near the 81 MP x 3 bytes stb_image would
 * have allocated (its peak, ru_maxrss, grows by less than 64 MiB). */
Test(image_budget, headers_claiming_more_than_the_file_holds_are_refused_before_decoding) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const long before = ru.ru_maxrss;
    write_claiming_files();
    const char *names[] = {"claim.ppm", "claim.bmp", "claim.jpg", "claim.png", "claim.gif", "claim.tga"};
    for (int i = 0; i < 6; i++) {
        cr_assert_null(image_load(P(names[i])), "%s was decoded", names[i]);
        assert_msg(P(names[i]));
        assert_msg("9000x9000");
        assert_msg("truncated or inconsistent");
    }
    getrusage(RUSAGE_SELF, &ru);
    cr_assert_lt(ru.ru_maxrss - before, 64 * 1024, "peak memory grew by %ld KiB while refusing the files",
                 ru.ru_maxrss - before);
}

/* The pixel budget: exactly the limit loads, one pixel row more does not. */
Test(image_budget, pixel_limit_is_checked_before_decoding) {
    unsigned char *px = noise_rgb(40, 26, 1);
    cr_assert(stbi_write_png(P("a.png"), 40, 25, 3, px, 120) && stbi_write_png(P("b.png"), 40, 26, 3, px, 120));
    free(px);
    image_set_max_pixels(1000);
    cr_assert_eq(image_get_max_pixels(), 1000);
    image *a = image_load(P("a.png")), *b = image_load(P("b.png"));
    cr_assert_not_null(a, "40x25 = 1000 pixels: %s", nn_last_error());
    cr_assert_null(b, "40x26 = 1040 pixels passed a limit of 1000");
    assert_msg(P("b.png"));
    assert_msg("over the limit of 1000");
    assert_msg("--max-pixels");
    image_set_max_pixels(0);
    cr_assert_eq(image_get_max_pixels(), IMAGE_DEFAULT_MAX_PIXELS);
    image_free(a);
}

/* ---- the binary on hostile files ------------------------------------------------- */

#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})


/* The binary's own footprint (peak KiB of `deep3d infer --help`): the libraries it maps
 * (CUDA's among them) are most of it. */
static long footprint_kb(void) {
    tc_result r;
    RUN(&r, "infer", "--help");
    cr_assert(r.exited && r.status == 0);
    long kb = r.maxrss_kib;
    tc_free(&r);
    return kb;
}

/* Entries of folder dir (relative to root) other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(P(dir));
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* The files (an 83-byte PPM and a 118-byte BMP saying 20000x20000, a small JPEG
 * saying 12000x12000), files claiming 9000x9000 (within the pixel budget, beyond what
 * they hold) and BMP, PPM and JPEG files cut in half: deep3d infer exits 1 with one line
 * naming the file, its peak memory stays within 64 MiB of its own footprint, and the
 * output folder stays empty (no output under a final name, no temporary). */
Test(hostile_cli, infer_refuses_hostile_images_with_bounded_memory) {
    tc_write_tiny_model(P("m.d3w"));
    char ppm[83];
    int n = snprintf(ppm, sizeof ppm, "P6\n20000 20000\n255\n");
    memset(ppm + n, 1, sizeof ppm - (size_t)n);
    write_bytes(P("huge.ppm"), ppm, sizeof ppm);
    write_bmp_claiming(P("huge.bmp"), 20000, 20000);
    write_jpeg_claiming(P("huge.jpg"), 12000, 12000);
    write_claiming_files();
    const char *cut_exts[] = {"bmp", "ppm", "jpg"};
    for (int i = 0; i < 3; i++) {
        char whole[32], cut[32];
        snprintf(whole, sizeof whole, "w.%s", cut_exts[i]);
        snprintf(cut, sizeof cut, "half.%s", cut_exts[i]);
        write_format(P(whole), cut_exts[i]);
        size_t len;
        unsigned char *b = tu_read_file(P(whole), &len);
        write_bytes(P(cut), b, len / 2);
        free(b);
    }
    const char *files[] = {"huge.ppm",  "huge.bmp",  "huge.jpg",  "claim.ppm", "claim.bmp", "claim.jpg",
                           "claim.png", "claim.gif", "claim.tga", "half.bmp",  "half.ppm",  "half.jpg"};
    const long base = footprint_kb();
    cr_assert_eq(mkdir(P("out"), 0755), 0);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        tc_result r;
        RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P(files[i]));
        tc_expect_error(&r, files[i], P(files[i]), NULL);
        cr_assert_eq(r.status, 1, "%s: exit %d", files[i], r.status);
        cr_assert_lt(r.maxrss_kib, base + 64 * 1024, "%s: peak %ld KiB, the binary's footprint %ld KiB", files[i],
                     r.maxrss_kib, base);
        cr_assert_eq(count_entries("out"), 0, "%s: files were written to out/", files[i]);
        tc_free(&r);
    }
}

/* --max-pixels: infer refuses a 40x30 image under --max-pixels 1000 naming the option;
 * train skips an 80x40 pair under 3000 with a warning and trains on the 64x32 one;
 * eval under 1000 fails naming the option. */
Test(hostile_cli, max_pixels_option_in_every_command) {
    tc_write_tiny_model(P("m.d3w"));
    unsigned char *px = noise_rgb(64, 32, 2);
    cr_assert(stbi_write_png(P("img.png"), 40, 30, 3, px, 120));
    cr_assert_eq(mkdir(P("d"), 0755), 0);
    cr_assert(stbi_write_png(P("d/a_L.png"), 64, 32, 3, px, 192) && stbi_write_png(P("d/a_R.png"), 64, 32, 3, px, 192));
    free(px);
    px = noise_rgb(80, 40, 3);
    cr_assert(stbi_write_png(P("d/b_L.png"), 80, 40, 3, px, 240) && stbi_write_png(P("d/b_R.png"), 80, 40, 3, px, 240));
    free(px);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--max-pixels",
        "1000", P("img.png"));
    tc_expect_error(&r, "infer --max-pixels", P("img.png"), "--max-pixels", "1000", NULL);
    tc_free(&r);
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16",
        "--disparities", "9", "--dmin", "-4", "--batch", "2", "--steps", "2", "--max-pixels", "3000", "--data", P("d"),
        "--out", P("run"));
    cr_assert(r.exited && r.status == 0, "train: %d %s", r.status, r.err);
    cr_assert(strstr(r.err, "b_L.png") && strstr(r.err, "--max-pixels"), "no warning naming b_L.png: %s", r.err);
    tc_free(&r);
    RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--max-pixels", "1000", "--data",
        P("d"));
    tc_expect_error(&r, "eval --max-pixels", "--max-pixels", NULL);
    tc_free(&r);
}

/* The exit status convention of deep3d/commands.h: 2 for usage errors (the command line
 * alone is wrong), 1 for failures found while running. */
Test(hostile_cli, usage_errors_exit_2_and_runtime_failures_exit_1) {
    tc_write_tiny_model(P("m.d3w"));
    char m[128], x[128], d[128], o[128], missing[128], missing_png[128], missing_d3w[128];
    snprintf(m, sizeof m, "%s", P("m.d3w")), snprintf(x, sizeof x, "%s", P("x.png"));
    snprintf(d, sizeof d, "%s", P("d")), snprintf(o, sizeof o, "%s", P("o"));
    snprintf(missing, sizeof missing, "%s", P("missing"));
    snprintf(missing_png, sizeof missing_png, "%s", P("missing.png"));
    snprintf(missing_d3w, sizeof missing_d3w, "%s", P("missing.d3w"));
    struct {
        int status;
        const char *args[10];
    } cases[] = {
        {2, {"frobnicate"}},
        {2, {NULL}},
        {2, {"infer", "--frobnicate", "x.png"}},
        {2, {"infer", "--formats", "sbs,bogus", x}},
        {2, {"infer", "--threads", "0", x}},
        {2, {"infer"}},
        {2, {"train", "--data", d}},
        {2, {"train", "--steps", "abc", "--data", d, "--out", o}},
        {2, {"eval", "--model", m}},
        {2, {"eval", "--json=1", "--data", d}},
        {2, {"bench", "--precision", "bf16", "--device", "cpu"}},
        {2, {"bench", "--nope"}},
        {1, {"infer", "--device", "cpu", "--model", m, "--out", o, missing_png}},
        {1, {"infer", "--device", "cpu", "--model", missing_d3w, x}},
        {1, {"train", "--device", "cpu", "--data", missing, "--out", o}},
        {1, {"eval", "--device", "cpu", "--model", m, "--data", missing}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tc_result r;
        tc_run(&r, root, cases[i].args);
        cr_assert(r.exited && r.status == cases[i].status, "deep3d %s %s ...: exit %d, want %d; stderr: %s",
                  cases[i].args[0] ? cases[i].args[0] : "", cases[i].args[0] && cases[i].args[1] ? cases[i].args[1] : "",
                  r.status, cases[i].status, r.err);
        tc_free(&r);
    }
}

/* Every input a fuzz target found a problem with (tests/fuzz/regressions/, named
 * image-*) is refused cleanly, naming the file, and those that made stb_image 2.27 write
 * past its arrays or read uninitialised tables (JPEG Huffman tables of 615 and 533
 * codes, a table segment past the end of the file, a scan using an undefined table),
 * overflow an int (a PNM width) or allocate 2 GiB (a PNG chunk's length) for the
 * reason found, before stb_image sees them.
 * Tests run from the repository root. */
Test(image_budget, fuzz_findings_are_refused) {
    DIR *d = opendir("tests/fuzz/regressions");
    cr_assert_not_null(d, "tests/fuzz/regressions: %s", strerror(errno));
    int n = 0;
    char path[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "image-", 6)) continue;
        snprintf(path, sizeof path, "tests/fuzz/regressions/%s", e->d_name);
        cr_assert_null(image_load(path), "%s was decoded", path);
        assert_msg(path);
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 1, "no image regressions found");
    cr_assert_null(image_load("tests/fuzz/regressions/image-jpeg-huffman-615-codes.jpg"));
    assert_msg("Huffman table of 615 codes");
    /* its table of 533 codes comes before the frame header: stbi_info's header scan
     * builds it (index 257 of stbi__huffman.size[257]), so it is refused before that */
    cr_assert_null(image_load("tests/fuzz/regressions/image-jpeg-huffman-533-codes-before-sof.jpg"));
    assert_msg("Huffman table of 533 codes");
    /* a DHT segment of 31259 bytes with 10 in the file: stb_image read zeros past the
     * end and built a table of 302 codes */
    cr_assert_null(image_load("tests/fuzz/regressions/image-jpeg-huffman-segment-past-the-end.jpg"));
    assert_msg("a JPEG Huffman table segment of 31259 bytes has 10 before the end of the file");
    /* a progressive AC scan using AC table 0, which no DHT defined: stb_image decoded
     * with its table's uninitialised memory */
    cr_assert_null(image_load("tests/fuzz/regressions/image-jpeg-scan-uses-an-undefined-huffman-table.jpg"));
    assert_msg("a JPEG scan uses the AC Huffman table 0, which no DHT segment before it defines");
    /* 48 bytes of 0xFF fill before SOI, which stb_image skips, and a DHT segment cut
     * by the end of the file with a table of 484 codes in it */
    cr_assert_null(image_load("tests/fuzz/regressions/image-jpeg-huffman-484-codes-after-0xff-fill.jpg"));
    assert_msg("a JPEG Huffman table segment of 181 bytes has 118 before the end of the file");
    /* a 179-byte PNG whose second IDAT chunk claims 1140850751 bytes: stb_image asked
     * for 2 GiB to buffer it */
    cr_assert_null(image_load("tests/fuzz/regressions/image-png-idat-claims-2-gib.png"));
    assert_msg("its PNG chunk IDAT at byte 108 claims 1140850751 bytes");
    /* not fixed here: a progressive JPEG whose scans run out of bits makes stb_image
     * 2.27's bit reader shift by 32 (UBSan in tests/fuzz; undefined behaviour that x86
     * masks to a shift by 0, so garbage bits of a corrupt file); it is refused by
     * stb_image itself, naming the file (the loop above). A newer stb_image is the fix. */
    /* a PGM whose width has 18 digits: stb_image's int overflowed while reading it */
    cr_assert_null(image_load("tests/fuzz/regressions/image-pnm-width-overflows-int.pgm"));
    assert_msg("its PNM header's width is over 16777216");
    /* each number at its limit is read, over it refused, comments and leading zeros
     * as stb_image takes them */
    const char *heads[][2] = {{"P6\n16777216 1\n255\n", NULL},
                              {"P6\n16777217 1\n255\n", "width is over 16777216"},
                              {"P5 # c 99999999999\n00000000000000000007\n#\n99999999999 255\n", "height is over"},
                              {"P5 1 1 65535\n", NULL},
                              {"P5 1 1 65536\n", "maxval is over 65535"},
                              {"P5 7 0 255\n", "its PNM header says 7x0"}};
    for (int i = 0; i < 6; i++) {
        write_bytes(P("h.pnm"), heads[i][0], strlen(heads[i][0]));
        cr_assert_null(image_load(P("h.pnm")), "%s was decoded", heads[i][0]);
        if (heads[i][1]) assert_msg(heads[i][1]);
        else cr_assert_null(strstr(nn_last_error(), "is over"), "%s: %s", heads[i][0], nn_last_error());
    }
}

/* Valid progressive JPEGs (libjpeg 6.2 through Pillow, tests/fixtures/README.md: 10 and
 * 6 scans with DHT segments between them, AC selectors of DC scans undefined) pass the
 * checks made before stb_image and decode to stb_image's own result, byte for byte,
 * also after 0xFF fill bytes before their SOI marker. */
Test(image_budget, progressive_jpegs_decode_as_stb_image_decodes_them) {
    const char *files[] = {"tests/fixtures/progressive-37x23.jpg", "tests/fixtures/progressive-gray-37x23.jpg"};
    for (int k = 0; k < 2; k++) {
        image *im = image_load(files[k]);
        cr_assert_not_null(im, "%s", nn_last_error());
        int w, h, n;
        unsigned char *ref = stbi_load(files[k], &w, &h, &n, 0);
        cr_assert_not_null(ref, "stb_image: %s", stbi_failure_reason());
        cr_assert(im->w == 37 && im->h == 23 && w == 37 && h == 23, "%s: %dx%d, stb_image %dx%d", files[k], im->w,
                  im->h, w, h);
        const size_t plane = (size_t)w * h;
        for (size_t i = 0; i < plane; i++)
            for (size_t c = 0; c < 3; c++)
                cr_assert_eq(im->data[c * plane + i], (nn_real)ref[(size_t)n * i + (n >= 3 ? c : 0)],
                             "%s: pixel %zu channel %zu", files[k], i, c);
        stbi_image_free(ref);
        /* the same file after 0xFF fill bytes, which stb_image skips before SOI */
        size_t len;
        unsigned char *b = tu_read_file(files[k], &len), *filled = malloc(len + 48);
        memset(filled, 0xff, 48), memcpy(filled + 48, b, len);
        write_bytes(P("filled.jpg"), filled, len + 48);
        image *im2 = image_load(P("filled.jpg"));
        cr_assert_not_null(im2, "%s after 0xFF fill: %s", files[k], nn_last_error());
        cr_assert(!memcmp(im2->data, im->data, sizeof(nn_real) * 3 * plane), "%s after 0xFF fill differs", files[k]);
        free(b), free(filled);
        image_free(im2);
        image_free(im);
    }
}

/* A 16-bit PGM (found by fuzzing: stb_image 2.27, asked for RGB, converted its 16-bit
 * gray samples as if 8-bit, then read past its buffer): it decodes to the high byte of
 * each big-endian sample (stb_image's 16 -> 8 bits), replicated to R, G and B. */
Test(image_budget, gray_16_bit_pgm_decodes_to_its_samples) {
    const char *path = "tests/fuzz/regressions/valid-pgm16-6x4.pgm";
    size_t n;
    unsigned char *b = tu_read_file(path, &n);
    const size_t header = 12; /* "P5\n6 4\n2554\n" */
    cr_assert(n >= header + 48 && !memcmp(b, "P5\n6 4\n2554\n", header), "unexpected fixture");
    image *im = image_load(path);
    cr_assert_not_null(im, "%s", nn_last_error());
    cr_assert(im->w == 6 && im->h == 4);
    for (int i = 0; i < 24; i++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(im->data[c * 24 + i], (nn_real)b[header + 2 * (size_t)i], "pixel %d channel %d: %g, want %d", i,
                         c, (double)im->data[c * 24 + i], b[header + 2 * (size_t)i]);
    image_free(im);
    free(b);
}
