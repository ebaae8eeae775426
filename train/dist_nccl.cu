/* NCCL collectives of data-parallel CUDA training: see train/dist_nccl.h. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <string.h>

extern "C" {
#include "../nn/status.h"
#include "dist_nccl.h"
}

namespace {

/* "<call> failed: <NCCL's string>[: <ncclGetLastError>] (file:line)", -1 */
int nccl_fail(ncclResult_t r, ncclComm_t comm, const char *call, const char *file, int line) {
    const char *detail = ncclGetLastError(comm);
    if (detail && *detail)
        return nn_fail("%s failed: %s: %s (%s:%d)", call, ncclGetErrorString(r), detail, file, line);
    return nn_fail("%s failed: %s (%s:%d)", call, ncclGetErrorString(r), file, line);
}

#define DIST_NCCL(comm, call)                                                        \
    do {                                                                             \
        ncclResult_t dist_r_ = (call);                                               \
        if (dist_r_ != ncclSuccess) return nccl_fail(dist_r_, (comm), #call, __FILE__, __LINE__); \
    } while (0)

#define DIST_CUDA(call)                                                                              \
    do {                                                                                             \
        cudaError_t dist_e_ = (call);                                                                \
        if (dist_e_ != cudaSuccess)                                                                  \
            return nn_fail("%s failed: %s: %s (%s:%d)", #call, cudaGetErrorName(dist_e_),             \
                           cudaGetErrorString(dist_e_), __FILE__, __LINE__);                          \
    } while (0)

/* an error of the work queued earlier, reported now */
int async_error(ncclComm_t comm) {
    ncclResult_t state = ncclSuccess;
    DIST_NCCL(comm, ncclCommGetAsyncError(comm, &state));
    if (state != ncclSuccess) return nccl_fail(state, comm, "an earlier NCCL collective (ncclCommGetAsyncError)", __FILE__, __LINE__);
    return 0;
}

} // namespace

extern "C" size_t dist_nccl_id_bytes(void) { return sizeof(ncclUniqueId); }

extern "C" int dist_nccl_unique_id(void *id) {
    ncclUniqueId u;
    DIST_NCCL(nullptr, ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u);
    return 0;
}

extern "C" int dist_nccl_init(void **comm, const void *id, int rank, int size) {
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclComm_t c = nullptr;
    DIST_NCCL(nullptr, ncclCommInitRank(&c, size, u, rank));
    *comm = c;
    return 0;
}

extern "C" int dist_nccl_sum_f64(void *comm, double *buf, size_t n) {
    ncclComm_t c = (ncclComm_t)comm;
    if (async_error(c)) return -1;
    DIST_NCCL(c, ncclAllReduce(buf, buf, n, ncclDouble, ncclSum, c, 0));
    DIST_CUDA(cudaGetLastError());
    return 0;
}

extern "C" int dist_nccl_average_f32(void *comm, float *buf, size_t n) {
    ncclComm_t c = (ncclComm_t)comm;
    if (async_error(c)) return -1;
    DIST_NCCL(c, ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, c, 0));
    DIST_CUDA(cudaGetLastError());
    return 0;
}

extern "C" void dist_nccl_free(void *comm) {
    if (comm) ncclCommDestroy((ncclComm_t)comm);
}
