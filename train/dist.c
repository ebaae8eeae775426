/* Data-parallel training over MPI and NCCL: see train/dist.h.
 *
 * Built with DEEP3D_WITH_MPI (make MPI=1, the Makefile finds Open MPI through
 * pkg-config ompi-c or mpicc --showme) and DEEP3D_WITH_NCCL (NCCL=1, with CUDA). Without
 * MPI every function works for one process, and dist_start refuses to run as one of
 * several. */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../nn/status.h"
#include "../nn/tensor.h"

#ifdef DEEP3D_WITH_MPI
#include <mpi.h>
#endif
#ifdef DEEP3D_WITH_NCCL
#include "dist_nccl.h"
#endif

int dist_built_with_mpi(void) {
#ifdef DEEP3D_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_built_with_nccl(void) {
#ifdef DEEP3D_WITH_NCCL
    return 1;
#else
    return 0;
#endif
}

/* An integer from the environment, or -1 when unset or not a number. */
static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 || v > INT_MAX ? -1 : (int)v;
}

/* The process count a launcher announces (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH/Hydra's
 * and Slurm's PMI_SIZE), 0 when only PMIx's PMIX_RANK says a launcher started this
 * process, -1 when none did. */
static int launcher_size(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (n < 0) n = env_int("PMI_SIZE");
    if (n < 0 && env_int("PMIX_RANK") >= 0) n = 0;
    return n;
}

/* Gives this process the local_rank-th GPU of the launcher's list (dist.h). */
static int pick_gpu(int local_rank) {
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    char buf[64];
    if (!vis) {
        snprintf(buf, sizeof buf, "%d", local_rank);
    } else {
        /* the local_rank-th comma-separated entry, or "" (no GPU) when the list is shorter */
        const char *p = vis;
        for (int i = 0; i < local_rank && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        size_t len = p ? strcspn(p, ",") : 0;
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, p ? p : "", len);
        buf[len] = '\0';
    }
    if (setenv("CUDA_VISIBLE_DEVICES", buf, 1)) return nn_fail("setenv CUDA_VISIBLE_DEVICES failed");
    return 0;
}

#ifdef DEEP3D_WITH_MPI

/* "<call> failed: <MPI's error string> (file:line)", -1 */
static int mpi_fail(int code, const char *call, const char *file, int line) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", code);
    return nn_fail("%s failed: %s (%s:%d)", call, msg, file, line);
}

#define DIST_MPI(call)                                                    \
    do {                                                                  \
        int dist_rc_ = (call);                                            \
        if (dist_rc_ != MPI_SUCCESS) return mpi_fail(dist_rc_, #call, __FILE__, __LINE__); \
    } while (0)

/* MPI counts are int: larger transfers go in chunks of at most this many elements */
#define CHUNK (1 << 30)

typedef struct {
    MPI_Comm comm;  /* a duplicate of MPI_COMM_WORLD, errors returned */
    void *nccl;     /* the NCCL communicator (CUDA training) */
    void *buf;      /* the packed gradients: host (CPU) or device (CUDA) memory */
    size_t buf_bytes;
} impl;

static int sum_f64(void *ctx, double *buf, size_t n, nn_device device) {
    dist *d = ctx;
    impl *im = d->impl;
    if (device == NN_CUDA) {
#ifdef DEEP3D_WITH_NCCL
        if (!im->nccl) return nn_fail("dist: a CUDA sum before dist_use_device created the NCCL communicator");
        return dist_nccl_sum_f64(im->nccl, buf, n);
#else
        return nn_fail("dist: this deep3d was built without NCCL: no sums over GPUs");
#endif
    }
    for (size_t done = 0; done < n;) {
        int k = n - done > CHUNK ? CHUNK : (int)(n - done);
        DIST_MPI(MPI_Allreduce(MPI_IN_PLACE, buf + done, k, MPI_DOUBLE, MPI_SUM, im->comm));
        done += (size_t)k;
    }
    return 0;
}

int dist_start(dist *d) {
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
    d->device = NN_CPU;
    if (launcher_size() < 0) return 0; /* alone: no launcher */
    /* the launcher's local rank, to pick the GPU before anything can start CUDA */
    int local = env_int("OMPI_COMM_WORLD_LOCAL_RANK");
    if (local < 0) local = env_int("MPI_LOCALRANKID");
    int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (local_size < 0) local_size = env_int("MPI_LOCALNRANKS");
    if (local >= 0 && local_size > 1 && pick_gpu(local)) return -1;
    int provided = 0, flag = 0;
    DIST_MPI(MPI_Initialized(&flag));
    if (!flag) DIST_MPI(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
    d->mpi = 1;
    impl *im = calloc(1, sizeof *im);
    if (!im) return nn_fail("dist: out of memory");
    im->comm = MPI_COMM_NULL;
    d->impl = im;
    DIST_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    DIST_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &im->comm));
    DIST_MPI(MPI_Comm_set_errhandler(im->comm, MPI_ERRORS_RETURN));
    DIST_MPI(MPI_Comm_rank(im->comm, &d->rank));
    DIST_MPI(MPI_Comm_size(im->comm, &d->size));
    MPI_Comm node;
    DIST_MPI(MPI_Comm_split_type(im->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    int rc = MPI_Comm_rank(node, &d->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &d->local_size);
    int rc2 = MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_rank/size(MPI_COMM_TYPE_SHARED)", __FILE__, __LINE__);
    if (rc2 != MPI_SUCCESS) return mpi_fail(rc2, "MPI_Comm_free", __FILE__, __LINE__);
    if (local < 0 && d->local_size > 1 && pick_gpu(d->local_rank)) return -1;
    d->collective = (nn_collective){.size = d->size, .sum_f64 = sum_f64, .ctx = d};
    return 0;
}

int dist_use_device(dist *d, nn_device device) {
    d->device = device;
    if (d->size == 1) return 0;
    impl *im = d->impl;
    /* every process on the same kind of device: min and max of (device, rank using it) */
    int mine[2] = {(int)device, -(int)device}, all[2];
    DIST_MPI(MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, im->comm));
    if (all[0] != -all[1]) {
        int odd = device == NN_CPU ? d->rank : -1, first_cpu;
        DIST_MPI(MPI_Allreduce(&odd, &first_cpu, 1, MPI_INT, MPI_MAX, im->comm));
        return nn_fail("the %d processes do not all train on the same device: rank %d trains on the CPU, others on "
                       "CUDA (more processes on a machine than GPUs? give --device, or start one process per GPU)",
                       d->size, first_cpu);
    }
    if (device != NN_CUDA) return 0;
#ifdef DEEP3D_WITH_NCCL
    unsigned char id[1024];
    const size_t id_bytes = dist_nccl_id_bytes();
    if (id_bytes > sizeof id) return nn_fail("dist: ncclUniqueId of %zu bytes is too large", id_bytes);
    /* rank 0 makes the id; a failure there must not leave the others in the broadcast */
    int ok = d->rank != 0 || dist_nccl_unique_id(id) == 0, all_ok;
    DIST_MPI(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, im->comm));
    if (!all_ok) return d->rank == 0 ? -1 : nn_fail("rank 0 could not create the NCCL id");
    DIST_MPI(MPI_Bcast(id, (int)id_bytes, MPI_BYTE, 0, im->comm));
    return dist_nccl_init(&im->nccl, id, d->rank, d->size);
#else
    return nn_fail("this deep3d was built without NCCL: data-parallel training on CUDA needs it (NCCL's nccl.h and "
                   "libnccl, then rebuild), or train with --device cpu");
#endif
}

/* im->buf of at least bytes on the device */
static int grow(dist *d, size_t bytes) {
    impl *im = d->impl;
    if (im->buf_bytes >= bytes) return 0;
    const nn_backend *be = nn_backend_of(d->device);
    if (!be) return -1;
    if (im->buf) be->release(im->buf);
    im->buf = NULL, im->buf_bytes = 0;
    if (!(im->buf = be->alloc(bytes))) return nn_fail_context("dist: gradient buffer of %zu bytes", bytes);
    im->buf_bytes = bytes;
    return 0;
}

int dist_average_grads(dist *d, nn_tensor *const *params, int n) {
    if (d->size == 1) return 0;
    impl *im = d->impl;
    const nn_backend *be = nn_backend_of(d->device);
    if (!be) return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (params[i]->grad) total += params[i]->numel;
    d->grad_bytes = total * sizeof(nn_real);
    if (!total) return 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (grow(d, d->grad_bytes)) return -1;
    nn_real *buf = im->buf;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const nn_tensor *g = params[i]->grad;
        if (!g) continue;
        if (be->copy(buf + off, g->data, g->numel * sizeof(nn_real))) return -1;
        off += g->numel;
    }
    if (d->device == NN_CUDA) {
#ifdef DEEP3D_WITH_NCCL
        if (dist_nccl_average_f32(im->nccl, (float *)buf, total)) return -1;
#else
        return nn_fail("this deep3d was built without NCCL: data-parallel training on CUDA needs it");
#endif
    } else {
        const MPI_Datatype type = sizeof(nn_real) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE;
        for (size_t done = 0; done < total;) {
            int k = total - done > CHUNK ? CHUNK : (int)(total - done);
            DIST_MPI(MPI_Allreduce(MPI_IN_PLACE, buf + done, k, type, MPI_SUM, im->comm));
            done += (size_t)k;
        }
        const nn_real inv = (nn_real)(1.0 / d->size);
        for (size_t i = 0; i < total; i++) buf[i] *= inv;
    }
    off = 0;
    for (int i = 0; i < n; i++) {
        nn_tensor *g = params[i]->grad;
        if (!g) continue;
        if (be->copy(g->data, buf + off, g->numel * sizeof(nn_real))) return -1;
        off += g->numel;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    d->reduce_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return 0;
}

int dist_sum_host(dist *d, double *v, int n) {
    if (d->size == 1) return 0;
    impl *im = d->impl;
    DIST_MPI(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, im->comm));
    return 0;
}

int dist_bcast_host(dist *d, void *buf, size_t bytes) {
    if (d->size == 1) return 0;
    impl *im = d->impl;
    for (size_t done = 0; done < bytes;) {
        int k = bytes - done > CHUNK ? CHUNK : (int)(bytes - done);
        DIST_MPI(MPI_Bcast((char *)buf + done, k, MPI_BYTE, 0, im->comm));
        done += (size_t)k;
    }
    return 0;
}

int dist_bcast_tensors(dist *d, nn_tensor *const *t, int n) {
    if (d->size == 1) return 0;
    size_t most = 0;
    for (int i = 0; i < n; i++)
        if (t[i]->numel > most) most = t[i]->numel;
    nn_real *h = malloc((most ? most : 1) * sizeof *h);
    if (!h) return nn_fail("dist: out of memory for a broadcast of %zu values", most);
    int err = 0;
    for (int i = 0; i < n && !err; i++)
        err = nn_tensor_download(t[i], h) || dist_bcast_host(d, h, t[i]->numel * sizeof *h) ||
              (d->rank != 0 && nn_tensor_upload(t[i], h));
    free(h);
    return err ? -1 : 0;
}

void dist_abort(dist *d, int code) {
    if (d->mpi && d->size > 1) {
        fflush(stdout), fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
}

int dist_end(dist *d) {
    impl *im = d->impl;
    int rc = 0;
    if (im) {
#ifdef DEEP3D_WITH_NCCL
        dist_nccl_free(im->nccl);
#endif
        if (im->buf) {
            const nn_backend *be = nn_backend_of(d->device);
            if (be) be->release(im->buf);
        }
        if (im->comm != MPI_COMM_NULL && MPI_Comm_free(&im->comm) != MPI_SUCCESS) rc = -1;
        free(im);
        d->impl = NULL;
    }
    if (d->mpi) {
        int r = MPI_Finalize();
        d->mpi = 0;
        if (r != MPI_SUCCESS) return mpi_fail(r, "MPI_Finalize", __FILE__, __LINE__);
    }
    return rc ? nn_fail("MPI_Comm_free failed (%s:%d)", __FILE__, __LINE__) : 0;
}

#else /* without MPI: one process */

int dist_start(dist *d) {
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
    d->device = NN_CPU;
    const int n = launcher_size();
    if (n > 1)
        return nn_fail("this deep3d was built without MPI, so its %d processes would each train alone: install MPI "
                       "(Debian: apt-get install openmpi-bin libopenmpi-dev) and rebuild, or run one process",
                       n);
    (void)pick_gpu;
    return 0;
}

int dist_use_device(dist *d, nn_device device) {
    d->device = device;
    return 0;
}

int dist_average_grads(dist *d, nn_tensor *const *params, int n) {
    (void)d, (void)params, (void)n;
    return 0;
}

int dist_sum_host(dist *d, double *v, int n) {
    (void)d, (void)v, (void)n;
    return 0;
}

int dist_bcast_host(dist *d, void *buf, size_t bytes) {
    (void)d, (void)buf, (void)bytes;
    return 0;
}

int dist_bcast_tensors(dist *d, nn_tensor *const *t, int n) {
    (void)d, (void)t, (void)n;
    return 0;
}

void dist_abort(dist *d, int code) { (void)d, (void)code; }

int dist_end(dist *d) {
    (void)d;
    return 0;
}

#endif
