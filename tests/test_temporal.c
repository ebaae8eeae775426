/* infer/temporal: scene cuts by scdet's score, the motion-gated exponential moving
 * average of the disparity, its reset at cuts and box changes, and a save / load of the
 * state that continues bit for bit. Expected values follow from the formulas in
 * temporal.h (derivations in the comments). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../infer/temporal.h"
#include "testutil.h"

/* A (3, H, W) frame of one grey level. */
static nn_real *grey_frame(int H, int W, double v) {
    nn_real *f = malloc((size_t)3 * H * W * sizeof *f);
    cr_assert_not_null(f);
    for (size_t i = 0; i < (size_t)3 * H * W; i++) f[i] = (nn_real)v;
    return f;
}

static void step_scene(scene_state *s, double grey, int H, int W, int *cut, double *score, double *mafd) {
    nn_real *f = grey_frame(H, W, grey);
    uint8_t *Y = malloc((size_t)H * W);
    temporal_luma(Y, f, H, W);
    letterbox b;
    cr_assert_eq(scene_step(s, Y, f, H, W, 0, cut, score, mafd, &b), 0);
    cr_assert(b.w == W && b.h == H, "letterbox off: the whole frame");
    free(f), free(Y);
}

/* MAFD = 100 mean|dY| / 256; score = min(MAFD, |MAFD - previous MAFD|); cut when > 10. */
Test(temporal, scene_cuts_follow_scdets_score) {
    scene_state s;
    scene_init(&s, SCENE_THRESHOLD);
    int cut;
    double score, mafd;
    step_scene(&s, 100, 8, 10, &cut, &score, &mafd);
    cr_assert(cut && score == 0, "the first frame starts a scene");
    step_scene(&s, 100, 8, 10, &cut, &score, &mafd);
    cr_assert(!cut && mafd == 0 && score == 0, "a still frame is no cut");
    step_scene(&s, 120, 8, 10, &cut, &score, &mafd);
    /* |dY| = 20: MAFD = 2000 / 256 = 7.8125, score = min(7.8125, 7.8125) */
    cr_assert(!cut && fabs(mafd - 7.8125) < 1e-12 && fabs(score - 7.8125) < 1e-12, "mafd %g score %g", mafd, score);
    step_scene(&s, 200, 8, 10, &cut, &score, &mafd);
    /* |dY| = 80: MAFD = 31.25, score = min(31.25, 31.25 - 7.8125 = 23.4375) > 10 */
    cr_assert(cut && fabs(score - 23.4375) < 1e-12, "a jump of 80 grey levels is a cut (score %g)", score);
    step_scene(&s, 200, 8, 12, &cut, &score, &mafd);
    cr_assert(cut, "another frame size starts a scene");
    scene_free(&s);
}

/* Still luma, d_t = a (-1)^t: the average s_t = w s_t-1 + (1 - w) d_t settles at
 * s_t = c (-1)^t with c = -w c + (1 - w) a, so c = a (1 - w) / (1 + w): the frame to
 * frame change shrinks from 2a to 2a (1 - w) / (1 + w) (w = 0.5: to a third). */
Test(temporal, moving_average_damps_flicker_as_derived) {
    const int H = 3, W = 4;
    const double a = 2, w = 0.5;
    smoother sm;
    smoother_init(&sm, w, SMOOTH_GATE);
    uint8_t Y[12];
    memset(Y, 90, sizeof Y);
    letterbox b = {0, 0, W, H};
    nn_real d[12], prev[12];
    double change = 0;
    for (int t = 0; t < 60; t++) {
        for (int i = 0; i < H * W; i++) d[i] = (nn_real)(t % 2 ? -a : a);
        int changed;
        cr_assert_eq(smoother_step(&sm, d, &b, Y, H, W, t == 0, 0, &changed), 0);
        cr_assert_eq(changed, t > 0, "frame %d: changed %d", t, changed);
        if (t > 0) change = fabs((double)d[0] - prev[0]);
        memcpy(prev, d, sizeof d);
    }
    const double want = 2 * a * (1 - w) / (1 + w);
    cr_assert(fabs(change - want) < 1e-5, "settled change %g, expected %g", change, want);
    smoother_free(&sm);
}

/* g = w max(0, 1 - |dY| / gate): a change of gate grey levels takes the new value
 * alone; half of it keeps w / 2 of the past. */
Test(temporal, motion_gate_opens_with_the_brightness_change) {
    const int H = 1, W = 3;
    smoother sm;
    smoother_init(&sm, 0.5, 32);
    uint8_t Y0[3] = {100, 100, 100}, Y1[3] = {100, 116, 132};
    letterbox b = {0, 0, W, H};
    nn_real d0[3] = {0, 0, 0}, d1[3] = {8, 8, 8};
    int changed;
    cr_assert_eq(smoother_step(&sm, d0, &b, Y0, H, W, 1, 0, &changed), 0);
    cr_assert_eq(smoother_step(&sm, d1, &b, Y1, H, W, 0, 0, &changed), 0);
    /* still: 0.5 * 0 + 0.5 * 8 = 4; dY 16: g = 0.25, 6; dY 32: g = 0, 8 */
    cr_assert(d1[0] == 4 && d1[1] == 6 && d1[2] == 8, "gated: %g %g %g", d1[0], d1[1], d1[2]);
    cr_assert_eq(changed, 1);
    smoother_free(&sm);
}

Test(temporal, cuts_boxes_and_weight_zero_leave_the_disparity_alone) {
    const int H = 2, W = 2;
    uint8_t Y[4] = {50, 50, 50, 50};
    letterbox full = {0, 0, 2, 2}, top = {0, 0, 2, 1};
    nn_real a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[2] = {9, 10};
    smoother sm;
    smoother_init(&sm, 0.9, SMOOTH_GATE);
    int changed;
    cr_assert_eq(smoother_step(&sm, a, &full, Y, H, W, 1, 0, &changed), 0);
    cr_assert_eq(smoother_step(&sm, b, &full, Y, H, W, 1, 0, &changed), 0);
    cr_assert(!changed && b[0] == 5 && b[3] == 8, "a cut resets the average");
    cr_assert_eq(smoother_step(&sm, c, &top, Y, H, W, 0, 0, &changed), 0);
    cr_assert(!changed && c[0] == 9 && c[1] == 10, "another box resets the average");
    smoother_free(&sm);
    smoother_init(&sm, 0, SMOOTH_GATE);
    nn_real e[4] = {1, 1, 1, 1}, g[4] = {3, 3, 3, 3};
    cr_assert_eq(smoother_step(&sm, e, &full, Y, H, W, 1, 0, &changed), 0);
    cr_assert_eq(smoother_step(&sm, g, &full, Y, H, W, 0, 0, &changed), 0);
    cr_assert(!changed && g[0] == 3, "weight 0 is off");
    smoother_free(&sm);
}

/* Random frames: the run saved after frame k and loaded into a fresh smoother gives
 * frames k+1.. equal bit for bit to the run that never stopped. */
Test(temporal, saved_state_continues_exactly) {
    const int H = 6, W = 7, T = 12, K = 5;
    const size_t n = (size_t)H * W;
    letterbox b = {1, 1, 5, 4};
    const size_t nd = 20;
    nn_real *ref = malloc(T * nd * sizeof *ref), *got = malloc(T * nd * sizeof *got);
    uint8_t *Y = malloc(T * n);
    for (int t = 0; t < T; t++) {
        for (size_t i = 0; i < n; i++) Y[t * n + i] = (uint8_t)(100 + 20 * nn_hash_uniform(3, t * n + i));
        for (size_t i = 0; i < nd; i++) ref[t * nd + i] = got[t * nd + i] = (nn_real)(4 * nn_hash_uniform(4, t * nd + i));
    }
    smoother a, c;
    smoother_init(&a, 0.6, SMOOTH_GATE);
    int changed;
    for (int t = 0; t < T; t++) cr_assert_eq(smoother_step(&a, ref + t * nd, &b, Y + t * n, H, W, t == 0, 1.5, &changed), 0);
    smoother_init(&c, 0.6, SMOOTH_GATE);
    for (int t = 0; t <= K; t++) cr_assert_eq(smoother_step(&c, got + t * nd, &b, Y + t * n, H, W, t == 0, 1.5, &changed), 0);
    char path[] = "/tmp/deep3d_test_temporal_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w+b");
    cr_assert_eq(smoother_save(&c, f), 0, "%s", nn_last_error());
    smoother_free(&c);
    rewind(f);
    smoother d;
    smoother_init(&d, 0, 0);
    cr_assert_eq(smoother_load(&d, f), 0, "%s", nn_last_error());
    fclose(f), unlink(path);
    cr_assert(d.weight == 0.6 && d.gate == SMOOTH_GATE && d.mafd == 1.5 && d.box.w == 5, "state fields restored");
    for (int t = K + 1; t < T; t++) cr_assert_eq(smoother_step(&d, got + t * nd, &b, Y + t * n, H, W, 0, 1.5, &changed), 0);
    cr_assert(!memcmp(ref, got, T * nd * sizeof *ref), "the resumed frames differ from the uninterrupted ones");
    /* a damaged state file is an error */
    FILE *g = tmpfile();
    fputs("junk", g), rewind(g);
    cr_assert_eq(smoother_load(&d, g), -1);
    fclose(g);
    smoother_free(&a), smoother_free(&d);
    free(ref), free(got), free(Y);
}
