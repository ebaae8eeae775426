/* The whole model against the PyTorch peer's dump (tests/fixtures/README.md): same
 * parameters and inputs -> same right view, probabilities, loss, batch-norm running
 * statistics, and every parameter and input gradient.
 *
 * Tolerances: the peer computed in float64 and stored float32; we compute in float32
 * through ~20 layers, so each tensor is compared with atol = 2e-3 * max|reference|
 * (errors relative to the tensor's scale) and rtol = 1e-2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "../deep3d/model.h"
#include "../nn/cuda_plan.h"
#include "testutil.h"

#define FIXTURE "tests/fixtures/peer_released_w8"

/* Reads FIXTURE/<name with . -> _>.f32 into a host array of n values. */
static nn_real *read_fixture(const char *name, size_t n) {
    char path[256];
    int len = snprintf(path, sizeof path, FIXTURE "/");
    for (const char *p = name; *p; p++) path[len++] = *p == '.' ? '_' : *p;
    snprintf(path + len, sizeof path - (size_t)len, ".f32");
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    float *buf = malloc(n * sizeof *buf);
    nn_real *out = malloc(n * sizeof *out);
    cr_assert_eq(fread(buf, sizeof *buf, n, f), n, "%s: fewer than %zu values", path, n);
    cr_assert_eq(fgetc(f), EOF, "%s: more than %zu values", path, n);
    fclose(f);
    for (size_t i = 0; i < n; i++) out[i] = buf[i];
    free(buf);
    return out;
}

static double manifest_loss(void) {
    FILE *f = fopen(FIXTURE "/manifest.json", "rb");
    cr_assert_not_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *p = strstr(text, "\"loss\":");
    cr_assert_not_null(p, "manifest has no loss");
    return strtod(p + 7, NULL);
}

static void compare(const char *what, const nn_tensor *t, const char *fixture_name) {
    nn_real *want = read_fixture(fixture_name, t->numel), *got = tu_host(t);
    double scale = 0;
    for (size_t i = 0; i < t->numel; i++) scale = fmax(scale, fabs((double)want[i]));
    tu_assert_close(got, want, t->numel, 2e-3 * scale + 1e-12, 1e-2, what);
    free(want), free(got);
}

/* A CUDA test skips itself, saying why, when there is no GPU here. */
static void require_device(nn_device device) {
    if (device == NN_CUDA) tu_require_cuda();
}

static void check_against_dump(nn_device device) {
    require_device(device);
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 128, cfg.height = 64, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 8;
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, device, 1), 0, "%s", nn_last_error());
    m.dropout = 0; /* the dump was made with dropout off */
    char name[96];
    for (int i = 0; i < m.n_tensors; i++) {
        if (!m.trainable[i]) continue; /* running stats start at 0 / 1 as in PyTorch */
        snprintf(name, sizeof name, "param.%s", m.tensors[i]->name);
        nn_real *v = read_fixture(name, m.tensors[i]->numel);
        cr_assert_eq(nn_tensor_upload(m.tensors[i], v), 0);
        free(v);
    }
    nn_tensor *left = nn_tensor_new4(device, 1, 3, 64, 128), *target = nn_tensor_new_like(left);
    nn_real *l = read_fixture("input.left", left->numel), *r = read_fixture("input.right", left->numel);
    nn_tensor_upload(left, l), nn_tensor_upload(target, r);
    free(l), free(r);
    left->requires_grad = 1;

    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *right = NULL, *prob = NULL;
    cr_assert_eq(deep3d_forward(&m, &g, left, &right, &prob), 0, "%s", nn_last_error());
    nn_tensor *loss = nn_l1_loss(&g, right, target);
    cr_assert_not_null(loss, "%s", nn_last_error());
    cr_assert_eq(nn_graph_backward(&g, loss), 0, "%s", nn_last_error());

    compare("right view", right, "output.right_pred");
    compare("probabilities", prob, "output.prob");
    double want_loss = manifest_loss();
    nn_real got_loss;
    cr_assert_eq(nn_tensor_download(loss, &got_loss), 0);
    cr_assert(fabs(got_loss - want_loss) <= 1e-4 * want_loss, "loss %.6f, peer %.6f", (double)got_loss, want_loss);
    compare("d loss / d left", left->grad, "grad.input.left");
    int checked = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        nn_tensor *t = m.tensors[i];
        if (m.trainable[i]) {
            snprintf(name, sizeof name, "grad.param.%s", t->name);
            cr_assert_not_null(t->grad, "%s has no gradient", t->name);
            compare(name, t->grad, name);
        } else {
            snprintf(name, sizeof name, "buffer.%s", t->name);
            compare(name, t, name);
        }
        checked++;
    }
    cr_assert_eq(checked, 60, "released variant: the peer's 52 parameters + 8 running statistics, got %d", checked);
    nn_tensor_unref(right), nn_tensor_unref(prob), nn_tensor_unref(loss);
    nn_graph_free(&g);
    nn_tensor_unref(left), nn_tensor_unref(target);
    deep3d_model_free(&m);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(model, matches_pytorch_peer_dump) { check_against_dump(NN_CPU); }

/* The same check with the model on the GPU (tolerances as above: the peer is float64). */
Test(model, matches_pytorch_peer_dump_on_cuda) { check_against_dump(NN_CUDA); }

/* Trains `steps` SGD steps on fixed synthetic data from the model saved at `path`,
 * writing each step's loss into losses. */
static void train_from_file(const char *path, nn_device device, int steps, nn_real *losses) {
    deep3d_model m;
    cr_assert_eq(deep3d_model_load(&m, path, device), 0, "%s", nn_last_error());
    nn_tensor *params[DEEP3D_MAX_TENSORS];
    int n = 0;
    for (int i = 0; i < m.n_tensors; i++)
        if (m.trainable[i]) params[n++] = m.tensors[i];
    nn_optimizer opt;
    cr_assert_eq(nn_optimizer_init(&opt, NN_OPTIM_SGD, params, n), 0);
    nn_tensor *lh = tu_uniform4(2, 3, m.cfg.height, m.cfg.width, 0, 255, 5);
    nn_tensor *rh = tu_uniform4(2, 3, m.cfg.height, m.cfg.width, 0, 255, 6);
    nn_tensor *left = nn_tensor_to(lh, device), *right = nn_tensor_to(rh, device);
    for (int s = 0; s < steps; s++) {
        nn_graph g;
        nn_graph_init(&g, 1);
        g.dropout_seed = 1000 + (unsigned)s;
        nn_tensor *pred = NULL;
        cr_assert_eq(deep3d_forward(&m, &g, left, &pred, NULL), 0, "%s", nn_last_error());
        nn_tensor *loss = nn_l1_loss(&g, pred, right);
        cr_assert_eq(nn_graph_backward(&g, loss), 0, "%s", nn_last_error());
        cr_assert_eq(nn_tensor_download(loss, &losses[s]), 0);
        cr_assert_eq(nn_optimizer_step(&opt, (nn_real)1e-3), 0, "%s", nn_last_error());
        cr_assert_eq(nn_optimizer_zero_grad(&opt), 0);
        nn_tensor_unref(pred), nn_tensor_unref(loss);
        nn_graph_free(&g);
    }
    nn_optimizer_free(&opt);
    nn_tensor_unref(lh), nn_tensor_unref(rh), nn_tensor_unref(left), nn_tensor_unref(right);
    deep3d_model_free(&m);
}

/* Determinism: save, train N steps, reload, retrain: identical losses, bit for bit
 * (dropout masks from fixed seeds; on CUDA with deterministic cuDNN algorithms). */
static void check_determinism(nn_device device) {
    require_device(device);
    if (device == NN_CUDA) cr_assert_eq(nn_cuda_set_deterministic(1), 0, "%s", nn_last_error());
    deep3d_config cfg = deep3d_default_config();
    cfg.width = 128, cfg.height = 64, cfg.disparities = 9, cfg.dmin = -4, cfg.width_div = 16;
    deep3d_model m;
    cr_assert_eq(deep3d_model_init(&m, &cfg, device, 3), 0, "%s", nn_last_error());
    char dir[] = "/tmp/deep3d_determinism_XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/start.d3w", dir);
    cr_assert_eq(deep3d_model_save(&m, path, 0), 0, "%s", nn_last_error());
    deep3d_model_free(&m);
    enum { STEPS = 4 };
    nn_real first[STEPS], second[STEPS];
    train_from_file(path, device, STEPS, first);
    train_from_file(path, device, STEPS, second);
    for (int s = 0; s < STEPS; s++)
        cr_assert(first[s] == second[s], "step %d: loss %.9g then %.9g", s, (double)first[s], (double)second[s]);
    cr_assert(first[STEPS - 1] != first[0], "the model did not train (loss %.9g throughout)", (double)first[0]);
    remove(path);
    rmdir(dir);
}

Test(model, save_train_reload_retrain_is_deterministic) { check_determinism(NN_CPU); }

Test(model, save_train_reload_retrain_is_deterministic_on_cuda) { check_determinism(NN_CUDA); }
