#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

nn_tensor *tu_uniform(int ndim, const int *shape, double lo, double hi, uint64_t seed) {
    nn_tensor *t = nn_tensor_new(NN_CPU, ndim, shape);
    cr_assert_not_null(t, "tensor: %s", nn_last_error());
    for (size_t i = 0; i < t->numel; i++) t->data[i] = (nn_real)(lo + (hi - lo) * nn_hash_uniform(seed, i));
    return t;
}

nn_tensor *tu_uniform4(int d0, int d1, int d2, int d3, double lo, double hi, uint64_t seed) {
    int shape[4] = {d0, d1, d2, d3};
    int ndim = 4;
    while (ndim > 1 && shape[ndim - 1] == 0) ndim--;
    return tu_uniform(ndim, shape, lo, hi, seed);
}

nn_real *tu_host(const nn_tensor *t) {
    nn_real *h = malloc(t->numel * sizeof *h);
    cr_assert_not_null(h);
    cr_assert_eq(nn_tensor_download(t, h), 0, "download: %s", nn_last_error());
    return h;
}

double tu_assert_close(const nn_real *a, const nn_real *b, size_t n, double atol, double rtol,
                       const char *what) {
    double max_err = 0, worst_excess = -INFINITY;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)b[i]);
        double excess = err - (atol + rtol * fabs((double)b[i]));
        if (isnan(err)) excess = INFINITY;
        if (err > max_err || isnan(err)) max_err = err;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    cr_assert(n == 0 || worst_excess <= 0,
              "%s: element %zu of %zu is %.9g, expected %.9g (|diff| %.3g > atol %.3g + rtol %.3g*|ref|)",
              what, worst, n, (double)a[worst], (double)b[worst], fabs((double)a[worst] - (double)b[worst]),
              atol, rtol);
    return max_err;
}

double tu_assert_tensors_close(const nn_tensor *a, const nn_tensor *b, double atol, double rtol,
                               const char *what) {
    char sa[64], sb[64];
    cr_assert(nn_tensor_same_shape(a, b), "%s: shape %s, expected %s", what, nn_shape_str(a, sa, sizeof sa),
              nn_shape_str(b, sb, sizeof sb));
    nn_real *ha = tu_host(a), *hb = tu_host(b);
    double e = tu_assert_close(ha, hb, a->numel, atol, rtol, what);
    free(ha);
    free(hb);
    return e;
}

/* loss = sum(out * R) in double, evaluated without recording */
static double eval_loss(tu_forward_fn fn, nn_tensor **inputs, void *ctx, const nn_real *r,
                        unsigned long long seed) {
    nn_graph g;
    nn_graph_init(&g, 1);
    g.recording = 0;
    g.dropout_seed = seed;
    nn_tensor *out = fn(&g, inputs, ctx);
    cr_assert_not_null(out, "forward failed: %s", nn_last_error());
    nn_real *h = tu_host(out);
    double s = 0;
    for (size_t i = 0; i < out->numel; i++) s += (double)h[i] * (double)r[i];
    free(h);
    nn_tensor_unref(out);
    nn_graph_free(&g);
    return s;
}

void tu_gradcheck(const char *name, tu_forward_fn fn, nn_tensor **inputs, int n_inputs, void *ctx,
                  double h, double atol, double rtol, int max_per_input, double max_skip_frac) {
    const unsigned long long seed = 1234;
    /* analytic: one recorded forward + backward with upstream gradient R */
    nn_graph g;
    nn_graph_init(&g, 1);
    g.dropout_seed = seed;
    for (int i = 0; i < n_inputs; i++) {
        nn_tensor_unref(inputs[i]->grad);
        inputs[i]->grad = NULL;
    }
    nn_tensor *out = fn(&g, inputs, ctx);
    cr_assert_not_null(out, "%s: forward failed: %s", name, nn_last_error());
    nn_tensor *r = tu_uniform(out->ndim, out->shape, -1, 1, 99);
    cr_assert_eq(nn_graph_backward_from(&g, out, r), 0, "%s: backward failed: %s", name, nn_last_error());
    nn_tensor_unref(out);
    nn_graph_clear(&g);
    nn_graph_free(&g);

    for (int i = 0; i < n_inputs; i++) {
        nn_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        cr_assert_not_null(x->grad, "%s: input %d received no gradient", name, i);
        nn_real *analytic = tu_host(x->grad);
        size_t n = x->numel, count = n < (size_t)max_per_input ? n : (size_t)max_per_input;
        int checked = 0, skipped = 0;
        for (size_t s = 0; s < count; s++) {
            size_t j = count == n ? s : (size_t)((double)s * (double)n / (double)count + 0.5 * n / count) % n;
            nn_real saved = x->data[j];
            double f0 = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = (nn_real)(saved + h);
            double fp = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = (nn_real)(saved - h);
            double fm = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = saved;
            double central = (fp - fm) / (2 * h), right = (fp - f0) / h, left = (f0 - fm) / h;
            double tol = atol + rtol * fabs(central);
            if (fabs(right - left) > 10 * tol + 1e3 * h) {  /* a kink lies inside [x-h, x+h] */
                skipped++;
                continue;
            }
            checked++;
            double a = (double)analytic[j];
            cr_assert(fabs(a - central) <= tol,
                      "%s: d/d input %d [%zu]: analytic %.10g, finite difference %.10g (|diff| %.3g > %.3g)",
                      name, i, j, a, central, fabs(a - central), tol);
        }
        cr_assert(skipped <= max_skip_frac * (checked + skipped),
                  "%s: input %d: %d of %d elements skipped at kinks (limit %.0f%%)", name, i, skipped,
                  checked + skipped, 100 * max_skip_frac);
        cr_assert(checked > 0, "%s: input %d: nothing checked", name, i);
        free(analytic);
    }
    nn_tensor_unref(r);
}
