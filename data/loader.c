/* Batch loader: a pool of worker threads with an 8-bit pair cache. See loader.h.
 *
 * Buffers form a ring: the batch of step s is prepared in buf[(s - start_step) % nbuf].
 * Steps are started in order; the samples of the oldest step being filled are handed
 * out one at a time to whichever worker asks, so all workers work on the same batch
 * until it is handed out, then on the next one, up to `prefetch` batches ahead of the
 * one the caller holds. Each sample writes only its own slice of its buffer. */
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../nn/backend.h"
#include "../nn/status.h"

/* Salts that separate the random streams drawn from one seed. */
#define SALT_PERM 0x5045524D5045524Dull  /* epoch permutations */
#define SALT_AUG 0x4155474D4155474Dull   /* augmentation */
#define SALT_SKIP 0x534B49505343495Bull  /* replacements for bad pairs */
#define N_HASH_TRIES 16                 /* hash-drawn replacements before the scan */
#define MSG 512

enum { PAIR_UNKNOWN, PAIR_GOOD, PAIR_BAD };

/* A decoded pair, 8 bits per value: px holds left (3, h, w) then right (3, h, w). */
typedef struct {
    int w, h;
    unsigned char *px;
} pair8;

typedef struct {
    int state;
    pair8 *cached; /* set once, never evicted while the loader lives */
} pair_slot;

enum { BUF_FREE, BUF_FILLING, BUF_READY };

typedef struct {
    int state;
    int64_t step;
    nn_real *left, *right; /* (N, 3, H, W) */
    int *pair;             /* (N) */
    int *planned;          /* (N) pair of each sample before any skip */
    int next_sample;       /* samples handed out to workers so far */
    int done;              /* samples finished */
    int failed;
    char error[MSG];
    /* per sample: bad pairs this sample was the first to meet, and the last message */
    int *warned;   /* (N) */
    char *warning; /* (N, MSG) */
    int *sample_failed; /* (N) */
    char *errors;       /* (N, MSG) */
} batch_buf;

struct loader {
    const stereo_dataset *ds;
    loader_config cfg;
    int n; /* pairs */

    pthread_mutex_t cache_mu; /* guards slots, cache_used, n_bad */
    pair_slot *slots;         /* (n) */
    size_t cache_used;
    int n_bad;
    char bad_msg[MSG]; /* message of the latest pair marked bad */

    int64_t perm_epoch; /* epoch whose permutation perm holds; -1: none (under mu) */
    int *perm;          /* (n) */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    pthread_t *threads; /* (n_threads) */
    int n_threads, started;
    int stop;
    int worker_failed;
    batch_buf *buf;    /* (nbuf) ring */
    int nbuf;
    int64_t claim_step; /* the step whose samples are being handed out, or the next to start */
    int64_t next_step;  /* next step loader_next returns */
    int held;           /* buffer held by the caller, -1 none */
    double busy_s;      /* worker time spent preparing samples */
    long samples;       /* samples prepared */

    long warnings;              /* caller side: merged in loader_next */
    char last_warning[MSG];
    double wait_s;              /* caller side: time spent waiting in loader_next */
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

loader_config loader_defaults(void) {
    return (loader_config){.batch = 64,
                           .width = 384,
                           .height = 160,
                           .seed = 1,
                           .start_step = 0,
                           .augment = 1,
                           .sequential = 0,
                           .aug = augment_defaults(),
                           .cache_bytes = (size_t)2 << 30,
                           .prescale = 1,
                           .threads = 0,
                           .prefetch = 2,
                           .global_batch = 0,
                           .first_sample = 0};
}

static void pair8_free(pair8 *p) {
    if (!p) return;
    free(p->px);
    free(p);
}

static unsigned char to_byte(nn_real v) {
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (unsigned char)(v + (nn_real)0.5);
}

/* The factor (<= 1) by which a decoded w x h pair is reduced once: so that the
 * smallest crop the augmentation can draw is still 2x the network height. */
static double prescale_factor(const loader_config *cfg, int w, int h) {
    if (!cfg->prescale) return 1;
    int cw, ch;
    augment_largest_crop(w, h, cfg->width, cfg->height, &cw, &ch);
    double ch_min = (cfg->augment ? cfg->aug.scale_min : 1.0) * ch;
    return ch_min > 2.0 * cfg->height ? 2.0 * cfg->height / ch_min : 1;
}

/* Decodes pair i into the 8-bit form (NULL + nn_fail on a bad pair). */
static pair8 *decode_pair(const loader *ld, int i) {
    const stereo_dataset *ds = ld->ds;
    image *l, *r;
    if (stereo_load_pair(ds, i, &l, &r)) return NULL;
    double f = prescale_factor(&ld->cfg, l->w, l->h);
    if (f < 1) {
        int w = (int)lround(l->w * f), h = (int)lround(l->h * f);
        image *l2 = image_resize(l, w > 0 ? w : 1, h > 0 ? h : 1);
        image *r2 = l2 ? image_resize(r, l2->w, l2->h) : NULL;
        image_free(l), image_free(r);
        if (!l2 || !r2) {
            image_free(l2);
            nn_fail_context("loader: reducing '%s'", ds->items[i].left);
            return NULL;
        }
        l = l2, r = r2;
    }
    size_t plane3 = (size_t)3 * l->w * l->h;
    pair8 *p = malloc(sizeof *p);
    unsigned char *px = malloc(2 * plane3);
    if (!p || !px) {
        free(p), free(px);
        nn_fail("loader: out of memory for a %dx%d pair ('%s')", l->w, l->h, ds->items[i].left);
        image_free(l), image_free(r);
        return NULL;
    }
    for (size_t k = 0; k < plane3; k++) px[k] = to_byte(l->data[k]);
    for (size_t k = 0; k < plane3; k++) px[plane3 + k] = to_byte(r->data[k]);
    p->w = l->w, p->h = l->h, p->px = px;
    image_free(l), image_free(r);
    return p;
}

/* Result of get_pair. */
enum { GOT_PAIR, GOT_KNOWN_BAD, GOT_NEW_BAD };

/* Pair i in 8-bit form: from the cache, or decoded (and cached while the budget lasts;
 * *owned = 1 when the caller must free it). A newly found bad pair is marked and its
 * message copied to msg. */
static int get_pair(loader *ld, int i, pair8 **out, int *owned, char *msg) {
    *out = NULL, *owned = 0;
    pthread_mutex_lock(&ld->cache_mu);
    int state = ld->slots[i].state;
    pair8 *c = ld->slots[i].cached;
    pthread_mutex_unlock(&ld->cache_mu);
    if (state == PAIR_BAD) return GOT_KNOWN_BAD;
    if (c) {
        *out = c;
        return GOT_PAIR;
    }
    pair8 *p = decode_pair(ld, i);
    pthread_mutex_lock(&ld->cache_mu);
    pair_slot *s = &ld->slots[i];
    int result = GOT_PAIR;
    if (!p) {
        result = GOT_KNOWN_BAD;
        if (s->state != PAIR_BAD) {
            s->state = PAIR_BAD;
            ld->n_bad++;
            result = GOT_NEW_BAD;
            snprintf(msg, MSG, "%s", nn_last_error());
            memcpy(ld->bad_msg, msg, MSG);
        }
    } else {
        s->state = PAIR_GOOD;
        size_t bytes = (size_t)6 * p->w * p->h;
        if (s->cached) { /* another thread decoded it meanwhile */
            pair8_free(p);
            p = s->cached;
        } else if (bytes <= ld->cfg.cache_bytes && ld->cache_used <= ld->cfg.cache_bytes - bytes) {
            s->cached = p;
            ld->cache_used += bytes;
        } else {
            *owned = 1;
        }
        *out = p;
    }
    pthread_mutex_unlock(&ld->cache_mu);
    return result;
}

/* 1 when every pair is known bad; then err receives the loader's error. */
static int all_bad(loader *ld, char *err) {
    pthread_mutex_lock(&ld->cache_mu);
    int all = ld->n_bad >= ld->n;
    if (all) snprintf(err, MSG, "loader: all %d pairs failed to load; the last: %.400s", ld->n, ld->bad_msg);
    pthread_mutex_unlock(&ld->cache_mu);
    return all;
}

/* Pair of global sample g before any skip: its place in the epoch's permutation. */
static int planned_pair(loader *ld, uint64_t g) {
    uint64_t n = (uint64_t)ld->n;
    if (ld->cfg.sequential) return (int)(g % n);
    int64_t epoch = (int64_t)(g / n);
    if (epoch != ld->perm_epoch) { /* Fisher-Yates, uniform draws from the counter hash */
        for (int j = 0; j < ld->n; j++) ld->perm[j] = j;
        for (int j = ld->n - 1; j > 0; j--) {
            double u = nn_hash_uniform(ld->cfg.seed ^ SALT_PERM, (uint64_t)epoch * n + (uint64_t)j);
            int k = (int)(u * (j + 1));
            if (k > j) k = j;
            int t = ld->perm[j];
            ld->perm[j] = ld->perm[k], ld->perm[k] = t;
        }
        ld->perm_epoch = epoch;
    }
    return ld->perm[g % n];
}

/* A (3, h, w) float image of the crop (x, y, w, h) of an 8-bit (3, H, W) view. */
static image *crop8(const unsigned char *view, int W, int H, int x, int y, int w, int h) {
    image *im = image_new(w, h);
    if (!im) return NULL;
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < h; r++) {
            const unsigned char *src = view + ((size_t)c * H + (size_t)(y + r)) * W + x;
            nn_real *dst = im->data + ((size_t)c * h + r) * w;
            for (int k = 0; k < w; k++) dst[k] = src[k];
        }
    return im;
}

/* Fills sample i (global index g) of buffer b. Returns 0, or -1 with b->error set. */
static int fill_sample(loader *ld, batch_buf *b, int i, uint64_t g, int planned, char *err) {
    const loader_config *cfg = &ld->cfg;
    int p = planned;
    pair8 *px = NULL;
    int owned = 0;
    for (int attempt = 0;; attempt++) {
        char *msg = b->warning + (size_t)i * MSG;
        int got = get_pair(ld, p, &px, &owned, msg);
        if (got == GOT_PAIR) break;
        if (got == GOT_NEW_BAD) b->warned[i]++;
        if (all_bad(ld, err)) return -1;
        if (attempt < N_HASH_TRIES)
            p = (int)(nn_hash_uniform(cfg->seed ^ SALT_SKIP, g * N_HASH_TRIES + (uint64_t)attempt) *
                      ld->n);
        else
            p = (p + 1) % ld->n;
        if (p >= ld->n) p = ld->n - 1;
    }
    b->pair[i] = p;
    augment_params ap;
    int rc = 0;
    if (cfg->augment)
        rc = augment_draw(&ap, &cfg->aug, px->w, px->h, cfg->width, cfg->height,
                          cfg->seed ^ SALT_AUG, g);
    else
        augment_center(&ap, px->w, px->h, cfg->width, cfg->height);
    size_t plane3 = (size_t)3 * px->w * px->h, sample = (size_t)3 * cfg->width * cfg->height;
    image *l = NULL, *r = NULL;
    if (rc == 0) {
        l = crop8(px->px, px->w, px->h, ap.x, ap.y, ap.w, ap.h);
        r = l ? crop8(px->px + plane3, px->w, px->h, ap.x, ap.y, ap.w, ap.h) : NULL;
        rc = l && r ? augment_apply_cropped(&ap, l, r, cfg->width, cfg->height,
                                            b->left + (size_t)i * sample,
                                            b->right + (size_t)i * sample)
                    : -1;
    }
    if (rc) snprintf(err, MSG, "loader: pair %d ('%.200s'): %.250s", p, ld->ds->items[p].left, nn_last_error());
    image_free(l), image_free(r);
    if (owned) pair8_free(px);
    return rc;
}

/* The global index of sample i of step (loader.h): step * G + first_sample + i. */
static uint64_t global_index(const loader *ld, int64_t step, int i) {
    const uint64_t G = (uint64_t)(ld->cfg.global_batch ? ld->cfg.global_batch : ld->cfg.batch);
    return (uint64_t)step * G + (uint64_t)ld->cfg.first_sample + (uint64_t)i;
}

/* Starts the batch of `step` in buffer b: the planned pairs. Called under ld->mu. */
static void start_batch(loader *ld, batch_buf *b, int64_t step) {
    const int N = ld->cfg.batch;
    uint64_t g0 = global_index(ld, step, 0);
    for (int i = 0; i < N; i++) b->planned[i] = planned_pair(ld, g0 + (uint64_t)i);
    memset(b->warned, 0, (size_t)N * sizeof *b->warned);
    b->step = step, b->next_sample = b->done = 0, b->failed = 0, b->error[0] = '\0';
    b->state = BUF_FILLING;
}

/* All samples of b are done: the first failure becomes the batch's. Under ld->mu. */
static void finish_batch(loader *ld, batch_buf *b) {
    for (int i = 0; i < ld->cfg.batch && !b->failed; i++)
        if (b->sample_failed[i]) {
            b->failed = 1;
            memcpy(b->error, b->errors + (size_t)i * MSG, MSG);
        }
    if (b->failed) ld->worker_failed = 1; /* no further batch is started */
    b->state = BUF_READY;
}

static batch_buf *buffer_of(loader *ld, int64_t step) {
    return &ld->buf[(step - ld->cfg.start_step) % ld->nbuf];
}

static void *worker(void *arg) {
    loader *ld = arg;
    const int N = ld->cfg.batch;
    pthread_mutex_lock(&ld->mu);
    while (!ld->stop) {
        batch_buf *b = buffer_of(ld, ld->claim_step);
        if (b->state == BUF_FILLING && b->step == ld->claim_step && b->next_sample < N) {
            int i = b->next_sample++;
            if (b->next_sample == N) ld->claim_step++;
            pthread_mutex_unlock(&ld->mu);
            double t0 = now_s();
            uint64_t g = global_index(ld, b->step, i);
            b->sample_failed[i] = fill_sample(ld, b, i, g, b->planned[i], b->errors + (size_t)i * MSG) != 0;
            double t = now_s() - t0;
            pthread_mutex_lock(&ld->mu);
            ld->busy_s += t, ld->samples++;
            if (++b->done == N) {
                finish_batch(ld, b);
                pthread_cond_broadcast(&ld->cv);
            }
        } else if (b->state == BUF_FREE && !ld->worker_failed) {
            start_batch(ld, b, ld->claim_step);
            pthread_cond_broadcast(&ld->cv); /* other workers can take samples of it */
        } else {
            pthread_cond_wait(&ld->cv, &ld->mu);
        }
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static void free_buffers(loader *ld) {
    for (int k = 0; k < ld->nbuf && ld->buf; k++) {
        batch_buf *b = &ld->buf[k];
        free(b->left), free(b->right), free(b->pair), free(b->planned), free(b->warned), free(b->warning);
        free(b->sample_failed), free(b->errors);
    }
    free(ld->buf);
}

/* The worker count for threads = 0: the online CPUs, at most 8. */
static int auto_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

loader *loader_create(const stereo_dataset *ds, const loader_config *cfg) {
    if (!ds || ds->n <= 0) {
        nn_fail("loader: the dataset holds no pairs");
        return NULL;
    }
    if (cfg->batch < 1 || cfg->width < 1 || cfg->height < 1 || cfg->threads < 0 || cfg->threads > 1024 ||
        cfg->prefetch < 1 || cfg->prefetch > 64 || cfg->start_step < 0) {
        nn_fail("loader: bad configuration: batch %d, %dx%d, threads %d, prefetch %d, start step %lld", cfg->batch,
                cfg->width, cfg->height, cfg->threads, cfg->prefetch, (long long)cfg->start_step);
        return NULL;
    }
    if (cfg->global_batch < 0 || cfg->first_sample < 0 ||
        (long)cfg->first_sample + cfg->batch > (long)(cfg->global_batch ? cfg->global_batch : cfg->batch)) {
        nn_fail("loader: bad configuration: samples %d..%d of a global batch of %d", cfg->first_sample,
                cfg->first_sample + cfg->batch - 1, cfg->global_batch ? cfg->global_batch : cfg->batch);
        return NULL;
    }
    if (cfg->augment) { /* validates the augmentation settings */
        augment_params p;
        if (augment_draw(&p, &cfg->aug, cfg->width, cfg->height, cfg->width, cfg->height, 0, 0)) {
            nn_fail_context("loader: bad configuration");
            return NULL;
        }
    }
    loader *ld = calloc(1, sizeof *ld);
    if (!ld) {
        nn_fail("loader: out of memory");
        return NULL;
    }
    ld->ds = ds, ld->cfg = *cfg, ld->n = ds->n;
    ld->perm_epoch = -1;
    ld->held = -1;
    ld->claim_step = ld->next_step = cfg->start_step;
    ld->n_threads = cfg->threads ? cfg->threads : auto_threads();
    ld->nbuf = cfg->prefetch + 1; /* one held by the caller */
    ld->slots = calloc((size_t)ld->n, sizeof *ld->slots);
    ld->perm = malloc((size_t)ld->n * sizeof *ld->perm);
    ld->buf = calloc((size_t)ld->nbuf, sizeof *ld->buf);
    ld->threads = calloc((size_t)ld->n_threads, sizeof *ld->threads);
    size_t N = (size_t)cfg->batch, sample = (size_t)3 * cfg->width * cfg->height;
    int ok = ld->slots && ld->perm && ld->buf && ld->threads;
    for (int k = 0; k < ld->nbuf && ok; k++) {
        batch_buf *b = &ld->buf[k];
        b->left = malloc(N * sample * sizeof(nn_real));
        b->right = malloc(N * sample * sizeof(nn_real));
        b->pair = malloc(N * sizeof *b->pair);
        b->planned = malloc(N * sizeof *b->planned);
        b->warned = malloc(N * sizeof *b->warned);
        b->warning = malloc(N * MSG);
        b->sample_failed = malloc(N * sizeof *b->sample_failed);
        b->errors = malloc(N * MSG);
        ok = b->left && b->right && b->pair && b->planned && b->warned && b->warning && b->sample_failed && b->errors;
    }
    if (!ok) {
        free_buffers(ld);
        free(ld->slots), free(ld->perm), free(ld->threads), free(ld);
        nn_fail("loader: out of memory for %d batches of %d x 3 x %d x %d", cfg->prefetch + 1, cfg->batch,
                cfg->height, cfg->width);
        return NULL;
    }
    pthread_mutex_init(&ld->cache_mu, NULL);
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    for (int t = 0; t < ld->n_threads; t++) {
        if (pthread_create(&ld->threads[t], NULL, worker, ld) != 0) {
            loader_free(ld);
            nn_fail("loader: cannot start loader thread %d of %d", t + 1, cfg->threads);
            return NULL;
        }
        ld->started++;
    }
    return ld;
}

int loader_next(loader *ld, loader_batch *out) {
    double t0 = now_s();
    pthread_mutex_lock(&ld->mu);
    if (ld->held >= 0) {
        ld->buf[ld->held].state = BUF_FREE;
        ld->held = -1;
        pthread_cond_broadcast(&ld->cv);
    }
    batch_buf *b = buffer_of(ld, ld->next_step);
    while (!(b->state == BUF_READY && b->step == ld->next_step)) pthread_cond_wait(&ld->cv, &ld->mu);
    ld->wait_s += now_s() - t0;
    if (b->failed) {
        pthread_mutex_unlock(&ld->mu);
        return nn_fail("%s", b->error);
    }
    for (int i = 0; i < ld->cfg.batch; i++)
        if (b->warned[i]) {
            ld->warnings += b->warned[i];
            memcpy(ld->last_warning, b->warning + (size_t)i * MSG, MSG);
        }
    ld->held = (int)(b - ld->buf);
    ld->next_step++;
    pthread_mutex_unlock(&ld->mu);
    *out = (loader_batch){.left = b->left,
                          .right = b->right,
                          .pair = b->pair,
                          .step = b->step,
                          .n = ld->cfg.batch,
                          .h = ld->cfg.height,
                          .w = ld->cfg.width};
    return 0;
}

void loader_stats(loader *ld, loader_stat *st) {
    pthread_mutex_lock(&ld->mu);
    *st = (loader_stat){.threads = ld->n_threads, .samples = ld->samples, .busy_s = ld->busy_s, .wait_s = ld->wait_s};
    pthread_mutex_unlock(&ld->mu);
}

long loader_warning_count(const loader *ld) { return ld->warnings; }

const char *loader_last_warning(const loader *ld) { return ld->last_warning; }

void loader_free(loader *ld) {
    if (!ld) return;
    if (ld->started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        for (int t = 0; t < ld->started; t++) pthread_join(ld->threads[t], NULL);
    }
    for (int i = 0; i < ld->n; i++) pair8_free(ld->slots[i].cached);
    free_buffers(ld);
    free(ld->slots), free(ld->perm), free(ld->threads);
    pthread_mutex_destroy(&ld->cache_mu);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv);
    free(ld);
}
