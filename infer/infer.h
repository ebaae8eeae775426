/* Converting one image with a loaded model, the way deep3d infer does it: the one code
 * path that deep3d infer, deep3d eval --resolution source and deep3d video share. */
#ifndef INFER_INFER_H
#define INFER_INFER_H

#include "../deep3d/model.h"
#include "letterbox.h"
#include "render.h"

/* The model's render settings: opts (mode, strength, ...) with the network size and
 * disparity levels of m. */
render_config infer_render_config(const deep3d_model *m, const render_config *opts);

/* left (3, H, W) 0..255 on the host -> right (3, H, W) and, when disp is not NULL, the
 * disparity map (H, W) (render.h), with render_image on the CPU or render_image_cuda
 * when the model is on the GPU. info may be NULL. Errors: render_image's. */
int infer_render(deep3d_model *m, const render_config *cfg, const nn_real *left, int H, int W, nn_real *right,
                 nn_real *disp, render_info *info);

/* infer_render on the picture inside the letterbox `box` (letterbox.h) only: the
 * rectangle is cut out, converted, and put back; outside it right is a copy of left
 * (the bars, the same in both views) and disp is 0. With a box covering the whole
 * frame this is infer_render exactly. disp may be NULL. */
int infer_render_boxed(deep3d_model *m, const render_config *cfg, const nn_real *left, int H, int W,
                       const letterbox *box, nn_real *right, nn_real *disp, render_info *info);

/* The network on one window for render_image / render_disparity (render_net_fn): ctx
 * is the deep3d_model *. */
int infer_run_window(void *ctx, const nn_real *window, nn_real *prob);

#ifdef NN_WITH_CUDA
#include "../nn/tensor.h"
/* The network on a batch of windows already on the GPU (render_cuda_net_fn); ctx is the
 * deep3d_model *. */
int infer_run_windows_gpu(void *ctx, nn_tensor *windows, nn_tensor **prob);
#endif

#endif
