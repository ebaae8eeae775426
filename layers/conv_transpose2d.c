#include "conv_transpose2d.h"

#include "../nn/status.h"

nn_tensor *nn_conv_transpose2d(nn_graph *g, nn_tensor *x, nn_tensor *weight, nn_tensor *bias, int stride, int pad) {
    (void)g; (void)x; (void)weight; (void)bias; (void)stride; (void)pad; nn_fail("nn_conv_transpose2d: not implemented"); return NULL;
}

void nn_bilinear_kernel(nn_real *weight, int channels, int k) {
    (void)weight; (void)channels; (void)k;
}
