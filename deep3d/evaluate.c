#include "evaluate.h"

#include <stdlib.h>

#include "../data/augment.h"
#include "baselines.h"

int deep3d_load_eval_pair(const stereo_dataset *ds, int i, int w, int h, nn_real *left, nn_real *right) {
    image *l = NULL, *r = NULL;
    if (stereo_load_pair(ds, i, &l, &r)) return -1;
    augment_params p;
    augment_center(&p, l->w, l->h, w, h);
    int rc = augment_apply(&p, l, r, w, h, left, right);
    image_free(l), image_free(r);
    return rc;
}

int deep3d_fit_global_disparity(const stereo_dataset *ds, int w, int h, int dmin, int dmax, int *best,
                                double *mae, int *skipped, disparity_coverage *cov) {
    const size_t n = (size_t)3 * h * w;
    nn_real *l = malloc(n * sizeof *l), *r = malloc(n * sizeof *r);
    if (!l || !r) {
        free(l), free(r);
        return nn_fail("out of memory");
    }
    shift_search s;
    shift_search_init(&s, dmin, dmax);
    *skipped = 0;
    for (int i = 0; i < ds->n; i++) {
        if (deep3d_load_eval_pair(ds, i, w, h, l, r)) {
            ++*skipped; /* the loader skips (and reports) the same pair in training */
            continue;
        }
        shift_search_add(&s, l, r, 1, h, w);
        if (cov && disparity_coverage_add(cov, l, r, h, w)) {
            free(l), free(r);
            return -1;
        }
    }
    free(l), free(r);
    if (*skipped == ds->n) return nn_fail_context("no pair of %d could be loaded", ds->n);
    *best = shift_search_best(&s, mae);
    return 0;
}

int deep3d_evaluate(deep3d_model *m, const stereo_dataset *ds, int global_d, eval_result *r) {
    const int w = m->cfg.width, h = m->cfg.height;
    const size_t n = (size_t)3 * h * w;
    nn_tensor *left = nn_tensor_new4(NN_CPU, 1, 3, h, w), *right = nn_tensor_new_like(left);
    nn_real *pred = malloc(n * sizeof *pred);
    double sum_model = 0, sum_identity = 0, sum_global = 0;
    int rc = -1;
    if (!left || !right || !pred) goto done;
    for (int i = 0; i < ds->n; i++) {
        if (deep3d_load_eval_pair(ds, i, w, h, left->data, right->data)) goto done;
        nn_tensor *in = nn_tensor_to(left, m->device), *out = NULL;
        nn_graph g;
        nn_graph_init(&g, 0);
        int err = !in || deep3d_forward(m, &g, in, &out, NULL) || nn_tensor_download(out, pred);
        nn_tensor_unref(in), nn_tensor_unref(out);
        nn_graph_free(&g);
        if (err) goto done;
        sum_model += abs_diff_sum(pred, right->data, n);
        sum_identity += baseline_shift_abs_sum(left->data, right->data, 1, h, w, 0);
        sum_global += baseline_shift_abs_sum(left->data, right->data, 1, h, w, global_d);
    }
    r->pairs = ds->n;
    r->mae_model = sum_model / ((double)n * ds->n);
    r->mae_identity = sum_identity / ((double)n * ds->n);
    r->mae_global = sum_global / ((double)n * ds->n);
    r->global_disparity = global_d;
    rc = 0;
done:
    if (rc && !left) nn_fail_context("evaluation");
    nn_tensor_unref(left), nn_tensor_unref(right);
    free(pred);
    return rc;
}
