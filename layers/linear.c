#include "linear.h"

#include "../nn/status.h"

nn_tensor *nn_linear(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias) {
    (void)g; (void)x; (void)weight; (void)bias; nn_fail("nn_linear: not implemented"); return NULL;
}

int linear_forward_cpu(nn_real *y, const nn_real *x, const nn_real *w, const nn_real *b, int n, int in, int out) {
    (void)y; (void)x; (void)w; (void)b; (void)n; (void)in; (void)out; return nn_fail("linear_forward_cpu: not implemented");
}

int linear_backward_cpu(nn_real *dx, nn_real *dw, nn_real *db, const nn_real *dy, const nn_real *x, const nn_real *w, int n, int in, int out) {
    (void)dx; (void)dw; (void)db; (void)dy; (void)x; (void)w; (void)n; (void)in; (void)out; return nn_fail("linear_backward_cpu: not implemented");
}
