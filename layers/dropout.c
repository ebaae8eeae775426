#include "dropout.h"

#include "../nn/status.h"

nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, nn_real p) {
    (void)g; (void)x; (void)p; nn_fail("nn_dropout: not implemented"); return NULL;
}

int dropout_forward_cpu(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p, uint64_t seed) {
    (void)out; (void)mask; (void)in; (void)n; (void)p; (void)seed; return nn_fail("dropout_forward_cpu: not implemented");
}

int dropout_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n) {
    (void)din; (void)dout; (void)mask; (void)n; return nn_fail("dropout_backward_cpu: not implemented");
}
