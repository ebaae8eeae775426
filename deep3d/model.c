#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RGB mean subtracted from the network input (DEEP3D.md "Conventions"). */
static const nn_real input_mean[3] = {123.68f, 116.78f, 103.94f};

/* VGG stacks: channels per 3x3 conv, 0 = 2x2 max pool (the peer's VARIANTS). */
static const int plan_released[] = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
static const int plan_vgg16[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};

static const int *variant_plan(const char *variant, int *len) {
    if (!strcmp(variant, "released")) {
        *len = (int)(sizeof plan_released / sizeof *plan_released);
        return plan_released;
    }
    if (!strcmp(variant, "vgg16")) {
        *len = (int)(sizeof plan_vgg16 / sizeof *plan_vgg16);
        return plan_vgg16;
    }
    return NULL;
}

deep3d_config deep3d_default_config(void) {
    deep3d_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.variant, sizeof c.variant, "released");
    c.width = 384;
    c.height = 160;
    c.disparities = 33;
    c.dmin = -15;
    c.width_div = 1;
    return c;
}

int deep3d_config_check(const deep3d_config *c) {
    int len;
    if (!variant_plan(c->variant, &len))
        return nn_fail("unknown variant '%s' (expected released or vgg16)", c->variant);
    if (c->width < 32 || c->height < 32 || c->width % 32 || c->height % 32)
        return nn_fail("network resolution %dx%d: width and height must be positive multiples of 32",
                       c->width, c->height);
    if (c->disparities < 1 || c->disparities > 1024)
        return nn_fail("%d disparity levels: expected 1..1024", c->disparities);
    if (c->width_div < 1 || 64 % c->width_div)
        return nn_fail("width divisor %d: expected a divisor of 64 (1, 2, 4, 8, ...)", c->width_div);
    return 0;
}

void deep3d_config_format(const deep3d_config *c, char *buf, size_t size) {
    int n = snprintf(buf, size, "model=deep3d\nvariant=%s\nwidth=%d\nheight=%d\ndisparities=%d\ndmin=%d\nwidth_div=%d\n",
                     c->variant, c->width, c->height, c->disparities, c->dmin, c->width_div);
    if (c->has_global_disparity && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "global_disparity=%d\n", c->global_disparity);
}

/* ---- construction ----------------------------------------------------------- */

static nn_tensor *add_tensor(deep3d_model *m, const char *name, int trainable, int d0, int d1, int d2, int d3) {
    if (m->n_tensors == DEEP3D_MAX_TENSORS) {
        nn_fail("model: more than %d tensors", DEEP3D_MAX_TENSORS);
        return NULL;
    }
    nn_tensor *t = nn_tensor_new4(m->device, d0, d1, d2, d3);
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->requires_grad = trainable;
    m->trainable[m->n_tensors] = trainable;
    m->tensors[m->n_tensors++] = t;
    return t;
}

/* Fills t with N(0, std^2) (Box-Muller on the counter-based hash), or a constant. */
static int init_normal(nn_tensor *t, double std, uint64_t seed) {
    nn_real *h = malloc(t->numel * sizeof *h);
    if (!h) return nn_fail("model: out of host memory");
    for (size_t i = 0; i < t->numel; i++) {
        double u1 = nn_hash_uniform(seed, 2 * i), u2 = nn_hash_uniform(seed, 2 * i + 1);
        h[i] = (nn_real)(std * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
    }
    int rc = nn_tensor_upload(t, h);
    free(h);
    return rc;
}

static int init_bilinear(nn_tensor *t) {
    int c = t->shape[0], k = t->shape[2];
    nn_real *h = malloc(t->numel * sizeof *h);
    if (!h) return nn_fail("model: out of host memory");
    nn_bilinear_kernel(h, c, k);
    int rc = nn_tensor_upload(t, h);
    free(h);
    return rc;
}

/* He/Kaiming normal: std = sqrt(2 / fan_in), fan_in = product of all but dim 0. */
static int init_he(nn_tensor *t, uint64_t seed) {
    return init_normal(t, sqrt(2.0 / (double)(t->numel / (size_t)t->shape[0])), seed);
}

/* Allocates every tensor of the model; with `init`, also initialises them from `seed`. */
static int model_build(deep3d_model *m, const deep3d_config *cfg, nn_device device, int init, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (deep3d_config_check(cfg)) return -1;
    m->cfg = *cfg;
    m->device = device;
    m->dropout = 0.5f;
    m->bn_momentum = 0.1f;
    m->bn_eps = 1e-5f;
    int len, cin = 3, stage = 0, pool_c[5] = {0};
    const int *plan = variant_plan(cfg->variant, &len);
    const int d = cfg->disparities, div = cfg->width_div, hidden = 512 / div;
    const int h5 = cfg->height / 32, w5 = cfg->width / 32;
    char name[64];
    uint64_t s = seed * 1000003u + 17;
    for (int i = 0; i < len; i++) {
        if (plan[i] == 0) {
            m->pool_after[m->n_convs - 1] = 1;
            pool_c[stage++] = cin;
            continue;
        }
        int cout = plan[i] / div, k = m->n_convs++;
        /* peer index: every conv is followed by a ReLU entry, every pool is one entry */
        int peer_index = 0;
        for (int j = 0; j < i; j++) peer_index += plan[j] ? 2 : 1;
        snprintf(name, sizeof name, "features.%d.weight", peer_index);
        if (!(m->conv_w[k] = add_tensor(m, name, 1, cout, cin, 3, 3)) || (init && init_he(m->conv_w[k], s++))) goto fail;
        snprintf(name, sizeof name, "features.%d.bias", peer_index);
        if (!(m->conv_b[k] = add_tensor(m, name, 1, cout, 0, 0, 0)) || (init && nn_tensor_fill(m->conv_b[k], 0))) goto fail;
        cin = cout;
    }
#define LIN(w, b, nm, out, in)                                                                          \
    if (!(m->w = add_tensor(m, nm ".weight", 1, out, in, 0, 0)) || (init && init_he(m->w, s++))) goto fail;      \
    if (!(m->b = add_tensor(m, nm ".bias", 1, out, 0, 0, 0)) || (init && nn_tensor_fill(m->b, 0))) goto fail;
    LIN(fc6_w, fc6_b, "fc6", hidden, pool_c[4] * h5 * w5)
    LIN(fc7_w, fc7_b, "fc7", hidden, hidden)
    LIN(pred5_w, pred5_b, "pred5", d * h5 * w5, hidden)
#undef LIN
    for (int i = 0; i < 4; i++) {
        const int c = pool_c[i];
        snprintf(name, sizeof name, "bn.%d.weight", i);
        if (!(m->bn_gamma[i] = add_tensor(m, name, 1, c, 0, 0, 0)) || (init && nn_tensor_fill(m->bn_gamma[i], 1))) goto fail;
        snprintf(name, sizeof name, "bn.%d.bias", i);
        if (!(m->bn_beta[i] = add_tensor(m, name, 1, c, 0, 0, 0)) || (init && nn_tensor_fill(m->bn_beta[i], 0))) goto fail;
        snprintf(name, sizeof name, "bn.%d.running_mean", i);
        if (!(m->bn_mean[i] = add_tensor(m, name, 0, c, 0, 0, 0)) || (init && nn_tensor_fill(m->bn_mean[i], 0))) goto fail;
        snprintf(name, sizeof name, "bn.%d.running_var", i);
        if (!(m->bn_var[i] = add_tensor(m, name, 0, c, 0, 0, 0)) || (init && nn_tensor_fill(m->bn_var[i], 1))) goto fail;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "pred.%d.weight", i);
        if (!(m->pred_w[i] = add_tensor(m, name, 1, d, pool_c[i], 3, 3)) || (init && init_he(m->pred_w[i], s++))) goto fail;
        snprintf(name, sizeof name, "pred.%d.bias", i);
        if (!(m->pred_b[i] = add_tensor(m, name, 1, d, 0, 0, 0)) || (init && nn_tensor_fill(m->pred_b[i], 0))) goto fail;
    }
    for (int i = 0; i < 5; i++) {
        const int k = i == 0 ? 1 : 2 << i; /* kernel 2s for scale s = 2^i, 1 for s = 1 */
        snprintf(name, sizeof name, "up.%d.weight", i);
        if (!(m->up_w[i] = add_tensor(m, name, 1, d, d, k, k)) || (init && init_bilinear(m->up_w[i]))) goto fail;
        snprintf(name, sizeof name, "up.%d.bias", i);
        if (!(m->up_b[i] = add_tensor(m, name, 1, d, 0, 0, 0)) || (init && nn_tensor_fill(m->up_b[i], 0))) goto fail;
    }
    if (!(m->upfull_w = add_tensor(m, "upfull.weight", 1, d, d, 4, 4)) || (init && init_bilinear(m->upfull_w))) goto fail;
    if (!(m->upfull_b = add_tensor(m, "upfull.bias", 1, d, 0, 0, 0)) || (init && nn_tensor_fill(m->upfull_b, 0))) goto fail;
    /* the conv before the softmax starts 1000x smaller than He: with He weights its
     * outputs on 0..255 inputs are in the hundreds, the softmax starts one-hot and most
     * disparities get no gradient (training then locks onto wrong ones); small weights
     * start it near uniform (1/D). DEEP3D.md says He for all; this is our correction. */
    if (!(m->final_w = add_tensor(m, "final.weight", 1, d, d, 3, 3)) ||
        (init && init_normal(m->final_w, 1e-3 * sqrt(2.0 / (9.0 * d)), s++)))
        goto fail;
    if (!(m->final_b = add_tensor(m, "final.bias", 1, d, 0, 0, 0)) || (init && nn_tensor_fill(m->final_b, 0))) goto fail;
    return 0;
fail:
    nn_fail_context("model init");
    deep3d_model_free(m);
    return -1;
}

int deep3d_model_init(deep3d_model *m, const deep3d_config *cfg, nn_device device, uint64_t seed) {
    return model_build(m, cfg, device, 1, seed);
}

int deep3d_model_alloc(deep3d_model *m, const deep3d_config *cfg, nn_device device) {
    return model_build(m, cfg, device, 0, 0);
}

void deep3d_model_free(deep3d_model *m) {
    for (int i = 0; i < m->n_tensors; i++) nn_tensor_unref(m->tensors[i]);
    memset(m, 0, sizeof *m);
}

nn_tensor *deep3d_model_tensor(const deep3d_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i]->name, name)) return m->tensors[i];
    return NULL;
}

size_t deep3d_model_param_count(const deep3d_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->trainable[i]) n += m->tensors[i]->numel;
    return n;
}

double deep3d_model_flops(const deep3d_model *m) {
    double f = 0;
    int h = m->cfg.height, w = m->cfg.width;
    for (int i = 0; i < m->n_convs; i++) {
        const nn_tensor *k = m->conv_w[i];
        f += 2.0 * h * w * k->shape[0] * k->shape[1] * 9;
        if (m->pool_after[i]) h /= 2, w /= 2;
    }
    f += 2.0 * m->fc6_w->numel + 2.0 * m->fc7_w->numel + 2.0 * m->pred5_w->numel;
    const int d = m->cfg.disparities;
    for (int i = 0; i < 4; i++) {
        int ph = m->cfg.height >> (i + 1), pw = m->cfg.width >> (i + 1);
        f += 2.0 * ph * pw * m->pred_w[i]->shape[1] * d * 9;
        f += 2.0 * ph * pw * d * d * m->up_w[i]->shape[2] * m->up_w[i]->shape[3]; /* transposed: input size */
    }
    f += 2.0 * (m->cfg.height / 32) * (m->cfg.width / 32) * d * d * m->up_w[4]->shape[2] * m->up_w[4]->shape[3];
    f += 2.0 * (m->cfg.height / 2) * (m->cfg.width / 2) * d * d * 16;  /* upfull */
    f += 2.0 * m->cfg.height * m->cfg.width * d * d * 9;              /* final */
    return f;
}

/* ---- forward ------------------------------------------------------------------ */

int deep3d_forward(deep3d_model *m, nn_graph *g, nn_tensor *left, nn_tensor **right, nn_tensor **prob) {
    const deep3d_config *c = &m->cfg;
    char shape[64];
    if (!left || left->ndim != 4 || left->shape[1] != 3 || left->shape[2] != c->height ||
        left->shape[3] != c->width)
        return nn_fail("deep3d: input %s, expected (N, 3, %d, %d)",
                       left ? nn_shape_str(left, shape, sizeof shape) : "(none)", c->height, c->width);
    if (left->device != m->device)
        return nn_fail("deep3d: input on %s, model on %s", nn_device_name(left->device), nn_device_name(m->device));
    const int n = left->shape[0], d = c->disparities;
    nn_tensor *pools[5] = {0}, *x = nn_sub_channel_mean(g, left, input_mean);
    for (int i = 0, stage = 0; i < m->n_convs; i++) {
        x = nn_then(x, nn_conv2d_relu(g, x, m->conv_w[i], m->conv_b[i], 1, 1, 1));
        if (m->pool_after[i]) {
            x = nn_then(x, nn_maxpool2d(g, x, 2, 2));
            pools[stage++] = nn_tensor_ref(x);
        }
    }
    nn_tensor_unref(x);
    /* fc branch: pool5 -> fc6 -> fc7 -> fc8 (pred5), reshaped to (N, D, H/32, W/32) */
    nn_tensor *f = nn_linear(g, pools[4], m->fc6_w, m->fc6_b);
    f = nn_then(f, nn_relu(g, f));
    f = nn_then(f, nn_dropout(g, f, m->dropout));
    f = nn_then(f, nn_linear(g, f, m->fc7_w, m->fc7_b));
    f = nn_then(f, nn_relu(g, f));
    f = nn_then(f, nn_dropout(g, f, m->dropout));
    f = nn_then(f, nn_linear(g, f, m->pred5_w, m->pred5_b));
    const int shape5[4] = {n, d, c->height / 32, c->width / 32};
    nn_tensor *branch[5];  /* after their ReLU */
    branch[4] = nn_reshape(g, f, 4, shape5);
    nn_tensor_unref(f);
    branch[4] = nn_then(branch[4], nn_relu(g, branch[4]));
    nn_tensor_unref(pools[4]);
    /* branches 1..4: BatchNorm(pool_i) -> 3x3 conv to D channels -> ReLU */
    for (int i = 0; i < 4; i++) {
        nn_tensor *b = nn_batchnorm2d(g, pools[i], m->bn_gamma[i], m->bn_beta[i], m->bn_mean[i], m->bn_var[i],
                                      m->bn_momentum, m->bn_eps);
        nn_tensor_unref(pools[i]);
        branch[i] = nn_then(b, nn_conv2d_relu(g, b, m->pred_w[i], m->pred_b[i], 1, 1, 1));
    }
    /* each branch: transposed conv up to 1/2 resolution (scale s = 2^i: kernel 2s,
     * stride s, padding s/2; s = 1: kernel 1); then the sum */
    nn_tensor *sum = NULL;
    for (int i = 0; i < 5; i++) {
        const int s = 1 << i;
        nn_tensor *u = nn_conv_transpose2d(g, branch[i], m->up_w[i], m->up_b[i], s, s / 2);
        nn_tensor_unref(branch[i]);
        sum = i == 0 ? nn_tensor_ref(u) : nn_then(sum, nn_add(g, sum, u));
        nn_tensor_unref(u);
    }
    x = nn_then(sum, nn_relu(g, sum));
    x = nn_then(x, nn_conv_transpose2d_relu(g, x, m->upfull_w, m->upfull_b, 2, 1));
    x = nn_then(x, nn_conv2d(g, x, m->final_w, m->final_b, 1, 1, 1));
    nn_tensor *p = nn_softmax_channels(g, x);
    nn_tensor_unref(x);
    nn_tensor *r = right ? nn_selection(g, p, left, c->dmin) : NULL;
    if (!p || (right && !r)) {
        nn_tensor_unref(p);
        return nn_fail_context("deep3d forward");
    }
    if (right) *right = r;
    if (prob) *prob = p;
    else nn_tensor_unref(p);
    return 0;
}
