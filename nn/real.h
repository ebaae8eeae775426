/* The scalar type of every tensor.
 *
 * The product is built with nn_real = float (float32 everywhere, as in DEEP3D.md).
 * The gradient-check test binary builds the same CPU sources with -DNN_REAL_DOUBLE,
 * so finite differences run in double precision on exactly the code that ships.
 * CUDA code is float only (the double build has no CUDA backend).
 */
#ifndef NN_REAL_H
#define NN_REAL_H

#ifdef NN_REAL_DOUBLE
typedef double nn_real;
#define NN_REAL_NAME "float64"
#define nn_cblas_gemm cblas_dgemm
#define nn_cblas_gemv cblas_dgemv
#define nn_cblas_axpy cblas_daxpy
#else
typedef float nn_real;
#define NN_REAL_NAME "float32"
#define nn_cblas_gemm cblas_sgemm
#define nn_cblas_gemv cblas_sgemv
#define nn_cblas_axpy cblas_saxpy
#endif

#endif
