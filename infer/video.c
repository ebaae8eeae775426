/* deep3d video: converts 2D videos to stereo videos in any layout of infer/layouts.h,
 * every audio, subtitle and attachment stream, the chapters and the container's
 * metadata copied unchanged, the stereo layout signalled so players switch to 3D.
 *
 * Pipeline (three threads, a ring of --queue frames between them):
 *  1. reader: ffmpeg decodes the video stream into rgb24 frames with their timestamps
 *     (data/ffmpeg.h); frames are turned into planar floats;
 *  2. network (this thread): the BT.601 luma, the scene-cut test and, at a cut, the
 *     letterbox (infer/temporal.h); then the disparity of the picture inside the bars:
 *     warp mode: render_disparity (render.h), the network through infer_run_window
 *     on the model's device (CUDA too: the warp steps have no CUDA kernels yet, so they
 *     run on the host, as render_image defines them); blend mode: render_image on the
 *     CPU, and on CUDA render_cuda_prepare/launch/finish with two frames in flight (the
 *     host prepares frame i + 1 while the GPU works on frame i), as deep3d infer
 *     --device cuda renders;
 *  3. writer: the disparity smoothed over time (warp mode only: the blend renderer has
 *     no single disparity per pixel, so nothing is smoothed), then render_warp (warp
 *     mode); the bars put back; the layout composed; the frame sent to the segment's
 *     encoder.
 * So decoding, the network and encoding overlap. The right view is made exactly as
 * deep3d infer makes it (render_image = render_disparity + render_warp), on the
 * smoothed disparity.
 *
 * Segments and --resume: the output is built in OUT.parts/ from segments of
 * --segment seconds (a fixed number of frames, N = round(seconds * frame rate)), each
 * encoded by its own ffmpeg from the frames in order, so each starts with a keyframe.
 * A finished segment is committed under its name (seg_000000.mp4, ...) and then the
 * state file is rewritten atomically: the segment table, the last frame's timestamp,
 * and the temporal smoothing state after the segment's last frame (its smoothed
 * disparity and luma, the scene detector's MAFD and letterbox). A resumed run decodes
 * again from just before the first missing frame (seeking, then skipping frames by
 * timestamp) and continues the smoothing from the stored state, so every frame gets
 * the numbers an uninterrupted run gives it and the final file has the same content
 * (the same packets). At the end the segments are joined by ffmpeg's concat demuxer
 * with stream copy (their durations given, so the timestamps continue exactly) and
 * muxed with the source's other streams into OUT.tmp.<pid>, renamed to OUT; the parts
 * are then removed. Nothing half-written is ever left under the final name, and a
 * settings fingerprint stops a resume with other settings.
 *
 * Timestamps: every frame keeps its source timestamp (variable frame rate kept),
 * relative to the container's start (plus --start), so audio and video stay in sync;
 * the encoder gets the source's time base. Stereo signalling: Matroska StereoMode and,
 * for MP4, the st3d box (ffmpeg 5.1 writes it from the stereo side data with -strict
 * unofficial, side by side and top-bottom only, never right-eye-first), and the H.264
 * frame-packing SEI through x264 (both full and half layouts). The pixel aspect ratio
 * is the source's times the layout's factor (half layouts: a half-width view displays
 * at full width). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../data/ffmpeg.h"
#include "../data/files.h"
#include "../deep3d/cli.h"
#include "../deep3d/commands.h"
#include "../deep3d/model.h"
#include "../deep3d/runtime.h"
#include "infer.h"
#include "layouts.h"
#include "letterbox.h"
#include "render.h"
#include "render_cli.h"
#include "temporal.h"
#ifdef NN_WITH_CUDA
#include "render_cuda.h"
#endif

#define VIDEO_PATTERNS "*.mp4,*.mkv,*.mov,*.m4v,*.webm,*.avi,*.ts,*.m2ts,*.mts,*.mpg,*.mpeg,*.wmv,*.flv,*.ogv"

/* ---------------------------------------------------------------- options */

typedef struct video_opts {
    int layout, anaglyph, swap, letterbox, resume, overwrite, quiet;
    const char *codec, *preset, *pix_fmt, *container;
    double crf, start, duration, segment, smooth, scene;
    long queue, threads;
    render_config render; /* the model's (infer_render_config) */
    const char *model_path;
    nn_device device;
} video_opts;

/* ---------------------------------------------------------------- one conversion */

typedef struct seg_info {
    int64_t start_ns, end_ns; /* first frame's time; last frame's time + duration */
    int64_t frames;
} seg_info;

/* A frame between the stages. The box arrays have room for the whole frame. */
typedef struct vslot {
    uint8_t *rgb;            /* (H, W, 3) decoded */
    nn_real *left;           /* (3, H, W) */
    uint8_t *luma;           /* (H, W) */
    nn_real *lbox, *rbox, *dbox; /* (3, h, w) (3, h, w) (h, w): the picture inside the bars */
    int64_t pts, dur;        /* source ticks */
    long index;              /* frame number in the conversion */
    int cut;
    double mafd;
    letterbox box;
    render_info info;
#ifdef NN_WITH_CUDA
    render_cuda_job *job;
#endif
} vslot;

typedef struct vjob {
    const video_opts *o;
    deep3d_model *m;
    render_config cfg;
    const char *in, *out;
    char *parts;             /* OUT.parts */
    ff_media media;
    const ff_stream *vs;
    int W, H, ow, oh;        /* decoded frame size; output frame size */
    ff_rational tb, sar;
    long seg_frames;
    int64_t ref_ns;          /* time 0 of the output on the source clock */
    int64_t thr_start, thr_end; /* keep frames with thr_start <= pts < thr_end */
    double seek;             /* where the decoder starts (seconds), < 0: the beginning */
    long est_total;          /* frames expected in all (for the progress line), -1 unknown */
    char fingerprint[3 * PATH_MAX];

    /* resumable state */
    int n_seg, cap_seg;
    seg_info *segs;
    long next_index;         /* frames done */
    int64_t last_pts;        /* pts of the last frame done (INT64_MIN: none) */
    int complete;            /* every frame is in a segment */
    smoother sm;
    double state_mafd;
    letterbox state_box;

    /* pipeline */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vslot *slots;
    int Q;
    long n_read, n_rendered, n_written, n_start; /* counters; n_start: frames done before this run */
    int read_done, stop;
    char err[1024];
    double t0, net_seconds;
    int windows;             /* network windows of a frame (the last one rendered) */
} vjob;

static void job_error(vjob *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void job_error(vjob *j, const char *fmt, ...) {
    pthread_mutex_lock(&j->mu);
    if (!j->stop) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
        j->stop = 1;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int job_stopped(vjob *j) {
    pthread_mutex_lock(&j->mu);
    int s = j->stop;
    pthread_mutex_unlock(&j->mu);
    return s;
}

static void path_in_parts(char *buf, size_t size, const vjob *j, const char *name) {
    snprintf(buf, size, "%s/%s", j->parts, name);
}

static void seg_name(char *buf, size_t size, const vjob *j, int k) {
    char name[64];
    snprintf(name, sizeof name, "seg_%06d.mp4", k);
    path_in_parts(buf, size, j, name);
}

/* ---------------------------------------------------------------- state files */

#define STATE_MAGIC "D3VP"

static int write_state(vjob *j) {
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    path_in_parts(path, sizeof path, j, "state");
    files_tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return nn_fail("cannot write '%s': %s", tmp, strerror(errno));
    int32_t head[2] = {1, j->complete};
    int64_t nums[3] = {j->n_seg, j->next_index, j->last_pts};
    int32_t box[4] = {j->state_box.x0, j->state_box.y0, j->state_box.w, j->state_box.h};
    int ok = fwrite(STATE_MAGIC, 4, 1, f) == 1 && fwrite(head, sizeof head, 1, f) == 1 &&
             fwrite(nums, sizeof nums, 1, f) == 1 && fwrite(j->segs, sizeof *j->segs, (size_t)j->n_seg, f) == (size_t)j->n_seg &&
             fwrite(&j->state_mafd, sizeof j->state_mafd, 1, f) == 1 && fwrite(box, sizeof box, 1, f) == 1 &&
             smoother_save(&j->sm, f) == 0;
    const int e = errno;
    if (!ok) {
        fclose(f);
        unlink(tmp);
        return nn_fail("cannot write '%s': %s", tmp, strerror(e ? e : EIO));
    }
    if (files_close_synced(f, tmp)) { /* a full disk shows here, when the buffer is flushed */
        unlink(tmp);
        return -1;
    }
    return files_commit(tmp, path, 1);
}

/* 1 loaded, 0 no state file (nothing finished), -1 error. */
static int read_state(vjob *j) {
    char path[PATH_MAX];
    path_in_parts(path, sizeof path, j, "state");
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : nn_fail("cannot read '%s': %s", path, strerror(errno));
    char magic[4];
    int32_t head[2], box[4];
    int64_t nums[3];
    int ok = fread(magic, 4, 1, f) == 1 && !memcmp(magic, STATE_MAGIC, 4) && fread(head, sizeof head, 1, f) == 1 &&
             head[0] == 1 && fread(nums, sizeof nums, 1, f) == 1 && nums[0] >= 0 && nums[0] < (1 << 24);
    if (ok) {
        j->segs = malloc((size_t)(nums[0] ? nums[0] : 1) * sizeof *j->segs);
        ok = j->segs && fread(j->segs, sizeof *j->segs, (size_t)nums[0], f) == (size_t)nums[0] &&
             fread(&j->state_mafd, sizeof j->state_mafd, 1, f) == 1 && fread(box, sizeof box, 1, f) == 1;
    }
    if (!ok) {
        fclose(f);
        return nn_fail("'%s' is not a deep3d video state file (or it is damaged)", path);
    }
    j->cap_seg = j->n_seg = (int)nums[0], j->complete = head[1], j->next_index = (long)nums[1], j->last_pts = nums[2];
    j->state_box = (letterbox){box[0], box[1], box[2], box[3]};
    int rc = smoother_load(&j->sm, f);
    fclose(f);
    if (rc) return nn_fail_context("'%s'", path);
    j->sm.weight = j->o->render.mode == RENDER_WARP ? j->o->smooth : 0;
    return 1;
}

/* ---------------------------------------------------------------- stage 1: reader */

static void rgb_to_planar(nn_real *dst, const uint8_t *rgb, int H, int W) {
    const size_t plane = (size_t)H * W;
    for (size_t i = 0; i < plane; i++)
        dst[i] = rgb[3 * i], dst[plane + i] = rgb[3 * i + 1], dst[2 * plane + i] = rgb[3 * i + 2];
}

static void *reader_main(void *arg) {
    vjob *j = arg;
    ff_decoder d;
    double seek = j->seek;
    const int64_t first_wanted = j->thr_start;
    for (int attempt = 0;; attempt++) {
        if (ff_decoder_open(&d, j->in, j->vs->index, seek)) {
            job_error(j, "%s", nn_last_error());
            goto out;
        }
        if (d.W != j->W || d.H != j->H) {
            ff_decoder_close(&d);
            job_error(j, "'%s': the decoder gives %dx%d frames, the first pass gave %dx%d", j->in, d.W, d.H, j->W, j->H);
            goto out;
        }
        long skipped_before = 0;
        int restart = 0;
        for (;;) {
            pthread_mutex_lock(&j->mu);
            while (!j->stop && j->n_read - j->n_written >= j->Q) pthread_cond_wait(&j->cv, &j->mu);
            int stop = j->stop;
            vslot *s = &j->slots[j->n_read % j->Q];
            pthread_mutex_unlock(&j->mu);
            if (stop) break;
            int64_t pts, dur;
            int r = ff_decoder_read(&d, s->rgb, &pts, &dur);
            if (r < 0) {
                job_error(j, "%s", nn_last_error());
                break;
            }
            if (r == 0) break;
            if (pts < first_wanted) {
                skipped_before++;
                continue;
            }
            if (seek >= 0 && skipped_before == 0 && j->n_read == 0 && pts > first_wanted) {
                /* the seek went past the first frame we need: decode from the start */
                restart = 1;
                break;
            }
            if (pts >= j->thr_end) break;
            rgb_to_planar(s->left, s->rgb, j->H, j->W);
            s->pts = pts, s->dur = dur, s->index = j->n_start + j->n_read;
            pthread_mutex_lock(&j->mu);
            j->n_read++;
            pthread_cond_broadcast(&j->cv);
            pthread_mutex_unlock(&j->mu);
        }
        ff_decoder_close(&d);
        if (!restart || attempt > 0) break;
        seek = -1;
    }
out:
    pthread_mutex_lock(&j->mu);
    j->read_done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---------------------------------------------------------------- stage 2: network */

/* Luma, scene cut, letterbox, and the picture cut out of the frame. */
static int prepare_frame(vjob *j, scene_state *sc, vslot *s) {
    temporal_luma(s->luma, s->left, j->H, j->W);
    double score;
    if (scene_step(sc, s->luma, s->left, j->H, j->W, j->o->letterbox, &s->cut, &score, &s->mafd, &s->box)) return -1;
    if (!letterbox_is_full(&s->box, j->H, j->W)) letterbox_crop(s->lbox, s->left, 3, j->H, j->W, &s->box);
    return 0;
}

static const nn_real *box_left(const vjob *j, const vslot *s) {
    return letterbox_is_full(&s->box, j->H, j->W) ? s->left : s->lbox;
}

/* Waits for frame n_rendered to be decoded: its slot, or NULL at the end or a stop. */
static vslot *next_to_render(vjob *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->stop && j->n_rendered >= j->n_read && !j->read_done) pthread_cond_wait(&j->cv, &j->mu);
    vslot *s = !j->stop && j->n_rendered < j->n_read ? &j->slots[j->n_rendered % j->Q] : NULL;
    pthread_mutex_unlock(&j->mu);
    return s;
}

static void rendered(vjob *j, const vslot *s) {
    pthread_mutex_lock(&j->mu);
    j->windows = s->info.n_windows;
    j->n_rendered++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void render_stage_host(vjob *j, scene_state *sc) {
    vslot *s;
    while ((s = next_to_render(j))) {
        if (prepare_frame(j, sc, s)) {
            job_error(j, "%s", nn_last_error());
            return;
        }
        const double t = deep3d_now();
        int rc = j->cfg.mode == RENDER_WARP
                     ? render_disparity(s->dbox, &s->info, &j->cfg, infer_run_window, j->m, box_left(j, s), s->box.h, s->box.w)
                     : render_image(s->rbox, s->dbox, &s->info, &j->cfg, infer_run_window, j->m, box_left(j, s), s->box.h,
                                    s->box.w);
        j->net_seconds += deep3d_now() - t;
        if (rc) {
            job_error(j, "frame %ld: %s", s->index, nn_last_error());
            return;
        }
        rendered(j, s);
    }
}

#ifdef NN_WITH_CUDA
/* Two frames in flight: frame i + 1 is prepared (luma, scene, upload) while the GPU
 * works on frame i; then frame i is finished and handed on, and i + 1 launched. */
static void render_stage_cuda(vjob *j, scene_state *sc) {
    vslot *pending = NULL;
    long next = j->n_rendered;
    double t = deep3d_now();
    for (;;) {
        vslot *s = NULL;
        pthread_mutex_lock(&j->mu);
        while (!j->stop && next >= j->n_read && !j->read_done) pthread_cond_wait(&j->cv, &j->mu);
        if (!j->stop && next < j->n_read) s = &j->slots[next % j->Q];
        int stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        if (stop) break;
        if (s) {
            if (prepare_frame(j, sc, s) || render_cuda_prepare(&s->job, &j->cfg, box_left(j, s), s->box.h, s->box.w)) {
                job_error(j, "frame %ld: %s", s->index, nn_last_error());
                break;
            }
            next++;
        }
        if (pending) {
            render_cuda_job *job = pending->job;
            pending->job = NULL;
            if (render_cuda_finish(job, pending->rbox, pending->dbox, &pending->info)) {
                job_error(j, "frame %ld: %s", pending->index, nn_last_error());
                break;
            }
            j->net_seconds += deep3d_now() - t;
            rendered(j, pending);
            pending = NULL;
        }
        if (!s) break;
        t = deep3d_now();
        if (render_cuda_launch(s->job, infer_run_windows_gpu, j->m)) {
            job_error(j, "frame %ld: %s", s->index, nn_last_error());
            break;
        }
        pending = s;
    }
    for (int i = 0; i < j->Q; i++) render_cuda_free(j->slots[i].job), j->slots[i].job = NULL;
}
#endif

/* ---------------------------------------------------------------- stage 3: writer */

typedef struct writer {
    ff_encoder enc;
    int open;
    char tmp[PATH_MAX + 64], path[PATH_MAX];
    nn_real *right, *disp; /* (3, H, W), (H, W): the full frame */
    uint8_t *out;
    double last_print;
    /* the flicker measure: mean |d_t - d_t-1| of the raw and of the smoothed disparity,
     * summed over pairs of consecutive frames of one scene (same box) */
    nn_real *prev_raw, *prev_smooth; /* (h, w) of prev_box */
    letterbox prev_box;
    int prev_ok;
    double flicker_raw, flicker_smooth;
    long flicker_pairs;
} writer;

static int open_segment(vjob *j, writer *w, int64_t t_ns) {
    const int k = j->n_seg;
    seg_name(w->path, sizeof w->path, j, k);
    files_tmp_name(w->tmp, sizeof w->tmp, w->path);
    int sn, sd;
    layout_sar_factor(j->o->layout, &sn, &sd);
    int mode = layout_stereo_mode(j->o->layout, j->o->swap, NULL);
    ff_encode_opts eo = {.W = j->ow, .H = j->oh, .sar = {j->sar.num * sn, j->sar.den * sd},
                         /* right-eye-first modes are left to the final Matroska tag: ffmpeg's
                          * MP4 muxer would write them as left-right st3d boxes */
                         .stereo_mode = mode == 1 || mode == 3 ? mode : 0, .codec = j->o->codec, .crf = j->o->crf,
                         .preset = j->o->preset, .pix_fmt = j->o->pix_fmt,
                         .frame_packing = layout_frame_packing(j->o->layout, j->o->swap), .tb = j->tb, .format = "mp4",
                         .color_space = j->vs->color_space, .color_primaries = j->vs->color_primaries,
                         .color_transfer = j->vs->color_transfer, .color_range = j->vs->color_range};
    if (strcmp(j->o->codec, "libx264")) eo.frame_packing = -1;
    if (ff_encoder_open(&w->enc, w->tmp, &eo)) return -1;
    w->open = 1;
    if (j->n_seg == j->cap_seg) {
        int cap = j->cap_seg ? 2 * j->cap_seg : 64;
        seg_info *ns = realloc(j->segs, (size_t)cap * sizeof *ns);
        if (!ns) return nn_fail("out of memory for the segment table");
        j->segs = ns, j->cap_seg = cap;
    }
    j->segs[k] = (seg_info){t_ns, t_ns, 0};
    return 0;
}

/* Finishes the open segment, commits it and rewrites the state file. */
static int close_segment(vjob *j, writer *w, const vslot *last, int complete) {
    w->open = 0;
    if (ff_encoder_close(&w->enc)) {
        unlink(w->tmp);
        return -1;
    }
    if (files_commit(w->tmp, w->path, 1)) return -1;
    j->n_seg++;
    j->next_index = last->index + 1, j->last_pts = last->pts, j->complete = complete;
    j->state_mafd = last->mafd, j->state_box = last->box;
    return write_state(j);
}

static void format_eta(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0) || seconds > 1e7) {
        snprintf(buf, size, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

static void progress(vjob *j, writer *w, int segment_done) {
    if (j->o->quiet) return;
    const int tty = cli_is_tty();
    const double now = deep3d_now();
    if (tty && !segment_done && now - w->last_print < 0.25) return;
    if (!tty && !segment_done) return;
    w->last_print = now;
    pthread_mutex_lock(&j->mu);
    const long done = j->n_written;
    pthread_mutex_unlock(&j->mu);
    const long total = j->est_total > done + j->n_start ? j->est_total : done + j->n_start;
    const double fps = done / fmax(now - j->t0, 1e-9);
    char eta[32] = "?", of[32] = "";
    if (total > 0) {
        format_eta((double)(total - (done + j->n_start)) / fps, eta, sizeof eta);
        snprintf(of, sizeof of, "/%ld", total);
    }
    if (tty)
        fprintf(stderr, "\r%s: frame %ld%s  %.2f fps  ETA %s  segment %d   ", j->in, done + j->n_start, of, fps, eta,
                j->n_seg + (w->open ? 1 : 0));
    else
        printf("%s: segment %d done, frame %ld%s, %.2f fps, ETA %s\n", j->in, j->n_seg, done + j->n_start, of, fps, eta);
    fflush(tty ? stderr : stdout);
}

/* Waits for frame n_written to be rendered: its slot, or NULL at the end or a stop. */
static vslot *next_to_write(vjob *j, int *end) {
    pthread_mutex_lock(&j->mu);
    while (!j->stop && j->n_written >= j->n_rendered && !(j->read_done && j->n_rendered == j->n_read))
        pthread_cond_wait(&j->cv, &j->mu);
    *end = !j->stop && j->n_written >= j->n_rendered && j->read_done && j->n_rendered == j->n_read;
    vslot *s = !j->stop && j->n_written < j->n_rendered ? &j->slots[j->n_written % j->Q] : NULL;
    pthread_mutex_unlock(&j->mu);
    return s;
}

/* Smoothing, the right view, the bars, the layout: w->out holds the output frame. */
static int finish_frame(vjob *j, writer *w, vslot *s) {
    const int H = j->H, W = j->W, full = letterbox_is_full(&s->box, H, W);
    const size_t nd = (size_t)s->box.w * s->box.h;
    const int pair = w->prev_ok && !s->cut && !memcmp(&w->prev_box, &s->box, sizeof s->box);
    if (pair) w->flicker_raw += temporal_mean_abs_change(s->dbox, w->prev_raw, nd);
    memcpy(w->prev_raw, s->dbox, nd * sizeof *s->dbox);
    int changed; /* not needed: warp mode renders every frame from the smoothed d */
    if (smoother_step(&j->sm, s->dbox, &s->box, s->luma, H, W, s->cut, s->mafd, &changed)) return -1;
    if (pair) w->flicker_smooth += temporal_mean_abs_change(s->dbox, w->prev_smooth, nd), w->flicker_pairs++;
    memcpy(w->prev_smooth, s->dbox, nd * sizeof *s->dbox);
    w->prev_box = s->box, w->prev_ok = 1;
    if (j->cfg.mode == RENDER_WARP &&
        render_warp(s->rbox, box_left(j, s), s->dbox, s->box.h, s->box.w, s->info.scale, &j->cfg))
        return -1;
    const nn_real *right = s->rbox, *disp = s->dbox;
    if (!full) {
        memcpy(w->right, s->left, (size_t)3 * H * W * sizeof *w->right);
        memset(w->disp, 0, (size_t)H * W * sizeof *w->disp);
        letterbox_paste(w->right, s->rbox, 3, H, W, &s->box);
        letterbox_paste(w->disp, s->dbox, 1, H, W, &s->box);
        right = w->right, disp = w->disp;
    }
    const layout_input in = {s->left, right, disp, H, W, j->m->cfg.disparities, j->m->cfg.dmin, s->info.scale,
                             j->o->anaglyph, j->o->swap};
    return layout_compose(w->out, j->o->layout, &in);
}

static void writer_stage(vjob *j, writer *w) {
    vslot *s, keep, *last = NULL; /* keep: the last frame's numbers, once its slot is reused */
    int end = 0;
    while ((s = next_to_write(j, &end))) {
        if (finish_frame(j, w, s)) {
            job_error(j, "frame %ld: %s", s->index, nn_last_error());
            break;
        }
        const int64_t t_ns = ff_ticks_to_ns(s->pts, j->tb) - j->ref_ns, dur_ns = ff_ticks_to_ns(s->dur, j->tb);
        if (s->index % j->seg_frames == 0 && open_segment(j, w, t_ns)) {
            job_error(j, "%s", nn_last_error());
            break;
        }
        seg_info *g = &j->segs[j->n_seg];
        if (ff_encoder_write(&w->enc, w->out, t_ns - g->start_ns, dur_ns)) {
            job_error(j, "%s", nn_last_error());
            break;
        }
        g->frames++;
        g->end_ns = t_ns + (dur_ns > 0 ? dur_ns : 0);
        const int seg_end = (s->index + 1) % j->seg_frames == 0;
        if (seg_end && close_segment(j, w, s, 0)) {
            job_error(j, "%s", nn_last_error());
            break;
        }
        keep = *s, last = &keep;
        pthread_mutex_lock(&j->mu);
        j->n_written++;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        progress(j, w, seg_end);
    }
    if (end && !job_stopped(j)) {
        if (w->open) {
            if (close_segment(j, w, last, 1)) job_error(j, "%s", nn_last_error());
            else progress(j, w, 1);
        } else if (last) { /* the last segment closed exactly at the end */
            j->complete = 1;
            if (write_state(j)) job_error(j, "%s", nn_last_error());
        }
    }
    if (w->open) {
        ff_encoder_abort(&w->enc);
        unlink(w->tmp);
        w->open = 0;
    }
}

typedef struct writer_arg {
    vjob *j;
    writer *w;
} writer_arg;

static void *writer_main(void *arg) {
    writer_arg *a = arg;
    if (a->j->o->threads > 0) omp_set_num_threads((int)a->j->o->threads);
    writer_stage(a->j, a->w);
    return NULL;
}

/* ---------------------------------------------------------------- the final file */

static int is_text_subtitle(const char *codec) {
    const char *text[] = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "subviewer", NULL};
    for (int i = 0; text[i]; i++)
        if (!strcmp(codec, text[i])) return 1;
    return 0;
}

static int container_is_mp4(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot && (!strcasecmp(dot, ".mp4") || !strcasecmp(dot, ".m4v") || !strcasecmp(dot, ".mov"));
}

/* Joins the segments and muxes the source's other streams into OUT. */
static int mux_final(vjob *j) {
    const video_opts *o = j->o;
    char list[PATH_MAX], tmp[PATH_MAX + 64], url_list[PATH_MAX + 8], url_in[PATH_MAX + 8], url_tmp[PATH_MAX + 80];
    path_in_parts(list, sizeof list, j, "list.ffconcat");
    FILE *f = fopen(list, "w");
    if (!f) return nn_fail("cannot write '%s': %s", list, strerror(errno));
    fprintf(f, "ffconcat version 1.0\n");
    /* durations in whole microseconds from rounded start times, so the offsets the concat
     * demuxer adds up are the rounded start times themselves */
    for (int k = 0; k < j->n_seg; k++) {
        const int64_t a = (j->segs[k].start_ns + 500) / 1000,
                      b = ((k + 1 < j->n_seg ? j->segs[k + 1].start_ns : j->segs[k].end_ns) + 500) / 1000;
        fprintf(f, "file 'seg_%06d.mp4'\nduration %" PRId64 ".%06" PRId64 "\n", k, (b - a) / 1000000, (b - a) % 1000000);
    }
    if (files_close_synced(f, list)) return -1;
    const int mp4 = container_is_mp4(j->out);
    files_tmp_name(tmp, sizeof tmp, j->out);
    snprintf(url_list, sizeof url_list, "file:%s", list);
    snprintf(url_in, sizeof url_in, "file:%s", j->in);
    snprintf(url_tmp, sizeof url_tmp, "file:%s", tmp);
    char offset[64], ss[64], t[64], ts[32], lang[64], title[300], stereo[64];
    const int64_t t0 = (j->segs[0].start_ns + 500) / 1000;
    snprintf(offset, sizeof offset, "%" PRId64 ".%06" PRId64, t0 / 1000000, t0 % 1000000);
    snprintf(ss, sizeof ss, "%.6f", o->start);
    snprintf(t, sizeof t, "%.6f", o->duration);
    snprintf(ts, sizeof ts, "%" PRId64, j->tb.den);
    snprintf(lang, sizeof lang, "language=%s", j->vs->language[0] ? j->vs->language : "und");
    snprintf(title, sizeof title, "title=%s", j->vs->title);
    const char *stereo_name = NULL;
    layout_stereo_mode(o->layout, o->swap, &stereo_name);
    snprintf(stereo, sizeof stereo, "stereo_mode=%s", stereo_name ? stereo_name : "");
    const char *argv[96];
    int n = 0;
    /* -xerror: a failed write (a full disk) must end ffmpeg with an error status */
    const char *head[] = {"ffmpeg", "-nostdin", "-xerror", "-v", "error", "-itsoffset", offset, "-f", "concat", "-i", url_list};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) argv[n++] = head[i];
    /* a part (--start, --duration): the source is cut on input, so its clock starts at the
     * part's start as ours does (our timestamps count from there); -copypriorss 0 drops
     * the packets the seek brings from before the start (from the keyframe it lands on),
     * which would otherwise be kept at negative times and shift every stream */
    if (o->start > 0) argv[n++] = "-ss", argv[n++] = ss;
    if (o->duration > 0) argv[n++] = "-t", argv[n++] = t;
    const char *maps[] = {"-i", url_in, "-map", "0:v:0", "-map", "1:a?", "-map", "1:s?", "-c", "copy",
                          "-map_metadata", "1", "-map_chapters", "1",
                          /* the video stream's language and title are the source's; the tags the
                           * segments gave it (MP4 handler and vendor) go */
                          "-metadata:s:v:0", lang, "-metadata:s:v:0", title, "-metadata:s:v:0", "handler_name=",
                          "-metadata:s:v:0", "vendor_id=", "-disposition:v:0", "default"};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) argv[n++] = maps[i];
    if (o->start > 0) argv[n++] = "-copypriorss", argv[n++] = "0";
    if (mp4) {
        int has_sub = 0;
        for (int i = 0; i < j->media.n_streams; i++) has_sub |= !strcmp(j->media.streams[i].type, "subtitle");
        if (has_sub) argv[n++] = "-c:s", argv[n++] = "mov_text";
        argv[n++] = "-strict", argv[n++] = "unofficial";
        if (j->tb.num == 1) argv[n++] = "-video_track_timescale", argv[n++] = ts;
        if (!strcmp(o->codec, "libx265")) argv[n++] = "-tag:v", argv[n++] = "hvc1";
        argv[n++] = "-f", argv[n++] = "mp4";
    } else {
        argv[n++] = "-map", argv[n++] = "1:t?";
        if (stereo_name) argv[n++] = "-metadata:s:v:0", argv[n++] = stereo;
        argv[n++] = "-f", argv[n++] = "matroska";
    }
    argv[n++] = "-y", argv[n++] = url_tmp, argv[n] = NULL;
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "ffmpeg writing '%s'", j->out);
    if (ff_run(argv, NULL, what)) {
        unlink(tmp);
        return -1;
    }
    return files_commit(tmp, j->out, o->overwrite);
}

/* ---------------------------------------------------------------- setting up */

/* Removes the parts folder and everything in it (it holds only our files). */
static void remove_parts(const char *parts) {
    struct dirent **names;
    int n = scandir(parts, &names, NULL, NULL);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", parts, names[i]->d_name);
            unlink(p);
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
    rmdir(parts);
}

/* Stale temporary files and segments past the state's count go (an interrupted run
 * left them). */
static void clean_parts(const vjob *j) {
    struct dirent **names;
    int n = scandir(j->parts, &names, NULL, NULL);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        int k;
        if (strstr(name, ".tmp.") || (sscanf(name, "seg_%d.mp4", &k) == 1 && k >= j->n_seg) || !strcmp(name, "list.ffconcat")) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", j->parts, name);
            unlink(p);
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
}

static void fingerprint(vjob *j) {
    const video_opts *o = j->o;
    const render_config *c = &j->cfg;
    struct stat si, sm;
    char rin[PATH_MAX], rmod[PATH_MAX];
    if (!realpath(j->in, rin)) snprintf(rin, sizeof rin, "%s", j->in);
    if (!realpath(o->model_path, rmod)) snprintf(rmod, sizeof rmod, "%s", o->model_path);
    if (stat(j->in, &si)) memset(&si, 0, sizeof si);
    if (stat(o->model_path, &sm)) memset(&sm, 0, sizeof sm);
    snprintf(j->fingerprint, sizeof j->fingerprint,
             "deep3d video 1\ninput %s %lld %lld.%09ld\nmodel %s %lld %lld.%09ld\ndevice %s\n"
             "layout %s anaglyph %s swap %d letterbox %d smooth %.17g scene %.17g segment_frames %ld\n"
             "start %.17g duration %.17g codec %s crf %.17g preset %s pix_fmt %s\n"
             "render %d %d %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n",
             rin, (long long)si.st_size, (long long)si.st_mtim.tv_sec, si.st_mtim.tv_nsec, rmod, (long long)sm.st_size,
             (long long)sm.st_mtim.tv_sec, sm.st_mtim.tv_nsec, j->m->device == NN_CUDA ? "cuda" : "cpu",
             layout_name(o->layout), anaglyph_name(o->anaglyph), o->swap, o->letterbox, o->smooth, o->scene,
             j->seg_frames, o->start, o->duration, o->codec, o->crf, o->preset, o->pix_fmt, c->mode, c->disparity,
             c->interp, c->refine_radius, c->refine_eps, c->snap_radius, c->snap_tau, c->snap_kappa, c->gap,
             c->strength, c->convergence, c->aspect_tol, c->min_overlap);
}

/* The manifest: our fingerprint. Fresh: written; resume: compared. */
static int manifest(vjob *j, int fresh) {
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    path_in_parts(path, sizeof path, j, "manifest");
    if (fresh) {
        files_tmp_name(tmp, sizeof tmp, path);
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(j->fingerprint, f) < 0) {
            if (f) fclose(f);
            return nn_fail("cannot write '%s': %s", tmp, strerror(errno));
        }
        return files_close_synced(f, tmp) || files_commit(tmp, path, 1) ? -1 : 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) return nn_fail("'%s' has no manifest: not a deep3d video parts folder", j->parts);
    char buf[sizeof j->fingerprint];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (strcmp(buf, j->fingerprint)) {
        /* name the first line that differs */
        const char *a = buf, *b = j->fingerprint;
        while (*a && *b) {
            const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
            size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
            if (la != lb || memcmp(a, b, la))
                return nn_fail("the parts in '%s' were made with other settings or inputs (was \"%.*s\", now \"%.*s\"): "
                               "--overwrite starts over", j->parts, (int)la, a, (int)lb, b);
            a += la + (ea ? 1 : 0), b += lb + (eb ? 1 : 0);
        }
        return nn_fail("the parts in '%s' were made with other settings: --overwrite starts over", j->parts);
    }
    return 0;
}

static int alloc_slots(vjob *j) {
    const size_t plane = (size_t)j->H * j->W;
    j->slots = calloc((size_t)j->Q, sizeof *j->slots);
    if (!j->slots) return nn_fail("out of memory");
    for (int i = 0; i < j->Q; i++) {
        vslot *s = &j->slots[i];
        s->rgb = malloc(3 * plane), s->luma = malloc(plane);
        s->left = malloc(3 * plane * sizeof(nn_real)), s->lbox = malloc(3 * plane * sizeof(nn_real));
        s->rbox = malloc(3 * plane * sizeof(nn_real)), s->dbox = malloc(plane * sizeof(nn_real));
        if (!s->rgb || !s->luma || !s->left || !s->lbox || !s->rbox || !s->dbox)
            return nn_fail("out of memory for %d frames of %dx%d in flight (--queue)", j->Q, j->W, j->H);
    }
    return 0;
}

static void free_slots(vjob *j) {
    for (int i = 0; j->slots && i < j->Q; i++) {
        vslot *s = &j->slots[i];
        free(s->rgb), free(s->luma), free(s->left), free(s->lbox), free(s->rbox), free(s->dbox);
    }
    free(j->slots);
    j->slots = NULL;
}

static double q2d(ff_rational r) { return r.den > 0 ? (double)r.num / (double)r.den : 0; }

/* Probes, checks and plans; no file is made here. */
static int plan(vjob *j) {
    const video_opts *o = j->o;
    if (ff_probe(j->in, &j->media)) return -1;
    if (j->media.video < 0) return nn_fail("'%s' has no video stream", j->in);
    j->vs = &j->media.streams[j->media.video];
    const int mp4 = container_is_mp4(j->out);
    for (int i = 0; mp4 && i < j->media.n_streams; i++) {
        const ff_stream *s = &j->media.streams[i];
        if (!strcmp(s->type, "subtitle") && !is_text_subtitle(s->codec))
            return nn_fail("'%s': subtitle stream %d (%s) cannot be kept in MP4; write a .mkv", j->in, s->index,
                           s->codec[0] ? s->codec : "unknown codec");
    }
    /* the real frame size and time base come from the decoder itself (rotation applied) */
    ff_decoder d;
    if (ff_decoder_open(&d, j->in, j->vs->index, -1)) return -1;
    j->W = d.W, j->H = d.H, j->tb = d.tb, j->sar = d.sar;
    ff_decoder_close(&d);
    if (j->sar.num <= 0 || j->sar.den <= 0) j->sar = (ff_rational){1, 1};
    if (layout_size(o->layout, j->W, j->H, &j->ow, &j->oh)) return -1;
    const int sub_w = !strstr(o->pix_fmt, "444") && !strncmp(o->pix_fmt, "yuv", 3), sub_h = strstr(o->pix_fmt, "420") != NULL;
    if ((sub_w && j->ow % 2) || (sub_h && j->oh % 2))
        return nn_fail("the %s frame of '%s' would be %dx%d: --pix-fmt %s needs even sizes (try --pix-fmt yuv444p)",
                       layout_name(o->layout), j->in, j->ow, j->oh, o->pix_fmt);
    double fps = q2d(j->vs->avg_frame_rate);
    if (!(fps > 0)) fps = q2d(j->vs->r_frame_rate);
    if (!(fps > 0)) fps = 25;
    j->seg_frames = lround(o->segment * fps);
    if (j->seg_frames < 1) j->seg_frames = 1;
    const double start_time = isfinite(j->media.start_time) ? j->media.start_time : 0;
    j->ref_ns = llround((start_time + o->start) * 1e9); /* the output's clock: the source's, from the part's start */
    const double tick = q2d(j->tb);
    j->thr_start = o->start > 0 ? (int64_t)ceil((start_time + o->start) / tick - 1e-6) : INT64_MIN;
    j->thr_end = o->duration > 0 ? (int64_t)ceil((start_time + o->start + o->duration) / tick - 1e-6) : INT64_MAX;
    j->seek = o->start > 0.5 ? o->start - 0.5 : -1;
    double dur = isfinite(j->vs->duration) ? j->vs->duration : j->media.duration;
    if (o->duration > 0 && (!isfinite(dur) || o->start + o->duration < dur)) dur = o->start + o->duration;
    j->est_total = o->start == 0 && o->duration == 0 && j->vs->nb_frames > 0 ? j->vs->nb_frames
                   : isfinite(dur)                                           ? lround((dur - o->start) * fps)
                                                                             : -1;
    return 0;
}

/* Converts one file. Returns 0 converted, 1 skipped (the output exists and its name
 * was made here), -1 failed (also when the output named by the user exists). */
static int convert_file(deep3d_model *m, const video_opts *o, const char *in, const char *out, int named) {
    if (files_exists(out) && !o->overwrite) {
        if (named) return nn_fail("'%s' exists: --overwrite replaces it", out), -1;
        if (!o->quiet) printf("%s: skipped ('%s' exists; --overwrite replaces it)\n", in, out);
        return 1;
    }
    vjob *j = calloc(1, sizeof *j);
    if (!j) return nn_fail("out of memory"), -1;
    j->o = o, j->m = m, j->in = in, j->out = out, j->last_pts = INT64_MIN;
    j->cfg = infer_render_config(m, &o->render);
    smoother_init(&j->sm, o->render.mode == RENDER_WARP ? o->smooth : 0, SMOOTH_GATE);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (asprintf(&j->parts, "%s.parts", out) < 0) {
        free(j);
        return nn_fail("out of memory"), -1;
    }
    int rc = -1, lock_fd = -1, fresh = 1, made_parts = 0;
    scene_state sc;
    scene_init(&sc, o->scene);
    writer w = {0};
    if (plan(j)) goto done;
    fingerprint(j);
    if (files_exists(j->parts)) {
        if (o->overwrite) remove_parts(j->parts);
        else if (!o->resume) {
            nn_fail("'%s' holds an unfinished conversion: --resume continues it, --overwrite starts over", j->parts);
            goto done;
        }
    }
    {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (files_mkdirs(dir)) goto done;
        }
    }
    if (mkdir(j->parts, 0777) == 0) made_parts = 1;
    else if (errno != EEXIST) {
        nn_fail("cannot create '%s': %s", j->parts, strerror(errno));
        goto done;
    }
    {
        char lock[PATH_MAX];
        path_in_parts(lock, sizeof lock, j, "lock");
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB)) {
            nn_fail("'%s' is in use by another deep3d video (or cannot be locked: %s)", j->parts, strerror(errno));
            goto done;
        }
    }
    if (!made_parts) { /* resuming */
        if (manifest(j, 0)) goto done;
        int st = read_state(j);
        if (st < 0) goto done;
        fresh = st == 0;
    }
    if (fresh && manifest(j, 1)) goto done;
    clean_parts(j);
    if (!fresh) {
        j->n_start = j->next_index;
        if (!j->complete) {
            j->thr_start = j->last_pts + 1;
            const double t = (double)j->last_pts * q2d(j->tb) - (isfinite(j->media.start_time) ? j->media.start_time : 0);
            j->seek = t > 1.0 ? t - 1.0 : -1;
            if (j->sm.have && scene_restore(&sc, j->sm.luma, j->H, j->W, j->state_mafd, &j->state_box)) goto done;
        }
        if (!o->quiet)
            printf("%s: resuming after %d finished segment%s (%ld frames)%s\n", in, j->n_seg, j->n_seg == 1 ? "" : "s",
                   j->next_index, j->complete ? ", all frames done" : "");
    }
    j->t0 = deep3d_now();
    if (!j->complete) {
        j->Q = (int)o->queue;
        w.right = malloc((size_t)3 * j->H * j->W * sizeof *w.right);
        w.disp = malloc((size_t)j->H * j->W * sizeof *w.disp);
        w.out = malloc((size_t)3 * j->ow * j->oh);
        w.prev_raw = malloc((size_t)j->H * j->W * sizeof *w.prev_raw);
        w.prev_smooth = malloc((size_t)j->H * j->W * sizeof *w.prev_smooth);
        const int have_buffers = w.right && w.disp && w.out && w.prev_raw && w.prev_smooth;
        if (alloc_slots(j) || !have_buffers) {
            if (have_buffers) nn_fail_context("video");
            else nn_fail("out of memory for a %dx%d frame", j->W, j->H);
            goto done;
        }
        pthread_t reader, wthread;
        writer_arg wa = {j, &w};
        if (pthread_create(&reader, NULL, reader_main, j)) {
            nn_fail("cannot start a thread");
            goto done;
        }
        if (pthread_create(&wthread, NULL, writer_main, &wa)) {
            job_error(j, "cannot start a thread");
            pthread_join(reader, NULL);
            nn_fail("%s", j->err);
            goto done;
        }
#ifdef NN_WITH_CUDA
        if (m->device == NN_CUDA && j->cfg.mode == RENDER_BLEND) render_stage_cuda(j, &sc);
        else
#endif
            render_stage_host(j, &sc);
        pthread_mutex_lock(&j->mu);
        if (!j->stop && j->n_rendered < j->n_read) j->stop = 1; /* the render stage stopped early */
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(reader, NULL);
        pthread_join(wthread, NULL);
        if (cli_is_tty() && !o->quiet) fputc('\n', stderr);
        if (j->stop) {
            nn_fail("%s", j->err[0] ? j->err : "stopped");
            goto done;
        }
        if (j->n_seg == 0) {
            nn_fail("'%s': no frames in the part to convert", in);
            goto done;
        }
    }
    if (mux_final(j)) goto done;
    const double secs = deep3d_now() - j->t0;
    if (!o->quiet) {
        const long frames = j->n_written;
        char resumed[64] = "";
        if (j->n_start) snprintf(resumed, sizeof resumed, " (%ld done before)", j->n_start);
        printf("%s -> %s: %ld frames%s in %.1f s, %.2f fps end to end, %d network window%s per frame, the network "
               "stage busy %.1f s (%.2f fps)\n", in, out, frames, resumed, secs, frames / fmax(secs, 1e-9), j->windows,
               j->windows == 1 ? "" : "s", j->net_seconds, j->net_seconds > 0 ? frames / j->net_seconds : 0.0);
        if (w.flicker_pairs && j->cfg.mode == RENDER_WARP)
            printf("%s: disparity change per frame, mean |d_t - d_t-1| over %ld pairs of frames of one scene: %.4f px "
                   "raw, %.4f px smoothed (--smooth %g)\n", in, w.flicker_pairs, w.flicker_raw / w.flicker_pairs,
                   w.flicker_smooth / w.flicker_pairs, j->sm.weight);
    }
    remove_parts(j->parts);
    rc = 0;
done:
    if (rc && made_parts && j->n_seg == 0) remove_parts(j->parts); /* nothing worth resuming */
    if (lock_fd >= 0) close(lock_fd);
    scene_free(&sc);
    smoother_free(&j->sm);
    free_slots(j);
    free(w.right), free(w.disp), free(w.out), free(w.prev_raw), free(w.prev_smooth);
    free(j->segs);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->parts);
    free(j);
    return rc;
}

/* ---------------------------------------------------------------- the command */

/* OUT/REL/STEM<suffix>.<container> */
static void folder_output(char *buf, size_t size, const char *out_dir, const char *rel, const char *in, const video_opts *o) {
    char stem[256], name[512];
    deep3d_stem(in, stem, sizeof stem);
    snprintf(name, sizeof name, "%s%s.%s", stem, layout_video_suffix(o->layout), o->container);
    files_join(buf, size, out_dir, rel, name);
}

int cmd_video(int argc, char **argv) {
    const char *model_path = NULL, *device_name = "auto", *precision = "fp32", *layout = "sbs",
               *anaglyph = "dubois", *letterbox_mode = "detect", *patterns = VIDEO_PATTERNS;
    video_opts o = {.codec = "libx264", .preset = "medium", .pix_fmt = "yuv420p", .container = "mkv", .crf = 18,
                    .segment = 10, .smooth = 0.5, .scene = SCENE_THRESHOLD, .queue = 4};
    render_cli rcli;
    render_cli_defaults(&rcli);
    cli_option opts[32 + RENDER_CLI_OPTIONS] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled weights/" DEEP3D_BUNDLED_MODEL ")", 0, 0, NULL},
        {"layout", CLI_STRING, &layout, "NAME",
         "sbs (default), sbs-half, ou, ou-half, anaglyph, cross, right, depth or rgbd", 0, 0,
         "sbs|sbs-half|ou|ou-half|anaglyph|cross|right|depth|rgbd"},
        {"anaglyph", CLI_STRING, &anaglyph, "METHOD", "dubois (default), color, half-color or gray", 0, 0,
         "dubois|color|half-color|gray"},
        {"swap", CLI_FLAG, &o.swap, NULL, "the right view first (left/right swapped)", 0, 0, NULL},
        {"codec", CLI_STRING, &o.codec, "NAME", "libx264 (default) or libx265", 0, 0, "libx264|libx265"},
        {"crf", CLI_DOUBLE, &o.crf, "X", "x264/x265 constant rate factor (default 18)", 0, 51, NULL},
        {"preset", CLI_STRING, &o.preset, "NAME", "x264/x265 preset (default medium)", 0, 0,
         "ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow|placebo"},
        {"pix-fmt", CLI_STRING, &o.pix_fmt, "FMT", "encoder pixel format (default yuv420p)", 0, 0,
         "yuv420p|yuv422p|yuv444p|yuv420p10le|yuv422p10le|yuv444p10le"},
        {"container", CLI_STRING, &o.container, "EXT", "mkv (default) or mp4, for outputs named in a folder", 0, 0, "mkv|mp4"},
        {"start", CLI_DOUBLE, &o.start, "SEC", "convert from this time on (default 0)", 0, 1e9, NULL},
        {"duration", CLI_DOUBLE, &o.duration, "SEC", "convert this many seconds (default: to the end)", 0, 1e9, NULL},
        {"segment", CLI_DOUBLE, &o.segment, "SEC", "length of the resumable segments (default 10)", 0.01, 1e6, NULL},
        {"resume", CLI_FLAG, &o.resume, NULL, "continue an interrupted conversion from its last finished segment", 0, 0, NULL},
        {"overwrite", CLI_FLAG, &o.overwrite, NULL, "replace outputs that exist (and start unfinished ones over)", 0, 0, NULL},
        {"pattern", CLI_STRING, &patterns, "GLOBS", "video file names searched for in input folders (default: common video types)", 0, 0, NULL},
        {"smooth", CLI_DOUBLE, &o.smooth, "X",
         "temporal smoothing of the disparity: the weight of the past at a still pixel, 0 = off (default 0.5)", 0, 0.99, NULL},
        {"scene-threshold", CLI_DOUBLE, &o.scene, "X", "scene-cut score that resets the smoothing (default 10, as ffmpeg's scdet)", 0, 100, NULL},
        {"letterbox", CLI_STRING, &letterbox_mode, "MODE",
         "detect (default): black bars found at each scene cut and copied into both views; off: the whole frame",
         0, 0, "detect|off"},
        {"queue", CLI_INT, &o.queue, "N", "frames in flight between decoding, the network and encoding (default 4)", 2, 64, NULL},
        {"quiet", CLI_FLAG, &o.quiet, NULL, "no progress or summary lines", 0, 0, NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"precision", CLI_STRING, &precision, "P", "fp32 (default), tf32 or bf16 (CUDA only)", 0, 0, "fp32|tf32|bf16"},
        {"threads", CLI_INT, &o.threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
    };
    render_cli_add(opts, 23, &rcli);
    const char *args[2];
    int n_args;
    int rc = cli_parse("video", "[options] IN OUT", opts, argc, argv, args, 2, &n_args);
    if (rc) return rc > 0 ? 0 : 2;
    if (n_args != 2) return cli_error("video", "expected IN and OUT (usage: deep3d video [options] IN OUT)"), 2;
    render_config_default(&o.render);
    render_cli_apply(&rcli, &o.render);
    o.layout = layout_parse(layout), o.anaglyph = anaglyph_parse(anaglyph), o.letterbox = !strcmp(letterbox_mode, "detect");
    o.model_path = model_path;
    const char *in = args[0], *out = args[1];
    const int in_dir = files_is_dir(in), out_dir = in_dir || files_is_dir(out) || out[strlen(out) - 1] == '/';
    if (!files_exists(in)) return cli_error("video", "cannot open '%s': %s", in, strerror(ENOENT));
    if (!out_dir && !container_is_mp4(out)) {
        const char *dot = strrchr(out, '.');
        if (!dot || strcasecmp(dot, ".mkv"))
            return cli_error("video", "OUT '%s' must end in .mkv or .mp4, or be a folder", out), 2;
    }
    if (ff_check_program("ffmpeg") || ff_check_program("ffprobe")) return cli_error("video", "%s", nn_last_error());
    if (deep3d_setup_device(device_name, precision, 0, &o.device)) return cli_error("video", "%s", nn_last_error());
    deep3d_set_threads(o.threads);
    if (!o.model_path && !(o.model_path = deep3d_bundled_model()))
        return cli_error("video", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    signal(SIGPIPE, SIG_IGN); /* a dead ffmpeg is an EPIPE error, not our end */
    files_list list = {0};
    int converted = 0, skipped = 0, failed = 0;
    if (files_list_add(&list, in, patterns, out_dir ? out : NULL)) {
        files_list_free(&list);
        return cli_error("video", "%s", nn_last_error());
    }
    if (list.n == 0) {
        files_list_free(&list);
        return cli_error("video", "no video files matching '%s' in '%s'", patterns, in);
    }
    if (out_dir && files_mkdirs(out)) {
        files_list_free(&list);
        return cli_error("video", "%s", nn_last_error());
    }
    deep3d_model m;
    if (deep3d_model_load(&m, o.model_path, o.device)) {
        files_list_free(&list);
        return cli_error("video", "%s", nn_last_error());
    }
    for (int i = 0; i < list.n; i++) {
        char target[PATH_MAX];
        if (out_dir) folder_output(target, sizeof target, out, list.items[i].rel, list.items[i].path, &o);
        else snprintf(target, sizeof target, "%s", out);
        int r = convert_file(&m, &o, list.items[i].path, target, !out_dir);
        if (r < 0) cli_error("video", "%s", nn_last_error()), failed++;
        else if (r == 1) skipped++;
        else converted++;
    }
    deep3d_model_free(&m);
    if (!o.quiet) printf("video: %d converted, %d skipped, %d failed\n", converted, skipped, failed);
    if (failed && list.n > 1) cli_error("video", "%d of %d videos failed", failed, list.n);
    files_list_free(&list);
    return failed ? 1 : 0;
}
