/* Augmentation that keeps stereo pairs valid (DEEP3D.md "Training").
 *
 * One geometric transform for both views, or the disparities break:
 *   1. ONE crop of the network's aspect (W:H, 2.4:1 at 384x160), its size a random
 *      fraction (scale_min..scale_max) of the largest such crop that fits the views,
 *      at a random position; the same rectangle is cut from both views;
 *   2. both crops resized to the network resolution (image_resize: separable cubic, anti-aliased);
 *   3. with probability flip_prob, a horizontal flip WITH the left/right swap:
 *      new left = flip(right), new right = flip(left). (Flipping alone would turn
 *      content that moves left between the views into content that moves right.)
 *   4. the same colour jitter on both views: per pixel, saturation around the BT.601
 *      luma (0.299 R + 0.587 G + 0.114 B), contrast around 127.5, then brightness as a
 *      gain; each gain in [1 - jitter, 1 + jitter]; results clamped to 0..255.
 *      It is a function of the pixel's own colour only, so equal input pixels in the
 *      two views stay equal.
 * Evaluation uses augment_center: the largest centred crop of the network aspect,
 * resized, no flip, no jitter.
 *
 * The random draws are a pure function of (seed, counter): nn_hash_uniform(seed,
 * 8 * counter + j) for j = 0..6 (nn/backend.h), so a data loader can reproduce the
 * augmentation of any sample from its global index.
 */
#ifndef DATA_AUGMENT_H
#define DATA_AUGMENT_H

#include <stdint.h>

#include "image.h"

typedef struct {
    double scale_min, scale_max; /* crop side / side of the largest crop: 0.6, 1.0 */
    double flip_prob;            /* probability of flip + swap: 0.5 */
    double jitter;               /* colour gains in [1 - jitter, 1 + jitter]: 0.1 */
} augment_config;

/* The defaults above. */
augment_config augment_defaults(void);

/* One sample's augmentation. */
typedef struct {
    int x, y, w, h;  /* crop rectangle in the source views (pixels, top-left x, y) */
    int flip;        /* 1: new left = flip(right), new right = flip(left) */
    nn_real brightness, contrast, saturation; /* gains; 1 = unchanged */
} augment_params;

/* The largest crop of aspect net_w:net_h (rounded to whole pixels, at least 1x1)
 * that fits a src_w x src_h view. */
void augment_largest_crop(int src_w, int src_h, int net_w, int net_h, int *crop_w, int *crop_h);

/* Draws one sample's augmentation for views of src_w x src_h and a network input of
 * net_w x net_h from nn_hash_uniform(seed, 8 * counter + j). The crop is
 * round(scale * largest crop width) wide and of the network aspect.
 * Returns 0, or -1 + nn_fail on a bad configuration (scale outside (0, 1], sizes < 1). */
int augment_draw(augment_params *p, const augment_config *cfg, int src_w, int src_h, int net_w,
                 int net_h, uint64_t seed, uint64_t counter);

/* The evaluation transform: the largest centred crop of the network aspect, no flip,
 * gains 1. */
void augment_center(augment_params *p, int src_w, int src_h, int net_w, int net_h);

/* Applies p to a pair of equal-size views: crop, resize to net_w x net_h, flip+swap,
 * colour jitter. out_left and out_right receive (3, net_h, net_w) planar RGB 0..255
 * (one NCHW sample each). Returns 0, or -1 + nn_fail (views of different sizes, crop
 * outside the views, out of memory). */
int augment_apply(const augment_params *p, const image *left, const image *right, int net_w,
                  int net_h, nn_real *out_left, nn_real *out_right);

/* The same, for views already cropped to p's rectangle (p->x, p->y are not used):
 * resize, flip+swap, jitter. The loader crops straight from its 8-bit cache. */
int augment_apply_cropped(const augment_params *p, const image *left_crop,
                          const image *right_crop, int net_w, int net_h, nn_real *out_left,
                          nn_real *out_right);

/* The colour jitter of p on one (3, h, w) planar RGB buffer, in place. */
void augment_color(const augment_params *p, nn_real *rgb, int w, int h);

#endif
