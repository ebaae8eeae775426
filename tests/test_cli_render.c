/* The rendering options through the real binary: --strength 0 writes the left view,
 * --swap exchanges the views, --render blend and warp both convert, deep3d eval's JSON
 * keys, and the blend renderer's memory on a very wide image (windows in bounded
 * groups). Fixtures as in tests/test_cli.c (tiny model, small images). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <stb_image.h>
#include <stb_image_write.h>

#include "../deep3d/model.h"
#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_cli_render"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }
#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})

TestSuite(cli_render, .init = make_root, .fini = remove_root, .timeout = 120);

/* A tiny model file (released, 64x32, width_div 16, D = 9 from -4), random weights: its
 * disparities are small but not zero. */
static void tiny_model(const char *name) {
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 64, cfg.height = 32, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 16;
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, 1), 0, "%s", nn_last_error());
    cr_assert_eq(deep3d_model_save(&m, P(name), 1), 0, "%s", nn_last_error());
    deep3d_model_free(&m);
}

/* A smooth colour pattern, w x h RGB8. */
static unsigned char *pattern(int w, int h) {
    unsigned char *px = malloc((size_t)3 * w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[3 * ((size_t)y * w + x) + c] = (unsigned char)(128 + 100 * sin(0.3 * x + 0.2 * y + 2 * c));
    return px;
}

static unsigned char *load(const char *name, int *w, int *h) {
    int n;
    unsigned char *px = stbi_load(P(name), w, h, &n, 3);
    cr_assert_not_null(px, "cannot read %s", name);
    return px;
}

Test(cli_render, strength_0_writes_the_left_view_and_swap_exchanges_the_views) {
    tiny_model("m.d3w");
    const int w = 90, h = 40;
    unsigned char *in = pattern(w, h);
    cr_assert(stbi_write_png(P("a.png"), w, h, 3, in, 3 * w));
    for (int mode = 0; mode < 2; mode++) {
        tc_result r;
        RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P(mode ? "b" : "w"),
            "--render", mode ? "blend" : "warp", "--strength", "0", "--formats", "right,sbs", P("a.png"));
        cr_assert(r.exited && r.status == 0, "%s", r.err);
        tc_free(&r);
        int rw, rh;
        unsigned char *right = load(mode ? "b/a_right.png" : "w/a_right.png", &rw, &rh);
        cr_assert(rw == w && rh == h && memcmp(right, in, (size_t)3 * w * h) == 0,
                  "%s, strength 0: the right view is not the left view", mode ? "blend" : "warp");
        free(right);
    }
    /* --swap: the right view on the left of the side-by-side */
    tc_result r;
    RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("s"), "--formats",
        "right,sbs", "--swap", P("a.png"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    int sw, sh, rw, rh;
    unsigned char *sbs = load("s/a_sbs.png", &sw, &sh), *right = load("s/a_right.png", &rw, &rh);
    cr_assert(sw == 2 * w && sh == h);
    int differs = 0;
    for (int y = 0; y < h; y++) {
        cr_assert(memcmp(sbs + (size_t)3 * y * sw, right + (size_t)3 * y * w, (size_t)3 * w) == 0, "row %d: left half is not the right view", y);
        cr_assert(memcmp(sbs + (size_t)3 * (y * sw + w), in + (size_t)3 * y * w, (size_t)3 * w) == 0, "row %d: right half is not the left view", y);
        differs |= memcmp(right + (size_t)3 * y * w, in + (size_t)3 * y * w, (size_t)3 * w) != 0;
    }
    cr_assert(differs, "the right view equals the left view: the swap test would not see a mix-up");
    free(sbs), free(right), free(in);
}

/* The number after "key": in a JSON text (the first occurrence). */
static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no %s in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

Test(cli_render, eval_json_has_every_key_at_both_resolutions) {
    tiny_model("m.d3w");
    cr_assert_eq(mkdir(P("d"), 0755), 0);
    const int w = 100, h = 50;
    unsigned char *l = pattern(w, h), *r8 = malloc((size_t)3 * w * h);
    for (int y = 0; y < h; y++) /* the right view: the left shifted 3 px left */
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) r8[3 * ((size_t)y * w + x) + c] = l[3 * ((size_t)y * w + (x + 3 < w ? x + 3 : w - 1)) + c];
    cr_assert(stbi_write_png(P("d/p_L.png"), w, h, 3, l, 3 * w) && stbi_write_png(P("d/p_R.png"), w, h, 3, r8, 3 * w));
    free(l), free(r8);
    const char *keys[] = {"mae_model", "mae_identity", "mae_global", "ssim_model", "ssim_identity", "ssim_global",
                          "detail_model_median", "detail_model_min"};
    for (int res = 0; res < 2; res++) {
        tc_result r;
        RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--data", P("d"), "--json",
            "--resolution", res ? "source" : "network");
        cr_assert(r.exited && r.status == 0, "%s", r.err);
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            double v = json_number(r.out, keys[k]);
            cr_assert(isfinite(v), "%s is %g", keys[k], v);
        }
        cr_assert_not_null(strstr(r.out, "\"rows\": [{\"name\": \"p_L\""), "no per-pair row: %s", r.out);
        /* identity: the true right view is the left shifted by 3, so identity's MAE is
         * well above 0, and the pair's own detail kept is about 1 */
        cr_assert_gt(json_number(r.out, "mae_identity"), 10);
        const double true_detail = json_number(r.out, "detail_true");
        cr_assert(true_detail > 0.9 && true_detail < 1.1, "detail of the true right view %g", true_detail);
        if (res) cr_assert_eq(json_number(r.out, "width"), w);
        tc_free(&r);
    }
}

Test(cli_render, blend_rendering_of_a_very_wide_image_holds_few_windows) {
    /* 100000 x 20 at a 64x32 network: windows of 40 x 20, 3334 of them. All their
     * probabilities at once would be 3334 x 9 x 32 x 64 floats = 246 MB; the bounded path
     * holds at most 3 (0.2 MB). The image itself: left, right (3 planes each) and the
     * disparity = 7 x 100000 x 20 floats = 56 MB, plus the PNG codec's buffers. Bound:
     * the peak of the same conversion of a 200 x 20 image plus 80 MB (the CUDA build's
     * libraries alone take some 200 MB of resident memory at start, hence the baseline). */
    tiny_model("m.d3w");
    long peak[2];
    for (int i = 0; i < 2; i++) {
        const int w = i ? 100000 : 200, h = 20;
        unsigned char *in = pattern(w, h);
        cr_assert(stbi_write_png(P(i ? "wide.png" : "small.png"), w, h, 3, in, 3 * w));
        free(in);
        tc_result r;
        RUN(&r, "infer", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--out", P("o"), "--render",
            "blend", "--formats", "right", P(i ? "wide.png" : "small.png"));
        cr_assert(r.exited && r.status == 0, "%s", r.err);
        peak[i] = r.maxrss_kib;
        tc_free(&r);
    }
    cr_log_info("peak RSS of deep3d infer --render blend: 200 x 20 %ld KiB, 100000 x 20 %ld KiB", peak[0], peak[1]);
    cr_assert_lt(peak[1], peak[0] + 80 * 1024, "peak RSS %ld KiB vs %ld KiB: the windows' probabilities are not bounded",
                 peak[1], peak[0]);
}
