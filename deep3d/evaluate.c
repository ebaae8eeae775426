#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/augment.h"
#include "../infer/infer.h"
#include "baselines.h"
#include "metrics.h"
#include "runtime.h"

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
    int used = 0;
    r->skipped = 0;
    for (int i = 0; i < ds->n; i++) {
        if (deep3d_load_eval_pair(ds, i, w, h, left->data, right->data)) {
            r->skipped++; /* unreadable since it was checked: skipped like a training pair */
            continue;
        }
        used++;
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
    if (!used) {
        nn_fail_context("evaluation: none of the %d pairs could be loaded; the last", ds->n);
        goto done;
    }
    r->pairs = used;
    r->mae_model = sum_model / ((double)n * used);
    r->mae_identity = sum_identity / ((double)n * used);
    r->mae_global = sum_global / ((double)n * used);
    r->global_disparity = global_d;
    rc = 0;
done:
    if (rc && !left) nn_fail_context("evaluation");
    nn_tensor_unref(left), nn_tensor_unref(right);
    free(pred);
    return rc;
}

void eval_report_free(eval_report *r) {
    free(r->rows);
    r->rows = NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The left view shifted by d whole pixels, edge columns repeated: out (3, h, w). */
static void shift_image(nn_real *out, const nn_real *left, int h, int w, int d) {
    for (int row = 0; row < 3 * h; row++)
        for (int x = 0; x < w; x++) {
            int u = x - d;
            u = u < 0 ? 0 : u >= w ? w - 1 : u;
            out[(size_t)row * w + x] = left[(size_t)row * w + u];
        }
}

/* Fills row e from left, right (3, h, w) and the prediction. */
static int measure_pair(eval_pair *e, const nn_real *left, const nn_real *right, const nn_real *pred, nn_real *tmp,
                        int h, int w, int shift) {
    const size_t n = (size_t)3 * h * w;
    e->w = w, e->h = h;
    e->mae_model = abs_diff_sum(pred, right, n) / (double)n;
    e->mae_identity = abs_diff_sum(left, right, n) / (double)n;
    shift_image(tmp, left, h, w, shift);
    e->mae_global = abs_diff_sum(tmp, right, n) / (double)n;
    e->ssim_model = metric_ssim(pred, right, h, w);
    e->ssim_identity = metric_ssim(left, right, h, w);
    e->ssim_global = metric_ssim(tmp, right, h, w);
    e->detail_model = metric_detail_kept(pred, left, h, w);
    e->detail_true = metric_detail_kept(right, left, h, w);
    return isnan(e->ssim_model) || isnan(e->ssim_identity) || isnan(e->ssim_global) || isnan(e->detail_model) ||
                   isnan(e->detail_true)
               ? -1
               : 0;
}

int deep3d_evaluate_pairs(deep3d_model *m, const stereo_dataset *ds, const render_config *cfg, int source,
                          int global_d, eval_report *r) {
    memset(r, 0, sizeof *r);
    if (ds->n < 1) return nn_fail("evaluation: no pairs");
    r->rows = calloc((size_t)ds->n, sizeof *r->rows);
    double *details = malloc((size_t)ds->n * sizeof *details);
    if (!r->rows || !details) {
        free(details), eval_report_free(r);
        return nn_fail("evaluation: out of memory for %d pairs", ds->n);
    }
    r->global_disparity = global_d;
    const int nw = m->cfg.width, nh = m->cfg.height;
    int rc = 0;
    for (int i = 0; i < ds->n && rc == 0; i++) {
        eval_pair *e = &r->rows[i];
        deep3d_stem(ds->items[i].left, e->name, (int)sizeof e->name);
        image *l = NULL, *rt = NULL;
        nn_real *left, *right, *pred = NULL, *tmp = NULL;
        int h, w;
        if (source) {
            if (stereo_load_pair(ds, i, &l, &rt)) {
                rc = -1;
                break;
            }
            h = l->h, w = l->w, left = l->data, right = rt->data;
        } else {
            h = nh, w = nw;
            left = malloc((size_t)3 * h * w * sizeof *left), right = malloc((size_t)3 * h * w * sizeof *right);
            if (!left || !right || deep3d_load_eval_pair(ds, i, w, h, left, right)) {
                if (!left || !right) nn_fail("evaluation: out of memory");
                free(left), free(right);
                rc = -1;
                break;
            }
        }
        const size_t n = (size_t)3 * h * w;
        pred = malloc(n * sizeof *pred), tmp = malloc(n * sizeof *tmp);
        render_info info;
        if (!pred || !tmp) rc = nn_fail("evaluation: out of memory for a %d x %d pair", w, h);
        else if (infer_render(m, cfg, left, h, w, pred, NULL, &info))
            rc = nn_fail_context("evaluation of %s", ds->items[i].left);
        else {
            e->scale = info.scale;
            rc = measure_pair(e, left, right, pred, tmp, h, w, (int)lround(info.scale * global_d));
            if (rc) nn_fail_context("evaluation of %s", ds->items[i].left);
        }
        free(pred), free(tmp);
        if (source) image_free(l), image_free(rt);
        else free(left), free(right);
    }
    if (rc) {
        free(details), eval_report_free(r);
        return -1;
    }
    r->pairs = ds->n;
    for (int i = 0; i < ds->n; i++) {
        const eval_pair *e = &r->rows[i];
        r->mae_model += e->mae_model / ds->n, r->mae_identity += e->mae_identity / ds->n;
        r->mae_global += e->mae_global / ds->n, r->ssim_model += e->ssim_model / ds->n;
        r->ssim_identity += e->ssim_identity / ds->n, r->ssim_global += e->ssim_global / ds->n;
        details[i] = e->detail_model;
    }
    qsort(details, (size_t)ds->n, sizeof *details, cmp_double);
    r->detail_model_min = details[0];
    r->detail_model_median =
        ds->n % 2 ? details[ds->n / 2] : 0.5 * (details[ds->n / 2 - 1] + details[ds->n / 2]);
    free(details);
    return 0;
}
