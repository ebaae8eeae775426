/* Stereo layouts and anaglyph methods. See layouts.h. */
#include "layouts.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/status.h"
#include "render.h"

static const char *const names[LAYOUT_COUNT] = {"right", "sbs",   "sbs-half", "ou",  "ou-half",
                                                "anaglyph", "cross", "depth", "rgbd", "wiggle"};
static const char *const anaglyph_names[ANAGLYPH_COUNT] = {"dubois", "color", "half-color", "gray"};

const char *layout_name(int kind) { return kind >= 0 && kind < LAYOUT_COUNT ? names[kind] : NULL; }

const char *layout_names(void) { return "right, sbs, sbs-half, ou, ou-half, anaglyph, cross, depth, rgbd, wiggle"; }

int layout_parse(const char *name) {
    for (int k = 0; k < LAYOUT_COUNT; k++)
        if (!strcmp(names[k], name)) return k;
    return nn_fail("unknown layout '%s' (expected one of %s)", name, layout_names());
}

int layout_parse_list(const char *list, unsigned *mask) {
    *mask = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        if (len == 0 || len >= sizeof name) return nn_fail("empty or overlong entry in the list '%s'", list);
        memcpy(name, p, len), name[len] = 0;
        int k = layout_parse(name);
        if (k < 0) return -1;
        *mask |= 1u << k;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

const char *anaglyph_name(int method) { return method >= 0 && method < ANAGLYPH_COUNT ? anaglyph_names[method] : NULL; }

int anaglyph_parse(const char *name) {
    for (int k = 0; k < ANAGLYPH_COUNT; k++)
        if (!strcmp(anaglyph_names[k], name)) return k;
    return nn_fail("unknown anaglyph method '%s' (expected dubois, color, half-color or gray)", name);
}

int layout_size(int kind, int W, int H, int *out_w, int *out_h) {
    if (W < 1 || H < 1 || kind < 0 || kind >= LAYOUT_COUNT)
        return nn_fail("layout: bad size %d x %d or kind %d", W, H, kind);
    int w = W, h = H;
    switch (kind) {
    case LAYOUT_SBS:
    case LAYOUT_CROSS:
    case LAYOUT_RGBD: w = 2 * W; break;
    case LAYOUT_SBS_HALF: w = 2 * ((W + 1) / 2); break;
    case LAYOUT_OU: h = 2 * H; break;
    case LAYOUT_OU_HALF: h = 2 * ((H + 1) / 2); break;
    default: break;
    }
    *out_w = w, *out_h = h;
    return 0;
}

void layout_sar_factor(int kind, int *num, int *den) {
    *num = kind == LAYOUT_SBS_HALF ? 2 : 1;
    *den = kind == LAYOUT_OU_HALF ? 2 : 1;
}

const char *layout_video_suffix(int kind) {
    switch (kind) {
    case LAYOUT_SBS: return "_LRF_Full_SBS";
    case LAYOUT_SBS_HALF: return "_LR";
    case LAYOUT_OU: return "_TBF_fulltb";
    case LAYOUT_OU_HALF: return "_TB";
    case LAYOUT_CROSS: return "_RLF_cross";
    case LAYOUT_ANAGLYPH: return "_redcyan";
    case LAYOUT_RGBD: return "_RGBD";
    case LAYOUT_RIGHT: return "_right";
    case LAYOUT_DEPTH: return "_depth";
    default: return NULL;
    }
}

int layout_stereo_mode(int kind, int swap, const char **name) {
    int sbs = kind == LAYOUT_SBS || kind == LAYOUT_SBS_HALF, ou = kind == LAYOUT_OU || kind == LAYOUT_OU_HALF;
    int mode = 0;
    if (sbs) mode = swap ? 11 : 1;
    else if (ou) mode = swap ? 2 : 3;
    else if (kind == LAYOUT_CROSS) mode = swap ? 1 : 11;
    if (name)
        *name = mode == 1 ? "left_right" : mode == 11 ? "right_left" : mode == 3 ? "top_bottom" : mode == 2 ? "bottom_top" : NULL;
    return mode;
}

int layout_frame_packing(int kind, int swap) {
    if (swap) return -1;
    if (kind == LAYOUT_SBS || kind == LAYOUT_SBS_HALF) return 3;
    if (kind == LAYOUT_OU || kind == LAYOUT_OU_HALF) return 4;
    return -1;
}

/* ---------------------------------------------------------------- pixels */

static inline uint8_t to_byte(nn_real v) {
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 255) return 255;
    return (uint8_t)(v + (nn_real)0.5);
}

void layout_view_bytes(uint8_t *out, const nn_real *view, int H, int W) {
    const size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            uint8_t *o = out + 3 * i;
            o[0] = to_byte(view[i]), o[1] = to_byte(view[plane + i]), o[2] = to_byte(view[2 * plane + i]);
        }
}

/* Dubois's red-cyan matrices (rows: anaglyph R, G, B; columns: the view's r, g, b), from
 * his web page's LeastSquaresHowToPhotoshop.pdf, as Bino (video_output.cpp) and iw3
 * (iw3/anaglyph.py) use them. */
static const float dubois_l[3][3] = {{0.437f, 0.449f, 0.164f}, {-0.062f, -0.062f, -0.024f}, {-0.048f, -0.050f, -0.017f}};
static const float dubois_r[3][3] = {{-0.011f, -0.032f, -0.007f}, {0.377f, 0.761f, 0.009f}, {-0.026f, -0.093f, 1.234f}};

/* sRGB (IEC 61966-2-1): decoding table for the 256 byte values, and the linear values
 * at which the encoded byte steps from k to k + 1 (encode(x) * 255 = k + 0.5), so that
 * encoding is a search that rounds exactly like round(255 * encode(x)). */
static float srgb_lin[256], srgb_step[255];

static double srgb_decode(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }

static void srgb_init(void) {
    for (int k = 0; k < 256; k++) srgb_lin[k] = (float)srgb_decode(k / 255.0);
    for (int k = 0; k < 255; k++) srgb_step[k] = (float)srgb_decode((k + 0.5) / 255.0);
}

static inline uint8_t srgb_encode(float x) {
    int lo = 0, hi = 255; /* the byte: how many steps x reaches */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x >= srgb_step[mid]) lo = mid + 1;
        else hi = mid;
    }
    return (uint8_t)lo;
}

static inline float luma(const uint8_t p[3]) { return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]; }

void layout_anaglyph_pixel(uint8_t out[3], const uint8_t l[3], const uint8_t r[3], int method) {
    switch (method) {
    case ANAGLYPH_COLOR: out[0] = l[0], out[1] = r[1], out[2] = r[2]; break;
    case ANAGLYPH_HALF_COLOR: out[0] = to_byte(luma(l)), out[1] = r[1], out[2] = r[2]; break;
    case ANAGLYPH_GRAY: out[0] = to_byte(luma(l)), out[1] = out[2] = to_byte(luma(r)); break;
    default: {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, srgb_init);
        const float ll[3] = {srgb_lin[l[0]], srgb_lin[l[1]], srgb_lin[l[2]]};
        const float rl[3] = {srgb_lin[r[0]], srgb_lin[r[1]], srgb_lin[r[2]]};
        for (int c = 0; c < 3; c++) {
            float v = 0;
            for (int k = 0; k < 3; k++) v += dubois_l[c][k] * ll[k] + dubois_r[c][k] * rl[k];
            out[c] = srgb_encode(v < 0 ? 0 : v > 1 ? 1 : v);
        }
    }
    }
}

/* Copies view (3, H, W) into the rectangle at (x0, y0) of out (rows of ow pixels). */
static void put_view(uint8_t *out, int ow, int x0, int y0, const nn_real *view, int H, int W) {
    const size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        uint8_t *o = out + 3 * ((size_t)(y0 + y) * ow + x0);
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            o[3 * x] = to_byte(view[i]), o[3 * x + 1] = to_byte(view[plane + i]), o[3 * x + 2] = to_byte(view[2 * plane + i]);
        }
    }
}

/* view resized to h x w, placed at (x0, y0). */
static int put_resized(uint8_t *out, int ow, int x0, int y0, const nn_real *view, int H, int W, int h, int w) {
    nn_real *tmp = malloc((size_t)3 * h * w * sizeof *tmp);
    if (!tmp) return nn_fail("layout: out of memory for a %d x %d view", w, h);
    if (render_resize(tmp, view, 3, H, W, h, w)) {
        free(tmp);
        return nn_fail_context("layout");
    }
    put_view(out, ow, x0, y0, tmp, h, w);
    free(tmp);
    return 0;
}

int layout_compose(uint8_t *out, int kind, const layout_input *in) {
    int ow = 0, oh = 0;
    if (!out || !in || !in->left || !in->right) return nn_fail("layout: NULL array");
    if (layout_size(kind, in->W, in->H, &ow, &oh)) return -1;
    const int W = in->W, H = in->H;
    const int stereo_swap = in->swap && kind != LAYOUT_RIGHT && kind != LAYOUT_DEPTH && kind != LAYOUT_RGBD;
    const nn_real *a = stereo_swap ? in->right : in->left, *b = stereo_swap ? in->left : in->right;
    switch (kind) {
    case LAYOUT_SBS: put_view(out, ow, 0, 0, a, H, W), put_view(out, ow, W, 0, b, H, W); return 0;
    case LAYOUT_CROSS: put_view(out, ow, 0, 0, b, H, W), put_view(out, ow, W, 0, a, H, W); return 0;
    case LAYOUT_OU: put_view(out, ow, 0, 0, a, H, W), put_view(out, ow, 0, H, b, H, W); return 0;
    case LAYOUT_RIGHT: put_view(out, ow, 0, 0, in->right, H, W); return 0;
    case LAYOUT_SBS_HALF:
        return put_resized(out, ow, 0, 0, a, H, W, H, ow / 2) || put_resized(out, ow, ow / 2, 0, b, H, W, H, ow / 2) ? -1 : 0;
    case LAYOUT_OU_HALF:
        return put_resized(out, ow, 0, 0, a, H, W, oh / 2, W) || put_resized(out, ow, 0, oh / 2, b, H, W, oh / 2, W) ? -1 : 0;
    case LAYOUT_ANAGLYPH: {
        const size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < plane; i++) {
            const uint8_t l[3] = {to_byte(a[i]), to_byte(a[plane + i]), to_byte(a[2 * plane + i])};
            const uint8_t r[3] = {to_byte(b[i]), to_byte(b[plane + i]), to_byte(b[2 * plane + i])};
            layout_anaglyph_pixel(out + 3 * i, l, r, in->anaglyph);
        }
        return 0;
    }
    case LAYOUT_DEPTH:
    case LAYOUT_RGBD: {
        if (!in->disp) return nn_fail("layout: %s needs the disparity map", names[kind]);
        nn_real *d = render_depth_map(in->disp, H, W, in->D, in->dmin, in->scale);
        if (!d) return nn_fail_context("layout");
        if (kind == LAYOUT_RGBD) put_view(out, ow, 0, 0, in->left, H, W);
        put_view(out, ow, kind == LAYOUT_RGBD ? W : 0, 0, d, H, W);
        free(d);
        return 0;
    }
    default: return nn_fail("layout: %s is not a single picture", names[kind]);
    }
}
