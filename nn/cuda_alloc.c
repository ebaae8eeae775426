/* The caching allocator's bookkeeping (see cuda_alloc.h). Plain C: the device is
 * reached only through nn_dev_ops, so this file builds and is tested without CUDA. */
#include "cuda_alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define GRANULE ((size_t)512)
#define SMALL_LIMIT ((size_t)1 << 20)   /* up to here classes are 512-byte steps */
#define CLASSES_PER_OCTAVE 8            /* above it: 8 classes per power of two */

/* Free blocks of one size class. `cap` is kept >= n + outstanding so that a
 * release never needs host memory (it cannot fail for lack of it). */
typedef struct bin {
    size_t size;
    void **blocks;
    int n;             /* cached blocks */
    int outstanding;   /* blocks of this class handed out */
    int cap;
} bin;

/* A handed-out block in the open-addressing table (linear probing). */
typedef struct slot {
    void *p;            /* NULL: empty */
    size_t size;        /* class */
    size_t requested;   /* what the caller asked for */
} slot;

struct nn_cuda_allocator {
    nn_dev_ops ops;
    pthread_mutex_t mu;
    bin *bins;          /* sorted by size */
    int n_bins, cap_bins;
    slot *slots;        /* capacity a power of two, at most half full */
    size_t cap_slots, n_live;
    nn_cuda_alloc_stats st;
};

size_t nn_cuda_alloc_class(size_t bytes) {
    if (bytes > SIZE_MAX / 4) return 0;   /* no device has this much; reported by alloc */
    if (bytes == 0) bytes = 1;
    size_t r = (bytes + GRANULE - 1) / GRANULE * GRANULE;
    if (r <= SMALL_LIMIT) return r;
    size_t p = SMALL_LIMIT;
    while (p <= r / 2) p *= 2;            /* largest power of two <= r */
    size_t step = p / CLASSES_PER_OCTAVE;
    return (r + step - 1) / step * step;
}

const char *nn_format_bytes(size_t bytes, char *buf, size_t size) {
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%zu B", bytes);
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, size, "%.2f %s", v, unit[u]);
    return buf;
}

/* ---- the table of handed-out blocks ----------------------------------------- */

static size_t hash_ptr(const void *p, size_t mask) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static void slots_insert(slot *slots, size_t cap, slot s) {
    size_t i = hash_ptr(s.p, cap - 1);
    while (slots[i].p) i = (i + 1) & (cap - 1);
    slots[i] = s;
}

/* Makes room for one more entry; -1 when out of host memory. */
static int slots_reserve(nn_cuda_allocator *a) {
    if ((a->n_live + 1) * 2 <= a->cap_slots) return 0;
    size_t cap = a->cap_slots ? a->cap_slots * 2 : 256;
    slot *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < a->cap_slots; i++)
        if (a->slots[i].p) slots_insert(s, cap, a->slots[i]);
    free(a->slots);
    a->slots = s;
    a->cap_slots = cap;
    return 0;
}

/* Removes p; fills *out. -1 when p is not in the table. Deletion by backward
 * shift (Knuth, TAOCP vol. 3, 6.4 algorithm R), so no tombstones accumulate. */
static int slots_take(nn_cuda_allocator *a, const void *p, slot *out) {
    if (!a->cap_slots || !p) return -1;
    size_t mask = a->cap_slots - 1, i = hash_ptr(p, mask);
    while (a->slots[i].p != p) {
        if (!a->slots[i].p) return -1;
        i = (i + 1) & mask;
    }
    *out = a->slots[i];
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!a->slots[j].p) break;
        size_t k = hash_ptr(a->slots[j].p, mask);
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        a->slots[i] = a->slots[j];
        i = j;
    }
    a->slots[i].p = NULL;
    a->n_live--;
    return 0;
}

/* ---- bins ------------------------------------------------------------------- */

static bin *bin_find(nn_cuda_allocator *a, size_t size) {
    int lo = 0, hi = a->n_bins;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (a->bins[mid].size < size) lo = mid + 1;
        else hi = mid;
    }
    return lo < a->n_bins && a->bins[lo].size == size ? &a->bins[lo] : NULL;
}

/* The bin of `size`, created if missing, with room for one more outstanding
 * block. NULL when out of host memory. */
static bin *bin_reserve(nn_cuda_allocator *a, size_t size) {
    bin *b = bin_find(a, size);
    if (!b) {
        if (a->n_bins == a->cap_bins) {
            int cap = a->cap_bins ? a->cap_bins * 2 : 32;
            bin *nb = realloc(a->bins, (size_t)cap * sizeof *nb);
            if (!nb) return NULL;
            a->bins = nb;
            a->cap_bins = cap;
        }
        int pos = 0;
        while (pos < a->n_bins && a->bins[pos].size < size) pos++;
        memmove(&a->bins[pos + 1], &a->bins[pos], (size_t)(a->n_bins - pos) * sizeof *a->bins);
        a->n_bins++;
        b = &a->bins[pos];
        memset(b, 0, sizeof *b);
        b->size = size;
    }
    if (b->n + b->outstanding + 1 > b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        void **nb = realloc(b->blocks, (size_t)cap * sizeof *nb);
        if (!nb) return NULL;
        b->blocks = nb;
        b->cap = cap;
    }
    return b;
}

/* ---- allocator ---------------------------------------------------------------- */

nn_cuda_allocator *nn_cuda_allocator_new(const nn_dev_ops *ops) {
    if (!ops || !ops->malloc_fn || !ops->free_fn) {
        nn_fail("cuda allocator: device malloc and free functions are required");
        return NULL;
    }
    nn_cuda_allocator *a = calloc(1, sizeof *a);
    if (!a) {
        nn_fail("cuda allocator: out of host memory");
        return NULL;
    }
    a->ops = *ops;
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

static int empty_cache_locked(nn_cuda_allocator *a) {
    int rc = 0;
    for (int i = 0; i < a->n_bins; i++) {
        bin *b = &a->bins[i];
        for (int j = 0; j < b->n; j++) {
            if (a->ops.free_fn(b->blocks[j], a->ops.ctx)) rc = -1;
            a->st.n_device_free++;
            a->st.cached_bytes -= b->size;
            a->st.reserved_bytes -= b->size;
            a->st.n_blocks_cached--;
        }
        b->n = 0;
    }
    return rc;
}

int nn_cuda_allocator_empty_cache(nn_cuda_allocator *a) {
    pthread_mutex_lock(&a->mu);
    int rc = empty_cache_locked(a);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int nn_cuda_allocator_destroy(nn_cuda_allocator *a) {
    if (!a) return 0;
    if (nn_cuda_alloc_current() == a) nn_cuda_alloc_set_current(NULL);
    int rc = empty_cache_locked(a);
    for (size_t i = 0; i < a->cap_slots; i++)
        if (a->slots[i].p && a->ops.free_fn(a->slots[i].p, a->ops.ctx)) rc = -1;
    for (int i = 0; i < a->n_bins; i++) free(a->bins[i].blocks);
    free(a->bins);
    free(a->slots);
    pthread_mutex_destroy(&a->mu);
    free(a);
    return rc;
}

/* The out-of-memory message: what was asked, what is free, what to lower. */
static void fail_oom(nn_cuda_allocator *a, size_t bytes, size_t cls, size_t released) {
    char req[32], cl[32], rel[32], fr[32], tot[32], use[32];
    size_t free_b = 0, total_b = 0;
    int known = a->ops.mem_info && a->ops.mem_info(&free_b, &total_b, a->ops.ctx) == 0;
    nn_fail("out of GPU memory: %s requested (%zu bytes, size class %s), and the retry after "
            "releasing %s of cached blocks failed too; the device has %s free of %s; this "
            "process holds %s in %ld blocks; lower the batch size or the image size "
            "(or the cuDNN workspace limit)",
            nn_format_bytes(bytes, req, sizeof req), bytes, nn_format_bytes(cls, cl, sizeof cl),
            nn_format_bytes(released, rel, sizeof rel),
            known ? nn_format_bytes(free_b, fr, sizeof fr) : "an unknown amount",
            known ? nn_format_bytes(total_b, tot, sizeof tot) : "an unknown total",
            nn_format_bytes(a->st.in_use_bytes, use, sizeof use), a->st.n_blocks_in_use);
}

void *nn_cuda_allocator_alloc(nn_cuda_allocator *a, size_t bytes) {
    size_t cls = nn_cuda_alloc_class(bytes);
    if (!cls) {
        nn_fail("out of GPU memory: %zu bytes requested, more than any device has", bytes);
        return NULL;
    }
    pthread_mutex_lock(&a->mu);
    void *p = NULL;
    bin *b = bin_reserve(a, cls);
    if (!b || slots_reserve(a)) {
        pthread_mutex_unlock(&a->mu);
        nn_fail("cuda allocator: out of host memory for its bookkeeping");
        return NULL;
    }
    if (b->n > 0) {
        p = b->blocks[--b->n];
        a->st.cached_bytes -= cls;
        a->st.n_blocks_cached--;
        a->st.n_reused++;
    } else {
        int rc = a->ops.malloc_fn(&p, cls, a->ops.ctx);
        if (rc == 1) {
            size_t released = a->st.cached_bytes;
            a->st.n_oom_retries++;
            empty_cache_locked(a);   /* a failed free here surfaces as the OOM below */
            rc = a->ops.malloc_fn(&p, cls, a->ops.ctx);
            if (rc == 1) {
                fail_oom(a, bytes, cls, released);
                pthread_mutex_unlock(&a->mu);
                return NULL;
            }
        }
        if (rc != 0 || !p) {
            if (rc == 0) nn_fail("cuda allocator: the device allocation of %zu bytes returned NULL", cls);
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        a->st.n_device_malloc++;
        a->st.reserved_bytes += cls;
        if (a->st.reserved_bytes > a->st.peak_reserved_bytes) a->st.peak_reserved_bytes = a->st.reserved_bytes;
    }
    b->outstanding++;
    slot s = {p, cls, bytes};
    slots_insert(a->slots, a->cap_slots, s);
    a->n_live++;
    a->st.in_use_bytes += cls;
    a->st.requested_bytes += bytes;
    if (a->st.in_use_bytes > a->st.peak_in_use_bytes) a->st.peak_in_use_bytes = a->st.in_use_bytes;
    a->st.n_blocks_in_use++;
    a->st.n_alloc++;
    pthread_mutex_unlock(&a->mu);
    return p;
}

int nn_cuda_allocator_release(nn_cuda_allocator *a, void *p) {
    if (!p) return 0;
    pthread_mutex_lock(&a->mu);
    slot s;
    if (slots_take(a, p, &s)) {
        pthread_mutex_unlock(&a->mu);
        return nn_fail("cuda release: %p was not allocated by this allocator, or was already released", p);
    }
    bin *b = bin_find(a, s.size);   /* exists, with room: see bin_reserve */
    b->blocks[b->n++] = p;
    b->outstanding--;
    a->st.in_use_bytes -= s.size;
    a->st.requested_bytes -= s.requested;
    a->st.cached_bytes += s.size;
    a->st.n_blocks_in_use--;
    a->st.n_blocks_cached++;
    a->st.n_release++;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

void nn_cuda_allocator_stats(nn_cuda_allocator *a, nn_cuda_alloc_stats *out) {
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    pthread_mutex_unlock(&a->mu);
}

/* ---- the CUDA backend's allocator ------------------------------------------------- */

static nn_cuda_allocator *current;

void nn_cuda_alloc_set_current(nn_cuda_allocator *a) { current = a; }

nn_cuda_allocator *nn_cuda_alloc_current(void) { return current; }

static int not_started(const char *what) {
    return nn_fail("%s: the CUDA backend is not started (no nn_backend_cuda() yet, no GPU, "
                   "or a build without CUDA)", what);
}

int nn_cuda_memory_stats(nn_cuda_alloc_stats *out) {
    if (!current) return not_started("CUDA memory statistics");
    nn_cuda_allocator_stats(current, out);
    return 0;
}

int nn_cuda_empty_cache(void) {
    if (!current) return not_started("CUDA empty cache");
    return nn_cuda_allocator_empty_cache(current);
}
