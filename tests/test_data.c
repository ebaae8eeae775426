/* The data half of training: images, stereo pair sources, pair-preserving
 * augmentation and the background loader. Every test builds its own tiny PNGs with
 * stb_image_write in a fresh temporary folder (mkdtemp) and removes it; nothing here
 * reads ../shared. Expected pixels come from the synthetic views the test wrote, so a
 * wrong split, crop, flip or shift shows up as a pixel mismatch. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_resize.h>
#include <stb_image_write.h>

#include "../data/augment.h"
#include "../data/image.h"
#include "../data/loader.h"
#include "../data/stereo.h"
#include "../nn/backend.h"
#include "../nn/atomic_file.h"
#include "../nn/status.h"
#include "testutil.h"

/* ---- helpers ---- */

static char tmp_root[64];

static void make_tmp(void) { tu_tmpdir(tmp_root, "deep3d_test_data"); }
static void remove_tmp(void) { tu_rmtree(tmp_root); }

TestSuite(image, .init = make_tmp, .fini = remove_tmp);
TestSuite(stereo, .init = make_tmp, .fini = remove_tmp);
TestSuite(augment, .init = make_tmp, .fini = remove_tmp);
TestSuite(loader, .init = make_tmp, .fini = remove_tmp);

/* tmp_root + "/" + name (static buffers, 8 in rotation). */
static const char *P(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp_root, name);
    return b;
}

static void mkdir_p(const char *name) { cr_assert_eq(mkdir(P(name), 0755), 0, "mkdir %s", name); }

/* A pseudo-random texture with integer values 0..255 (exact through PNG). */
static image *noise(int w, int h, uint64_t seed) {
    image *im = image_new(w, h);
    cr_assert_not_null(im);
    for (size_t i = 0; i < (size_t)3 * w * h; i++)
        im->data[i] = (nn_real)floor(256 * nn_hash_uniform(seed, i));
    return im;
}

/* Writes a planar float image as PNG with stb_image_write (values rounded). */
static void write_png(const char *path, const image *im) {
    size_t plane = (size_t)im->w * im->h;
    unsigned char *px = malloc(3 * plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) px[3 * i + c] = (unsigned char)lrint(im->data[c * plane + i]);
    cr_assert(stbi_write_png(path, im->w, im->h, 3, px, 3 * im->w), "stbi_write_png %s", path);
    free(px);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Random bytes under a .png name: no image format stb_image knows. */
static void write_garbage(const char *path) {
    unsigned char junk[600];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(256 * nn_hash_uniform(77, i));
    write_bytes(path, junk, sizeof junk);
}

/* A valid PNG of im cut to its first half. */
static void write_truncated_png(const char *path, const image *im) {
    write_png(path, im);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
}

static void assert_images_equal(const image *a, const image *b, double tol, const char *what) {
    cr_assert(a && b, "%s: missing image", what);
    cr_assert(a->w == b->w && a->h == b->h, "%s: size %dx%d vs %dx%d", what, a->w, a->h, b->w, b->h);
    for (size_t i = 0; i < (size_t)3 * a->w * a->h; i++)
        cr_assert(fabs((double)a->data[i] - b->data[i]) <= tol, "%s: value %zu (c %zu, y %zu, x %zu): %g vs %g",
                  what, i, i / ((size_t)a->w * a->h), i / a->w % a->h, i % a->w, a->data[i], b->data[i]);
}

static void assert_msg(const char *needle) {
    cr_assert(strstr(nn_last_error(), needle), "expected \"%s\" in: %s", needle, nn_last_error());
}

/* Places a and b side by side (sbs = 1) or one over the other (sbs = 0). */
static image *join_views(const image *a, const image *b, int sbs) {
    image *f = sbs ? image_new(a->w + b->w, a->h) : image_new(a->w, a->h + b->h);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < f->h; y++)
            for (int x = 0; x < f->w; x++) {
                const image *s = (sbs ? x < a->w : y < a->h) ? a : b;
                int sx = sbs && x >= a->w ? x - a->w : x, sy = !sbs && y >= a->h ? y - a->h : y;
                f->data[((size_t)c * f->h + y) * f->w + x] = s->data[((size_t)c * s->h + sy) * s->w + sx];
            }
    return f;
}

static nn_real px(const image *im, int c, int y, int x) {
    return im->data[((size_t)c * im->h + y) * im->w + x];
}

/* ---- image ---- */

Test(image, png_round_trip_gray_and_rgba_inputs) {
    image *a = noise(7, 5, 1);
    write_png(P("a.png"), a);
    image *b = image_load(P("a.png"));
    cr_assert_not_null(b, "%s", nn_last_error());
    assert_images_equal(b, a, 0, "rgb round trip");

    unsigned char gray[6] = {0, 50, 100, 150, 200, 255}, rgba[6 * 4];
    for (int i = 0; i < 6; i++) rgba[4 * i] = gray[i], rgba[4 * i + 1] = 10, rgba[4 * i + 2] = 20, rgba[4 * i + 3] = 0;
    cr_assert(stbi_write_png(P("g.png"), 3, 2, 1, gray, 3));
    cr_assert(stbi_write_png(P("rgba.png"), 3, 2, 4, rgba, 12));
    image *g = image_load(P("g.png")), *r = image_load(P("rgba.png"));
    cr_assert(g && r, "%s", nn_last_error());
    for (int i = 0; i < 6; i++) {
        for (int c = 0; c < 3; c++) cr_assert_eq(g->data[c * 6 + i], gray[i], "gray replicated");
        cr_assert(r->data[i] == gray[i] && r->data[6 + i] == 10 && r->data[12 + i] == 20, "alpha dropped");
    }
    image_free(a), image_free(b), image_free(g), image_free(r);
}

Test(image, save_png_is_atomic_and_replaces) {
    image *a = noise(6, 4, 2), *b = noise(6, 4, 3);
    cr_assert_eq(image_save_png(a, P("out.png")), 0, "%s", nn_last_error());
    cr_assert_eq(image_save_png(b, P("out.png")), 0, "%s", nn_last_error());
    image *back = image_load(P("out.png"));
    assert_images_equal(back, b, 0, "saved then loaded");
    /* values out of 0..255 and fractions: clamped and rounded */
    a->data[0] = -20, a->data[1] = 300, a->data[2] = 12.6f;
    cr_assert_eq(image_save_png(a, P("clamp.png")), 0);
    image *c = image_load(P("clamp.png"));
    cr_assert(c->data[0] == 0 && c->data[1] == 255 && c->data[2] == 13);

    /* a failure at the rename (the target is a non-empty folder): error, no temporary */
    mkdir_p("busy.png");
    write_png(P("busy.png/inside.png"), a);
    cr_assert_eq(image_save_png(a, P("busy.png")), -1);
    assert_msg("cannot write");
    assert_msg("busy.png");
    cr_assert_eq(nn_remove_stale_temporaries(tmp_root), 0, "temporary file left behind");
    cr_assert_eq(access(P("busy.png/inside.png"), F_OK), 0, "existing content touched");
    /* a missing folder */
    cr_assert_eq(image_save_png(a, P("no/such/dir.png")), -1);
    assert_msg("no/such/dir.png");
    /* the longest legal name (NAME_MAX, 255 bytes): the temporary beside it is short */
    char name[256];
    memset(name, 'n', 251), memcpy(name + 251, ".png", 5);
    cr_assert_eq(image_save_png(a, P(name)), 0, "a 255-byte name: %s", nn_last_error());
    image *d = image_load(P(name));
    cr_assert_not_null(d, "%s", nn_last_error());
    cr_assert_eq(nn_remove_stale_temporaries(tmp_root), 0, "temporary file left behind");
    image_free(a), image_free(b), image_free(back), image_free(c), image_free(d);
}

Test(image, load_errors_name_the_file) {
    cr_assert_null(image_load(P("missing.png")));
    assert_msg("cannot open");
    assert_msg("missing.png");
    assert_msg("No such file");

    write_garbage(P("garbage.png"));
    cr_assert_null(image_load(P("garbage.png")));
    assert_msg("cannot decode");
    assert_msg("garbage.png");

    image *a = noise(40, 30, 4);
    write_truncated_png(P("cut.png"), a);
    cr_assert_null(image_load(P("cut.png")));
    assert_msg("is truncated: its PNG chunk IDAT at byte 33 claims");
    assert_msg("cut.png");

    write_bytes(P("empty.png"), "", 0);
    cr_assert_null(image_load(P("empty.png")));
    assert_msg("empty.png");
    assert_msg("empty");

    cr_assert_null(image_load(tmp_root));
    assert_msg("is a folder");
    image_free(a);
}

Test(image, crop_flip_resize_match_naive_loops) {
    image *a = noise(9, 7, 5);
    image *c = image_crop(a, 2, 3, 5, 4);
    cr_assert_not_null(c);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 5; x++) cr_assert_eq(px(c, ch, y, x), px(a, ch, y + 3, x + 2));
    cr_assert_null(image_crop(a, 5, 0, 5, 4));
    assert_msg("outside the 9x7 image");

    image *f = image_clone(a);
    image_flip_horizontal(f);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 9; x++) cr_assert_eq(px(f, ch, y, x), px(a, ch, y, 8 - x));

    image *same = image_resize(a, 9, 7);
    assert_images_equal(same, a, 0, "same-size resize");
    /* a constant image stays constant, up and down */
    image *k = image_new(10, 6);
    for (size_t i = 0; i < 180; i++) k->data[i] = i < 60 ? 17 : i < 120 ? 200 : 255;
    image *up = image_resize(k, 23, 11), *down = image_resize(k, 4, 3);
    for (int ch = 0; ch < 3; ch++) {
        nn_real want = ch == 0 ? 17 : ch == 1 ? 200 : 255;
        for (int i = 0; i < 23 * 11; i++) cr_assert_float_eq(up->data[ch * 253 + i], want, 1e-3);
        for (int i = 0; i < 12; i++) cr_assert_float_eq(down->data[ch * 12 + i], want, 1e-3);
    }
    /* noise up-sampled: the cubic filter overshoots, the result is clamped */
    image *big = image_resize(a, 31, 17);
    for (size_t i = 0; i < (size_t)3 * 31 * 17; i++) cr_assert(big->data[i] >= 0 && big->data[i] <= 255);
    image_free(a), image_free(c), image_free(f), image_free(same), image_free(k), image_free(up),
        image_free(down), image_free(big);
}

Test(image, resize_matches_stb_image_resize) {
    /* the library's resampler (stbir_resize, same filters per axis: Catmull-Rom when an
     * axis grows or keeps its size, Mitchell when it shrinks; clamped edges) is the
     * independent reference */
    const int sizes[][4] = {{90, 38, 24, 10}, {13, 9, 31, 20}, {20, 12, 20, 30}, {41, 17, 7, 17}, {5, 4, 2, 9}};
    for (int t = 0; t < 5; t++) {
        int W = sizes[t][0], H = sizes[t][1], w = sizes[t][2], h = sizes[t][3];
        image *a = image_new(W, H);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    a->data[(c * H + y) * W + x] =
                        (nn_real)(128 + 90 * sin(0.4 * x + 0.3 * y + c) + 30 * (nn_hash_uniform(t, (uint64_t)(c * 9999 + y * W + x)) - 0.5));
        image *mine = image_resize(a, w, h), *ref = image_new(w, h);
        cr_assert_not_null(mine, "%s", nn_last_error());
        for (int c = 0; c < 3; c++)
            cr_assert(stbir_resize(a->data + c * W * H, W, H, W * 4, ref->data + c * w * h, w, h, w * 4, STBIR_TYPE_FLOAT, 1,
                                   STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                                   w >= W ? STBIR_FILTER_CATMULLROM : STBIR_FILTER_MITCHELL,
                                   h >= H ? STBIR_FILTER_CATMULLROM : STBIR_FILTER_MITCHELL, STBIR_COLORSPACE_LINEAR, NULL));
        for (int i = 0; i < 3 * w * h; i++) ref->data[i] = ref->data[i] < 0 ? 0 : ref->data[i] > 255 ? 255 : ref->data[i];
        char what[64];
        snprintf(what, sizeof what, "%dx%d -> %dx%d vs stbir_resize", W, H, w, h);
        assert_images_equal(mine, ref, 2e-3, what);
        image_free(a), image_free(mine), image_free(ref);
    }
}

/* ---- stereo sources ---- */

Test(stereo, lr_files_sorted_and_loaded) {
    const char *ids[3] = {"b2", "a1", "c3"};
    image *v[3][2];
    for (int i = 0; i < 3; i++) {
        char name[64];
        for (int s = 0; s < 2; s++) {
            v[i][s] = noise(12, 5, 10 + 2 * i + s);
            snprintf(name, sizeof name, "%s_%c.png", ids[i], s ? 'R' : 'L');
            write_png(P(name), v[i][s]);
        }
    }
    write_bytes(P("README.txt"), "not an image", 12);
    write_bytes(P(".hidden_L.png"), "x", 1);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, tmp_root, STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, 3);
    const int order[3] = {1, 0, 2}; /* a1, b2, c3 */
    for (int k = 0; k < 3; k++) {
        cr_assert(strstr(ds->items[k].left, ids[order[k]]) && strstr(ds->items[k].right, "_R.png"));
        image *l, *r;
        cr_assert_eq(stereo_load_pair(ds, k, &l, &r), 0, "%s", nn_last_error());
        assert_images_equal(l, v[order[k]][0], 0, "left");
        assert_images_equal(r, v[order[k]][1], 0, "right");
        image_free(l), image_free(r);
    }
    stereo_dataset_free(ds);
    for (int i = 0; i < 3; i++) image_free(v[i][0]), image_free(v[i][1]);
}

Test(stereo, left_right_subfolders_and_combined_folders) {
    mkdir_p("set1"), mkdir_p("set1/left"), mkdir_p("set1/right"), mkdir_p("set2");
    image *l = noise(8, 4, 20), *r = noise(8, 4, 21), *l2 = noise(6, 3, 22), *r2 = noise(6, 3, 23);
    write_png(P("set1/left/f002.png"), l), write_png(P("set1/right/f002.png"), r);
    write_png(P("set1/left/f001.png"), r), write_png(P("set1/right/f001.png"), l);
    write_png(P("set2/x_L.png"), l2), write_png(P("set2/x_R.png"), r2);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("set2"), STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(stereo_dataset_add(ds, P("set1"), STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, 3);
    cr_assert(strstr(ds->items[0].left, "set2/x_L.png"));
    cr_assert(strstr(ds->items[1].left, "set1/left/f001.png") && strstr(ds->items[1].right, "set1/right/f001.png"));
    cr_assert(strstr(ds->items[2].left, "set1/left/f002.png"));
    image *a, *b;
    cr_assert_eq(stereo_load_pair(ds, 2, &a, &b), 0, "%s", nn_last_error());
    assert_images_equal(a, l, 0, "left/f002");
    assert_images_equal(b, r, 0, "right/f002");
    image_free(a), image_free(b);
    cr_assert_eq(stereo_load_pair(ds, 0, &a, &b), 0);
    assert_images_equal(a, l2, 0, "x_L");
    image_free(a), image_free(b);
    stereo_dataset_free(ds);
    image_free(l), image_free(r), image_free(l2), image_free(r2);
}

Test(stereo, full_size_frames_split_back_into_their_views) {
    image *l = noise(10, 6, 30), *r = noise(10, 6, 31);
    image *sbs = join_views(l, r, 1), *ou = join_views(l, r, 0);
    mkdir_p("sbs"), mkdir_p("ou");
    write_png(P("sbs/f1.png"), sbs), write_png(P("ou/f1.png"), ou);
    stereo_layout lay;
    cr_assert_eq(stereo_layout_parse("sbs", &lay), 0);
    cr_assert_eq(lay, STEREO_SBS);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("sbs"), STEREO_SBS), 0, "%s", nn_last_error());
    cr_assert_eq(stereo_dataset_add(ds, P("ou/f1.png"), STEREO_OU), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, 2);
    for (int k = 0; k < 2; k++) {
        image *a, *b;
        cr_assert_eq(stereo_load_pair(ds, k, &a, &b), 0, "%s", nn_last_error());
        assert_images_equal(a, l, 0, k ? "ou left (top)" : "sbs left (left half)");
        assert_images_equal(b, r, 0, k ? "ou right (bottom)" : "sbs right (right half)");
        image_free(a), image_free(b);
    }
    stereo_dataset_free(ds);
    image_free(l), image_free(r), image_free(sbs), image_free(ou);
}

/* A w x h view that varies only along y (sbs-half) or only along x (ou-half), so
 * squeezing and stretching along the other axis are exact; plus a linear ramp along
 * the squeezed axis, which the Catmull-Rom stretch reproduces away from the borders. */
static image *half_view(int w, int h, int along_y, uint64_t seed, int ramp) {
    image *im = image_new(w, h);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int t = along_y ? y : x, s = along_y ? x : y;
                nn_real v = ramp ? (nn_real)(10 + 8 * s + 40 * c) : (nn_real)floor(256 * nn_hash_uniform(seed, (uint64_t)(c * 100 + t)));
                im->data[((size_t)c * h + y) * w + x] = v;
            }
    return im;
}

/* Squeezes a view to half width (sbs) or height: each output pixel is the mean of two. */
static image *squeeze(const image *v, int sbs) {
    image *s = sbs ? image_new(v->w / 2, v->h) : image_new(v->w, v->h / 2);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++) {
                nn_real a = sbs ? px(v, c, y, 2 * x) : px(v, c, 2 * y, x);
                nn_real b = sbs ? px(v, c, y, 2 * x + 1) : px(v, c, 2 * y + 1, x);
                s->data[((size_t)c * s->h + y) * s->w + x] = (a + b) / 2;
            }
    return s;
}

Test(stereo, half_frames_split_and_stretch_back) {
    const char *names[2] = {"sbs-half", "ou-half"};
    for (int sbs = 1; sbs >= 0; sbs--) {
        stereo_layout lay;
        cr_assert_eq(stereo_layout_parse(names[!sbs], &lay), 0);
        for (int ramp = 0; ramp < 2; ramp++) {
            int w = 16, h = 12;
            image *l = half_view(w, h, sbs, 40, ramp), *r = half_view(w, h, sbs, 41, ramp);
            if (ramp) /* distinct right view: offset values */
                for (size_t i = 0; i < (size_t)3 * w * h; i++) r->data[i] += 3;
            image *ls = squeeze(l, sbs), *rs = squeeze(r, sbs);
            image *frame = join_views(ls, rs, sbs);
            cr_assert(frame->w == w && frame->h == h, "a half frame has the size of one view");
            char name[64];
            snprintf(name, sizeof name, "%s_%d.png", names[!sbs], ramp);
            write_png(P(name), frame);
            stereo_dataset *ds = stereo_dataset_new();
            cr_assert_eq(stereo_dataset_add(ds, P(name), lay), 0, "%s", nn_last_error());
            image *a, *b;
            cr_assert_eq(stereo_load_pair(ds, 0, &a, &b), 0, "%s", nn_last_error());
            cr_assert(a->w == w && a->h == h && b->w == w && b->h == h, "%s: stretched back to %dx%d, got %dx%d",
                      names[!sbs], w, h, a->w, a->h);
            if (!ramp) {
                assert_images_equal(a, l, 1e-3, "half layout, left");
                assert_images_equal(b, r, 1e-3, "half layout, right");
            } else { /* interior of the stretched axis */
                for (int c = 0; c < 3; c++) /* the cubic's support reaches 3 pixels in */
                    for (int y = sbs ? 0 : 3; y < (sbs ? h : h - 3); y++)
                        for (int x = sbs ? 3 : 0; x < (sbs ? w - 3 : w); x++) {
                            cr_assert_float_eq(px(a, c, y, x), px(l, c, y, x), 1e-2, "%s ramp left (%d,%d)", names[!sbs], x, y);
                            cr_assert_float_eq(px(b, c, y, x), px(r, c, y, x), 1e-2, "%s ramp right", names[!sbs]);
                        }
            }
            image_free(a), image_free(b), image_free(l), image_free(r), image_free(ls), image_free(rs),
                image_free(frame);
            stereo_dataset_free(ds);
        }
    }
}

Test(stereo, listing_errors_name_the_folder_or_file) {
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("nowhere"), STEREO_PAIRS), -1);
    assert_msg("cannot open folder");
    assert_msg("nowhere");

    mkdir_p("empty");
    write_bytes(P("empty/notes.txt"), "x", 1);
    cr_assert_eq(stereo_dataset_add(ds, P("empty"), STEREO_PAIRS), -1);
    assert_msg("no stereo pairs in");
    assert_msg("empty");
    assert_msg("<id>_L.<ext>");
    assert_msg("left/ + right/");
    cr_assert_eq(stereo_dataset_add(ds, P("nowhere.png"), STEREO_SBS), -1);
    assert_msg("cannot open");
    assert_msg("nowhere.png");
    cr_assert_eq(stereo_dataset_add(ds, P("empty"), STEREO_SBS_HALF), -1);
    assert_msg("no frames in");
    assert_msg("sbs-half");

    mkdir_p("lonely");
    image *a = noise(4, 2, 50);
    write_png(P("lonely/ok_L.png"), a), write_png(P("lonely/ok_R.png"), a);
    write_png(P("lonely/solo_L.png"), a);
    cr_assert_eq(stereo_dataset_add(ds, P("lonely"), STEREO_PAIRS), -1);
    assert_msg("lonely/solo_L.png' has no right view");
    assert_msg("solo_R.<ext>");
    cr_assert_eq(ds->n, 0, "a failed add leaves the dataset unchanged");

    mkdir_p("orphan");
    write_png(P("orphan/z_R.jpg.png"), a);
    write_png(P("orphan/q_R.png"), a);
    cr_assert_eq(stereo_dataset_add(ds, P("orphan"), STEREO_PAIRS), -1);
    assert_msg("has no left view");

    mkdir_p("sub"), mkdir_p("sub/left"), mkdir_p("sub/right");
    write_png(P("sub/left/1.png"), a), write_png(P("sub/left/2.png"), a), write_png(P("sub/right/1.png"), a);
    cr_assert_eq(stereo_dataset_add(ds, P("sub"), STEREO_PAIRS), -1);
    assert_msg("sub/left/2.png' has no right view");
    assert_msg("sub/right/2.png");

    mkdir_p("half"), mkdir_p("half/left");
    write_png(P("half/left/1.png"), a);
    cr_assert_eq(stereo_dataset_add(ds, P("half"), STEREO_PAIRS), -1);
    assert_msg("no right/ subfolder");

    stereo_layout lay;
    cr_assert_eq(stereo_layout_parse("side-by-side", &lay), -1);
    assert_msg("unknown layout 'side-by-side'");
    cr_assert_eq(ds->n, 0);
    stereo_dataset_free(ds);
    image_free(a);
}

Test(stereo, loading_errors_name_the_files) {
    image *a = noise(8, 4, 60), *b = noise(9, 4, 61), *odd = noise(9, 5, 62);
    write_png(P("size_L.png"), a), write_png(P("size_R.png"), b);
    write_garbage(P("junk_L.png")), write_png(P("junk_R.png"), a);
    image *big = noise(60, 40, 63);
    write_png(P("trunc_L.png"), a), write_truncated_png(P("trunc_R.png"), big);
    mkdir_p("frames");
    write_png(P("frames/odd.png"), odd);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, tmp_root, STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(stereo_dataset_add(ds, P("frames"), STEREO_SBS), 0, "%s", nn_last_error());
    cr_assert_eq(stereo_dataset_add(ds, P("frames"), STEREO_OU), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, 5); /* junk, size, trunc, odd (sbs), odd (ou) */
    image *l, *r;
    cr_assert_eq(stereo_load_pair(ds, 0, &l, &r), -1);
    cr_assert(!l && !r);
    assert_msg("cannot decode");
    assert_msg("junk_L.png");
    cr_assert_eq(stereo_load_pair(ds, 1, &l, &r), -1);
    assert_msg("size_L.png' is 8x4 but right view '");
    assert_msg("size_R.png' is 9x4");
    cr_assert_eq(stereo_load_pair(ds, 2, &l, &r), -1);
    assert_msg("trunc_R.png");
    cr_assert_eq(stereo_load_pair(ds, 3, &l, &r), -1);
    assert_msg("side-by-side frame");
    assert_msg("odd.png' has an odd width 9");
    cr_assert_eq(stereo_load_pair(ds, 4, &l, &r), -1);
    assert_msg("odd height 5");
    stereo_dataset_free(ds);
    image_free(a), image_free(b), image_free(odd), image_free(big);
}

/* ---- augmentation ---- */

/* A pair whose right view is the left view shifted right by k pixels:
 * R(x) = L(x - k), both cut from one base texture B (L(x) = B(x + k), R(x) = B(x)). */
static void shifted_pair(int w, int h, int k, image **l, image **r, int smooth) {
    image *base = image_new(w + k, h);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w + k; x++)
                base->data[((size_t)c * h + y) * (w + k) + x] =
                    smooth ? (nn_real)(128 + 90 * sin(0.09 * x + 0.3 * y + c))
                           : (nn_real)floor(256 * nn_hash_uniform(90 + c, (uint64_t)(y * 1000 + x)));
    *l = image_crop(base, k, 0, w, h);
    *r = image_crop(base, 0, 0, w, h);
    image_free(base);
}

/* Checks out_right(x) = out_left(x - k) for x >= k, within tol (skipping `edge`
 * columns at both borders). */
static void assert_shift(const nn_real *ol, const nn_real *or_, int w, int h, int k, double tol, int edge,
                         const char *what) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = k + edge; x < w - edge; x++) {
                double a = or_[((size_t)c * h + y) * w + x], b = ol[((size_t)c * h + y) * w + x - k];
                cr_assert(fabs(a - b) <= tol, "%s: right(%d, %d) = %g but left(%d) = %g (shift %d)", what, x, y,
                          a, x - k, b, k);
            }
}

Test(augment, crop_at_scale_one_keeps_the_shift_with_and_without_flip_swap) {
    /* views 80x30, network 48x20 (2.4:1): the largest crop is 72x30; scale 2/3 gives
     * 48x20 crops, so the resize is the identity and pixels can be compared exactly */
    const int k = 3, W = 48, H = 20;
    image *l, *r;
    shifted_pair(80, 30, k, &l, &r, 0);
    nn_real *ol = malloc(3 * W * H * sizeof(nn_real)), *or_ = malloc(3 * W * H * sizeof(nn_real));
    int seen_flip = 0, seen_x = -1, moved = 0;
    for (int flip = 0; flip < 2; flip++) {
        augment_config cfg = {.scale_min = 2.0 / 3, .scale_max = 2.0 / 3, .flip_prob = flip, .jitter = 0};
        for (uint64_t s = 0; s < 12; s++) {
            augment_params p;
            cr_assert_eq(augment_draw(&p, &cfg, 80, 30, W, H, 7, s), 0, "%s", nn_last_error());
            cr_assert(p.w == W && p.h == H, "crop %dx%d", p.w, p.h);
            cr_assert_eq(p.flip, flip);
            if (seen_x >= 0 && p.x != seen_x) moved = 1;
            seen_x = p.x;
            cr_assert_eq(augment_apply(&p, l, r, W, H, ol, or_), 0, "%s", nn_last_error());
            /* the crop itself: naive indexing of the source views */
            const image *src_l = flip ? r : l;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        int sx = flip ? p.x + W - 1 - x : p.x + x;
                        cr_assert_eq(ol[(c * H + y) * W + x], px(src_l, c, p.y + y, sx),
                                     "flip %d: left output (%d,%d) is not the %s crop", flip, x, y,
                                     flip ? "mirrored right" : "left");
                    }
            assert_shift(ol, or_, W, H, k, 0, 0, flip ? "after flip + swap" : "after crop");
            seen_flip += p.flip;
        }
    }
    cr_assert(moved, "random crop positions");
    cr_assert_eq(seen_flip, 12);
    free(ol), free(or_);
    image_free(l), image_free(r);
}

Test(augment, reduction_by_two_halves_the_shift) {
    /* views 200x40, network 48x20: the largest crop 96x40 is reduced by exactly 2, so
     * a shift of 2k source pixels becomes k network pixels (stb's filter is the same
     * at every output pixel); smooth content, borders skipped */
    const int k = 3, W = 48, H = 20;
    image *l, *r;
    shifted_pair(200, 40, 2 * k, &l, &r, 1);
    nn_real *ol = malloc(3 * W * H * sizeof(nn_real)), *or_ = malloc(3 * W * H * sizeof(nn_real));
    augment_config cfg = {.scale_min = 1, .scale_max = 1, .flip_prob = 0.5, .jitter = 0};
    for (uint64_t s = 0; s < 6; s++) {
        augment_params p;
        cr_assert_eq(augment_draw(&p, &cfg, 200, 40, W, H, 3, s), 0);
        cr_assert(p.w == 96 && p.h == 40);
        cr_assert_eq(augment_apply(&p, l, r, W, H, ol, or_), 0, "%s", nn_last_error());
        assert_shift(ol, or_, W, H, k, 1e-3, 3, "2x reduction");
    }
    free(ol), free(or_);
    image_free(l), image_free(r);
}

/* The jitter written out plainly (augment.h): saturation around BT.601 luma,
 * contrast around 127.5, brightness gain, clamp. */
static void naive_jitter(const augment_params *p, const nn_real in[3], double out[3]) {
    double luma = 0.299 * in[0] + 0.587 * in[1] + 0.114 * in[2];
    for (int c = 0; c < 3; c++) {
        double v = luma + p->saturation * (in[c] - luma);
        v = p->brightness * (127.5 + p->contrast * (v - 127.5));
        out[c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
}

Test(augment, colour_jitter_is_identical_on_both_views) {
    const int k = 4, W = 48, H = 20;
    image *l, *r;
    shifted_pair(80, 30, k, &l, &r, 0);
    nn_real *ol = malloc(3 * W * H * sizeof(nn_real)), *or_ = malloc(3 * W * H * sizeof(nn_real));
    augment_config cfg = {.scale_min = 2.0 / 3, .scale_max = 2.0 / 3, .flip_prob = 0.5, .jitter = 0.3};
    for (uint64_t s = 0; s < 8; s++) {
        augment_params p;
        cr_assert_eq(augment_draw(&p, &cfg, 80, 30, W, H, 11, s), 0);
        cr_assert(p.brightness != 1 && p.contrast != 1 && p.saturation != 1);
        cr_assert(fabs(p.brightness - 1) <= 0.3 && fabs(p.contrast - 1) <= 0.3 && fabs(p.saturation - 1) <= 0.3);
        cr_assert_eq(augment_apply(&p, l, r, W, H, ol, or_), 0);
        assert_shift(ol, or_, W, H, k, 0, 0, "jittered pair");
        /* the jitter itself, against the naive formula on the un-jittered crop */
        image *src = p.flip ? r : l;
        for (int y = 0; y < H; y += 3)
            for (int x = 0; x < W; x += 5) {
                int sx = p.flip ? p.x + W - 1 - x : p.x + x;
                nn_real in[3] = {px(src, 0, p.y + y, sx), px(src, 1, p.y + y, sx), px(src, 2, p.y + y, sx)};
                double want[3];
                naive_jitter(&p, in, want);
                for (int c = 0; c < 3; c++)
                    cr_assert_float_eq(ol[(c * H + y) * W + x], want[c], 1e-3, "jitter at (%d,%d,%d)", c, x, y);
            }
    }
    free(ol), free(or_);
    image_free(l), image_free(r);
}

Test(augment, draws_are_deterministic_inside_and_of_the_network_aspect) {
    augment_config cfg = augment_defaults();
    int flips = 0;
    for (uint64_t s = 0; s < 1000; s++) {
        augment_params p, q, o;
        cr_assert_eq(augment_draw(&p, &cfg, 1242, 375, 384, 160, 5, s), 0);
        cr_assert_eq(augment_draw(&q, &cfg, 1242, 375, 384, 160, 5, s), 0);
        cr_assert_eq(augment_draw(&o, &cfg, 1242, 375, 384, 160, 6, s), 0);
        cr_assert(memcmp(&p, &q, sizeof p) == 0, "same (seed, counter), same draw");
        cr_assert(memcmp(&p, &o, sizeof p) != 0, "another seed, another draw");
        cr_assert(p.x >= 0 && p.y >= 0 && p.x + p.w <= 1242 && p.y + p.h <= 375);
        cr_assert(p.h >= (int)(0.6 * 375) - 1 && p.h <= 375, "scale 0.6..1 of the largest crop: h %d", p.h);
        cr_assert(fabs((double)p.w / p.h - 2.4) < 2.4 / p.h, "aspect %dx%d", p.w, p.h);
        flips += p.flip;
    }
    cr_assert(flips > 430 && flips < 570, "flip probability 0.5: %d of 1000", flips);
    augment_params c;
    augment_center(&c, 1242, 375, 384, 160);
    cr_assert(c.w == 900 && c.h == 375 && c.x == 171 && c.y == 0 && !c.flip, "centre %dx%d at %d,%d", c.w, c.h, c.x, c.y);
    augment_center(&c, 400, 400, 384, 160);
    cr_assert(c.w == 400 && c.h == 167 && c.x == 0 && c.y == 116, "tall centre %dx%d at %d,%d", c.w, c.h, c.x, c.y);
    cfg.scale_min = 0;
    augment_params p;
    cr_assert_eq(augment_draw(&p, &cfg, 10, 10, 24, 10, 0, 0), -1);
    assert_msg("crop scale range");
}

/* ---- loader ---- */

/* n pairs of different sizes in tmp_root/<folder>; pair `bad` (if >= 0) has a corrupt left view. */
static stereo_dataset *make_dataset(const char *folder, int n, int bad) {
    mkdir_p(folder);
    for (int i = 0; i < n; i++) {
        char name[128];
        image *l, *r;
        shifted_pair(50 + 7 * i, 24 + 3 * i, 2 + i % 3, &l, &r, 0);
        snprintf(name, sizeof name, "%s/p%02d_L.png", folder, i);
        if (i == bad) write_garbage(P(name));
        else write_png(P(name), l);
        snprintf(name, sizeof name, "%s/p%02d_R.png", folder, i);
        write_png(P(name), r);
        image_free(l), image_free(r);
    }
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P(folder), STEREO_PAIRS), 0, "%s", nn_last_error());
    cr_assert_eq(ds->n, n);
    return ds;
}

static loader_config small_config(int batch, uint64_t seed, int64_t start) {
    loader_config c = loader_defaults();
    c.batch = batch, c.width = 24, c.height = 10, c.seed = seed, c.start_step = start;
    return c;
}

/* Copies of the batches of steps first..first+count-1 (left then right per step). */
static nn_real *collect(loader *ld, int count, int64_t first, int **pairs) {
    size_t per = 0;
    nn_real *all = NULL;
    for (int s = 0; s < count; s++) {
        loader_batch b;
        cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
        cr_assert_eq(b.step, first + s);
        per = (size_t)b.n * 3 * b.h * b.w;
        if (!all) all = malloc(2 * per * count * sizeof(nn_real)), *pairs = malloc((size_t)b.n * count * sizeof(int));
        memcpy(all + 2 * per * s, b.left, per * sizeof(nn_real));
        memcpy(all + 2 * per * s + per, b.right, per * sizeof(nn_real));
        memcpy(*pairs + (size_t)b.n * s, b.pair, (size_t)b.n * sizeof(int));
    }
    return all;
}

Test(loader, batch_of_a_step_depends_only_on_seed_and_step) {
    stereo_dataset *ds = make_dataset("set", 5, -1);
    const int N = 4;
    size_t per = (size_t)N * 3 * 10 * 24;
    loader_config a = small_config(N, 42, 0);
    loader *la = loader_create(ds, &a);
    cr_assert_not_null(la, "%s", nn_last_error());
    int *pa = NULL, *pb = NULL, *pc = NULL;
    nn_real *A = collect(la, 6, 0, &pa);
    loader_free(la);
    /* resumed at step 3, another thread count, no cache: steps 3..5 identical */
    loader_config b = small_config(N, 42, 3);
    b.threads = 2, b.cache_bytes = 0;
    loader *lb = loader_create(ds, &b);
    cr_assert_not_null(lb, "%s", nn_last_error());
    nn_real *B = collect(lb, 3, 3, &pb);
    loader_free(lb);
    cr_assert(memcmp(A + 2 * per * 3, B, 2 * per * 3 * sizeof(nn_real)) == 0, "resumed batches differ");
    cr_assert(memcmp(pa + N * 3, pb, 3 * N * sizeof(int)) == 0);
    /* every epoch (5 samples) is a permutation of the 5 pairs */
    for (int e = 0; e < 4; e++) {
        int seen[5] = {0};
        for (int j = 0; j < 5; j++) seen[pa[5 * e + j]]++;
        for (int j = 0; j < 5; j++) cr_assert_eq(seen[j], 1, "epoch %d: pair %d seen %d times", e, j, seen[j]);
    }
    /* another seed: other batches */
    loader_config c = small_config(N, 43, 0);
    loader *lc = loader_create(ds, &c);
    nn_real *C = collect(lc, 1, 0, &pc);
    loader_free(lc);
    cr_assert(memcmp(A, C, 2 * per * sizeof(nn_real)) != 0, "seed changes nothing");
    for (size_t i = 0; i < 2 * per * 6; i++) cr_assert(A[i] >= 0 && A[i] <= 255);
    free(A), free(B), free(C), free(pa), free(pb), free(pc);
    stereo_dataset_free(ds);
}

Test(loader, evaluation_mode_is_the_centre_crop) {
    stereo_dataset *ds = make_dataset("set", 3, -1);
    loader_config cfg = small_config(3, 9, 0);
    cfg.augment = 0, cfg.sequential = 1, cfg.prescale = 0;
    loader *ld = loader_create(ds, &cfg);
    cr_assert_not_null(ld, "%s", nn_last_error());
    loader_batch b;
    cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
    size_t per = 3 * 10 * 24;
    nn_real *wl = malloc(per * sizeof(nn_real)), *wr = malloc(per * sizeof(nn_real));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(b.pair[i], i);
        image *l, *r;
        cr_assert_eq(stereo_load_pair(ds, i, &l, &r), 0);
        augment_params p;
        augment_center(&p, l->w, l->h, 24, 10);
        cr_assert_eq(augment_apply(&p, l, r, 24, 10, wl, wr), 0);
        cr_assert(memcmp(wl, b.left + i * per, per * sizeof(nn_real)) == 0, "sample %d left", i);
        cr_assert(memcmp(wr, b.right + i * per, per * sizeof(nn_real)) == 0, "sample %d right", i);
        image_free(l), image_free(r);
    }
    free(wl), free(wr);
    loader_free(ld);
    stereo_dataset_free(ds);
}

Test(loader, prescaling_a_large_pair_changes_little) {
    /* a 200x90 pair for a 24x10 network: prescale reduces it to 48x22 first (the
     * largest crop, 200x83, is over 2x the network height); content varies slowly
     * along x only, so the one-step and two-step reductions agree closely */
    mkdir_p("big");
    image *l = image_new(200, 90), *r = image_new(200, 90);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 90; y++)
            for (int x = 0; x < 200; x++) {
                l->data[(c * 90 + y) * 200 + x] = (nn_real)lrint(128 + 90 * sin(0.03 * x + c));
                r->data[(c * 90 + y) * 200 + x] = (nn_real)lrint(128 + 90 * sin(0.03 * (x - 8) + c));
            }
    write_png(P("big/a_L.png"), l), write_png(P("big/a_R.png"), r);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("big"), STEREO_PAIRS), 0);
    nn_real *out[2][2];
    for (int pre = 0; pre < 2; pre++) {
        loader_config cfg = small_config(1, 1, 0);
        cfg.augment = 0, cfg.prescale = pre;
        loader *ld = loader_create(ds, &cfg);
        loader_batch b;
        cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
        for (int v = 0; v < 2; v++) {
            out[pre][v] = malloc(3 * 240 * sizeof(nn_real));
            memcpy(out[pre][v], v ? b.right : b.left, 3 * 240 * sizeof(nn_real));
        }
        loader_free(ld);
    }
    double worst = 0;
    int differ = 0;
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 3 * 240; i++) {
            double d = fabs((double)out[0][v][i] - out[1][v][i]);
            worst = d > worst ? d : worst;
            differ |= d > 0;
        }
    cr_assert(differ, "prescale had no effect");
    cr_assert(worst < 3, "prescaled batch differs by %g (0..255)", worst);
    for (int k = 0; k < 4; k++) free(out[k / 2][k % 2]);
    image_free(l), image_free(r);
    stereo_dataset_free(ds);
}

Test(loader, a_corrupt_pair_is_skipped_with_one_warning) {
    stereo_dataset *ds = make_dataset("set", 4, 2);
    loader_config cfg = small_config(8, 5, 0);
    loader *ld = loader_create(ds, &cfg);
    cr_assert_not_null(ld, "%s", nn_last_error());
    cr_assert_eq(loader_warning_count(ld), 0);
    cr_assert_str_empty(loader_last_warning(ld));
    for (int s = 0; s < 5; s++) {
        loader_batch b;
        cr_assert_eq(loader_next(ld, &b), 0, "%s", nn_last_error());
        for (int i = 0; i < b.n; i++) cr_assert_neq(b.pair[i], 2, "the bad pair was used");
        cr_assert_eq(loader_warning_count(ld), 1, "one warning for one bad pair, step %d", s);
    }
    cr_assert(strstr(loader_last_warning(ld), "p02_L.png"), "warning: %s", loader_last_warning(ld));
    cr_assert(strstr(loader_last_warning(ld), "cannot decode"), "warning: %s", loader_last_warning(ld));
    loader_free(ld);

    /* the same batches with the skip, from a second loader */
    loader *l2 = loader_create(ds, &cfg);
    loader_batch b;
    cr_assert_eq(loader_next(l2, &b), 0);
    cr_assert_eq(loader_warning_count(l2), 1);
    loader_free(l2);
    stereo_dataset_free(ds);
}

Test(loader, every_pair_bad_is_an_error) {
    mkdir_p("bad");
    write_garbage(P("bad/a_L.png")), write_garbage(P("bad/a_R.png"));
    image *x = noise(10, 5, 1), *y = noise(11, 5, 2);
    write_png(P("bad/b_L.png"), x), write_png(P("bad/b_R.png"), y);
    stereo_dataset *ds = stereo_dataset_new();
    cr_assert_eq(stereo_dataset_add(ds, P("bad"), STEREO_PAIRS), 0);
    loader_config cfg = small_config(2, 1, 0);
    cfg.threads = 2;
    loader *ld = loader_create(ds, &cfg);
    loader_batch b;
    cr_assert_eq(loader_next(ld, &b), -1);
    assert_msg("all 2 pairs failed to load");
    cr_assert_eq(loader_next(ld, &b), -1, "the failure sticks");
    loader_free(ld);

    stereo_dataset *empty = stereo_dataset_new();
    cr_assert_null(loader_create(empty, &cfg));
    assert_msg("no pairs");
    cfg.batch = 0;
    cr_assert_null(loader_create(ds, &cfg));
    assert_msg("bad configuration");
    stereo_dataset_free(ds), stereo_dataset_free(empty);
    image_free(x), image_free(y);
}
