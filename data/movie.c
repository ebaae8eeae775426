/* 3D movies into stereo pairs. See movie.h. */
#include "movie.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/temporal.h"
#include "../nn/status.h"

#define GRID_W 96
#define GRID_H 48
#define TILES_X 4
#define TILES_Y 2
#define BLUR_R 4 /* 9 x 9 box */
#define BATCH 8
#define BLACK_LIMIT 24.0 /* cropdetect's, as letterbox.h */

movie_options movie_options_default(void) {
    return (movie_options){.every = 1, .fps = 0, .min_change = MOVIE_MIN_CHANGE, .scene_threshold = SCENE_THRESHOLD,
                           .letterbox = 1};
}

int movie_probe(const char *path, ff_media *m) {
    if (ff_probe(path, m)) return -1;
    if (m->video < 0) return nn_fail("'%s' has no video stream", path);
    return 0;
}

static inline double luma3(const uint8_t *p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }

/* ---------------------------------------------------------------- halves */

/* g (gh, gw) <- the luma of the w x h rectangle at (x0, y0) of rgb (H, W, 3), averaged
 * over the pixel area of each cell. */
static void grid_luma(float *g, int gw, int gh, const uint8_t *rgb, int W, int x0, int y0, int w, int h) {
    for (int gy = 0; gy < gh; gy++) {
        const int ya = y0 + (int)((long)gy * h / gh), yb = y0 + (int)((long)(gy + 1) * h / gh);
        for (int gx = 0; gx < gw; gx++) {
            const int xa = x0 + (int)((long)gx * w / gw), xb = x0 + (int)((long)(gx + 1) * w / gw);
            double s = 0;
            for (int y = ya; y < yb; y++)
                for (int x = xa; x < xb; x++) s += luma3(rgb + ((size_t)y * W + x) * 3);
            g[gy * gw + gx] = (float)(s / ((double)(yb - ya) * (xb - xa)));
        }
    }
}

/* ok <- 1 where the cell of g is not black (> BLACK_LIMIT); d <- g minus the mean of
 * the cells not black in its 9 x 9 window (clipped at the edges). Black cells (the
 * letterbox bars, which both halves of a frame share whatever its layout, and black
 * areas) take no part: their edges say nothing about the layout. */
static void detail(float *d, uint8_t *ok, const float *g, int gw, int gh) {
    for (int i = 0; i < gw * gh; i++) ok[i] = g[i] > BLACK_LIMIT;
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            double s = 0;
            int n = 0;
            for (int v = y - BLUR_R; v <= y + BLUR_R; v++)
                for (int u = x - BLUR_R; u <= x + BLUR_R; u++)
                    if (v >= 0 && v < gh && u >= 0 && u < gw && ok[v * gw + u]) s += g[v * gw + u], n++;
            d[y * gw + x] = n ? (float)(g[y * gw + x] - s / n) : 0.f;
        }
}

/* Zero-mean normalised correlation of the tw x th tile at (x, y) of a with the one at
 * (x + s, y) of b (both gw wide), over the cells usable in both; NAN when fewer than
 * half the tile's cells are, or either side has less than 1 luma level of standard
 * deviation (no detail to compare). */
static double tile_ncc(const float *a, const float *b, const uint8_t *oka, const uint8_t *okb, int gw, int x,
                       int y, int tw, int th, int s) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    int n = 0;
    for (int v = y; v < y + th; v++)
        for (int u = x; u < x + tw; u++) {
            if (!oka[v * gw + u] || !okb[v * gw + u + s]) continue;
            const double p = a[v * gw + u], q = b[v * gw + u + s];
            sa += p, sb += q, saa += p * p, sbb += q * q, sab += p * q, n++;
        }
    if (2 * n < tw * th) return NAN;
    const double va = saa - sa * sa / n, vb = sbb - sb * sb / n, cov = sab - sa * sb / n;
    if (va < n || vb < n) return NAN;
    return cov / sqrt(va * vb);
}

double movie_halves_match(const uint8_t *rgb, int W, int H, int over_under) {
    const int hw = over_under ? W : W / 2, hh = over_under ? H / 2 : H;
    if (hw < 8 || hh < 8) return NAN;
    const int gw = hw < GRID_W ? hw : GRID_W, gh = hh < GRID_H ? hh : GRID_H;
    const size_t cells = (size_t)gw * gh;
    float *buf = malloc(sizeof(float) * 4 * cells);
    uint8_t *ok = malloc(2 * cells);
    if (!buf || !ok) return free(buf), free(ok), NAN;
    float *ga = buf, *gb = ga + cells, *da = gb + cells, *db = da + cells;
    grid_luma(ga, gw, gh, rgb, W, 0, 0, hw, hh);
    grid_luma(gb, gw, gh, rgb, W, over_under ? 0 : hw, over_under ? hh : 0, hw, hh);
    detail(da, ok, ga, gw, gh), detail(db, ok + cells, gb, gw, gh);
    const int tw = gw / TILES_X, th = gh / TILES_Y, smax = gw / 8 > 1 ? gw / 8 : 1;
    double total = 0;
    int used = 0;
    for (int ty = 0; ty < TILES_Y; ty++)
        for (int tx = 0; tx < TILES_X; tx++) {
            const int x = tx * tw, y = ty * th;
            double best = NAN;
            for (int sh = -smax; sh <= smax; sh++) {
                if (x + sh < 0 || x + tw + sh > gw) continue;
                const double c = tile_ncc(da, db, ok, ok + cells, gw, x, y, tw, th, sh);
                if (c == c && !(c <= best)) best = c;
            }
            if (best == best) total += best, used++;
        }
    free(buf), free(ok);
    return used >= 3 ? total / used : NAN;
}

/* ---------------------------------------------------------------- layout */

static const char *full_or_half_why(stereo_layout l) {
    switch (l) {
    case STEREO_SBS: return "full-width views";
    case STEREO_SBS_HALF: return "half-width views, stretched back";
    case STEREO_OU: return "full-height views";
    default: return "half-height views, stretched back";
    }
}

/* Side by side or over-under (ou) -> the full or half layout by the frame's shape. */
static stereo_layout full_or_half(int ou, int W, int H) {
    const double a = (double)W / H;
    if (!ou) return a >= 2.5 ? STEREO_SBS : STEREO_SBS_HALF;
    return a <= 1.25 ? STEREO_OU : STEREO_OU_HALF;
}

/* Scores frames of the movie for both splits: their means into *sbs, *ou. */
static int score_frames(const char *path, const ff_media *m, double *sbs, double *ou, int *n) {
    const ff_stream *vs = &m->streams[m->video];
    double s_sbs = 0, s_ou = 0;
    int used = 0;
    const int seeking = isfinite(m->duration) && m->duration >= 30;
    const int opens = seeking ? MOVIE_PROBE_FRAMES : 1;
    const int per_open = seeking ? 24 : 240; /* frames read at most per start */
    uint8_t *rgb = NULL;
    for (int k = 0; k < opens && used < MOVIE_PROBE_FRAMES; k++) {
        ff_decoder d;
        double at = -1;
        if (seeking) at = (isfinite(m->start_time) ? m->start_time : 0) + m->duration * (k + 0.5) / MOVIE_PROBE_FRAMES;
        if (ff_decoder_open(&d, path, vs->index, at)) return free(rgb), -1;
        uint8_t *nb = realloc(rgb, (size_t)3 * d.W * d.H);
        if (!nb) {
            ff_decoder_close(&d), free(rgb);
            return nn_fail("'%s': out of memory for a %dx%d frame", path, d.W, d.H);
        }
        rgb = nb;
        for (int f = 0; f < per_open && used < MOVIE_PROBE_FRAMES; f++) {
            int64_t pts, dur;
            const int r = ff_decoder_read(&d, rgb, &pts, &dur);
            if (r < 0) return ff_decoder_close(&d), free(rgb), -1;
            if (r == 0) break;
            const double a = movie_halves_match(rgb, d.W, d.H, 0), b = movie_halves_match(rgb, d.W, d.H, 1);
            if (a != a && b != b) continue; /* too flat to tell */
            s_sbs += a == a ? a : 0, s_ou += b == b ? b : 0, used++; /* no detail to match: no match */
            if (seeking) break; /* one frame per position */
        }
        ff_decoder_close(&d);
    }
    free(rgb);
    *n = used;
    *sbs = used ? s_sbs / used : NAN, *ou = used ? s_ou / used : NAN;
    return 0;
}

int movie_detect_layout(const char *path, const ff_media *m, const char *name, movie_layout *out) {
    memset(out, 0, sizeof *out);
    out->sbs_score = out->ou_score = NAN;
    const ff_stream *vs = &m->streams[m->video];
    const int W = vs->width, H = vs->height;
    if (strcmp(name, "auto")) {
        stereo_layout l;
        if (stereo_layout_parse(name, &l)) return -1;
        if (l == STEREO_PAIRS) return nn_fail("--layout pairs does not apply to movies (auto, sbs, sbs-half, ou, ou-half)");
        out->layout = l, out->given = 1;
        snprintf(out->why, sizeof out->why, "%s (as given by --layout)", stereo_layout_name(l));
        return 0;
    }
    if (W <= 0 || H <= 0) return nn_fail("'%s': ffprobe gives no frame size for its video stream", path);
    /* 1. metadata */
    const char *sm = vs->stereo_mode, *sd = vs->stereo3d;
    int ou = -1, swap = 0;
    char src[160] = "";
    if (sm[0]) {
        snprintf(src, sizeof src, "stream tag stereo_mode=%s", sm);
        if (!strcmp(sm, "left_right")) ou = 0;
        else if (!strcmp(sm, "right_left")) ou = 0, swap = 1;
        else if (!strcmp(sm, "top_bottom")) ou = 1;
        else if (!strcmp(sm, "bottom_top")) ou = 1, swap = 1;
        else if (!strcmp(sm, "mono"))
            return nn_fail("'%s' is marked 2D (%s): not a stereo movie; give --layout to read it anyway", path, src);
        else
            return nn_fail("'%s' is packed as %s (%s): only side by side and over-under are read", path, sm, src);
    } else if (sd[0]) {
        snprintf(src, sizeof src, "Stereo 3D side data: %s%s", sd, vs->stereo3d_inverted ? ", inverted" : "");
        swap = vs->stereo3d_inverted;
        if (!strcmp(sd, "side by side")) ou = 0;
        else if (!strcmp(sd, "top and bottom")) ou = 1;
        else if (!strcmp(sd, "2D"))
            return nn_fail("'%s' is marked 2D (%s): not a stereo movie; give --layout to read it anyway", path, src);
        else
            return nn_fail("'%s' is packed as %s (%s): only side by side and over-under are read", path, sd, src);
    }
    if (ou >= 0) {
        out->layout = full_or_half(ou, W, H), out->swap = swap, out->from_metadata = 1;
        snprintf(out->why, sizeof out->why, "%s (from the %s; %dx%d frame: %s%s)", stereo_layout_name(out->layout), src,
                 W, H, full_or_half_why(out->layout), swap ? "; right view first: halves swapped" : "");
        return 0;
    }
    /* 2. the picture */
    double a, b;
    int n;
    if (score_frames(path, m, &a, &b, &n)) return -1;
    out->sbs_score = a, out->ou_score = b, out->frames_scored = n;
    if (n == 0)
        return nn_fail("cannot tell the stereo layout of '%s': no stereo metadata, and no frame has detail enough to "
                       "compare its halves; give --layout sbs, sbs-half, ou or ou-half", path);
    const int pick_ou = b > a;
    const double best = pick_ou ? b : a, other = pick_ou ? a : b;
    if (best < MOVIE_MATCH_MIN || best - other < MOVIE_MATCH_MARGIN)
        return nn_fail("cannot tell the stereo layout of '%s': no stereo metadata, and %s (side-by-side halves "
                       "match %.2f, over-under halves %.2f, mean of %d frame%s; needed: %.2f or more and %.2f ahead); "
                       "give --layout sbs, sbs-half, ou or ou-half", path,
                       best < MOVIE_MATCH_MIN ? "neither split's halves match" : "both splits' halves match alike", a,
                       b, n, n == 1 ? "" : "s", MOVIE_MATCH_MIN, MOVIE_MATCH_MARGIN);
    out->layout = full_or_half(pick_ou, W, H);
    snprintf(out->why, sizeof out->why,
             "%s (no stereo metadata; the %s halves match: %.2f against %.2f for %s, mean of %d frame%s; %dx%d "
             "frame: %s)", stereo_layout_name(out->layout), pick_ou ? "over-under" : "side-by-side", best, other,
             pick_ou ? "side by side" : "over-under", n, n == 1 ? "" : "s", W, H, full_or_half_why(out->layout));
    return 0;
}

/* ---------------------------------------------------------------- packing */

typedef struct {
    uint8_t *rgb; /* (H, W, 3) */
    long index;   /* decoded frame number */
    double t;     /* seconds from the stream's time zero */
} held_frame;

static void frame_luma(uint8_t *Y, const uint8_t *rgb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const double v = luma3(rgb + 3 * i);
        Y[i] = (uint8_t)(v >= 255 ? 255 : v + 0.5);
    }
}

static double central_mean(const uint8_t *Y, int W, int H) {
    double s = 0;
    long n = 0;
    for (int y = H / 4; y < 3 * H / 4; y++)
        for (int x = W / 4; x < 3 * W / 4; x++) s += Y[(size_t)y * W + x], n++;
    return n ? s / n : 0;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)abs((int)a[i] - (int)b[i]);
    return (double)s / (double)n;
}

/* The views of one held frame, cropped and encoded. ok = 0: *why says why. */
typedef struct {
    dataset_encoded enc;
    int ok, boxed;
    letterbox box;
    char why[600];
} batch_result;

static void encode_frame(const dataset_pack_config *cfg, const held_frame *f, int W, int H, const movie_layout *lay,
                         int use_letterbox, const char *path, batch_result *res) {
    image *fr = image_new(W, H), *l = NULL, *r = NULL;
    char what[600];
    snprintf(what, sizeof what, "'%s' frame %ld (%.3f s)", path, f->index, f->t);
    res->ok = 0, res->boxed = 0;
    if (!fr) goto fail;
    const size_t plane = (size_t)W * H;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) fr->data[c * plane + i] = f->rgb[3 * i + c];
    if (stereo_split_frame(fr, lay->layout, what, &l, &r)) goto fail;
    if (lay->swap) {
        image *t = l;
        l = r, r = t;
    }
    letterbox box = letterbox_full(l->h, l->w);
    if (use_letterbox) letterbox_detect(&box, l->data, l->h, l->w);
    if (!letterbox_is_full(&box, l->h, l->w)) {
        image *cl = image_crop(l, box.x0, box.y0, box.w, box.h), *cr = image_crop(r, box.x0, box.y0, box.w, box.h);
        image_free(l), image_free(r);
        l = cl, r = cr;
        if (!l || !r) goto fail;
        res->boxed = 1, res->box = box;
    }
    if (dataset_encode_pair(cfg, l, r, what, &res->enc)) goto fail;
    res->ok = 1;
    image_free(fr), image_free(l), image_free(r);
    return;
fail:
    snprintf(res->why, sizeof res->why, "%s", nn_last_error());
    image_free(fr), image_free(l), image_free(r);
}

/* Encodes the n held frames in parallel and appends them in order. */
static int flush_batch(dataset_writer *w, const char *path, held_frame *held, int n, int W, int H,
                       const movie_layout *lay, const movie_options *o, movie_stats *st) {
    const dataset_pack_config *cfg = dataset_writer_config(w);
    batch_result res[BATCH];
    memset(res, 0, sizeof res);
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < n; j++) encode_frame(cfg, &held[j], W, H, lay, o->letterbox, path, &res[j]);
    int rc = 0;
    for (int j = 0; j < n; j++) {
        if (!res[j].ok) {
            if (!rc) rc = nn_fail("%s", res[j].why);
            continue;
        }
        if (rc) {
            dataset_encoded_free(&res[j].enc);
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%.3fs", held[j].t);
        if (dataset_writer_add_encoded(w, &res[j].enc, (uint64_t)held[j].index, name)) {
            rc = -1;
            continue;
        }
        st->kept++;
        if (res[j].boxed) st->letterboxed++, st->box = res[j].box;
    }
    return rc;
}

int movie_pack(dataset_writer *w, const char *path, const ff_media *m, const movie_layout *lay,
               const movie_options *o, movie_stats *st, void (*progress)(void *ctx, const movie_stats *st),
               void *ctx) {
    memset(st, 0, sizeof *st);
    ff_decoder d;
    if (ff_decoder_open(&d, path, m->streams[m->video].index, -1)) return -1;
    const int W = d.W, H = d.H, ou = lay->layout == STEREO_OU || lay->layout == STEREO_OU_HALF;
    if (!ou && W % 2) return ff_decoder_close(&d), nn_fail("'%s': side-by-side frames need an even width, this one is %dx%d", path, W, H);
    if (ou && H % 2) return ff_decoder_close(&d), nn_fail("'%s': over-under frames need an even height, this one is %dx%d", path, W, H);
    st->view_w = lay->layout == STEREO_SBS ? W / 2 : W, st->view_h = lay->layout == STEREO_OU ? H / 2 : H;
    const size_t n = (size_t)W * H, fb = 3 * n;
    /* pending: accepted candidates waiting MOVIE_SCENE_GUARD frames for a cut; held: the batch */
    enum { PENDING = MOVIE_SCENE_GUARD + 2 };
    held_frame pending[PENDING], held[BATCH];
    int n_pending = 0, n_held = 0, rc = -1, have_ref = 0;
    uint8_t *Y = malloc(n), *ref = malloc(n), *frame = malloc(fb);
    uint8_t *pool[PENDING + BATCH];
    int n_pool = 0;
    for (int i = 0; i < PENDING + BATCH; i++)
        if ((pool[n_pool] = malloc(fb))) n_pool++;
    scene_state sc;
    scene_init(&sc, o->scene_threshold);
    if (!Y || !ref || !frame || n_pool < PENDING + BATCH) {
        nn_fail("'%s': out of memory for %dx%d frames", path, W, H);
        goto done;
    }
    const double step = o->fps > 0 ? 1.0 / o->fps : 0, tb = (double)d.tb.num / (double)d.tb.den;
    double next_t = 0;
    int64_t pts0 = 0;
    long guard_until = -1;
    for (long i = 0;; i++) {
        int64_t pts, dur;
        const int r = ff_decoder_read(&d, frame, &pts, &dur);
        if (r < 0) goto done;
        if (r == 0) break;
        st->decoded++;
        if (i == 0) pts0 = pts;
        const double t = (double)(pts - pts0) * tb;
        frame_luma(Y, frame, n);
        int cut;
        double score, mafd;
        letterbox unused;
        if (scene_step(&sc, Y, NULL, H, W, 0, &cut, &score, &mafd, &unused)) goto done;
        if (cut && i > 0) {
            st->cuts++;
            while (n_pending > 0 && pending[n_pending - 1].index >= i - MOVIE_SCENE_GUARD) {
                pool[n_pool++] = pending[--n_pending].rgb; /* dropped: too close before the cut */
                st->near_cuts++;
            }
            guard_until = i + MOVIE_SCENE_GUARD;
        }
        int candidate;
        if (step > 0) {
            candidate = t + 1e-9 >= next_t;
            if (candidate)
                while (next_t <= t + 1e-9) next_t += step;
        } else {
            candidate = i % o->every == 0;
        }
        if (candidate) {
            st->candidates++;
            if (i <= guard_until) st->near_cuts++;
            else if (central_mean(Y, W, H) <= BLACK_LIMIT) st->black++;
            else if (have_ref && mean_abs_diff(Y, ref, n) < o->min_change) st->duplicates++;
            else {
                memcpy(ref, Y, n), have_ref = 1;
                held_frame *p = &pending[n_pending++];
                p->rgb = pool[--n_pool], p->index = i, p->t = t;
                memcpy(p->rgb, frame, fb);
            }
        }
        /* release the pending frames no cut can reach any more */
        while (n_pending > 0 && (pending[0].index + MOVIE_SCENE_GUARD <= i || n_pending == PENDING)) {
            held[n_held++] = pending[0];
            memmove(pending, pending + 1, (size_t)--n_pending * sizeof *pending);
            if (n_held == BATCH) {
                if (flush_batch(w, path, held, n_held, W, H, lay, o, st)) goto done;
                for (int j = 0; j < n_held; j++) pool[n_pool++] = held[j].rgb;
                n_held = 0;
                if (progress) progress(ctx, st);
            }
        }
    }
    for (int j = 0; j < n_pending; j++) held[n_held++] = pending[j]; /* the end: no more cuts */
    n_pending = 0;
    if (n_held && flush_batch(w, path, held, n_held, W, H, lay, o, st)) goto done;
    if (progress) progress(ctx, st);
    rc = 0;
done:
    for (int j = 0; j < n_pending; j++) pool[n_pool++] = pending[j].rgb;
    for (int j = 0; j < n_held; j++) pool[n_pool++] = held[j].rgb;
    for (int j = 0; j < n_pool; j++) free(pool[j]);
    free(Y), free(ref), free(frame);
    scene_free(&sc);
    ff_decoder_close(&d);
    return rc;
}
