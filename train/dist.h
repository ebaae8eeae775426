/* Data-parallel training: K processes started by `mpirun -np K deep3d train ...`.
 *
 * Each process (rank r of K) holds a full copy of the model and trains on its own part of
 * every batch: with --batch N per process the batch of a step has G = K*N samples and
 * rank r takes samples r*N .. r*N + N - 1 of it (data/loader.h, "Data parallelism"), the
 * dropout masks of those samples (layers/dropout.h) and, in batch normalisation, the
 * statistics of all G samples (layers/batchnorm2d.h: synchronised batch norm through
 * nn_graph.collective). After the backward pass dist_average_grads replaces every
 * parameter gradient by its mean over the K processes: each process's loss is the mean
 * over its N samples, so the mean of the K gradients is the gradient of the mean over the
 * G samples, the loss one process with batch G minimises. Every process then makes the
 * same optimizer step on the same gradient, and the replicas stay equal. The result is
 * that of one process with the K-times batch, up to the order of floating-point sums
 * (tests/test_dist.c, tests/test_train.c check it).
 *
 * Transport: MPI_Allreduce on host memory for CPU training; NCCL all-reduce on device
 * memory (train/dist_nccl.cu), queued on the backend's stream, for CUDA training. Rank 0
 * writes the logs and checkpoints. Processes are found from the launcher's environment
 * (Open MPI's OMPI_COMM_WORLD_SIZE and _LOCAL_RANK, MPICH/Hydra's and Slurm's PMI_SIZE
 * and MPI_LOCALRANKID, PMIx's PMIX_RANK; MPI_COMM_TYPE_SHARED then gives the processes
 * of one machine): without them, or in a build without MPI, the process trains alone and
 * nothing here calls MPI.
 *
 * Errors: every MPI, NCCL and CUDA call's status is checked; a failure returns -1 with
 * nn_fail "<call> failed: <library message> (file:line)". A process that fails cannot
 * leave the others waiting in a collective: the caller reports its error and calls
 * dist_abort, which ends the whole job (MPI_Abort). */
#ifndef TRAIN_DIST_H
#define TRAIN_DIST_H

#include <stddef.h>

#include "../nn/graph.h"

typedef struct dist {
    int rank, size;             /* this process and the number of processes (1: alone) */
    int local_rank, local_size; /* the same among the processes of this machine */
    int mpi;                    /* 1 when MPI was initialised (started by a launcher) */
    nn_device device;           /* the training device, set by dist_use_device */
    nn_collective collective;   /* for nn_graph.collective (size = the process count) */
    double reduce_s;            /* host seconds spent in dist_average_grads so far */
    size_t grad_bytes;          /* bytes one process sent into the last gradient average */
    void *impl;                 /* private: the communicators and the gradient buffer */
} dist;

/* 1 when this binary was built with MPI (make MPI=1), with NCCL (NCCL=1). */
int dist_built_with_mpi(void);
int dist_built_with_nccl(void);

/* Starts the process group. Alone (no launcher environment): size 1, rank 0, no MPI.
 * Under a launcher: MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls
 * MPI), errors returned rather than fatal, rank/size from MPI_COMM_WORLD and the local
 * ones from MPI_COMM_TYPE_SHARED. With more than one process on a machine it also
 * gives each its own GPU before CUDA starts: CUDA_VISIBLE_DEVICES becomes the
 * local_rank-th entry of the list the launcher set, or local_rank when unset (the CUDA
 * backend always uses its device 0, nn/backend_cuda.cu). Errors: launched as several
 * processes in a build without MPI ("this deep3d was built without MPI ..."), an MPI
 * call's failure. Call it before any CUDA call. */
int dist_start(dist *d);

/* Agrees on the training device: all processes must use the same kind (a process with
 * no GPU left, e.g. more processes on a machine than GPUs, is named); on CUDA it creates
 * the NCCL communicator (ncclGetUniqueId on rank 0, MPI_Bcast of the id,
 * ncclCommInitRank). Sets d->device and d->collective. Errors: the processes disagree,
 * CUDA training in a build without NCCL, an MPI/NCCL call's failure. With size 1
 * it only records the device. */
int dist_use_device(dist *d, nn_device device);

/* Replaces the gradient of each of the n parameters (those whose grad exists: every
 * process runs the same graph, so the same ones) by its mean over the processes: packed
 * into one buffer of this device (grad_bytes), one all-reduce (MPI_SUM of nn_real on
 * the CPU, then a multiplication by 1/K; ncclAvg on CUDA), unpacked. No-op alone.
 * Errors: out of memory, an MPI/NCCL/CUDA call's failure. */
int dist_average_grads(dist *d, nn_tensor *const *params, int n);

/* Sums n host doubles over the processes, in place (MPI_Allreduce; no-op alone). */
int dist_sum_host(dist *d, double *v, int n);

/* Rank 0's `bytes` bytes of host memory into buf on every process (MPI_Bcast in chunks
 * of at most 1 GiB; no-op alone). */
int dist_bcast_host(dist *d, void *buf, size_t bytes);

/* Rank 0's values of n tensors (any device, through host memory) into the same tensors
 * on every process: the replicas start equal. No-op alone. */
int dist_bcast_tensors(dist *d, nn_tensor *const *t, int n);

/* Ends the whole job at once (MPI_Abort with `code`) when several processes run; returns
 * when alone. */
void dist_abort(dist *d, int code);

/* Frees the communicators and the buffer, then MPI_Finalize when MPI was started.
 * 0, or -1 + nn_fail. */
int dist_end(dist *d);

#endif
