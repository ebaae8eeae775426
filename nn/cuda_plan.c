/* Host-side planning for the CUDA backend (see cuda_plan.h). Plain C: builds and is
 * tested without CUDA. */
#include "cuda_plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_alloc.h"
#include "status.h"

/* ---- settings ---------------------------------------------------------------------- */

static nn_precision precision = NN_PRECISION_FP32;
static int deterministic = 0;
static size_t workspace_limit = 0;

const char *nn_precision_name(nn_precision p) {
    switch (p) {
    case NN_PRECISION_FP32: return "fp32";
    case NN_PRECISION_TF32: return "tf32";
    case NN_PRECISION_BF16: return "bf16";
    }
    return "unknown";
}

int nn_cuda_set_precision(const char *name) {
    if (!name) return nn_fail("--precision: no name given (expected fp32, tf32 or bf16)");
    if (!strcmp(name, "fp32")) {
        precision = NN_PRECISION_FP32;
        return 0;
    }
    if (!strcmp(name, "tf32")) {
        precision = NN_PRECISION_TF32;
        return 0;
    }
    if (!strcmp(name, "bf16")) {
        precision = NN_PRECISION_BF16;
        return 0;
    }
    return nn_fail("--precision: unknown precision '%s' (expected fp32, tf32 or bf16)", name);
}

nn_precision nn_cuda_precision(void) { return precision; }

int nn_cuda_set_deterministic(int on) {
    deterministic = on != 0;
    return 0;
}

int nn_cuda_deterministic(void) { return deterministic; }

void nn_cuda_set_workspace_limit(size_t bytes) { workspace_limit = bytes; }

size_t nn_cuda_workspace_limit(void) { return workspace_limit; }

/* ---- the algorithm cache ------------------------------------------------------------ */

struct nn_algo_cache_entry {
    nn_conv_key key;
    nn_algo_choice choice;
};

void nn_conv_key_make(nn_conv_key *k, const nn_conv_shape *s, nn_conv_dir dir, nn_precision prec,
                      int det) {
    memset(k, 0, sizeof *k);
    k->shape = *s;
    k->dir = (int)dir;
    k->precision = (int)prec;
    k->deterministic = det != 0;
}

int nn_conv_key_equal(const nn_conv_key *a, const nn_conv_key *b) {
    const nn_conv_shape *x = &a->shape, *y = &b->shape;
    return x->n == y->n && x->c_in == y->c_in && x->h_in == y->h_in && x->w_in == y->w_in &&
           x->c_out == y->c_out && x->h_out == y->h_out && x->w_out == y->w_out && x->kh == y->kh &&
           x->kw == y->kw && x->stride == y->stride && x->pad == y->pad && x->dilation == y->dilation &&
           a->dir == b->dir && a->precision == b->precision && a->deterministic == b->deterministic;
}

void nn_algo_cache_init(nn_algo_cache *c) { memset(c, 0, sizeof *c); }

void nn_algo_cache_free(nn_algo_cache *c) {
    free(c->entries);
    memset(c, 0, sizeof *c);
}

/* A network has a few dozen geometries: a linear scan is cheaper than any hashing. */
static struct nn_algo_cache_entry *cache_lookup(nn_algo_cache *c, const nn_conv_key *k) {
    for (int i = 0; i < c->n; i++)
        if (nn_conv_key_equal(&c->entries[i].key, k)) return &c->entries[i];
    return NULL;
}

const nn_algo_choice *nn_algo_cache_find(nn_algo_cache *c, const nn_conv_key *k) {
    struct nn_algo_cache_entry *e = cache_lookup(c, k);
    if (e) c->hits++;
    else c->misses++;
    return e ? &e->choice : NULL;
}

int nn_algo_cache_put(nn_algo_cache *c, const nn_conv_key *k, const nn_algo_choice *choice) {
    struct nn_algo_cache_entry *e = cache_lookup(c, k);
    if (!e) {
        if (c->n == c->cap) {
            int cap = c->cap ? c->cap * 2 : 32;
            struct nn_algo_cache_entry *ne = realloc(c->entries, (size_t)cap * sizeof *ne);
            if (!ne) return nn_fail("cuDNN algorithm cache: out of host memory");
            c->entries = ne;
            c->cap = cap;
        }
        e = &c->entries[c->n++];
        e->key = *k;
    }
    e->choice = *choice;
    return 0;
}

/* ---- the rules -------------------------------------------------------------------- */

int nn_plan_choose(const nn_algo_perf *cands, int n, size_t cap, int det, int tensor_op_allowed,
                   nn_algo_choice *out) {
    int best = -1, failed = 0, too_big = 0, nondet = 0, tensor = 0;
    for (int i = 0; i < n; i++) {
        const nn_algo_perf *c = &cands[i];
        if (!c->ok) {
            failed++;
            continue;
        }
        if (c->workspace > cap) {
            too_big++;
            continue;
        }
        if (det && !c->deterministic) {
            nondet++;
            continue;
        }
        if (!tensor_op_allowed && c->tensor_op) {
            tensor++;
            continue;
        }
        if (best < 0 || c->time_ms < cands[best].time_ms) best = i;
    }
    if (best < 0) {
        char capbuf[32];
        return nn_fail("no usable cuDNN algorithm among %d measured: %d failed, %d need more "
                       "workspace than the cap of %s, %d are not deterministic%s, %d use tensor-op "
                       "math%s", n, failed, too_big, nn_format_bytes(cap, capbuf, sizeof capbuf),
                       nondet, det ? " (deterministic mode is on)" : "", tensor,
                       tensor_op_allowed ? "" : " (precision fp32 excludes them)");
    }
    out->algo = cands[best].algo;
    out->workspace = cands[best].workspace;
    out->math_type = cands[best].math_type;
    out->time_ms = cands[best].time_ms;
    out->fallback = 0;
    out->zero_algo = -1;
    out->zero_math_type = 0;
    return 0;
}

int nn_plan_decide(const nn_algo_perf *cands, int n, size_t cap, int det, int tensor_op_allowed,
                   int (*ensure_workspace)(size_t bytes, void *ctx), void *ctx, nn_algo_choice *out) {
    if (nn_plan_choose(cands, n, cap, det, tensor_op_allowed, out)) return -1;
    nn_algo_choice zero;
    int have_zero = nn_plan_choose(cands, n, 0, det, tensor_op_allowed, &zero) == 0;
    if (!have_zero) nn_clear_error();
    if (out->workspace != 0 && ensure_workspace(out->workspace, ctx) != 0) {
        /* Out of memory for the workspace: the fastest algorithm that needs none. */
        if (!have_zero)
            return nn_fail_context("the workspace could not be allocated, and no algorithm runs without one");
        nn_clear_error();
        *out = zero;
        out->fallback = 1;
    }
    out->zero_algo = have_zero ? zero.algo : -1;
    out->zero_math_type = have_zero ? zero.math_type : 0;
    return 0;
}

size_t nn_plan_workspace_cap(size_t available, size_t user_limit) {
    if (user_limit) return user_limit;
    size_t cap = available / 8;
    return cap < NN_PLAN_WORKSPACE_MAX ? cap : NN_PLAN_WORKSPACE_MAX;
}

size_t nn_plan_find_workspace(const size_t *needs, int n, size_t cap) {
    size_t ws = 0;
    for (int i = 0; i < n; i++)
        if (needs[i] != SIZE_MAX && needs[i] <= cap && needs[i] > ws) ws = needs[i];
    return ws;
}
