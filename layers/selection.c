#include "selection.h"

#include "../nn/status.h"

nn_tensor *nn_selection(nn_graph *g, nn_tensor *prob, nn_tensor *left, int dmin) {
    (void)g; (void)prob; (void)left; (void)dmin; nn_fail("nn_selection: not implemented"); return NULL;
}

int selection_forward_cpu(nn_real *right, const nn_real *prob, const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    (void)right; (void)prob; (void)left; (void)n; (void)c; (void)h; (void)w; (void)d; (void)dmin; return nn_fail("selection_forward_cpu: not implemented");
}

int selection_backward_cpu(nn_real *dprob, nn_real *dleft, const nn_real *dright, const nn_real *prob, const nn_real *left, int n, int c, int h, int w, int d, int dmin) {
    (void)dprob; (void)dleft; (void)dright; (void)prob; (void)left; (void)n; (void)c; (void)h; (void)w; (void)d; (void)dmin; return nn_fail("selection_backward_cpu: not implemented");
}
