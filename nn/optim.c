#include "optim.h"

#include "status.h"

int nn_optimizer_init(nn_optimizer *o, nn_optim_kind kind, nn_tensor **params, int n) {
    (void)o; (void)kind; (void)params; (void)n;
    return nn_fail("nn_optimizer_init: not implemented");
}
int nn_optimizer_step(nn_optimizer *o, nn_real lr) { (void)o; (void)lr; return nn_fail("nn_optimizer_step: not implemented"); }
int nn_optimizer_zero_grad(nn_optimizer *o) { (void)o; return nn_fail("nn_optimizer_zero_grad: not implemented"); }
void nn_optimizer_free(nn_optimizer *o) { (void)o; }
double nn_lr_at(const nn_lr_schedule *s, long step) { (void)step; return s->base; }
int sgd_step_cpu(nn_real *w, nn_real *velocity, const nn_real *grad, size_t n, nn_real lr,
                 nn_real momentum, nn_real weight_decay) {
    (void)w; (void)velocity; (void)grad; (void)n; (void)lr; (void)momentum; (void)weight_decay;
    return nn_fail("sgd: not implemented");
}
int adam_step_cpu(nn_real *w, nn_real *m, nn_real *v, const nn_real *grad, size_t n, nn_real lr,
                  nn_real beta1, nn_real beta2, nn_real eps, nn_real weight_decay, long step) {
    (void)w; (void)m; (void)v; (void)grad; (void)n; (void)lr; (void)beta1; (void)beta2; (void)eps;
    (void)weight_decay; (void)step;
    return nn_fail("adam: not implemented");
}
