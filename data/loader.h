/* Training batches of stereo pairs, prepared by a pool of worker threads.
 *
 * The loader owns `threads` POSIX threads that read, decode and augment samples while
 * the caller (the trainer) computes: they fill up to `prefetch` batches ahead of the one
 * the caller holds (prefetch + 1 batch buffers in a ring), the samples of one batch
 * shared among all of them, so the next batch is ready when the trainer asks as long as
 * the workers together are faster than the trainer. A batch is two host arrays, left
 * and right, each (N, 3, H, W) planar RGB 0..255 (NCHW).
 *
 * Determinism and resuming: the batch of step s is a pure function of (dataset,
 * configuration, seed, s), whatever the thread timing, the cache, the prefetch depth or
 * the number of threads (tests/test_dataset.c compares 1 and 4 threads bit for bit). Sample i of step s has the global index g = s * G + first_sample + i
 * (G = global_batch, or N when it is 0: see "Data parallelism" below); its pair is entry
 * g mod n of a permutation of the n pairs drawn for epoch g / n (Fisher-Yates with
 * nn_hash_uniform(seed ^ salt, ...), nn/backend.h), and its augmentation is
 * augment_draw(..., seed ^ salt', g) (augment.h). A run resumed at step s creates its
 * loader with start_step = s and sees exactly the batches it would have seen.
 *
 * Bad pairs (unreadable, corrupt, views of different sizes, odd-sized frames) are
 * skipped: the sample takes another pair (16 hash-drawn candidates, then the following
 * pairs in order, all a function of g), the pair is marked bad and never decoded again,
 * and one warning is counted per bad pair with its message kept. The loader never
 * prints: the caller reads loader_warning_count / loader_last_warning and reports.
 * When every pair has failed, loader_next returns -1.
 *
 * Data parallelism (train/dist.h): K processes each make a loader with batch N,
 * global_batch G = K*N and first_sample = r*N (r = 0..K-1). Their batches of step s are
 * then the consecutive parts of the batch one loader with batch G makes for step s,
 * sample for sample (same pairs, same augmentation, same skips of bad pairs), while each
 * process reads and decodes only its own part.
 *
 * Pre-scaling (prescale = 1): a pair much larger than the network input is reduced
 * once, right after decoding, by one factor for both views and both axes
 * (image_resize, anti-aliased), so that the smallest crop the augmentation can draw
 * (scale_min of the largest, or the largest when augment = 0) is 2x the network
 * height; the crop and resize then work on that. The paper did the same in spirit
 * (frames resized to 432x180 before 384x160 crops). A 2900x2000 pair shrinks to about
 * 640x440: less memory and a fraction of the time; disparities scale with the image as
 * they would in the final resize. prescale = 0 keeps the decoded size, so a batch
 * equals augment_apply on stereo_load_pair's views.
 *
 * Decoded pairs are kept in memory (8 bits per value, both views at full size, after
 * the split and stretch of frame layouts) up to cache_bytes (default 2 GiB), so a
 * small dataset is decoded once; beyond the budget pairs are decoded each time they
 * are drawn. The 8-bit store is used whether or not a pair is cached, so caching
 * never changes a batch (a stretched half-layout view is rounded to whole values).
 */
#ifndef DATA_LOADER_H
#define DATA_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "stereo.h"

typedef struct {
    int batch;          /* N: pairs per batch */
    int width, height;  /* W x H of the network input: 384 x 160 */
    uint64_t seed;      /* chooses pairs and augmentation */
    int64_t start_step; /* the step of the first batch loader_next returns (resuming) */
    int augment;        /* 1: random augmentation (training); 0: augment_center (evaluation) */
    int sequential;     /* 0: pairs shuffled per epoch; 1: sample g takes pair g mod n (evaluation) */
    augment_config aug; /* used when augment = 1 */
    size_t cache_bytes; /* memory for decoded pairs kept between batches; 0: no cache */
    int prescale;       /* 1: reduce large pairs once when decoded (see above); 0: keep */
    int threads;        /* worker threads (1..1024); 0: one per online CPU, at most 8 */
    int prefetch;       /* batches prepared ahead of the one the caller holds (1..64): 2 */
    int global_batch;   /* samples per step over all processes (>= batch); 0: batch */
    int first_sample;   /* index of this loader's first sample in the global batch (0..global_batch - batch) */
} loader_config;

/* batch 64, 384 x 160, seed 1, start_step 0, augment 1, sequential 0, augment_defaults(),
 * cache_bytes 2 GiB, prescale 1, threads 0 (automatic), prefetch 2, global_batch 0,
 * first_sample 0 (DEEP3D.md "Training"). */
loader_config loader_defaults(void);

/* One batch; the arrays stay valid until the next loader_next or loader_free. */
typedef struct {
    const nn_real *left;  /* (n, 3, h, w) left views, 0..255 */
    const nn_real *right; /* (n, 3, h, w) right views (the targets), 0..255 */
    const int *pair;      /* (n) dataset index of each sample (after any bad-pair skip) */
    int64_t step;         /* the step this batch belongs to */
    int n, h, w;
} loader_batch;

typedef struct loader loader;

/* Starts a loader on ds (borrowed: it must outlive the loader and not change) and
 * begins preparing the batch of cfg->start_step. NULL + nn_fail on an empty dataset,
 * a bad configuration or out of memory ("loader: ..."). */
loader *loader_create(const stereo_dataset *ds, const loader_config *cfg);

/* Waits for the next batch (start_step, start_step + 1, ...) and hands it over in
 * *out; the previous batch's arrays are given back to the loader for refilling.
 * Returns 0, or -1 + nn_fail: "loader: all <n> pairs failed to load; the last: <why>"
 * or out of memory. After a failure every later call fails the same way. */
int loader_next(loader *ld, loader_batch *out);

/* Number of bad pairs skipped in the batches returned so far (one per pair). */
long loader_warning_count(const loader *ld);

/* The message of the most recent such warning ("" if none), e.g. "image: cannot decode
 * 'x_L.png': corrupt PNG". Valid until the next loader_next or loader_free. */
const char *loader_last_warning(const loader *ld);

/* Throughput of the workers alone, for `deep3d bench --mode loader`. */
typedef struct {
    int threads;   /* worker threads running */
    long samples;  /* samples (pairs) prepared so far */
    double busy_s; /* worker seconds spent preparing them, summed over the threads */
    double wait_s; /* seconds the caller spent blocked in loader_next */
} loader_stat;

/* The counters so far (thread safe with respect to the workers). */
void loader_stats(loader *ld, loader_stat *st);

/* Stops the threads and frees everything; NULL is allowed. */
void loader_free(loader *ld);

#endif
