#include "optim.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h> /* sqrt of nn_real: sqrtf in the float build */

#include "graph.h" /* nn_op_backend */
#include "status.h"

/* ---- CPU kernels ------------------------------------------------------------ */

int sgd_step_cpu(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n, nn_real lr,
                 nn_real momentum, nn_real weight_decay) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        nn_real g = grad[i] + weight_decay * w[i];
        nn_real v = momentum * velocity[i] + g;
        velocity[i] = v;
        w[i] -= lr * v;
    }
    return 0;
}

int adam_step_cpu(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n, nn_real lr,
                  nn_real beta1, nn_real beta2, nn_real eps, nn_real weight_decay, long step) {
    /* bias corrections 1 - beta^t in double: beta2^t stays close to 1 for many steps */
    const nn_real bc1 = (nn_real)(1 - pow((double)beta1, (double)step));
    const nn_real bc2 = (nn_real)(1 - pow((double)beta2, (double)step));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        nn_real g = grad[i] + weight_decay * w[i];
        nn_real mi = beta1 * m[i] + (1 - beta1) * g;
        nn_real vi = beta2 * v[i] + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
    }
    return 0;
}

/* ---- optimizer ---------------------------------------------------------------- */

int nn_optimizer_init(nn_optimizer *o, nn_optim_kind kind, nn_tensor **params, int n) {
    memset(o, 0, sizeof *o);
    if (kind != NN_OPTIM_SGD && kind != NN_OPTIM_ADAM) return nn_fail("optimizer: unknown kind %d", (int)kind);
    if (n < 0 || (n > 0 && !params)) return nn_fail("optimizer: %d parameters given", n);
    o->kind = kind;
    o->momentum = (nn_real)0.9;
    o->beta1 = (nn_real)0.9;
    o->beta2 = (nn_real)0.999;
    o->eps = (nn_real)1e-8;
    o->weight_decay = 0;
    o->step = 0;
    o->n_params = n;
    size_t count = n > 0 ? (size_t)n : 1;
    o->params = calloc(count, sizeof *o->params);
    o->state1 = calloc(count, sizeof *o->state1);
    o->state2 = calloc(count, sizeof *o->state2);
    if (!o->params || !o->state1 || !o->state2) {
        nn_optimizer_free(o);
        return nn_fail("optimizer: out of host memory for %d parameters", n);
    }
    for (int i = 0; i < n; i++) {
        nn_tensor *p = params[i];
        if (!p) {
            nn_optimizer_free(o);
            return nn_fail("optimizer: parameter %d is missing", i);
        }
        o->params[i] = nn_tensor_ref(p);
        o->state1[i] = nn_tensor_zeros(p->device, p->ndim, p->shape);
        if (kind == NN_OPTIM_ADAM) o->state2[i] = nn_tensor_zeros(p->device, p->ndim, p->shape);
        if (!o->state1[i] || (kind == NN_OPTIM_ADAM && !o->state2[i])) {
            nn_fail_context("optimizer: state for parameter %d (%s)", i, p->name);
            nn_optimizer_free(o);
            return -1;
        }
    }
    return 0;
}

int nn_optimizer_step(nn_optimizer *o, nn_real lr) {
    o->step++;
    for (int i = 0; i < o->n_params; i++) {
        nn_tensor *p = o->params[i];
        if (!p->grad) continue;
        const nn_backend *be = o->kind == NN_OPTIM_SGD
            ? nn_op_backend(p, "sgd_step", offsetof(nn_backend, sgd_step))
            : nn_op_backend(p, "adam_step", offsetof(nn_backend, adam_step));
        int err = !be ||
                  (o->kind == NN_OPTIM_SGD
                       ? be->sgd_step(p->data, o->state1[i]->data, p->grad->data, p->numel, lr, o->momentum,
                                      o->weight_decay)
                       : be->adam_step(p->data, o->state1[i]->data, o->state2[i]->data, p->grad->data, p->numel,
                                       lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->step));
        if (err) return nn_fail_context("optimizer step, parameter %d (%s)", i, p->name);
    }
    return 0;
}

int nn_optimizer_zero_grad(nn_optimizer *o) {
    for (int i = 0; i < o->n_params; i++) {
        nn_tensor *p = o->params[i];
        if (p->grad && nn_tensor_fill(p->grad, 0))
            return nn_fail_context("zero_grad, parameter %d (%s)", i, p->name);
    }
    return 0;
}

void nn_optimizer_free(nn_optimizer *o) {
    for (int i = 0; i < o->n_params; i++) {
        if (o->params) nn_tensor_unref(o->params[i]);
        if (o->state1) nn_tensor_unref(o->state1[i]);
        if (o->state2) nn_tensor_unref(o->state2[i]);
    }
    free(o->params);
    free(o->state1);
    free(o->state2);
    memset(o, 0, sizeof *o);
}

/* ---- learning-rate schedules ---------------------------------------------------- */

double nn_lr_at(const nn_lr_schedule *s, long step) {
    if (step < 0) step = 0;
    switch (s->kind) {
    case NN_LR_STEP:
        if (s->step_size <= 0) return s->base;
        return s->base * pow(s->gamma, (double)(step / s->step_size));
    case NN_LR_COSINE: {
        if (s->total_steps <= 0) return s->base;
        double t = step < s->total_steps ? (double)step : (double)s->total_steps;
        double f = s->min_factor + (1 - s->min_factor) * 0.5 * (1 + cos(M_PI * t / (double)s->total_steps));
        return s->base * f;
    }
    case NN_LR_CONSTANT:
    default:
        return s->base;
    }
}
