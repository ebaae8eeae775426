#ifndef LAYERS_DROPOUT_H
#define LAYERS_DROPOUT_H

#include "../nn/graph.h"

/* Inverted dropout (Srivastava et al. 2014): in training mode (g->training) each
 * element is zeroed with probability p and the rest scaled by 1/(1-p); in inference
 * mode, or p == 0, it returns a new reference to x. The mask comes from
 * nn_hash_uniform(g->dropout_seed, i), and the seed advances per call, so a run is
 * reproducible from the seed. Errors: p outside [0, 1). */
nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, nn_real p);

int dropout_forward_cpu(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p,
                        uint64_t seed);
int dropout_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n);

#endif
