/* deep3d video end to end, with the real ffmpeg and ffprobe: a short clip made from a
 * real photo (weights/sample.jpg, a pan across it: 128x64, 24 fps, 1.5 s) with two
 * audio tracks, a subtitle track, two chapters and a title is converted to every video
 * layout, and the result is checked with ffprobe (streams, languages, chapters, frame
 * count, timestamps, pixel aspect, stereo metadata) and by reading frames back (the
 * left view against the source frame, within the codec's own error, measured here by
 * encoding the source frames with the same settings). Also: MP4 (st3d), resuming after
 * a kill and after a full disk (identical content), the error lines, folders, a part of
 * a clip, variable frame rate, and the flicker figures with and without smoothing.
 *
 * These tests need ffmpeg and ffprobe (.ci/install-deps installs them); without them
 * every test here fails, saying so. The model is tc_write_shifting_model's (64x32,
 * predicting d = +4 network pixels, 8 pixels at 128 wide, everywhere: the right view is
 * the left shifted by 8 pixels, R(x) = L(x - 8)), so a conversion takes about a
 * second and the views differ clearly. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_video"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }

TestSuite(video, .init = make_root, .fini = remove_root, .timeout = 180);

/* Runs a shell command; its stdout into *out (malloc'd) when out is not NULL. Returns
 * the exit status. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (size_t r; (r = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
        n += r;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_ffmpeg(void) {
    cr_assert_eq(sh(NULL, "command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null"), 0,
                 "ffmpeg and ffprobe are needed by deep3d video and its tests (Debian: apt-get install ffmpeg; "
                 ".ci/install-deps installs them)");
}

static char *probe(const char *file, const char *args) {
    char *out;
    int rc = sh(&out, "ffprobe -v error %s '%s' 2>&1", args, file);
    cr_assert_eq(rc, 0, "ffprobe %s %s: %s", args, file, out);
    return out;
}

/* The test clip: a pan across weights/sample.jpg (a real photo), two sine tracks
 * (languages eng, fra), an SRT track, two chapters and a title. */
static void make_clip(const char *name, double seconds, const char *extra_video_filter) {
    need_ffmpeg();
    FILE *f = fopen(P("subs.srt"), "w");
    fputs("1\n00:00:00,000 --> 00:00:00,800\nHello\n\n2\n00:00:00,900 --> 00:00:01,400\nWorld\n", f);
    fclose(f);
    f = fopen(P("meta.txt"), "w");
    fputs(";FFMETADATA1\ntitle=Pan test\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=700\ntitle=First\n"
          "[CHAPTER]\nTIMEBASE=1/1000\nSTART=700\nEND=1500\ntitle=Second\n", f);
    fclose(f);
    char *err;
    int rc = sh(&err,
                "ffmpeg -v error -y -loop 1 -framerate 24 -i weights/sample.jpg -f lavfi -i sine=frequency=440:duration=%g "
                "-f lavfi -i sine=frequency=660:duration=%g -i '%s' -i '%s' -filter_complex "
                "\"[0:v]crop=320:160:x='t*150':y=120,scale=128:64,format=yuv420p%s[v]\" -map '[v]' -map 1:a -map 2:a "
                "-map 3:s -map_metadata 4 -map_chapters 4 -t %g -c:v libx264 -preset veryfast -c:a aac -c:s srt "
                "-metadata:s:a:0 language=eng -metadata:s:a:1 language=fra -metadata:s:s:0 language=eng '%s' 2>&1",
                seconds, seconds, P("subs.srt"), P("meta.txt"), extra_video_filter ? extra_video_filter : "", seconds, P(name));
    cr_assert_eq(rc, 0, "making the test clip failed (run from the repository root): %s", err);
    free(err);
}

/* Mean |a - b| over the w x h rectangle at (ax, ay) of frames a (aw wide) and the whole
 * of frames b (w x h), channel c only (c < 0: all three). */
static double region_mad(const uint8_t *a, int aw, int ax, int ay, const uint8_t *b, int w, int h, int c) {
    double s = 0;
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                if (c >= 0 && k != c) continue;
                s += abs((int)a[3 * ((size_t)(ay + y) * aw + ax + x) + k] - (int)b[3 * ((size_t)y * w + x) + k]);
                n++;
            }
    return s / n;
}

/* The codec's own error on the clip: the source frames encoded once more with the
 * settings deep3d video uses (libx264, crf 18, medium, pix_fmt), as mean |diff|. */
static double codec_error_fmt(const char *clip, uint8_t *src, int n, const char *pix_fmt) {
    char *err;
    int rc = sh(&err, "ffmpeg -v error -y -i '%s' -map 0:v:0 -c:v libx264 -crf 18 -preset medium -pix_fmt %s '%s' 2>&1",
                clip, pix_fmt, P("reference.mkv"));
    cr_assert_eq(rc, 0, "%s", err);
    free(err);
    int m;
    uint8_t *again = tc_decode_frames(P("reference.mkv"), 128, 64, &m);
    cr_assert_eq(m, n);
    double e = 0;
    for (int i = 0; i < n; i++) e += region_mad(again + (size_t)i * 3 * 128 * 64, 128, 0, 0, src + (size_t)i * 3 * 128 * 64, 128, 64, -1);
    free(again);
    return e / n;
}

static double codec_error(const char *clip, uint8_t *src, int n) { return codec_error_fmt(clip, src, n, "yuv420p"); }

#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})
#define VIDEO_ARGS "video", "--threads", "1", "--device", "cpu", "--model", P("m.d3w"), "--segment", "0.5"

static void expect_contains(const char *text, const char *needle, const char *what) {
    cr_assert(strstr(text, needle), "%s: '%s' not found in:\n%s", what, needle, text);
}

/* Packets of the streams `map` (e.g. "-map 0:a -map 0:s") of two files, as ffmpeg's
 * framemd5 lists them (stream, timestamps, duration, size, checksum): equal means
 * copied unchanged. fields: which columns to compare ("1-6" all; "5,6" size and
 * checksum, for containers of different time bases). */
static void expect_same_packets_in(const char *a, const char *b, const char *map, const char *fields) {
    char *x, *y;
    cr_assert_eq(sh(&x, "ffmpeg -v error -i '%s' %s -c copy -f framemd5 - | grep -v '^#' | cut -d, -f%s", a, map, fields), 0);
    cr_assert_eq(sh(&y, "ffmpeg -v error -i '%s' %s -c copy -f framemd5 - | grep -v '^#' | cut -d, -f%s", b, map, fields), 0);
    cr_assert(strlen(x) > 0, "no packets in %s (%s)", a, map);
    cr_assert_str_eq(x, y, "%s: the packets of %s and %s differ", map, a, b);
    free(x), free(y);
}

static void expect_same_packets(const char *a, const char *b, const char *map) { expect_same_packets_in(a, b, map, "1-6"); }

/* The video packets' presentation times of a file, in order. */
static char *sorted_pts(const char *file) {
    char *out;
    cr_assert_eq(sh(&out, "ffprobe -v error -select_streams v:0 -show_entries packet=pts_time -of csv=p=0 '%s' | sort -n", file), 0);
    return out;
}

/* The frame_packing_arrangement_type of the first frame-packing SEI (payload type 45)
 * in the first frame of file's video, or -1 when there is none. ffmpeg's trace_headers
 * bitstream filter lists the SEI's payload bytes; the syntax (H.264 D.1.26): ue(v)
 * frame_packing_arrangement_id, u(1) cancel flag, u(7) type. */
static int frame_packing_type(const char *file) {
    char *t;
    sh(&t, "ffmpeg -i '%s' -map 0:v:0 -frames:v 1 -c copy -bsf:v trace_headers -f null - 2>&1 | "
           "grep -A40 'last_payload_type_byte.*= 45$' | sed -n 's/.* payload_byte\\[[0-9]*\\].* = \\([0-9]*\\)$/\\1/p'", file);
    uint8_t b[64];
    int n = 0;
    for (char *save, *v = strtok_r(t, "\n", &save); v && n < 64; v = strtok_r(NULL, "\n", &save)) b[n++] = (uint8_t)atoi(v);
    free(t);
    if (n == 0) return -1;
    int bit = 0;
    int zeros = 0;
    while (bit < 8 * n && !((b[bit / 8] >> (7 - bit % 8)) & 1)) zeros++, bit++;
    bit += 1 + zeros; /* the 1 and the id's bits */
    bit++;            /* cancel flag */
    int type = 0;
    for (int i = 0; i < 7; i++) type = 2 * type + ((b[bit / 8] >> (7 - bit % 8)) & 1), bit++;
    return type;
}

typedef struct layout_check {
    const char *layout, *ext;
    int view_x, view_y;        /* where the left view sits in the output frame */
    int out_w, out_h;
    const char *sar;           /* sample_aspect_ratio */
    const char *stereo_mode;   /* Matroska tag, or NULL for none */
    const char *side_data;     /* stream side data type, or NULL */
    int sei;                   /* H.264 frame packing arrangement type in the SEI, or -1 for none */
    int full_left;             /* 1: the left view is stored at full size at (view_x, view_y) */
} layout_check;

/* The shift of the views with tc_write_shifting_model(level 8): d = +4 network pixels,
 * times 128 / 64. */
#define SHIFT 8

/* f (128 x 64) without its last SHIFT columns: what the right view shows from column
 * SHIFT on, (128 - SHIFT) x 64, into out. */
static void shifted_source(uint8_t *out, const uint8_t *f) {
    for (int y = 0; y < 64; y++) memcpy(out + 3 * (y * (128 - SHIFT)), f + 3 * (y * 128), 3 * (128 - SHIFT));
}

static void convert_and_check(const layout_check *c, const char *const *extra) {
    make_clip("clip.mkv", 1.5, NULL);
    tc_write_shifting_model(P("m.d3w"), 8);
    char out[64];
    snprintf(out, sizeof out, "out.%s", c->ext);
    const char *args[32] = {VIDEO_ARGS, "--layout", c->layout};
    int n = 11;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n++] = P("clip.mkv"), args[n++] = P(out), args[n] = NULL;
    tc_result r;
    tc_run(&r, root, args);
    cr_assert(r.exited && r.status == 0, "deep3d video --layout %s failed (%d): %s", c->layout, r.status, r.err);
    cr_assert_str_empty(r.err, "stderr: %s", r.err);
    expect_contains(r.out, "1 converted, 0 skipped, 0 failed", "summary");
    tc_free(&r);
    char parts[128];
    snprintf(parts, sizeof parts, "%s.parts", out);
    cr_assert_neq(access(P(parts), F_OK), 0, "the parts folder was left behind");

    /* streams, languages, chapters, title: as in the source (MP4 keeps chapters in a
     * chapter track of its own, a data stream, after these) */
    const int mp4 = !strcmp(c->ext, "mp4");
    char *s;
    cr_assert_eq(sh(&s, "ffprobe -v error -show_entries stream=codec_type -of csv=p=0 '%s' | cut -d, -f1 | grep .", P(out)), 0);
    cr_assert(mp4 ? !strcmp(s, "video\naudio\naudio\nsubtitle\ndata\n") : !strcmp(s, "video\naudio\naudio\nsubtitle\n"),
              "streams of %s:\n%s", out, s);
    free(s);
    s = probe(P(out), "-select_streams a -show_entries stream_tags=language -of csv=p=0");
    cr_assert_str_eq(s, "eng\nfra\n", "audio languages");
    free(s);
    s = probe(P(out), "-select_streams s -show_entries stream_tags=language -of csv=p=0");
    cr_assert_str_eq(s, "eng\n", "subtitle language");
    free(s);
    s = probe(P(out), "-show_chapters -show_entries chapter=start_time,end_time:chapter_tags=title -of csv=p=0");
    cr_assert_str_eq(s, "0.000000,0.700000,First\n0.700000,1.500000,Second\n", "chapters: %s", s);
    free(s);
    s = probe(P(out), "-show_entries format_tags=title -of default=nw=1:nk=1");
    cr_assert_str_eq(s, "Pan test\n");
    free(s);
    /* video: every frame, with the source's timestamps; size; pixel aspect; stereo */
    char *a = sorted_pts(P("clip.mkv")), *b = sorted_pts(P(out));
    cr_assert_str_eq(a, b, "video timestamps differ:\nsource:\n%s\noutput:\n%s", a, b);
    free(a), free(b);
    cr_assert_eq(sh(&s, "ffprobe -v error -select_streams v:0 -show_entries stream=width,height,sample_aspect_ratio -of csv=p=0 "
                        "'%s' | head -1 | cut -d, -f1-3", P(out)), 0);
    char want[64];
    snprintf(want, sizeof want, "%d,%d,%s\n", c->out_w, c->out_h, c->sar);
    cr_assert_str_eq(s, want, "size and pixel aspect: %s", s);
    free(s);
    s = probe(P(out), "-select_streams v:0 -show_entries stream_tags=stereo_mode -of default=nw=1:nk=1");
    if (c->stereo_mode) {
        snprintf(want, sizeof want, "%s\n", c->stereo_mode);
        cr_assert_str_eq(s, want, "Matroska stereo_mode");
    } else {
        cr_assert_str_empty(s, "no stereo_mode tag expected: %s", s);
    }
    free(s);
    s = probe(P(out), "-select_streams v:0 -show_entries stream_side_data=type -of default=nw=1:nk=1");
    if (c->side_data) {
        snprintf(want, sizeof want, "%s\n", c->side_data);
        cr_assert_str_eq(s, want, "stereo side data of the stream");
    } else {
        cr_assert_str_empty(s, "no stereo side data expected: %s", s);
    }
    free(s);
    const int fpa = frame_packing_type(P(out));
    cr_assert_eq(fpa, c->sei, "frame packing arrangement SEI: type %d, expected %d (-1: none)", fpa, c->sei);
    /* audio and subtitles untouched (MP4: the audio payloads, in its own time base; SRT
     * becomes mov_text) */
    if (mp4) expect_same_packets_in(P("clip.mkv"), P(out), "-map 0:a", "5,6");
    else expect_same_packets(P("clip.mkv"), P(out), "-map 0:a -map 0:s");
    /* frames back: the left view against the source frame */
    int ns, no;
    uint8_t *src = tc_decode_frames(P("clip.mkv"), 128, 64, &ns), *got = tc_decode_frames(P(out), c->out_w, c->out_h, &no);
    cr_assert(ns == 36 && no == ns, "frames: source %d, output %d", ns, no);
    if (c->full_left) {
        const double ref = codec_error(P("clip.mkv"), src, ns);
        double worst = 0, moved = 0;
        for (int i = 0; i < ns; i++) {
            const uint8_t *o = got + (size_t)i * 3 * c->out_w * c->out_h, *f = src + (size_t)i * 3 * 128 * 64;
            double e = region_mad(o, c->out_w, c->view_x, c->view_y, f, 128, 64, -1);
            worst = fmax(worst, e);
            if (i + 1 < ns) moved += region_mad(o, c->out_w, c->view_x, c->view_y, f + 3 * 128 * 64, 128, 64, -1);
        }
        moved /= ns - 1;
        cr_assert(worst <= 2 * ref + 1, "left view of %s differs from the source by %.2f (mean |diff|), the codec's own "
                  "error is %.2f", c->layout, worst, ref);
        cr_assert(moved > 2 * worst, "the check is blind: the next frame differs by %.2f only (this frame %.2f)", moved, worst);
    }
    free(src), free(got);
}

Test(video, sbs) {
    layout_check c = {"sbs", "mkv", 0, 0, 256, 64, "1:1", "left_right", "side by side", 3, 1};
    convert_and_check(&c, NULL);
}

Test(video, sbs_half) {
    layout_check c = {"sbs-half", "mkv", 0, 0, 128, 64, "2:1", "left_right", "side by side", 3, 0};
    convert_and_check(&c, NULL);
}

Test(video, ou) {
    layout_check c = {"ou", "mkv", 0, 0, 128, 128, "1:1", "top_bottom", "top and bottom", 4, 1};
    convert_and_check(&c, NULL);
}

Test(video, ou_half) {
    layout_check c = {"ou-half", "mkv", 0, 0, 128, 64, "1:2", "top_bottom", "top and bottom", 4, 0};
    convert_and_check(&c, NULL);
}

/* Right view first: Matroska says so (right_left); x264 cannot, so no SEI. */
Test(video, cross) {
    layout_check c = {"cross", "mkv", 128, 0, 256, 64, "1:1", "right_left", "side by side", -1, 1};
    convert_and_check(&c, NULL);
}

/* The color method: the red channel is the left view's, green and blue the right
 * view's (the source shifted by SHIFT). In 4:4:4, since 4:2:0 halves
 * the colour resolution, and red next to cyan edges is where that shows most. */
Test(video, anaglyph_color) {
    const char *extra[] = {"--anaglyph", "color", "--pix-fmt", "yuv444p", NULL};
    layout_check c = {"anaglyph", "mkv", 0, 0, 128, 64, "1:1", NULL, NULL, -1, 0};
    convert_and_check(&c, extra);
    int ns, no;
    uint8_t *src = tc_decode_frames(P("clip.mkv"), 128, 64, &ns), *got = tc_decode_frames(P("out.mkv"), 128, 64, &no);
    const double ref = codec_error_fmt(P("clip.mkv"), src, ns, "yuv444p");
    uint8_t *shifted = malloc((size_t)3 * 128 * 64);
    for (int i = 0; i < ns; i++) {
        const uint8_t *f = src + (size_t)i * 3 * 128 * 64, *o = got + (size_t)i * 3 * 128 * 64;
        double e = region_mad(o, 128, 0, 0, f, 128, 64, 0);
        cr_assert(e <= 2 * ref + 1, "frame %d: red differs from the left view's red by %.2f (codec error %.2f)", i, e, ref);
        shifted_source(shifted, f);
        for (int k = 1; k < 3; k++) {
            e = region_mad(o, 128, SHIFT, 0, shifted, 128 - SHIFT, 64, k);
            cr_assert(e <= 2 * ref + 1, "frame %d: channel %d differs from the right view's by %.2f (codec error %.2f)", i,
                      k, e, ref);
        }
    }
    free(src), free(got), free(shifted);
}

/* The right view is the source shifted right by SHIFT pixels (a constant disparity
 * survives the guided filter and edge snapping unchanged, and an integer shift samples
 * exactly): columns SHIFT.. against the source's columns 0..127 - SHIFT. */
Test(video, right) {
    layout_check c = {"right", "mkv", 0, 0, 128, 64, "1:1", NULL, NULL, -1, 0};
    convert_and_check(&c, NULL);
    int ns, no;
    uint8_t *src = tc_decode_frames(P("clip.mkv"), 128, 64, &ns), *got = tc_decode_frames(P("out.mkv"), 128, 64, &no);
    const double ref = codec_error(P("clip.mkv"), src, ns);
    uint8_t *shifted = malloc((size_t)3 * 128 * 64);
    for (int i = 0; i < ns; i++) {
        const uint8_t *f = src + (size_t)i * 3 * 128 * 64, *o = got + (size_t)i * 3 * 128 * 64;
        shifted_source(shifted, f);
        double e = region_mad(o, 128, SHIFT, 0, shifted, 128 - SHIFT, 64, -1),
               same = region_mad(o, 128, 0, 0, f, 128, 64, -1);
        cr_assert(e <= 2 * ref + 1, "frame %d: the right view differs from the shifted source by %.2f (codec error %.2f)",
                  i, e, ref);
        cr_assert(same > 2 * e, "frame %d: the right view is as close to the unshifted source (%.2f vs %.2f)", i, same, e);
    }
    free(src), free(got), free(shifted);
}

/* A grey picture: the three channels agree within the codec's rounding. */
Test(video, depth) {
    layout_check c = {"depth", "mkv", 0, 0, 128, 64, "1:1", NULL, NULL, -1, 0};
    convert_and_check(&c, NULL);
    int n;
    uint8_t *got = tc_decode_frames(P("out.mkv"), 128, 64, &n);
    for (size_t i = 0; i < (size_t)n * 128 * 64; i++)
        cr_assert(abs(got[3 * i] - got[3 * i + 1]) <= 2 && abs(got[3 * i + 1] - got[3 * i + 2]) <= 2,
                  "depth pixel %zu is not grey: %d %d %d", i, got[3 * i], got[3 * i + 1], got[3 * i + 2]);
    free(got);
}

Test(video, rgbd) {
    layout_check c = {"rgbd", "mkv", 0, 0, 256, 64, "1:1", NULL, NULL, -1, 1};
    convert_and_check(&c, NULL);
}

/* MP4: the st3d box (stream side data), the pixel aspect, mov_text subtitles. */
Test(video, mp4_sbs_half) {
    layout_check c = {"sbs-half", "mp4", 0, 0, 128, 64, "2:1", NULL, "side by side", 3, 0};
    convert_and_check(&c, NULL);
    char *s = probe(P("out.mp4"), "-select_streams s:0 -show_entries stream=codec_name -of default=nw=1:nk=1");
    cr_assert_str_eq(s, "mov_text\n");
    free(s);
}

/* st3d has no right-eye-first side by side: a cross MP4 carries no stereo flag rather
 * than a wrong one. */
Test(video, mp4_cross_has_no_st3d) {
    layout_check c = {"cross", "mp4", 128, 0, 256, 64, "1:1", NULL, NULL, -1, 1};
    convert_and_check(&c, NULL);
}

/* ---------------------------------------------------------------- resume */

/* The uninterrupted reference, then a run killed (SIGKILL) once its first segments are
 * finished, resumed: the same packets in every stream. */
Test(video, resume_after_kill_gives_the_same_file) {
    make_clip("clip.mkv", 3, NULL);
    tc_write_tiny_model(P("m.d3w"));
    tc_result r;
    RUN(&r, VIDEO_ARGS, "--segment", "0.25", P("clip.mkv"), P("whole.mkv"));
    cr_assert(r.exited && r.status == 0, "uninterrupted run: %s", r.err);
    tc_free(&r);
    pid_t pid = tc_spawn(root, (const char *const[]){VIDEO_ARGS, "--segment", "0.25", P("clip.mkv"), P("cut.mkv"), NULL});
    struct stat st;
    int waited = 0;
    while (stat(P("cut.mkv.parts/seg_000001.mp4"), &st) != 0 && waited < 60000) usleep(2000), waited += 2;
    kill(pid, SIGKILL);
    tc_collect(&r, root, pid);
    cr_assert(!r.exited && r.status == SIGKILL, "the run should have been killed (it ended first: %s)", r.out);
    tc_free(&r);
    cr_assert_neq(access(P("cut.mkv"), F_OK), 0, "a file exists under the final name after the kill");
    cr_assert_neq(access(P("cut.mkv.parts/seg_000011.mp4"), F_OK), 0, "the kill came too late to test anything");
    RUN(&r, VIDEO_ARGS, "--segment", "0.25", P("clip.mkv"), P("cut.mkv"));
    tc_expect_error(&r, "parts without --resume", "cut.mkv.parts", "--resume", NULL);
    tc_free(&r);
    RUN(&r, VIDEO_ARGS, "--segment", "0.25", "--resume", P("clip.mkv"), P("cut.mkv"));
    cr_assert(r.exited && r.status == 0, "resume failed: %s", r.err);
    expect_contains(r.out, "resuming after", "the resume line");
    tc_free(&r);
    expect_same_packets(P("whole.mkv"), P("cut.mkv"), "-map 0");
    cr_assert_neq(access(P("cut.mkv.parts"), F_OK), 0, "parts left after the resumed run");
}

/* A full disk while the final file is written (a file size limit, RLIMIT_FSIZE, just
 * under the final file's size, with SIGXFSZ ignored so writes fail with EFBIG): one
 * line, no file under the final name, the segments kept; resuming finishes the same
 * file. (The segments and the state file are smaller than the limit: 3 s of 128x64 in
 * 0.5 s segments, and a state of about 41 kB.) */
Test(video, full_disk_fails_cleanly_and_resumes) {
    make_clip("clip.mkv", 3, NULL);
    tc_write_tiny_model(P("m.d3w"));
    tc_result r;
    RUN(&r, VIDEO_ARGS, P("clip.mkv"), P("whole.mkv"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    struct stat st;
    cr_assert_eq(stat(P("whole.mkv"), &st), 0);
    const rlim_t limit = (rlim_t)st.st_size - 2048;
    cr_assert_gt(limit, 60000, "the final file (%ld bytes) is too small for this test", (long)st.st_size);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {limit, RLIM_INFINITY}, old;
    getrlimit(RLIMIT_FSIZE, &old);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    RUN(&r, VIDEO_ARGS, P("clip.mkv"), P("full.mkv"));
    setrlimit(RLIMIT_FSIZE, &old);
    tc_expect_error(&r, "full disk", "full.mkv", "File too large", NULL);
    tc_free(&r);
    cr_assert_neq(access(P("full.mkv"), F_OK), 0, "a file exists under the final name");
    cr_assert_eq(access(P("full.mkv.parts/seg_000005.mp4"), F_OK), 0, "the finished segments should be kept");
    RUN(&r, VIDEO_ARGS, "--resume", P("clip.mkv"), P("full.mkv"));
    cr_assert(r.exited && r.status == 0, "resume: %s", r.err);
    expect_contains(r.out, "all frames done", "nothing left but the final file");
    tc_free(&r);
    expect_same_packets(P("whole.mkv"), P("full.mkv"), "-map 0");
}

/* ---------------------------------------------------------------- errors */

Test(video, missing_ffmpeg) {
    make_clip("clip.mkv", 0.5, NULL);
    tc_write_tiny_model(P("m.d3w"));
    mkdir(P("empty"), 0755);
    setenv("PATH", P("empty"), 1);
    tc_result r;
    RUN(&r, VIDEO_ARGS, P("clip.mkv"), P("out.mkv"));
    tc_expect_error(&r, "no ffmpeg in PATH", "ffmpeg not found", "apt-get install ffmpeg", NULL);
    tc_free(&r);
    cr_assert_neq(access(P("out.mkv"), F_OK), 0);
}

Test(video, broken_media) {
    need_ffmpeg();
    tc_write_tiny_model(P("m.d3w"));
    FILE *f = fopen(P("junk.mp4"), "wb");
    for (int i = 0; i < 5000; i++) fputc((int)(256 * nn_hash_uniform(3, (uint64_t)i)), f);
    fclose(f);
    tc_result r;
    RUN(&r, VIDEO_ARGS, P("junk.mp4"), P("out.mkv"));
    tc_expect_error(&r, "broken media", "junk.mp4", NULL);
    tc_free(&r);
    cr_assert_neq(access(P("out.mkv"), F_OK), 0);
    cr_assert_neq(access(P("out.mkv.parts"), F_OK), 0, "a parts folder was left for nothing");
    /* a file without video */
    cr_assert_eq(sh(NULL, "ffmpeg -v error -f lavfi -i sine=duration=0.5 '%s'", P("sound.mka")), 0);
    RUN(&r, VIDEO_ARGS, P("sound.mka"), P("out.mkv"));
    tc_expect_error(&r, "no video stream", "sound.mka", "no video stream", NULL);
    tc_free(&r);
}

Test(video, existing_output_and_bad_arguments) {
    make_clip("clip.mkv", 0.5, NULL);
    tc_write_tiny_model(P("m.d3w"));
    FILE *f = fopen(P("out.mkv"), "w");
    fputs("mine", f);
    fclose(f);
    tc_result r;
    RUN(&r, VIDEO_ARGS, P("clip.mkv"), P("out.mkv"));
    tc_expect_error(&r, "output exists", "out.mkv", "exists", "--overwrite", NULL);
    tc_free(&r);
    char *s;
    sh(&s, "cat '%s'", P("out.mkv"));
    cr_assert_str_eq(s, "mine", "the existing file was touched");
    free(s);
    RUN(&r, VIDEO_ARGS, "--overwrite", P("clip.mkv"), P("out.mkv"));
    cr_assert(r.exited && r.status == 0, "--overwrite: %s", r.err);
    tc_free(&r);
    RUN(&r, VIDEO_ARGS, "--layout", "wiggle", P("clip.mkv"), P("w.mkv"));
    tc_expect_error(&r, "wiggle is no video layout", "--layout", "wiggle", NULL);
    cr_assert_eq(r.status, 2);
    tc_free(&r);
    RUN(&r, VIDEO_ARGS, P("clip.mkv"), P("out.avi"));
    tc_expect_error(&r, "unsupported container", "out.avi", ".mkv or .mp4", NULL);
    tc_free(&r);
    RUN(&r, VIDEO_ARGS, P("nope.mkv"), P("x.mkv"));
    tc_expect_error(&r, "missing input", "nope.mkv", NULL);
    tc_free(&r);
}

/* A folder: videos found below it (the pattern), outputs named for players in the same
 * subfolders, a broken file failing alone, a summary; a second run skips. */
Test(video, folder_batch_names_skips_and_counts) {
    make_clip("clip.mkv", 0.5, NULL);
    tc_write_tiny_model(P("m.d3w"));
    cr_assert_eq(sh(NULL, "mkdir -p '%s/in/a' && cp '%s' '%s/in/a/one.mkv' && head -c 3000 /dev/urandom > '%s/in/bad.mp4' "
                         "&& echo notes > '%s/in/notes.txt'", root, P("clip.mkv"), root, root, root), 0);
    tc_result r;
    RUN(&r, VIDEO_ARGS, "--layout", "sbs-half", P("in"), P("out"));
    cr_assert(r.exited && r.status == 1, "one bad file: exit 1, got %d: %s", r.status, r.err);
    expect_contains(r.out, "1 converted, 0 skipped, 1 failed", "summary");
    expect_contains(r.err, "bad.mp4", "the failure names the file");
    cr_assert_eq(access(P("out/a/one_LR.mkv"), F_OK), 0, "out/a/one_LR.mkv missing:\n%s", r.out);
    tc_free(&r);
    RUN(&r, VIDEO_ARGS, "--layout", "sbs-half", P("in"), P("out"));
    expect_contains(r.out, "0 converted, 1 skipped, 1 failed", "second run");
    tc_free(&r);
}

/* --start 0.5 --duration 0.5: the frames whose time is in [0.5, 1.0), audio cut alike. */
Test(video, start_and_duration_convert_a_part) {
    make_clip("clip.mkv", 1.5, NULL);
    tc_write_tiny_model(P("m.d3w"));
    tc_result r;
    RUN(&r, VIDEO_ARGS, "--start", "0.5", "--duration", "0.5", P("clip.mkv"), P("part.mkv"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    char *src = probe(P("clip.mkv"), "-select_streams v:0 -show_entries packet=pts_time -of csv=p=0");
    int want = 0;
    double first = 1e9;
    for (char *save, *t = strtok_r(src, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        double v = atof(t);
        if (v >= 0.5 && v < 1.0) want++, first = fmin(first, v);
    }
    free(src);
    char *n = probe(P("part.mkv"), "-count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of default=nw=1:nk=1");
    cr_assert_eq(atoi(n), want, "frames in [0.5, 1.0): %d, converted %s", want, n);
    free(n);
    char *s = probe(P("part.mkv"), "-select_streams v:0 -show_entries stream=start_time -of default=nw=1:nk=1");
    cr_assert(fabs(atof(s) - (first - 0.5)) < 0.0015, "the part's first frame at %s, expected %.3f", s, first - 0.5);
    free(s);
    /* the audio cut alike: its last packet starts within the last audio frame (1024
     * samples at 44.1 kHz, 23 ms) before 0.5 s */
    cr_assert_eq(sh(&s, "ffprobe -v error -select_streams a:0 -show_entries packet=pts_time -of csv=p=0 '%s' | tail -1",
                    P("part.mkv")), 0);
    cr_assert(atof(s) < 0.5 && atof(s) >= 0.5 - 0.0233, "the part's last audio packet at %s", s);
    free(s);
}

/* A variable frame rate (every frame after the tenth 20 ms later than the one before):
 * the output has the source's timestamps. */
Test(video, variable_frame_rate_is_kept) {
    need_ffmpeg();
    tc_write_tiny_model(P("m.d3w"));
    char *err;
    cr_assert_eq(sh(&err, "ffmpeg -v error -f lavfi -i testsrc=s=128x64:r=24:d=1 -vf \"setpts='PTS+if(gt(N,10),(N-10)*0.02/TB,0)'\" "
                          "-fps_mode passthrough -c:v libx264 -preset veryfast '%s' 2>&1", P("vfr.mkv")), 0, "%s", err);
    free(err);
    tc_result r;
    RUN(&r, VIDEO_ARGS, P("vfr.mkv"), P("out.mkv"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    char *a = sorted_pts(P("vfr.mkv")), *b = sorted_pts(P("out.mkv"));
    cr_assert_str_eq(a, b, "timestamps differ:\n%s\nvs\n%s", a, b);
    free(a), free(b);
}

/* BT.709 colour (an HD source): the output says bt709 as the source does, and its
 * colours decode as the source's (within the codec's error; saturated test-card colours
 * would move by several levels under the wrong matrix). */
Test(video, colour_signalling_is_kept) {
    need_ffmpeg();
    tc_write_shifting_model(P("m.d3w"), 8);
    char *err;
    cr_assert_eq(sh(&err, "ffmpeg -v error -f lavfi -i testsrc=s=128x64:r=24:d=0.5 -vf "
                          "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p -colorspace bt709 -color_primaries "
                          "bt709 -color_trc bt709 -color_range tv -c:v libx264 -preset veryfast '%s' 2>&1", P("hd.mkv")), 0,
                 "%s", err);
    free(err);
    tc_result r;
    RUN(&r, VIDEO_ARGS, "--layout", "sbs", P("hd.mkv"), P("out.mkv"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    tc_free(&r);
    const char *q = "-select_streams v:0 -show_entries stream=color_space,color_primaries,color_transfer,color_range -of "
                    "default=nw=1";
    char *a = probe(P("hd.mkv"), q), *b = probe(P("out.mkv"), q);
    cr_assert_str_eq(a, b, "colour signalling differs:\n%s\nvs\n%s", a, b);
    free(a), free(b);
    int ns, no;
    uint8_t *src = tc_decode_frames(P("hd.mkv"), 128, 64, &ns), *got = tc_decode_frames(P("out.mkv"), 256, 64, &no);
    cr_assert(ns == 12 && no == ns, "frames %d, %d", ns, no);
    const double ref = codec_error(P("hd.mkv"), src, ns);
    for (int i = 0; i < ns; i++) {
        double e = region_mad(got + (size_t)i * 3 * 256 * 64, 256, 0, 0, src + (size_t)i * 3 * 128 * 64, 128, 64, -1);
        cr_assert(e <= 2 * ref + 1, "frame %d: the left view differs from the source by %.2f (codec error %.2f)", i, e, ref);
    }
    free(src), free(got);
}

/* The flicker figures deep3d prints: the raw disparity's mean frame-to-frame change is
 * the same whatever --smooth is; smoothed, it is below the raw one with --smooth 0.5
 * and equal to it with --smooth 0. */
static void flicker(const char *smooth, double *raw, double *smoothed) {
    tc_result r;
    RUN(&r, VIDEO_ARGS, "--smooth", smooth, "--overwrite", P("clip.mkv"), P("f.mkv"));
    cr_assert(r.exited && r.status == 0, "%s", r.err);
    const char *line = strstr(r.out, "disparity change per frame");
    cr_assert_not_null(line, "no flicker line:\n%s", r.out);
    const char *colon = strstr(line, "scene: ");
    cr_assert(colon && sscanf(colon, "scene: %lf px raw, %lf px smoothed", raw, smoothed) == 2, "%s", line);
    tc_free(&r);
}

Test(video, smoothing_reduces_the_disparity_flicker) {
    make_clip("clip.mkv", 1.5, NULL);
    tc_write_tiny_model(P("m.d3w"));
    double raw0, s0, raw5, s5;
    flicker("0", &raw0, &s0);
    flicker("0.5", &raw5, &s5);
    cr_assert(raw0 > 0 && fabs(raw0 - raw5) < 1e-9 * raw0, "raw figures differ: %g vs %g", raw0, raw5);
    cr_assert_eq(s0, raw0, "--smooth 0 changed the disparity");
    cr_assert_lt(s5, raw5, "--smooth 0.5: %g is not below the raw %g", s5, raw5);
}
