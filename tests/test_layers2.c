/* Batch norm, dropout, softmax, selection, L1 loss, reshape: forward and backward
 * against naive loops written plainly here (double precision), error cases, and a
 * tiny end-to-end fit of the selection layer. */
#include <math.h>
#include <omp.h>

#include "testutil.h"

static nn_real *host_alloc(size_t n) {
    nn_real *h = calloc(n ? n : 1, sizeof *h);
    cr_assert_not_null(h);
    return h;
}

/* upstream gradient R: backward_from(out, R), returns nothing; the graph is cleared */
static void backward_with(nn_graph *g, nn_tensor *out, nn_tensor *r) {
    cr_assert_eq(nn_graph_backward_from(g, out, r), 0, "backward: %s", nn_last_error());
}

static void assert_no_leaks(void) {
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

/* ==== batch norm ================================================================ */

/* naive per-channel batch statistics of x (n, c, hw), in double */
static void naive_stats(const nn_real *x, int n, int c, int hw, int j, double *mean, double *var) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++) s += x[((size_t)i * c + j) * hw + k];
    *mean = s / ((double)n * hw);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++) {
            double e = x[((size_t)i * c + j) * hw + k] - *mean;
            ss += e * e;
        }
    *var = ss / ((double)n * hw);
}

Test(batchnorm2d, training_matches_naive_and_updates_running_stats_like_pytorch) {
    const int n = 3, c = 4, h = 5, w = 6, hw = h * w;
    const double momentum = 0.1, eps = 1e-5;
    nn_tensor *x1 = tu_uniform4(n, c, h, w, -2, 3, 1), *x2 = tu_uniform4(n, c, h, w, 1, 4, 2);
    nn_tensor *gamma = tu_uniform4(c, 0, 0, 0, 0.5, 1.5, 3), *beta = tu_uniform4(c, 0, 0, 0, -1, 1, 4);
    nn_tensor *rm = tu_uniform4(c, 0, 0, 0, -0.5, 0.5, 5), *rv = tu_uniform4(c, 0, 0, 0, 0.5, 2, 6);
    double want_rm[4], want_rv[4];
    for (int j = 0; j < c; j++) want_rm[j] = rm->data[j], want_rv[j] = rv->data[j];
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *xs[2] = {x1, x2};
    for (int step = 0; step < 2; step++) {
        nn_tensor *x = xs[step];
        nn_tensor *y = nn_batchnorm2d(&g, x, gamma, beta, rm, rv, (nn_real)momentum, (nn_real)eps);
        cr_assert_not_null(y, "%s", nn_last_error());
        nn_real *want = host_alloc(x->numel);
        for (int j = 0; j < c; j++) {
            double mean, var;
            naive_stats(x->data, n, c, hw, j, &mean, &var);
            for (int i = 0; i < n; i++)
                for (int k = 0; k < hw; k++) {
                    size_t idx = ((size_t)i * c + j) * hw + k;
                    want[idx] = (nn_real)((x->data[idx] - mean) / sqrt(var + eps) * gamma->data[j] + beta->data[j]);
                }
            /* torch BatchNorm2d: running = (1-m) running + m stat, unbiased variance */
            double m = (double)n * hw;
            want_rm[j] = (1 - momentum) * want_rm[j] + momentum * mean;
            want_rv[j] = (1 - momentum) * want_rv[j] + momentum * var * m / (m - 1);
        }
        tu_assert_close(y->data, want, x->numel, 1e-5, 1e-5, "batchnorm training output");
        nn_real rm_ref[4], rv_ref[4];
        for (int j = 0; j < c; j++) rm_ref[j] = (nn_real)want_rm[j], rv_ref[j] = (nn_real)want_rv[j];
        tu_assert_close(rm->data, rm_ref, c, 1e-6, 1e-5, "running_mean");
        tu_assert_close(rv->data, rv_ref, c, 1e-6, 1e-5, "running_var");
        free(want);
        nn_tensor_unref(y);
    }
    cr_assert_eq(g.n_nodes, 0, "nothing requires a gradient, nothing recorded");
    nn_graph_free(&g);
    nn_tensor *all[] = {x1, x2, gamma, beta, rm, rv};
    for (int i = 0; i < 6; i++) nn_tensor_unref(all[i]);
    assert_no_leaks();
}

Test(batchnorm2d, training_backward_matches_naive_jacobian) {
    /* y_i = gamma (x_i - mu) s + beta, s = 1/sqrt(var + eps), over the M values of a
     * channel; dy_i/dx_l = gamma s (delta_il - 1/M - xhat_i xhat_l / M) (differentiate
     * mu and var), dy_i/dgamma = xhat_i, dy_i/dbeta = 1. dx = J^T R as a double loop. */
    const int n = 2, c = 3, h = 3, w = 4, hw = h * w, m = n * hw;
    const double eps = 1e-5;
    nn_tensor *x = tu_uniform4(n, c, h, w, -1, 2, 7);
    nn_tensor *gamma = tu_uniform4(c, 0, 0, 0, 0.5, 1.5, 8), *beta = tu_uniform4(c, 0, 0, 0, -1, 1, 9);
    nn_tensor *rm = tu_uniform4(c, 0, 0, 0, 0, 0, 10), *rv = tu_uniform4(c, 0, 0, 0, 1, 1, 11);
    nn_tensor *r = tu_uniform4(n, c, h, w, -1, 1, 12);
    x->requires_grad = gamma->requires_grad = beta->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_batchnorm2d(&g, x, gamma, beta, rm, rv, (nn_real)0.1, (nn_real)eps);
    cr_assert_not_null(y, "%s", nn_last_error());
    backward_with(&g, y, r);
    nn_real *dx = host_alloc(x->numel), dg[3], db[3];
    for (int j = 0; j < c; j++) {
        double mean, var;
        naive_stats(x->data, n, c, hw, j, &mean, &var);
        double s = 1 / sqrt(var + eps), sg = 0, sb = 0;
        size_t idx[64];
        for (int t = 0; t < m; t++) idx[t] = ((size_t)(t / hw) * c + j) * hw + t % hw;
        for (int l = 0; l < m; l++) {
            double xl = (x->data[idx[l]] - mean) * s, acc = 0;
            for (int i = 0; i < m; i++) {
                double xi = (x->data[idx[i]] - mean) * s;
                double jac = gamma->data[j] * s * ((i == l) - 1.0 / m - xi * xl / m);
                acc += r->data[idx[i]] * jac;
            }
            dx[idx[l]] = (nn_real)acc;
            sg += r->data[idx[l]] * xl;
            sb += r->data[idx[l]];
        }
        dg[j] = (nn_real)sg, db[j] = (nn_real)sb;
    }
    tu_assert_close(x->grad->data, dx, x->numel, 1e-5, 1e-4, "batchnorm dx");
    tu_assert_close(gamma->grad->data, dg, c, 1e-5, 1e-5, "batchnorm dgamma");
    tu_assert_close(beta->grad->data, db, c, 1e-5, 1e-5, "batchnorm dbeta");
    free(dx);
    nn_tensor_unref(y);
    nn_graph_free(&g);
    nn_tensor *all[] = {x, gamma, beta, rm, rv, r};
    for (int i = 0; i < 6; i++) nn_tensor_unref(all[i]);
    assert_no_leaks();
}

Test(batchnorm2d, inference_uses_running_stats_and_leaves_them_alone) {
    const int n = 2, c = 3, hw = 20;
    const double eps = 1e-5;
    nn_tensor *x = tu_uniform4(n, c, 4, 5, -2, 3, 13);
    nn_tensor *gamma = tu_uniform4(c, 0, 0, 0, 0.5, 1.5, 14), *beta = tu_uniform4(c, 0, 0, 0, -1, 1, 15);
    nn_tensor *rm = tu_uniform4(c, 0, 0, 0, -3, 3, 16), *rv = tu_uniform4(c, 0, 0, 0, 2, 5, 17);
    nn_real rm0[3], rv0[3];
    for (int j = 0; j < c; j++) rm0[j] = rm->data[j], rv0[j] = rv->data[j];
    nn_real *want = host_alloc(x->numel);
    for (size_t i = 0; i < x->numel; i++) {
        int j = (int)(i / hw) % c;
        want[i] = (nn_real)((x->data[i] - rm0[j]) / sqrt(rv0[j] + eps) * gamma->data[j] + beta->data[j]);
    }
    nn_graph g;
    nn_graph_init(&g, 0);
    nn_tensor *y_graph = nn_batchnorm2d(&g, x, gamma, beta, rm, rv, (nn_real)0.1, (nn_real)eps);
    nn_tensor *y_null = nn_batchnorm2d(NULL, x, gamma, beta, rm, rv, (nn_real)0.1, (nn_real)eps);
    cr_assert(y_graph && y_null, "%s", nn_last_error());
    tu_assert_close(y_graph->data, want, x->numel, 1e-5, 1e-5, "batchnorm inference (graph)");
    tu_assert_close(y_null->data, want, x->numel, 1e-5, 1e-5, "batchnorm inference (g = NULL)");
    tu_assert_close(rm->data, rm0, c, 0, 0, "running_mean unchanged");
    tu_assert_close(rv->data, rv0, c, 0, 0, "running_var unchanged");
    /* and training mode on the same input really differs (batch statistics) */
    nn_graph gt;
    nn_graph_init(&gt, 1);
    nn_tensor *y_train = nn_batchnorm2d(&gt, x, gamma, beta, rm, rv, (nn_real)0.1, (nn_real)eps);
    cr_assert_not_null(y_train);
    double maxdiff = 0;
    for (size_t i = 0; i < x->numel; i++) maxdiff = fmax(maxdiff, fabs(y_train->data[i] - want[i]));
    cr_assert_gt(maxdiff, 0.1, "training output should use batch statistics");
    free(want);
    nn_tensor_unref(y_graph), nn_tensor_unref(y_null), nn_tensor_unref(y_train);
    nn_graph_free(&g), nn_graph_free(&gt);
    nn_tensor *all[] = {x, gamma, beta, rm, rv};
    for (int i = 0; i < 5; i++) nn_tensor_unref(all[i]);
    assert_no_leaks();
}

Test(batchnorm2d, inference_backward_matches_naive) {
    /* with fixed statistics y = gamma (x - rm)/sqrt(rv + eps) + beta is affine:
     * dx = R gamma / sqrt(rv + eps), dgamma = sum R xhat, dbeta = sum R */
    const int n = 2, c = 2, hw = 6;
    const double eps = 1e-5;
    nn_tensor *x = tu_uniform4(n, c, 2, 3, -1, 1, 18), *r = tu_uniform4(n, c, 2, 3, -1, 1, 19);
    nn_tensor *gamma = tu_uniform4(c, 0, 0, 0, 0.5, 1.5, 20), *beta = tu_uniform4(c, 0, 0, 0, -1, 1, 21);
    nn_tensor *rm = tu_uniform4(c, 0, 0, 0, -1, 1, 22), *rv = tu_uniform4(c, 0, 0, 0, 1, 2, 23);
    x->requires_grad = gamma->requires_grad = beta->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    g.training = 0;  /* recording, but layers in inference mode (frozen batch norm) */
    nn_tensor *y = nn_batchnorm2d(&g, x, gamma, beta, rm, rv, (nn_real)0.1, (nn_real)eps);
    cr_assert_not_null(y, "%s", nn_last_error());
    backward_with(&g, y, r);
    nn_real *dx = host_alloc(x->numel), dg[2] = {0, 0}, db[2] = {0, 0};
    for (size_t i = 0; i < x->numel; i++) {
        int j = (int)(i / hw) % c;
        double s = 1 / sqrt(rv->data[j] + eps);
        dx[i] = (nn_real)(r->data[i] * gamma->data[j] * s);
        dg[j] += (nn_real)(r->data[i] * (x->data[i] - rm->data[j]) * s);
        db[j] += r->data[i];
    }
    tu_assert_close(x->grad->data, dx, x->numel, 1e-6, 1e-5, "inference dx");
    tu_assert_close(gamma->grad->data, dg, c, 1e-5, 1e-5, "inference dgamma");
    tu_assert_close(beta->grad->data, db, c, 1e-5, 1e-5, "inference dbeta");
    free(dx);
    nn_tensor_unref(y);
    nn_graph_free(&g);
    nn_tensor *all[] = {x, r, gamma, beta, rm, rv};
    for (int i = 0; i < 6; i++) nn_tensor_unref(all[i]);
    assert_no_leaks();
}

Test(batchnorm2d, rejects_bad_parameters) {
    nn_tensor *x = tu_uniform4(2, 3, 2, 2, 0, 1, 24), *one = tu_uniform4(1, 3, 1, 1, 0, 1, 25);
    nn_tensor *p3 = tu_uniform4(3, 0, 0, 0, 1, 2, 26), *p4 = tu_uniform4(4, 0, 0, 0, 1, 2, 27);
    nn_graph g;
    nn_graph_init(&g, 1);
    cr_assert_null(nn_batchnorm2d(&g, x, p4, p3, p3, p3, (nn_real)0.1, (nn_real)1e-5));
    cr_assert(strstr(nn_last_error(), "batchnorm2d: gamma is (4)"), "message: %s", nn_last_error());
    cr_assert_null(nn_batchnorm2d(&g, x, p3, p3, p3, NULL, (nn_real)0.1, (nn_real)1e-5));
    cr_assert(strstr(nn_last_error(), "required"), "message: %s", nn_last_error());
    cr_assert_null(nn_batchnorm2d(&g, one, p3, p3, p3, p3, (nn_real)0.1, (nn_real)1e-5));
    cr_assert(strstr(nn_last_error(), "more than 1 value per channel"), "message: %s", nn_last_error());
    cr_assert_null(nn_batchnorm2d(&g, NULL, p3, p3, p3, p3, (nn_real)0.1, (nn_real)1e-5));
    nn_graph_free(&g);
    nn_tensor_unref(x), nn_tensor_unref(one), nn_tensor_unref(p3), nn_tensor_unref(p4);
    assert_no_leaks();
}

/* ==== dropout ==================================================================== */

Test(dropout, mask_comes_from_the_hash_and_the_seed_advances) {
    const double p = 0.3;
    nn_tensor *x = tu_uniform4(2, 3, 8, 8, -1, 1, 30);
    nn_graph g;
    nn_graph_init(&g, 1);
    g.dropout_seed = 42;
    nn_tensor *y = nn_dropout(&g, x, (nn_real)p);
    cr_assert_not_null(y, "%s", nn_last_error());
    nn_real *want = host_alloc(x->numel);
    for (size_t i = 0; i < x->numel; i++)
        want[i] = nn_hash_uniform(42, i) < p ? 0 : (nn_real)(x->data[i] * (1 / (1 - p)));
    tu_assert_close(y->data, want, x->numel, 0, 1e-6, "dropout output");
    cr_assert_eq(g.dropout_seed, 42ull * 6364136223846793005ull + 1442695040888963407ull);
    /* a second call draws another mask */
    nn_tensor *y2 = nn_dropout(&g, x, (nn_real)p);
    size_t differ = 0;
    for (size_t i = 0; i < x->numel; i++) differ += (y->data[i] == 0) != (y2->data[i] == 0);
    cr_assert_gt(differ, x->numel / 10, "the second mask should differ (%zu of %zu differ)", differ, x->numel);
    free(want);
    nn_tensor_unref(y), nn_tensor_unref(y2), nn_tensor_unref(x);
    nn_graph_free(&g);
    assert_no_leaks();
}

Test(dropout, drops_about_p_and_keeps_the_mean) {
    const double p = 0.5;
    nn_tensor *x = tu_uniform4(20000, 0, 0, 0, 1, 1, 31);  /* all ones */
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_dropout(&g, x, (nn_real)p);
    cr_assert_not_null(y);
    size_t zeros = 0;
    double sum = 0;
    for (size_t i = 0; i < y->numel; i++) zeros += y->data[i] == 0, sum += y->data[i];
    /* binomial: sd of the fraction = sqrt(p(1-p)/n) = 0.0035; allow 6 sd */
    double frac = (double)zeros / (double)y->numel;
    cr_assert(fabs(frac - p) < 0.021, "dropped fraction %g, expected about %g", frac, p);
    cr_assert(fabs(sum / (double)y->numel - 1) < 0.042, "mean %g, expected about 1", sum / (double)y->numel);
    nn_tensor_unref(y), nn_tensor_unref(x);
    nn_graph_free(&g);
}

Test(dropout, inference_and_p0_return_the_input) {
    nn_tensor *x = tu_uniform4(3, 4, 0, 0, -1, 1, 32);
    x->requires_grad = 1;
    nn_graph gi, gt;
    nn_graph_init(&gi, 0);
    nn_graph_init(&gt, 1);
    unsigned long long seed = gt.dropout_seed;
    nn_tensor *a = nn_dropout(&gi, x, (nn_real)0.5), *b = nn_dropout(NULL, x, (nn_real)0.5),
              *c = nn_dropout(&gt, x, 0);
    cr_assert(a == x && b == x && c == x, "the same tensor is returned");
    cr_assert_eq(x->refcount, 4);
    cr_assert_eq(gt.n_nodes + gi.n_nodes, 0);
    cr_assert_eq(gt.dropout_seed, seed, "p = 0 draws no mask");
    nn_tensor_unref(a), nn_tensor_unref(b), nn_tensor_unref(c), nn_tensor_unref(x);
    nn_graph_free(&gi), nn_graph_free(&gt);
    assert_no_leaks();
}

Test(dropout, rejects_p_outside_0_1) {
    nn_tensor *x = tu_uniform4(4, 0, 0, 0, 0, 1, 33);
    const nn_real bad[3] = {1, (nn_real)-0.1, (nn_real)NAN};
    for (int i = 0; i < 3; i++) {
        cr_assert_null(nn_dropout(NULL, x, bad[i]));
        cr_assert(strstr(nn_last_error(), "dropout: probability"), "message: %s", nn_last_error());
    }
    nn_tensor_unref(x);
}

Test(dropout, backward_is_dout_times_mask) {
    const double p = 0.25;
    nn_tensor *x = tu_uniform4(2, 5, 7, 0, -1, 1, 34), *r = tu_uniform4(2, 5, 7, 0, -1, 1, 35);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    g.dropout_seed = 7;
    nn_tensor *y = nn_dropout(&g, x, (nn_real)p);
    backward_with(&g, y, r);
    nn_real *want = host_alloc(x->numel);
    for (size_t i = 0; i < x->numel; i++)
        want[i] = nn_hash_uniform(7, i) < p ? 0 : (nn_real)(r->data[i] * (1 / (1 - p)));
    tu_assert_close(x->grad->data, want, x->numel, 0, 1e-6, "dropout dx");
    free(want);
    nn_tensor_unref(y), nn_tensor_unref(x), nn_tensor_unref(r);
    nn_graph_free(&g);
    assert_no_leaks();
}

/* ==== softmax ==================================================================== */

static void naive_softmax(const nn_real *x, nn_real *p, int n, int c, int hw) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++) {
            double s = 0;
            for (int j = 0; j < c; j++) s += exp((double)x[((size_t)i * c + j) * hw + k]);
            for (int j = 0; j < c; j++) {
                size_t idx = ((size_t)i * c + j) * hw + k;
                p[idx] = (nn_real)(exp((double)x[idx]) / s);
            }
        }
}

Test(softmax, forward_matches_naive_and_is_stable) {
    const int n = 2, c = 5, hw = 300;  /* hw > one tile of the kernel */
    nn_tensor *x = tu_uniform4(n, c, 15, 20, -5, 5, 40);
    nn_tensor *p = nn_softmax_channels(NULL, x);
    cr_assert_not_null(p, "%s", nn_last_error());
    nn_real *want = host_alloc(x->numel);
    naive_softmax(x->data, want, n, c, hw);
    tu_assert_close(p->data, want, x->numel, 1e-7, 1e-5, "softmax");
    /* shift-invariance: x + 1000 overflows a naive exp in float, not the kernel */
    for (size_t i = 0; i < x->numel; i++) x->data[i] += 1000;
    nn_tensor *q = nn_softmax_channels(NULL, x);
    tu_assert_close(q->data, want, x->numel, 1e-6, 1e-3, "softmax of x + 1000");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++) {
            double s = 0;
            for (int j = 0; j < c; j++) s += q->data[((size_t)i * c + j) * hw + k];
            cr_assert(fabs(s - 1) < 1e-5, "pixel (%d, %d) sums to %g", i, k, s);
        }
    free(want);
    nn_tensor_unref(p), nn_tensor_unref(q), nn_tensor_unref(x);
    assert_no_leaks();
}

/* The vectorisable exponential of the CPU softmax against libm's double exp: relative
 * error at most 4e-7 (Cephes expf's bound is about 2 ulps, 2.4e-7) on [-86, 0]; below
 * -86.7 at most 3e-38 and never negative (0 from -87.0: 2^-125 is the smallest scale it
 * builds); NaN in gives NaN out. */
Test(softmax, exp_nonpositive_matches_libm) {
    double worst = 0;
    for (int i = 0; i <= 860000; i++) {
        const float x = -(float)i * 1e-4f;
        const double want = exp((double)x), got = nn_exp_nonpositive(x);
        const double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
        cr_assert(rel <= 4e-7, "exp(%.7g): %.9g, libm %.9g (relative error %.3g)", (double)x, got, want, rel);
    }
    cr_assert(worst > 0, "no error at all is suspicious: the comparison is in double");
    for (float x = -86.7f; x > -200; x -= 0.37f) {
        const float e = nn_exp_nonpositive(x);
        cr_assert(e >= 0 && e <= 3e-38f, "exp(%g) = %g, expected 0..3e-38", (double)x, (double)e);
    }
    cr_assert(nn_exp_nonpositive(-1000.0f) == 0.0f);
    cr_assert(nn_exp_nonpositive(0.0f) == 1.0f, "exp(0) = %.9g", (double)nn_exp_nonpositive(0.0f));
    cr_assert(isnan(nn_exp_nonpositive(NAN)));
}

Test(softmax, backward_matches_naive_jacobian) {
    /* dp_j/dx_l = p_j (delta_jl - p_l); dx_l = sum_j R_j p_j (delta_jl - p_l) */
    const int n = 2, c = 4, hw = 6;
    nn_tensor *x = tu_uniform4(n, c, 2, 3, -3, 3, 41), *r = tu_uniform4(n, c, 2, 3, -1, 1, 42);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *p = nn_softmax_channels(&g, x);
    backward_with(&g, p, r);
    nn_real *pn = host_alloc(x->numel), *want = host_alloc(x->numel);
    naive_softmax(x->data, pn, n, c, hw);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < hw; k++)
            for (int l = 0; l < c; l++) {
                double acc = 0;
                size_t il = ((size_t)i * c + l) * hw + k;
                for (int j = 0; j < c; j++) {
                    size_t ij = ((size_t)i * c + j) * hw + k;
                    acc += r->data[ij] * pn[ij] * ((j == l) - (double)pn[il]);
                }
                want[il] = (nn_real)acc;
            }
    tu_assert_close(x->grad->data, want, x->numel, 1e-6, 1e-5, "softmax dx");
    free(pn), free(want);
    nn_tensor_unref(p), nn_tensor_unref(x), nn_tensor_unref(r);
    nn_graph_free(&g);
    assert_no_leaks();
}

Test(softmax, rejects_1d_input) {
    nn_tensor *x = tu_uniform4(5, 0, 0, 0, 0, 1, 43);
    cr_assert_null(nn_softmax_channels(NULL, x));
    cr_assert(strstr(nn_last_error(), "softmax: input (5) needs a channel dimension"), "message: %s",
              nn_last_error());
    nn_tensor_unref(x);
}

/* ==== selection ================================================================== */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* DEEP3D.md "Selection layer", literally */
static void naive_selection(nn_real *right, const nn_real *prob, const nn_real *left, int n, int c, int h,
                            int w, int d, int dmin) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double s = 0;
                    for (int k = 0; k < d; k++)
                        s += (double)prob[(((size_t)i * d + k) * h + y) * w + x] *
                             left[(((size_t)i * c + ch) * h + y) * w + clampi(x - (dmin + k), 0, w - 1)];
                    right[(((size_t)i * c + ch) * h + y) * w + x] = (nn_real)s;
                }
}

/* The PyTorch peer's `selection` (deep3d_torch.py), transcribed: pad left by
 * padl = max(dmax, 0) columns on the left and padr = max(-dmin, 0) on the right with
 * replicate padding, then out += prob[:, k] * lp[..., start:start + w], start = padl - shift. */
static void peer_selection(nn_real *right, const nn_real *prob, const nn_real *left, int n, int c, int h,
                           int w, int d, int dmin) {
    int dmax = dmin + d - 1, padl = dmax > 0 ? dmax : 0, padr = -dmin > 0 ? -dmin : 0, wp = w + padl + padr;
    double *lp = calloc((size_t)wp, sizeof *lp);
    cr_assert_not_null(lp);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++) {
                const nn_real *row = left + (((size_t)i * c + ch) * h + y) * w;
                for (int x = 0; x < wp; x++) {  /* F.pad(mode="replicate") */
                    int src = x - padl;
                    lp[x] = row[src < 0 ? 0 : src >= w ? w - 1 : src];
                }
                double out[64] = {0};
                for (int k = 0; k < d; k++) {
                    int start = padl - (dmin + k);
                    for (int x = 0; x < w; x++) out[x] += prob[(((size_t)i * d + k) * h + y) * w + x] * lp[start + x];
                }
                for (int x = 0; x < w; x++) right[(((size_t)i * c + ch) * h + y) * w + x] = (nn_real)out[x];
            }
    free(lp);
}

Test(selection, one_hot_prob_shifts_left_with_edges_repeated) {
    /* one row, W = 5, shifts d_k = -2..2. A one-hot prob at shift d gives
     * R(x) = L(clamp(x - d, 0, 4)); for L = 10 20 30 40 50 (worked out by hand):
     *   d = +2: 10 10 10 20 30    d = -1: 20 30 40 50 50    d = 0: L itself */
    const int w = 5, d = 5, dmin = -2;
    const nn_real lv[5] = {10, 20, 30, 40, 50};
    const int shifts[3] = {2, -1, 0};
    const nn_real want[3][5] = {{10, 10, 10, 20, 30}, {20, 30, 40, 50, 50}, {10, 20, 30, 40, 50}};
    nn_tensor *left = nn_tensor_new4(NN_CPU, 1, 1, 1, w), *prob = nn_tensor_new4(NN_CPU, 1, d, 1, w);
    cr_assert(left && prob);
    nn_tensor_upload(left, lv);
    for (int t = 0; t < 3; t++) {
        for (int k = 0; k < d; k++)
            for (int x = 0; x < w; x++) prob->data[k * w + x] = dmin + k == shifts[t];
        nn_tensor *right = nn_selection(NULL, prob, left, dmin);
        cr_assert_not_null(right, "%s", nn_last_error());
        tu_assert_close(right->data, want[t], w, 0, 0, "one-hot selection");
        nn_tensor_unref(right);
    }
    nn_tensor_unref(left), nn_tensor_unref(prob);
    assert_no_leaks();
}

Test(selection, forward_matches_naive_loop_and_torch_peer) {
    /* second case: shifts -5..5 on a row of 4 columns (every column clamps somewhere) */
    const int cases[2][6] = {{2, 3, 4, 9, 7, -3}, {1, 2, 3, 4, 11, -5}};
    for (int t = 0; t < 2; t++) {
        int n = cases[t][0], c = cases[t][1], h = cases[t][2], w = cases[t][3], d = cases[t][4],
            dmin = cases[t][5];
        nn_tensor *prob = tu_uniform4(n, d, h, w, 0, 1, 50 + t), *left = tu_uniform4(n, c, h, w, 0, 255, 60 + t);
        nn_tensor *right = nn_selection(NULL, prob, left, dmin);
        cr_assert_not_null(right, "%s", nn_last_error());
        nn_real *naive = host_alloc(left->numel), *peer = host_alloc(left->numel);
        naive_selection(naive, prob->data, left->data, n, c, h, w, d, dmin);
        peer_selection(peer, prob->data, left->data, n, c, h, w, d, dmin);
        tu_assert_close(right->data, naive, left->numel, 1e-4, 1e-5, "selection vs naive loop");
        tu_assert_close(right->data, peer, left->numel, 1e-4, 1e-5, "selection vs torch peer");
        free(naive), free(peer);
        nn_tensor_unref(prob), nn_tensor_unref(left), nn_tensor_unref(right);
    }
    assert_no_leaks();
}

/* dprob(k, x) = sum_c dR(c, x) L(c, clamp(x - d_k)); dL scattered: for every (k, x),
 * dL(c, clamp(x - d_k)) += dR(c, x) p(k, x) */
static void naive_selection_backward(nn_real *dprob, nn_real *dleft, const nn_real *dright, const nn_real *prob,
                                     const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    size_t nl = (size_t)n * c * h * w;
    double *dl = calloc(nl, sizeof *dl);
    cr_assert_not_null(dl);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int src = clampi(x - (dmin + k), 0, w - 1);
                    size_t pk = (((size_t)i * d + k) * h + y) * w + x;
                    double acc = 0;
                    for (int ch = 0; ch < c; ch++) {
                        size_t row = (((size_t)i * c + ch) * h + y) * w;
                        acc += (double)dright[row + x] * left[row + src];
                        dl[row + src] += (double)dright[row + x] * prob[pk];
                    }
                    dprob[pk] = (nn_real)acc;
                }
    for (size_t i = 0; i < nl; i++) dleft[i] = (nn_real)dl[i];
    free(dl);
}

static void check_selection_backward(int n, int c, int h, int w, int d, int dmin, int threads) {
    if (threads) omp_set_num_threads(threads);
    nn_tensor *prob = tu_uniform4(n, d, h, w, 0, 1, 70), *left = tu_uniform4(n, c, h, w, 0, 255, 71);
    nn_tensor *r = tu_uniform4(n, c, h, w, -1, 1, 72);
    prob->requires_grad = left->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *right = nn_selection(&g, prob, left, dmin);
    cr_assert_not_null(right, "%s", nn_last_error());
    backward_with(&g, right, r);
    nn_real *dp = host_alloc(prob->numel), *dl = host_alloc(left->numel);
    naive_selection_backward(dp, dl, r->data, prob->data, left->data, n, c, h, w, d, dmin);
    tu_assert_close(prob->grad->data, dp, prob->numel, 1e-3, 1e-5, "selection dprob");
    tu_assert_close(left->grad->data, dl, left->numel, 1e-5, 1e-5, "selection dleft");
    free(dp), free(dl);
    nn_tensor_unref(right), nn_tensor_unref(prob), nn_tensor_unref(left), nn_tensor_unref(r);
    nn_graph_free(&g);
    assert_no_leaks();
}

Test(selection, backward_matches_naive_loops) {
    check_selection_backward(2, 3, 4, 9, 7, -3, 0);
    check_selection_backward(1, 2, 3, 4, 11, -5, 0);
}

Test(selection, backward_scatter_is_race_free_on_4_threads) {
    check_selection_backward(2, 3, 16, 40, 9, -4, 4);
}

Test(selection, only_prob_gets_a_gradient_when_left_is_data) {
    nn_tensor *prob = tu_uniform4(1, 5, 2, 6, 0, 1, 73), *left = tu_uniform4(1, 3, 2, 6, 0, 255, 74);
    prob->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *right = nn_selection(&g, prob, left, -2);
    cr_assert_eq(nn_graph_backward_from(&g, right, NULL), 0, "%s", nn_last_error());
    cr_assert_not_null(prob->grad);
    cr_assert_null(left->grad);
    nn_tensor_unref(right), nn_tensor_unref(prob), nn_tensor_unref(left);
    nn_graph_free(&g);
    assert_no_leaks();
}

Test(selection, rejects_mismatched_shapes) {
    nn_tensor *prob = tu_uniform4(1, 5, 2, 6, 0, 1, 75), *left = tu_uniform4(1, 3, 2, 7, 0, 255, 76);
    cr_assert_null(nn_selection(NULL, prob, left, -2));
    cr_assert(strstr(nn_last_error(), "selection: prob (1, 5, 2, 6) on cpu and left (1, 3, 2, 7)"), "message: %s",
              nn_last_error());
    nn_tensor_unref(prob), nn_tensor_unref(left);
}

/* ==== L1 loss ==================================================================== */

Test(l1_loss, forward_and_backward_match_naive) {
    nn_tensor *pred = tu_uniform4(2, 3, 4, 5, 0, 255, 80), *target = tu_uniform4(2, 3, 4, 5, 0, 255, 81);
    size_t n = pred->numel;
    for (size_t i = 0; i < n; i += 7) target->data[i] = pred->data[i];  /* sign(0) = 0 there */
    pred->requires_grad = target->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *loss = nn_l1_loss(&g, pred, target);
    cr_assert_not_null(loss, "%s", nn_last_error());
    cr_assert_eq(loss->numel, 1);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)pred->data[i] - target->data[i]);
    nn_real want_loss = (nn_real)(s / (double)n);
    tu_assert_close(loss->data, &want_loss, 1, 0, 1e-6, "l1 loss");
    cr_assert_eq(nn_graph_backward(&g, loss), 0, "%s", nn_last_error());
    nn_real *want = host_alloc(n);
    for (size_t i = 0; i < n; i++) {
        double diff = (double)pred->data[i] - target->data[i];
        want[i] = (nn_real)((diff > 0) - (diff < 0)) / (nn_real)n;
    }
    tu_assert_close(pred->grad->data, want, n, 0, 1e-6, "l1 dpred");
    cr_assert_null(target->grad, "the target gets no gradient");
    free(want);
    nn_tensor_unref(loss), nn_tensor_unref(pred), nn_tensor_unref(target);
    nn_graph_free(&g);
    assert_no_leaks();
}

Test(l1_loss, rejects_shape_mismatch) {
    nn_tensor *a = tu_uniform4(2, 3, 0, 0, 0, 1, 82), *b = tu_uniform4(3, 2, 0, 0, 0, 1, 83);
    cr_assert_null(nn_l1_loss(NULL, a, b));
    cr_assert(strstr(nn_last_error(), "l1_loss: pred (2, 3) on cpu and target (3, 2) on cpu differ"),
              "message: %s", nn_last_error());
    nn_tensor_unref(a), nn_tensor_unref(b);
}

/* ==== reshape ===================================================================== */

Test(reshape, copies_in_order_and_passes_the_gradient_back) {
    nn_tensor *x = tu_uniform4(2, 3, 2, 2, -1, 1, 90);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    const int shape[3] = {4, 3, 2};
    nn_tensor *y = nn_reshape(&g, x, 3, shape), *f = nn_flatten(&g, x);
    cr_assert(y && f, "%s", nn_last_error());
    cr_assert(y->ndim == 3 && y->shape[0] == 4 && y->shape[1] == 3 && y->shape[2] == 2);
    cr_assert(f->ndim == 2 && f->shape[0] == 2 && f->shape[1] == 12);
    cr_assert_neq(y->data, x->data, "a copy");
    tu_assert_close(y->data, x->data, x->numel, 0, 0, "reshape keeps the order");
    tu_assert_close(f->data, x->data, x->numel, 0, 0, "flatten keeps the order");
    /* loss = sum(y * R1) + sum(f * R2) -> dx = R1 + R2 element by element */
    nn_tensor *r1 = tu_uniform(3, shape, -1, 1, 91), *r2 = tu_uniform4(2, 12, 0, 0, -1, 1, 92);
    backward_with(&g, y, r1);
    nn_graph_clear(&g);
    nn_graph g2;
    nn_graph_init(&g2, 1);
    nn_tensor *f2 = nn_flatten(&g2, x);
    backward_with(&g2, f2, r2);
    nn_real *want = host_alloc(x->numel);
    for (size_t i = 0; i < x->numel; i++) want[i] = r1->data[i] + r2->data[i];
    tu_assert_close(x->grad->data, want, x->numel, 1e-7, 1e-6, "reshape/flatten dx");
    free(want);
    nn_tensor_unref(y), nn_tensor_unref(f), nn_tensor_unref(f2), nn_tensor_unref(x), nn_tensor_unref(r1),
        nn_tensor_unref(r2);
    nn_graph_free(&g), nn_graph_free(&g2);
    assert_no_leaks();
}

Test(reshape, rejects_count_mismatch) {
    nn_tensor *x = tu_uniform4(2, 3, 0, 0, 0, 1, 93);
    const int shape[2] = {4, 2}, zero[2] = {6, 0};
    cr_assert_null(nn_reshape(NULL, x, 2, shape));
    cr_assert(strstr(nn_last_error(), "reshape: (2, 3) has 6 elements, the new shape 8"), "message: %s",
              nn_last_error());
    cr_assert_null(nn_reshape(NULL, x, 2, zero));
    cr_assert(strstr(nn_last_error(), "reshape of (2, 3): tensor: dimension 1 is 0"), "message: %s",
              nn_last_error());
    cr_assert_null(nn_reshape(NULL, x, 6, shape));
    cr_assert_eq(nn_tensor_live_count(), 1, "nothing left allocated");
    nn_tensor_unref(x);
}

/* ==== end to end ================================================================== */

Test(selection_fit, adam_on_l1_of_selection_finds_a_known_disparity) {
    /* right = left shifted by d* = +3 (R(x) = L(clamp(x - 3))); minimise
     * l1(selection(softmax(logits), left), right) over per-pixel logits with Adam.
     * Where every shift reads an in-range, distinct column (x in [dmax, W-1+dmin]) only
     * k* = d* - dmin reproduces right, so the probability must concentrate there. */
    const int n = 1, c = 3, h = 4, w = 24, d = 9, dmin = -4, dstar = 3, kstar = dstar - dmin;
    nn_tensor *left = tu_uniform4(n, c, h, w, 0, 255, 100), *right = nn_tensor_new_like(left);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                right->data[(ch * h + y) * w + x] = left->data[(ch * h + y) * w + clampi(x - dstar, 0, w - 1)];
    nn_tensor *logits = tu_uniform4(n, d, h, w, 0, 0, 101);
    logits->requires_grad = 1;
    nn_optimizer opt;
    cr_assert_eq(nn_optimizer_init(&opt, NN_OPTIM_ADAM, &logits, 1), 0, "%s", nn_last_error());
    nn_graph g;
    nn_graph_init(&g, 1);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        cr_assert_eq(nn_optimizer_zero_grad(&opt), 0);
        nn_tensor *p = nn_softmax_channels(&g, logits);
        nn_tensor *r = nn_selection(&g, p, left, dmin);
        nn_tensor *loss = nn_l1_loss(&g, r, right);
        cr_assert_not_null(loss, "%s", nn_last_error());
        cr_assert_eq(nn_graph_backward(&g, loss), 0, "%s", nn_last_error());
        cr_assert_eq(nn_optimizer_step(&opt, (nn_real)0.1), 0, "%s", nn_last_error());
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
        nn_tensor_unref(p), nn_tensor_unref(r), nn_tensor_unref(loss);
        nn_graph_clear(&g);
    }
    cr_assert_lt(last, 0.05 * first, "loss %g -> %g", first, last);
    nn_tensor *p = nn_softmax_channels(NULL, logits);
    double mass = 0;
    int cells = 0;
    for (int y = 0; y < h; y++)
        for (int x = dmin + d - 1; x <= w - 1 + dmin; x++) {
            double pk = p->data[(kstar * h + y) * w + x];
            for (int k = 0; k < d; k++)
                cr_assert(k == kstar || p->data[(k * h + y) * w + x] < pk, "pixel (%d, %d): shift %d beats %d", y,
                          x, dmin + k, dstar);
            mass += pk, cells++;
        }
    cr_assert_gt(mass / cells, 0.9, "mean probability of the true disparity %g", mass / cells);
    nn_tensor_unref(p), nn_tensor_unref(left), nn_tensor_unref(right), nn_tensor_unref(logits);
    nn_optimizer_free(&opt);
    nn_graph_free(&g);
    assert_no_leaks();
}
