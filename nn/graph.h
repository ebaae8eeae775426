/* Reverse-mode autograd: a tape of (op, saved tensors, backward function).
 *
 * Every op in layers/ takes an nn_graph *. When the graph records (training), the op
 * appends a node that holds references to the tensors its backward needs; when it
 * does not (g == NULL or g->recording == 0, inference), nothing is kept, and each
 * activation is freed as soon as the model code drops its reference.
 *
 * nn_graph_backward() seeds d(loss)/d(loss) = 1 and walks the tape in reverse; each
 * node's backward ACCUMULATES into the gradients of its inputs that require them.
 * Gradients of intermediate tensors are freed as soon as their node has run; leaf
 * gradients (parameters) stay until the optimizer has used them.
 *
 * Error handling: an op given a NULL input returns NULL at once, so a failure
 * deep in a forward pass propagates to the end like a NaN; check the final tensor.
 */
#ifndef NN_GRAPH_H
#define NN_GRAPH_H

#include <stdio.h>

#include "tensor.h"

#define NN_NODE_MAX_IN 4
#define NN_NODE_MAX_AUX 2

typedef struct nn_node nn_node;

/* Backward of one node: reads node->out->grad, accumulates into the inputs' grads
 * (nn_tensor_grad(node->in[i])) where node->in[i]->requires_grad. */
typedef int (*nn_backward_fn)(nn_node *node);

struct nn_node {
    const char *op;                       /* "conv2d", "relu", ... */
    nn_backward_fn backward;
    nn_tensor *out;
    nn_tensor *in[NN_NODE_MAX_IN];        /* referenced; NULL where unused */
    nn_tensor *aux[NN_NODE_MAX_AUX];      /* op-owned saved state (argmax, mask, ...) */
    int iarg[10];                         /* op parameters (shapes, stride, ...) */
    double farg[4];
    const void *ptr;                      /* op's own pointer (batchnorm2d: the collective) */
};

/* Data-parallel training (train/dist.h): the layers whose result depends on the whole
 * batch call this to combine the parts of it that the other processes hold. */
typedef struct nn_collective {
    int size; /* processes holding parts of the batch (1: this one holds all of it) */
    /* Sums n doubles element-wise over every process, in place, the result the same on
     * all of them. buf is memory of `device` (host memory for NN_CPU, device memory for
     * NN_CUDA: the sum is queued on the backend's stream). Every process must make the
     * same calls, in the same order, with the same n. 0, or -1 + nn_fail naming the
     * library call, file and line. */
    int (*sum_f64)(void *ctx, double *buf, size_t n, nn_device device);
    void *ctx;
} nn_collective;

typedef struct nn_graph {
    int recording;     /* 1: training (record the tape), 0: inference */
    int training;      /* layer mode: dropout active, batch-norm batch statistics */
    nn_node *nodes;
    int n_nodes, cap_nodes;
    unsigned long long dropout_seed;  /* advanced by every dropout op */
    /* Data parallelism (both 0/NULL after nn_graph_init: the batch is all here).
     * sample_offset: the index, in the global batch, of this process's first sample;
     * dropout draws the mask elements of those samples (layers/dropout.h).
     * collective: when not NULL and size > 1, batch normalisation in training mode uses
     * the statistics of the global batch (layers/batchnorm2d.h). */
    long sample_offset;
    const nn_collective *collective;
} nn_graph;

/* A graph in training mode (recording) or inference mode (nothing recorded). */
void nn_graph_init(nn_graph *g, int training);

/* Drops every reference the tape holds; the graph can record a new step. */
void nn_graph_clear(nn_graph *g);

/* Frees the tape itself (after nn_graph_clear). */
void nn_graph_free(nn_graph *g);

/* 1 when an op with these inputs must record a node: the graph records and one
 * of the (non-NULL) inputs requires a gradient. */
int nn_graph_wants(const nn_graph *g, const nn_tensor *a, const nn_tensor *b,
                   const nn_tensor *c, const nn_tensor *d);

/* Appends a node for `out` with up to 4 inputs (NULL allowed), taking references to
 * out and the inputs, and marks out as requiring a gradient. Returns the node so the
 * op can fill aux/iarg/farg, or NULL + nn_fail when out of memory. */
nn_node *nn_graph_record(nn_graph *g, const char *op, nn_backward_fn backward, nn_tensor *out,
                         nn_tensor *in0, nn_tensor *in1, nn_tensor *in2, nn_tensor *in3);

/* Backpropagates from a scalar (1-element) `loss`: seeds its gradient with 1 and runs
 * the tape in reverse. Returns 0, or -1 with the failing op named in the message. */
int nn_graph_backward(nn_graph *g, nn_tensor *loss);

/* Backpropagates from any output with a given upstream gradient dout (same numel;
 * NULL means all ones): the vector-Jacobian product used by the gradient checks. */
int nn_graph_backward_from(nn_graph *g, nn_tensor *out, const nn_tensor *dout);

/* Per-op profile (deep3d bench --profile). When enabled, the forward time of an op is
 * measured as the time since the previous recorded op ended (ops run one after the
 * other, and each records its node last), the backward time around its backward call.
 * Only recording graphs are profiled. The device is synchronised at each boundary. */
void nn_profile_enable(int on);
void nn_profile_reset(void);
/* Prints "op, calls, forward ms, backward ms, share" per op name, sorted by total time,
 * with `steps` dividing the totals (ms per step). */
void nn_profile_print(FILE *out, int steps);

/* Drops the caller's reference to `old` and returns `next`: x = nn_then(x, op(g, x)).
 * The NULL of a failed op is passed through. */
static inline nn_tensor *nn_then(nn_tensor *old, nn_tensor *next) {
    nn_tensor_unref(old);
    return next;
}

/* The backend of t, failing with "op X is not available on backend Y" when the
 * kernel pointer `fn` is NULL. Usage in ops:
 *   const nn_backend *be = nn_op_backend(x, "relu", offsetof(nn_backend, relu_forward)); */
const nn_backend *nn_op_backend(const nn_tensor *t, const char *op, size_t kernel_offset);

#endif
