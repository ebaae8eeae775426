/* Built when the CUDA backend is not compiled in (make CUDA=0, or no nvcc). */
#include "backend.h"
#include "status.h"

const nn_backend *nn_backend_cuda(void) {
    nn_fail("this deep3d was built without CUDA (rebuild with nvcc present and CUDA=1)");
    return NULL;
}
