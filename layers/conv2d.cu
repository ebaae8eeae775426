/* CUDA kernels of the 2-D convolution (layers/conv2d.h; semantics in nn/backend.h):
 *   forward          out  = conv(in, weight) + bias     cudnnConvolutionForward, beta 0
 *   backward data    din += conv^T(dout, weight)        cudnnConvolutionBackwardData, beta 1
 *   backward weight  dweight += corr(in, dout)          cudnnConvolutionBackwardFilter, beta 1
 *                    dbias[c] += sum dout[:, c]         own kernel (deterministic)
 *   bias forward     out[:, c] += bias[c]               own kernel
 * The transposed convolution (layers/conv_transpose2d.c) runs on the same three
 * calls with the roles swapped, so its geometries go through the same code.
 *
 * Algorithms: measured once per geometry, direction and math setting with
 * cudnnFindConvolution*AlgorithmEx, then taken from the algorithm cache; all
 * convolutions share one workspace, capped (nn/cuda_plan.h has the rules).
 * Math: precision fp32 -> CUDNN_FMA_MATH (no tensor cores: true float32), tf32 ->
 * CUDNN_DEFAULT_MATH (cuDNN permits TF32 tensor cores on Ampere and later), bf16 ->
 * CUDNN_TENSOR_OP_MATH, and the math type each measured algorithm reports is the one
 * it runs with (as PyTorch's aten/src/ATen/native/cudnn/Conv_v7.cpp does).
 * bf16 (mixed precision): the tensors, master weights and gradients stay float32; each
 * call converts its operands to bf16 scratch copies (round to nearest even), runs cuDNN
 * on bf16 tensor and filter descriptors with a float32 convolution compute type (the
 * BFLOAT16 configuration of the cuDNN API reference; PyTorch's ConvolutionDescriptor
 * does the same), alpha 1 beta 0 into a bf16 result, and converts that back: forward
 * out = float(result) (+ bias in float32), backward din += float(result), dweight +=
 * float(result). Every product then sees operands rounded to 8 mantissa bits, and each
 * result is rounded once to bf16 (relative 2^-9) before the float32 accumulation.
 * The algorithm cache is keyed by precision (nn_conv_key), so bf16 geometries are
 * measured on bf16 data.
 */
#include "../nn/cuda_check.h"

namespace {

struct ConvDesc {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
};

const char *dir_name(nn_conv_dir dir) {
    switch (dir) {
    case NN_CONV_FWD: return "forward";
    case NN_CONV_BWD_DATA: return "backward data";
    case NN_CONV_BWD_FILTER: return "backward weight";
    }
    return "?";
}

/* "input (N, C, H, W), output (...), kernel KxK, stride S, padding P, dilation D" */
void shape_str(const nn_conv_shape *s, char *buf, size_t size) {
    snprintf(buf, size,
             "input (%d, %d, %d, %d), output (%d, %d, %d, %d), kernel %dx%d, stride %d, padding %d, dilation %d",
             s->n, s->c_in, s->h_in, s->w_in, s->n, s->c_out, s->h_out, s->w_out, s->kh, s->kw, s->stride, s->pad,
             s->dilation);
}

/* Element counts of the three tensors of a geometry. */
size_t numel_in(const nn_conv_shape *s) { return (size_t)s->n * s->c_in * s->h_in * s->w_in; }
size_t numel_out(const nn_conv_shape *s) { return (size_t)s->n * s->c_out * s->h_out * s->w_out; }
size_t numel_w(const nn_conv_shape *s) { return (size_t)s->c_out * s->c_in * s->kh * s->kw; }

/* Descriptors of the geometry: float32 tensors, or bf16 ones for precision bf16; the
 * convolution always computes in float32. */
int desc_create(ConvDesc *d, const nn_conv_shape *s, nn_precision prec) {
    const cudnnDataType_t dt = prec == NN_PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    NN_CUDNN(cudnnCreateTensorDescriptor(&d->x));
    NN_CUDNN(cudnnCreateTensorDescriptor(&d->y));
    NN_CUDNN(cudnnCreateFilterDescriptor(&d->w));
    NN_CUDNN(cudnnCreateConvolutionDescriptor(&d->conv));
    NN_CUDNN(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, dt, s->n, s->c_in, s->h_in, s->w_in));
    NN_CUDNN(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, dt, s->n, s->c_out, s->h_out, s->w_out));
    NN_CUDNN(cudnnSetFilter4dDescriptor(d->w, dt, CUDNN_TENSOR_NCHW, s->c_out, s->c_in, s->kh, s->kw));
    NN_CUDNN(cudnnSetConvolution2dDescriptor(d->conv, s->pad, s->pad, s->stride, s->stride, s->dilation, s->dilation,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    int n = 0, c = 0, h = 0, w = 0;
    NN_CUDNN(cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &n, &c, &h, &w));
    if (n != s->n || c != s->c_out || h != s->h_out || w != s->w_out) {
        char buf[256];
        shape_str(s, buf, sizeof buf);
        return nn_fail("conv2d (cuda): the geometry %s is inconsistent: cuDNN computes output (%d, %d, %d, %d)",
                       buf, n, c, h, w);
    }
    return 0;
}

/* Destroys the descriptors; keeps rc and its message when the body failed, else
 * reports a failed destroy. */
int desc_finish(ConvDesc *d, int rc) {
    cudnnStatus_t st[4] = {CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS};
    if (d->x) st[0] = cudnnDestroyTensorDescriptor(d->x);
    if (d->y) st[1] = cudnnDestroyTensorDescriptor(d->y);
    if (d->w) st[2] = cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) st[3] = cudnnDestroyConvolutionDescriptor(d->conv);
    static const char *call[4] = {"cudnnDestroyTensorDescriptor(x)", "cudnnDestroyTensorDescriptor(y)",
                                  "cudnnDestroyFilterDescriptor(w)", "cudnnDestroyConvolutionDescriptor(conv)"};
    for (int i = 0; i < 4; i++)
        if (st[i] != CUDNN_STATUS_SUCCESS && rc == 0) rc = nn_cuda_fail_cudnn(st[i], call[i], __FILE__, __LINE__);
    return rc;
}

int tensor_op(cudnnMathType_t m) { return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; }

int ensure_workspace(size_t bytes, void *) { return nn_cuda_workspace_ensure(bytes); }

template <typename Perf> void to_candidates(const Perf *perf, int n, nn_algo_perf *cands) {
    for (int i = 0; i < n; i++) {
        cands[i].algo = (int)perf[i].algo;
        cands[i].ok = perf[i].status == CUDNN_STATUS_SUCCESS;
        cands[i].time_ms = perf[i].time;
        cands[i].workspace = perf[i].memory;
        cands[i].deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
        cands[i].math_type = (int)perf[i].mathType;
        cands[i].tensor_op = tensor_op(perf[i].mathType);
    }
}

enum { MAX_ALGOS = 16 };

/* Workspace need of every algorithm of a direction (SIZE_MAX: not supported here;
 * a failing size query is an answer, not an error). */
int workspace_needs(nn_conv_dir dir, const ConvDesc *d, size_t *needs, int *n_algo) {
    cudnnHandle_t h = nn_cuda_cudnn();
    int count = 0;
    switch (dir) {
    case NN_CONV_FWD: NN_CUDNN(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count)); break;
    case NN_CONV_BWD_DATA: NN_CUDNN(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count)); break;
    case NN_CONV_BWD_FILTER: NN_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count)); break;
    }
    if (count > MAX_ALGOS) count = MAX_ALGOS;
    for (int a = 0; a < count; a++) {
        size_t sz = 0;
        cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
        switch (dir) {
        case NN_CONV_FWD:
            st = cudnnGetConvolutionForwardWorkspaceSize(h, d->x, d->w, d->conv, d->y, (cudnnConvolutionFwdAlgo_t)a, &sz);
            break;
        case NN_CONV_BWD_DATA:
            st = cudnnGetConvolutionBackwardDataWorkspaceSize(h, d->w, d->y, d->conv, d->x,
                                                              (cudnnConvolutionBwdDataAlgo_t)a, &sz);
            break;
        case NN_CONV_BWD_FILTER:
            st = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d->x, d->y, d->conv, d->w,
                                                                (cudnnConvolutionBwdFilterAlgo_t)a, &sz);
            break;
        }
        needs[a] = st == CUDNN_STATUS_SUCCESS ? sz : SIZE_MAX;
    }
    *n_algo = count;
    return 0;
}

/* Runs cudnnFind*AlgorithmEx. x, w, dy are the real inputs; `out` receives arbitrary
 * values (the real output for forward, a scratch buffer for the backward ones, whose
 * real outputs accumulate and must not be overwritten). */
int measure(nn_conv_dir dir, const ConvDesc *d, const void *x, const void *w, const void *dy, void *out,
            int n_algo, void *ws, size_t ws_bytes, nn_algo_perf *cands, int *returned) {
    cudnnHandle_t h = nn_cuda_cudnn();
    switch (dir) {
    case NN_CONV_FWD: {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
        NN_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(h, d->x, x, d->w, w, d->conv, d->y, out, n_algo, returned,
                                                        perf, ws, ws_bytes));
        to_candidates(perf, *returned, cands);
        break;
    }
    case NN_CONV_BWD_DATA: {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
        NN_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d->w, w, d->y, dy, d->conv, d->x, out, n_algo,
                                                             returned, perf, ws, ws_bytes));
        to_candidates(perf, *returned, cands);
        break;
    }
    case NN_CONV_BWD_FILTER: {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
        NN_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d->x, x, d->y, dy, d->conv, d->w, out, n_algo,
                                                               returned, perf, ws, ws_bytes));
        to_candidates(perf, *returned, cands);
        break;
    }
    }
    return 0;
}

/* The math type the algorithms are measured with (each then runs with the one it reports). */
cudnnMathType_t measure_math(nn_precision prec) {
    switch (prec) {
    case NN_PRECISION_FP32: return CUDNN_FMA_MATH;
    case NN_PRECISION_TF32: return CUDNN_DEFAULT_MATH;
    case NN_PRECISION_BF16: return CUDNN_TENSOR_OP_MATH;
    }
    return CUDNN_FMA_MATH;
}

/* The algorithm for (geometry, direction, settings): from the cache, or measured,
 * chosen by the plan rules and cached. x, w, dy are the operands as cuDNN gets them
 * (float32, or the bf16 copies); `fwd_out` is the forward output (it is overwritten by
 * the measurement, and then by the real convolution). */
int choose(nn_conv_dir dir, const ConvDesc *d, const nn_conv_shape *s, nn_precision prec, const void *x,
           const void *w, const void *dy, void *fwd_out, nn_algo_choice *out) {
    int det = nn_cuda_deterministic();
    nn_conv_key key;
    nn_conv_key_make(&key, s, dir, prec, det);
    const nn_algo_choice *hit = nn_algo_cache_find(nn_cuda_algo_cache(), &key);
    if (hit) {
        *out = *hit;
        return 0;
    }
    NN_CUDNN(cudnnSetConvolutionMathType(d->conv, measure_math(prec)));
    size_t needs[MAX_ALGOS];
    int n_algo = 0;
    if (workspace_needs(dir, d, needs, &n_algo)) return -1;
    size_t cap = nn_plan_workspace_cap(nn_cuda_available_bytes(), nn_cuda_workspace_limit());

    /* Measure with a temporary workspace large enough for every algorithm under the
     * cap; if even that cannot be had, measure with none (the fallback rule). */
    size_t find_ws = nn_plan_find_workspace(needs, n_algo, cap);
    void *ws = nullptr;
    if (find_ws) {
        ws = nn_cuda_scratch(find_ws);
        if (!ws) {
            nn_clear_error();
            find_ws = 0;
        }
    }
    size_t out_bytes = 0, elem = prec == NN_PRECISION_BF16 ? 2 : sizeof(float);
    if (dir == NN_CONV_BWD_DATA) out_bytes = numel_in(s) * elem;
    if (dir == NN_CONV_BWD_FILTER) out_bytes = numel_w(s) * elem;
    void *scratch = out_bytes ? nn_cuda_scratch(out_bytes) : fwd_out;
    if (!scratch) {
        nn_cuda_scratch_release(ws);
        return nn_fail_context("conv2d (cuda) %s: measuring the algorithms", dir_name(dir));
    }
    nn_algo_perf cands[MAX_ALGOS];
    int returned = 0;
    int rc = measure(dir, d, x, w, dy, scratch, n_algo, ws, find_ws, cands, &returned);
    nn_cuda_scratch_release(ws);
    if (out_bytes) nn_cuda_scratch_release(scratch);
    if (!rc)
        rc = nn_plan_decide(cands, returned, cap, det, prec != NN_PRECISION_FP32, ensure_workspace, nullptr, out);
    if (rc) {
        char buf[256];
        shape_str(s, buf, sizeof buf);
        return nn_fail_context("conv2d (cuda) %s, %s", dir_name(dir), buf);
    }
    if (prec == NN_PRECISION_FP32) out->math_type = CUDNN_FMA_MATH;
    return nn_algo_cache_put(nn_cuda_algo_cache(), &key, out);
}

/* Makes the workspace fit the choice and sets its math type on the descriptor. When
 * the workspace cannot be had now (the device filled up since the choice was made),
 * the choice's zero-workspace alternative runs instead (the fallback rule). */
int prepare(const ConvDesc *d, nn_precision prec, nn_algo_choice *c) {
    if (nn_cuda_workspace_ensure(c->workspace)) {
        if (c->zero_algo < 0) return nn_fail_context("conv2d (cuda): no algorithm runs without workspace");
        nn_clear_error();
        c->algo = c->zero_algo;
        c->math_type = prec == NN_PRECISION_FP32 ? (int)CUDNN_FMA_MATH : c->zero_math_type;
        c->workspace = 0;
    }
    NN_CUDNN(cudnnSetConvolutionMathType(d->conv, (cudnnMathType_t)c->math_type));
    return 0;
}

int bf16_failed(const char *what) { return nn_fail_context("conv2d (cuda) %s: bf16 operands", what); }

int forward_body(const ConvDesc *d, nn_precision prec, float *out, const float *in, const float *weight,
                 const nn_real *bias, const nn_conv_shape *s) {
    const void *x = in, *w = weight;
    void *y = out;
    NnScratch t;
    if (prec == NN_PRECISION_BF16) {
        if (!(t.p[0] = nn_cuda_bf16_copy(in, numel_in(s))) || !(t.p[1] = nn_cuda_bf16_copy(weight, numel_w(s))) ||
            !(t.p[2] = nn_cuda_scratch(numel_out(s) * 2)))
            return bf16_failed("forward");
        x = t.p[0], w = t.p[1], y = t.p[2];
    }
    nn_algo_choice c;
    if (choose(NN_CONV_FWD, d, s, prec, x, w, nullptr, y, &c) || prepare(d, prec, &c)) return -1;
    const float one = 1.0f, zero = 0.0f;
    NN_CUDNN(cudnnConvolutionForward(nn_cuda_cudnn(), &one, d->x, x, d->w, w, d->conv,
                                     (cudnnConvolutionFwdAlgo_t)c.algo, nn_cuda_workspace(), c.workspace, &zero, d->y,
                                     y));
    if (prec == NN_PRECISION_BF16 && nn_cuda_from_bf16(out, y, numel_out(s), 0)) return -1;
    if (bias) return bias_forward_cuda(out, bias, s->n, s->c_out, s->h_out * s->w_out);
    return 0;
}

int backward_data_body(const ConvDesc *d, nn_precision prec, float *din, const float *dout, const float *weight,
                       const nn_conv_shape *s) {
    const void *dy = dout, *w = weight;
    void *dx = din;
    float beta = 1.0f;   /* float32: accumulate in place */
    NnScratch t;
    if (prec == NN_PRECISION_BF16) {
        if (!(t.p[0] = nn_cuda_bf16_copy(dout, numel_out(s))) || !(t.p[1] = nn_cuda_bf16_copy(weight, numel_w(s))) ||
            !(t.p[2] = nn_cuda_scratch(numel_in(s) * 2)))
            return bf16_failed("backward data");
        dy = t.p[0], w = t.p[1], dx = t.p[2], beta = 0.0f;
    }
    nn_algo_choice c;
    if (choose(NN_CONV_BWD_DATA, d, s, prec, nullptr, w, dy, nullptr, &c) || prepare(d, prec, &c)) return -1;
    const float one = 1.0f;
    NN_CUDNN(cudnnConvolutionBackwardData(nn_cuda_cudnn(), &one, d->w, w, d->y, dy, d->conv,
                                          (cudnnConvolutionBwdDataAlgo_t)c.algo, nn_cuda_workspace(), c.workspace,
                                          &beta, d->x, dx));
    if (prec == NN_PRECISION_BF16) return nn_cuda_from_bf16(din, dx, numel_in(s), 1);
    return 0;
}

int backward_weight_body(const ConvDesc *d, nn_precision prec, float *dweight, const float *dout, const float *in,
                         const nn_conv_shape *s) {
    const void *x = in, *dy = dout;
    void *dw = dweight;
    float beta = 1.0f;   /* float32: accumulate in place */
    NnScratch t;
    if (prec == NN_PRECISION_BF16) {
        if (!(t.p[0] = nn_cuda_bf16_copy(in, numel_in(s))) || !(t.p[1] = nn_cuda_bf16_copy(dout, numel_out(s))) ||
            !(t.p[2] = nn_cuda_scratch(numel_w(s) * 2)))
            return bf16_failed("backward weight");
        x = t.p[0], dy = t.p[1], dw = t.p[2], beta = 0.0f;
    }
    nn_algo_choice c;
    if (choose(NN_CONV_BWD_FILTER, d, s, prec, x, nullptr, dy, nullptr, &c) || prepare(d, prec, &c)) return -1;
    const float one = 1.0f;
    NN_CUDNN(cudnnConvolutionBackwardFilter(nn_cuda_cudnn(), &one, d->x, x, d->y, dy, d->conv,
                                            (cudnnConvolutionBwdFilterAlgo_t)c.algo, nn_cuda_workspace(),
                                            c.workspace, &beta, d->w, dw));
    if (prec == NN_PRECISION_BF16) return nn_cuda_from_bf16(dweight, dw, numel_w(s), 1);
    return 0;
}

/* out[(i*c + ch)*hw + p] += bias[ch], over (planes = n*c, hw) */
__global__ void bias_forward_kernel(float *out, const float *bias, size_t planes, int c, int hw) {
    for (size_t q = blockIdx.y; q < planes; q += gridDim.y) {
        float b = bias[q % (size_t)c];
        size_t base = q * (size_t)hw;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += gridDim.x * blockDim.x) out[base + p] += b;
    }
}

/* Per-channel sums over (n, hw), in two deterministic stages: block (ch, split)
 * sums its contiguous share [lo, hi) of the m = n*hw items into
 * partial[ch*splits + split]; then one thread per channel adds its partials in
 * order. Item j is (sample j / hw, pixel j % hw), tracked incrementally. */
__global__ void channel_sum_partial_kernel(double *partial, const float *x, int n, int c, int hw, int splits) {
    int ch = blockIdx.x, split = blockIdx.y;
    long long m = (long long)n * hw;
    long long lo = m * split / splits, hi = m * (split + 1) / splits;
    double acc = 0.0;
    long long j = lo + threadIdx.x, i = j / hw;
    int p = (int)(j % hw);
    for (; j < hi; j += blockDim.x) {
        acc += (double)x[((size_t)i * c + ch) * hw + p];
        for (p += blockDim.x; p >= hw; p -= hw) i++;
    }
    acc = nn_block_sum(acc);
    if (threadIdx.x == 0) partial[(size_t)ch * splits + split] = acc;
}

__global__ void channel_sum_finish_kernel(float *dbias, const double *partial, int c, int splits) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s = 0.0;
    for (int k = 0; k < splits; k++) s += partial[(size_t)ch * splits + k];
    dbias[ch] += (float)s;
}

} // namespace

int conv2d_forward_cuda(nn_real *out, const nn_real *in, const nn_real *weight, const nn_real *bias,
                        const nn_conv_shape *s) {
    const nn_precision prec = nn_cuda_precision();
    ConvDesc d;
    int rc = desc_create(&d, s, prec);
    if (!rc) rc = forward_body(&d, prec, out, in, weight, bias, s);
    rc = desc_finish(&d, rc);
    if (!rc && s->relu) rc = relu_forward_cuda(out, out, numel_out(s)); /* nn_conv2d_relu */
    return rc;
}

int conv2d_backward_data_cuda(nn_real *din, const nn_real *dout, const nn_real *weight, const nn_conv_shape *s) {
    const nn_precision prec = nn_cuda_precision();
    ConvDesc d;
    int rc = desc_create(&d, s, prec);
    if (!rc) rc = backward_data_body(&d, prec, din, dout, weight, s);
    return desc_finish(&d, rc);
}

int conv2d_backward_weight_cuda(nn_real *dweight, nn_real *dbias, const nn_real *dout, const nn_real *in,
                                const nn_conv_shape *s) {
    int rc = 0;
    if (dweight) {
        const nn_precision prec = nn_cuda_precision();
        ConvDesc d;
        rc = desc_create(&d, s, prec);
        if (!rc) rc = backward_weight_body(&d, prec, dweight, dout, in, s);
        rc = desc_finish(&d, rc);
    }
    if (!rc && dbias) rc = bias_backward_cuda(dbias, dout, s->n, s->c_out, s->h_out * s->w_out);
    return rc;
}

int bias_forward_cuda(nn_real *out, const nn_real *bias, int n, int c, int hw) {
    size_t planes = (size_t)n * (size_t)c;
    if (!planes || hw <= 0) return 0;
    bias_forward_kernel<<<nn_cuda_plane_grid(planes, hw), NN_CUDA_BLOCK>>>(out, bias, planes, c, hw);
    NN_CUDA_LAUNCHED("bias_forward_kernel");
    return 0;
}

int bias_backward_cuda(nn_real *dbias, const nn_real *dout, int n, int c, int hw) {
    if ((size_t)n * (size_t)c * (size_t)hw == 0) return 0;
    int splits = nn_cuda_channel_splits(c, (long long)n * hw);
    double *partial = (double *)nn_cuda_scratch((size_t)c * splits * sizeof(double));
    if (!partial) return nn_fail_context("bias backward (cuda)");
    channel_sum_partial_kernel<<<dim3((unsigned)c, (unsigned)splits), NN_CUDA_BLOCK>>>(partial, dout, n, c, hw,
                                                                                       splits);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
        channel_sum_finish_kernel<<<(unsigned)((c + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK), NN_CUDA_BLOCK>>>(dbias, partial,
                                                                                                        c, splits);
        e = cudaGetLastError();
    }
    nn_cuda_scratch_release(partial);
    if (e != cudaSuccess) return nn_cuda_fail_rt(e, "channel_sum kernels launch", __FILE__, __LINE__);
    return 0;
}
