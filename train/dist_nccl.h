/* NCCL collectives for data-parallel CUDA training (train/dist.h), in
 * train/dist_nccl.cu; compiled only when the build has MPI and NCCL (make NCCL=1).
 *
 * Everything is queued on the CUDA backend's stream, the legacy default stream
 * (nn/backend_cuda.cu), so a collective runs after the kernels queued before it and the
 * kernels queued after it see its result, without the host waiting. Buffers are device
 * memory. Every NCCL and CUDA status is checked: -1 + nn_fail "<call> failed: <NCCL's
 * error string> (file:line)", with ncclGetLastError's detail when it has one; an error
 * raised later by the asynchronous work is caught at the next call here
 * (ncclCommGetAsyncError). Source: NCCL 2.x user guide, "Creating a communicator with
 * options", "Collective operations" (ncclAllReduce, ncclAvg since 2.10). */
#ifndef TRAIN_DIST_NCCL_H
#define TRAIN_DIST_NCCL_H

#include <stddef.h>

/* Size of an ncclUniqueId in bytes (NCCL_UNIQUE_ID_BYTES, 128). */
size_t dist_nccl_id_bytes(void);

/* A new unique id into id (dist_nccl_id_bytes() bytes), on rank 0 only. */
int dist_nccl_unique_id(void *id);

/* Creates this process's communicator (rank of size, all processes with the same id)
 * on the current CUDA device into *comm. */
int dist_nccl_init(void **comm, const void *id, int rank, int size);

/* Sums n doubles over the processes in place (ncclDouble, ncclSum). */
int dist_nccl_sum_f64(void *comm, double *buf, size_t n);

/* Averages n floats over the processes in place (ncclFloat, ncclAvg). */
int dist_nccl_average_f32(void *comm, float *buf, size_t n);

/* Destroys the communicator (NULL-safe). */
void dist_nccl_free(void *comm);

#endif
