/* infer/layouts: every layout's geometry and colour channels on synthetic frames, the
 * anaglyph methods against their definitions (layouts.h), the stereo signalling
 * tables; infer/letterbox: bars found on synthetic frames and the picture converted
 * alone (infer_render_boxed). Expected values come from the definitions in the headers,
 * computed here independently (double precision, plain loops). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../deep3d/model.h"
#include "../infer/infer.h"
#include "../infer/layouts.h"
#include "../infer/letterbox.h"
#include "testutil.h"

/* A (3, H, W) view whose every value names its channel, row and column:
 * v = base + 50 c + 7 y + x (mod 200), so any misplaced pixel or channel shows. */
static nn_real *coded_view(int H, int W, int base) {
    nn_real *v = malloc((size_t)3 * H * W * sizeof *v);
    cr_assert_not_null(v);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) v[((size_t)c * H + y) * W + x] = (nn_real)((base + 50 * c + 7 * y + x) % 200);
    return v;
}

static nn_real *constant_view(int H, int W, const int rgb[3]) {
    nn_real *v = malloc((size_t)3 * H * W * sizeof *v);
    cr_assert_not_null(v);
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < (size_t)H * W; i++) v[(size_t)c * H * W + i] = (nn_real)rgb[c];
    return v;
}

static uint8_t *compose(int kind, const layout_input *in, int *ow, int *oh) {
    cr_assert_eq(layout_size(kind, in->W, in->H, ow, oh), 0, "%s", nn_last_error());
    uint8_t *out = malloc((size_t)3 * *ow * *oh);
    cr_assert_not_null(out);
    cr_assert_eq(layout_compose(out, kind, in), 0, "%s: %s", layout_name(kind), nn_last_error());
    return out;
}

/* out pixel (x, y) channel c == view (c, y - y0, x - x0) for the view's rectangle. */
static void expect_view_at(const uint8_t *out, int ow, const nn_real *view, int H, int W, int x0, int y0,
                           const char *what) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int got = out[3 * ((size_t)(y0 + y) * ow + x0 + x) + c];
                int want = (int)view[((size_t)c * H + y) * W + x];
                cr_assert_eq(got, want, "%s: channel %d at (x %d, y %d): %d, expected %d", what, c, x, y, got, want);
            }
}

Test(layouts, sizes_follow_the_table) {
    const struct {
        int kind, w, h;
    } want[] = {{LAYOUT_SBS, 10, 3},     {LAYOUT_SBS_HALF, 6, 3}, {LAYOUT_OU, 5, 6},    {LAYOUT_OU_HALF, 5, 4},
                {LAYOUT_ANAGLYPH, 5, 3}, {LAYOUT_CROSS, 10, 3},   {LAYOUT_RIGHT, 5, 3}, {LAYOUT_DEPTH, 5, 3},
                {LAYOUT_RGBD, 10, 3},    {LAYOUT_WIGGLE, 5, 3}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int w, h;
        cr_assert_eq(layout_size(want[i].kind, 5, 3, &w, &h), 0);
        cr_assert(w == want[i].w && h == want[i].h, "%s of 5x3: %dx%d, expected %dx%d", layout_name(want[i].kind), w,
                  h, want[i].w, want[i].h);
    }
    int w, h;
    cr_assert_eq(layout_size(LAYOUT_SBS, 0, 3, &w, &h), -1, "a zero width must fail");
}

Test(layouts, full_layouts_place_each_view_and_channel) {
    const int H = 4, W = 6;
    nn_real *L = coded_view(H, W, 0), *R = coded_view(H, W, 100);
    layout_input in = {L, R, NULL, H, W, 9, -4, 1.0, ANAGLYPH_DUBOIS, 0};
    int ow, oh;
    uint8_t *o = compose(LAYOUT_SBS, &in, &ow, &oh);
    expect_view_at(o, ow, L, H, W, 0, 0, "sbs left half"), expect_view_at(o, ow, R, H, W, W, 0, "sbs right half");
    free(o);
    o = compose(LAYOUT_CROSS, &in, &ow, &oh);
    expect_view_at(o, ow, R, H, W, 0, 0, "cross left half"), expect_view_at(o, ow, L, H, W, W, 0, "cross right half");
    free(o);
    o = compose(LAYOUT_OU, &in, &ow, &oh);
    expect_view_at(o, ow, L, H, W, 0, 0, "ou top"), expect_view_at(o, ow, R, H, W, 0, H, "ou bottom");
    free(o);
    o = compose(LAYOUT_RIGHT, &in, &ow, &oh);
    expect_view_at(o, ow, R, H, W, 0, 0, "right");
    free(o);
    /* swap: the views trade places in the stereo layouts, not in `right` */
    in.swap = 1;
    o = compose(LAYOUT_SBS, &in, &ow, &oh);
    expect_view_at(o, ow, R, H, W, 0, 0, "swapped sbs left half"), expect_view_at(o, ow, L, H, W, W, 0, "swapped sbs");
    free(o);
    o = compose(LAYOUT_OU, &in, &ow, &oh);
    expect_view_at(o, ow, R, H, W, 0, 0, "swapped ou top");
    free(o);
    o = compose(LAYOUT_RIGHT, &in, &ow, &oh);
    expect_view_at(o, ow, R, H, W, 0, 0, "right ignores swap");
    free(o), free(L), free(R);
}

/* Constant views stay constant under any resampling whose weights sum to 1. */
Test(layouts, half_layouts_squeeze_each_view_into_its_half) {
    const int H = 5, W = 7, lc[3] = {200, 10, 50}, rc[3] = {5, 100, 250};
    nn_real *L = constant_view(H, W, lc), *R = constant_view(H, W, rc);
    layout_input in = {L, R, NULL, H, W, 9, -4, 1.0, ANAGLYPH_DUBOIS, 0};
    int ow, oh;
    uint8_t *o = compose(LAYOUT_SBS_HALF, &in, &ow, &oh);
    cr_assert(ow == 8 && oh == 5);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < 3; c++)
                cr_assert_eq(o[3 * (y * ow + x) + c], x < 4 ? lc[c] : rc[c], "sbs-half (%d, %d) channel %d", x, y, c);
    free(o);
    o = compose(LAYOUT_OU_HALF, &in, &ow, &oh);
    cr_assert(ow == 7 && oh == 6);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < 3; c++)
                cr_assert_eq(o[3 * (y * ow + x) + c], y < 3 ? lc[c] : rc[c], "ou-half (%d, %d) channel %d", x, y, c);
    free(o), free(L), free(R);
    int n, d;
    layout_sar_factor(LAYOUT_SBS_HALF, &n, &d);
    cr_assert(n == 2 && d == 1, "sbs-half pixel aspect factor %d/%d", n, d);
    layout_sar_factor(LAYOUT_OU_HALF, &n, &d);
    cr_assert(n == 1 && d == 2, "ou-half pixel aspect factor %d/%d", n, d);
    layout_sar_factor(LAYOUT_SBS, &n, &d);
    cr_assert(n == 1 && d == 1);
}

/* A half view is the source resized by render_resize to half width. */
Test(layouts, half_view_is_the_resized_view) {
    const int H = 3, W = 8;
    nn_real *L = coded_view(H, W, 3), *R = coded_view(H, W, 90), *half = malloc((size_t)3 * H * 4 * sizeof *half);
    cr_assert_eq(render_resize(half, L, 3, H, W, H, 4), 0);
    for (size_t i = 0; i < (size_t)3 * H * 4; i++) half[i] = (nn_real)floor(half[i] + 0.5);
    layout_input in = {L, R, NULL, H, W, 9, -4, 1.0, ANAGLYPH_DUBOIS, 0};
    int ow, oh;
    uint8_t *o = compose(LAYOUT_SBS_HALF, &in, &ow, &oh);
    expect_view_at(o, ow, half, H, 4, 0, 0, "sbs-half left half");
    free(o), free(L), free(R), free(half);
}

static double bt601(const uint8_t p[3]) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }
static double srgb_to_linear(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }
static double linear_to_srgb(double x) { return x <= 0.0031308 ? 12.92 * x : 1.055 * pow(x, 1 / 2.4) - 0.055; }

/* Dubois (web-page matrices, layouts.h), in linear light, written plainly in double. */
static void dubois_reference(double out[3], const uint8_t l[3], const uint8_t r[3]) {
    static const double ML[3][3] = {{0.437, 0.449, 0.164}, {-0.062, -0.062, -0.024}, {-0.048, -0.050, -0.017}};
    static const double MR[3][3] = {{-0.011, -0.032, -0.007}, {0.377, 0.761, 0.009}, {-0.026, -0.093, 1.234}};
    for (int c = 0; c < 3; c++) {
        double v = 0;
        for (int k = 0; k < 3; k++) v += ML[c][k] * srgb_to_linear(l[k] / 255.0) + MR[c][k] * srgb_to_linear(r[k] / 255.0);
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        out[c] = 255 * linear_to_srgb(v);
    }
}

Test(layouts, anaglyph_methods_follow_their_definitions) {
    for (int i = 0; i < 2000; i++) {
        uint8_t l[3], r[3], o[3];
        for (int c = 0; c < 3; c++)
            l[c] = (uint8_t)(256 * nn_hash_uniform(11, 6 * i + c)), r[c] = (uint8_t)(256 * nn_hash_uniform(11, 6 * i + 3 + c));
        layout_anaglyph_pixel(o, l, r, ANAGLYPH_COLOR);
        cr_assert(o[0] == l[0] && o[1] == r[1] && o[2] == r[2], "color: red from left, green and blue from right");
        layout_anaglyph_pixel(o, l, r, ANAGLYPH_HALF_COLOR);
        cr_assert(fabs(o[0] - bt601(l)) <= 0.5 + 1e-4 && o[1] == r[1] && o[2] == r[2], "half-color at %d", i);
        layout_anaglyph_pixel(o, l, r, ANAGLYPH_GRAY);
        cr_assert(fabs(o[0] - bt601(l)) <= 0.5 + 1e-4 && fabs(o[1] - bt601(r)) <= 0.5 + 1e-4 && o[1] == o[2], "gray at %d", i);
        layout_anaglyph_pixel(o, l, r, ANAGLYPH_DUBOIS);
        double want[3];
        dubois_reference(want, l, r);
        for (int c = 0; c < 3; c++)
            cr_assert(fabs(o[c] - want[c]) <= 0.5 + 1e-3, "dubois at %d channel %d: %d, expected %.3f (l %d %d %d, r %d %d %d)",
                      i, c, o[c], want[c], l[0], l[1], l[2], r[0], r[1], r[2]);
    }
    /* in linear light, not on the encoded values: a grey left view over black gives
     * 255 * srgb(1.050 * linear(128/255)) = 130.9 -> 131 in red, where the same matrix
     * on the encoded values would give 1.050 * 128 = 134 */
    uint8_t grey[3] = {128, 128, 128}, black[3] = {0, 0, 0}, o[3];
    layout_anaglyph_pixel(o, grey, black, ANAGLYPH_DUBOIS);
    cr_assert_eq(o[0], 131, "dubois red of grey | black: %d", o[0]);
    /* the rows of M_L + M_R sum to 1.000, 0.999, 1.000: grey stays grey */
    layout_anaglyph_pixel(o, grey, grey, ANAGLYPH_DUBOIS);
    cr_assert(o[0] == 128 && o[1] == 128 && o[2] == 128, "dubois of grey | grey: %d %d %d", o[0], o[1], o[2]);
}

Test(layouts, anaglyph_layout_applies_the_method_per_pixel) {
    const int H = 3, W = 5;
    nn_real *L = coded_view(H, W, 0), *R = coded_view(H, W, 60);
    for (int m = 0; m < ANAGLYPH_COUNT; m++) {
        layout_input in = {L, R, NULL, H, W, 9, -4, 1.0, m, 0};
        int ow, oh;
        uint8_t *o = compose(LAYOUT_ANAGLYPH, &in, &ow, &oh);
        for (int i = 0; i < H * W; i++) {
            uint8_t l[3] = {(uint8_t)L[i], (uint8_t)L[H * W + i], (uint8_t)L[2 * H * W + i]};
            uint8_t r[3] = {(uint8_t)R[i], (uint8_t)R[H * W + i], (uint8_t)R[2 * H * W + i]}, want[3];
            layout_anaglyph_pixel(want, l, r, m);
            cr_assert(!memcmp(o + 3 * i, want, 3), "%s at pixel %d", anaglyph_name(m), i);
        }
        free(o);
    }
    free(L), free(R);
}

/* depth: v = 255 (dmax s - d) / ((dmax - dmin) s), clamped (render.h); rgbd: the left
 * view, then the depth. */
Test(layouts, depth_and_rgbd_are_the_grey_disparity) {
    const int H = 2, W = 6, D = 9, dmin = -4;
    const double s = 2;
    nn_real *L = coded_view(H, W, 0), *R = coded_view(H, W, 60), disp[12];
    for (int i = 0; i < H * W; i++) disp[i] = (nn_real)(-10 + 2 * i); /* -10 .. 12 source px: beyond both ends */
    layout_input in = {L, R, disp, H, W, D, dmin, s, ANAGLYPH_DUBOIS, 1};
    int ow, oh;
    uint8_t *o = compose(LAYOUT_DEPTH, &in, &ow, &oh), *rgbd = compose(LAYOUT_RGBD, &in, &ow, &oh);
    const double dmax = dmin + D - 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double v = 255 * (dmax * s - disp[y * W + x]) / ((dmax - dmin) * s);
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            const int want = (int)floor(v + 0.5);
            for (int c = 0; c < 3; c++) {
                cr_assert_eq(o[3 * (y * W + x) + c], want, "depth (%d, %d) channel %d", x, y, c);
                cr_assert_eq(rgbd[3 * (y * 2 * W + W + x) + c], want, "rgbd depth half (%d, %d)", x, y);
            }
        }
    expect_view_at(rgbd, 2 * W, L, H, W, 0, 0, "rgbd image half (the left view even with swap)");
    cr_assert_eq(disp[0] < -4 * s && o[0] == 255, 1, "the nearest is white");
    in.disp = NULL;
    uint8_t buf[3 * 12];
    cr_assert_eq(layout_compose(buf, LAYOUT_DEPTH, &in), -1, "depth without a disparity map must fail");
    free(o), free(rgbd), free(L), free(R);
}

Test(layouts, names_suffixes_and_stereo_signalling) {
    for (int k = 0; k < LAYOUT_COUNT; k++) cr_assert_eq(layout_parse(layout_name(k)), k);
    cr_assert_eq(layout_parse("bogus"), -1);
    cr_assert(strstr(nn_last_error(), "bogus") && strstr(nn_last_error(), "sbs-half"), "%s", nn_last_error());
    unsigned mask;
    cr_assert_eq(layout_parse_list("sbs,ou,wiggle", &mask), 0);
    cr_assert_eq(mask, (1u << LAYOUT_SBS) | (1u << LAYOUT_OU) | (1u << LAYOUT_WIGGLE));
    cr_assert_eq(layout_parse_list("sbs,,ou", &mask), -1, "an empty entry must fail");
    /* iw3's suffixes (layouts.h) */
    cr_assert_str_eq(layout_video_suffix(LAYOUT_SBS), "_LRF_Full_SBS");
    cr_assert_str_eq(layout_video_suffix(LAYOUT_SBS_HALF), "_LR");
    cr_assert_str_eq(layout_video_suffix(LAYOUT_OU), "_TBF_fulltb");
    cr_assert_str_eq(layout_video_suffix(LAYOUT_OU_HALF), "_TB");
    cr_assert_str_eq(layout_video_suffix(LAYOUT_CROSS), "_RLF_cross");
    cr_assert_str_eq(layout_video_suffix(LAYOUT_ANAGLYPH), "_redcyan");
    cr_assert_null(layout_video_suffix(LAYOUT_WIGGLE));
    /* Matroska StereoMode values (RFC 9559) and ffmpeg's names */
    const char *name;
    cr_assert(layout_stereo_mode(LAYOUT_SBS_HALF, 0, &name) == 1 && !strcmp(name, "left_right"));
    cr_assert(layout_stereo_mode(LAYOUT_OU, 0, &name) == 3 && !strcmp(name, "top_bottom"));
    cr_assert(layout_stereo_mode(LAYOUT_CROSS, 0, &name) == 11 && !strcmp(name, "right_left"));
    cr_assert(layout_stereo_mode(LAYOUT_SBS, 1, &name) == 11 && !strcmp(name, "right_left"));
    cr_assert(layout_stereo_mode(LAYOUT_OU_HALF, 1, &name) == 2 && !strcmp(name, "bottom_top"));
    cr_assert(layout_stereo_mode(LAYOUT_ANAGLYPH, 0, &name) == 0 && name == NULL);
    /* H.264 frame packing arrangement types (Table D-8) */
    cr_assert_eq(layout_frame_packing(LAYOUT_SBS, 0), 3);
    cr_assert_eq(layout_frame_packing(LAYOUT_SBS_HALF, 0), 3);
    cr_assert_eq(layout_frame_packing(LAYOUT_OU_HALF, 0), 4);
    cr_assert_eq(layout_frame_packing(LAYOUT_SBS, 1), -1, "x264 cannot mark the right view first");
    cr_assert_eq(layout_frame_packing(LAYOUT_CROSS, 0), -1);
}

/* ---------------------------------------------------------------- letterbox */

/* A (3, H, W) frame of texture (60..220) with black bands of `top`, `bottom` rows and
 * `left`, `right` columns whose values are noise in 0..noise. */
static nn_real *barred(int H, int W, int top, int bottom, int left, int right, int noise, uint64_t seed) {
    nn_real *f = malloc((size_t)3 * H * W * sizeof *f);
    cr_assert_not_null(f);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)c * H + y) * W + x;
                int bar = y < top || y >= H - bottom || x < left || x >= W - right;
                f[i] = (nn_real)(bar ? floor((noise + 1) * nn_hash_uniform(seed, i)) : 60 + 160 * nn_hash_uniform(seed, i));
            }
    return f;
}

static void expect_box(int H, int W, int top, int bottom, int left, int right, int noise, letterbox want, const char *what) {
    nn_real *f = barred(H, W, top, bottom, left, right, noise, 5);
    letterbox b;
    letterbox_detect(&b, f, H, W);
    cr_assert(b.x0 == want.x0 && b.y0 == want.y0 && b.w == want.w && b.h == want.h,
              "%s: box (%d, %d) %dx%d, expected (%d, %d) %dx%d", what, b.x0, b.y0, b.w, b.h, want.x0, want.y0, want.w,
              want.h);
    free(f);
}

Test(letterbox, finds_bands_by_cropdetects_rule) {
    expect_box(48, 64, 6, 6, 0, 0, 0, (letterbox){0, 6, 64, 36}, "letterbox, pure black");
    /* noise 0..40 has mean 20 <= 24: still black for cropdetect's rule */
    expect_box(48, 64, 6, 6, 0, 0, 40, (letterbox){0, 6, 64, 36}, "letterbox, codec noise");
    /* noise 0..60 (mean 30 > 24) is picture */
    expect_box(48, 64, 6, 6, 0, 0, 60, (letterbox){0, 0, 64, 48}, "bright noise is no bar");
    expect_box(48, 64, 0, 0, 8, 8, 0, (letterbox){8, 0, 48, 48}, "pillarbox");
    expect_box(48, 64, 4, 4, 6, 6, 0, (letterbox){6, 4, 52, 40}, "windowbox");
    /* unequal bands: the smaller on both sides */
    expect_box(48, 64, 8, 5, 0, 0, 0, (letterbox){0, 5, 64, 38}, "unequal bands");
    /* a dark top with no band at the bottom is not a letterbox */
    expect_box(48, 64, 10, 0, 0, 0, 0, (letterbox){0, 0, 64, 48}, "dark top only");
    /* a black frame has no bars (the picture would be less than half) */
    expect_box(48, 64, 24, 24, 0, 0, 0, (letterbox){0, 0, 64, 48}, "black frame");
    /* one row is below max(2, 1% of 48): no bar */
    expect_box(48, 64, 1, 1, 0, 0, 0, (letterbox){0, 0, 64, 48}, "one-row band");
}

/* The tiny model of tc_write_tiny_model, loaded on the CPU. */
static void tiny_model(deep3d_model *m) {
    char dir[64];
    tu_tmpdir(dir, "deep3d_test_layouts");
    const char *path = tu_join(dir, "m.d3w");
    tc_write_tiny_model(path);
    cr_assert_eq(deep3d_model_load(m, path, NN_CPU), 0, "%s", nn_last_error());
    tu_rmtree(dir);
}

/* The picture inside the bars is converted alone, exactly as a frame of its own; the
 * bars are the same in both views and have disparity 0. */
Test(letterbox, boxed_render_converts_the_picture_and_copies_the_bars) {
    deep3d_model m;
    tiny_model(&m);
    render_config opts;
    render_config_default(&opts);
    const render_config cfg = infer_render_config(&m, &opts);
    const int H = 48, W = 64;
    nn_real *f = barred(H, W, 8, 8, 0, 0, 0, 9);
    letterbox b;
    letterbox_detect(&b, f, H, W);
    cr_assert(b.y0 == 8 && b.h == 32 && b.w == 64);
    nn_real *right = malloc((size_t)3 * H * W * sizeof *right), *disp = malloc((size_t)H * W * sizeof *disp);
    nn_real *crop = malloc((size_t)3 * 32 * W * sizeof *crop), *cr = malloc((size_t)3 * 32 * W * sizeof *cr),
            *cd = malloc((size_t)32 * W * sizeof *cd);
    render_info info;
    cr_assert_eq(infer_render_boxed(&m, &cfg, f, H, W, &b, right, disp, &info), 0, "%s", nn_last_error());
    letterbox_crop(crop, f, 3, H, W, &b);
    cr_assert_eq(infer_render(&m, &cfg, crop, 32, W, cr, cd, NULL), 0, "%s", nn_last_error());
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t i = ((size_t)c * H + y) * W + x;
                if (y < 8 || y >= 40) {
                    cr_assert_eq(right[i], f[i], "bar pixel (%d, %d) changed", x, y);
                    if (c == 0) cr_assert_eq(disp[(size_t)y * W + x], 0, "bar disparity (%d, %d)", x, y);
                } else {
                    cr_assert_eq(right[i], cr[((size_t)c * 32 + y - 8) * W + x], "picture pixel (%d, %d)", x, y);
                    if (c == 0) cr_assert_eq(disp[(size_t)y * W + x], cd[(size_t)(y - 8) * W + x]);
                }
            }
    cr_assert_eq(info.n_windows, 1, "the 64x32 picture has the network's aspect: one window, not %d", info.n_windows);
    free(f), free(right), free(disp), free(crop), free(cr), free(cd);
    deep3d_model_free(&m);
}
