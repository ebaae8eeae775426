#include "maxpool2d.h"

#include "../nn/status.h"

nn_tensor *nn_maxpool2d(nn_graph *g, nn_tensor *x, int k, int stride) {
    (void)g; (void)x; (void)k; (void)stride; nn_fail("nn_maxpool2d: not implemented"); return NULL;
}

int maxpool2d_forward_cpu(nn_real *out, nn_real *argmax, const nn_real *in, const nn_pool_shape *s) {
    (void)out; (void)argmax; (void)in; (void)s; return nn_fail("maxpool2d_forward_cpu: not implemented");
}

int maxpool2d_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *argmax, const nn_pool_shape *s) {
    (void)din; (void)dout; (void)argmax; (void)s; return nn_fail("maxpool2d_backward_cpu: not implemented");
}
