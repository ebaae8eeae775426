/* The CUDA backend: device memory through the caching allocator (nn/cuda_alloc.h),
 * cuDNN for the convolutions, max pooling, batch normalisation in training and the
 * softmax (cuDNN 9's legacy calls), cuBLAS for the fully connected layers, our own
 * kernels for the rest (layers/<name>.cu, nn/optim.cu).
 *
 * Everything runs on the legacy default stream of device 0 (CUDA_VISIBLE_DEVICES
 * picks the GPU), so every kernel, copy and library call is ordered after the ones
 * before it; this is what lets the allocator hand a freed block out again at once.
 * The one exception is the copy stream of the asynchronous uploads, which writes only
 * the backend's own staging memory (never a tensor) and meets the compute stream
 * through events (see "uploads" below and nn/cuda_upload.h).
 *
 * Uploads go through pinned host memory (cudaHostAlloc): `upload` copies into one of
 * two staging buffers used in turn (grown as needed up to 16 MiB, larger uploads in
 * chunks) and queues the transfer on the compute stream, so it returns without
 * waiting for the GPU; a buffer is refilled only after its previous transfer finished
 * (an event per buffer).
 *
 * Started on the first nn_backend_cuda() call; a machine without a GPU or without a
 * driver gets NULL + "no CUDA device: <cudaGetDeviceCount error>", with nothing
 * printed (the CUDA runtime prints nothing on its own).
 */
#include <atomic>
#include <cuda_bf16.h>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"

namespace {

struct Context {
    char error[1024];                   /* why the start failed */
    int sm_count = 1;
    cudnnHandle_t cudnn = nullptr;
    cublasHandle_t cublas = nullptr;
    nn_cuda_allocator *alloc = nullptr;
    void *workspace = nullptr;          /* the shared cuDNN workspace */
    size_t workspace_bytes = 0;
    nn_algo_cache cache;
};

Context ctx;
std::mutex start_mutex;
std::atomic<int> state{0};              /* 0 not tried, 1 ready, -1 failed */

/* "; the device has X free of Y; this process holds Z in use and W cached; lower ..." */
void memory_note(char *buf, size_t size) {
    size_t free_b = 0, total_b = 0;
    nn_cuda_alloc_stats st;
    memset(&st, 0, sizeof st);
    if (ctx.alloc) nn_cuda_allocator_stats(ctx.alloc, &st);
    char f[32], t[32], u[32], c[32];
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(buf, size, "; device memory unknown; this process holds %s in use and %s cached",
                 nn_format_bytes(st.in_use_bytes, u, sizeof u), nn_format_bytes(st.cached_bytes, c, sizeof c));
    } else {
        snprintf(buf, size, "; the device has %s free of %s; this process holds %s in use and %s cached",
                 nn_format_bytes(free_b, f, sizeof f), nn_format_bytes(total_b, t, sizeof t),
                 nn_format_bytes(st.in_use_bytes, u, sizeof u), nn_format_bytes(st.cached_bytes, c, sizeof c));
    }
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "; lower the batch size or the image size (or the cuDNN workspace limit)");
}

/* ---- the allocator's device ------------------------------------------------------- */

int dev_malloc(void **p, size_t bytes, void *) {
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return 0;
    (void)cudaGetLastError();   /* clear it: out of memory is not a sticky error */
    if (e == cudaErrorMemoryAllocation) return 1;
    return nn_cuda_fail_rt(e, "cudaMalloc(p, bytes)", __FILE__, __LINE__);
}

int dev_free(void *p, void *) {
    NN_CUDA(cudaFree(p));
    return 0;
}

int dev_mem_info(size_t *free_b, size_t *total_b, void *) {
    NN_CUDA(cudaMemGetInfo(free_b, total_b));
    return 0;
}

/* ---- memory entry points of the table ---------------------------------------------- */

void *cuda_alloc(size_t bytes) { return nn_cuda_allocator_alloc(ctx.alloc, bytes); }

/* ---- uploads through pinned staging ------------------------------------------------- */

constexpr size_t kChunk = (size_t)16 << 20;    /* largest synchronous staging buffer */
constexpr size_t kAlign = 256;                 /* sub-allocations of the async staging */
constexpr size_t kAsyncMost = (size_t)512 << 20;   /* larger async uploads go the synchronous way */

struct Pinned {
    void *host = nullptr;
    size_t cap = 0;
    cudaEvent_t done = nullptr;                /* the last transfer out of it */
};

struct Pending {
    void *dst;
    size_t off, bytes;
};

struct Uploads {
    std::mutex mu;
    bool ready = false;                        /* streams and events created */
    Pinned slot[2];                            /* synchronous uploads, used in turn */
    int next = 0;
    /* asynchronous uploads: a round = the uploads between two placements */
    cudaStream_t stream = nullptr;             /* non-blocking copy stream */
    cudaEvent_t copied = nullptr;              /* copy stream: the round's last transfer */
    cudaEvent_t placed = nullptr;              /* compute stream: the round's placements */
    cudaEvent_t fence = nullptr;               /* compute stream: a new staging block is free */
    void *host = nullptr, *dev = nullptr;      /* pinned and device staging, cap bytes each */
    size_t host_cap = 0, cap = 0, used = 0;
    bool open = false;
    Pending *pending = nullptr;
    int n_pending = 0, max_pending = 0;
    std::atomic<int> pending_count{0};         /* n_pending, read without the lock */
    nn_cuda_upload_stats stats;
};

Uploads up;

/* Creates the copy stream and the events (under up.mu). */
int uploads_ready(void) {
    if (up.ready) return 0;
    for (Pinned &p : up.slot) NN_CUDA(cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming));
    NN_CUDA(cudaStreamCreateWithFlags(&up.stream, cudaStreamNonBlocking));
    NN_CUDA(cudaEventCreateWithFlags(&up.copied, cudaEventDisableTiming));
    NN_CUDA(cudaEventCreateWithFlags(&up.placed, cudaEventDisableTiming));
    NN_CUDA(cudaEventCreateWithFlags(&up.fence, cudaEventDisableTiming));
    up.ready = true;
    return 0;
}

/* Pinned host memory of at least `need` bytes in *p (old contents dropped; the caller
 * made sure no transfer reads it). 1 when cudaHostAlloc fails (error cleared), -1 on
 * another error. */
int pinned_grow(void **p, size_t *cap, size_t need, size_t most) {
    size_t want = *cap * 2 > need ? *cap * 2 : need;
    if (most && want > most) want = most > need ? most : need;
    want = (want + 65535) & ~(size_t)65535;
    if (*p) {
        NN_CUDA(cudaFreeHost(*p));
        up.stats.pinned_bytes -= *cap;
        *p = nullptr, *cap = 0;
    }
    cudaError_t e = cudaHostAlloc(p, want, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *p = nullptr;
        return 1;
    }
    *cap = want;
    up.stats.pinned_allocs++;
    up.stats.pinned_bytes += want;
    return 0;
}

/* The synchronous upload (under up.mu). */
int upload_locked(void *dst, const void *host_src, size_t bytes) {
    if (uploads_ready()) return -1;
    up.stats.uploads++;
    const char *src = (const char *)host_src;
    char *d = (char *)dst;
    for (size_t off = 0; off < bytes;) {
        size_t len = bytes - off < kChunk ? bytes - off : kChunk;
        Pinned &s = up.slot[up.next];
        up.next ^= 1;
        NN_CUDA(cudaEventSynchronize(s.done));   /* its previous transfer has read it */
        int g = s.cap < len ? pinned_grow(&s.host, &s.cap, len, kChunk) : 0;
        if (g < 0) return -1;
        if (g > 0) { /* no pinned memory: this chunk the pageable way */
            up.stats.pageable_uploads++;
            NN_CUDA(cudaMemcpy(d + off, src + off, len, cudaMemcpyHostToDevice));
        } else {
            memcpy(s.host, src + off, len);
            NN_CUDA(cudaMemcpyAsync(d + off, s.host, len, cudaMemcpyHostToDevice, 0));
            NN_CUDA(cudaEventRecord(s.done, 0));
        }
        off += len;
    }
    return 0;
}

int cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return 0;
    std::lock_guard<std::mutex> lock(up.mu);
    return upload_locked(dst, host_src, bytes);
}

/* Queues the placements of the open round on the compute stream (under up.mu). */
int uploads_place(void) {
    if (up.n_pending) {
        NN_CUDA(cudaStreamWaitEvent(0, up.copied, 0));
        for (int i = 0; i < up.n_pending; i++) {
            const Pending &q = up.pending[i];
            NN_CUDA(cudaMemcpyAsync(q.dst, (char *)up.dev + q.off, q.bytes, cudaMemcpyDeviceToDevice, 0));
        }
        NN_CUDA(cudaEventRecord(up.placed, 0));
        up.stats.async_rounds++;
    }
    up.n_pending = 0;
    up.pending_count.store(0, std::memory_order_release);
    up.open = false;
    return 0;
}

/* Starts a round: the pinned staging is free once the previous round's transfers are
 * done (host waits, normally long past); the device staging once its placements are
 * done (the copy stream waits, on the device). */
int uploads_open(void) {
    NN_CUDA(cudaEventSynchronize(up.copied));
    NN_CUDA(cudaStreamWaitEvent(up.stream, up.placed, 0));
    up.used = 0;
    up.open = true;
    return 0;
}

/* Grows both staging areas to at least `need` bytes (open round, nothing pending).
 * 1 when the pinned memory cannot be had (error cleared; the staging is then empty). */
int uploads_grow(size_t need) {
    size_t want = up.cap * 2 > need ? up.cap * 2 : need;
    if (up.dev) {
        nn_cuda_allocator_release(ctx.alloc, up.dev);   /* ordered after its placements */
        up.stats.staging_bytes = 0;
        up.dev = nullptr;
    }
    up.cap = 0;
    int g = pinned_grow(&up.host, &up.host_cap, want, 0);
    if (g < 0) return -1;
    if (g > 0) return 1;
    want = up.host_cap;
    up.dev = nn_cuda_allocator_alloc(ctx.alloc, want);
    if (!up.dev) return nn_fail_context("nn_cuda_upload_async: device staging");
    /* the block may still be read or written by compute work queued by its previous
     * owner: the copy stream starts writing it only after that work */
    NN_CUDA(cudaEventRecord(up.fence, 0));
    NN_CUDA(cudaStreamWaitEvent(up.stream, up.fence, 0));
    up.cap = want;
    up.stats.staging_bytes = want;
    return 0;
}

/* An asynchronous upload too large for the staging (over kAsyncMost, or no pinned
 * memory for it) is done synchronously on the compute stream instead: the data is in
 * dst even earlier than the contract promises, and in stream order. */
int upload_async_locked(void *dst, const void *host_src, size_t bytes) {
    if (uploads_ready()) return -1;
    size_t need = (bytes + kAlign - 1) & ~(kAlign - 1);
    if (need > kAsyncMost) return upload_locked(dst, host_src, bytes);
    if (!up.open && uploads_open()) return -1;
    if (up.used + need > up.cap) {
        if (up.n_pending && (uploads_place() || uploads_open())) return -1;
        if (need > up.cap) {
            int g = uploads_grow(need);
            if (g < 0) return -1;
            if (g > 0) return upload_locked(dst, host_src, bytes);
        }
    }
    if (up.n_pending == up.max_pending) {
        int m = up.max_pending ? 2 * up.max_pending : 16;
        Pending *np = (Pending *)realloc(up.pending, (size_t)m * sizeof *np);
        if (!np) return nn_fail("nn_cuda_upload_async: out of host memory");
        up.pending = np, up.max_pending = m;
    }
    memcpy((char *)up.host + up.used, host_src, bytes);
    NN_CUDA(cudaMemcpyAsync((char *)up.dev + up.used, (char *)up.host + up.used, bytes, cudaMemcpyHostToDevice,
                            up.stream));
    NN_CUDA(cudaEventRecord(up.copied, up.stream));
    up.pending[up.n_pending++] = Pending{dst, up.used, bytes};
    up.pending_count.store(up.n_pending, std::memory_order_release);
    up.used += need;
    up.stats.async_uploads++;
    return 0;
}

/* A pointer this allocator did not hand out is a caller bug; release cannot report
 * it (it returns void), so the message is left as the thread's last error. */
void cuda_release(void *p) {
    /* an asynchronous upload into p not placed yet: place it first, so the placement
     * is ordered before any later owner of the block */
    if (p && up.pending_count.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(up.mu);
        for (int i = 0; i < up.n_pending; i++)
            if (up.pending[i].dst == p) {
                (void)uploads_place();
                break;
            }
    }
    (void)nn_cuda_allocator_release(ctx.alloc, p);
}

int cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (!bytes) return 0;
    NN_CUDA(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

int cuda_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return 0;
    NN_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
    return 0;
}

int cuda_synchronize(void) {
    NN_CUDA(cudaDeviceSynchronize());
    return 0;
}

/* Filled field by field (C++17 has no designated initializers), so a reordering of
 * nn_backend cannot silently shift a kernel into the wrong slot. */
nn_backend make_table(void) {
    nn_backend b;
    memset(&b, 0, sizeof b);
    b.name = "cuda";
    b.device = NN_CUDA;
    b.alloc = cuda_alloc;
    b.release = cuda_release;
    b.upload = cuda_upload;
    b.download = cuda_download;
    b.copy = cuda_copy;
    b.synchronize = cuda_synchronize;
    b.upload_async = nn_cuda_upload_async;
    b.wait_uploads = nn_cuda_wait_uploads;
    b.fill = fill_cuda;
    b.axpy = axpy_cuda;
    b.add = add_cuda;
    b.relu_forward = relu_forward_cuda;
    b.relu_backward = relu_backward_cuda;
    b.relu_mask = relu_mask_cuda;
    b.channel_affine = channel_affine_cuda;
    b.channel_affine_backward = channel_affine_backward_cuda;
    b.conv2d_forward = conv2d_forward_cuda;
    b.conv2d_backward_data = conv2d_backward_data_cuda;
    b.conv2d_backward_weight = conv2d_backward_weight_cuda;
    b.bias_forward = bias_forward_cuda;
    b.bias_backward = bias_backward_cuda;
    b.maxpool2d_forward = maxpool2d_forward_cuda;
    b.maxpool2d_backward = maxpool2d_backward_cuda;
    b.maxpool2d_uses_argmax = 0;   /* cuDNN recomputes the maxima from in and out */
    b.linear_forward = linear_forward_cuda;
    b.linear_backward = linear_backward_cuda;
    b.dropout_forward = dropout_forward_cuda;
    b.dropout_backward = dropout_backward_cuda;
    b.batchnorm_forward_train = batchnorm_forward_train_cuda;
    b.batchnorm_backward = batchnorm_backward_cuda;
    b.batchnorm_sum = batchnorm_sum_cuda;
    b.batchnorm_sqdev = batchnorm_sqdev_cuda;
    b.batchnorm_apply_train = batchnorm_apply_train_cuda;
    b.batchnorm_backward_sums = batchnorm_backward_sums_cuda;
    b.batchnorm_backward_apply = batchnorm_backward_apply_cuda;
    b.softmax_forward = softmax_forward_cuda;
    b.softmax_backward = softmax_backward_cuda;
    b.selection_forward = selection_forward_cuda;
    b.selection_backward = selection_backward_cuda;
    b.l1_loss_forward = l1_loss_forward_cuda;
    b.l1_loss_backward = l1_loss_backward_cuda;
    b.ssim_l1_loss_forward = ssim_l1_loss_forward_cuda;
    b.ssim_l1_loss_backward = ssim_l1_loss_backward_cuda;
    b.disparity_smoothness_forward = disparity_smoothness_forward_cuda;
    b.disparity_smoothness_backward = disparity_smoothness_backward_cuda;
    b.sgd_step = sgd_step_cuda;
    b.adam_step = adam_step_cuda;
    return b;
}

const nn_backend cuda_backend = make_table();

__global__ void probe_kernel(int *flag) {
    if (flag) *flag = 1;
}

/* Starts the backend on device 0; 0 or -1 + nn_fail. */
int start(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return nn_fail("no CUDA device: cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (count == 0) return nn_fail("no CUDA device: cudaGetDeviceCount found none");
    NN_CUDA(cudaSetDevice(0));
    NN_CUDA(cudaDeviceGetAttribute(&ctx.sm_count, cudaDevAttrMultiProcessorCount, 0));
    int major = 0, minor = 0;
    NN_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    NN_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
    /* A build without code for this GPU fails at the first kernel: say so now. */
    probe_kernel<<<1, 1>>>(nullptr);
    e = cudaGetLastError();
    if (e != cudaSuccess)
        return nn_fail("the CUDA device (compute capability %d.%d) cannot run this build's kernels: "
                       "%s (%s); rebuild with CUDA_ARCH='-gencode arch=compute_%d%d,code=sm_%d%d'",
                       major, minor, cudaGetErrorString(e), cudaGetErrorName(e), major, minor, major, minor);
    NN_CUDA(cudaDeviceSynchronize());
    size_t version = cudnnGetVersion();
    if (version / 10000 != CUDNN_MAJOR)
        return nn_fail("cuDNN %zu.%zu is loaded but deep3d was built against cuDNN %d.%d", version / 10000,
                       version / 100 % 100, CUDNN_MAJOR, CUDNN_MINOR);
    nn_dev_ops ops = {dev_malloc, dev_free, dev_mem_info, nullptr};
    ctx.alloc = nn_cuda_allocator_new(&ops);
    if (!ctx.alloc) return -1;
    NN_CUDNN(cudnnCreate(&ctx.cudnn));
    NN_CUBLAS(cublasCreate(&ctx.cublas));
    nn_algo_cache_init(&ctx.cache);
    nn_cuda_alloc_set_current(ctx.alloc);
    return 0;
}

} // namespace

/* ---- error reports (cuda_check.h) ------------------------------------------------ */

int nn_cuda_fail_rt(cudaError_t e, const char *call, const char *file, int line) {
    (void)cudaGetLastError();   /* reset a non-sticky error so later calls start clean */
    char note[512] = "";
    if (e == cudaErrorMemoryAllocation) memory_note(note, sizeof note);
    return nn_fail("%s failed: %s: %s (%s:%d)%s", call, cudaGetErrorName(e), cudaGetErrorString(e), file, line, note);
}

int nn_cuda_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line) {
    char note[512] = "";
    if (s == CUBLAS_STATUS_ALLOC_FAILED) memory_note(note, sizeof note);
    return nn_fail("%s failed: %s: %s (%s:%d)%s", call, cublasGetStatusName(s), cublasGetStatusString(s), file,
                   line, note);
}

int nn_cuda_fail_cudnn(cudnnStatus_t s, const char *call, const char *file, int line) {
    char note[512] = "", detail[256] = "";
    if (s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) memory_note(note, sizeof note);
    cudnnGetLastErrorString(detail, sizeof detail);
    return nn_fail("%s failed: %s%s%s (%s:%d)%s", call, cudnnGetErrorString(s), detail[0] ? ": " : "", detail,
                   file, line, note);
}

/* ---- shared context (cuda_check.h) ------------------------------------------------- */

cudnnHandle_t nn_cuda_cudnn(void) { return ctx.cudnn; }
cublasHandle_t nn_cuda_cublas(void) { return ctx.cublas; }
int nn_cuda_sm_count(void) { return ctx.sm_count; }
nn_algo_cache *nn_cuda_algo_cache(void) { return &ctx.cache; }

void *nn_cuda_scratch(size_t bytes) { return nn_cuda_allocator_alloc(ctx.alloc, bytes); }

void nn_cuda_scratch_release(void *p) { (void)nn_cuda_allocator_release(ctx.alloc, p); }

int nn_cuda_workspace_ensure(size_t bytes) {
    if (bytes <= ctx.workspace_bytes) return 0;
    /* Release first: when the device is full, the allocator's retry can then reuse it. */
    if (ctx.workspace) nn_cuda_allocator_release(ctx.alloc, ctx.workspace);
    ctx.workspace = nullptr;
    ctx.workspace_bytes = 0;
    void *p = nn_cuda_allocator_alloc(ctx.alloc, bytes);
    if (!p) return nn_fail_context("cuDNN workspace");
    ctx.workspace = p;
    ctx.workspace_bytes = bytes;
    return 0;
}

void *nn_cuda_workspace(void) { return ctx.workspace; }
size_t nn_cuda_workspace_size(void) { return ctx.workspace_bytes; }

/* ---- cuDNN tensor descriptors (cuda_check.h) ----------------------------------------- */

int nn_cudnn_tensor(cudnnTensorDescriptor_t *d, int n, int c, int h, int w) {
    NN_CUDNN(cudnnCreateTensorDescriptor(d));
    NN_CUDNN(cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
    return 0;
}

int nn_cudnn_tensors_destroy(int rc, cudnnTensorDescriptor_t *d, int count) {
    for (int i = 0; i < count; i++) {
        if (!d[i]) continue;
        cudnnStatus_t st = cudnnDestroyTensorDescriptor(d[i]);
        d[i] = nullptr;
        if (st != CUDNN_STATUS_SUCCESS && rc == 0)
            rc = nn_cuda_fail_cudnn(st, "cudnnDestroyTensorDescriptor(d[i])", __FILE__, __LINE__);
    }
    return rc;
}

size_t nn_cuda_available_bytes(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        free_b = 0;   /* unknown: plan as if nothing were free beyond our cache */
    }
    nn_cuda_alloc_stats st;
    nn_cuda_allocator_stats(ctx.alloc, &st);
    return free_b + st.cached_bytes;
}

/* ---- asynchronous uploads (nn/cuda_upload.h) ----------------------------------------- */

static int not_started(const char *what) {
    return nn_fail("%s: the CUDA backend has not been started (nn_backend_cuda())", what);
}

extern "C" int nn_cuda_upload_async(void *dst, const void *host_src, size_t bytes) {
    if (state.load(std::memory_order_acquire) != 1) return not_started("nn_cuda_upload_async");
    if (!bytes) return 0;
    if (!dst || !host_src) return nn_fail("nn_cuda_upload_async: NULL pointer");
    std::lock_guard<std::mutex> lock(up.mu);
    return upload_async_locked(dst, host_src, bytes);
}

extern "C" int nn_cuda_wait_uploads(void) {
    if (state.load(std::memory_order_acquire) != 1) return not_started("nn_cuda_wait_uploads");
    std::lock_guard<std::mutex> lock(up.mu);
    return uploads_place();
}

extern "C" int nn_cuda_upload_stats_get(nn_cuda_upload_stats *out) {
    if (state.load(std::memory_order_acquire) != 1) return not_started("CUDA upload statistics");
    std::lock_guard<std::mutex> lock(up.mu);
    *out = up.stats;
    return 0;
}

/* ---- the second stage of the two-stage sums (cuda_check.h) ---------------------------- */

static __global__ void sum_partials_kernel(float *out, const double *partial, int blocks) {
    double acc = 0.0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) acc += partial[b];
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) out[0] = (float)acc;
}

int nn_cuda_sum_partials(float *out, const double *partial, int blocks) {
    sum_partials_kernel<<<1, 1024>>>(out, partial, blocks);
    NN_CUDA_LAUNCHED("sum_partials_kernel");
    return 0;
}

/* ---- bf16 temporaries (cuda_check.h) ------------------------------------------------- */

static __global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static __global__ void from_bf16_kernel(float *dst, const __nv_bfloat16 *src, size_t n, int accumulate) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = __bfloat162float(src[i]);
        dst[i] = accumulate ? dst[i] + v : v;
    }
}

int nn_cuda_to_bf16(void *dst, const float *src, size_t n) {
    if (!n) return 0;
    to_bf16_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>((__nv_bfloat16 *)dst, src, n);
    NN_CUDA_LAUNCHED("to_bf16_kernel");
    return 0;
}

int nn_cuda_from_bf16(float *dst, const void *src, size_t n, int accumulate) {
    if (!n) return 0;
    from_bf16_kernel<<<nn_cuda_grid(n), NN_CUDA_BLOCK>>>(dst, (const __nv_bfloat16 *)src, n, accumulate);
    NN_CUDA_LAUNCHED("from_bf16_kernel");
    return 0;
}

void *nn_cuda_bf16_copy(const float *src, size_t n) {
    void *p = nn_cuda_scratch((n ? n : 1) * sizeof(__nv_bfloat16));
    if (!p) {
        nn_fail_context("bf16 copy of %zu values", n);
        return nullptr;
    }
    if (nn_cuda_to_bf16(p, src, n)) {
        nn_cuda_scratch_release(p);
        return nullptr;
    }
    return p;
}

/* ---- the entry point (nn/backend.h) ----------------------------------------------- */

extern "C" const nn_backend *nn_backend_cuda(void) {
    if (state.load(std::memory_order_acquire) == 1) return &cuda_backend;
    std::lock_guard<std::mutex> lock(start_mutex);
    if (state.load(std::memory_order_relaxed) == 0) {
        int ok = start() == 0;
        if (!ok && strncmp(nn_last_error(), "no CUDA device", 14) != 0)
            nn_fail_context("cannot start the CUDA backend");
        if (!ok) snprintf(ctx.error, sizeof ctx.error, "%s", nn_last_error());
        state.store(ok ? 1 : -1, std::memory_order_release);
    }
    if (state.load(std::memory_order_relaxed) == 1) return &cuda_backend;
    nn_fail("%s", ctx.error);
    return nullptr;
}
