/* Evaluation on stereo pairs (DEEP3D.md "Evaluation and baselines"): each pair is
 * centre-cropped to the network aspect and resized to the network resolution
 * (augment_center), the model predicts the right view from the left, and the mean
 * absolute error (0..255) is reported next to the identity baseline (right = left) and
 * the global-disparity baseline (left shifted by one fixed d for every image). */
#ifndef DEEP3D_EVALUATE_H
#define DEEP3D_EVALUATE_H

#include "../data/stereo.h"
#include "baselines.h"
#include "model.h"

typedef struct eval_result {
    int pairs;
    double mae_model, mae_identity, mae_global;
    int global_disparity;  /* the shift used for mae_global, network pixels */
} eval_result;

/* Evaluates m on every pair of ds with the global shift global_d. Errors: a pair that
 * cannot be loaded (message names the file), any forward failure. */
int deep3d_evaluate(deep3d_model *m, const stereo_dataset *ds, int global_d, eval_result *r);

/* The single shift in [dmin, dmax] with the smallest MAE over ds at w x h (centre
 * crops): the "global disparity" baseline of the paper, fitted on the training set.
 * Pairs that cannot be loaded are skipped and counted in *skipped; error only when
 * none can be loaded (the message is the last pair's). When cov is not NULL, every
 * loaded pair is also added to it (per-pixel best shifts, baselines.h). */
int deep3d_fit_global_disparity(const stereo_dataset *ds, int w, int h, int dmin, int dmax, int *best,
                                double *mae, int *skipped, disparity_coverage *cov);

/* Loads pair i of ds as the evaluation transform makes it: left and right (3, h, w). */
int deep3d_load_eval_pair(const stereo_dataset *ds, int i, int w, int h, nn_real *left, nn_real *right);

#endif
