/* Temporal stability for video: scene cuts, and the disparity smoothed over time so
 * the depth does not flicker from frame to frame. deep3d video runs the two halves in
 * different pipeline stages: scene_step before the network (it also picks the
 * letterbox, which may change only at a cut), smoother_step after it.
 *
 * Scene cuts (after FFmpeg's scdet filter, libavfilter/vf_scdet.c): with Y the BT.601
 * luma (0..255) of frame t,
 *     MAFD_t  = 100 * mean |Y_t - Y_t-1| / 256          (percent of the value range)
 *     score_t = min(MAFD_t, |MAFD_t - MAFD_t-1|)
 * and frame t starts a scene when score_t > threshold (scdet's default 10), or when it
 * is the first frame or its size differs. (scdet sums over every plane of its pixel
 * format; we use the luma only.)
 *
 * Smoothing: an exponential moving average of the disparity d_L per pixel, reset at
 * every scene start, with a motion gate:
 *     s_t(p) = g(p) * s_t-1(p) + (1 - g(p)) * d_t(p),
 *     g(p)   = weight * max(0, 1 - |Y_t(p) - Y_t-1(p)| / gate)
 * A still pixel keeps `weight` of its history (0: off; 0.5 averages over about 2
 * frames, 1 / (1 - weight) in general); a pixel whose brightness changed by `gate` or
 * more takes the new disparity alone, so a moving object's depth does not trail
 * behind it. The gate is the motion-adaptive recursive filter of video noise
 * reduction (the temporal part of FFmpeg's hqdn3d weighs the previous frame by a
 * decreasing function of the pixel difference), applied to disparities. Both run on
 * the host in float, in pixel order, so they give the same numbers on every run.
 *
 * Resumable: smoother_save writes the whole state (the smoothed map, the previous
 * luma, the previous MAFD, the scene's letterbox), smoother_load restores it, and
 * scene_restore gives scene_step the same starting point, so a conversion stopped
 * after frame t and resumed continues with exactly the numbers an uninterrupted run
 * has at frame t + 1.
 *
 * Errors: -1 + nn_fail("temporal: ...") on out of memory or a bad state file. */
#ifndef INFER_TEMPORAL_H
#define INFER_TEMPORAL_H

#include <stdint.h>
#include <stdio.h>

#include "../nn/real.h"
#include "letterbox.h"

/* scdet's default threshold */
#define SCENE_THRESHOLD 10.0
/* the luma change (0..255) at which a pixel keeps no history */
#define SMOOTH_GATE 32.0

/* Y (H, W) bytes <- BT.601 luma of img (3, H, W) 0..255, rounded. */
void temporal_luma(uint8_t *Y, const nn_real *img, int H, int W);

/* The scene detector's state (before the network). */
typedef struct scene_state {
    int H, W, have;
    uint8_t *luma;       /* (H, W) the previous frame's */
    double prev_mafd;
    letterbox box;       /* the current scene's picture rectangle */
    double threshold;    /* SCENE_THRESHOLD unless changed */
} scene_state;

void scene_init(scene_state *s, double threshold);
void scene_free(scene_state *s);

/* Frame t: Y (H, W) its luma (temporal_luma), img (3, H, W) the frame. Sets *cut
 * (1: a new scene starts here), *score (scdet's score, 0 at a scene's first frame),
 * *mafd, and *box: at a cut the letterbox is detected again when letterbox_on is set
 * (else the whole frame); otherwise the scene's box is kept. */
int scene_step(scene_state *s, const uint8_t *Y, const nn_real *img, int H, int W, int letterbox_on, int *cut,
               double *score, double *mafd, letterbox *box);

/* Sets the detector to what it was after a frame with luma Y, MAFD mafd and scene box. */
int scene_restore(scene_state *s, const uint8_t *Y, int H, int W, double mafd, const letterbox *box);

/* The smoother's state (after the network). */
typedef struct smoother {
    double weight, gate;
    int H, W, have;
    uint8_t *luma;       /* (H, W) the previous frame's luma */
    letterbox box;       /* the rectangle d covers */
    nn_real *d;          /* (box.h, box.w) the previous smoothed disparity */
    double mafd;         /* the previous frame's MAFD (kept for scene_restore) */
} smoother;

void smoother_init(smoother *s, double weight, double gate);
void smoother_free(smoother *s);

/* Frame t: d (box->h, box->w) its disparity inside the box, smoothed in place; Y its
 * full-frame luma; cut from scene_step (a cut, or another box, resets the average).
 * *changed = 1 when some value of d changed (then a right view rendered from the raw
 * d is out of date). With weight 0, d is never changed. */
int smoother_step(smoother *s, nn_real *d, const letterbox *box, const uint8_t *Y, int H, int W, int cut,
                  double mafd, int *changed);

/* State files: a fixed header ("D3TS", version 1, sizes), then the arrays, raw. */
int smoother_save(const smoother *s, FILE *f);
int smoother_load(smoother *s, FILE *f);

/* The mean absolute change of the disparity from one frame to the next, the flicker
 * measure: mean over pixels of |a - b| for two (n) maps. */
double temporal_mean_abs_change(const nn_real *a, const nn_real *b, size_t n);

#endif
