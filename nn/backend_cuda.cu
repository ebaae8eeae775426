/* The CUDA backend: device memory through the caching allocator (nn/cuda_alloc.h),
 * cuDNN for the convolutions, cuBLAS for the fully connected layers, our own kernels
 * for the rest (layers/<name>.cu, nn/optim.cu).
 *
 * Everything runs on the legacy default stream of device 0 (CUDA_VISIBLE_DEVICES
 * picks the GPU), so every kernel, copy and library call is ordered after the ones
 * before it; this is what lets the allocator hand a freed block out again at once.
 *
 * Started on the first nn_backend_cuda() call; a machine without a GPU or without a
 * driver gets NULL + "no CUDA device: <cudaGetDeviceCount error>", with nothing
 * printed (the CUDA runtime prints nothing on its own).
 */
#include <atomic>
#include <mutex>
#include <stdio.h>
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

/* A pointer this allocator did not hand out is a caller bug; release cannot report
 * it (it returns void), so the message is left as the thread's last error. */
void cuda_release(void *p) { (void)nn_cuda_allocator_release(ctx.alloc, p); }

int cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return 0;
    NN_CUDA(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
    return 0;
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
    b.fill = fill_cuda;
    b.axpy = axpy_cuda;
    b.add = add_cuda;
    b.relu_forward = relu_forward_cuda;
    b.relu_backward = relu_backward_cuda;
    b.channel_affine = channel_affine_cuda;
    b.channel_affine_backward = channel_affine_backward_cuda;
    b.conv2d_forward = conv2d_forward_cuda;
    b.conv2d_backward_data = conv2d_backward_data_cuda;
    b.conv2d_backward_weight = conv2d_backward_weight_cuda;
    b.bias_forward = bias_forward_cuda;
    b.bias_backward = bias_backward_cuda;
    b.maxpool2d_forward = maxpool2d_forward_cuda;
    b.maxpool2d_backward = maxpool2d_backward_cuda;
    b.linear_forward = linear_forward_cuda;
    b.linear_backward = linear_backward_cuda;
    b.dropout_forward = dropout_forward_cuda;
    b.dropout_backward = dropout_backward_cuda;
    b.batchnorm_forward_train = batchnorm_forward_train_cuda;
    b.batchnorm_backward = batchnorm_backward_cuda;
    b.softmax_forward = softmax_forward_cuda;
    b.softmax_backward = softmax_backward_cuda;
    b.selection_forward = selection_forward_cuda;
    b.selection_backward = selection_backward_cuda;
    b.l1_loss_forward = l1_loss_forward_cuda;
    b.l1_loss_backward = l1_loss_backward_cuda;
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
