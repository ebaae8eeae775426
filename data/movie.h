/* 3D movies into stereo pairs for a packed dataset (deep3d dataset --from-video).
 *
 * A 3D movie file (side-by-side or over-under frames, data/stereo.h's frame layouts) is
 * decoded by ffmpeg into rgb24 frames on a pipe (data/ffmpeg.h's ff_decoder: packed RGB,
 * 8 bits per channel, row-major, 3 W bytes per row, top row first); each kept frame is
 * split into its two views (stereo_split_frame), the letterbox bars of the left view
 * are cropped from both (infer/letterbox.h), and the pair is fitted to the dataset's
 * base size and appended through the dataset writer (data/dataset.h), one record per
 * frame: its frame number is the decoded frame's index in the stream (0-based), its
 * frame name the frame's time in seconds ("12.345s").
 *
 * Layout (movie_detect_layout), for "auto":
 *  1. the container's stereo metadata, when present: the stream tag stereo_mode
 *     (Matroska StereoMode, RFC 9559: left_right / right_left = side by side,
 *     top_bottom / bottom_top = over-under; right or bottom first: the halves are
 *     swapped), else the stream's "Stereo 3D" side data ("side by side", "top and
 *     bottom", inverted = right view first). "mono" / "2D" and other packings
 *     (checkerboard, interleaved lines, frame sequential) are refused;
 *  2. else the picture: up to MOVIE_PROBE_FRAMES frames with detail (spread over the
 *     movie by seeking when it lasts 30 s or more, else the first ones) are scored
 *     with movie_halves_match for both splits; the split whose halves match is taken
 *     when its mean score is at least MOVIE_MATCH_MIN and exceeds the other's by
 *     MOVIE_MATCH_MARGIN; otherwise the movie is refused (nothing is guessed).
 *     Which half is the left view cannot be seen this way: left (top) first is
 *     assumed, as in every layout of data/stereo.h.
 *  Full or half: side by side is full-width (sbs) when the frame is at least 2.5
 *  times as wide as high (each half 1.25:1 or wider; 3840x1080), else half-width
 *  (sbs-half; 1920x1080); over-under is full-height (ou) when the frame is at most
 *  1.25 times as wide as high (1920x2160), else half-height (ou-half; 1920x1080).
 *  Storage pixels are used (the sample aspect ratio is ignored, as --from-pairs
 *  ignores it: a half layout is squeezed in storage whatever it signals).
 *
 * Frame selection (movie_pack), on the decoded frames in order:
 *  - candidates: every --every N'th decoded frame (index % N == 0), or with fps > 0
 *    the first frame at or after each multiple of 1 / fps seconds from the first
 *    frame's timestamp;
 *  - scene cuts: infer/temporal.h's scene_step (FFmpeg scdet's score on the BT.601
 *    luma of the whole frame, threshold SCENE_THRESHOLD) on every decoded frame (not
 *    only candidates; the first frame is not a cut); a candidate within
 *    MOVIE_SCENE_GUARD decoded frames of a cut (before or after it) is skipped: the
 *    cut frame and its neighbours are where codecs smear and dissolves blend two shots;
 *  - black frames: a candidate whose mean luma over the central half of the frame
 *    (rows H/4 .. 3H/4, columns W/4 .. 3W/4: inside any letterbox) is at most 24
 *    (cropdetect's black limit, as letterbox.h) is skipped (fades, black between
 *    titles);
 *  - near-duplicates: a candidate whose mean absolute luma difference (0..255, whole
 *    frame) to the last frame kept is below min_change is skipped (a still shot gives
 *    one pair, not hundreds);
 *  - letterbox: detected on each kept frame's left view (letterbox_detect) and
 *    cropped from both views.
 *
 * Errors: -1 after nn_fail() with one line naming the file: ffmpeg's and ffprobe's
 * failures (data/ffmpeg.h), "'<file>' has no video stream", an odd frame width for
 * side by side ("'<file>': side-by-side frames need an even width, this one is
 * 1279x720"), a refused layout ("cannot tell the stereo layout of '<file>': ..."),
 * the writer's errors. Nothing prints. */
#ifndef DATA_MOVIE_H
#define DATA_MOVIE_H

#include <stdint.h>

#include "../infer/letterbox.h"
#include "dataset.h"
#include "ffmpeg.h"
#include "stereo.h"

/* frames scored to tell side by side from over-under */
#define MOVIE_PROBE_FRAMES 9
/* the mean score the matching split needs, and its lead over the other split */
#define MOVIE_MATCH_MIN 0.5
#define MOVIE_MATCH_MARGIN 0.25
/* decoded frames skipped on each side of a scene cut */
#define MOVIE_SCENE_GUARD 2
/* default near-duplicate limit: mean |dY| (luma levels 0..255) to the last kept frame */
#define MOVIE_MIN_CHANGE 1.5

/* The layout of a movie's frames. */
typedef struct movie_layout {
    stereo_layout layout; /* STEREO_SBS, STEREO_SBS_HALF, STEREO_OU or STEREO_OU_HALF */
    int swap;             /* 1: the right view comes first (metadata said so): halves swapped */
    int from_metadata;    /* 1: from the stream's stereo metadata */
    int given;            /* 1: named by the caller, not detected */
    double sbs_score, ou_score; /* mean movie_halves_match of the frames scored (NAN if none) */
    int frames_scored;
    char why[512];        /* one line: the layout and why ("sbs-half (no stereo metadata;
                           * side-by-side halves match 0.93, over-under 0.21, 9 frames;
                           * 1920x1080 frame: half-width views)") */
} movie_layout;

/* How frames are chosen (see the top). */
typedef struct movie_options {
    long every;        /* keep candidates every N decoded frames (>= 1); ignored when fps > 0 */
    double fps;        /* > 0: candidates at this many frames per second of movie time */
    double min_change; /* near-duplicate limit (MOVIE_MIN_CHANGE; 0 keeps every candidate) */
    double scene_threshold; /* scdet threshold (SCENE_THRESHOLD) */
    int letterbox;     /* 1: crop letterbox bars (default) */
} movie_options;

/* every 1, fps 0, MOVIE_MIN_CHANGE, SCENE_THRESHOLD, letterbox on. */
movie_options movie_options_default(void);

/* What movie_pack did with one movie's frames. */
typedef struct movie_stats {
    long decoded;     /* frames decoded */
    long candidates;  /* frames chosen by every / fps */
    long kept;        /* pairs appended */
    long duplicates;  /* candidates skipped as near-duplicates */
    long near_cuts;   /* candidates skipped near a scene cut */
    long cuts;        /* scene cuts seen (the first frame not counted) */
    long black;       /* candidates skipped as black */
    long letterboxed; /* kept pairs whose views were cropped */
    letterbox box;    /* the last crop applied (x0, y0, w, h in view pixels) */
    int view_w, view_h; /* size of a view after the split, before cropping */
} movie_stats;

/* ffprobe's view of path (ff_probe), with a video stream. Errors: ff_probe's,
 * "'<path>' has no video stream". */
int movie_probe(const char *path, ff_media *m);

/* How well the two halves of one frame match as a stereo pair, for one split:
 * rgb (H, W, 3) packed rgb24; over_under 0: the left and right halves (W/2 x H each),
 * 1: the top and bottom halves (W x H/2 each). Each half's BT.601 luma is averaged
 * over pixel areas into a grid of at most 96 x 48 cells; black cells (mean luma <= 24,
 * cropdetect's limit: letterbox bars, which both halves of any frame share, and black
 * areas) are left out; the others keep their detail (the cell minus the mean of the
 * non-black cells of its 9 x 9 window: edges and texture, not the overall shading
 * that any two halves of a picture share). The grid is cut into 4 x 2 tiles; each
 * tile of the first half is compared with the second half's shifted horizontally by
 * up to 1/8 of the grid width (a stereo pair differs by horizontal disparity, in both
 * layouts; per tile, so near and far things get their own shift) by the zero-mean
 * normalised correlation over the cells non-black in both, the best shift kept
 * (a shift needs half the tile's cells and 1 luma level of standard deviation on
 * both sides). Returns the mean over the tiles that had a shift: near 1 for the two
 * views of a stereo pair (0.6 to 0.9 for KITTI pairs through x264, whose disparities
 * are large), about 0.1 for unrelated pictures; NAN when fewer than 3 tiles could be
 * compared (a flat or black frame) or a half is smaller than 8 x 8 pixels. */
double movie_halves_match(const uint8_t *rgb, int W, int H, int over_under);

/* The layout of path's frames. name: "auto", or a layout of stereo_layout_parse other
 * than "pairs" (taken as given; out->why says so). m: movie_probe's. With "auto" the
 * metadata or the picture decides (see the top), and out->why says which and why.
 * Errors: a bad name ("--layout pairs does not apply to movies"), ffmpeg's,
 * "cannot tell the stereo layout of '<path>': <scores>; give --layout sbs, sbs-half,
 * ou or ou-half", "'<path>' is marked 2D ..." , "'<path>' is <packing>: only side by
 * side and over-under are read". */
int movie_detect_layout(const char *path, const ff_media *m, const char *name, movie_layout *out);

/* Decodes path (its video stream m->streams[m->video]) from the start, chooses frames
 * by o (see the top) and appends each kept pair to the writer's current source
 * (dataset_writer_begin_source first), fitted and encoded with the writer's
 * configuration, in decoding order. Frames are split, cropped and encoded in parallel
 * (OpenMP, batches of 8). progress (may be NULL) is called with st after every batch.
 * st is filled whatever happens. Errors: ffmpeg's (a file cut short fails when its
 * frames end), an odd frame size for the layout, the writer's, out of memory. */
int movie_pack(dataset_writer *w, const char *path, const ff_media *m, const movie_layout *lay,
               const movie_options *o, movie_stats *st, void (*progress)(void *ctx, const movie_stats *st),
               void *ctx);

#endif
