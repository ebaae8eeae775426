/* Optimizers and learning-rate schedules.
 *
 * SGD with momentum (the paper's, Xie et al. 2016 sec. 4; PyTorch torch.optim.SGD form):
 *   g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * v
 * Adam (Kingma & Ba 2015, algorithm 1; torch.optim.Adam form, L2 weight decay):
 *   g = grad + weight_decay * w;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * State tensors live on the parameters' device, one per parameter and role.
 */
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include "tensor.h"

typedef enum { NN_OPTIM_SGD = 0, NN_OPTIM_ADAM = 1 } nn_optim_kind;

typedef struct nn_optimizer {
    nn_optim_kind kind;
    nn_real momentum;            /* SGD */
    nn_real beta1, beta2, eps;   /* Adam */
    nn_real weight_decay;
    long step;                   /* updates done so far */
    int n_params;
    nn_tensor **params;          /* referenced */
    nn_tensor **state1;          /* SGD velocity / Adam first moment, zero at start */
    nn_tensor **state2;          /* Adam second moment (NULL entries for SGD) */
} nn_optimizer;

/* Creates the state (zeros, on each parameter's device, of its shape) for n
 * parameters and takes a reference to each. Defaults: momentum 0.9, beta1 0.9,
 * beta2 0.999, eps 1e-8, weight decay 0 (set the fields after init to change them).
 * Errors: unknown kind, n < 0, a NULL parameter, out of memory (o is left freed). */
int nn_optimizer_init(nn_optimizer *o, nn_optim_kind kind, nn_tensor **params, int n);

/* One update of every parameter that has a gradient (p->grad != NULL; the others are
 * skipped, their state untouched), with learning rate lr, through the backend's
 * sgd_step/adam_step kernels. Increments o->step first, so Adam's bias correction uses
 * t = 1 on the first step. The step count is shared by all parameters (PyTorch keeps
 * one per parameter; they agree whenever every parameter has a gradient every step).
 * Errors: the kernel is missing on a parameter's backend, or fails. */
int nn_optimizer_step(nn_optimizer *o, nn_real lr);

/* Sets every existing parameter gradient to zero (gradients are not created). */
int nn_optimizer_zero_grad(nn_optimizer *o);

/* Drops the parameter references and the state; o is zeroed (safe to call twice). */
void nn_optimizer_free(nn_optimizer *o);

/* Learning rate at a step (0-based). */
typedef enum { NN_LR_CONSTANT = 0, NN_LR_STEP = 1, NN_LR_COSINE = 2 } nn_lr_kind;
typedef struct nn_lr_schedule {
    nn_lr_kind kind;
    double base;        /* lr at step 0 */
    long step_size;     /* NN_LR_STEP: multiply by gamma every step_size steps (paper: 20000) */
    double gamma;       /* NN_LR_STEP: 0.1 in the paper */
    long total_steps;   /* NN_LR_COSINE: base * (min + (1-min)(1+cos(pi t/T))/2) */
    double min_factor;  /* NN_LR_COSINE: floor as a fraction of base */
} nn_lr_schedule;

/* The learning rate at `step` (0-based; negative counts as 0):
 *   NN_LR_CONSTANT: base
 *   NN_LR_STEP:     base * gamma^floor(step / step_size)  (torch StepLR; step_size <= 0: base)
 *   NN_LR_COSINE:   base * (min + (1-min) * (1 + cos(pi * t / T)) / 2), t = min(step, T),
 *                   T = total_steps (torch CosineAnnealingLR with eta_min = min*base;
 *                   stays at the floor after T; T <= 0: base) */
double nn_lr_at(const nn_lr_schedule *s, long step);

/* CPU kernels (nn/backend.h): one update of n parameters by the formulas at the top
 * of this file; step is Adam's t (1 on the first update). */
int sgd_step_cpu(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n, nn_real lr,
                 nn_real momentum, nn_real weight_decay);
int adam_step_cpu(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n, nn_real lr,
                  nn_real beta1, nn_real beta2, nn_real eps, nn_real weight_decay, long step);

#endif
