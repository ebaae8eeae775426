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
 * the initial seed. Data parallelism: with g->sample_offset = s (nn/graph.h) and x's
 * first dimension the batch, element i of x draws index i + s * (numel / N), the
 * index it has in the global batch, so K processes holding consecutive parts of a batch
 * draw together the mask one process holding all of it draws (the kernel gets the seed
 * seed + 0x9E3779B97F4A7C15 * s * (numel / N): nn_hash_uniform(seed, i + k) ==
 * nn_hash_uniform(seed + 0x9E3779B97F4A7C15 * k, i), nn/backend.h).
 * Backward: dx += dy * mask. Errors: p outside [0, 1), a negative sample_offset. */
nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, nn_real p);

/* CPU kernels: mask[i] = (nn_hash_uniform(seed, i) < p) ? 0 : 1/(1-p), out = in * mask
 * over n elements; din += dout * mask. */
int dropout_forward_cpu(nn_real *out, nn_real *mask, const nn_real *in, size_t n, nn_real p,
                        uint64_t seed);
int dropout_backward_cpu(nn_real *din, const nn_real *dout, const nn_real *mask, size_t n);

#endif
