#include "runtime.h"

#include <cblas.h>
#include <libgen.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../nn/cuda_plan.h"
#include "../nn/status.h"

void deep3d_set_threads(long threads) {
    if (threads <= 0) return;
    omp_set_num_threads((int)threads);
    openblas_set_num_threads((int)threads);
}

const char *deep3d_bundled_model(void) {
    static char path[PATH_MAX + 64];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        /* build/deep3d -> <root>/weights/... */
        snprintf(path, sizeof path, "%s/../weights/" DEEP3D_BUNDLED_MODEL, dirname(exe));
        if (access(path, R_OK) == 0) return path;
    }
    snprintf(path, sizeof path, "weights/" DEEP3D_BUNDLED_MODEL);
    return access(path, R_OK) == 0 ? path : NULL;
}

double deep3d_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void deep3d_stem(const char *path, char *buf, int size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, (size_t)size, "%.*s", len, base);
}

int deep3d_setup_device(const char *device_name, const char *precision, int deterministic, nn_device *out) {
    if (nn_device_parse(device_name, out)) return -1;
    if (*out == NN_CPU) {
        if (strcmp(precision, "fp32"))
            return nn_fail("--precision %s needs the CUDA device; the CPU computes in fp32", precision);
        return 0;
    }
    if (nn_cuda_set_precision(precision)) return -1;
    return nn_cuda_set_deterministic(deterministic);
}
