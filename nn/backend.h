/* The backend seam: one table of kernels per device, chosen at run time.
 *
 * Every op in layers/ computes shapes and bookkeeping on the host, then calls the
 * kernels of the backend that owns its tensors (nn_backend_of(t->device)). A backend
 * that lacks a kernel leaves the pointer NULL; the op then fails with
 * "op X is not available on backend Y" (never a silent slow path).
 *
 * Conventions (as in llm.c): outputs first, inputs after; every pointer is NCHW
 * device memory of the backend; *_backward kernels ACCUMULATE (+=) into the input
 * gradients, so a tensor used twice needs no special case. Kernels return 0, or -1
 * with nn_fail() for a failed library call (cuBLAS/cuDNN/CUDA), naming call/file/line.
 * A gradient output pointer may be NULL when that gradient is not wanted (the tensor
 * does not require it): the kernel skips it. A NULL bias means no bias.
 */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "real.h"

typedef enum { NN_CPU = 0, NN_CUDA = 1 } nn_device;

/* 2-D convolution geometry, NCHW. The transposed convolution reuses it as the
 * adjoint: its forward pass is conv2d_backward_data of the conv that maps its
 * output back to its input (see layers/conv_transpose2d.c). */
typedef struct nn_conv_shape {
    int n;                      /* batch */
    int c_in, h_in, w_in;       /* input  (N, C_in, H_in, W_in) */
    int c_out, h_out, w_out;    /* output (N, C_out, H_out, W_out) */
    int kh, kw;                 /* kernel; weight is (C_out, C_in, KH, KW) */
    int stride, pad, dilation;  /* same in both directions, pixels */
    int relu;                   /* conv2d_forward and conv_transpose2d_forward only: out =
                                   max(0, conv + bias), the ReLU fused into the store
                                   (nn_conv2d_relu, nn_conv_transpose2d_relu); 0 elsewhere */
} nn_conv_shape;

/* 2-D max pooling geometry, NCHW: window k x k, stride, no padding. */
typedef struct nn_pool_shape {
    int n, c, h_in, w_in, h_out, w_out, k, stride;
} nn_pool_shape;

typedef struct nn_backend {
    const char *name;   /* "cpu", "cuda" */
    nn_device device;

    /* --- memory ------------------------------------------------------------ */
    void *(*alloc)(size_t bytes);            /* NULL + nn_fail on failure */
    void (*release)(void *p);
    int (*upload)(void *dst, const void *host_src, size_t bytes);
    int (*download)(void *host_dst, const void *src, size_t bytes);
    int (*copy)(void *dst, const void *src, size_t bytes);   /* within this device */
    int (*synchronize)(void);
    /* Optional asynchronous uploads (NULL: nn_tensor_upload_async falls back to
     * `upload`, and there is nothing to wait for). upload_async copies host_src away
     * before it returns (host_src may be reused at once) and starts the transfer without
     * waiting for the work already queued on the device; dst holds the data for the work
     * queued after the next wait_uploads, which makes the device (not the host) wait for
     * every transfer started before it. Work queued before upload_async still sees
     * dst's old contents, so dst may be the input of a step still running; between the
     * two calls do not use dst nor upload into it again. CPU: a plain copy, complete on
     * return, and a no-op wait. CUDA: nn_cuda_upload_async / nn_cuda_wait_uploads
     * (nn/cuda_upload.h has the details). */
    int (*upload_async)(void *dst, const void *host_src, size_t bytes);
    int (*wait_uploads)(void);

    /* --- element-wise (n elements) ----------------------------------------- */
    int (*fill)(nn_real *x, size_t n, nn_real value);
    int (*axpy)(nn_real *y, nn_real a, const nn_real *x, size_t n);          /* y += a*x */
    int (*add)(nn_real *out, const nn_real *a, const nn_real *b, size_t n);  /* out = a+b */
    int (*relu_forward)(nn_real *out, const nn_real *in, size_t n);
    int (*relu_backward)(nn_real *din, const nn_real *dout, const nn_real *out, size_t n);
    /* in place: d[i] = out[i] > 0 ? d[i] : 0 (the backward of a fused ReLU, nn_conv2d_relu) */
    int (*relu_mask)(nn_real *d, const nn_real *out, size_t n);
    /* out = in * scale[c] + shift[c] over NCHW (n, c, hw); scale may be NULL (= 1).
     * Used for mean subtraction and batch-norm inference. */
    int (*channel_affine)(nn_real *out, const nn_real *in, const nn_real *scale,
                          const nn_real *shift, int n, int c, int hw);
    /* din += dout * scale[c] (scale NULL = 1) */
    int (*channel_affine_backward)(nn_real *din, const nn_real *dout, const nn_real *scale,
                                   int n, int c, int hw);

    /* --- layers (see each layers/<name>.c for the formula and its source) --- */
    int (*conv2d_forward)(nn_real *out, const nn_real *in, const nn_real *weight,
                          const nn_real *bias, const nn_conv_shape *s);
    int (*conv2d_backward_data)(nn_real *din, const nn_real *dout, const nn_real *weight,
                                const nn_conv_shape *s);
    int (*conv2d_backward_weight)(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                                  const nn_real *in, const nn_conv_shape *s);
    /* Optional (NULL: the op composes fill 0, conv2d_backward_data and bias_forward):
     * the transposed convolution's forward pass for the adjoint shape s, i.e.
     * out (n, c_in, h_in, w_in) = conv2d_backward_data of s applied to in (n, c_out,
     * h_out, w_out), plus bias (c_in) or NULL, then max(0, .) when s->relu; out is
     * overwritten. */
    int (*conv_transpose2d_forward)(nn_real *out, const nn_real *in, const nn_real *weight,
                                    const nn_real *bias, const nn_conv_shape *s);
    /* bias (C) added per channel: out[n,c,:,:] += bias[c]; dbias[c] += sum dout[n,c,:,:] */
    int (*bias_forward)(nn_real *out, const nn_real *bias, int n, int c, int hw);
    int (*bias_backward)(nn_real *dbias, const nn_real *dout, int n, int c, int hw);

    /* Max pooling. forward: out = the maximum of each window, and, when argmax is not
     * NULL, the winner of each window as its flat index iy*W_in + ix inside the input
     * plane, stored as nn_real (exact below 2^24). backward: din[winner] += dout for
     * every window. The backward gets the forward's in, out and argmax, and each backend
     * reads what it needs, as its flag maxpool2d_uses_argmax says:
     *   1 (CPU):  the forward writes argmax and the backward reads it; argmax must not
     *             be NULL when a backward will follow; in and out are not read.
     *   0 (CUDA): cuDNN finds the winners again from in and out; argmax is neither
     *             written nor read and may be NULL (layers/maxpool2d.c then keeps none).
     * A window with several maxima: the CPU takes the first in row-major window order,
     * cuDNN one of them (its choice); elsewhere both route the gradient alike. */
    int (*maxpool2d_forward)(nn_real *out, nn_real *argmax, const nn_real *in,
                             const nn_pool_shape *s);
    int (*maxpool2d_backward)(nn_real *din, const nn_real *dout, const nn_real *in,
                              const nn_real *out, const nn_real *argmax, const nn_pool_shape *s);
    int maxpool2d_uses_argmax;

    /* y (N, OUT) = x (N, IN) . W^T (W is (OUT, IN), as torch.nn.Linear) + b (OUT) */
    int (*linear_forward)(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b,
                          int n, int in, int out);
    int (*linear_backward)(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy,
                           const nn_real *x, const nn_real *w, int n, int in, int out);

    /* mask (n): 0 or 1/(1-p), from a counter-based hash of (seed, i) so that every
     * backend draws the same mask; out = in * mask */
    int (*dropout_forward)(nn_real *out, nn_real *mask, const nn_real *in, size_t n,
                           nn_real p, uint64_t seed);
    int (*dropout_backward)(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n);

    /* Batch normalisation over (N, H, W) per channel (layers/batchnorm2d.h). Training:
     * batch statistics (biased variance normalises), saves the mean and the inverse
     * std 1/sqrt(var + eps) (C each), updates the running stats with momentum
     * (running = (1-m)*running + m*batch, unbiased variance, as PyTorch). The saved
     * statistics are for the same backend's backward, which gets the forward's eps too
     * (cuDNN asks for the same eps in both passes). eps >= 0 (cuDNN's
     * CUDNN_BN_MIN_EPSILON); more than one value per channel (n*hw > 1). */
    int (*batchnorm_forward_train)(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                   nn_real *running_mean, nn_real *running_var,
                                   const nn_real *in, const nn_real *gamma, const nn_real *beta,
                                   int n, int c, int hw, nn_real momentum, nn_real eps);
    int (*batchnorm_backward)(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                              const nn_real *in, const nn_real *gamma, const nn_real *save_mean,
                              const nn_real *save_invstd, int n, int c, int hw, nn_real eps);

    /* Batch normalisation in training mode over a batch split among processes
     * (layers/batchnorm2d.h, "Data parallelism"), in five steps around the sums the op
     * combines over the processes (nn_collective.sum_f64). Optional: NULL makes such
     * training fail "not available". in/out/dout/din (n, c, hw) are this process's part;
     * the double buffers (memory of this backend) hold per-channel values of the whole
     * batch once combined; m is the number of values per channel in the whole batch.
     *   batchnorm_sum:    sum[j] = sum of in over (n, hw)
     *   batchnorm_sqdev:  sqdev[j] = sum of (in - sum[j] / m)^2 over (n, hw)
     *   batchnorm_apply_train: mean = sum / m, var = sqdev / m (biased), invstd =
     *       1/sqrt(var + eps); save_mean, save_invstd (c) written; running stats updated
     *       as batchnorm_forward_train does (unbiased variance var * m / (m - 1));
     *       out = (in - mean) * invstd * gamma + beta. stats is (2, c): [sum; sqdev].
     *   batchnorm_backward_sums: sums (2, c) = [sum dy; sum dy * xhat] over this part,
     *       xhat = (in - save_mean) * save_invstd; dbeta += sums[0], dgamma += sums[1]
     *       (each skipped when NULL)
     *   batchnorm_backward_apply: din += gamma * invstd * (dy - S0 / m - xhat * S1 / m)
     *       with sums (2, c) = [S0; S1] those of the whole batch */
    int (*batchnorm_sum)(double *sum, const nn_real *in, int n, int c, int hw);
    int (*batchnorm_sqdev)(double *sqdev, const nn_real *in, const double *sum, double m, int n, int c,
                           int hw);
    int (*batchnorm_apply_train)(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                 nn_real *running_mean, nn_real *running_var, const nn_real *in,
                                 const nn_real *gamma, const nn_real *beta, const double *stats,
                                 double m, int n, int c, int hw, nn_real momentum, nn_real eps);
    int (*batchnorm_backward_sums)(double *sums, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                                   const nn_real *in, const nn_real *save_mean,
                                   const nn_real *save_invstd, int n, int c, int hw);
    int (*batchnorm_backward_apply)(nn_real *din, const nn_real *dout, const nn_real *in,
                                    const nn_real *gamma, const nn_real *save_mean,
                                    const nn_real *save_invstd, const double *sums, double m, int n,
                                    int c, int hw);

    /* softmax over the C channels at every (n, y, x) */
    int (*softmax_forward)(nn_real *out, const nn_real *in, int n, int c, int hw);
    int (*softmax_backward)(nn_real *din, const nn_real *dout, const nn_real *out,
                            int n, int c, int hw);

    /* Deep3D selection layer (DEEP3D.md "Selection layer"): prob (N, D, H, W),
     * left/right (N, C, H, W), shift d_k = dmin + k, columns clamped. */
    int (*selection_forward)(nn_real *right, const nn_real *prob, const nn_real *left,
                             int n, int c, int h, int w, int d, int dmin);
    int (*selection_backward)(nn_real *dprob, nn_real *dleft, const nn_real *dright,
                              const nn_real *prob, const nn_real *left,
                              int n, int c, int h, int w, int d, int dmin);

    /* L1 loss: loss[0] = mean |pred - target| over n elements (device scalar). */
    int (*l1_loss_forward)(nn_real *loss, const nn_real *pred, const nn_real *target, size_t n);
    /* dpred += dloss[0] * sign(pred - target) / n  (sign(0) = 0) */
    int (*l1_loss_backward)(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                            const nn_real *target, size_t n);

    /* SSIM + L1 photometric loss (layers/ssim_l1_loss.h) over n images of c channels,
     * h x w (h, w >= 3), 0..255: loss[0] = 255 alpha mean over the full 3x3 windows of
     * clamp((1 - SSIM)/2, 0, 1) + (1 - alpha) mean |pred - target| (device scalar). */
    int (*ssim_l1_loss_forward)(nn_real *loss, const nn_real *pred, const nn_real *target,
                                int n, int c, int h, int w, nn_real alpha);
    /* dpred += dloss[0] * d loss / d pred  (sign(0) = 0 in the L1 part) */
    int (*ssim_l1_loss_backward)(nn_real *dpred, const nn_real *dloss, const nn_real *pred,
                                 const nn_real *target, int n, int c, int h, int w, nn_real alpha);

    /* Edge-aware smoothness of the expected disparity (layers/disparity_smoothness.h):
     * prob (N, D, H, W), left (N, C, H, W) 0..255, d_k = dmin + k; loss[0] = the mean of
     * |dx E[d]| exp(-|dx left|) over the x differences plus the same over y (device scalar). */
    int (*disparity_smoothness_forward)(nn_real *loss, const nn_real *prob, const nn_real *left,
                                        int n, int c, int h, int w, int d, int dmin);
    /* dprob += dloss[0] * d loss / d prob (the image gets none); sign(0) = 0 */
    int (*disparity_smoothness_backward)(nn_real *dprob, const nn_real *dloss, const nn_real *prob,
                                         const nn_real *left, int n, int c, int h, int w, int d,
                                         int dmin);

    /* --- optimizers (n parameters; see nn/optim.h for the update formulas) -- */
    int (*sgd_step)(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n,
                    nn_real lr, nn_real momentum, nn_real weight_decay);
    int (*adam_step)(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n,
                     nn_real lr, nn_real beta1, nn_real beta2, nn_real eps,
                     nn_real weight_decay, long step);
} nn_backend;

/* The backend of a device: the CPU one always exists; the CUDA one exists when the
 * library was built with CUDA and a GPU is present. NULL + nn_fail otherwise. */
const nn_backend *nn_backend_of(nn_device device);

/* The CPU backend (OpenMP, OpenBLAS). */
const nn_backend *nn_backend_cpu(void);

/* The CUDA backend, or NULL + nn_fail ("built without CUDA", "no CUDA device"). */
const nn_backend *nn_backend_cuda(void);

/* Parses "cpu", "cuda" or "auto" (CUDA when a GPU is present, else CPU). */
int nn_device_parse(const char *name, nn_device *out);

const char *nn_device_name(nn_device device);

/* Arithmetic shared by a layer's CPU kernels and its CUDA kernels (a header function
 * that nvcc compiles for the host and the device; plain static inline in C), so both
 * backends compute each element the same way (layers/ssim_l1_loss.h). */
#if defined(__CUDACC__)
#define NN_HOST_DEVICE static inline __host__ __device__
#else
#define NN_HOST_DEVICE static inline
#endif

/* Counter-based random numbers shared by every backend: a uniform value in [0, 1)
 * from (seed, index). Source: splitmix64 (Steele, Lea, Flood 2014). */
static inline double nn_hash_uniform(uint64_t seed, uint64_t index) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

#endif
