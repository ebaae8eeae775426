/* deep3d train's checkpoint settings, shared with the fuzz target of the checkpoint
 * reader (tests/fuzz/fuzz_weights.c). The command itself is cmd_train (commands.h). */
#ifndef TRAIN_TRAIN_H
#define TRAIN_TRAIN_H

#include "../nn/optim.h"
#include "../nn/weights.h"

typedef enum { LOSS_L1 = 0, LOSS_SSIM_L1 = 1 } train_loss;

/* --crop-scale of the checkpoints written before the key existed: the loader's random
 * crops were 0.6..1 of the largest crop then (data/augment.h). */
#define TRAIN_CROP_SCALE_BEFORE 0.6

/* Everything a checkpoint holds besides the model and the optimizer's tensors. */
typedef struct train_state {
    long step, seed, batch, lr_step;
    long lr_total_steps;        /* the cosine schedule's length T (nn_lr_schedule) */
    double lr, weight_decay, smoothness, lr_gamma, lr_min_factor;
    double crop_scale;          /* smallest random crop / largest crop (data/augment.h) */
    nn_optim_kind optimizer;
    nn_lr_kind schedule;
    train_loss loss;
} train_state;

/* Reads the training settings of checkpoint f into *st, each checked exactly as its
 * command-line option would be (deep3d train's option table: range, choices), and
 * step in 0..1e9. Keys written before they existed take the values that runs had:
 * loss=l1, smoothness=0, lr_gamma=0.1, lr_min_factor=0.01, crop_scale=TRAIN_CROP_SCALE_BEFORE,
 * lr_total_steps = default_total
 * (the --steps of the resuming run). Errors (-1 + nn_fail, naming the file):
 * "F is not a training checkpoint: ... has no key 'step'",
 * "checkpoint F: lr=-0.5 is not a valid setting: --lr must be a number in 1e-12..10, ...". */
int train_read_settings(const nn_weights_file *f, long default_total, train_state *st);

#endif
