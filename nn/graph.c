#include "graph.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

void nn_graph_init(nn_graph *g, int training) {
    memset(g, 0, sizeof *g);
    g->recording = training;
    g->training = training;
    g->dropout_seed = 0x5EED;
}

static void node_release(nn_node *n) {
    nn_tensor_unref(n->out);
    for (int i = 0; i < NN_NODE_MAX_IN; i++) nn_tensor_unref(n->in[i]);
    for (int i = 0; i < NN_NODE_MAX_AUX; i++) nn_tensor_unref(n->aux[i]);
    memset(n, 0, sizeof *n);
}

void nn_graph_clear(nn_graph *g) {
    for (int i = g->n_nodes - 1; i >= 0; i--) node_release(&g->nodes[i]);
    g->n_nodes = 0;
}

void nn_graph_free(nn_graph *g) {
    nn_graph_clear(g);
    free(g->nodes);
    g->nodes = NULL;
    g->cap_nodes = 0;
}

int nn_graph_wants(const nn_graph *g, const nn_tensor *a, const nn_tensor *b,
                   const nn_tensor *c, const nn_tensor *d) {
    if (!g || !g->recording) return 0;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad) ||
           (d && d->requires_grad);
}

nn_node *nn_graph_record(nn_graph *g, const char *op, nn_backward_fn backward, nn_tensor *out,
                         nn_tensor *in0, nn_tensor *in1, nn_tensor *in2, nn_tensor *in3) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        nn_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            nn_fail("graph: out of host memory recording %s", op);
            return NULL;
        }
        memset(nodes + g->cap_nodes, 0, (size_t)(cap - g->cap_nodes) * sizeof *nodes);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    nn_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = backward;
    n->out = nn_tensor_ref(out);
    n->in[0] = nn_tensor_ref(in0);
    n->in[1] = nn_tensor_ref(in1);
    n->in[2] = nn_tensor_ref(in2);
    n->in[3] = nn_tensor_ref(in3);
    out->requires_grad = 1;
    out->is_leaf = 0;
    return n;
}

int nn_graph_backward(nn_graph *g, nn_tensor *loss) {
    if (!loss) return nn_fail("backward: no loss (the forward pass failed)");
    if (loss->numel != 1) return nn_fail("backward: the loss must have 1 element, it has %zu", loss->numel);
    return nn_graph_backward_from(g, loss, NULL);
}

int nn_graph_backward_from(nn_graph *g, nn_tensor *out, const nn_tensor *dout) {
    if (!out) return nn_fail("backward: no output (the forward pass failed)");
    if (!out->requires_grad) return nn_fail("backward: the output does not depend on any parameter");
    nn_tensor *seed = nn_tensor_grad(out);
    if (!seed || (dout ? nn_tensor_copy(seed, dout) : nn_tensor_fill(seed, 1))) return -1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        nn_node *n = &g->nodes[i];
        if (!n->out->grad) continue;  /* nothing downstream used this output */
        if (n->backward(n)) return nn_fail_context("backward of %s", n->op);
        /* the output's gradient has been passed on: free it (not for leaves) */
        if (!n->out->is_leaf) {
            nn_tensor_unref(n->out->grad);
            n->out->grad = NULL;
        }
    }
    return 0;
}

const nn_backend *nn_op_backend(const nn_tensor *t, const char *op, size_t kernel_offset) {
    const nn_backend *be = nn_backend_of(t->device);
    if (!be) return NULL;
    void *fn;
    memcpy(&fn, (const char *)be + kernel_offset, sizeof fn);
    if (!fn) {
        nn_fail("op %s is not available on backend %s", op, be->name);
        return NULL;
    }
    return be;
}
