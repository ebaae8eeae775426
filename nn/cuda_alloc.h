/* A caching allocator for device memory (the CUDA backend's alloc/release).
 *
 * Why: cudaMalloc and cudaFree are slow and cudaFree synchronises the device, so a
 * training step that allocated each activation afresh would stall on every layer.
 * A fixed CNN asks for the same sizes in every step, so freed blocks are kept in
 * bins by size class and handed out again: after the first step no device
 * allocation happens at all. The same idea as PyTorch's CUDACachingAllocator
 * (c10/cuda/CUDACachingAllocator.cpp), much simplified: no block splitting, one
 * stream (the legacy default stream, so a freed block can be reused at once: every
 * later use is ordered after every earlier one on that stream).
 *
 * Size classes: requests are rounded up to a multiple of 512 bytes; above 1 MiB to
 * one of 8 classes per power of two (at most 12.5% waste). A block is reused only
 * for a request of exactly its class.
 *
 * Out of memory: when the device allocation fails, every cached (free) block is
 * returned to the device and the allocation is tried once more; if that fails too,
 * the error says how much was asked, how much the device has free, what this
 * allocator holds, and what to lower.
 *
 * The bookkeeping is plain C and talks to the device only through nn_dev_ops, so
 * the tests drive it on the CPU with a fake device (tests/test_cuda_host.c).
 * Thread safety: every entry point takes the allocator's mutex.
 */
#ifndef NN_CUDA_ALLOC_H
#define NN_CUDA_ALLOC_H

#include <stddef.h>

/* The device as the allocator sees it. */
typedef struct nn_dev_ops {
    /* Allocates bytes of device memory into *p. Returns 0 on success, 1 when the
     * device is out of memory (the allocator then empties its cache and retries),
     * -1 for any other error (after nn_fail naming the call). */
    int (*malloc_fn)(void **p, size_t bytes, void *ctx);
    /* Returns a block to the device: 0, or -1 + nn_fail. */
    int (*free_fn)(void *p, void *ctx);
    /* Free and total device memory in bytes (for the out-of-memory message); may be
     * NULL. Returns 0 or -1. */
    int (*mem_info)(size_t *free_bytes, size_t *total_bytes, void *ctx);
    void *ctx;
} nn_dev_ops;

/* Counters, all in bytes or counts since creation. */
typedef struct nn_cuda_alloc_stats {
    size_t in_use_bytes;        /* blocks handed out now (class sizes) */
    size_t requested_bytes;     /* the sizes asked for, of the blocks handed out now */
    size_t cached_bytes;        /* free blocks kept for reuse */
    size_t reserved_bytes;      /* in_use + cached: what the device has given us */
    size_t peak_in_use_bytes;
    size_t peak_reserved_bytes;
    long n_alloc;               /* alloc calls that succeeded */
    long n_release;             /* release calls of a known block */
    long n_reused;              /* allocations served from the cache */
    long n_device_malloc;       /* successful device allocations */
    long n_device_free;         /* blocks returned to the device */
    long n_oom_retries;         /* times the cache was emptied to retry a device allocation */
    long n_blocks_in_use;
    long n_blocks_cached;
} nn_cuda_alloc_stats;

typedef struct nn_cuda_allocator nn_cuda_allocator;

/* The size class of a request (>= bytes, a multiple of 512; a request of 0 bytes
 * gets the smallest class). */
size_t nn_cuda_alloc_class(size_t bytes);

/* A new allocator over `ops` (copied). NULL + nn_fail when out of host memory. */
nn_cuda_allocator *nn_cuda_allocator_new(const nn_dev_ops *ops);

/* Returns every block, cached or still handed out, to the device, and frees the
 * allocator. NULL-safe. Returns 0, or -1 + nn_fail if a device free failed. */
int nn_cuda_allocator_destroy(nn_cuda_allocator *a);

/* A block of at least `bytes` (aligned as the device allocation: 256 bytes for
 * cudaMalloc). NULL + nn_fail ("out of GPU memory: ...") when even the retry after
 * emptying the cache fails, or the device reported another error. */
void *nn_cuda_allocator_alloc(nn_cuda_allocator *a, size_t bytes);

/* Gives a block back to the cache (it stays device memory of this process).
 * NULL is ignored (returns 0). Returns -1 + nn_fail for a pointer this allocator
 * did not hand out or that was already released. */
int nn_cuda_allocator_release(nn_cuda_allocator *a, void *p);

/* Returns every cached block to the device (cudaFree). Returns 0, or -1 + nn_fail
 * when a device free failed (the remaining blocks are still freed). */
int nn_cuda_allocator_empty_cache(nn_cuda_allocator *a);

/* Snapshot of the counters. */
void nn_cuda_allocator_stats(nn_cuda_allocator *a, nn_cuda_alloc_stats *out);

/* "1.50 GiB", "512 B", ...: bytes in binary units into buf; returns buf. */
const char *nn_format_bytes(size_t bytes, char *buf, size_t size);

/* --- the process-wide allocator of the CUDA backend ------------------------ */

/* Set by the CUDA backend when it starts (NULL before, and in builds without CUDA). */
void nn_cuda_alloc_set_current(nn_cuda_allocator *a);
nn_cuda_allocator *nn_cuda_alloc_current(void);

/* Counters of the CUDA backend's allocator; -1 + nn_fail when the CUDA backend has
 * not been started (nn_backend_cuda()) or the build has no CUDA. */
int nn_cuda_memory_stats(nn_cuda_alloc_stats *out);

/* Returns the CUDA backend's cached blocks to the device (e.g. before handing the
 * GPU to another program); -1 + nn_fail as nn_cuda_memory_stats. */
int nn_cuda_empty_cache(void);

#endif
