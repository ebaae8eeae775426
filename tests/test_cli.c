/* The command line on bad input: runs the real binary (DEEP3D_BIN, default build/deep3d,
 * exported by tests/run.sh; tests run from the repository root) with posix_spawn,
 * capturing stdout, stderr and the exit status. Every failure must exit non-zero,
 * without a signal, with exactly ONE line on stderr that names what went wrong and
 * where (the file, option or folder). Also: --help of every subcommand, the bare and
 * unknown command, a successful conversion (so the failures are not vacuous), and
 * atomic outputs when a conversion fails half-way.
 *
 * Fixtures are made in a fresh mkdtemp folder per test: small PNGs and JPEGs with
 * stb_image_write, a tiny model with deep3d_model_init + deep3d_model_save (released,
 * 64x32, width_div 16, D = 9: the test binary links the whole library). Every run of
 * the binary uses --threads 1 and tiny sizes so the file stays fast on 2 cores.
 *
 * The spawn helpers (tc_*) are also used by tests/test_train.c. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "../deep3d/model.h"
#include "../nn/nn.h"
#include "../nn/weights.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------- */

static char root[64];

static void make_root(void) { tu_tmpdir(root, "deep3d_test_cli"); }
static void remove_root(void) { tu_rmtree(root); }

/* root + "/" + name */
static const char *P(const char *name) { return tu_join(root, name); }

static void mkdir_in(const char *name) { cr_assert_eq(mkdir(P(name), 0755), 0, "mkdir %s: %s", name, strerror(errno)); }

/* Interleaved RGB noise, w x h, from nn_hash_uniform(seed, .). */
static unsigned char *noise_rgb(int w, int h, uint64_t seed) {
    unsigned char *px = malloc((size_t)3 * w * h);
    for (size_t i = 0; i < (size_t)3 * w * h; i++) px[i] = (unsigned char)(256 * nn_hash_uniform(seed, i));
    return px;
}

static void write_png(const char *name, int w, int h, uint64_t seed) {
    unsigned char *px = noise_rgb(w, h, seed);
    cr_assert(stbi_write_png(P(name), w, h, 3, px, 3 * w), "stbi_write_png %s", name);
    free(px);
}

static void write_jpg(const char *name, int w, int h, uint64_t seed) {
    unsigned char *px = noise_rgb(w, h, seed);
    cr_assert(stbi_write_jpg(P(name), w, h, 3, px, 90), "stbi_write_jpg %s", name);
    free(px);
}

static void write_bytes(const char *name, const void *data, size_t n) {
    FILE *f = fopen(P(name), "wb");
    cr_assert_not_null(f, "fopen %s", name);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static long file_size(const char *name) {
    struct stat sb;
    return stat(P(name), &sb) ? -1 : (long)sb.st_size;
}

static void truncate_to(const char *name, long size) {
    cr_assert_eq(truncate(P(name), size), 0, "truncate %s: %s", name, strerror(errno));
}

void tc_write_tiny_model(const char *path) {
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 64, cfg.height = 32, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 16;
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, 1), 0, "%s", nn_last_error());
    cr_assert_eq(deep3d_model_save(&m, path, 1), 0, "%s", nn_last_error());
    deep3d_model_free(&m);
}

void tc_write_shifting_model(const char *path, int level) {
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 64, cfg.height = 32, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 16;
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, 1), 0, "%s", nn_last_error());
    m.final_b->data[level] = 20;
    cr_assert_eq(deep3d_model_save(&m, path, 1), 0, "%s", nn_last_error());
    deep3d_model_free(&m);
}

/* The tiny model as root/name. */
static void write_tiny_model(const char *name) { tc_write_tiny_model(P(name)); }

/* A folder of n good <id>_L.png / <id>_R.png pairs (w x h). */
static void write_pairs(const char *dir, int n, int w, int h) {
    mkdir_in(dir);
    char name[256];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s/p%d_L.png", dir, i);
        write_png(name, w, h, 100 + 2 * i);
        snprintf(name, sizeof name, "%s/p%d_R.png", dir, i);
        write_png(name, w, h, 101 + 2 * i);
    }
}

/* Asserts that text has a line equal to line. */
static void expect_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, line, n) && (p[n] == '\n' || !p[n])) return;
    cr_assert_fail("no line '%s' in:\n%s", line, text);
}

/* Shorthand: run with a NULL-terminated argument list. */
#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})

/* Names of files in root/dir containing `needle` (0 if none). */
static int count_files_containing(const char *dir, const char *needle) {
    DIR *d = opendir(P(dir));
    cr_assert_not_null(d, "opendir %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

TestSuite(cli_infer, .init = make_root, .fini = remove_root, .timeout = 60);
TestSuite(cli_train, .init = make_root, .fini = remove_root, .timeout = 60);
TestSuite(cli_eval, .init = make_root, .fini = remove_root, .timeout = 60);
TestSuite(cli_usage, .init = make_root, .fini = remove_root, .timeout = 60);
TestSuite(cli_bench, .init = make_root, .fini = remove_root, .timeout = 60);

/* ---- infer ------------------------------------------------------------------------- */

/* The control: a good image converts, every default output at the input's size. */
Test(cli_infer, good_image_converts_at_the_source_resolution) {
    write_tiny_model("m.d3w");
    write_png("img.png", 80, 36, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("img.png"));
    cr_assert(r.exited && r.status == 0, "infer failed (%d): %s", r.status, r.err);
    cr_assert_str_empty(r.err, "stderr: %s", r.err);
    const struct { const char *file; int w, h; } want[] = {
        {"out/img_right.png", 80, 36}, {"out/img_sbs.png", 160, 36},
        {"out/img_anaglyph.png", 80, 36}, {"out/img_depth.png", 80, 36}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int w, h, c;
        cr_assert(stbi_info(P(want[i].file), &w, &h, &c), "%s missing or not an image", want[i].file);
        cr_assert(w == want[i].w && h == want[i].h, "%s is %dx%d, expected %dx%d", want[i].file, w, h, want[i].w,
                  want[i].h);
    }
    cr_assert_eq(count_files_containing("out", ".deep3d-"), 0, "temporary files left in out/");
    tc_free(&r);
}

Test(cli_infer, missing_input_file) {
    write_tiny_model("m.d3w");
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("nope.png"));
    tc_expect_error(&r, "missing input", P("nope.png"), "cannot open", NULL);
    tc_free(&r);
}

Test(cli_infer, corrupt_image) {
    write_tiny_model("m.d3w");
    unsigned char *junk = noise_rgb(100, 10, 7);
    write_bytes("junk.png", junk, 3000);
    free(junk);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("junk.png"));
    tc_expect_error(&r, "corrupt image", P("junk.png"), "decode", NULL);
    tc_free(&r);
}

Test(cli_infer, truncated_png) {
    write_tiny_model("m.d3w");
    write_png("cut.png", 64, 32, 3);
    truncate_to("cut.png", file_size("cut.png") / 2);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("cut.png"));
    tc_expect_error(&r, "truncated PNG", P("cut.png"), "truncated", NULL);
    tc_free(&r);
}

/* Truncated inside the header (before the frame and Huffman tables). */
Test(cli_infer, truncated_jpeg_header) {
    write_tiny_model("m.d3w");
    write_jpg("cut.jpg", 64, 32, 4);
    truncate_to("cut.jpg", 100);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("cut.jpg"));
    tc_expect_error(&r, "truncated JPEG", P("cut.jpg"), "decode", NULL);
    tc_free(&r);
}

/* Truncated inside the entropy-coded data: half the file. */
Test(cli_infer, truncated_jpeg_data) {
    write_tiny_model("m.d3w");
    write_jpg("cut.jpg", 64, 32, 4);
    truncate_to("cut.jpg", file_size("cut.jpg") / 2);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("cut.jpg"));
    tc_expect_error(&r, "JPEG truncated in its data", P("cut.jpg"), NULL);
    tc_free(&r);
}

/* Several images, one of them missing: the others are converted, the failure is one
 * line naming the file, and a closing line counts the failures. */
Test(cli_infer, one_missing_among_several_images) {
    write_tiny_model("m.d3w");
    write_png("a.png", 64, 32, 1);
    write_png("b.png", 64, 32, 2);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--formats", "right", "--model", P("m.d3w"), "--out",
        P("out"), P("a.png"), P("nope.png"), P("b.png"));
    cr_assert(r.exited && r.status == 1, "exit status %d, expected 1: %s", r.status, r.err);
    char want[600];
    snprintf(want, sizeof want, "deep3d infer: image: cannot open '%s'", P("nope.png"));
    cr_assert(!strncmp(r.err, want, strlen(want)), "first line should name the missing file:\n%s", r.err);
    const char *second = strchr(r.err, '\n') + 1;
    cr_assert_str_eq(second, "deep3d infer: 1 of 3 images failed\n", "stderr:\n%s", r.err);
    cr_assert_gt(file_size("out/a_right.png"), 0, "a.png was not converted");
    cr_assert_gt(file_size("out/b_right.png"), 0, "b.png was not converted");
    cr_assert_lt(file_size("out/a_sbs.png"), 0, "--formats right wrote a side-by-side");
    tc_free(&r);
}

Test(cli_infer, missing_model_file) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("nope.d3w"), "--out", P("out"), P("img.png"));
    tc_expect_error(&r, "missing --model", P("nope.d3w"), NULL);
    tc_free(&r);
}

Test(cli_infer, truncated_model_file) {
    write_tiny_model("m.d3w");
    truncate_to("m.d3w", file_size("m.d3w") / 2);
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), P("img.png"));
    tc_expect_error(&r, "truncated --model", P("m.d3w"), "truncated", NULL);
    tc_free(&r);
}

Test(cli_infer, foreign_file_as_model) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("img.png"), "--out", P("out"), P("img.png"));
    tc_expect_error(&r, "PNG as --model", P("img.png"), "not a deep3d weights file", NULL);
    tc_free(&r);
}

Test(cli_infer, unknown_option) {
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--frobnicate", "x.png");
    tc_expect_error(&r, "unknown option", "--frobnicate", NULL);
    cr_assert_eq(r.status, 2, "bad usage exits 2, got %d", r.status);
    tc_free(&r);
}

Test(cli_infer, unknown_format) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--formats", "sbs,bogus", P("img.png"));
    tc_expect_error(&r, "--formats bogus", "--formats", "bogus", NULL);
    tc_free(&r);
}

Test(cli_infer, zero_threads) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "0", P("img.png"));
    tc_expect_error(&r, "--threads 0", "--threads", "'0'", NULL);
    tc_free(&r);
}

Test(cli_infer, unknown_device) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "nonsense", P("img.png"));
    tc_expect_error(&r, "--device nonsense", "--device", "nonsense", NULL);
    tc_free(&r);
}

Test(cli_infer, option_without_value) {
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--model");
    tc_expect_error(&r, "--model without value", "--model", NULL);
    tc_free(&r);
}

Test(cli_infer, no_images) {
    tc_result r;
    RUN(&r, "infer", "--threads", "1");
    tc_expect_error(&r, "no images", "no input images", NULL);
    tc_free(&r);
}

/* With --overwrite, saving NAME_sbs.png fails (a folder has that name) after
 * NAME_right.png was written: the run fails with one line naming NAME_sbs.png,
 * NAME_right.png is a complete PNG (the new one, replacing the good file that was
 * there), a good NAME_anaglyph.png that the run never reached is untouched, and no
 * temporary file is left. */
Test(cli_infer, failure_midway_leaves_complete_files_and_no_temporaries) {
    write_tiny_model("m.d3w");
    write_png("img.png", 72, 30, 1);
    mkdir_in("out");
    write_png("out/img_right.png", 20, 10, 9);     /* an older, good file */
    write_png("out/img_anaglyph.png", 20, 10, 10); /* likewise */
    char *before = NULL;
    {
        FILE *f = fopen(P("out/img_anaglyph.png"), "rb");
        cr_assert_not_null(f);
        before = malloc(1 << 16);
        size_t n = fread(before, 1, 1 << 16, f);
        fclose(f);
        before[n] = 0;
        cr_assert_eq((long)n, file_size("out/img_anaglyph.png"));
    }
    mkdir_in("out/img_sbs.png");
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--overwrite", "--model", P("m.d3w"), "--out", P("out"),
        P("img.png"));
    tc_expect_error(&r, "saving onto a folder", "img_sbs.png", NULL);
    int w, h, c;
    unsigned char *px = stbi_load(P("out/img_right.png"), &w, &h, &c, 3);
    cr_assert_not_null(px, "img_right.png is not a complete PNG: %s", stbi_failure_reason());
    cr_assert(w == 72 && h == 30, "img_right.png is %dx%d: the new right view (72x30) was expected", w, h);
    stbi_image_free(px);
    FILE *f = fopen(P("out/img_anaglyph.png"), "rb");
    cr_assert_not_null(f);
    char *after = malloc(1 << 16);
    size_t n = fread(after, 1, 1 << 16, f);
    fclose(f);
    cr_assert(n == (size_t)file_size("out/img_anaglyph.png") && !memcmp(before, after, n),
              "img_anaglyph.png changed although the run stopped before it");
    free(before), free(after);
    cr_assert_eq(count_files_containing("out", ".deep3d-"), 0, "a temporary file was left in out/");
    tc_free(&r);
}

/* Every layout of --formats, at its size (infer/layouts.h's table); wiggle is a GIF of
 * two frames shown 0.12 s each, looping. */
Test(cli_infer, every_format_at_its_size) {
    write_tiny_model("m.d3w");
    write_png("img.png", 81, 36, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right,sbs,sbs-half,ou,ou-half,anaglyph,cross,depth,rgbd,wiggle", P("img.png"));
    cr_assert(r.exited && r.status == 0, "infer failed (%d): %s", r.status, r.err);
    expect_line(r.out, "infer: 1 converted, 0 skipped, 0 failed");
    tc_free(&r);
    const struct {
        const char *file;
        int w, h;
    } want[] = {{"out/img_right.png", 81, 36}, {"out/img_sbs.png", 162, 36},     {"out/img_sbs-half.png", 82, 36},
                {"out/img_ou.png", 81, 72},    {"out/img_ou-half.png", 81, 36},  {"out/img_anaglyph.png", 81, 36},
                {"out/img_cross.png", 162, 36}, {"out/img_depth.png", 81, 36},   {"out/img_rgbd.png", 162, 36}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int w, h, c;
        cr_assert(stbi_info(P(want[i].file), &w, &h, &c), "%s missing or not an image", want[i].file);
        cr_assert(w == want[i].w && h == want[i].h, "%s is %dx%d, expected %dx%d", want[i].file, w, h, want[i].w,
                  want[i].h);
    }
    FILE *f = fopen(P("out/img_wiggle.gif"), "rb");
    cr_assert_not_null(f, "img_wiggle.gif missing");
    static unsigned char gif[1 << 20];
    size_t n = fread(gif, 1, sizeof gif, f);
    fclose(f);
    int *delays = NULL, w, h, frames, comp;
    unsigned char *px = stbi_load_gif_from_memory(gif, (int)n, &delays, &w, &h, &frames, &comp, 3);
    cr_assert_not_null(px, "img_wiggle.gif does not decode: %s", stbi_failure_reason());
    cr_assert(w == 81 && h == 36 && frames == 2, "wiggle: %dx%d, %d frames", w, h, frames);
    cr_assert(delays[0] == 120 && delays[1] == 120, "wiggle delays %d, %d ms", delays[0], delays[1]);
    stbi_image_free(px), stbi_image_free(delays);
    cr_assert(memmem(gif, n, "NETSCAPE2.0", 11), "no looping extension");
    cr_assert_eq(count_files_containing("out", ".tmp"), 0, "temporary files left in out/");
}

/* --depth-format jpg: NAME_depth.jpg, the photo's size (Facebook's 3D photo name). */
Test(cli_infer, depth_as_jpeg) {
    write_tiny_model("m.d3w");
    write_png("photo.png", 70, 40, 2);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "depth", "--depth-format", "jpg", P("photo.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    int w, h, c;
    cr_assert(stbi_info(P("out/photo_depth.jpg"), &w, &h, &c) && w == 70 && h == 40, "photo_depth.jpg: %dx%d", w, h);
    cr_assert_lt(file_size("out/photo_depth.png"), 0, "a PNG was written as well");
}

/* Outputs that exist are kept and the image is skipped; --overwrite converts again. */
Test(cli_infer, existing_outputs_are_skipped_unless_overwrite) {
    write_tiny_model("m.d3w");
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right", P("img.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    truncate_to("out/img_right.png", 10); /* mark the file: a skip must keep it */
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right", P("img.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    expect_line(r.out, "infer: 0 converted, 1 skipped, 0 failed");
    cr_assert_eq(file_size("out/img_right.png"), 10, "the existing output was replaced");
    tc_free(&r);
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right", "--overwrite", P("img.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    expect_line(r.out, "infer: 1 converted, 0 skipped, 0 failed");
    cr_assert_gt(file_size("out/img_right.png"), 10, "--overwrite kept the old file");
    tc_free(&r);
}

/* Two inputs that would write the same output names (d1/same.png, d2/same.jpg): a
 * usage error naming both, before any image is converted; nothing written. */
Test(cli_infer, inputs_with_the_same_output_names_are_refused) {
    write_tiny_model("m.d3w");
    mkdir_in("d1");
    mkdir_in("d2");
    write_png("d1/same.png", 64, 32, 1);
    write_jpg("d2/same.jpg", 64, 32, 2);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right", P("d1/same.png"), P("d2/same.jpg"));
    cr_assert(r.exited && r.status == 2, "exit 2 expected, got %d: %s", r.status, r.err);
    tc_expect_error(&r, "same output names", "d1/same.png", "d2/same.jpg", "same outputs", NULL);
    cr_assert_lt(file_size("out/same_right.png"), 0, "an output was written");
    tc_free(&r);
    /* the same names in different subfolders of an input folder are fine: out/d1, out/d2 */
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "right", "--pattern", "same.*", root);
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    cr_assert_gt(file_size("out/d1/same_right.png"), 0, "d1/same.png not converted");
    cr_assert_gt(file_size("out/d2/same_right.png"), 0, "d2/same.jpg not converted");
    tc_free(&r);
}

/* An --out folder that exists but takes no files (/proc, even for root) is an error
 * before the model is loaded or any image converted. */
Test(cli_infer, unwritable_output_folder_fails_before_any_work) {
    write_png("img.png", 64, 32, 1);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("no_such_model.d3w"), "--out", "/proc",
        "--formats", "right", P("img.png"));
    tc_expect_error(&r, "unwritable --out", "/proc", "not writable", NULL);
    cr_assert_eq(r.status, 1, "exit 1 expected, got %d", r.status);
    tc_free(&r);
}

/* A folder: images below it (by --pattern, any letter case), outputs in the same
 * subfolders of --out, other files ignored, the output folder inside the input folder
 * not searched, a broken image failing alone. */
Test(cli_infer, folders_are_searched_recursively) {
    write_tiny_model("m.d3w");
    mkdir_in("in");
    mkdir_in("in/sub");
    write_png("in/a.png", 64, 32, 1);
    write_jpg("in/sub/b.JPG", 64, 32, 2);
    write_bytes("in/notes.txt", "notes", 5);
    write_bytes("in/sub/broken.png", "not a png", 9);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("in/out"), "--formats",
        "sbs", P("in"));
    cr_assert(r.exited && r.status == 1, "one broken image: exit 1, got %d: %s", r.status, r.err);
    expect_line(r.out, "infer: 2 converted, 0 skipped, 1 failed");
    cr_assert(strstr(r.err, "broken.png"), "the failure names the file: %s", r.err);
    cr_assert_gt(file_size("in/out/a_sbs.png"), 0, "a.png not converted");
    cr_assert_gt(file_size("in/out/sub/b_sbs.png"), 0, "sub/b.JPG not converted into out/sub/");
    tc_free(&r);
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("in/out"), "--formats",
        "sbs", P("in"));
    expect_line(r.out, "infer: 0 converted, 2 skipped, 1 failed"); /* out/ itself was not searched */
    tc_free(&r);
}

/* Letterbox bars (8 black rows above and below a 64x32 picture): the bars are the same
 * in both views, the picture inside goes to the network alone (one window). */
Test(cli_infer, letterbox_bars_are_copied_into_both_views) {
    write_tiny_model("m.d3w");
    const int W = 64, H = 48;
    unsigned char *px = noise_rgb(W, H, 4);
    memset(px, 0, (size_t)3 * W * 8);
    memset(px + (size_t)3 * W * 40, 0, (size_t)3 * W * 8);
    cr_assert(stbi_write_png(P("lb.png"), W, H, 3, px, 3 * W));
    free(px);
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out"), "--formats",
        "sbs", P("lb.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    cr_assert(strstr(r.out, "bars excluded (picture 64x32), 1 network window"), "stdout: %s", r.out);
    tc_free(&r);
    int w, h, c;
    unsigned char *sbs = stbi_load(P("out/lb_sbs.png"), &w, &h, &c, 3);
    cr_assert(sbs && w == 2 * W && h == H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (y < 8 || y >= 40)
                for (int k = 0; k < 3; k++)
                    cr_assert_eq(sbs[3 * (y * 2 * W + W + x) + k], 0, "bar pixel (%d, %d) of the right view is not black", x, y);
    stbi_image_free(sbs);
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("out2"), "--formats",
        "sbs", "--letterbox", "off", P("lb.png"));
    cr_assert(r.exited && r.status == 0 && !strstr(r.out, "bars excluded"), "--letterbox off: %s", r.out);
    tc_free(&r);
}

/* ---- train ------------------------------------------------------------------------- */

#define TINY "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16", \
             "--disparities", "9", "--dmin", "-4", "--batch", "2", "--log-every", "1"

Test(cli_train, no_data_option) {
    tc_result r;
    RUN(&r, "train", TINY, "--out", P("run"));
    tc_expect_error(&r, "missing --data", "--data", NULL);
    tc_free(&r);
}

Test(cli_train, missing_data_folder) {
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "1", "--data", P("nope"), "--out", P("run"));
    tc_expect_error(&r, "missing data folder", P("nope"), NULL);
    tc_free(&r);
}

Test(cli_train, empty_data_folder) {
    mkdir_in("empty");
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "1", "--data", P("empty"), "--out", P("run"));
    tc_expect_error(&r, "empty data folder", P("empty"), "no stereo pairs", NULL);
    tc_free(&r);
}

Test(cli_train, left_view_without_right_view) {
    write_pairs("d", 1, 64, 32);
    write_png("d/lonely_L.png", 64, 32, 5);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "1", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "left without right", "lonely_L.png", "lonely_R", NULL);
    tc_free(&r);
}

/* The only pair has views of different sizes: a clear error naming both files. */
Test(cli_train, only_pair_of_different_sizes) {
    mkdir_in("d");
    write_png("d/a_L.png", 64, 32, 1);
    write_png("d/a_R.png", 66, 32, 2);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "1", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "pair of different sizes", "a_L.png", "a_R.png", "64x32", "66x32", NULL);
    tc_free(&r);
}

/* One pair of different sizes among good ones: one warning naming it, the pair
 * skipped, training runs to the end and reports the count (train/train.c, loader.h). */
Test(cli_train, bad_pair_among_good_ones_is_skipped_with_a_warning) {
    write_pairs("d", 3, 64, 32);
    write_png("d/bad_L.png", 64, 32, 1);
    write_png("d/bad_R.png", 66, 32, 2);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "3", "--data", P("d"), "--out", P("run"));
    cr_assert(r.exited && r.status == 0, "training should skip the bad pair and go on (%d): %s", r.status, r.err);
    /* at least one line, every line a warning naming the pair */
    cr_assert(strlen(r.err) > 0 && r.err[strlen(r.err) - 1] == '\n', "a warning line expected on stderr:\n%s", r.err);
    for (const char *line = r.err; *line; line = strchr(line, '\n') + 1) {
        const char *end = strchr(line, '\n');
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(end - line), line);
        cr_assert(strstr(buf, "warning") && strstr(buf, "bad_L.png") && strstr(buf, "bad_R.png"),
                  "every stderr line should be a warning naming the bad pair: %s", buf);
    }
    cr_assert(strstr(r.out, "skipped 1 bad pair"), "the count should be printed at the end:\n%s", r.out);
    cr_assert_gt(file_size("run/model.d3w"), 0, "no model written");
    tc_free(&r);
}

Test(cli_train, resume_from_missing_file) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"), "--resume", P("nope.d3w"));
    tc_expect_error(&r, "missing --resume", P("nope.d3w"), NULL);
    tc_free(&r);
}

Test(cli_train, resume_from_truncated_file) {
    write_pairs("d", 1, 64, 32);
    write_tiny_model("ck.d3w");
    truncate_to("ck.d3w", file_size("ck.d3w") - 100);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"), "--resume", P("ck.d3w"));
    tc_expect_error(&r, "truncated --resume", P("ck.d3w"), "truncated", NULL);
    tc_free(&r);
}

Test(cli_train, resume_from_foreign_file) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"), "--resume", P("d/p0_L.png"));
    tc_expect_error(&r, "PNG as --resume", P("d/p0_L.png"), "not a deep3d weights file", NULL);
    tc_free(&r);
}

/* A model file is a weights file but not a checkpoint (no step, no optimizer state). */
Test(cli_train, resume_from_model_file_that_is_no_checkpoint) {
    write_pairs("d", 1, 64, 32);
    write_tiny_model("m.d3w");
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"), "--resume", P("m.d3w"));
    tc_expect_error(&r, "model as --resume", P("m.d3w"), "checkpoint", NULL);
    tc_free(&r);
}

/* Resuming a checkpoint that is already at --steps only writes the model file (how a
 * model is exported from any checkpoint); one past --steps is an error. */
Test(cli_train, resume_with_no_steps_left) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"));
    cr_assert(r.exited && r.status == 0, "2-step run failed: %s", r.err);
    tc_free(&r);
    cr_assert_eq(remove(P("run/model.d3w")), 0);
    RUN(&r, "train", TINY, "--steps", "2", "--data", P("d"), "--out", P("run"), "--resume", P("run/checkpoint.d3w"));
    cr_assert(r.exited && r.status == 0, "resume at the last step: %s", r.err);
    cr_assert(strstr(r.out, "at step 2 already"), "stdout: %s", r.out);
    nn_weights_file *f = nn_weights_open(P("run/model.d3w"));
    cr_assert_not_null(f, "model.d3w not written: %s", nn_last_error());
    nn_weights_close(f);
    tc_free(&r);
    RUN(&r, "train", TINY, "--steps", "1", "--data", P("d"), "--out", P("run"), "--resume", P("run/checkpoint.d3w"));
    tc_expect_error(&r, "resume past --steps", "step 2", "--steps 1", NULL);
    tc_free(&r);
}

Test(cli_train, zero_steps) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--steps", "0", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "--steps 0", "--steps", "'0'", NULL);
    tc_free(&r);
}

Test(cli_train, batch_not_a_number) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--batch", "abc", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "--batch abc", "--batch", "'abc'", NULL);
    tc_free(&r);
}

Test(cli_train, unknown_option) {
    tc_result r;
    RUN(&r, "train", "--threads", "1", "--learning-rate", "0.1", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "unknown option", "--learning-rate", NULL);
    tc_free(&r);
}

Test(cli_train, network_size_not_multiple_of_32) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--width", "70", "--height", "32", "--width-div", "16",
        "--steps", "1", "--data", P("d"), "--out", P("run"));
    tc_expect_error(&r, "--width 70", "70x32", "multiples of 32", NULL);
    tc_free(&r);
}

/* ---- eval -------------------------------------------------------------------------- */

Test(cli_eval, no_data_option) {
    write_tiny_model("m.d3w");
    tc_result r;
    RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"));
    tc_expect_error(&r, "missing --data", "--data", NULL);
    tc_free(&r);
}

Test(cli_eval, missing_model_file) {
    write_pairs("d", 1, 64, 32);
    tc_result r;
    RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--model", P("nope.d3w"), "--data", P("d"));
    tc_expect_error(&r, "missing --model", P("nope.d3w"), NULL);
    tc_free(&r);
}

Test(cli_eval, missing_data_folder) {
    write_tiny_model("m.d3w");
    tc_result r;
    RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--data", P("nope"));
    tc_expect_error(&r, "missing data folder", P("nope"), NULL);
    tc_free(&r);
}

/* ---- bench ------------------------------------------------------------------------- */

/* --model: the file's network (the tiny model: 64x32, width_div 16), not the options'. */
Test(cli_bench, model_file_sets_the_network) {
    write_tiny_model("m.d3w");
    tc_result r;
    RUN(&r, "bench", "--threads", "1", "--mode", "infer", "--batch", "1", "--iters", "1", "--warmup", "0", "--json",
        "--model", P("m.d3w"));
    cr_assert(r.exited && r.status == 0, "bench --model failed (%d): %s", r.status, r.err);
    cr_assert(strstr(r.out, "\"height\": 32, \"width\": 64, \"width_div\": 16"), "not the file's network: %s", r.out);
    tc_free(&r);
    RUN(&r, "bench", "--threads", "1", "--mode", "infer", "--model", P("nope.d3w"));
    tc_expect_error(&r, "missing --model", P("nope.d3w"), NULL);
    tc_free(&r);
}

/* ---- usage ------------------------------------------------------------------------- */

static void expect_help(const char *cmd) {
    tc_result r;
    RUN(&r, cmd, "--help");
    cr_assert(r.exited && r.status == 0, "deep3d %s --help exits %d: %s", cmd, r.status, r.err);
    char want[64];
    snprintf(want, sizeof want, "usage: deep3d %s", cmd);
    cr_assert(strstr(r.out, want), "deep3d %s --help prints no '%s':\n%s", cmd, want, r.out);
    cr_assert(strstr(r.out, "--threads"), "deep3d %s --help lists no options:\n%s", cmd, r.out);
    cr_assert_str_empty(r.err, "deep3d %s --help wrote to stderr: %s", cmd, r.err);
    tc_free(&r);
}

Test(cli_usage, infer_help) { expect_help("infer"); }
Test(cli_usage, train_help) { expect_help("train"); }
Test(cli_usage, eval_help) { expect_help("eval"); }
Test(cli_usage, bench_help) { expect_help("bench"); }
Test(cli_usage, dataset_help) { expect_help("dataset"); }
Test(cli_usage, video_help) { expect_help("video"); }

static void expect_command_list(const char *text, const char *what) {
    const char *cmds[] = {"infer", "train", "eval", "bench", "dataset", "video"};
    for (int i = 0; i < 6; i++)
        cr_assert(strstr(text, cmds[i]), "%s: the command list lacks '%s':\n%s", what, cmds[i], text);
}

Test(cli_usage, top_level_help) {
    tc_result r;
    RUN(&r, "--help");
    cr_assert(r.exited && r.status == 0, "deep3d --help exits %d", r.status);
    expect_command_list(r.out, "deep3d --help");
    tc_free(&r);
}

Test(cli_usage, no_command) {
    tc_result r;
    tc_run(&r, root, (const char *const[]){NULL});
    cr_assert(r.exited && r.status != 0, "deep3d alone must fail, exits %d", r.status);
    expect_command_list(r.err, "deep3d alone");
    tc_free(&r);
}

Test(cli_usage, unknown_command) {
    tc_result r;
    RUN(&r, "frobnicate");
    cr_assert(r.exited && r.status != 0, "an unknown command must fail, exits %d", r.status);
    cr_assert(strstr(r.err, "frobnicate"), "the message should name the command:\n%s", r.err);
    expect_command_list(r.err, "unknown command");
    tc_free(&r);
}
