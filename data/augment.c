/* Pair-preserving augmentation. See augment.h. */
#include "augment.h"

#include <math.h>
#include <string.h>

#include "../nn/backend.h"
#include "../nn/status.h"

augment_config augment_defaults(void) {
    return (augment_config){.scale_min = 0.6, .scale_max = 1.0, .flip_prob = 0.5, .jitter = 0.1};
}

static int clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* Crop of the network aspect whose width is round(scale * largest width). */
static void crop_size(int src_w, int src_h, int net_w, int net_h, double scale, int *cw, int *ch) {
    double aspect = (double)net_w / net_h;
    double w_max = (double)src_w * net_h >= (double)src_h * net_w ? src_h * aspect : src_w;
    if (w_max > src_w) w_max = src_w;
    *cw = clampi(lround(w_max * scale), 1, src_w);
    *ch = clampi(lround(*cw / aspect), 1, src_h);
}

void augment_largest_crop(int src_w, int src_h, int net_w, int net_h, int *crop_w, int *crop_h) {
    crop_size(src_w, src_h, net_w, net_h, 1.0, crop_w, crop_h);
}

int augment_draw(augment_params *p, const augment_config *cfg, int src_w, int src_h, int net_w,
                 int net_h, uint64_t seed, uint64_t counter) {
    if (src_w < 1 || src_h < 1 || net_w < 1 || net_h < 1)
        return nn_fail("augment: bad sizes: views %dx%d, network %dx%d", src_w, src_h, net_w, net_h);
    if (!(cfg->scale_min > 0 && cfg->scale_min <= cfg->scale_max && cfg->scale_max <= 1))
        return nn_fail("augment: crop scale range %g..%g must lie in (0, 1]", cfg->scale_min,
                       cfg->scale_max);
    if (!(cfg->jitter >= 0 && cfg->jitter < 1))
        return nn_fail("augment: colour jitter %g must lie in [0, 1)", cfg->jitter);
    double u[7];
    for (int j = 0; j < 7; j++) u[j] = nn_hash_uniform(seed, 8 * counter + (uint64_t)j);
    double scale = cfg->scale_min + (cfg->scale_max - cfg->scale_min) * u[0];
    crop_size(src_w, src_h, net_w, net_h, scale, &p->w, &p->h);
    p->x = clampi((long)(u[1] * (src_w - p->w + 1)), 0, src_w - p->w);
    p->y = clampi((long)(u[2] * (src_h - p->h + 1)), 0, src_h - p->h);
    p->flip = u[3] < cfg->flip_prob;
    p->brightness = (nn_real)(1 + cfg->jitter * (2 * u[4] - 1));
    p->contrast = (nn_real)(1 + cfg->jitter * (2 * u[5] - 1));
    p->saturation = (nn_real)(1 + cfg->jitter * (2 * u[6] - 1));
    return 0;
}

void augment_center(augment_params *p, int src_w, int src_h, int net_w, int net_h) {
    crop_size(src_w, src_h, net_w, net_h, 1.0, &p->w, &p->h);
    p->x = (src_w - p->w) / 2;
    p->y = (src_h - p->h) / 2;
    p->flip = 0;
    p->brightness = p->contrast = p->saturation = 1;
}

void augment_color(const augment_params *p, nn_real *rgb, int w, int h) {
    if (p->brightness == 1 && p->contrast == 1 && p->saturation == 1) return;
    size_t plane = (size_t)w * h;
    nn_real *r = rgb, *g = rgb + plane, *b = rgb + 2 * plane;
    const nn_real mid = (nn_real)127.5, s = p->saturation, c = p->contrast, k = p->brightness;
    for (size_t i = 0; i < plane; i++) {
        nn_real v[3] = {r[i], g[i], b[i]};
        nn_real luma = (nn_real)0.299 * v[0] + (nn_real)0.587 * v[1] + (nn_real)0.114 * v[2];
        for (int ch = 0; ch < 3; ch++) {
            nn_real x = luma + s * (v[ch] - luma);
            x = k * (mid + c * (x - mid));
            v[ch] = x < 0 ? 0 : x > 255 ? 255 : x;
        }
        r[i] = v[0], g[i] = v[1], b[i] = v[2];
    }
}

int augment_apply_cropped(const augment_params *p, const image *left_crop,
                          const image *right_crop, int net_w, int net_h, nn_real *out_left,
                          nn_real *out_right) {
    if (left_crop->w != right_crop->w || left_crop->h != right_crop->h)
        return nn_fail("augment: left crop is %dx%d but right crop is %dx%d", left_crop->w,
                       left_crop->h, right_crop->w, right_crop->h);
    image *l = image_resize(left_crop, net_w, net_h);
    image *r = l ? image_resize(right_crop, net_w, net_h) : NULL;
    if (!l || !r) {
        image_free(l);
        return nn_fail_context("augment: resizing %dx%d crops to %dx%d", left_crop->w,
                               left_crop->h, net_w, net_h);
    }
    if (p->flip) { /* new left = flip(right), new right = flip(left) */
        image *t = l;
        l = r, r = t;
        image_flip_horizontal(l);
        image_flip_horizontal(r);
    }
    augment_color(p, l->data, net_w, net_h);
    augment_color(p, r->data, net_w, net_h);
    size_t n = (size_t)3 * net_w * net_h * sizeof(nn_real);
    memcpy(out_left, l->data, n);
    memcpy(out_right, r->data, n);
    image_free(l), image_free(r);
    return 0;
}

int augment_apply(const augment_params *p, const image *left, const image *right, int net_w,
                  int net_h, nn_real *out_left, nn_real *out_right) {
    if (left->w != right->w || left->h != right->h)
        return nn_fail("augment: left view is %dx%d but right view is %dx%d", left->w, left->h,
                       right->w, right->h);
    image *l = image_crop(left, p->x, p->y, p->w, p->h);
    image *r = l ? image_crop(right, p->x, p->y, p->w, p->h) : NULL;
    int rc = l && r ? augment_apply_cropped(p, l, r, net_w, net_h, out_left, out_right) : -1;
    image_free(l), image_free(r);
    return rc;
}
