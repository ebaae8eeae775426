/* The CUDA backend's uploads (nn/backend_cuda.cu), for C callers.
 *
 * Device-agnostic code uses them through the backend table (nn/backend.h: upload,
 * upload_async, wait_uploads) or the tensor wrappers (nn/tensor.h:
 * nn_tensor_upload_async, nn_device_wait_uploads); the functions below are the CUDA
 * entries of that table, for code that knows it runs on CUDA (infer/render_cuda.h,
 * infer/render.cu) and for the statistics. They exist only in the CUDA build (guard
 * callers with #ifdef NN_WITH_CUDA).
 *
 * The backend's `upload` copies through pinned host memory (cudaHostAlloc): two staging
 * buffers used in turn, each grown as needed up to 16 MiB and reused (larger uploads go
 * in 16 MiB chunks), queued on the compute stream. It returns once the data is in the
 * staging buffer: the host buffer may be reused at once, the copy is ordered before
 * every later kernel, and the host no longer waits for the GPU to go idle as a
 * pageable cudaMemcpy does. A staging buffer is refilled only after its previous copy
 * finished (an event per buffer). If pinned memory cannot be had, that upload falls
 * back to a pageable cudaMemcpy.
 *
 * Asynchronous uploads overlap the copy with the compute already queued:
 *   nn_cuda_upload_async(dst, host, bytes)
 *       copies host into pinned staging (the host buffer may be reused on return) and
 *       queues its transfer on the backend's copy stream (a non-blocking stream) into a
 *       device staging area owned by the backend; nothing waits for the compute stream.
 *       dst (device memory of the backend) does NOT hold the data yet.
 *   nn_cuda_wait_uploads()
 *       makes the compute stream wait (on the device; the host does not block) for the
 *       copies started so far and queues their placement into each dst (a device-to-
 *       device copy, microseconds); kernels queued afterwards see the data.
 * Safety: the copy stream only ever writes the backend's own staging, never a tensor,
 * so work still queued on a recycled block cannot be overwritten; the staging is
 * reused only after the previous round's placements (an event on the compute stream)
 * and the pinned staging only after the previous round's transfers (an event on the
 * copy stream). Kernels queued before nn_cuda_upload_async see dst's old contents
 * (every write into dst is queued after them), so a training loop may upload the next
 * batch into the very tensor the current step reads. Kernels queued between the two
 * calls may see either (a full staging, a large upload or a release places earlier):
 * do not use dst there, nor upload into it twice. Releasing exactly dst before the
 * wait queues its placement first (so the block's next owner is not overwritten);
 * release a block containing dst at another offset only after the wait. The staging
 * grows to the largest round and is kept (pinned host and device memory of that
 * size); an upload over 512 MiB, or one for which pinned memory cannot be had, is done
 * the synchronous way instead (correct, in stream order, just not overlapped). Typical
 * use, a training loop:
 *   queue step k (reads tensor x); upload_async(x, batch k+1); download step k's loss
 *   (the host waits for step k while the copy runs); wait_uploads(); queue step k+1.
 * Both return 0, or -1 + nn_fail (backend not started, CUDA or allocation errors).
 * train/train.c overlaps its batches this way (through the tensor wrappers). */
#ifndef NN_CUDA_UPLOAD_H
#define NN_CUDA_UPLOAD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int nn_cuda_upload_async(void *dst, const void *host_src, size_t bytes);
int nn_cuda_wait_uploads(void);

/* Counters of the staging buffers, since the backend started. */
typedef struct {
    long pinned_allocs;     /* cudaHostAlloc calls (a staging buffer grown) */
    size_t pinned_bytes;    /* pinned host memory held now */
    size_t staging_bytes;   /* device staging held now (asynchronous uploads) */
    long uploads;           /* upload calls with bytes > 0 */
    long pageable_uploads;  /* uploads (or chunks) that fell back to pageable memory */
    long async_uploads;     /* nn_cuda_upload_async calls with bytes > 0 */
    long async_rounds;      /* placements queued by nn_cuda_wait_uploads (or forced) */
} nn_cuda_upload_stats;

/* Fills *out; -1 + nn_fail when the CUDA backend has not started. */
int nn_cuda_upload_stats_get(nn_cuda_upload_stats *out);

#ifdef __cplusplus
}
#endif

#endif
