/* Stereo layouts: how the left view, the predicted right view and the disparity map
 * become one picture, for photos (deep3d infer --formats) and video frames
 * (deep3d video --layout) alike.
 *
 * Inputs (render.h's layouts): left, right (3, H, W) planar RGB, values 0..255 (floats;
 * rounded half up and clamped to 0..255 on output, as image_save_png does); disp
 * (H, W) the disparity map in source pixels (render_image's; needed by depth and rgbd).
 * Output: packed 8-bit RGB, row-major, 3 * out_w bytes per row, no padding (ffmpeg's
 * rgb24 and stb_image_write's 3-channel layout).
 *
 * | name       | picture                                        | out_w x out_h   |
 * |------------|------------------------------------------------|-----------------|
 * | sbs        | left view | right view, full width each         | 2W x H          |
 * | sbs-half   | the same, each view resized to half width       | 2 ceil(W/2) x H |
 * | ou         | left view over right view                       | W x 2H          |
 * | ou-half    | the same, each view resized to half height      | W x 2 ceil(H/2) |
 * | anaglyph   | red-cyan, one picture (methods below)           | W x H           |
 * | cross      | right view | left view (cross-eyed viewing)      | 2W x H          |
 * | right      | the right view alone                           | W x H           |
 * | depth      | grey disparity, near = bright (render_depth_map)| W x H           |
 * | rgbd       | left view | grey depth                          | 2W x H          |
 * | wiggle     | two frames, left and right (an animated GIF)    | W x H (x2)      |
 * Half views are resized with render_resize (antialiased bilinear, pixel-area).
 * With swap, the two views trade places in every composition that shows both (sbs,
 * sbs-half, ou, ou-half, anaglyph, cross, wiggle); right, depth and rgbd ignore it.
 *
 * Anaglyph methods (red filter on the left eye, cyan on the right):
 *  - dubois (default): Eric Dubois's least-squares projection ("A projection method to
 *    generate anaglyph stereo images", ICASSP 2001), with the red-cyan matrices of his
 *    web page (www.site.uottawa.ca/~edubois/anaglyph/, LeastSquaresHowToPhotoshop.pdf;
 *    the ones Bino and iw3 use), applied in LINEAR light as the method is defined: both
 *    views decoded with the sRGB transfer function (IEC 61966-2-1), a = clamp(M_L l +
 *    M_R r, 0, 1), encoded back to sRGB;
 *  - color: red from the left view, green and blue from the right (parse.py's);
 *  - half-color: red = the left view's luma, green and blue from the right;
 *  - gray: red = the left view's luma, green = blue = the right view's luma;
 *    luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), as iw3 defines these three.
 *
 * Errors: 0 / -1 (NULL) + nn_fail("layout: ..."): unknown names (the message lists the
 * valid ones), bad sizes, NULL arrays, out of memory. Nothing prints. */
#ifndef INFER_LAYOUTS_H
#define INFER_LAYOUTS_H

#include <stdint.h>

#include "../nn/real.h"

/* In the order deep3d infer writes them. */
enum {
    LAYOUT_RIGHT,
    LAYOUT_SBS,
    LAYOUT_SBS_HALF,
    LAYOUT_OU,
    LAYOUT_OU_HALF,
    LAYOUT_ANAGLYPH,
    LAYOUT_CROSS,
    LAYOUT_DEPTH,
    LAYOUT_RGBD,
    LAYOUT_WIGGLE,
    LAYOUT_COUNT
};

enum { ANAGLYPH_DUBOIS, ANAGLYPH_COLOR, ANAGLYPH_HALF_COLOR, ANAGLYPH_GRAY, ANAGLYPH_COUNT };

/* The layout's name ("sbs-half"), or NULL for an unknown kind. */
const char *layout_name(int kind);

/* "sbs,sbs-half,..." : every name, for help texts and messages. */
const char *layout_names(void);

/* kind of a name, or -1 + nn_fail("unknown layout 'x' (expected sbs, ...)"). */
int layout_parse(const char *name);

/* The bit (1 << kind) of every name in a comma-separated list into *mask. Errors: an
 * unknown or empty entry, an empty list. */
int layout_parse_list(const char *list, unsigned *mask);

/* Anaglyph methods: "dubois", "color", "half-color", "gray". */
const char *anaglyph_name(int method);
int anaglyph_parse(const char *name); /* method, or -1 + nn_fail */

/* Output size of a W x H view pair (the table above). -1 on a bad size. */
int layout_size(int kind, int W, int H, int *out_w, int *out_h);

/* Pixel aspect factor of the output against the source's: the half layouts squeeze one
 * axis by 2, so sbs-half gives 2/1 and ou-half 1/2 (a half-width view then displays at
 * full width), every other layout 1/1. */
void layout_sar_factor(int kind, int *num, int *den);

/* File-name suffix that 3D video players read to pick the layout (iw3's utils.py
 * "Filename suffix for VR Player's video format detection"): "_LRF_Full_SBS" (sbs),
 * "_LR" (sbs-half), "_TBF_fulltb" (ou), "_TB" (ou-half), "_RLF_cross" (cross),
 * "_redcyan" (anaglyph), "_RGBD" (rgbd); "_right" and "_depth" otherwise. NULL for
 * wiggle (not a video layout). */
const char *layout_video_suffix(int kind);

/* Matroska StereoMode (RFC 9559, Video/StereoMode): 1 side by side (left eye first) for
 * sbs and sbs-half, 3 top-bottom (left eye first) for ou and ou-half, 11 side by side
 * (right eye first) for cross, 0 (mono) otherwise. *name gets ffmpeg's name of the
 * value for its stream tag stereo_mode ("left_right", "top_bottom", "right_left"), or
 * NULL. With swap, sbs and ou become right-eye-first (11, 2 "bottom_top") and cross
 * left-eye-first (1). */
int layout_stereo_mode(int kind, int swap, const char **name);

/* H.264 frame packing arrangement type (ITU-T H.264, Table D-8) for x264's
 * frame-packing option: 3 side-by-side for sbs/sbs-half, 4 top-bottom for ou/ou-half,
 * -1 (no SEI) otherwise and whenever the views are swapped: x264 always marks frame 0
 * as the left view. */
int layout_frame_packing(int kind, int swap);

/* What layout_compose reads. */
typedef struct layout_input {
    const nn_real *left, *right; /* (3, H, W) 0..255 */
    const nn_real *disp;         /* (H, W) source pixels, or NULL (depth, rgbd need it) */
    int H, W;
    int D, dmin;                 /* disparity levels of the model */
    double scale;                /* source pixels per network pixel (render_info.scale) */
    int anaglyph;                /* ANAGLYPH_* */
    int swap;                    /* 1: the views trade places (see the top) */
} layout_input;

/* out (out_h, out_w, 3) bytes <- the picture of `kind` (not wiggle: use
 * layout_view_bytes for its two frames). Threads: OpenMP over rows. */
int layout_compose(uint8_t *out, int kind, const layout_input *in);

/* out (H, W, 3) bytes <- view (3, H, W) 0..255, rounded and clamped. */
void layout_view_bytes(uint8_t *out, const nn_real *view, int H, int W);

/* The anaglyph of one pixel (bytes, r g b each) for tests and for layout_compose. */
void layout_anaglyph_pixel(uint8_t out[3], const uint8_t l[3], const uint8_t r[3], int method);

#endif
