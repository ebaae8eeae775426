/* Stereo pair sources: lists rectified left/right views from folders and loads them.
 *
 * Accepted layouts (data/README.md has the user-facing description):
 *   STEREO_PAIRS     a folder of <id>_L.<ext> / <id>_R.<ext> files, and/or a folder with
 *                    left/ and right/ subfolders holding files of equal names;
 *   STEREO_SBS       single frames, side by side: the left half is the left view, the
 *                    right half the right view (each view w/2 x h);
 *   STEREO_SBS_HALF  the same, half width ("half side-by-side", anamorphic): each view
 *                    was squeezed to half width, so after the split it is stretched
 *                    back to w x h;
 *   STEREO_OU        single frames, over-under (top-bottom): the top half is the left
 *                    view, the bottom half the right view (each w x h/2);
 *   STEREO_OU_HALF   the same, each view squeezed to half height: stretched back to w x h.
 * and packed datasets (data/dataset.h): a folder of shard files with a manifest, given as
 * "DIR" or "DIR:SPLIT" (train, val, test, all); its pairs are items of layout
 * STEREO_PACKED whatever layout the caller names (the views are stored separately).
 * <ext> is any extension stb_image decodes (png, jpg, jpeg, bmp, tga, gif, psd, hdr,
 * pic, ppm, pgm, pnm), in any letter case. Names starting with '.' are ignored.
 * Listings are sorted by byte order of the file names, so a dataset is the same on
 * every machine; several folders add up, in the order they were added.
 *
 * Errors: NULL / -1 after nn_fail() with one line naming the folder or file.
 */
#ifndef DATA_STEREO_H
#define DATA_STEREO_H

#include "image.h"

typedef enum {
    STEREO_PAIRS = 0, /* separate left and right files */
    STEREO_SBS,
    STEREO_SBS_HALF,
    STEREO_OU,
    STEREO_OU_HALF,
    STEREO_PACKED, /* a record of a packed dataset; not a --layout name */
} stereo_layout;

/* Parses "pairs", "sbs", "sbs-half", "ou" or "ou-half" (the --layout option).
 * Returns 0, or -1 + nn_fail("stereo: unknown layout '<name>' (...)"). */
int stereo_layout_parse(const char *name, stereo_layout *out);

/* The name stereo_layout_parse accepts for a layout. */
const char *stereo_layout_name(stereo_layout layout);

struct dataset;

/* One pair: two files (layout STEREO_PAIRS), one frame holding both views, or one
 * record of a packed dataset. */
typedef struct {
    char *left;  /* left view file, or the frame file; for a record its display name
                    "<source>/<frame name>" (owned by the pack) */
    char *right; /* right view file; NULL for a frame or a record */
    stereo_layout layout;
    const struct dataset *pack; /* STEREO_PACKED: the open packed dataset; else NULL */
    long record;                /* STEREO_PACKED: the record's number in pack */
} stereo_item;

typedef struct {
    stereo_item *items; /* (n) */
    int n, cap;
    struct dataset **packs; /* (n_packs) packed datasets opened by stereo_dataset_add */
    int n_packs;
} stereo_dataset;

/* An empty dataset, or NULL + nn_fail (out of memory). */
stereo_dataset *stereo_dataset_new(void);

/* Frees the dataset and its file names; NULL is allowed. */
void stereo_dataset_free(stereo_dataset *ds);

/* Removes pair i (0 <= i < ds->n; else nothing), keeping the order of the others. */
void stereo_dataset_drop(stereo_dataset *ds, int i);

/* Appends the pairs found at path, in sorted order.
 * a packed dataset (dataset_parse_ref: "DIR" or "DIR:SPLIT"): its records, shard by
 *   shard in index order, whatever the layout; with SPLIT (train, val, test) only those of
 *   the sources assigned to that split, with "all" every record. A dataset that has been
 *   split must be named with its split ("DIR:train", or "DIR:all"), so that test pairs
 *   are never trained on by accident. The dataset is opened with dataset_open(dir, 0):
 *   its errors (half-written, truncated, corrupted) are this function's; damaged records
 *   are listed and fail only when loaded. Errors also: "stereo: dataset DIR is split into
 *   train/val/test: name the part (DIR:train, DIR:val, DIR:test or DIR:all)",
 *   "stereo: dataset DIR has not been split (deep3d dataset --split DIR ...)",
 *   "stereo: dataset DIR has no pairs in split 'val'".
 * layout STEREO_PAIRS: path is a folder; its <id>_L / <id>_R files come first, then the
 *   files of its left/ and right/ subfolders (both sources may be present).
 * a frame layout: path is a folder (every image file directly in it is one frame) or
 *   one image file.
 * Errors (-1 + nn_fail; the dataset is then unchanged):
 *   "stereo: cannot open folder '<path>': <strerror>" (missing or unreadable);
 *   "stereo: no stereo pairs in '<path>' (looked for ...)" naming the patterns looked for;
 *   "stereo: '<file>' has no right view (looked for '<expected>')", and the same for a
 *   right view without its left, or a left/ without a right/ subfolder.
 * Files are only listed here; they are decoded by stereo_load_pair. */
int stereo_dataset_add(stereo_dataset *ds, const char *path, stereo_layout layout);

/* A dataset of every pair found in the n folders, all of the layout named by
 * layout_name (stereo_layout_parse). NULL + nn_fail on a bad layout name or on the
 * first folder that stereo_dataset_add rejects. */
stereo_dataset *stereo_dataset_open(const char *const *paths, int n, const char *layout_name);

/* Decodes pair i (0 <= i < ds->n) into two new images of equal size, planar RGB 0..255
 * (image.h); frames are split with stereo_split_frame, records read with
 * dataset_read_pair (whose messages name the shard, the record, its source and frame).
 * Errors (-1 + nn_fail, *left and *right set to NULL): the image_load message naming
 * the unreadable file; "stereo: left view '<a>' is WxH but right view '<b>' is WxH". */
int stereo_load_pair(const stereo_dataset *ds, int i, image **left, image **right);

/* Splits one frame into its left and right views according to layout (see above; not
 * STEREO_PAIRS). The half layouts stretch each view back by 2 with image_resize
 * (Catmull-Rom along the stretched axis), so both views come out at the frame's size.
 * name is used in messages (the file name; NULL: "frame").
 * Errors (-1 + nn_fail): an odd width (side-by-side) or height (over-under):
 * "stereo: side-by-side frame '<name>' has an odd width 641". */
int stereo_split_frame(const image *frame, stereo_layout layout, const char *name, image **left,
                       image **right);

#endif
