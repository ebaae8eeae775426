/* deep3d dataset --from-video (data/movie.h) end to end, with the real ffmpeg.
 *
 * Clips are made at test time from a real stereo pair: KITTI 2012 pair 000003 from the
 * shared data folder ($DEEP3D_STEREO_DATA, default ../shared/data/stereo, seen from the
 * repository root where tests/run.sh runs; the test skips, saying so, without it).
 * Both views are resized to 400x121 (image_resize, so their disparities are nearer a
 * film's), and frame n of a clip holds the 160x120 window at x = 100 + 3n of each view
 * (a pan: every frame differs, the stereo geometry stays that of the pair), each
 * window inside 28-pixel black pillar bars (a 216x120 view, so the letterbox must be
 * cropped: the crop fit of a 216x120 view would keep parts of the bars), side by side
 * (432x120) or over-under (216x240), written as PNG files and encoded by ffmpeg with
 * libx264 crf 12, yuv420p (the usual lossy 4:2:0 of films), 10 fps. Packing stores
 * the views as PNG at 96x40, so only the video codec loses anything.
 *
 * Tolerance ("within codec error"): the test decodes the clip itself and measures the
 * codec's error E = mean |decoded - source| over the picture windows of both views;
 * a stored view may differ from the original window fitted the documented way
 * (augment_center + image_resize, rounded) by at most 1.1 E + 1 levels on average:
 * resizing a difference with the Mitchell filter at most multiplies its mean by the
 * sum of the filter's absolute weights (< 1.1), and rounding to bytes adds at most
 * 0.5 (the rest: an edge column of the letterbox crop, which codec ringing can move
 * by a pixel). A swapped or misplaced view differs by far more (checked too). */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <stb_image_write.h>

#include "../data/augment.h"
#include "../data/dataset.h"
#include "../data/image.h"
#include "../nn/status.h"
#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_movie"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }

TestSuite(movie, .init = make_root, .fini = remove_root, .timeout = 120);

#define VW 216 /* a view: 28-pixel bars, a 160-pixel window, 28-pixel bars */
#define VH 120
#define BAR 28
#define CW 160

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_ffmpeg(void) {
    cr_assert_eq(sh("command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null"), 0,
                 "ffmpeg and ffprobe are needed by deep3d dataset --from-video and its tests (Debian: apt-get install "
                 "ffmpeg; .ci/install-deps installs them)");
}

/* KITTI pair `id`'s views resized to 400x121 (a test skip without the data). */
static void load_pair(int id, image **l, image **r) {
    const char *data = getenv("DEEP3D_STEREO_DATA") ? getenv("DEEP3D_STEREO_DATA") : "../shared/data/stereo";
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/kitti2012", data);
    if (stat(path, &st) != 0) cr_skip_test("no KITTI pairs at %s (set DEEP3D_STEREO_DATA)", path);
    image *v[2];
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/kitti2012/%06d_10_%c.png", data, id, "LR"[s]);
        image *full = image_load(path);
        cr_assert_not_null(full, "%s", nn_last_error());
        v[s] = image_resize(full, 400, 121);
        image_free(full);
    }
    *l = v[0], *r = v[1];
}

/* The picture window of frame position n of a view (CW x VH). */
static image *window(const image *v, int n) { return image_crop(v, 100 + 3 * n, 0, CW, VH); }

static uint8_t byte_of(nn_real v) { return (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5f); }

/* Draws view window w (CW x VH) inside its bars at (x0, y0) of an rgb frame fw wide. */
static void draw_view(uint8_t *rgb, int fw, int x0, int y0, const image *w) {
    const size_t plane = (size_t)w->w * w->h;
    for (int y = 0; y < VH; y++)
        for (int x = 0; x < CW; x++)
            for (int c = 0; c < 3; c++)
                rgb[((size_t)(y0 + y) * fw + x0 + BAR + x) * 3 + c] = byte_of(w->data[c * plane + (size_t)y * w->w + x]);
}

/* One clip: frames[k] = position of frame k in pair (l, r); r NULL: a mono clip (a
 * 432x120 window of l alone). layout 0 side by side, 1 over-under. meta: a stereo_mode
 * tag value or NULL. Written to root/name. */
static void make_clip(const char *name, const image *l, const image *r, int ou, const int *frames, int n,
                      const char *meta) {
    need_ffmpeg();
    const int fw = ou ? VW : 2 * VW, fh = ou ? 2 * VH : VH;
    char dir[300];
    snprintf(dir, sizeof dir, "%s.frames", P(name));
    cr_assert_eq(mkdir(dir, 0755), 0, "mkdir %s: %s", dir, strerror(errno));
    uint8_t *rgb = malloc((size_t)3 * fw * fh);
    for (int k = 0; k < n; k++) {
        memset(rgb, 0, (size_t)3 * fw * fh);
        if (r) {
            image *a = window(l, frames[k]), *b = window(r, frames[k]);
            draw_view(rgb, fw, 0, 0, a);
            draw_view(rgb, fw, ou ? 0 : VW, ou ? VH : 0, b);
            image_free(a), image_free(b);
        } else {
            image *a = image_crop(l, 0, 0, 400, 121), *big = image_resize(a, 2 * 400, 2 * 121);
            image *w = image_crop(big, 40 + 3 * frames[k], 60, fw, fh);
            for (int y = 0; y < fh; y++)
                for (int x = 0; x < fw; x++)
                    for (int c = 0; c < 3; c++)
                        rgb[((size_t)y * fw + x) * 3 + c] = byte_of(w->data[((size_t)c * fh + y) * fw + x]);
            image_free(a), image_free(big), image_free(w);
        }
        char f[400];
        snprintf(f, sizeof f, "%s/f%03d.png", dir, k);
        cr_assert(stbi_write_png(f, fw, fh, 3, rgb, 3 * fw), "writing %s", f);
    }
    free(rgb);
    char tag[64] = "";
    if (meta) snprintf(tag, sizeof tag, "-metadata:s:v:0 stereo_mode=%s", meta);
    cr_assert_eq(sh("ffmpeg -nostdin -v error -y -framerate 10 -i '%s/f%%03d.png' -c:v libx264 -crf 12 -pix_fmt "
                    "yuv420p %s '%s'",
                    dir, tag, P(name)),
                 0, "making the clip %s failed", name);
}

/* Mean |decoded - source| over both views' windows of every frame: the codec's error. */
static double codec_error(const char *clip, const image *l, const image *r, int ou, const int *frames, int n) {
    const int fw = ou ? VW : 2 * VW, fh = ou ? 2 * VH : VH;
    int got;
    uint8_t *dec = tc_decode_frames(clip, fw, fh, &got);
    cr_assert_eq(got, n);
    double s = 0;
    long cnt = 0;
    for (int k = 0; k < n; k++)
        for (int v = 0; v < 2; v++) {
            image *w = window(v ? r : l, frames[k]);
            const int x0 = (v && !ou ? VW : 0) + BAR, y0 = v && ou ? VH : 0;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < VH; y++)
                    for (int x = 0; x < CW; x++) {
                        const uint8_t d = dec[((size_t)k * fw * fh + (size_t)(y0 + y) * fw + x0 + x) * 3 + c];
                        s += fabs((double)d - byte_of(w->data[((size_t)c * VH + y) * CW + x])), cnt++;
                    }
            image_free(w);
        }
    free(dec);
    return s / (double)cnt;
}

/* The window fitted to 96x40 as packing documents it (augment_center, image_resize), rounded. */
static image *expected(const image *v, int n) {
    image *w = window(v, n);
    augment_params p;
    augment_center(&p, w->w, w->h, 96, 40);
    image *c = image_crop(w, p.x, p.y, p.w, p.h), *out = image_resize(c, 96, 40);
    for (size_t i = 0; i < (size_t)3 * 96 * 40; i++) out->data[i] = byte_of(out->data[i]);
    image_free(w), image_free(c);
    return out;
}

static double mad(const image *a, const image *b) {
    double s = 0;
    for (size_t i = 0; i < (size_t)3 * a->w * a->h; i++) s += fabs((double)a->data[i] - b->data[i]);
    return s / (3.0 * a->w * a->h);
}

/* Packs clip into root/out; returns the result (the caller frees it). */
static void pack(tc_result *res, const char *clip, const char *out, const char *layout) {
    const char *args[] = {"dataset", "--from-video", P(clip), "--out", P(out), "--size", "96x40", "--format", "png",
                          "--layout", layout ? layout : "auto", NULL};
    tc_run(res, root, args);
}

/* The records of root/out against the windows of (l, r) at frames[] (E: the codec's error). */
static void check_pairs(const char *out, const image *l, const image *r, const int *frames, int n, double E) {
    dataset *d = dataset_open(P(out), 0);
    cr_assert_not_null(d, "%s", nn_last_error());
    cr_assert_eq(dataset_record_count(d), n, "expected %d pairs, got %ld", n, dataset_record_count(d));
    for (int k = 0; k < n; k++) {
        image *a, *b;
        cr_assert_eq(dataset_read_pair(d, k, &a, &b), 0, "%s", nn_last_error());
        image *el = expected(l, frames[k]), *er = expected(r, frames[k]);
        const double ml = mad(a, el), mr = mad(b, er), wrong = mad(a, er);
        cr_assert_leq(ml, 1.1 * E + 1, "pair %d: left view differs by %.2f levels on average (codec error %.2f)", k,
                      ml, E);
        cr_assert_leq(mr, 1.1 * E + 1, "pair %d: right view differs by %.2f levels on average (codec error %.2f)", k,
                      mr, E);
        cr_assert_gt(wrong, ml + 4, "pair %d: the left view is as near the right view (%.2f) as the left (%.2f)", k,
                     wrong, ml);
        cr_assert_eq(dataset_record(d, k)->frame, (uint64_t)k);
        image_free(a), image_free(b), image_free(el), image_free(er);
    }
    dataset_close(d);
}

static void round_trip(int ou, const char *meta, const char *expect_line) {
    image *l, *r;
    load_pair(3, &l, &r);
    int frames[8];
    for (int k = 0; k < 8; k++) frames[k] = k;
    const image *first = l, *second = r;
    if (meta && (!strcmp(meta, "right_left") || !strcmp(meta, "bottom_top"))) first = r, second = l;
    make_clip("clip.mkv", first, second, ou, frames, 8, meta);
    const double E = codec_error(P("clip.mkv"), first, second, ou, frames, 8);
    cr_assert_lt(E, 4, "x264 crf 12 should lose little: %.2f", E);
    tc_result res;
    pack(&res, "clip.mkv", "ds", NULL);
    cr_assert_eq(res.status, 0, "packing failed: %s", res.err);
    cr_assert(strstr(res.out, expect_line), "expected '%s' in:\n%s", expect_line, res.out);
    cr_assert(strstr(res.out, "letterbox cropped from 8 pairs"), "the pillar bars should be cropped:\n%s", res.out);
    check_pairs("ds", l, r, frames, 8, E);
    tc_free(&res);
    image_free(l), image_free(r);
}

Test(movie, side_by_side_pairs_match_the_originals_layout_from_the_picture) {
    round_trip(0, NULL, "layout sbs (no stereo metadata; the side-by-side halves match");
}

Test(movie, over_under_pairs_match_the_originals_layout_from_the_picture) {
    round_trip(1, NULL, "layout ou (no stereo metadata; the over-under halves match");
}

Test(movie, layout_from_the_stereo_mode_tag) {
    round_trip(0, "left_right", "layout sbs (from the stream tag stereo_mode=left_right; 432x120 frame: full-width");
}

Test(movie, right_view_first_tag_swaps_the_halves) {
    round_trip(1, "bottom_top", "halves swapped");
}

Test(movie, halves_that_do_not_match_are_refused) {
    image *l, *r;
    load_pair(3, &l, &r);
    int frames[8];
    for (int k = 0; k < 8; k++) frames[k] = k;
    make_clip("mono.mkv", l, NULL, 0, frames, 8, NULL);
    tc_result res;
    pack(&res, "mono.mkv", "ds", NULL);
    cr_assert_eq(res.status, 1, "exit status 1 (runtime) expected, got %d", res.status);
    tc_expect_error(&res, "a mono clip", "cannot tell the stereo layout", "mono.mkv", "neither split", "--layout", NULL);
    struct stat st;
    cr_assert_neq(stat(P("ds"), &st), 0, "nothing may be written for a refused movie");
    tc_free(&res);
    /* named explicitly it is read (the user's word) */
    pack(&res, "mono.mkv", "ds", "sbs");
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, "layout sbs (as given by --layout)"), "%s", res.out);
    tc_free(&res);
    image_free(l), image_free(r);
}

Test(movie, near_duplicates_and_scene_cuts_are_skipped) {
    image *l, *r, *l2, *r2;
    load_pair(3, &l, &r);
    /* every position twice: the second of each is a duplicate */
    int dup[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    make_clip("dup.mkv", l, r, 0, dup, 8, NULL);
    tc_result res;
    pack(&res, "dup.mkv", "ds", NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, ": 4 pairs from"), "4 distinct frames of 8:\n%s", res.out);
    cr_assert(strstr(res.out, "skipped 4 near-duplicates"), "%s", res.out);
    dataset *d = dataset_open(P("ds"), 0);
    cr_assert_not_null(d);
    for (int k = 0; k < 4; k++) cr_assert_eq(dataset_record(d, k)->frame, (uint64_t)(2 * k), "the first of each twin is kept");
    dataset_close(d);
    tc_free(&res);
    /* a cut: frames 0-5 of pair 3, then frames 0-5 of pair 5 (another street): the
     * cut at frame 6 takes frames 4..8 with it */
    load_pair(5, &l2, &r2);
    int pos[12];
    for (int k = 0; k < 12; k++) pos[k] = k % 6;
    /* the two clips joined by ffmpeg's concat filter (re-encoded) */
    make_clip("a.mkv", l, r, 0, pos, 6, NULL);
    make_clip("b.mkv", l2, r2, 0, pos, 6, NULL);
    cr_assert_eq(sh("ffmpeg -nostdin -v error -y -i '%s' -i '%s' -filter_complex '[0:v][1:v]concat=n=2:v=1[v]' -map "
                    "'[v]' -c:v libx264 -crf 12 -pix_fmt yuv420p '%s'",
                    P("a.mkv"), P("b.mkv"), P("cut.mkv")),
                 0);
    pack(&res, "cut.mkv", "ds2", NULL);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, ": 7 pairs from"), "12 frames less the 5 around the cut:\n%s", res.out);
    cr_assert(strstr(res.out, "skipped 0 near-duplicates, 5 next to one of 1 scene cuts"), "%s", res.out);
    d = dataset_open(P("ds2"), 0);
    cr_assert_not_null(d);
    const uint64_t want[7] = {0, 1, 2, 3, 9, 10, 11};
    for (int k = 0; k < 7; k++) cr_assert_eq(dataset_record(d, k)->frame, want[k], "record %d", k);
    dataset_close(d);
    tc_free(&res);
    image_free(l), image_free(r), image_free(l2), image_free(r2);
}

Test(movie, every_and_fps_choose_frames_and_bad_arguments_are_usage_errors) {
    image *l, *r;
    load_pair(3, &l, &r);
    int frames[8];
    for (int k = 0; k < 8; k++) frames[k] = k;
    make_clip("clip.mkv", l, r, 0, frames, 8, NULL);
    tc_result res;
    const char *every[] = {"dataset", "--from-video", P("clip.mkv"), "--out", P("e"), "--size", "96x40", "--every", "3", NULL};
    tc_run(&res, root, every);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, ": 3 pairs from"), "frames 0, 3, 6:\n%s", res.out);
    tc_free(&res);
    const char *fps[] = {"dataset", "--from-video", P("clip.mkv"), "--out", P("f"), "--size", "96x40", "--fps", "5", NULL};
    tc_run(&res, root, fps);
    cr_assert_eq(res.status, 0, "%s", res.err);
    cr_assert(strstr(res.out, ": 4 pairs from"), "10 fps at 5 per second: frames 0, 2, 4, 6:\n%s", res.out);
    tc_free(&res);
    const char *both[] = {"dataset", "--from-video", P("clip.mkv"), "--out", P("g"), "--every", "2", "--fps", "5", NULL};
    tc_run(&res, root, both);
    cr_assert_eq(res.status, 2);
    tc_expect_error(&res, "--every and --fps", "--every", "--fps", NULL);
    tc_free(&res);
    const char *pairs[] = {"dataset", "--from-video", P("clip.mkv"), "--out", P("g"), "--layout", "pairs", NULL};
    tc_run(&res, root, pairs);
    cr_assert_eq(res.status, 2);
    tc_expect_error(&res, "--layout pairs", "--layout pairs", NULL);
    tc_free(&res);
    const char *missing[] = {"dataset", "--from-video", P("nothing.mkv"), "--out", P("g"), NULL};
    tc_run(&res, root, missing);
    cr_assert_eq(res.status, 1);
    tc_expect_error(&res, "a missing file", "nothing.mkv", NULL);
    tc_free(&res);
    /* the same movie again: its source name is taken */
    tc_run(&res, root, every);
    tc_expect_error(&res, "appending a source twice", "already has a source 'clip.mkv'", NULL);
    tc_free(&res);
    image_free(l), image_free(r);
}

/* Half layouts: the same clips squeezed to the size of one view (216x120: each view
 * half as wide, or half as high), no metadata: the picture gives the split, the
 * frame's shape full or half; each pair is stretched back. */
Test(movie, half_layouts_are_told_by_the_frame_shape) {
    image *l, *r;
    load_pair(3, &l, &r);
    int frames[8];
    for (int k = 0; k < 8; k++) frames[k] = k;
    make_clip("sbs.mkv", l, r, 0, frames, 8, NULL);
    make_clip("ou.mkv", l, r, 1, frames, 8, NULL);
    const char *in[2] = {"sbs.mkv", "ou.mkv"}, *out[2] = {"sbs-half.mkv", "ou-half.mkv"};
    const char *want[2] = {"layout sbs-half (no stereo metadata; the side-by-side halves match",
                           "layout ou-half (no stereo metadata; the over-under halves match"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sh("ffmpeg -nostdin -v error -y -i '%s' -vf scale=216:120 -c:v libx264 -crf 12 -pix_fmt yuv420p "
                        "'%s'", P(in[i]), P(out[i])),
                     0);
        tc_result res;
        pack(&res, out[i], i ? "ds_ou" : "ds_sbs", NULL);
        cr_assert_eq(res.status, 0, "%s", res.err);
        cr_assert(strstr(res.out, want[i]), "expected '%s' in:\n%s", want[i], res.out);
        cr_assert(strstr(res.out, "216x120 frame: half-"), "%s", res.out);
        cr_assert(strstr(res.out, ": 8 pairs from"), "%s", res.out);
        tc_free(&res);
    }
    image_free(l), image_free(r);
}
