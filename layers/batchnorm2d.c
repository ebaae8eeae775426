#include "batchnorm2d.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "../nn/status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

/* Per-channel pieces, shared by the one-process kernels and those of the data-parallel
 * path (where the sums of every process are added between them); x is (N, C, HW), j the
 * channel, each summed in the same order in both. */

/* sum over the batch of channel j. */
static double channel_sum(const nn_real *in, int n, int c, int hw, int j) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        const nn_real *p = in + ((size_t)i * c + j) * hw;
        for (int k = 0; k < hw; k++) s += p[k];
    }
    return s;
}

/* sum of (x - mean)^2 over the batch of channel j. */
static double channel_sqdev(const nn_real *in, double mean, int n, int c, int hw, int j) {
    double ss = 0;
    for (int i = 0; i < n; i++) {
        const nn_real *p = in + ((size_t)i * c + j) * hw;
        for (int k = 0; k < hw; k++) {
            double e = p[k] - mean;
            ss += e * e;
        }
    }
    return ss;
}

/* Channel j from its mean and sum of squared deviations ss over m values: the saved
 * statistics, the running ones (unbiased variance), and out = gamma (in - mean) invstd
 * + beta. */
static void normalize_channel(int j, double mean, double ss, double m, nn_real *out, nn_real *save_mean,
                              nn_real *save_invstd, nn_real *running_mean, nn_real *running_var, const nn_real *in,
                              const nn_real *gamma, const nn_real *beta, int n, int c, int hw, nn_real momentum,
                              nn_real eps) {
    const double invstd = 1.0 / sqrt(ss / m + (double)eps);
    save_mean[j] = (nn_real)mean;
    save_invstd[j] = (nn_real)invstd;
    running_mean[j] = (nn_real)((1 - (double)momentum) * running_mean[j] + (double)momentum * mean);
    running_var[j] = (nn_real)((1 - (double)momentum) * running_var[j] +
                               (double)momentum * (m > 1 ? ss / (m - 1) : ss / m));
    const nn_real a = (nn_real)(gamma[j] * invstd), mu = (nn_real)mean, b = beta[j];
    for (int i = 0; i < n; i++) {
        size_t base = ((size_t)i * c + j) * hw;
        for (int k = 0; k < hw; k++) out[base + k] = (in[base + k] - mu) * a + b;
    }
}

/* sum dy (*sdy) and sum dy xhat (*sdyx) of channel j, and dbeta, dgamma += them (each
 * skipped when NULL). */
static void channel_grad_sums(const nn_real *dout, const nn_real *in, const nn_real *save_mean,
                              const nn_real *save_invstd, nn_real *dgamma, nn_real *dbeta, int n, int c, int hw, int j,
                              double *sdy_out, double *sdyx_out) {
    const nn_real mu = save_mean[j], is = save_invstd[j];
    double sdy = 0, sdyx = 0;
    for (int i = 0; i < n; i++) {
        size_t base = ((size_t)i * c + j) * hw;
        for (int k = 0; k < hw; k++) {
            sdy += dout[base + k];
            sdyx += (double)dout[base + k] * ((in[base + k] - mu) * is);
        }
    }
    if (dbeta) dbeta[j] += (nn_real)sdy;
    if (dgamma) dgamma[j] += (nn_real)sdyx;
    *sdy_out = sdy, *sdyx_out = sdyx;
}

/* din += a dy + b xhat + c0 of channel j, the sums over m values folded into the
 * coefficients. */
static void channel_input_grad(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *gamma,
                               const nn_real *save_mean, const nn_real *save_invstd, double sdy, double sdyx, double m,
                               int n, int c, int hw, int j) {
    const nn_real mu = save_mean[j], is = save_invstd[j];
    const double k0 = (double)gamma[j] * is;
    const nn_real a = (nn_real)k0, b = (nn_real)(-k0 * sdyx / m), c0 = (nn_real)(-k0 * sdy / m);
    for (int i = 0; i < n; i++) {
        size_t base = ((size_t)i * c + j) * hw;
        for (int k = 0; k < hw; k++) din[base + k] += a * dout[base + k] + b * ((in[base + k] - mu) * is) + c0;
    }
}

int batchnorm_forward_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd,
                                nn_real *running_mean, nn_real *running_var, const nn_real *in,
                                const nn_real *gamma, const nn_real *beta, int n, int c, int hw,
                                nn_real momentum, nn_real eps) {
    const double m = (double)n * hw;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++) {
        const double mean = channel_sum(in, n, c, hw, j) / m;
        normalize_channel(j, mean, channel_sqdev(in, mean, n, c, hw, j), m, out, save_mean, save_invstd, running_mean,
                          running_var, in, gamma, beta, n, c, hw, momentum, eps);
    }
    return 0;
}

int batchnorm_backward_cpu(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                           const nn_real *in, const nn_real *gamma, const nn_real *save_mean,
                           const nn_real *save_invstd, int n, int c, int hw, nn_real eps) {
    (void)eps; /* save_invstd already holds it */
    const double m = (double)n * hw;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++) {
        double sdy, sdyx;
        channel_grad_sums(dout, in, save_mean, save_invstd, dgamma, dbeta, n, c, hw, j, &sdy, &sdyx);
        if (din) channel_input_grad(din, dout, in, gamma, save_mean, save_invstd, sdy, sdyx, m, n, c, hw, j);
    }
    return 0;
}

/* ---- CPU kernels of the data-parallel path (batchnorm2d.h) -------------------- */

int batchnorm_sum_cpu(double *sum, const nn_real *in, int n, int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++) sum[j] = channel_sum(in, n, c, hw, j);
    return 0;
}

int batchnorm_sqdev_cpu(double *sqdev, const nn_real *in, const double *sum, double m, int n, int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++) sqdev[j] = channel_sqdev(in, sum[j] / m, n, c, hw, j);
    return 0;
}

int batchnorm_apply_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean,
                              nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta,
                              const double *stats, double m, int n, int c, int hw, nn_real momentum, nn_real eps) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++)
        normalize_channel(j, stats[j] / m, stats[c + j], m, out, save_mean, save_invstd, running_mean, running_var, in,
                          gamma, beta, n, c, hw, momentum, eps);
    return 0;
}

int batchnorm_backward_sums_cpu(double *sums, nn_real *dgamma, nn_real *dbeta, const nn_real *dout,
                                const nn_real *in, const nn_real *save_mean, const nn_real *save_invstd, int n,
                                int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++)
        channel_grad_sums(dout, in, save_mean, save_invstd, dgamma, dbeta, n, c, hw, j, &sums[j], &sums[c + j]);
    return 0;
}

int batchnorm_backward_apply_cpu(nn_real *din, const nn_real *dout, const nn_real *in, const nn_real *gamma,
                                 const nn_real *save_mean, const nn_real *save_invstd, const double *sums,
                                 double m, int n, int c, int hw) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < c; j++)
        channel_input_grad(din, dout, in, gamma, save_mean, save_invstd, sums[j], sums[c + j], m, n, c, hw, j);
    return 0;
}

/* ---- op ----------------------------------------------------------------------- */

/* The gradient of t when it requires one (created on first use), else NULL: the
 * kernels skip NULL outputs (nn/backend.h). Sets *err when creating it failed. */
static nn_real *grad_data(nn_tensor *t, int *err) {
    if (!t->requires_grad) return NULL;
    nn_tensor *g = nn_tensor_grad(t);
    if (!g) *err = 1;
    return g ? g->data : NULL;
}

/* The data-parallel kernels of be, or NULL + nn_fail. */
static const nn_backend *synced_backend(const nn_backend *be) {
    if (be->batchnorm_sum && be->batchnorm_sqdev && be->batchnorm_apply_train && be->batchnorm_backward_sums &&
        be->batchnorm_backward_apply)
        return be;
    nn_fail("op batchnorm2d (data-parallel) is not available on backend %s", be->name);
    return NULL;
}

/* Training forward over a batch split among co->size processes (batchnorm2d.h). */
static int forward_synced(const nn_backend *be, const nn_collective *co, nn_tensor *y, nn_tensor *save_mean,
                          nn_tensor *save_invstd, nn_tensor *running_mean, nn_tensor *running_var, const nn_tensor *x,
                          const nn_tensor *gamma, const nn_tensor *beta, int n, int c, int hw, nn_real momentum,
                          nn_real eps) {
    const double m = (double)co->size * n * hw;
    double *buf = be->alloc(2 * (size_t)c * sizeof *buf); /* [sum; sqdev] of the whole batch */
    if (!buf) return nn_fail_context("batchnorm2d (data-parallel): statistics");
    int err = be->batchnorm_sum(buf, x->data, n, c, hw) || co->sum_f64(co->ctx, buf, (size_t)c, x->device) ||
              be->batchnorm_sqdev(buf + c, x->data, buf, m, n, c, hw) ||
              co->sum_f64(co->ctx, buf + c, (size_t)c, x->device) ||
              be->batchnorm_apply_train(y->data, save_mean->data, save_invstd->data, running_mean->data,
                                        running_var->data, x->data, gamma->data, beta->data, buf, m, n, c, hw,
                                        momentum, eps);
    be->release(buf);
    return err ? nn_fail_context("batchnorm2d (data-parallel)") : 0;
}

/* Training backward of forward_synced: dx from the whole batch's sums, dgamma/dbeta
 * from this part's. */
static int backward_synced(const nn_backend *be, const nn_collective *co, nn_real *dx, nn_real *dg, nn_real *db,
                           const nn_tensor *dy, const nn_tensor *x, const nn_tensor *gamma, const nn_real *mean,
                           const nn_real *invstd, int n, int c, int hw, double m) {
    double *sums = be->alloc(2 * (size_t)c * sizeof *sums);
    if (!sums) return nn_fail_context("batchnorm2d backward (data-parallel): sums");
    int err = be->batchnorm_backward_sums(sums, dg, db, dy->data, x->data, mean, invstd, n, c, hw) ||
              (dx && (co->sum_f64(co->ctx, sums, 2 * (size_t)c, x->device) ||
                      be->batchnorm_backward_apply(dx, dy->data, x->data, gamma->data, mean, invstd, sums, m, n, c,
                                                   hw)));
    be->release(sums);
    return err ? nn_fail_context("batchnorm2d backward (data-parallel)") : 0;
}

/* iarg: n, c, hw, training (1) or inference (0); farg[0]: eps; farg[1]: values per
 * channel in the whole batch when the batch is split (ptr: the collective), else 0.
 * Training: aux[0] = batch mean (C), aux[1] = batch inverse std (C).
 * Inference: aux[0] = (2, C) [running_mean; 1/sqrt(running_var + eps)], aux[1] = scale (C). */
static int batchnorm_backward(nn_node *node) {
    nn_tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2], *y = node->out;
    const nn_backend *be = nn_backend_of(y->device);
    int n = node->iarg[0], c = node->iarg[1], hw = node->iarg[2], training = node->iarg[3];
    const nn_real *mean = node->aux[0]->data;
    const nn_real *invstd = training ? node->aux[1]->data : node->aux[0]->data + c;
    if (training && node->ptr) {
        int err = 0;
        nn_real *dx = grad_data(x, &err), *dg = grad_data(gamma, &err), *db = grad_data(beta, &err);
        if (err) return -1;
        if (!dx && !dg && !db) return 0;
        return backward_synced(be, node->ptr, dx, dg, db, y->grad, x, gamma, mean, invstd, n, c, hw, node->farg[1]);
    }
    int need_params = gamma->requires_grad || beta->requires_grad;
    if (!training && x->requires_grad) {
        nn_tensor *dx = nn_tensor_grad(x);
        if (!dx || be->channel_affine_backward(dx->data, y->grad->data, node->aux[1]->data, n, c, hw))
            return -1;
        if (!need_params) return 0;
    }
    /* training: dx, dgamma, dbeta together; inference: dgamma and dbeta only (dx came
     * from channel_affine_backward above; the kernel's batch-statistics dx is skipped) */
    int err = 0;
    nn_real *dx = training ? grad_data(x, &err) : NULL, *dg = grad_data(gamma, &err), *db = grad_data(beta, &err);
    if (err) return -1;
    if (!dx && !dg && !db) return 0;
    return be->batchnorm_backward(dx, dg, db, y->grad->data, x->data, gamma->data, mean, invstd, n, c, hw,
                                  (nn_real)node->farg[0]);
}

/* scale = gamma / sqrt(var + eps), shift = beta - mean * scale, computed in double on
 * the host from the C-element parameters; when stats is not NULL it receives
 * [running_mean; 1/sqrt(running_var + eps)] (2, C) for the backward pass. */
static int inference_affine(nn_tensor *gamma, nn_tensor *beta, nn_tensor *rmean, nn_tensor *rvar,
                            nn_real eps, nn_tensor *scale, nn_tensor *shift, nn_tensor *stats) {
    size_t c = gamma->numel;
    nn_real *h = malloc(c * 6 * sizeof *h);
    if (!h) return nn_fail("batchnorm2d: out of host memory");
    nn_real *hg = h, *hb = h + c, *hm = h + 2 * c, *hv = h + 3 * c, *hs = h + 4 * c, *ht = h + 5 * c;
    int err = nn_tensor_download(gamma, hg) || nn_tensor_download(beta, hb) ||
              nn_tensor_download(rmean, hm) || nn_tensor_download(rvar, hv);
    if (!err) {
        for (size_t j = 0; j < c; j++) {
            double is = 1.0 / sqrt((double)hv[j] + (double)eps);
            hs[j] = (nn_real)(hg[j] * is);
            ht[j] = (nn_real)(hb[j] - hm[j] * (double)hg[j] * is);
            hv[j] = (nn_real)is; /* hm, hv now hold the (2, C) stats */
        }
        err = nn_tensor_upload(scale, hs) || nn_tensor_upload(shift, ht) ||
              (stats && nn_tensor_upload(stats, hm));
    }
    free(h);
    return err ? -1 : 0;
}

nn_tensor *nn_batchnorm2d(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                          nn_tensor *running_mean, nn_tensor *running_var,
                          nn_real momentum, nn_real eps) {
    if (!x) return NULL;
    if (!gamma || !beta || !running_mean || !running_var) {
        nn_fail("batchnorm2d: gamma, beta, running_mean and running_var are all required");
        return NULL;
    }
    char sx[64];
    if (x->ndim < 2) {
        nn_fail("batchnorm2d: input %s needs a channel dimension (N, C, H, W)", nn_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    int n = x->shape[0], c = x->shape[1];
    int hw = (int)(x->numel / ((size_t)n * c));
    nn_tensor *params[4] = {gamma, beta, running_mean, running_var};
    static const char *names[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        if (params[i]->numel != (size_t)c || params[i]->device != x->device) {
            char sp[64];
            nn_fail("batchnorm2d: %s is %s on %s, expected (%d) on %s like the input %s", names[i],
                    nn_shape_str(params[i], sp, sizeof sp), nn_device_name(params[i]->device), c,
                    nn_device_name(x->device), nn_shape_str(x, sx, sizeof sx));
            return NULL;
        }
    }
    int training = g && g->training;
    if (training && (size_t)n * hw < 2) {
        nn_fail("batchnorm2d: training needs more than 1 value per channel, input is %s",
                nn_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    const nn_collective *co = training && g->collective && g->collective->size > 1 ? g->collective : NULL;
    const nn_backend *be = training
        ? nn_op_backend(x, "batchnorm2d", offsetof(nn_backend, batchnorm_forward_train))
        : nn_op_backend(x, "batchnorm2d", offsetof(nn_backend, channel_affine));
    if (be && co) be = synced_backend(be);
    if (!be) return NULL;
    int wants = nn_graph_wants(g, x, gamma, beta, NULL);
    nn_tensor *y = nn_tensor_new_like(x), *aux0 = NULL, *aux1 = NULL, *shift = NULL;
    int err = !y;
    if (!err && training) {
        aux0 = nn_tensor_new(x->device, 1, &c);
        aux1 = nn_tensor_new(x->device, 1, &c);
        if (!err && co)
            err = !aux0 || !aux1 ||
                  forward_synced(be, co, y, aux0, aux1, running_mean, running_var, x, gamma, beta, n, c, hw, momentum,
                                 eps);
        else
            err = !aux0 || !aux1 ||
                  be->batchnorm_forward_train(y->data, aux0->data, aux1->data, running_mean->data,
                                              running_var->data, x->data, gamma->data, beta->data, n, c,
                                              hw, momentum, eps);
    } else if (!err) {
        int two_c[2] = {2, c};
        aux1 = nn_tensor_new(x->device, 1, &c); /* scale */
        shift = nn_tensor_new(x->device, 1, &c);
        if (wants) aux0 = nn_tensor_new(x->device, 2, two_c);
        err = !aux1 || !shift || (wants && !aux0) ||
              inference_affine(gamma, beta, running_mean, running_var, eps, aux1, shift, aux0) ||
              be->channel_affine(y->data, x->data, aux1->data, shift->data, n, c, hw);
        nn_tensor_unref(shift);
    }
    if (!err && wants) {
        nn_node *node = nn_graph_record(g, "batchnorm2d", batchnorm_backward, y, x, gamma, beta, NULL);
        if (node) {
            node->aux[0] = aux0;
            node->aux[1] = aux1;
            node->iarg[0] = n, node->iarg[1] = c, node->iarg[2] = hw, node->iarg[3] = training;
            node->farg[0] = (double)eps;
            node->farg[1] = co ? (double)co->size * n * hw : 0;
            node->ptr = co;
            return y;
        }
        err = 1;
    }
    nn_tensor_unref(aux0);
    nn_tensor_unref(aux1);
    if (err) {
        nn_tensor_unref(y);
        return NULL;
    }
    return y;
}
