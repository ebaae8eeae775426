/* Process-wide settings shared by the subcommands. */
#ifndef DEEP3D_RUNTIME_H
#define DEEP3D_RUNTIME_H

/* File name of the bundled model inside weights/. */
#define DEEP3D_BUNDLED_MODEL "deep3d_stereo_w2.d3w"

/* Sets the OpenMP and OpenBLAS thread counts (0 = leave the defaults: all cores). */
void deep3d_set_threads(long threads);

/* The bundled model: weights/DEEP3D_BUNDLED_MODEL next to the binary's folder
 * (build/deep3d -> weights/), else in ./weights/. Returns a static path, or NULL
 * when neither exists. */
const char *deep3d_bundled_model(void);

/* Parses --device (cpu, cuda, auto) and applies --precision (fp32, tf32, bf16: the
 * last two only on CUDA) and the deterministic-algorithm mode (CUDA; the CPU is always
 * deterministic for a fixed thread count). Returns 0, or -1 + nn_fail naming the option. */
#include "../nn/backend.h"
int deep3d_setup_device(const char *device_name, const char *precision, int deterministic, nn_device *out);

/* Seconds since an arbitrary start (monotonic clock). */
double deep3d_now(void);

/* "NAME" of "/a/b/NAME.ext" into buf. */
void deep3d_stem(const char *path, char *buf, int size);

#endif
