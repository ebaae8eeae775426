/* The layers' side of data-parallel training (train/dist.h), in one process:
 *  - synchronised batch normalisation (layers/batchnorm2d.h, "Data parallelism"): two
 *    threads, each holding half of a batch and summing through a fake collective (a
 *    barrier and a shared table instead of MPI), must compute the whole batch's output,
 *    input gradient and running statistics, and their parameter gradients must add up
 *    to the whole batch's;
 *  - dropout's sample offset (layers/dropout.h): the parts draw the whole batch's mask.
 * The data side (the loader's parts of a global batch) is in tests/test_dataset.c, the
 * whole run through mpirun in tests/test_train.c. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>

#include "../nn/nn.h"
#include "testutil.h"

/* ---- a collective of two threads -------------------------------------------------- */

enum { PARTS = 2, MAXV = 64 };

typedef struct {
    pthread_barrier_t barrier;
    double slot[PARTS][MAXV];
    int calls[PARTS];
} fake_world;

typedef struct {
    fake_world *w;
    int rank;
} fake_ctx;

/* Sums over the threads: each writes its values into its slot, then all add the slots
 * in rank order (the same order everywhere, as an all-reduce must give one result). */
static int fake_sum(void *ctx, double *buf, size_t n, nn_device device) {
    fake_ctx *c = ctx;
    if (device != NN_CPU || n > MAXV) return nn_fail("fake_sum: %zu values on %s", n, nn_device_name(device));
    memcpy(c->w->slot[c->rank], buf, n * sizeof *buf);
    c->w->calls[c->rank]++;
    pthread_barrier_wait(&c->w->barrier);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int r = 0; r < PARTS; r++) s += c->w->slot[r][i];
        buf[i] = s;
    }
    pthread_barrier_wait(&c->w->barrier); /* no one overwrites a slot still being read */
    return 0;
}

enum { N = 4, C = 3, H = 5, W = 6 };
#define PLANE ((size_t)C * H * W) /* values of one sample */

typedef struct {
    fake_world *w;
    int rank;
    const nn_real *x, *dy, *gamma, *beta; /* the whole batch's x and dy (N, C, H, W); (C) */
    nn_real y[N / PARTS * PLANE], dx[N / PARTS * PLANE], dgamma[C], dbeta[C], rmean[C], rvar[C];
    int rc;
    char err[256];
} part_job;

/* One part: batch norm of samples rank*N/PARTS .. on its own graph, synchronised. */
static void *run_part(void *arg) {
    part_job *j = arg;
    const int n = N / PARTS;
    fake_ctx ctx = {j->w, j->rank};
    nn_collective co = {.size = PARTS, .sum_f64 = fake_sum, .ctx = &ctx};
    nn_tensor *x = nn_tensor_new4(NN_CPU, n, C, H, W), *dy = nn_tensor_new4(NN_CPU, n, C, H, W);
    nn_tensor *gamma = nn_tensor_new4(NN_CPU, C, 0, 0, 0), *beta = nn_tensor_new4(NN_CPU, C, 0, 0, 0);
    nn_tensor *rmean = nn_tensor_zeros(NN_CPU, 1, (int[]){C}), *rvar = nn_tensor_new4(NN_CPU, C, 0, 0, 0);
    nn_tensor_upload(x, j->x + (size_t)j->rank * n * PLANE);
    nn_tensor_upload(dy, j->dy + (size_t)j->rank * n * PLANE);
    nn_tensor_upload(gamma, j->gamma), nn_tensor_upload(beta, j->beta), nn_tensor_fill(rvar, 1);
    x->requires_grad = gamma->requires_grad = beta->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    g.collective = &co;
    nn_tensor *y = nn_batchnorm2d(&g, x, gamma, beta, rmean, rvar, 0.1f, 1e-5f);
    j->rc = !y || nn_graph_backward_from(&g, y, dy);
    if (j->rc) snprintf(j->err, sizeof j->err, "%s", nn_last_error());
    else {
        nn_tensor_download(y, j->y), nn_tensor_download(x->grad, j->dx);
        nn_tensor_download(gamma->grad, j->dgamma), nn_tensor_download(beta->grad, j->dbeta);
        nn_tensor_download(rmean, j->rmean), nn_tensor_download(rvar, j->rvar);
    }
    nn_tensor_unref(y);
    nn_graph_clear(&g), nn_graph_free(&g);
    nn_tensor_unref(x), nn_tensor_unref(dy), nn_tensor_unref(gamma), nn_tensor_unref(beta);
    nn_tensor_unref(rmean), nn_tensor_unref(rvar);
    return NULL;
}

Test(dist, synchronised_batchnorm_equals_the_whole_batch) {
    nn_real *xs = tu_uniform_array(N * PLANE, 11), *dys = tu_uniform_array(N * PLANE, 12);
    for (size_t i = 0; i < N * PLANE; i++) xs[i] = 3 * xs[i] + (nn_real)(i / PLANE); /* samples differ in mean */
    const nn_real gam[C] = {1.5f, -0.5f, 0.8f}, bet[C] = {0.1f, 0.2f, -0.3f};

    /* the whole batch in one process, one graph */
    nn_tensor *x = nn_tensor_new4(NN_CPU, N, C, H, W), *dy = nn_tensor_new4(NN_CPU, N, C, H, W);
    nn_tensor *gamma = nn_tensor_new4(NN_CPU, C, 0, 0, 0), *beta = nn_tensor_new4(NN_CPU, C, 0, 0, 0);
    nn_tensor *rmean = nn_tensor_zeros(NN_CPU, 1, (int[]){C}), *rvar = nn_tensor_new4(NN_CPU, C, 0, 0, 0);
    nn_tensor_upload(x, xs), nn_tensor_upload(dy, dys), nn_tensor_upload(gamma, gam), nn_tensor_upload(beta, bet);
    nn_tensor_fill(rvar, 1);
    x->requires_grad = gamma->requires_grad = beta->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_batchnorm2d(&g, x, gamma, beta, rmean, rvar, 0.1f, 1e-5f);
    cr_assert_not_null(y, "%s", nn_last_error());
    cr_assert_eq(nn_graph_backward_from(&g, y, dy), 0, "%s", nn_last_error());

    /* the same batch as two parts, one thread each */
    fake_world w = {0};
    pthread_barrier_init(&w.barrier, NULL, PARTS);
    static part_job jobs[PARTS];
    pthread_t th[PARTS];
    for (int r = 0; r < PARTS; r++) {
        jobs[r] = (part_job){.w = &w, .rank = r, .x = xs, .dy = dys, .gamma = gam, .beta = bet};
        cr_assert_eq(pthread_create(&th[r], NULL, run_part, &jobs[r]), 0);
    }
    for (int r = 0; r < PARTS; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w.barrier);
    for (int r = 0; r < PARTS; r++) cr_assert_eq(jobs[r].rc, 0, "part %d: %s", r, jobs[r].err);
    /* forward: sum of x, then of the squared deviations; backward: one sum of (2, C) */
    cr_assert_eq(w.calls[0], 3, "%d collective calls, expected 3", w.calls[0]);

    const size_t half = N / PARTS * PLANE;
    nn_real *y_all = tu_host(y), *dx_all = tu_host(x->grad), *dg = tu_host(gamma->grad), *db = tu_host(beta->grad);
    nn_real *rm = tu_host(rmean), *rv = tu_host(rvar);
    for (int r = 0; r < PARTS; r++) {
        tu_assert_close(jobs[r].y, y_all + r * half, half, 1e-5, 1e-5, "output of a part");
        tu_assert_close(jobs[r].dx, dx_all + r * half, half, 1e-5, 1e-5, "input gradient of a part");
        tu_assert_close(jobs[r].rmean, rm, C, 1e-6, 1e-6, "running mean");
        tu_assert_close(jobs[r].rvar, rv, C, 1e-6, 1e-6, "running variance");
    }
    nn_real dg_sum[C], db_sum[C];
    for (int c = 0; c < C; c++) dg_sum[c] = jobs[0].dgamma[c] + jobs[1].dgamma[c], db_sum[c] = jobs[0].dbeta[c] + jobs[1].dbeta[c];
    tu_assert_close(dg_sum, dg, C, 1e-5, 1e-5, "dgamma summed over the parts");
    tu_assert_close(db_sum, db, C, 1e-5, 1e-5, "dbeta summed over the parts");
    /* the test sees a difference: each half's own statistics give another output */
    double most = 0;
    nn_graph g1;
    nn_graph_init(&g1, 1);
    nn_tensor *x0 = nn_tensor_new4(NN_CPU, N / PARTS, C, H, W);
    nn_tensor_upload(x0, xs);
    nn_tensor *y0 = nn_batchnorm2d(&g1, x0, gamma, beta, rmean, rvar, 0.1f, 1e-5f);
    nn_real *y0h = tu_host(y0);
    for (size_t i = 0; i < half; i++) most = fmax(most, fabs((double)y0h[i] - (double)y_all[i]));
    cr_assert_gt(most, 0.1, "half a batch normalised alone is within %g of the whole batch's", most);
    free(y0h), nn_tensor_unref(y0), nn_tensor_unref(x0), nn_graph_clear(&g1), nn_graph_free(&g1);
    free(y_all), free(dx_all), free(dg), free(db), free(rm), free(rv), free(xs), free(dys);
    nn_tensor_unref(y), nn_graph_clear(&g), nn_graph_free(&g);
    nn_tensor_unref(x), nn_tensor_unref(dy), nn_tensor_unref(gamma), nn_tensor_unref(beta);
    nn_tensor_unref(rmean), nn_tensor_unref(rvar);
}

/* Batch norm in training mode of a (2, 2, 3, 3) input in graph g, whose collective is
 * co: the output, or NULL with nn_last_error() set. The inputs are released (the graph
 * holds what it records). */
static nn_tensor *batchnorm_through(nn_graph *g, nn_collective *co) {
    nn_tensor *x = tu_uniform4(2, 2, 3, 3, -1, 1, 5), *gamma = nn_tensor_new4(NN_CPU, 2, 0, 0, 0);
    nn_tensor *beta = nn_tensor_zeros(NN_CPU, 1, (int[]){2}), *rm = nn_tensor_zeros(NN_CPU, 1, (int[]){2});
    nn_tensor *rv = nn_tensor_new4(NN_CPU, 2, 0, 0, 0);
    nn_tensor_fill(gamma, 1), nn_tensor_fill(rv, 1);
    nn_graph_init(g, 1);
    g->collective = co;
    nn_tensor *y = nn_batchnorm2d(g, x, gamma, beta, rm, rv, 0.1f, 1e-5f);
    nn_tensor_unref(x), nn_tensor_unref(gamma), nn_tensor_unref(beta), nn_tensor_unref(rm), nn_tensor_unref(rv);
    return y;
}

/* A collective of one process leaves batch norm as it was (no sums asked). */
static int must_not_be_called(void *ctx, double *buf, size_t n, nn_device device) {
    (void)ctx, (void)buf, (void)n, (void)device;
    return nn_fail("called");
}

Test(dist, a_collective_of_one_is_not_used) {
    nn_collective co = {.size = 1, .sum_f64 = must_not_be_called};
    nn_graph g;
    nn_tensor *y = batchnorm_through(&g, &co);
    cr_assert_not_null(y, "%s", nn_last_error());
    nn_tensor_unref(y), nn_graph_clear(&g), nn_graph_free(&g);
}

/* A failing collective fails the op with its message. */
Test(dist, a_failing_collective_fails_batchnorm) {
    nn_collective co = {.size = 2, .sum_f64 = must_not_be_called};
    nn_graph g;
    cr_assert_null(batchnorm_through(&g, &co));
    cr_assert(strstr(nn_last_error(), "batchnorm2d (data-parallel)") && strstr(nn_last_error(), "called"),
              "message: %s", nn_last_error());
    nn_graph_clear(&g), nn_graph_free(&g);
}

Test(dist, dropout_parts_draw_the_whole_batch_mask) {
    enum { B = 6, F = 40 };
    nn_tensor *x = nn_tensor_new4(NN_CPU, B, F, 0, 0);
    nn_tensor_fill(x, 1);
    nn_graph g;
    nn_graph_init(&g, 1);
    g.dropout_seed = 1234;
    nn_tensor *y = nn_dropout(&g, x, 0.5f);
    cr_assert_not_null(y, "%s", nn_last_error());
    nn_real *all = tu_host(y);
    int differ = 0;
    for (int first = 0; first < B; first += 2) {
        nn_tensor *xp = nn_tensor_new4(NN_CPU, 2, F, 0, 0);
        nn_tensor_fill(xp, 1);
        nn_graph gp;
        nn_graph_init(&gp, 1);
        gp.dropout_seed = 1234;
        gp.sample_offset = first;
        nn_tensor *yp = nn_dropout(&gp, xp, 0.5f);
        cr_assert_not_null(yp, "%s", nn_last_error());
        nn_real *part = tu_host(yp);
        cr_assert(!memcmp(part, all + (size_t)first * F, 2 * F * sizeof *part), "samples %d..%d draw another mask",
                  first, first + 1);
        if (first) differ |= memcmp(part, all, 2 * F * sizeof *part) != 0; /* not the first part's mask again */
        free(part);
        nn_tensor_unref(yp), nn_tensor_unref(xp), nn_graph_clear(&gp), nn_graph_free(&gp);
    }
    cr_assert(differ, "every part drew the same mask: the test would not see an offset ignored");
    g.sample_offset = -1;
    cr_assert_null(nn_dropout(&g, x, 0.5f));
    cr_assert(strstr(nn_last_error(), "negative"), "%s", nn_last_error());
    free(all);
    nn_tensor_unref(y), nn_tensor_unref(x), nn_graph_clear(&g), nn_graph_free(&g);
}
