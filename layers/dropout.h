#ifndef LAYERS_DROPOUT_H
#define LAYERS_DROPOUT_H

#include "../nn/graph.h"

/* Inverted dropout (Srivastava et al. 2014; torch.nn.Dropout semantics): x of any
 * shape -> y of the same shape. In training mode (g != NULL and g->training) each
 * element is zeroed with probability p and the rest scaled by 1/(1-p); in inference
 * mode, or p == 0, it returns a new reference to x (no copy, nothing recorded).
 * Mask: element i is kept when nn_hash_uniform(seed, i) >= p, seed = g->dropout_seed;
 * the seed then advances (seed * 6364136223846793005 + 1442695040888963407, Knuth's
 * MMIX LCG), so successive calls draw different masks and a run is reproducible from
 * the initial seed. Backward: dx += dy * mask. Errors: p outside [0, 1). */
nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, nn_real p);

/* CPU kernels: mask[i] = (nn_hash_uniform(seed, i) < p) ? 0 : 1/(1-p), out = in * mask
 * over n elements; din += dout * mask. */
int dropout_forward_cpu(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p,
                        uint64_t seed);
int dropout_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n);

#endif
