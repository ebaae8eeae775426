/* Test helpers shared by the float32 suite (tests/test_*.c) and the float64
 * gradient checks (tests/grad_*.c). */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../nn/nn.h"

/* A CPU tensor of the given shape filled with uniform values in [lo, hi) from a
 * deterministic seed (nn_hash_uniform). */
nn_tensor *tu_uniform(int ndim, const int *shape, double lo, double hi, uint64_t seed);

/* Same for a shape given inline: tu_uniform4(N, C, H, W, lo, hi, seed); 0s drop. */
nn_tensor *tu_uniform4(int d0, int d1, int d2, int d3, double lo, double hi, uint64_t seed);

/* n values uniform in [-1, 1) from seed (nn_hash_uniform), in a malloc'd array of at
 * least one element. */
nn_real *tu_uniform_array(size_t n, uint64_t seed);

/* A 3x3, stride 1, dilation 1 convolution (the Winograd tests' geometry): input
 * (n, ci, h, w), co output channels, padding pad. */
typedef struct {
    int n, ci, h, w, co, pad;
} tu_wgeom;

/* Its nn_conv_shape: output (h + 2*pad - 2) x (w + 2*pad - 2), no fused ReLU. */
nn_conv_shape tu_wgeom_shape(const tu_wgeom *g);

/* Asserts |a[i] - ref[i]| <= tol * max|ref| for every element (a tolerance relative to
 * the reference's scale), reporting the worst element; returns max|a - ref| / max|ref|. */
double tu_assert_close_scaled(const nn_real *a, const double *ref, size_t n, double tol, const char *what);

/* The naive NCHW convolution in double (7 plain loops; any kernel, stride, padding,
 * dilation): out (N, C_out, H_out, W_out) = bias + sum over (c, i, j) of
 * w[o, c, i, j] * x[n, c, y*stride - pad + i*dilation, x*stride - pad + j*dilation],
 * zero outside the input. b may be NULL. Returns a malloc'd array. */
double *tu_naive_conv2d(const nn_real *x, const nn_real *w, const nn_real *b, const nn_conv_shape *s);

/* init (N, C_in, H_in, W_in) plus the input gradient of that convolution for dout,
 * by the same loops with dout routed back to the inputs. Returns a malloc'd array. */
double *tu_naive_conv2d_backward_data(const nn_real *init, const nn_real *dout, const nn_real *w,
                                      const nn_conv_shape *s);

/* The CUDA backend for a GPU test: skips the test, saying why, when there is no CUDA
 * device or the build has no CUDA; fails it when the backend exists but cannot start.
 * Sets fp32 precision and non-deterministic algorithms (the defaults). */
const nn_backend *tu_require_cuda(void);

/* A host copy of a tensor (malloc'd; free it). */
nn_real *tu_host(const nn_tensor *t);

/* Asserts |a - b| <= atol + rtol*|b| element-wise (b is the reference); on failure
 * reports the worst element with its index and both values. Returns the max abs error. */
double tu_assert_close(const nn_real *a, const nn_real *b, size_t n, double atol, double rtol,
                       const char *what);

/* Same for two tensors (any devices; shapes must match). */
double tu_assert_tensors_close(const nn_tensor *a, const nn_tensor *b, double atol, double rtol,
                               const char *what);

/* A function under gradient check: builds the output from the inputs, recording on g. */
typedef nn_tensor *(*tu_forward_fn)(nn_graph *g, nn_tensor **inputs, void *ctx);

/* Finite-difference gradient check (central differences) of every input marked
 * requires_grad, against the analytic vector-Jacobian product with a fixed random
 * upstream gradient R (loss = sum(out * R), accumulated in double).
 * Kinks (ReLU at 0, max-pool ties): an element whose one-sided differences
 * (f(x+h)-f(x))/h and (f(x)-f(x-h))/h disagree by more than the tolerance
 * straddles a kink inside the step and is skipped; at most `max_skip_frac` of the
 * checked elements may be skipped. Up to `max_per_input` elements of each input
 * are checked (a fixed spread-out sample when the input is larger).
 * Layers that read g->training run in training mode; g->dropout_seed is reset before
 * every evaluation so the dropout mask is fixed. Intended for the float64 build. */
void tu_gradcheck(const char *name, tu_forward_fn fn, nn_tensor **inputs, int n_inputs, void *ctx,
                  double h, double atol, double rtol, int max_per_input, double max_skip_frac);

/* A fresh folder "/tmp/<prefix>_XXXXXX" written into buf (at least 64 bytes). */
void tu_tmpdir(char *buf, const char *prefix);

/* Removes a folder and everything below it (nothing when path is empty). */
void tu_rmtree(const char *path);

/* dir + "/" + name, in one of 16 static buffers used in rotation. */
const char *tu_join(const char *dir, const char *name);

/* Asserts two weights files hold the same configuration text and bit-identical tensors
 * (names, shapes and values, read through nn_weights_read). */
void tu_expect_same_weights(const char *a_path, const char *b_path);

/* Copies the weights file src to dst (float32) with the configuration lines of the keys
 * in drop (NULL-terminated) left out and the text add ("key=value\n" lines) appended. */
void tu_rewrite_config(const char *src, const char *dst, const char *const *drop, const char *add);

/* The whole file at path in a malloc'd buffer (one byte more, NUL), its size in *n. */
unsigned char *tu_read_file(const char *path, size_t *n);

/* A finished run of the deep3d binary. */
typedef struct tc_result {
    int exited;  /* 1: exited normally; 0: killed by a signal */
    int status;  /* exit status, or the signal number */
    long maxrss_kib; /* the child's peak resident set size (wait4's ru_maxrss), KiB */
    char *out, *err;
} tc_result;

/* The binary under test: $DEEP3D_BIN (tests/run.sh sets it), else build/deep3d. */
const char *tc_binary(void);

/* Runs the binary with args (NULL-terminated, without argv[0]); stdout and stderr go
 * to files in the folder `scratch` and are read back into r. */
void tc_run(tc_result *r, const char *scratch, const char *const *args);

/* Runs any program the same way: argv[0] is a path, or a name looked up in PATH. */
void tc_run_argv(tc_result *r, const char *scratch, const char *const *argv);

/* The full path of a program found in PATH (a static buffer), or NULL. */
const char *tc_which(const char *name);
void tc_free(tc_result *r);

/* tc_run in two halves: start the binary (returns its pid), then wait for it and read
 * its output (after killing it, say). */
pid_t tc_spawn(const char *scratch, const char *const *args);
void tc_collect(tc_result *r, const char *scratch, pid_t pid);

/* A tiny Deep3D model file at path: released, 64x32, width_div 16, D = 9 from -4,
 * seed 1 (deep3d_model_init + deep3d_model_save). Defined in tests/test_cli.c: it
 * needs the float32 library, so only build/test_nn has it. */
void tc_write_tiny_model(const char *path);

/* The same model with the bias of the last conv's channel `level` raised to 20: the
 * softmax is one-hot there (the other levels get about e^-20), so the model predicts
 * the one disparity dmin + level = level - 4 network pixels everywhere. */
void tc_write_shifting_model(const char *path, int level);

/* Asserts a clean failure: exited (no signal), status non-zero, stderr exactly one line
 * starting with "deep3d " and containing every NULL-terminated substring given. */
void tc_expect_error(const tc_result *r, const char *what, ...);

/* Every frame of the first video stream of `file` as rgb24, w x h each, as ffmpeg
 * decodes it (`-fps_mode passthrough`: no frame duplicated or dropped); *n frames.
 * Asserts that ffmpeg succeeded. Free with free(). */
unsigned char *tc_decode_frames(const char *file, int w, int h, int *n);

#endif
