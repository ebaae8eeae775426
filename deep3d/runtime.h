/* Process-wide settings shared by the subcommands. */
#ifndef DEEP3D_RUNTIME_H
#define DEEP3D_RUNTIME_H

/* File name of the bundled model inside weights/. */
#define DEEP3D_BUNDLED_MODEL "deep3d_kitti_w2.d3w"

/* Sets the OpenMP and OpenBLAS thread counts (0 = leave the defaults: all cores). */
void deep3d_set_threads(long threads);

/* The bundled model: weights/DEEP3D_BUNDLED_MODEL next to the binary's folder
 * (build/deep3d -> weights/), else in ./weights/. Returns a static path, or NULL
 * when neither exists. */
const char *deep3d_bundled_model(void);

/* Seconds since an arbitrary start (monotonic clock). */
double deep3d_now(void);

/* "NAME" of "/a/b/NAME.ext" into buf. */
void deep3d_stem(const char *path, char *buf, int size);

#endif
