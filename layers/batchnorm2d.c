#include "batchnorm2d.h"

#include "../nn/status.h"

nn_tensor *nn_batchnorm2d(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta, nn_tensor *running_mean, nn_tensor *running_var, nn_real momentum, nn_real eps) {
    (void)g; (void)x; (void)gamma; (void)beta; (void)running_mean; (void)running_var; (void)momentum; (void)eps; nn_fail("nn_batchnorm2d: not implemented"); return NULL;
}

int batchnorm_forward_train_cpu(nn_real *out, nn_real *save_mean, nn_real *save_invstd, nn_real *running_mean, nn_real *running_var, const nn_real *in, const nn_real *gamma, const nn_real *beta, int n, int c, int hw, nn_real momentum, nn_real eps) {
    (void)out; (void)save_mean; (void)save_invstd; (void)running_mean; (void)running_var; (void)in; (void)gamma; (void)beta; (void)n; (void)c; (void)hw; (void)momentum; (void)eps; return nn_fail("batchnorm_forward_train_cpu: not implemented");
}

int batchnorm_backward_cpu(nn_real *din, nn_real *dgamma, nn_real *dbeta, const nn_real *dout, const nn_real *in, const nn_real *gamma, const nn_real *save_mean, const nn_real *save_invstd, int n, int c, int hw) {
    (void)din; (void)dgamma; (void)dbeta; (void)dout; (void)in; (void)gamma; (void)save_mean; (void)save_invstd; (void)n; (void)c; (void)hw; return nn_fail("batchnorm_backward_cpu: not implemented");
}
