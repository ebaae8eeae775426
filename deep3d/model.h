/* The Deep3D network (Xie, Girshick, Farhadi, ECCV 2016; ../shared/docs/DEEP3D.md).
 *
 * Input: the left view, (N, 3, H, W), RGB 0..255, H and W multiples of 32
 * (default 384x160). Output: the predicted right view (N, 3, H, W), 0..255, and the
 * disparity probabilities (N, D, H, W) over shifts d_k = dmin + k pixels.
 *
 * Parameter names follow the PyTorch peer's state_dict (../shared/peers/deep3d_torch.py)
 * so weights move between the two by name: "features.<i>.weight" is the i-th entry of
 * the VGG stack counting ReLU and pooling entries (released: conv1_1 = features.0,
 * conv2_1 = features.3, conv3_1 = features.6, conv3_2 = features.8, ...), "fc6", "fc7",
 * "pred5" (fc8), "bn.<i>", "pred.<i>" (branch convs on pool1..pool4), "up.<i>" (branch
 * transposed convs, scale 2^i), "upfull", "final".
 */
#ifndef DEEP3D_MODEL_H
#define DEEP3D_MODEL_H

#include "../nn/nn.h"

#define DEEP3D_MAX_CONVS 13
#define DEEP3D_MAX_TENSORS 96

typedef struct deep3d_config {
    char variant[16];   /* "released" (the authors' sym.py, default) or "vgg16" (the paper) */
    int width, height;  /* network resolution, pixels, multiples of 32 (384x160) */
    int disparities;    /* D, number of disparity levels (33) */
    int dmin;           /* smallest shift in pixels (-15): d_k = dmin + k */
    int width_div;      /* divides every conv and fc width (not D): 1 = the paper's */
    /* the global-disparity baseline's shift (network pixels), fitted on the training
     * set by deep3d train; stored in model files, used by deep3d eval */
    int has_global_disparity, global_disparity;
} deep3d_config;

/* The defaults of DEEP3D.md: released, 384x160, D = 33, dmin = -15, width_div 1. */
deep3d_config deep3d_default_config(void);

/* Checks a configuration: variant known, sizes positive multiples of 32, D >= 1,
 * width_div divides 64. Returns 0, or -1 + nn_fail naming the bad value. */
int deep3d_config_check(const deep3d_config *c);

/* The configuration as "key=value" lines for the weights file (nn/weights.h), and back. */
void deep3d_config_format(const deep3d_config *c, char *buf, size_t size);

typedef struct deep3d_model {
    deep3d_config cfg;
    nn_device device;
    nn_real dropout;                /* fc6/fc7 dropout probability in training (0.5) */
    nn_real bn_momentum, bn_eps;    /* 0.1, 1e-5 (PyTorch defaults, as the peer) */
    /* every tensor of the model, in a fixed order; tensor->name is its file name */
    int n_tensors;
    nn_tensor *tensors[DEEP3D_MAX_TENSORS];
    int trainable[DEEP3D_MAX_TENSORS];  /* 0 for batch-norm running statistics */
    /* backbone: n_convs 3x3 convs; pool_after[i] = 1 when a 2x2 max pool follows conv i */
    int n_convs;
    int pool_after[DEEP3D_MAX_CONVS];
    nn_tensor *conv_w[DEEP3D_MAX_CONVS], *conv_b[DEEP3D_MAX_CONVS];
    nn_tensor *fc6_w, *fc6_b, *fc7_w, *fc7_b, *pred5_w, *pred5_b;
    nn_tensor *bn_gamma[4], *bn_beta[4], *bn_mean[4], *bn_var[4];
    nn_tensor *pred_w[4], *pred_b[4];
    nn_tensor *up_w[5], *up_b[5];
    nn_tensor *upfull_w, *upfull_b, *final_w, *final_b;
} deep3d_model;

/* Allocates the model on `device` and initialises it (DEEP3D.md "Initialisation"):
 * convs and linears He/Kaiming normal (fan-in, gain sqrt 2), biases 0, batch norm
 * gamma 1 / beta 0 / running mean 0 / running var 1, every transposed conv bilinear
 * upsampling; the final conv before the softmax 1000x smaller than He, so the
 * disparity softmax starts near uniform instead of saturated. Deterministic in `seed`. Errors: bad config, out of memory. */
int deep3d_model_init(deep3d_model *m, const deep3d_config *cfg, nn_device device, uint64_t seed);

/* Allocates the model's tensors like deep3d_model_init but leaves their contents
 * undefined, for a caller that reads every tensor next (loading a file). */
int deep3d_model_alloc(deep3d_model *m, const deep3d_config *cfg, nn_device device);

void deep3d_model_free(deep3d_model *m);

/* The tensor named `name`, or NULL. */
nn_tensor *deep3d_model_tensor(const deep3d_model *m, const char *name);

/* Number of trainable parameters (elements). */
size_t deep3d_model_param_count(const deep3d_model *m);

/* Multiply-adds x 2 of the convs, transposed convs and linears of one forward pass of
 * one image (the peer's flops_per_image). */
double deep3d_model_flops(const deep3d_model *m);

/* One forward pass. left: (N, 3, H, W) raw 0..255 on the model's device. On success
 * *right = predicted right view (N, 3, H, W), *prob = probabilities (N, D, H, W); the
 * caller owns both (either pointer may be NULL when not wanted). g->training selects
 * batch statistics and dropout; g->recording records the tape for backward.
 * Errors: wrong input shape or device, any op failure (message names it). */
int deep3d_forward(deep3d_model *m, nn_graph *g, nn_tensor *left, nn_tensor **right,
                   nn_tensor **prob);

/* Saves the model as a weights file (nn/weights.h): config plus every tensor,
 * stored as float16 when half != 0. Atomic. */
int deep3d_model_save(const deep3d_model *m, const char *path, int half);

/* Loads a model file: reads its config, initialises the model on `device` and reads
 * every tensor. Errors name the file: unreadable, not a weights file, corrupt,
 * missing or mis-shaped tensors. */
int deep3d_model_load(deep3d_model *m, const char *path, nn_device device);

/* Same as deep3d_model_load, from a weights file already open (checkpoints). */
struct nn_weights_file;
int deep3d_model_read(deep3d_model *m, const struct nn_weights_file *f, nn_device device);

#endif
