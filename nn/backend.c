#include <string.h>

#include "backend.h"
#include "status.h"

const nn_backend *nn_backend_of(nn_device device) {
    switch (device) {
    case NN_CPU: return nn_backend_cpu();
    case NN_CUDA: return nn_backend_cuda();
    }
    nn_fail("unknown device %d", (int)device);
    return NULL;
}

const char *nn_device_name(nn_device device) { return device == NN_CUDA ? "cuda" : "cpu"; }

int nn_device_parse(const char *name, nn_device *out) {
    if (!strcmp(name, "cpu")) {
        *out = NN_CPU;
        return 0;
    }
    if (!strcmp(name, "cuda")) {
        if (!nn_backend_cuda()) return nn_fail_context("--device cuda");
        *out = NN_CUDA;
        return 0;
    }
    if (!strcmp(name, "auto")) {
        *out = nn_backend_cuda() ? NN_CUDA : NN_CPU;
        nn_clear_error();
        return 0;
    }
    return nn_fail("unknown device '%s' (expected cpu, cuda or auto)", name);
}
