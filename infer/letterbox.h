/* Letterbox and pillarbox bars: the black bands a film of another aspect ratio carries
 * (a 2.39:1 movie in a 16:9 frame). deep3d infer and deep3d video convert the picture
 * inside them and copy the bars unchanged into both views (their disparity is 0, on
 * the screen), so the network never sees black bands and a 2.39:1 picture inside a
 * 1920 x 1080 frame needs one network window instead of two.
 *
 * Detection (letterbox_detect), on the BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of
 * an image (3, H, W) 0..255:
 *  - a row (column) is black when its mean luma is at most 24: the rule and default
 *    limit of FFmpeg's cropdetect filter (libavfilter/vf_cropdetect.c, limit 24 of
 *    255), so noisy black from a codec counts as black;
 *  - top = black rows from the top edge, bottom = from the bottom edge; the bars taken
 *    are min(top, bottom) on both sides (films are centred; a dark sky at the top with
 *    no band at the bottom is not a bar, and subtitles inside one band only shorten
 *    the cut), likewise min(left, right) for columns;
 *  - a bar must be at least max(2, 1% of the side) pixels, and the picture left inside
 *    at least half of the side (a black frame, a fade, has no bars).
 * Source: our own, with cropdetect's black rule. */
#ifndef INFER_LETTERBOX_H
#define INFER_LETTERBOX_H

#include "../nn/real.h"

/* The picture inside the bars: columns x0 .. x0 + w - 1, rows y0 .. y0 + h - 1. */
typedef struct letterbox {
    int x0, y0, w, h;
} letterbox;

/* The whole H x W frame (no bars). */
letterbox letterbox_full(int H, int W);

/* 1 when r is the whole H x W frame. */
int letterbox_is_full(const letterbox *r, int H, int W);

/* The picture rectangle of img (3, H, W) 0..255, by the rule above. */
void letterbox_detect(letterbox *r, const nn_real *img, int H, int W);

/* dst (C, r->h, r->w) <- the rectangle r of src (C, H, W). */
void letterbox_crop(nn_real *dst, const nn_real *src, int C, int H, int W, const letterbox *r);

/* The rectangle r of dst (C, H, W) <- src (C, r->h, r->w); the rest of dst is left. */
void letterbox_paste(nn_real *dst, const nn_real *src, int C, int H, int W, const letterbox *r);

#endif
