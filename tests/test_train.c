/* Training end to end.
 *  - In-process: the whole Deep3D model, trained with Adam on a synthetic pair whose
 *    right view is the left view shifted by a known disparity, must drive the L1 loss
 *    close to zero and put most probability on that disparity (the test).
 *  - Through the real binary (DEEP3D_BIN, see tests/test_cli.c for the spawn helpers):
 *    --resume continues exactly (same losses, same final tensors as an uninterrupted
 *    run), checkpoints hold the optimizer state and the step, and eval --json reports
 *    the identity baseline that the test computes itself.
 * Everything runs at a tiny configuration (released, 64x32, width_div 16, D = 9 from
 * -4) with --threads 1 so the file takes seconds on 2 cores. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "../deep3d/model.h"
#include "../nn/nn.h"
#include "../nn/weights.h"
#include "../train/dist.h"
#include "../train/train.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------- */

enum { TW = 64, TH = 32, TD = 9, TDMIN = -4 };

static deep3d_config tiny_config(void) {
    deep3d_config cfg = deep3d_default_config();
    cfg.width = TW, cfg.height = TH, cfg.disparities = TD, cfg.dmin = TDMIN, cfg.width_div = 16;
    return cfg;
}

static char root[64];

static void make_root(void) { tu_tmpdir(root, "deep3d_test_train"); }
static void remove_root(void) { tu_rmtree(root); }

/* root + "/" + name */
static const char *P(const char *name) { return tu_join(root, name); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A smooth random texture, planar (3, h, w), integer values spanning 0..255: uniform
 * noise blurred twice by a 5x5 box (edges clamped), then stretched per channel. */
static void smooth_texture(nn_real *out, int w, int h, uint64_t seed) {
    const size_t plane = (size_t)w * h;
    double *a = malloc(plane * sizeof *a), *b = malloc(plane * sizeof *b);
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < plane; i++) a[i] = nn_hash_uniform(seed, c * plane + i);
        for (int pass = 0; pass < 2; pass++) {
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double s = 0;
                    for (int k = -2; k <= 2; k++) s += a[y * w + clampi(x + k, 0, w - 1)];
                    b[y * w + x] = s / 5;
                }
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double s = 0;
                    for (int k = -2; k <= 2; k++) s += b[clampi(y + k, 0, h - 1) * w + x];
                    a[y * w + x] = s / 5;
                }
        }
        double lo = a[0], hi = a[0];
        for (size_t i = 0; i < plane; i++) lo = fmin(lo, a[i]), hi = fmax(hi, a[i]);
        for (size_t i = 0; i < plane; i++) out[c * plane + i] = (nn_real)round(255 * (a[i] - lo) / (hi - lo));
    }
    free(a), free(b);
}

/* right(c, y, x) = left(c, y, clamp(x - d, 0, w-1)): the selection layer's convention
 * (DEEP3D.md "Selection layer"), so disparity d reproduces right exactly. */
static void shift_view(nn_real *right, const nn_real *left, int w, int h, int d) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                right[(c * h + y) * w + x] = left[(c * h + y) * w + clampi(x - d, 0, w - 1)];
}

static void write_png_planar(const char *path, const nn_real *planar, int w, int h) {
    const size_t plane = (size_t)w * h;
    unsigned char *px = malloc(3 * plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) px[3 * i + c] = (unsigned char)lrint(planar[c * plane + i]);
    cr_assert(stbi_write_png(path, w, h, 3, px, 3 * w), "stbi_write_png %s", path);
    free(px);
}

/* ---- learning a known disparity (in-process) ------------------------------------ */

typedef struct fit_result {
    double first_loss, final_loss, identity_mae;
    double mean_prob_true;   /* mean probability of the true disparity, interior pixels */
    double argmax_true_frac; /* fraction of interior pixels whose argmax is it */
    double init_max_prob;    /* mean over pixels of the largest probability, before training */
} fit_result;

/* Trains the tiny model (initialised with `seed`, final.weight then multiplied by
 * final_scale; dropout 0; Adam, lr 1e-3) for `steps` steps on a batch of 2 synthetic
 * pairs with right = left shifted by d. Then evaluates in inference mode and scores
 * the probabilities against disparity check_d over the interior pixels, where every
 * shift d_k reads a distinct, in-range column: x in [dmax, W-1+dmin]. */
static fit_result fit_shift(int d, int check_d, uint64_t seed, double final_scale, int steps) {
    const int n = 2;
    const size_t img = (size_t)3 * TH * TW, plane = (size_t)TH * TW;
    deep3d_config cfg = tiny_config();
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, seed), 0, "%s", nn_last_error());
    m.dropout = 0;
    for (size_t i = 0; i < m.final_w->numel; i++) m.final_w->data[i] *= (nn_real)final_scale;
    nn_tensor *left = nn_tensor_new4(NN_CPU, n, 3, TH, TW), *right = nn_tensor_new_like(left);
    cr_assert(left && right);
    for (int i = 0; i < n; i++) {
        smooth_texture(left->data + i * img, TW, TH, 1000 + (uint64_t)i);
        shift_view(right->data + i * img, left->data + i * img, TW, TH, d);
    }
    fit_result res = {0};
    for (size_t i = 0; i < n * img; i++) res.identity_mae += fabs((double)left->data[i] - right->data[i]);
    res.identity_mae /= (double)(n * img);

    nn_tensor *params[DEEP3D_MAX_TENSORS];
    int np = 0;
    for (int i = 0; i < m.n_tensors; i++)
        if (m.trainable[i]) params[np++] = m.tensors[i];
    nn_optimizer opt;
    cr_assert_eq(nn_optimizer_init(&opt, NN_OPTIM_ADAM, params, np), 0, "%s", nn_last_error());
    for (int step = 0; step < steps; step++) {
        nn_graph g;
        nn_graph_init(&g, 1);
        nn_tensor *pred = NULL, *prob = NULL, *loss = NULL;
        cr_assert_eq(deep3d_forward(&m, &g, left, &pred, step == 0 ? &prob : NULL), 0, "%s", nn_last_error());
        cr_assert_not_null(loss = nn_l1_loss(&g, pred, right), "%s", nn_last_error());
        cr_assert_eq(nn_graph_backward(&g, loss), 0, "%s", nn_last_error());
        cr_assert(isfinite(loss->data[0]), "loss %g at step %d", (double)loss->data[0], step);
        if (step == 0) {
            res.first_loss = loss->data[0];
            for (int i = 0; i < n; i++)
                for (size_t j = 0; j < plane; j++) {
                    double mx = 0;
                    for (int k = 0; k < TD; k++) mx = fmax(mx, prob->data[((size_t)i * TD + k) * plane + j]);
                    res.init_max_prob += mx / (double)(n * plane);
                }
        }
        cr_assert_eq(nn_optimizer_step(&opt, (nn_real)1e-3), 0, "%s", nn_last_error());
        cr_assert_eq(nn_optimizer_zero_grad(&opt), 0);
        nn_tensor_unref(pred), nn_tensor_unref(prob), nn_tensor_unref(loss);
        nn_graph_free(&g);
    }
    /* inference mode: batch-norm running statistics, no tape */
    nn_graph g;
    nn_graph_init(&g, 0);
    nn_tensor *pred = NULL, *prob = NULL;
    cr_assert_eq(deep3d_forward(&m, &g, left, &pred, &prob), 0, "%s", nn_last_error());
    for (size_t i = 0; i < n * img; i++) res.final_loss += fabs((double)pred->data[i] - right->data[i]);
    res.final_loss /= (double)(n * img);
    const int kt = check_d - TDMIN, dmax = TDMIN + TD - 1;
    long cells = 0, hits = 0;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < TH; y++)
            for (int x = dmax; x <= TW - 1 + TDMIN; x++) {
                const nn_real *p = prob->data + (size_t)i * TD * plane + (size_t)y * TW + x;
                int best = 0;
                for (int k = 1; k < TD; k++)
                    if (p[(size_t)k * plane] > p[(size_t)best * plane]) best = k;
                res.mean_prob_true += p[(size_t)kt * plane];
                hits += best == kt, cells++;
            }
    res.mean_prob_true /= (double)cells;
    res.argmax_true_frac = (double)hits / (double)cells;
    nn_tensor_unref(pred), nn_tensor_unref(prob);
    nn_graph_free(&g);
    nn_optimizer_free(&opt);
    nn_tensor_unref(left), nn_tensor_unref(right);
    deep3d_model_free(&m);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
    return res;
}

/* The criteria: loss below 10% of the start and of the identity baseline,
 * mean probability of the true disparity > 0.5 and argmax on it on > 80% of the
 * interior pixels. (Checked once with check_d = d + 1: the probability checks fail.) */
static void expect_learned(int d, uint64_t seed, double final_scale) {
    fit_result r = fit_shift(d, d, seed, final_scale, 150);
    cr_log_info("d = %+d, seed %d, final.weight x %g: initial max prob %.3f, loss %.3f -> %.3f (identity %.3f), "
                "p(true) %.3f, argmax true on %.1f%%",
                d, (int)seed, final_scale, r.init_max_prob, r.first_loss, r.final_loss, r.identity_mae,
                r.mean_prob_true, 100 * r.argmax_true_frac);
    cr_expect_lt(r.final_loss, 0.1 * r.first_loss, "d = %d, seed %d: L1 loss %.3f -> %.3f, not below 10%% of the start",
                 d, (int)seed, r.first_loss, r.final_loss);
    cr_expect_lt(r.final_loss, 0.1 * r.identity_mae, "d = %d, seed %d: L1 loss %.3f, identity baseline %.3f", d,
                 (int)seed, r.final_loss, r.identity_mae);
    cr_expect_gt(r.mean_prob_true, 0.5, "d = %d, seed %d: mean probability of the true disparity %.3f", d, (int)seed,
                 r.mean_prob_true);
    cr_expect_gt(r.argmax_true_frac, 0.8, "d = %d, seed %d: argmax is the true disparity on %.1f%% of interior pixels",
                 d, (int)seed, 100 * r.argmax_true_frac);
}

TestSuite(train_fit, .timeout = 120);

/* From the model exactly as deep3d_model_init makes it (final.weight 1000x below He,
 * so the softmax starts near uniform), the whole model (forward, backward, selection,
 * Adam) learns a known disparity. With a He-initialised final conv this failed for
 * 3 of 16 (seed, d) cases in a sweep of seeds 1..8 (d = +3 at seeds 3, 6, 7). */
Test(train_fit, learns_a_positive_known_disparity) {
    expect_learned(3, 7, 1);
    expect_learned(3, 3, 1);
    expect_learned(3, 6, 1);
}
Test(train_fit, learns_a_negative_known_disparity) {
    expect_learned(-2, 7, 1);
    expect_learned(-2, 8, 1);
}

/* The cause: at initialisation (training mode, smooth textured input) the softmax
 * over the D disparities must not be saturated, or the disparities without mass get
 * no gradient. Measured with the He-initialised final conv: mean largest probability
 * 0.99 (uniform: 1/D = 0.11); with final.weight x 1e-3 (now the product's), 0.12. */
Test(train_fit, softmax_over_disparities_is_not_saturated_at_initialisation) {
    for (uint64_t seed = 1; seed <= 3; seed++) {
        fit_result r = fit_shift(3, 3, seed, 1, 1);
        cr_expect_lt(r.init_max_prob, 0.5, "seed %d: mean largest disparity probability %.3f at initialisation",
                     (int)seed, r.init_max_prob);
    }
}

/* ---- the binary: resume, checkpoints, eval ------------------------------------- */

TestSuite(train_cli, .init = make_root, .fini = remove_root, .timeout = 120);

/* A folder of n pairs, each a smooth texture and its shift by 1 + i pixels (w x h). */
static void write_dataset(const char *dir, int n, int w, int h) {
    cr_assert_eq(mkdir(P(dir), 0755), 0, "mkdir %s", dir);
    nn_real *l = malloc((size_t)3 * w * h * sizeof *l), *r = malloc((size_t)3 * w * h * sizeof *r);
    char name[256];
    for (int i = 0; i < n; i++) {
        smooth_texture(l, w, h, 50 + (uint64_t)i);
        shift_view(r, l, w, h, 1 + i);
        snprintf(name, sizeof name, "%s/f%d_L.png", dir, i);
        write_png_planar(P(name), l, w, h);
        snprintf(name, sizeof name, "%s/f%d_R.png", dir, i);
        write_png_planar(P(name), r, w, h);
    }
    free(l), free(r);
}

#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})
#define TINY "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16", \
             "--disparities", "9", "--dmin", "-4", "--batch", "2", "--log-every", "1"

static void expect_ok(tc_result *r, const char *what) {
    cr_assert(r->exited && r->status == 0, "%s failed (status %d): %s", what, r->status, r->err);
    tc_free(r);
}

/* log.csv rows: lines[i] is the row of step i (1-based) as "loss,lr" (the fields that
 * must repeat; img_per_s is a timing). Returns the number of the last step seen. */
static int read_log(const char *path, char lines[][64], int max_step) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char buf[512];
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    cr_assert(!strncmp(buf, "step,loss,lr,", 13), "log.csv header: %s", buf);
    int last = 0;
    while (fgets(buf, sizeof buf, f)) {
        int step;
        char loss[32], lr[32];
        cr_assert_eq(sscanf(buf, "%d,%31[^,],%31[^,],", &step, loss, lr), 3, "log.csv row: %s", buf);
        cr_assert(step >= 1 && step <= max_step, "log.csv step %d", step);
        snprintf(lines[step], 64, "%s,%s", loss, lr);
        last = step;
    }
    fclose(f);
    return last;
}

/* Run A: 4 steps in one go, a checkpoint every 2. Run B: 2 steps of a run planned for 4
 * (--lr-steps 4: the checkpoints hold the schedule's length), then --resume from its
 * checkpoint to step 4. Same losses (log.csv) and bit-identical final files. */
static void expect_exact_resume(const char *optimizer) {
    write_dataset("d", 3, 80, 40);
    tc_result r;
    RUN(&r, "train", TINY, "--optimizer", optimizer, "--lr", "0.001", "--data", P("d"), "--out", P("a"), "--steps",
        "4", "--checkpoint-every", "2");
    expect_ok(&r, "run A");
    RUN(&r, "train", TINY, "--optimizer", optimizer, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps",
        "2", "--lr-steps", "4", "--checkpoint-every", "2"); /* planned as run A, stopped half-way */
    expect_ok(&r, "run B, first 2 steps");
    nn_weights_file *ck = nn_weights_open(P("b/checkpoint.d3w"));
    cr_assert_not_null(ck, "%s", nn_last_error());
    long step = 0;
    cr_assert_eq(nn_weights_config_int(ck, "step", &step), 0, "%s", nn_last_error());
    cr_assert_eq(step, 2, "the checkpoint after 2 steps says step=%ld", step);
    nn_weights_close(ck);
    RUN(&r, "train", TINY, "--optimizer", optimizer, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps",
        "4", "--checkpoint-every", "2", "--resume", P("b/checkpoint.d3w"));
    cr_assert(strstr(r.out, "resuming from") && strstr(r.out, "at step 2"), "no resume line:\n%s", r.out);
    expect_ok(&r, "run B, resumed");

    char la[5][64] = {{0}}, lb[5][64] = {{0}};
    cr_assert_eq(read_log(P("a/log.csv"), la, 4), 4);
    cr_assert_eq(read_log(P("b/log.csv"), lb, 4), 4);
    for (int s = 1; s <= 4; s++)
        cr_assert_str_eq(la[s], lb[s], "step %d: loss,lr %s uninterrupted vs %s resumed", s, la[s], lb[s]);
    cr_assert_str_neq(la[3], la[4], "steps 3 and 4 log the same loss: the test would not see a difference");
    tu_expect_same_weights(P("a/model.d3w"), P("b/model.d3w"));
    tu_expect_same_weights(P("a/checkpoint.d3w"), P("b/checkpoint.d3w"));
}

Test(train_cli, resume_is_exact_with_sgd) { expect_exact_resume("sgd"); }
Test(train_cli, resume_is_exact_with_adam) { expect_exact_resume("adam"); }

#define TINY_CUDA "--threads", "1", "--device", "cuda", "--deterministic", "--width", "64", "--height", "32", \
                  "--width-div", "16", "--disparities", "9", "--dmin", "-4", "--batch", "2", "--log-every", "1"

/* The loss of each step in log.csv, as a number. */
static void read_losses(const char *path, double *loss, int steps) {
    char lines[8][64] = {{0}};
    cr_assert_eq(read_log(path, lines, 7), steps, "%s: not %d steps", path, steps);
    for (int s = 1; s <= steps; s++) loss[s] = strtod(lines[s], NULL);
}

/* On CUDA the loop uploads batch k+1 while step k runs (train/train.c). Run A trains 3
 * steps in one go: steps 2 and 3 get their batches through the overlapped upload. Run B
 * trains one step per process, resuming each time, so every batch is the first of its
 * run, uploaded synchronously before its step is queued (the order before the overlap).
 * Same losses, up to float rounding (another process may measure and pick other
 * deterministic cuDNN algorithms), and far closer than the losses of different steps,
 * which a stale or half-placed batch would give. Skips without a GPU. */
Test(train_cli, cuda_overlapped_uploads_train_like_synchronous_ones) {
    tu_require_cuda();
    write_dataset("d", 3, 80, 40);
    tc_result r;
    RUN(&r, "train", TINY_CUDA, "--lr", "0.001", "--data", P("d"), "--out", P("a"), "--steps", "3");
    expect_ok(&r, "run A, 3 steps overlapped");
    RUN(&r, "train", TINY_CUDA, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps", "1");
    expect_ok(&r, "run B, step 1");
    RUN(&r, "train", TINY_CUDA, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps", "2", "--resume",
        P("b/checkpoint.d3w"));
    expect_ok(&r, "run B, step 2");
    RUN(&r, "train", TINY_CUDA, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps", "3", "--resume",
        P("b/checkpoint.d3w"));
    expect_ok(&r, "run B, step 3");
    double la[4], lb[4];
    read_losses(P("a/log.csv"), la, 3);
    read_losses(P("b/log.csv"), lb, 3);
    const double tol = 1e-4;
    for (int s = 1; s <= 3; s++) {
        cr_assert(fabs(la[s] - lb[s]) <= tol * fabs(lb[s]), "step %d: loss %.6f overlapped vs %.6f synchronous", s,
                  la[s], lb[s]);
        if (s > 1)
            cr_assert(fabs(la[s] - la[s - 1]) > 10 * tol * fabs(la[s]),
                      "steps %d and %d log nearly the same loss (%.6f, %.6f): the test would not see a stale batch",
                      s - 1, s, la[s - 1], la[s]);
    }
}

/* The checkpoint holds the model, the training state in its configuration (step, seed,
 * batch, optimizer, lr, schedule) and one optimizer state tensor per trainable
 * parameter and role, of the parameter's shape: velocity for SGD, m and v for Adam. */
static void expect_checkpoint_contents(const char *optimizer) {
    write_dataset("d", 2, 64, 32);
    tc_result r;
    RUN(&r, "train", TINY, "--optimizer", optimizer, "--lr", "0.001", "--seed", "5", "--data", P("d"), "--out",
        P("a"), "--steps", "3");
    expect_ok(&r, "train");
    nn_weights_file *f = nn_weights_open(P("a/checkpoint.d3w"));
    cr_assert_not_null(f, "%s", nn_last_error());
    long step, seed, batch;
    const char *opt_name, *sched;
    double lr;
    cr_assert_eq(nn_weights_config_int(f, "step", &step) || nn_weights_config_int(f, "seed", &seed) ||
                     nn_weights_config_int(f, "batch", &batch) || nn_weights_config_str(f, "optimizer", &opt_name) ||
                     nn_weights_config_double(f, "lr", &lr) || nn_weights_config_str(f, "lr_schedule", &sched),
                 0, "%s", nn_last_error());
    cr_assert(step == 3 && seed == 5 && batch == 2, "step %ld seed %ld batch %ld", step, seed, batch);
    cr_assert_str_eq(opt_name, optimizer);
    cr_assert_eq(lr, 0.001);
    cr_assert_str_eq(sched, "step");

    deep3d_config cfg = tiny_config();
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, 1), 0, "%s", nn_last_error());
    const int adam = !strcmp(optimizer, "adam");
    const char *roles[2] = {adam ? "m" : "velocity", "v"};
    int n_trainable = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const nn_tensor *p = m.tensors[i];
        cr_assert(nn_weights_has(f, p->name), "checkpoint lacks model tensor %s", p->name);
        n_trainable += m.trainable[i];
        for (int role = 0; role < 1 + adam; role++) {
            char name[128];
            snprintf(name, sizeof name, "optim.%s.%s", roles[role], p->name);
            cr_assert_eq(nn_weights_has(f, name), m.trainable[i], "%s %s", name,
                         m.trainable[i] ? "missing" : "present for a non-trainable tensor");
            if (!m.trainable[i]) continue;
            nn_tensor *s = nn_tensor_new(NN_CPU, p->ndim, p->shape);
            cr_assert_eq(nn_weights_read(f, name, s), 0, "%s", nn_last_error());
            if (role == 1)
                for (size_t j = 0; j < s->numel; j++) cr_assert_geq(s->data[j], 0, "%s[%zu] < 0", name, j);
            nn_tensor_unref(s);
        }
    }
    cr_assert_eq(nn_weights_count(f), m.n_tensors + (1 + adam) * n_trainable, "unexpected extra tensors");
    /* the state moved: the final layer's bias gets a gradient at every step */
    char name[128];
    snprintf(name, sizeof name, "optim.%s.final.bias", roles[0]);
    nn_tensor *s = nn_tensor_new4(NN_CPU, TD, 0, 0, 0);
    cr_assert_eq(nn_weights_read(f, name, s), 0, "%s", nn_last_error());
    double mag = 0;
    for (int k = 0; k < TD; k++) mag += fabs(s->data[k]);
    cr_assert_gt(mag, 0, "%s is all zeros after 3 steps", name);
    nn_tensor_unref(s);
    deep3d_model_free(&m);
    nn_weights_close(f);
}

Test(train_cli, checkpoint_holds_sgd_state_and_step) { expect_checkpoint_contents("sgd"); }
Test(train_cli, checkpoint_holds_adam_state_and_step) { expect_checkpoint_contents("adam"); }

/* ---- --loss ssim-l1 and --smoothness ---------------------------------------------- */

/* log.csv with the loss's parts: the header ends in ",photometric,smoothness", every
 * row has the 9 fields, both parts are positive and loss = photometric + w * smoothness
 * (each printed with 6 decimals). Returns the number of rows. */
static int expect_loss_parts(const char *path, double w) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char buf[512];
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    const char *tail = ",photometric,smoothness\n";
    cr_assert(strlen(buf) > strlen(tail) && !strcmp(buf + strlen(buf) - strlen(tail), tail), "log.csv header: %s",
              buf);
    int rows = 0;
    while (fgets(buf, sizeof buf, f)) {
        char *field[9];
        int nf = 0;
        for (char *p = buf; nf < 9;) { /* split at commas, keeping empty fields */
            field[nf++] = p;
            char *comma = strchr(p, ',');
            if (!comma) break;
            *comma = 0, p = comma + 1;
        }
        cr_assert_eq(nf, 9, "log.csv row with %d fields", nf);
        const double loss = strtod(field[1], NULL), photo = strtod(field[7], NULL), smooth = strtod(field[8], NULL);
        cr_assert(photo > 0 && smooth > 0, "%s: photometric %g, smoothness %g", path, photo, smooth);
        cr_assert(fabs(loss - (photo + w * smooth)) <= 2e-6, "%s step %s: loss %.6f is not %.6f + %g x %.6f", path,
                  field[0], loss, photo, w, smooth);
        rows++;
    }
    fclose(f);
    return rows;
}

/* The loss settings a checkpoint holds. */
static void expect_loss_settings(const char *path, const char *loss, double smoothness) {
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    const char *got;
    double w;
    cr_assert_eq(nn_weights_config_str(f, "loss", &got) || nn_weights_config_double(f, "smoothness", &w), 0, "%s",
                 nn_last_error());
    cr_assert_str_eq(got, loss, "%s: loss", path);
    cr_assert_eq(w, smoothness, "%s: smoothness %g", path, w);
    nn_weights_close(f);
}

/* --loss ssim-l1 --smoothness 0.1: log.csv gets the photometric and smoothness columns,
 * the checkpoint stores both settings, and --resume keeps them without being told
 * again: a 2-step run resumed to step 3 logs the losses of an uninterrupted 3-step run
 * (a resume that fell back to l1 or to no smoothness would log other losses). A
 * checkpoint without the keys (written before they existed) resumes as l1 with no
 * smoothness (loss = photometric). */
Test(train_cli, ssim_l1_and_smoothness_are_logged_and_kept_by_resume) {
    write_dataset("d", 3, 80, 40);
    tc_result r;
    RUN(&r, "train", TINY, "--loss", "ssim-l1", "--smoothness", "0.1", "--lr", "0.001", "--data", P("d"), "--out",
        P("a"), "--steps", "3");
    expect_ok(&r, "run A, 3 steps");
    RUN(&r, "train", TINY, "--loss", "ssim-l1", "--smoothness", "0.1", "--lr", "0.001", "--data", P("d"), "--out",
        P("b"), "--steps", "2");
    expect_ok(&r, "run B, 2 steps");
    expect_loss_settings(P("b/checkpoint.d3w"), "ssim-l1", 0.1);
    RUN(&r, "train", TINY, "--lr", "0.001", "--data", P("d"), "--out", P("b"), "--steps", "3", "--resume",
        P("b/checkpoint.d3w"));
    cr_assert(strstr(r.out, "loss ssim-l1 + 0.1 x smoothness"), "no loss settings in:\n%s", r.out);
    expect_ok(&r, "run B, resumed");
    expect_loss_settings(P("b/checkpoint.d3w"), "ssim-l1", 0.1);
    cr_assert_eq(expect_loss_parts(P("a/log.csv"), 0.1), 3);
    cr_assert_eq(expect_loss_parts(P("b/log.csv"), 0.1), 3);
    char la[4][64] = {{0}}, lb[4][64] = {{0}};
    cr_assert_eq(read_log(P("a/log.csv"), la, 3), 3);
    cr_assert_eq(read_log(P("b/log.csv"), lb, 3), 3);
    for (int s = 1; s <= 3; s++)
        cr_assert_str_eq(la[s], lb[s], "step %d: loss,lr %s uninterrupted vs %s resumed", s, la[s], lb[s]);

    /* as written before the keys existed */
    tu_rewrite_config(P("b/checkpoint.d3w"), P("old.d3w"), (const char *const[]){"loss", "smoothness", NULL}, "");
    RUN(&r, "train", TINY, "--lr", "0.001", "--data", P("d"), "--out", P("c"), "--steps", "4", "--resume",
        P("old.d3w"));
    cr_assert(strstr(r.out, "loss l1 + 0 x smoothness"), "no loss settings in:\n%s", r.out);
    expect_ok(&r, "run C, resumed from a checkpoint without the loss keys");
    expect_loss_settings(P("c/checkpoint.d3w"), "l1", 0);
    cr_assert_eq(expect_loss_parts(P("c/log.csv"), 0), 1);
}

/* ---- --crop-scale ---------------------------------------------------------------- */

/* The crop_scale a checkpoint holds. */
static double checkpoint_crop_scale(const char *path) {
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    double v = -1;
    cr_assert_eq(nn_weights_config_double(f, "crop_scale", &v), 0, "%s", nn_last_error());
    nn_weights_close(f);
    return v;
}

/* --crop-scale 1 (every crop the largest of the network's aspect) reaches the loader:
 * its losses differ from the default's (0.6..1), the checkpoint stores it, and --resume
 * keeps it without being told: 2 steps resumed to 3 log the losses of an uninterrupted
 * 3-step run. A checkpoint without the key (written before it existed) resumes with the
 * crops of that time, 0.6..1: it logs the losses of the default run. */
Test(train_cli, crop_scale_reaches_the_loader_and_is_kept_by_resume) {
    write_dataset("d", 3, 120, 40);
    tc_result r;
    char la[4][64] = {{0}}, lb[4][64] = {{0}}, ld[4][64] = {{0}}, lo[4][64] = {{0}};
    RUN(&r, "train", TINY, "--crop-scale", "1", "--data", P("d"), "--out", P("a"), "--steps", "3");
    cr_assert(strstr(r.out, "crops 1..1"), "no crop scale in:\n%s", r.out);
    expect_ok(&r, "run A, --crop-scale 1, 3 steps");
    RUN(&r, "train", TINY, "--crop-scale", "1", "--data", P("d"), "--out", P("b"), "--steps", "2");
    expect_ok(&r, "run B, --crop-scale 1, 2 steps");
    cr_assert_eq(checkpoint_crop_scale(P("b/checkpoint.d3w")), 1.0);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "3", "--resume", P("b/checkpoint.d3w"));
    cr_assert(strstr(r.out, "crops 1..1"), "the resumed run lost the crop scale:\n%s", r.out);
    expect_ok(&r, "run B, resumed");
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("dflt"), "--steps", "3");
    cr_assert(strstr(r.out, "crops 0.6..1"), "no default crop scale in:\n%s", r.out);
    expect_ok(&r, "run D, default crops, 3 steps");
    cr_assert_eq(checkpoint_crop_scale(P("dflt/checkpoint.d3w")), TRAIN_CROP_SCALE_BEFORE);
    cr_assert_eq(read_log(P("a/log.csv"), la, 3), 3);
    cr_assert_eq(read_log(P("b/log.csv"), lb, 3), 3);
    cr_assert_eq(read_log(P("dflt/log.csv"), ld, 3), 3);
    for (int s = 1; s <= 3; s++)
        cr_assert_str_eq(la[s], lb[s], "step %d: loss,lr %s uninterrupted vs %s resumed", s, la[s], lb[s]);
    cr_assert(strcmp(la[1], ld[1]), "step 1: --crop-scale 1 and 0.6 logged the same loss,lr %s", la[1]);

    /* as written before the key existed: a default run's step-2 checkpoint, key removed */
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("f"), "--steps", "2");
    expect_ok(&r, "run F, default crops, 2 steps");
    tu_rewrite_config(P("f/checkpoint.d3w"), P("old.d3w"), (const char *const[]){"crop_scale", NULL}, "");
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("g"), "--steps", "3", "--resume", P("old.d3w"));
    cr_assert(strstr(r.out, "crops 0.6..1"), "an old checkpoint did not resume with 0.6..1:\n%s", r.out);
    expect_ok(&r, "run G, resumed from a checkpoint without crop_scale");
    cr_assert_eq(read_log(P("g/log.csv"), lo, 3), 3);
    cr_assert_str_eq(lo[3], ld[3], "step 3: loss,lr %s resumed from the old checkpoint vs %s", lo[3], ld[3]);
}

/* The value of "key": NUMBER in a one-line JSON object (minimal parse). */
static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no key %s in %s", key, json);
    char *end;
    double v = strtod(p + strlen(pat), &end);
    cr_assert(end != p + strlen(pat), "key %s has no number: %s", key, json);
    return v;
}

/* eval --json: one JSON object. The pairs are at the network resolution, so the
 * evaluation's centre crop and resize keep them as written: identity MAE = mean |L-R|
 * over the written pixels; right = left shifted by d_i, so the best single shift
 * (fitted on these pairs, the model file has none) beats or equals the identity;
 * the model's MAE equals a forward pass of the same file in this process. */
Test(train_cli, eval_json_reports_the_identity_baseline) {
    const int n = 3;
    const size_t img = (size_t)3 * TH * TW;
    cr_assert_eq(mkdir(P("d"), 0755), 0);
    nn_real *l = malloc(n * img * sizeof *l), *rt = malloc(n * img * sizeof *rt);
    double sum = 0;
    char name[64];
    for (int i = 0; i < n; i++) {
        smooth_texture(l + i * img, TW, TH, 70 + (uint64_t)i);
        shift_view(rt + i * img, l + i * img, TW, TH, 2);
        for (size_t j = 0; j < img; j++) rt[i * img + j] = fmaxf(0, rt[i * img + j] - (nn_real)(j % 7));
        for (size_t j = 0; j < img; j++) sum += fabs((double)l[i * img + j] - rt[i * img + j]);
        snprintf(name, sizeof name, "d/e%d_L.png", i);
        write_png_planar(P(name), l + i * img, TW, TH);
        snprintf(name, sizeof name, "d/e%d_R.png", i);
        write_png_planar(P(name), rt + i * img, TW, TH);
    }
    const double identity = sum / (double)(n * img);
    deep3d_config cfg = tiny_config();
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, NN_CPU, 3), 0, "%s", nn_last_error());
    cr_assert_eq(deep3d_model_save(&m, P("m.d3w"), 1), 0, "%s", nn_last_error());
    deep3d_model_free(&m);

    tc_result r;
    /* --render blend: the selection layer, which the recomputation below runs (the default
     * warp renderer makes another right view) */
    RUN(&r, "eval", "--threads", "1", "--device", "cpu", "--render", "blend", "--model", P("m.d3w"), "--data", P("d"),
        "--json");
    cr_assert(r.exited && r.status == 0, "eval failed (%d): %s", r.status, r.err);
    const size_t len = strlen(r.out);
    cr_assert(len > 2 && r.out[0] == '{' && r.out[len - 1] == '\n' && r.out[len - 2] == '}' &&
                  strchr(r.out, '\n') == r.out + len - 1,
              "stdout is not one JSON object on one line:\n%s", r.out);
    const double pairs = json_number(r.out, "pairs"), mae_model = json_number(r.out, "mae_model");
    const double mae_identity = json_number(r.out, "mae_identity"), mae_global = json_number(r.out, "mae_global");
    cr_assert_eq(pairs, n, "pairs %g", pairs);
    cr_assert(fabs(mae_identity - identity) <= 1e-5 * (1 + identity), "mae_identity %.6f, mean |L-R| %.6f",
              mae_identity, identity);
    cr_assert_leq(mae_global, mae_identity + 1e-6, "the best shift (shift 0 included) %.6f > identity %.6f",
                  mae_global, mae_identity);
    cr_assert_lt(mae_global, identity - 1, "the shift by 2 should beat the identity clearly: %.6f", mae_global);

    /* the model's error, recomputed here from the same file */
    cr_assert_eq(deep3d_model_load(&m, P("m.d3w"), NN_CPU), 0, "%s", nn_last_error());
    nn_tensor *left = nn_tensor_new4(NN_CPU, 1, 3, TH, TW);
    double err = 0;
    for (int i = 0; i < n; i++) {
        memcpy(left->data, l + i * img, img * sizeof *l);
        nn_graph g;
        nn_graph_init(&g, 0);
        nn_tensor *pred = NULL;
        cr_assert_eq(deep3d_forward(&m, &g, left, &pred, NULL), 0, "%s", nn_last_error());
        for (size_t j = 0; j < img; j++) err += fabs((double)pred->data[j] - rt[i * img + j]);
        nn_tensor_unref(pred);
        nn_graph_free(&g);
    }
    err /= (double)(n * img);
    cr_assert(fabs(mae_model - err) <= 1e-3 * (1 + err), "mae_model %.6f, recomputed %.6f", mae_model, err);
    nn_tensor_unref(left);
    deep3d_model_free(&m);
    free(l), free(rt);
    tc_free(&r);
}

/* ---- --resume auto ---------------------------------------------------------------- */

/* Run A: 4 steps in one go. Run B: --resume auto in an empty folder starts at step 0 and
 * stops at 2; a copy of its checkpoint is kept as checkpoint-000002.d3w; --resume auto
 * goes on to step 4. Then checkpoint.d3w (step 4) is truncated, as by a machine lost
 * while it was copied elsewhere, and a temporary file of an interrupted save is left
 * beside it: --resume auto names the damaged file, skips both, resumes from step 2,
 * drops log rows 3 and 4 and trains them again. Losses and final files equal A's. */
Test(train_cli, resume_auto_takes_the_newest_complete_checkpoint) {
    write_dataset("d", 3, 80, 40);
    tc_result r;
/* --lr-steps 4: the schedule's length, kept in the checkpoint, the same for run B's
 * first part (--steps 2) as for run A */
#define AUTO_ARGS TINY, "--lr", "0.001", "--data", P("d"), "--checkpoint-every", "2", "--lr-steps", "4"
    RUN(&r, "train", AUTO_ARGS, "--out", P("a"), "--steps", "4");
    expect_ok(&r, "run A");
    RUN(&r, "train", AUTO_ARGS, "--out", P("b"), "--steps", "2", "--resume", "auto");
    cr_assert(strstr(r.out, "--resume auto: no checkpoint in") && strstr(r.out, "starting at step 0"),
              "no fresh-start line:\n%s", r.out);
    expect_ok(&r, "run B to step 2");
    tc_result cp;
    tc_run_argv(&cp, root, (const char *const[]){"cp", P("b/checkpoint.d3w"), P("b/checkpoint-000002.d3w"), NULL});
    expect_ok(&cp, "cp");
    RUN(&r, "train", AUTO_ARGS, "--out", P("b"), "--steps", "4", "--resume", "auto");
    cr_assert(strstr(r.out, "resuming from") && strstr(r.out, "at step 2"), "no resume line:\n%s", r.out);
    expect_ok(&r, "run B to step 4");
    /* damage the newest: half of it, and a stray temporary file */
    FILE *f = fopen(P("b/checkpoint.d3w"), "r+");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(P("b/checkpoint.d3w"), size / 2), 0);
    f = fopen(P("b/checkpoint.d3w.tmp.999"), "w");
    cr_assert_not_null(f);
    fputs("partial", f);
    fclose(f);
    RUN(&r, "train", AUTO_ARGS, "--out", P("b"), "--steps", "4", "--resume", "auto");
    cr_assert(strstr(r.err, "skips") && strstr(r.err, "checkpoint.d3w") && strstr(r.err, "truncated"),
              "the damaged checkpoint is not named:\n%s", r.err);
    cr_assert(strstr(r.out, "checkpoint-000002.d3w at step 2"), "not resumed from the older checkpoint:\n%s", r.out);
    expect_ok(&r, "run B resumed past the damaged checkpoint");
    char la[5][64] = {{0}}, lb[5][64] = {{0}};
    cr_assert_eq(read_log(P("a/log.csv"), la, 4), 4);
    cr_assert_eq(read_log(P("b/log.csv"), lb, 4), 4);
    FILE *lf = fopen(P("b/log.csv"), "r");
    int rows = 0;
    char line[512];
    while (fgets(line, sizeof line, lf)) rows++;
    fclose(lf);
    cr_assert_eq(rows, 5, "log.csv has %d lines: steps 3 and 4 logged twice?", rows);
    for (int s = 1; s <= 4; s++) cr_assert_str_eq(la[s], lb[s], "step %d: %s uninterrupted vs %s resumed", s, la[s], lb[s]);
    tu_expect_same_weights(P("a/model.d3w"), P("b/model.d3w"));
    tu_expect_same_weights(P("a/checkpoint.d3w"), P("b/checkpoint.d3w"));
#undef AUTO_ARGS
}

/* ---- data-parallel training through mpirun (train/dist.h) ------------------------- */

TestSuite(train_mpi, .init = make_root, .fini = remove_root, .timeout = 240);

/* The mpirun command's first words (2 processes), or skips the test saying why. */
static int mpirun_prefix(const char **argv) {
    if (!dist_built_with_mpi())
        cr_skip_test("this deep3d was built without MPI (MPI=0, or no libopenmpi-dev when it was built): skipped");
    if (!tc_which("mpirun")) cr_skip_test("mpirun is not installed (.ci/install-deps --test installs openmpi-bin): skipped");
    int n = 0;
    argv[n++] = "mpirun"; /* by name: Open MPI takes an absolute path's folder as its --prefix */
    if (getuid() == 0) argv[n++] = "--allow-run-as-root"; /* Open MPI refuses root otherwise */
    argv[n++] = "--oversubscribe";                          /* more processes than free cores is fine */
    argv[n++] = "--bind-to";
    argv[n++] = "none";
    argv[n++] = "-np";
    argv[n++] = "2";
    argv[n++] = tc_binary();
    return n;
}

/* Runs `mpirun -np 2 deep3d <args>`. */
static void run_mpi(tc_result *r, const char *const *args) {
    const char *argv[64];
    int n = mpirun_prefix(argv);
    while (*args) argv[n++] = *args++;
    argv[n] = NULL;
    tc_run_argv(r, root, argv);
}
#define RUN_MPI(r, ...) run_mpi((r), (const char *const[]){__VA_ARGS__, NULL})

/* The largest |a - b| / max|a| over the tensors of two weights files; the tensor and
 * its element into worst_at. */
static char worst_at[256];
static double weights_rel_diff(const char *a_path, const char *b_path) {
    nn_weights_file *a = nn_weights_open(a_path), *b = nn_weights_open(b_path);
    cr_assert(a && b, "%s", nn_last_error());
    cr_assert_eq(nn_weights_count(a), nn_weights_count(b), "tensor counts differ");
    double worst = 0;
    for (int i = 0; i < nn_weights_count(a); i++) {
        const nn_weights_info *ia = nn_weights_tensor(a, i);
        nn_tensor *ta = nn_tensor_new(NN_CPU, ia->ndim, ia->shape), *tb = nn_tensor_new(NN_CPU, ia->ndim, ia->shape);
        cr_assert_eq(nn_weights_read(a, ia->name, ta), 0, "%s", nn_last_error());
        cr_assert_eq(nn_weights_read(b, ia->name, tb), 0, "%s", nn_last_error());
        double d = 0, scale = 1e-12;
        size_t at = 0;
        for (size_t j = 0; j < ta->numel; j++) {
            const double e = fabs((double)ta->data[j] - (double)tb->data[j]);
            if (e > d) d = e, at = j;
            scale = fmax(scale, fabs((double)ta->data[j]));
        }
        if (d / scale > worst) {
            worst = d / scale;
            snprintf(worst_at, sizeof worst_at, "%s[%zu]: %.9g vs %.9g, max |value| %.3g", ia->name, at,
                     (double)ta->data[at], (double)tb->data[at], scale);
        }
        nn_tensor_unref(ta), nn_tensor_unref(tb);
    }
    nn_weights_close(a), nn_weights_close(b);
    return worst;
}

#define MPI_TINY "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16", \
                 "--disparities", "9", "--dmin", "-4", "--log-every", "1", "--lr", "0.003", "--steps", "4",  \
                 "--checkpoint-every", "2"
/* Losses (0..255 units, 6 to 20 here) of the 2-process run against the 1-process run:
 * |a - b| <= LOSS_RTOL * |a| + LOSS_ATOL; the tensors after 4 steps within
 * WEIGHT_RTOL of each tensor's largest value. The two runs sum in other orders (batch
 * norm's statistics in two parts, the gradients averaged after the backward pass):
 * float32 rounding, about 1e-7 relative per sum, which the steps amplify. Measured here
 * at --lr 0.003: losses within 1e-7 relative, tensors within 4e-5 (SGD's velocity of
 * up.4.weight). At --lr 0.01 this tiny model's steps amplify rounding about 10 times
 * per step (between the two runs: 1e-5, 1e-4, 1e-3, 1e-2 after steps 1..4),
 * hence the smaller rate. */
#define LOSS_RTOL 1e-5
#define LOSS_ATOL 1e-6
#define WEIGHT_RTOL 1e-3

/* The test: 2 processes with --batch 2 against 1 process with --batch 4, 4 SGD
 * steps on 5 pairs (dropout and batch norm in the model): equal losses at every step
 * within the tolerance, and final tensors within WEIGHT_RTOL of their scale. A run of 1
 * process with --batch 2 (half of the batch) must be far outside the tolerance, so the
 * test sees a part missing or taken twice. */
Test(train_mpi, two_processes_train_like_one_with_the_doubled_batch) {
    const char *pre[16];
    mpirun_prefix(pre); /* skips here when there is no mpirun */
    write_dataset("d", 5, 80, 40);
    tc_result r;
    RUN(&r, "train", MPI_TINY, "--batch", "4", "--data", P("d"), "--out", P("one"));
    expect_ok(&r, "1 process, batch 4");
    RUN_MPI(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("two"));
    cr_assert(strstr(r.out, "data parallel: 2 processes") && strstr(r.out, "batch norm statistics over all 4 samples"),
              "no data-parallel line:\n%s\n%s", r.out, r.err);
    cr_assert(r.exited && r.status == 0, "mpirun -np 2 failed (status %d):\n%s\n%s", r.status, r.out, r.err);
    tc_free(&r);
    RUN(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("half"));
    expect_ok(&r, "1 process, batch 2");
    double one[8], two[8], half[8];
    read_losses(P("one/log.csv"), one, 4);
    read_losses(P("two/log.csv"), two, 4);
    read_losses(P("half/log.csv"), half, 4);
    fprintf(stderr, "train_mpi: step, loss of 1 process x batch 4, of 2 processes x batch 2, |difference| "
                    "(tolerance %g x loss + %g), and of 1 process x batch 2\n", LOSS_RTOL, LOSS_ATOL);
    for (int s = 1; s <= 4; s++) {
        const double tol = LOSS_RTOL * fabs(one[s]) + LOSS_ATOL;
        fprintf(stderr, "train_mpi: %d %.6f %.6f %.1e (%.1e) %.6f\n", s, one[s], two[s], fabs(one[s] - two[s]), tol,
                half[s]);
        cr_assert_leq(fabs(one[s] - two[s]), tol, "step %d: loss %.6f (1 process, batch 4) vs %.6f (2 processes)", s,
                      one[s], two[s]);
    }
    cr_assert_gt(fabs(one[1] - half[1]), 100 * (LOSS_RTOL * fabs(one[1]) + LOSS_ATOL),
                 "half the batch gives loss %.6f, the whole %.6f: the test could not see a missing part", half[1],
                 one[1]);
    const double wd = weights_rel_diff(P("one/checkpoint.d3w"), P("two/checkpoint.d3w"));
    fprintf(stderr, "train_mpi: final tensors (checkpoint, optimizer state included): max |difference| / max |value| "
                    "%.2e at %s (tolerance %g)\n", wd, worst_at, WEIGHT_RTOL);
    cr_assert_leq(wd, WEIGHT_RTOL, "the tensors after 4 steps differ by %.3g of their scale (%s)", wd, worst_at);
    cr_assert_gt(weights_rel_diff(P("one/checkpoint.d3w"), P("half/checkpoint.d3w")), 1e-2,
                 "the batch-2 run ends with the same tensors: the training steps changed nothing measurable");
    nn_weights_file *ck = nn_weights_open(P("two/checkpoint.d3w"));
    cr_assert_not_null(ck, "%s", nn_last_error());
    long batch = 0;
    cr_assert_eq(nn_weights_config_int(ck, "batch", &batch), 0);
    cr_assert_eq(batch, 4, "the 2-process checkpoint says batch=%ld, not the whole batch 4", batch);
    nn_weights_close(ck);
}

/* A job that lost a process restarts with --resume auto: 2 processes to step 2, then
 * (as after a crash) 2 processes again with --resume auto to step 4 give the losses and
 * tensors of the uninterrupted 2-process run bit for bit; and 1 process resuming the
 * 2-process checkpoint (batch 4, now 1 x 4) continues within the tolerance. */
Test(train_mpi, resume_auto_continues_a_data_parallel_run) {
    const char *pre[16];
    mpirun_prefix(pre);
    write_dataset("d", 5, 80, 40);
    tc_result r;
    RUN_MPI(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("full"));
    cr_assert(r.exited && r.status == 0, "uninterrupted run failed (%d):\n%s", r.status, r.err);
    tc_free(&r);
    RUN_MPI(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("cut"), "--steps", "2");
    cr_assert(r.exited && r.status == 0, "first half failed (%d):\n%s", r.status, r.err);
    tc_free(&r);
    tc_result cp;
    tc_run_argv(&cp, root, (const char *const[]){"cp", "-r", P("cut"), P("single"), NULL});
    expect_ok(&cp, "cp");
    RUN_MPI(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("cut"), "--resume", "auto");
    cr_assert(r.exited && r.status == 0, "resumed run failed (%d):\n%s", r.status, r.err);
    cr_assert(strstr(r.out, "resuming from") && strstr(r.out, "at step 2"), "no resume line:\n%s", r.out);
    tc_free(&r);
    char la[5][64] = {{0}}, lb[5][64] = {{0}};
    cr_assert_eq(read_log(P("full/log.csv"), la, 4), 4);
    cr_assert_eq(read_log(P("cut/log.csv"), lb, 4), 4);
    for (int s = 1; s <= 4; s++) cr_assert_str_eq(la[s], lb[s], "step %d: %s uninterrupted vs %s resumed", s, la[s], lb[s]);
    tu_expect_same_weights(P("full/model.d3w"), P("cut/model.d3w"));
    /* one process takes over the 2-process checkpoint: the whole batch of 4 (--batch is
     * per process, so it is 4 now; 2 would disagree with the checkpoint) */
    RUN(&r, "train", MPI_TINY, "--batch", "4", "--data", P("d"), "--out", P("single"), "--resume", "auto");
    expect_ok(&r, "1 process resuming the 2-process checkpoint");
    double full[8], single[8];
    read_losses(P("full/log.csv"), full, 4);
    read_losses(P("single/log.csv"), single, 4);
    for (int s = 3; s <= 4; s++)
        cr_assert_leq(fabs(full[s] - single[s]), LOSS_RTOL * fabs(full[s]) + LOSS_ATOL,
                      "step %d: %.6f (2 processes) vs %.6f (1 process resumed)", s, full[s], single[s]);
}

/* A process that fails ends the job: rank 0 cannot create --out (a file is in the way)
 * while rank 1 goes on to wait for it; mpirun must return, not hang, with rank 0's
 * error on stderr. */
Test(train_mpi, a_failing_process_ends_the_job) {
    const char *pre[16];
    mpirun_prefix(pre);
    write_dataset("d", 3, 80, 40);
    FILE *f = fopen(P("file"), "w");
    cr_assert_not_null(f);
    fclose(f);
    tc_result r;
    RUN_MPI(&r, "train", MPI_TINY, "--batch", "2", "--data", P("d"), "--out", P("file/out"));
    cr_assert(r.exited && r.status != 0, "mpirun exited with %d (signal: %d)", r.status, !r.exited);
    cr_assert(strstr(r.err, "deep3d train: rank 0 of 2: cannot create output folder"), "stderr:\n%s", r.err);
    tc_free(&r);
}
