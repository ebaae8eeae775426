/* Element-wise ops and the tape: forward against naive loops, memory freed. */
#include "testutil.h"

Test(elementwise, relu_add_mean_match_naive_loops) {
    nn_tensor *a = tu_uniform4(2, 3, 4, 5, -1, 1, 1), *b = tu_uniform4(2, 3, 4, 5, -1, 1, 2);
    const nn_real mean[3] = {123.68f, 116.78f, 103.94f};
    nn_tensor *r = nn_relu(NULL, a), *s = nn_add(NULL, a, b), *m = nn_sub_channel_mean(NULL, a, mean);
    cr_assert(r && s && m, "%s", nn_last_error());
    nn_real *want_r = malloc(a->numel * sizeof(nn_real)), *want_s = malloc(a->numel * sizeof(nn_real)),
            *want_m = malloc(a->numel * sizeof(nn_real));
    for (size_t i = 0; i < a->numel; i++) {
        want_r[i] = a->data[i] > 0 ? a->data[i] : 0;
        want_s[i] = a->data[i] + b->data[i];
        want_m[i] = a->data[i] - mean[(i / 20) % 3];
    }
    tu_assert_close(r->data, want_r, a->numel, 0, 0, "relu");
    tu_assert_close(s->data, want_s, a->numel, 0, 0, "add");
    tu_assert_close(m->data, want_m, a->numel, 0, 0, "sub_channel_mean");
    free(want_r), free(want_s), free(want_m);
    nn_tensor_unref(r), nn_tensor_unref(s), nn_tensor_unref(m), nn_tensor_unref(a), nn_tensor_unref(b);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(elementwise, add_scaled_matches_naive_loops_forward_and_backward) {
    /* out = a + s b; with upstream R: da = R, db = s R */
    const double scale = -2.5;
    nn_tensor *a = tu_uniform4(2, 3, 4, 5, -1, 1, 3), *b = tu_uniform4(2, 3, 4, 5, -1, 1, 4);
    nn_tensor *r = tu_uniform4(2, 3, 4, 5, -1, 1, 5);
    a->requires_grad = b->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *y = nn_add_scaled(&g, a, b, scale);
    cr_assert_not_null(y, "%s", nn_last_error());
    cr_assert_eq(nn_graph_backward_from(&g, y, r), 0, "%s", nn_last_error());
    nn_real *want = malloc(a->numel * sizeof(nn_real)), *want_db = malloc(a->numel * sizeof(nn_real));
    for (size_t i = 0; i < a->numel; i++) {
        want[i] = (nn_real)(a->data[i] + scale * b->data[i]);
        want_db[i] = (nn_real)(scale * r->data[i]);
    }
    tu_assert_close(y->data, want, a->numel, 1e-6, 1e-6, "add_scaled");
    tu_assert_close(a->grad->data, r->data, a->numel, 0, 0, "add_scaled da");
    tu_assert_close(b->grad->data, want_db, a->numel, 1e-6, 1e-6, "add_scaled db");
    free(want), free(want_db);
    nn_tensor_unref(y);
    nn_graph_free(&g);
    nn_tensor_unref(a), nn_tensor_unref(b), nn_tensor_unref(r);
    cr_assert_eq(nn_tensor_live_count(), 0, "%ld tensors leaked", nn_tensor_live_count());
}

Test(elementwise, add_rejects_shape_mismatch) {
    nn_tensor *a = tu_uniform4(2, 3, 0, 0, 0, 1, 1), *b = tu_uniform4(3, 2, 0, 0, 0, 1, 2);
    cr_assert_null(nn_add(NULL, a, b));
    cr_assert(strstr(nn_last_error(), "add: shapes (2, 3) and (3, 2)"), "message: %s", nn_last_error());
    cr_assert_null(nn_add_scaled(NULL, a, b, 2));
    cr_assert(strstr(nn_last_error(), "add_scaled: shapes (2, 3) and (3, 2)"), "message: %s", nn_last_error());
    nn_tensor_unref(a), nn_tensor_unref(b);
}

Test(graph, inference_mode_records_nothing_and_frees_dead_activations) {
    nn_tensor *x = tu_uniform4(1, 2, 3, 3, -1, 1, 3);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 0);
    nn_tensor *y = nn_relu(&g, x);
    y = nn_then(y, nn_relu(&g, y));
    cr_assert_eq(g.n_nodes, 0);
    cr_assert_eq(nn_tensor_live_count(), 2, "x and y only, got %ld", nn_tensor_live_count());
    nn_tensor_unref(y), nn_tensor_unref(x);
    nn_graph_free(&g);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

Test(graph, backward_accumulates_over_fan_out) {
    /* loss = sum(relu(x) + relu(x)) -> dx = 2 where x > 0 */
    nn_tensor *x = tu_uniform4(4, 0, 0, 0, -1, 1, 5);
    x->requires_grad = 1;
    nn_graph g;
    nn_graph_init(&g, 1);
    nn_tensor *r = nn_relu(&g, x);
    nn_tensor *s = nn_add(&g, r, r);
    cr_assert_eq(nn_graph_backward_from(&g, s, NULL), 0, "%s", nn_last_error());
    for (int i = 0; i < 4; i++) cr_assert_eq(x->grad->data[i], x->data[i] > 0 ? 2 : 0);
    nn_tensor_unref(r), nn_tensor_unref(s);
    nn_graph_free(&g);
    nn_tensor_unref(x);
    cr_assert_eq(nn_tensor_live_count(), 0);
}

/* nn_tensor_upload_async / nn_device_wait_uploads on the CPU (nn/tensor.h): the table
 * has both entries; the upload is a plain copy, complete on return, so the host array
 * may be overwritten at once; the wait has nothing to do (also when nothing is pending).
 * Uploading into a tensor that earlier results were computed from leaves those alone. */
Test(tensor, upload_async_and_wait_round_trip_on_the_cpu) {
    const nn_backend *cpu = nn_backend_cpu();
    cr_assert(cpu->upload_async && cpu->wait_uploads, "the CPU table lacks upload_async or wait_uploads");
    nn_tensor *t = nn_tensor_new4(NN_CPU, 2, 3, 5, 7);
    cr_assert_not_null(t, "%s", nn_last_error());
    const size_t n = t->numel;
    nn_real *h = tu_uniform_array(n, 11), *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    cr_assert(want && got);
    memcpy(want, h, n * sizeof *h);
    cr_assert_eq(nn_device_wait_uploads(NN_CPU), 0, "%s", nn_last_error()); /* nothing pending */
    cr_assert_eq(nn_tensor_upload_async(t, h), 0, "%s", nn_last_error());
    for (size_t i = 0; i < n; i++) h[i] = -7; /* the host array is free again */
    cr_assert_eq(nn_device_wait_uploads(NN_CPU), 0, "%s", nn_last_error());
    cr_assert_eq(nn_tensor_download(t, got), 0, "%s", nn_last_error());
    cr_assert(!memcmp(got, want, n * sizeof *got), "the upload did not arrive bit for bit");

    /* the pattern of the training loop: a result of t, then the next data into t */
    nn_tensor *r = nn_relu(NULL, t);
    cr_assert_not_null(r, "%s", nn_last_error());
    cr_assert_eq(nn_tensor_upload_async(t, h), 0, "%s", nn_last_error());
    cr_assert_eq(nn_device_wait_uploads(NN_CPU), 0, "%s", nn_last_error());
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(t->data[i], -7, "t[%zu] = %g after the second upload", i, (double)t->data[i]);
        cr_assert_eq(r->data[i], want[i] > 0 ? want[i] : 0, "relu[%zu] changed", i);
    }
    nn_tensor_unref(r), nn_tensor_unref(t);
    free(h), free(want), free(got);
    cr_assert_eq(nn_tensor_live_count(), 0);
}
