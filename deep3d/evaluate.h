/* Evaluation on stereo pairs (DEEP3D.md "Evaluation and baselines"): each pair is
 * centre-cropped to the network aspect and resized to the network resolution
 * (augment_center), the model predicts the right view from the left, and the mean
 * absolute error (0..255) is reported next to the identity baseline (right = left) and
 * the global-disparity baseline (left shifted by one fixed d for every image). */
#ifndef DEEP3D_EVALUATE_H
#define DEEP3D_EVALUATE_H

#include "../data/stereo.h"
#include "../infer/render.h"
#include "baselines.h"
#include "model.h"

typedef struct eval_result {
    int pairs;             /* evaluated */
    int skipped;           /* unreadable, left out of the means */
    double mae_model, mae_identity, mae_global;
    int global_disparity;  /* the shift used for mae_global, network pixels */
} eval_result;

/* Evaluates m on every pair of ds with the global shift global_d. A pair that cannot
 * be loaded is left out and counted in r->skipped (deep3d train checks its validation
 * pairs at the start; this covers files that change during a run). Errors: no pair
 * could be loaded ("evaluation: none of the N pairs could be loaded; the last: <the
 * pair's message naming the file>"), any forward failure. */
int deep3d_evaluate(deep3d_model *m, const stereo_dataset *ds, int global_d, eval_result *r);

/* The single shift in [dmin, dmax] with the smallest MAE over ds at w x h (centre
 * crops): the "global disparity" baseline of the paper, fitted on the training set.
 * Pairs that cannot be loaded are skipped and counted in *skipped; error only when
 * none can be loaded (the message is the last pair's). When cov is not NULL, every
 * loaded pair is also added to it (per-pixel best shifts, baselines.h). */
int deep3d_fit_global_disparity(const stereo_dataset *ds, int w, int h, int dmin, int dmax, int *best,
                                double *mae, int *skipped, disparity_coverage *cov);

/* One evaluated pair of deep3d_evaluate_pairs. */
typedef struct eval_pair {
    char name[128];     /* the left view's file name without folder and extension */
    int w, h;           /* the size it was evaluated at */
    double scale;       /* s: evaluated pixels per network pixel of disparity */
    double mae_model, mae_identity, mae_global;     /* 0..255 */
    double ssim_model, ssim_identity, ssim_global;  /* metrics.h */
    double detail_model, detail_true;               /* detail kept (metrics.h) of the
                                                     * predicted and of the true right view */
} eval_pair;

/* All pairs: per-pair rows and their summary (means over pairs; median and minimum of
 * the model's detail kept). */
typedef struct eval_report {
    int pairs;
    eval_pair *rows;    /* (pairs), malloc'd: free with eval_report_free */
    double mae_model, mae_identity, mae_global, ssim_model, ssim_identity, ssim_global;
    double detail_model_median, detail_model_min;
    int global_disparity; /* network pixels; at the source resolution shifted by round(s * d) */
} eval_report;

/* Evaluates m on every pair of ds with the render settings cfg (infer_render_config),
 * the way deep3d infer renders:
 *  source = 0 (network resolution): each pair centre-cropped and resized as
 *    deep3d_load_eval_pair makes it, rendered as one window (s = 1);
 *  source = 1: each pair at its own size, rendered exactly as deep3d infer does.
 * Identity: right = left. Global: the left view shifted by round(s * global_d) pixels,
 * edge columns repeated. Errors: a pair that cannot be loaded (named), rendering
 * failures, out of memory. */
int deep3d_evaluate_pairs(deep3d_model *m, const stereo_dataset *ds, const render_config *cfg, int source,
                          int global_d, eval_report *r);

void eval_report_free(eval_report *r);

/* Loads pair i of ds as the evaluation transform makes it: left and right (3, h, w). */
int deep3d_load_eval_pair(const stereo_dataset *ds, int i, int w, int h, nn_real *left, nn_real *right);

#endif
