/* Scene cuts and temporal smoothing of disparity maps. See temporal.h. */
#include "temporal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/status.h"

void temporal_luma(uint8_t *Y, const nn_real *img, int H, int W) {
    const size_t plane = (size_t)H * W;
    for (size_t i = 0; i < plane; i++) {
        double v = 0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i];
        Y[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5);
    }
}

/* ---------------------------------------------------------------- scenes */

void scene_init(scene_state *s, double threshold) {
    memset(s, 0, sizeof *s);
    s->threshold = threshold;
}

void scene_free(scene_state *s) {
    free(s->luma);
    s->luma = NULL, s->have = 0;
}

static int ensure_luma(uint8_t **buf, int *H0, int *W0, int H, int W) {
    if (*buf && *H0 == H && *W0 == W) return 0;
    uint8_t *nb = realloc(*buf, (size_t)H * W);
    if (!nb) return nn_fail("temporal: out of memory for a %d x %d frame", W, H);
    *buf = nb, *H0 = H, *W0 = W;
    return 0;
}

int scene_step(scene_state *s, const uint8_t *Y, const nn_real *img, int H, int W, int letterbox_on, int *cut,
               double *score, double *mafd, letterbox *box) {
    const size_t n = (size_t)H * W;
    int new_scene = !s->have || s->H != H || s->W != W;
    double m = 0, sc = 0;
    if (!new_scene) {
        uint64_t sad = 0;
        for (size_t i = 0; i < n; i++) sad += (uint64_t)abs((int)Y[i] - (int)s->luma[i]);
        m = 100.0 * (double)sad / (double)n / 256.0;
        double diff = fabs(m - s->prev_mafd);
        sc = m < diff ? m : diff;
        new_scene = sc > s->threshold;
    }
    if (ensure_luma(&s->luma, &s->H, &s->W, H, W)) return -1;
    memcpy(s->luma, Y, n);
    s->prev_mafd = m, s->have = 1;
    if (new_scene) {
        if (letterbox_on) letterbox_detect(&s->box, img, H, W);
        else s->box = letterbox_full(H, W);
    }
    *cut = new_scene, *score = sc, *mafd = m, *box = s->box;
    return 0;
}

int scene_restore(scene_state *s, const uint8_t *Y, int H, int W, double mafd, const letterbox *box) {
    if (ensure_luma(&s->luma, &s->H, &s->W, H, W)) return -1;
    memcpy(s->luma, Y, (size_t)H * W);
    s->prev_mafd = mafd, s->box = *box, s->have = 1;
    return 0;
}

/* ---------------------------------------------------------------- smoothing */

void smoother_init(smoother *s, double weight, double gate) {
    memset(s, 0, sizeof *s);
    s->weight = weight, s->gate = gate;
}

void smoother_free(smoother *s) {
    free(s->luma), free(s->d);
    s->luma = NULL, s->d = NULL, s->have = 0;
}

int smoother_step(smoother *s, nn_real *d, const letterbox *box, const uint8_t *Y, int H, int W, int cut,
                  double mafd, int *changed) {
    *changed = 0;
    const int same = s->have && !cut && s->H == H && s->W == W && !memcmp(&s->box, box, sizeof *box);
    if (same && s->weight > 0) {
        const nn_real w = (nn_real)s->weight, inv_gate = (nn_real)(1.0 / s->gate);
        int any = 0;
        for (int y = 0; y < box->h; y++)
            for (int x = 0; x < box->w; x++) {
                const size_t i = (size_t)y * box->w + x, p = (size_t)(box->y0 + y) * W + box->x0 + x;
                const nn_real dy = (nn_real)abs((int)Y[p] - (int)s->luma[p]);
                const nn_real open = 1 - dy * inv_gate, g = open > 0 ? w * open : 0;
                if (g > 0) {
                    const nn_real v = g * s->d[i] + (1 - g) * d[i];
                    any |= v != d[i];
                    d[i] = v;
                }
            }
        *changed = any;
    }
    const size_t nd = (size_t)box->h * box->w;
    if (!s->d || s->box.w * s->box.h != box->w * box->h) {
        nn_real *nb = realloc(s->d, nd * sizeof *nb);
        if (!nb) return nn_fail("temporal: out of memory for a %d x %d disparity map", box->w, box->h);
        s->d = nb;
    }
    if (ensure_luma(&s->luma, &s->H, &s->W, H, W)) return -1;
    memcpy(s->d, d, nd * sizeof *d);
    memcpy(s->luma, Y, (size_t)H * W);
    s->box = *box, s->mafd = mafd, s->have = 1;
    return 0;
}

/* ---------------------------------------------------------------- state files */

typedef struct {
    char magic[4];
    int32_t version, have, H, W;
    int32_t box[4];
    double weight, gate, mafd;
} state_header;

int smoother_save(const smoother *s, FILE *f) {
    state_header h = {{'D', '3', 'T', 'S'}, 1, s->have, s->H, s->W, {s->box.x0, s->box.y0, s->box.w, s->box.h},
                      s->weight, s->gate, s->mafd};
    if (fwrite(&h, sizeof h, 1, f) != 1) return nn_fail("temporal: cannot write the state");
    if (!s->have) return 0;
    const size_t nd = (size_t)s->box.w * s->box.h, nl = (size_t)s->H * s->W;
    if (fwrite(s->luma, 1, nl, f) != nl || fwrite(s->d, sizeof *s->d, nd, f) != nd)
        return nn_fail("temporal: cannot write the state");
    return 0;
}

int smoother_load(smoother *s, FILE *f) {
    state_header h;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "D3TS", 4) || h.version != 1)
        return nn_fail("temporal: not a smoothing state (bad header)");
    smoother_free(s);
    s->weight = h.weight, s->gate = h.gate, s->mafd = h.mafd;
    s->have = 0;
    if (!h.have) return 0;
    const letterbox b = {h.box[0], h.box[1], h.box[2], h.box[3]};
    if (h.H < 1 || h.W < 1 || h.H > (1 << 16) || h.W > (1 << 16) || b.x0 < 0 || b.y0 < 0 || b.w < 1 || b.h < 1 ||
        b.x0 + b.w > h.W || b.y0 + b.h > h.H)
        return nn_fail("temporal: bad sizes in the smoothing state");
    const size_t nd = (size_t)b.w * b.h, nl = (size_t)h.H * h.W;
    s->luma = malloc(nl), s->d = malloc(nd * sizeof *s->d);
    if (!s->luma || !s->d) {
        smoother_free(s);
        return nn_fail("temporal: out of memory for the smoothing state");
    }
    if (fread(s->luma, 1, nl, f) != nl || fread(s->d, sizeof *s->d, nd, f) != nd) {
        smoother_free(s);
        return nn_fail("temporal: the smoothing state is truncated");
    }
    s->H = h.H, s->W = h.W, s->box = b, s->have = 1;
    return 0;
}

double temporal_mean_abs_change(const nn_real *a, const nn_real *b, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += fabs((double)a[i] - (double)b[i]);
    return n ? sum / (double)n : 0;
}
