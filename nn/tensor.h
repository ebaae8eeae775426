/* Tensors: nn_real (float32 in the product), NCHW, up to 5 dimensions, on one device.
 *
 * Ownership is by reference count. A new tensor has one reference, held by whoever
 * created it; nn_tensor_unref() drops it, and the memory (and its gradient) is freed
 * when the count reaches zero. The autograd tape (nn/graph.h) takes its own
 * references to what backward needs, so in inference mode, where nothing is
 * recorded, an activation is freed as soon as the model code drops it.
 */
#ifndef NN_TENSOR_H
#define NN_TENSOR_H

#include <stddef.h>

#include "backend.h"

#define NN_MAX_DIMS 5

typedef struct nn_tensor {
    int ndim;
    int shape[NN_MAX_DIMS];   /* outermost first: (N, C, H, W) */
    size_t numel;
    nn_real *data;            /* memory of `device`; never NULL for a live tensor */
    nn_device device;
    int requires_grad;        /* gradients flow into this tensor */
    int is_leaf;              /* not produced by a recorded op (parameter or input) */
    struct nn_tensor *grad;   /* same shape and device, created by nn_tensor_grad() */
    int refcount;
    char name[64];            /* parameters carry their name ("conv1_1.weight") */
} nn_tensor;

/* New tensor of the given shape on `device`, contents undefined. NULL + nn_fail on
 * a bad shape or out of memory. */
nn_tensor *nn_tensor_new(nn_device device, int ndim, const int *shape);

/* Shorthand for up to 4-D shapes: nn_tensor_new4(dev, N, C, H, W); trailing 0s drop. */
nn_tensor *nn_tensor_new4(nn_device device, int d0, int d1, int d2, int d3);

/* New tensor with x's shape and device. */
nn_tensor *nn_tensor_new_like(const nn_tensor *x);

/* New tensor filled with zeros. */
nn_tensor *nn_tensor_zeros(nn_device device, int ndim, const int *shape);

nn_tensor *nn_tensor_ref(nn_tensor *t);  /* +1 reference; returns t (NULL-safe) */
void nn_tensor_unref(nn_tensor *t);      /* -1 reference; frees at zero (NULL-safe) */

/* The gradient of t (same shape and device), created zero-filled on first use. */
nn_tensor *nn_tensor_grad(nn_tensor *t);

/* Copies between tensors and host arrays of t->numel nn_real values. */
int nn_tensor_upload(nn_tensor *t, const nn_real *host);
int nn_tensor_download(const nn_tensor *t, nn_real *host);
/* Asynchronous upload, to overlap the next input with the work already queued (a
 * training loop uploads batch k+1 while step k runs; see train/train.c):
 *   nn_tensor_upload_async(t, host) copies t->numel values away from host before it
 *     returns (host may be reused at once) and starts their transfer into t without
 *     waiting for the device;
 *   nn_device_wait_uploads(device) makes the work queued on `device` after it see every
 *     upload started before it (the device waits, not the host).
 * Work queued before nn_tensor_upload_async still sees t's old contents, so t may be
 * the input of a step that is still running; between the two calls do not use t, nor
 * upload into it again. On the CPU the upload is a plain copy, complete on return, and
 * the wait does nothing; on CUDA they are the backend's upload_async / wait_uploads
 * (nn/backend.h, nn/cuda_upload.h). A backend without them uploads synchronously.
 * 0, or -1 + nn_fail. */
int nn_tensor_upload_async(nn_tensor *t, const nn_real *host);
int nn_device_wait_uploads(nn_device device);

int nn_tensor_fill(nn_tensor *t, nn_real value);
int nn_tensor_copy(nn_tensor *dst, const nn_tensor *src);  /* same numel, any devices */

/* The same tensor on another device (a new reference to t if already there). */
nn_tensor *nn_tensor_to(nn_tensor *t, nn_device device);

/* 1 if the shapes are equal. */
int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b);

/* "(2, 3, 160, 384)" into buf; returns buf. */
const char *nn_shape_str(const nn_tensor *t, char *buf, size_t size);

/* Number of tensors alive now (a leak counter for tests). */
long nn_tensor_live_count(void);

#endif
