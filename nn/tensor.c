#include "tensor.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static atomic_long live_tensors;

nn_tensor *nn_tensor_new(nn_device device, int ndim, const int *shape) {
    if (ndim < 1 || ndim > NN_MAX_DIMS) {
        nn_fail("tensor: %d dimensions requested, 1..%d supported", ndim, NN_MAX_DIMS);
        return NULL;
    }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            nn_fail("tensor: dimension %d is %d, must be positive", i, shape[i]);
            return NULL;
        }
        numel *= (size_t)shape[i];
    }
    const nn_backend *be = nn_backend_of(device);
    if (!be) return NULL;
    nn_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        nn_fail("tensor: out of host memory");
        return NULL;
    }
    t->data = be->alloc(numel * sizeof(nn_real));
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->numel = numel;
    t->device = device;
    t->is_leaf = 1;
    t->refcount = 1;
    atomic_fetch_add(&live_tensors, 1);
    return t;
}

nn_tensor *nn_tensor_new4(nn_device device, int d0, int d1, int d2, int d3) {
    int shape[4] = {d0, d1, d2, d3};
    int ndim = 4;
    while (ndim > 1 && shape[ndim - 1] == 0) ndim--;
    return nn_tensor_new(device, ndim, shape);
}

nn_tensor *nn_tensor_new_like(const nn_tensor *x) {
    return x ? nn_tensor_new(x->device, x->ndim, x->shape) : NULL;
}

nn_tensor *nn_tensor_zeros(nn_device device, int ndim, const int *shape) {
    nn_tensor *t = nn_tensor_new(device, ndim, shape);
    if (t && nn_tensor_fill(t, 0)) {
        nn_tensor_unref(t);
        return NULL;
    }
    return t;
}

nn_tensor *nn_tensor_ref(nn_tensor *t) {
    if (t) t->refcount++;
    return t;
}

void nn_tensor_unref(nn_tensor *t) {
    if (!t || --t->refcount > 0) return;
    nn_tensor_unref(t->grad);
    const nn_backend *be = nn_backend_of(t->device);
    if (be) be->release(t->data);
    free(t);
    atomic_fetch_sub(&live_tensors, 1);
}

nn_tensor *nn_tensor_grad(nn_tensor *t) {
    if (!t->grad) t->grad = nn_tensor_zeros(t->device, t->ndim, t->shape);
    return t->grad;
}

int nn_tensor_upload(nn_tensor *t, const nn_real *host) {
    return nn_backend_of(t->device)->upload(t->data, host, t->numel * sizeof(nn_real));
}

int nn_tensor_download(const nn_tensor *t, nn_real *host) {
    return nn_backend_of(t->device)->download(host, t->data, t->numel * sizeof(nn_real));
}

int nn_tensor_upload_async(nn_tensor *t, const nn_real *host) {
    const nn_backend *be = nn_backend_of(t->device);
    if (!be) return -1;
    size_t bytes = t->numel * sizeof(nn_real);
    return be->upload_async ? be->upload_async(t->data, host, bytes) : be->upload(t->data, host, bytes);
}

int nn_device_wait_uploads(nn_device device) {
    const nn_backend *be = nn_backend_of(device);
    if (!be) return -1;
    return be->wait_uploads ? be->wait_uploads() : 0;
}

int nn_tensor_fill(nn_tensor *t, nn_real value) {
    return nn_backend_of(t->device)->fill(t->data, t->numel, value);
}

int nn_tensor_copy(nn_tensor *dst, const nn_tensor *src) {
    if (dst->numel != src->numel)
        return nn_fail("tensor copy: %zu elements into %zu", src->numel, dst->numel);
    size_t bytes = src->numel * sizeof(nn_real);
    if (dst->device == src->device) return nn_backend_of(dst->device)->copy(dst->data, src->data, bytes);
    if (src->device == NN_CPU) return nn_backend_of(dst->device)->upload(dst->data, src->data, bytes);
    if (dst->device == NN_CPU) return nn_backend_of(src->device)->download(dst->data, src->data, bytes);
    return nn_fail("tensor copy: %s to %s is not supported", nn_device_name(src->device),
                   nn_device_name(dst->device));
}

nn_tensor *nn_tensor_to(nn_tensor *t, nn_device device) {
    if (!t) return NULL;
    if (t->device == device) return nn_tensor_ref(t);
    nn_tensor *c = nn_tensor_new(device, t->ndim, t->shape);
    if (c && nn_tensor_copy(c, t)) {
        nn_tensor_unref(c);
        return NULL;
    }
    return c;
}

int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *nn_shape_str(const nn_tensor *t, char *buf, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", t->shape[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

long nn_tensor_live_count(void) { return atomic_load(&live_tensors); }
