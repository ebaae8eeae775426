/* Optimizers and learning-rate schedules against the formulas of nn/optim.h written
 * out here in double, and against closed forms derived from them. */
#include <math.h>

#include "testutil.h"

#define N 6

/* the gradient of 0.5 * |w - target|^2 at w, with target fixed */
static void quadratic_grad(const nn_real *w, nn_real *g) {
    for (int i = 0; i < N; i++) g[i] = w[i] - (nn_real)(0.5 * i - 1);
}

static nn_tensor *param(uint64_t seed) {
    nn_tensor *w = tu_uniform4(N, 0, 0, 0, -2, 2, seed);
    w->requires_grad = 1;
    return w;
}

Test(optim, sgd_momentum_weight_decay_matches_the_formula) {
    const double lr = 0.1, mu = 0.9, wd = 0.01;
    nn_tensor *w = param(1);
    double ref_w[N], ref_v[N] = {0};
    for (int i = 0; i < N; i++) ref_w[i] = w->data[i];
    nn_optimizer o;
    cr_assert_eq(nn_optimizer_init(&o, NN_OPTIM_SGD, &w, 1), 0, "%s", nn_last_error());
    o.weight_decay = (nn_real)wd;
    for (int step = 0; step < 5; step++) {
        nn_tensor *g = nn_tensor_grad(w);
        quadratic_grad(w->data, g->data);
        for (int i = 0; i < N; i++) {  /* torch.optim.SGD: g += wd w; v = mu v + g; w -= lr v */
            double gi = g->data[i] + wd * ref_w[i];
            ref_v[i] = mu * ref_v[i] + gi;
            ref_w[i] -= lr * ref_v[i];
        }
        cr_assert_eq(nn_optimizer_step(&o, (nn_real)lr), 0, "%s", nn_last_error());
        nn_real want[N];
        for (int i = 0; i < N; i++) want[i] = (nn_real)ref_w[i];
        tu_assert_close(w->data, want, N, 1e-6, 1e-5, "sgd w");
    }
    cr_assert_eq(o.step, 5);
    nn_optimizer_free(&o);
    nn_tensor_unref(w);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(optim, sgd_constant_gradient_closed_form) {
    /* with a constant gradient g and v_0 = 0: v_t = g (1 - mu^t)/(1 - mu), so
     * w_t = w_0 - lr g sum_{s=1..t} (1 - mu^s)/(1 - mu) */
    const double lr = 0.05, mu = 0.9;
    const int steps = 7;
    nn_tensor *w = param(2);
    nn_real w0[N], g[N];
    for (int i = 0; i < N; i++) w0[i] = w->data[i], g[i] = (nn_real)(0.3 * i - 0.8);
    nn_optimizer o;
    cr_assert_eq(nn_optimizer_init(&o, NN_OPTIM_SGD, &w, 1), 0);
    cr_assert_eq(o.momentum, (nn_real)mu, "default momentum 0.9");
    for (int t = 0; t < steps; t++) {
        nn_tensor_upload(nn_tensor_grad(w), g);
        nn_optimizer_step(&o, (nn_real)lr);
    }
    double sum = 0;
    for (int s = 1; s <= steps; s++) sum += (1 - pow(mu, s)) / (1 - mu);
    nn_real want[N];
    for (int i = 0; i < N; i++) want[i] = (nn_real)(w0[i] - lr * g[i] * sum);
    tu_assert_close(w->data, want, N, 1e-6, 1e-5, "sgd closed form");
    nn_optimizer_free(&o);
    nn_tensor_unref(w);
}

Test(optim, adam_weight_decay_matches_the_formula) {
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.02;
    nn_tensor *w = param(3);
    double ref_w[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++) ref_w[i] = w->data[i];
    nn_optimizer o;
    cr_assert_eq(nn_optimizer_init(&o, NN_OPTIM_ADAM, &w, 1), 0, "%s", nn_last_error());
    cr_assert(o.beta1 == (nn_real)b1 && o.beta2 == (nn_real)b2 && o.eps == (nn_real)eps, "defaults");
    o.weight_decay = (nn_real)wd;
    for (int t = 1; t <= 6; t++) {
        nn_tensor *g = nn_tensor_grad(w);
        quadratic_grad(w->data, g->data);
        for (int i = 0; i < N; i++) {  /* torch.optim.Adam (L2 weight decay), algorithm 1 of Kingma & Ba */
            double gi = g->data[i] + wd * ref_w[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
            ref_w[i] -= lr * mhat / (sqrt(vhat) + eps);
        }
        cr_assert_eq(nn_optimizer_step(&o, (nn_real)lr), 0, "%s", nn_last_error());
        nn_real want[N];
        for (int i = 0; i < N; i++) want[i] = (nn_real)ref_w[i];
        tu_assert_close(w->data, want, N, 1e-6, 1e-5, "adam w");
    }
    nn_optimizer_free(&o);
    nn_tensor_unref(w);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(optim, adam_constant_gradient_closed_form) {
    /* with a constant gradient g: m_t = g (1 - b1^t), v_t = g^2 (1 - b2^t), so the bias-
     * corrected moments are exactly g and g^2 and every step moves w by
     * lr g / (|g| + eps): w_t = w_0 - t lr g / (|g| + eps) */
    const double lr = 0.003;
    const int steps = 10;
    nn_tensor *w = param(4);
    nn_real w0[N], g[N];
    for (int i = 0; i < N; i++) w0[i] = w->data[i], g[i] = (nn_real)((i % 2 ? 1 : -1) * pow(10, i - 3));
    nn_optimizer o;
    cr_assert_eq(nn_optimizer_init(&o, NN_OPTIM_ADAM, &w, 1), 0);
    for (int t = 0; t < steps; t++) {
        nn_tensor_upload(nn_tensor_grad(w), g);
        nn_optimizer_step(&o, (nn_real)lr);
    }
    nn_real want[N];
    for (int i = 0; i < N; i++) want[i] = (nn_real)(w0[i] - steps * lr * g[i] / (fabs(g[i]) + (double)o.eps));
    tu_assert_close(w->data, want, N, 1e-6, 1e-5, "adam closed form");
    nn_optimizer_free(&o);
    nn_tensor_unref(w);
}

Test(optim, skips_parameters_without_gradient_and_zeroes_gradients) {
    nn_tensor *ws[2] = {param(5), param(6)};
    nn_real before[N];
    for (int i = 0; i < N; i++) before[i] = ws[1]->data[i];
    for (int kind = 0; kind < 2; kind++) {
        nn_optimizer o;
        cr_assert_eq(nn_optimizer_init(&o, (nn_optim_kind)kind, ws, 2), 0);
        cr_assert_eq(nn_tensor_fill(nn_tensor_grad(ws[0]), 1), 0);
        cr_assert_eq(nn_optimizer_step(&o, (nn_real)0.1), 0, "%s", nn_last_error());
        cr_assert_null(ws[1]->grad);
        tu_assert_close(ws[1]->data, before, N, 0, 0, "parameter without gradient unchanged");
        nn_real zero[N] = {0};
        tu_assert_close(o.state1[1]->data, zero, N, 0, 0, "its state unchanged");
        cr_assert_eq(nn_optimizer_zero_grad(&o), 0);
        tu_assert_close(ws[0]->grad->data, zero, N, 0, 0, "zero_grad");
        cr_assert_null(ws[1]->grad, "zero_grad creates no gradient");
        nn_optimizer_free(&o);
        cr_assert_null(o.params);
    }
    nn_tensor_unref(ws[0]), nn_tensor_unref(ws[1]);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(optim, init_rejects_missing_parameter) {
    nn_tensor *ws[2] = {param(7), NULL};
    nn_optimizer o;
    cr_assert_eq(nn_optimizer_init(&o, NN_OPTIM_ADAM, ws, 2), -1);
    cr_assert(strstr(nn_last_error(), "optimizer: parameter 1 is missing"), "message: %s", nn_last_error());
    nn_tensor_unref(ws[0]);
    cr_assert_eq(nn_tensor_live_count(), 0, "init released what it took");
}

Test(optim, lr_schedules_follow_their_formulas) {
    const double base = 0.002, gamma = 0.1, minf = 0.05;
    const long size = 20000, total = 1000;
    nn_lr_schedule c = {.kind = NN_LR_CONSTANT, .base = base};
    nn_lr_schedule s = {.kind = NN_LR_STEP, .base = base, .step_size = size, .gamma = gamma};
    nn_lr_schedule k = {.kind = NN_LR_COSINE, .base = base, .total_steps = total, .min_factor = minf};
    cr_assert_eq(nn_lr_at(&c, 0), base);
    cr_assert_eq(nn_lr_at(&c, 123456), base);
    /* step decay: base * gamma^floor(step / step_size) */
    const long at[5] = {0, size - 1, size, 2 * size - 1, 2 * size};
    const int exponent[5] = {0, 0, 1, 1, 2};
    for (int i = 0; i < 5; i++) {
        double want = base;
        for (int e = 0; e < exponent[i]; e++) want *= gamma;
        cr_assert(fabs(nn_lr_at(&s, at[i]) - want) <= 1e-15, "step decay at %ld: %g, expected %g", at[i],
                  nn_lr_at(&s, at[i]), want);
    }
    /* cosine: (1 + cos(pi t / T)) / 2 is 1 at t = 0, 1/2 at T/2, 0 at T (and stays) */
    const long kt[4] = {0, total / 2, total, 3 * total};
    const double frac[4] = {1, 0.5, 0, 0};
    for (int i = 0; i < 4; i++) {
        double want = base * (minf + (1 - minf) * frac[i]);
        cr_assert(fabs(nn_lr_at(&k, kt[i]) - want) <= 1e-15, "cosine at %ld: %g, expected %g", kt[i],
                  nn_lr_at(&k, kt[i]), want);
    }
    double quarter = base * (minf + (1 - minf) * 0.5 * (1 + cos(M_PI / 4)));
    cr_assert(fabs(nn_lr_at(&k, total / 4) - quarter) <= 1e-15);
    cr_assert(nn_lr_at(&k, 400) < nn_lr_at(&k, 300), "cosine decreases");
}
