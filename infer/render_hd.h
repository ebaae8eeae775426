/* Code shared by the CPU renderer (infer/render.c) and its CUDA kernels
 * (infer/render.cu): the function qualifier and the explicitly rounded operations.
 *
 * RENDER_HD marks a function compiled for the host and, under nvcc, for the device too,
 * so one definition serves both paths and the CPU tests can run exactly the code the
 * kernels run. Neither side contracts a * b + c into a fused multiply-add: the C11 build
 * does not (ISO C mode: -ffp-contract=off), and infer/render.cu is compiled with
 * nvcc --fmad=false (Makefile); float division and sqrt are IEEE-rounded on both
 * (nvcc's defaults -prec-div=true -prec-sqrt=true). So plain operators round alike on
 * both sides. The RG_* macros spell the rounding out for the older blend kernels.
 */
#ifndef INFER_RENDER_HD_H
#define INFER_RENDER_HD_H

#if defined(__CUDACC__)
#define RENDER_HD static __host__ __device__ __forceinline__
#else
#define RENDER_HD static inline
#endif

#if defined(__CUDA_ARCH__)
#define RG_FMUL(a, b) __fmul_rn((a), (b))
#define RG_FADD(a, b) __fadd_rn((a), (b))
#define RG_FSUB(a, b) __fsub_rn((a), (b))
#define RG_FDIV(a, b) __fdiv_rn((a), (b))
#define RG_DMUL(a, b) __dmul_rn((a), (b))
#define RG_DADD(a, b) __dadd_rn((a), (b))
#define RG_DSUB(a, b) __dsub_rn((a), (b))
#define RG_DDIV(a, b) __ddiv_rn((a), (b))
#else
#define RG_FMUL(a, b) ((a) * (b))
#define RG_FADD(a, b) ((a) + (b))
#define RG_FSUB(a, b) ((a) - (b))
#define RG_FDIV(a, b) ((a) / (b))
#define RG_DMUL(a, b) ((a) * (b))
#define RG_DADD(a, b) ((a) + (b))
#define RG_DSUB(a, b) ((a) - (b))
#define RG_DDIV(a, b) ((a) / (b))
#endif

#endif
