/* Packed stereo datasets: many left/right pairs in a few shard files.
 *
 * A dataset is a folder:
 *   DIR/manifest.d3d      text: the base size, the shards (file, records, bytes) and the
 *                         sources (name, pairs, split), ending with its CRC-32;
 *   DIR/shard-000000.d3s  binary: a header, the names of its sources, an index of fixed
 *   DIR/shard-000001.d3s  48-byte entries, the frame names, then each pair's left and
 *   ...                   right view as JPEG or PNG bytes, a CRC-32 per record.
 * Byte layouts, the checks a reader makes and the versioning rule: data/SHARDS.md.
 * Every view in a dataset has the same size (the base size, 432 x 180 by default: the
 * paper's frames are resized to 432x180 before its 384x160 crops, DEEP3D.md "Training").
 *
 * Writing is transactional per run: a writer (dataset_writer_open) appends new shards,
 * each written under a temporary name ".deep3d-XXXXXX" (mkstemp) in DIR, fsync'ed and
 * renamed; the manifest that lists them is rewritten the same way by
 * dataset_writer_commit, last. Shards are never modified once written. A run that stops
 * half-way leaves shard files its manifest does not list, or temporaries: readers refuse
 * such a folder and name the files (a "half-written" dataset), a failed or aborted
 * writer removes them itself. One writer at a time: the folder is locked (flock) while
 * it is open; readers opening a folder being written say so.
 *
 * Sources: every record belongs to one source (a movie, a folder of pairs), named when
 * it is added. A split assigns whole sources to train, val or test (dataset_assign_splits),
 * so frames of one source never land in two splits, as the paper split by film.
 *
 * Errors: NULL / -1 after nn_fail() with one line naming the dataset folder and, for a
 * record, "<shard file> record <i> (source '<name>', frame <f> '<frame name>')".
 * Functions never print. Checksums: nn_crc32 (nn/weights.h; CRC-32 of IEEE 802.3 / zlib).
 */
#ifndef DATA_DATASET_H
#define DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* The shard format version this code writes and the newest it reads (data/SHARDS.md). */
#define DATASET_VERSION 1
/* The manifest's file name inside the dataset folder. */
#define DATASET_MANIFEST "manifest.d3d"

/* How a view is fitted to the base size before it is stored. */
typedef enum {
    DATASET_FIT_CROP = 0,    /* the largest centred crop of the base aspect, resized (augment_center) */
    DATASET_FIT_STRETCH = 1, /* the whole view resized to the base size (its aspect changes) */
} dataset_fit;

/* Split of a source; the numbers are not stored (the manifest writes the names). */
typedef enum { SPLIT_NONE = 0, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, SPLIT_ALL } dataset_split;

/* "none", "train", "val", "test", "all". */
const char *dataset_split_name(dataset_split s);

/* Parses "train", "val", "test" or "all". Returns 0, or -1 + nn_fail. */
int dataset_split_parse(const char *name, dataset_split *out);

typedef struct {
    int width, height;   /* base size of every stored view; 0 x 0: the dataset's own when
                            appending, else 432 x 180 */
    image_codec codec;   /* IMAGE_JPEG (default) or IMAGE_PNG (lossless) */
    int quality;         /* JPEG quality 1..100: 90 */
    dataset_fit fit;     /* DATASET_FIT_CROP */
    int shard_pairs;     /* a shard is closed at this many pairs (1000) or at 256 MiB of image bytes */
} dataset_pack_config;

/* width 0, height 0, JPEG, quality 90, crop, 1000 pairs per shard. */
dataset_pack_config dataset_pack_defaults(void);

/* ---- writing ---------------------------------------------------------------------- */

typedef struct dataset_writer dataset_writer;

/* Opens DIR for appending: creates it (and the dataset) when it does not exist or is an
 * empty folder; appends to the dataset it holds otherwise. The base size is cfg's, or the
 * existing dataset's when cfg gives 0 x 0. Errors (NULL + nn_fail):
 *   "dataset DIR: exists and is not a deep3d dataset (no manifest.d3d): not writing into it";
 *   "dataset DIR is WxH; --size asks for wxh" (appending at another size);
 *   any error dataset_open reports for the existing dataset (half-written, corrupted, ...);
 *   "dataset DIR is being written by another process" (the lock is held). */
dataset_writer *dataset_writer_open(const char *dir, const dataset_pack_config *cfg);

/* The configuration in effect (the base size resolved). */
const dataset_pack_config *dataset_writer_config(const dataset_writer *w);

/* 1 when the dataset (as written so far) has a source of that name, else 0. */
int dataset_writer_has_source(const dataset_writer *w, const char *name);

/* Starts a new source: the pairs added next belong to it. name: 1..255 bytes of UTF-8
 * without control characters. Errors: a bad name; "source '<name>' is already in
 * dataset DIR (<n> pairs); name it otherwise (--source)". */
int dataset_writer_begin_source(dataset_writer *w, const char *name);

/* One pair's encoded views (image_encode), ready to append; bytes holds the left view's
 * left_bytes bytes then the right view's right_bytes bytes (malloc'd). */
typedef struct {
    unsigned char *bytes;
    size_t left_bytes, right_bytes;
} dataset_encoded;

/* Fits both views (planar RGB 0..255, image.h, equal sizes) to cfg's base size
 * (cfg->fit; image_resize) and encodes them (cfg->codec, cfg->quality). Independent of
 * any writer and thread safe, so frames can be encoded in parallel and appended in
 * order. what names the pair in messages. Returns 0 or -1 + nn_fail (views of different
 * sizes, out of memory). */
int dataset_encode_pair(const dataset_pack_config *cfg, const image *left, const image *right, const char *what,
                        dataset_encoded *out);

/* Frees the bytes of an encoded pair (NULL-safe); sets them to NULL. */
void dataset_encoded_free(dataset_encoded *e);

/* Appends one encoded pair to the current source and takes its bytes (enc->bytes is
 * NULL after the call, success or not). frame: the pair's number in its source (a
 * movie's frame index; for a folder the pair's place in sorted order); frame_name: an
 * id of 0..255 bytes without control characters ("000012_10", "" for none). A full
 * shard (cfg->shard_pairs pairs or 256 MiB) is written at once (atomically).
 * Errors: no source begun, a bad name, views over 4 GiB, writing the shard. */
int dataset_writer_add_encoded(dataset_writer *w, dataset_encoded *enc, uint64_t frame, const char *frame_name);

/* dataset_encode_pair with the writer's configuration, then dataset_writer_add_encoded:
 * the call a frame source makes per decoded stereo frame (e.g. --from-video after
 * splitting the frame with stereo_split_frame). */
int dataset_writer_add(dataset_writer *w, const image *left, const image *right, uint64_t frame,
                       const char *frame_name);

/* Pairs added by this writer so far, and shards written so far by it. */
long dataset_writer_pairs(const dataset_writer *w);
int dataset_writer_shards(const dataset_writer *w);

/* Writes the last, partly filled shard and then the manifest listing every shard and
 * source (atomically), releases the lock and frees w. Sources without pairs are left
 * out. On failure the shards of this run are removed, the dataset is as it was before
 * dataset_writer_open, and -1 + nn_fail is returned; w is freed either way. */
int dataset_writer_commit(dataset_writer *w);

/* Removes the shards this writer wrote, releases the lock and frees w (NULL-safe): the
 * dataset is left as it was before dataset_writer_open. */
void dataset_writer_abort(dataset_writer *w);

/* ---- reading ---------------------------------------------------------------------- */

typedef struct dataset dataset;

/* 1 when dir holds a packed dataset (its manifest, or shard files without one: a first
 * pack that did not finish, which dataset_open reports), else 0. */
int dataset_is_packed(const char *dir);

/* Splits a --data argument "DIR" or "DIR:SPLIT" (SPLIT: train, val, test, all): when arg
 * is not an existing path but ends in ":<split>" and the part before it is a packed
 * dataset, *dir receives that part (malloc'd) and *split the split; else *dir = a copy
 * of arg and *split = SPLIT_NONE (no selection). Returns 1 when *dir is a packed
 * dataset, 0 when it is not (a folder of pairs, a file, a missing path), -1 + nn_fail
 * when out of memory. */
int dataset_parse_ref(const char *arg, char **dir, dataset_split *split);

/* Opens a dataset: reads and checks the manifest (its CRC), checks that every listed
 * shard exists with the listed size and that no unlisted shard or temporary is present,
 * reads each shard's header and index (header CRC, bounds) and checks that the records
 * per source add up to the manifest's. Record bytes are read (and their CRCs checked) by
 * dataset_read_pair and dataset_check_record.
 * lenient = 0 (training, evaluation): any problem is an error:
 *   "dataset DIR: <shard> is truncated: X of Y bytes",
 *   "dataset DIR is half-written: <file> ... not in its manifest (a pack that did not
 *    finish); remove them, or wait for the pack in progress",
 *   "dataset DIR: manifest.d3d is corrupted: checksum mismatch", ...;
 * lenient = 1 (--verify): shard-level problems are recorded per shard
 *   (dataset_shard_problem) and the records still readable are listed; only a missing
 *   or unreadable manifest is an error. */
dataset *dataset_open(const char *dir, int lenient);

/* Frees everything (NULL-safe). */
void dataset_close(dataset *d);

/* The folder, the base size, and the counts of the manifest. */
const char *dataset_dir(const dataset *d);
/* Lenient opens: the message a strict open would have given for files the manifest
 * does not list ("dataset DIR is half-written: ..."), or NULL when there are none. */
const char *dataset_unlisted(const dataset *d);
void dataset_size(const dataset *d, int *width, int *height);
int dataset_source_count(const dataset *d);
int dataset_shard_count(const dataset *d);
/* Records listed in the indexes read (all records when nothing is damaged). */
long dataset_record_count(const dataset *d);

typedef struct {
    const char *name;    /* owned by d */
    dataset_split split; /* SPLIT_NONE until dataset_assign_splits */
    long pairs;          /* as the manifest says */
} dataset_source_info;

/* Source i (0 <= i < dataset_source_count), in the order they were added. */
const dataset_source_info *dataset_source(const dataset *d, int i);

typedef struct {
    const char *file;    /* "shard-000000.d3s", owned by d */
    long records;        /* as the manifest says */
    uint64_t bytes;      /* as the manifest says */
    image_codec codec;   /* from its header (IMAGE_JPEG when it could not be read) */
    const char *problem; /* NULL, or why the shard is unusable or damaged (lenient opens) */
} dataset_shard_info;

/* Shard i (0 <= i < dataset_shard_count), in manifest order. */
const dataset_shard_info *dataset_shard(const dataset *d, int i);

typedef struct {
    int shard;           /* index in the manifest's shard list */
    int index;           /* record number inside that shard, 0-based */
    int source;          /* index in the manifest's source list */
    uint64_t frame;      /* frame number in its source */
    const char *name;    /* the frame's name ("" when none), owned by d */
    const char *display; /* "<source>/<frame name or number>", owned by d */
} dataset_record_info;

/* Record r (0 <= r < dataset_record_count): shard by shard, in index order. */
const dataset_record_info *dataset_record(const dataset *d, long r);

/* Reads record r: its bytes, its CRC (entry, frame name and both views), then decodes
 * both views (image_decode) and checks they are of the base size. Two new images,
 * planar RGB 0..255. Thread safe (pread on a descriptor opened per call).
 * Errors (-1 + nn_fail, *left = *right = NULL):
 *   "dataset DIR: shard-000001.d3s record 37 (source 'kitti2012', frame 12 '000012_10'):
 *    checksum mismatch (stored 0x..., computed 0x...)", "... cannot decode the left
 *    view: ...", "... the right view is WxH, the dataset's views are wxh", read errors. */
int dataset_read_pair(const dataset *d, long r, image **left, image **right);

/* Checks record r as dataset_read_pair does, without keeping the images
 * (decode = 0: the CRC only). Returns 0, or -1 + the same messages. */
int dataset_check_record(const dataset *d, long r, int decode);

/* "<dir>: <shard> record <i> (source '<name>', frame <f> '<name>')" for messages. */
void dataset_record_label(const dataset *d, long r, char *buf, size_t size);

/* ---- splits ----------------------------------------------------------------------- */

/* Assigns whole sources of the dataset in dir to test, val and train and rewrites its
 * manifest (atomically, under the writer's lock). Sources already assigned keep their
 * split unless reassign = 1 (so adding sources later never moves a test source into
 * training). The others are taken in the order of a 64-bit hash of (seed, name)
 * (FNV-1a, then the splitmix64 finaliser), which depends on nothing else, and each goes
 * to test while that brings the test pairs closer to test * total pairs, else to val
 * likewise, else to train (total: all pairs of the dataset). A split asked for (> 0)
 * that got no source then takes the first train source in that order, if train keeps
 * one. Deterministic: the same dataset, fractions and seed give the same splits.
 * val, test in [0, 1), val + test < 1. Errors: bad fractions; "dataset DIR: cannot
 * give train, val and test a source each: it has 2 sources"; dataset_open's; writing. */
int dataset_assign_splits(const char *dir, double val, double test, uint64_t seed, int reassign);

#endif
