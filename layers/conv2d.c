#include "conv2d.h"

#include "../nn/status.h"

nn_tensor *nn_conv2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias, int stride, int pad, int dilation) {
    (void)g; (void)x; (void)weight; (void)bias; (void)stride; (void)pad; (void)dilation; nn_fail("nn_conv2d: not implemented"); return NULL;
}

int nn_conv_shape_make(nn_conv_shape *s, const nn_tensor *x, const nn_tensor *weight, int stride, int pad, int dilation) {
    (void)s; (void)x; (void)weight; (void)stride; (void)pad; (void)dilation; return nn_fail("nn_conv_shape_make: not implemented");
}

int conv2d_forward_cpu(nn_real *out, const nn_real *in, const nn_real *weight, const nn_real *bias, const nn_conv_shape *s) {
    (void)out; (void)in; (void)weight; (void)bias; (void)s; return nn_fail("conv2d_forward_cpu: not implemented");
}

int conv2d_backward_data_cpu(nn_real *din, const nn_real *dout, const nn_real *weight, const nn_conv_shape *s) {
    (void)din; (void)dout; (void)weight; (void)s; return nn_fail("conv2d_backward_data_cpu: not implemented");
}

int conv2d_backward_weight_cpu(nn_real *dweight, nn_real *dbias, const nn_real *dout, const nn_real *in, const nn_conv_shape *s) {
    (void)dweight; (void)dbias; (void)dout; (void)in; (void)s; return nn_fail("conv2d_backward_weight_cpu: not implemented");
}

int bias_forward_cpu(nn_real *out, const nn_real *bias, int n, int c, int hw) {
    (void)out; (void)bias; (void)n; (void)c; (void)hw; return nn_fail("bias_forward_cpu: not implemented");
}

int bias_backward_cpu(nn_real *dbias, const nn_real *dout, int n, int c, int hw) {
    (void)dbias; (void)dout; (void)n; (void)c; (void)hw; return nn_fail("bias_backward_cpu: not implemented");
}
