#include "graph.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "status.h"

/* ---- profile -------------------------------------------------------------- */

#define PROFILE_MAX 64
static struct {
    const char *op;
    long calls;
    double forward, backward;
} profile[PROFILE_MAX];
static int profile_on, profile_n;
static double profile_last;

static double now_s(nn_device device) {
    const nn_backend *be = nn_backend_of(device);
    if (be) be->synchronize();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int profile_slot(const char *op) {
    for (int i = 0; i < profile_n; i++)
        if (!strcmp(profile[i].op, op)) return i;
    if (profile_n == PROFILE_MAX) return PROFILE_MAX - 1;
    profile[profile_n].op = op;
    return profile_n++;
}

void nn_profile_enable(int on) {
    profile_on = on;
    profile_last = 0;
}

void nn_profile_reset(void) {
    memset(profile, 0, sizeof profile);
    profile_n = 0;
    profile_last = 0;
}

static int profile_cmp(const void *a, const void *b) {
    const double ta = profile[*(const int *)a].forward + profile[*(const int *)a].backward;
    const double tb = profile[*(const int *)b].forward + profile[*(const int *)b].backward;
    return ta < tb ? 1 : ta > tb ? -1 : 0;
}

void nn_profile_print(FILE *out, int steps) {
    int order[PROFILE_MAX];
    double total = 0;
    for (int i = 0; i < profile_n; i++) order[i] = i, total += profile[i].forward + profile[i].backward;
    qsort(order, (size_t)profile_n, sizeof *order, profile_cmp);
    if (steps < 1) steps = 1;
    fprintf(out, "%-22s %6s %12s %12s %7s\n", "op", "calls", "forward ms", "backward ms", "share");
    for (int k = 0; k < profile_n; k++) {
        const int i = order[k];
        fprintf(out, "%-22s %6ld %12.2f %12.2f %6.1f%%\n", profile[i].op, profile[i].calls / steps,
                1e3 * profile[i].forward / steps, 1e3 * profile[i].backward / steps,
                100 * (profile[i].forward + profile[i].backward) / total);
    }
}

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
    if (profile_on) {
        const double t = now_s(out->device);
        const int i = profile_slot(op);
        if (profile_last > 0) profile[i].forward += t - profile_last;
        profile[i].calls++;
        profile_last = t;
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
        const double t0 = profile_on ? now_s(n->out->device) : 0;
        if (n->backward(n)) return nn_fail_context("backward of %s", n->op);
        if (profile_on) {
            profile[profile_slot(n->op)].backward += now_s(n->out->device) - t0;
            profile_last = 0; /* the next forward op starts a new chain */
        }
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
