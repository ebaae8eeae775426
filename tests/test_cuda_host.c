/* The CUDA backend's host-side logic, run on the CPU (no GPU needed):
 *  - the caching allocator (nn/cuda_alloc.h) over a fake device that counts its
 *    mallocs and frees and can be made to run out of memory;
 *  - the convolution plan (nn/cuda_plan.h): the algorithm cache and the choice,
 *    cap and fallback rules, on fake cuDNN measurements;
 *  - the precision / deterministic settings.
 * Expected values come from the rules stated in those headers. */
#include <stdint.h>

#include "../nn/cuda_alloc.h"
#include "../nn/cuda_plan.h"
#include "testutil.h"

/* ---- a fake device: host memory with a capacity ------------------------------------ */

typedef struct fake_dev {
    size_t capacity, used;
    long mallocs, frees, live;
    int fail_other;   /* next malloc fails with a non-OOM error */
} fake_dev;

/* Blocks carry their size in a header so the fake device can account for frees. */
static int fake_malloc(void **p, size_t bytes, void *ctx) {
    fake_dev *d = ctx;
    if (d->fail_other) {
        d->fail_other = 0;
        return nn_fail("fakeMalloc failed: device lost");
    }
    if (d->used + bytes > d->capacity) return 1;
    size_t *h = malloc(bytes + 64);
    cr_assert_not_null(h);
    h[0] = bytes;
    *p = (char *)h + 64;
    d->used += bytes;
    d->mallocs++;
    d->live++;
    return 0;
}

static int fake_free(void *p, void *ctx) {
    fake_dev *d = ctx;
    size_t *h = (size_t *)((char *)p - 64);
    d->used -= h[0];
    d->frees++;
    d->live--;
    free(h);
    return 0;
}

static int fake_info(size_t *free_b, size_t *total_b, void *ctx) {
    fake_dev *d = ctx;
    *free_b = d->capacity - d->used;
    *total_b = d->capacity;
    return 0;
}

static nn_cuda_allocator *fake_allocator(fake_dev *d, size_t capacity) {
    memset(d, 0, sizeof *d);
    d->capacity = capacity;
    nn_dev_ops ops = {fake_malloc, fake_free, fake_info, d};
    nn_cuda_allocator *a = nn_cuda_allocator_new(&ops);
    cr_assert_not_null(a, "%s", nn_last_error());
    return a;
}

static nn_cuda_alloc_stats stats(nn_cuda_allocator *a) {
    nn_cuda_alloc_stats s;
    nn_cuda_allocator_stats(a, &s);
    return s;
}

/* ---- size classes ---------------------------------------------------------------- */

Test(cuda_alloc, size_classes_cover_the_request_with_bounded_waste) {
    cr_assert_eq(nn_cuda_alloc_class(0), 512);
    cr_assert_eq(nn_cuda_alloc_class(1), 512);
    cr_assert_eq(nn_cuda_alloc_class(512), 512);
    cr_assert_eq(nn_cuda_alloc_class(513), 1024);
    cr_assert_eq(nn_cuda_alloc_class((size_t)1 << 20), (size_t)1 << 20);
    /* above 1 MiB: 8 classes per power of two, e.g. (1 MiB, 1.125 MiB] -> 1.125 MiB */
    cr_assert_eq(nn_cuda_alloc_class(((size_t)1 << 20) + 1), ((size_t)9 << 17));
    size_t prev = 0;
    for (size_t b = 1; b < ((size_t)1 << 32); b = b * 3 / 2 + 7) {
        size_t c = nn_cuda_alloc_class(b);
        cr_assert(c >= b && c % 512 == 0, "class %zu of %zu", c, b);
        cr_assert(c >= prev, "classes must grow with the request");
        if (b > ((size_t)1 << 20)) cr_assert(c - b <= b / 8, "class %zu wastes more than 12.5%% of %zu", c, b);
        prev = c;
    }
    cr_assert_eq(nn_cuda_alloc_class(SIZE_MAX), 0, "an impossible request has no class");
}

/* ---- reuse ------------------------------------------------------------------------ */

Test(cuda_alloc, freed_block_is_reused_for_the_same_class) {
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, (size_t)1 << 30);
    void *p = nn_cuda_allocator_alloc(a, 1000);
    cr_assert_not_null(p, "%s", nn_last_error());
    cr_assert_eq(nn_cuda_allocator_release(a, p), 0);
    void *q = nn_cuda_allocator_alloc(a, 900);   /* same class (1024) */
    cr_assert_eq(q, p, "a cached block of the same class must be handed out again");
    cr_assert_eq(d.mallocs, 1);
    void *r = nn_cuda_allocator_alloc(a, 5000);  /* another class: a new device block */
    cr_assert_neq(r, p);
    cr_assert_eq(d.mallocs, 2);
    nn_cuda_alloc_stats s = stats(a);
    cr_assert_eq(s.n_reused, 1);
    cr_assert_eq(s.n_alloc, 3);
    cr_assert_eq(s.in_use_bytes, 1024 + 5120);
    cr_assert_eq(s.requested_bytes, 900 + 5000);
    cr_assert_eq(nn_cuda_allocator_destroy(a), 0);
    cr_assert_eq(d.live, 0, "destroy must return every block to the device, %ld left", d.live);
}

Test(cuda_alloc, steady_state_training_steps_never_touch_the_device) {
    /* A step allocates activations of a fixed list of sizes, frees them in another
     * order, and keeps a few (parameters). Only the first step may allocate. */
    static const size_t sizes[] = {4096, 123456, 3u << 20, 7777, 64, 33u << 20, 123456, 4096, 1u << 22};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, (size_t)1 << 32);
    void *params = nn_cuda_allocator_alloc(a, 10u << 20);
    cr_assert_not_null(params);
    long after_first = 0;
    for (int step = 0; step < 10; step++) {
        void *p[NS];
        for (int i = 0; i < NS; i++) cr_assert_not_null(p[i] = nn_cuda_allocator_alloc(a, sizes[i]), "%s", nn_last_error());
        for (int i = NS - 1; i >= 0; i -= 2) cr_assert_eq(nn_cuda_allocator_release(a, p[i]), 0);
        for (int i = NS - 2; i >= 0; i -= 2) cr_assert_eq(nn_cuda_allocator_release(a, p[i]), 0);
        if (step == 0) after_first = d.mallocs;
    }
    cr_assert_eq(d.mallocs, after_first, "steps after the first made %ld device allocations", d.mallocs - after_first);
    cr_assert_eq(d.frees, 0);
    nn_cuda_alloc_stats s = stats(a);
    cr_assert_eq(s.n_device_malloc, after_first);
    cr_assert_eq(s.n_blocks_in_use, 1);
    cr_assert_eq(s.in_use_bytes, nn_cuda_alloc_class(10u << 20));
    cr_assert_eq(s.reserved_bytes, s.in_use_bytes + s.cached_bytes);
    cr_assert_eq(s.reserved_bytes, d.used, "reserved %zu, device says %zu", s.reserved_bytes, d.used);
    cr_assert(s.peak_in_use_bytes >= s.in_use_bytes && s.peak_reserved_bytes >= s.reserved_bytes);
    nn_cuda_allocator_destroy(a);
    cr_assert_eq(d.live, 0);
}

Test(cuda_alloc, many_blocks_of_one_class_and_table_growth) {
    /* Enough live blocks to grow the pointer table several times. */
    enum { N = 5000 };
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, (size_t)1 << 32);
    void **p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = nn_cuda_allocator_alloc(a, 100 + (size_t)(i % 3) * 600));
    for (int i = 0; i < N; i += 2) cr_assert_eq(nn_cuda_allocator_release(a, p[i]), 0);
    for (int i = 1; i < N; i += 2) cr_assert_eq(nn_cuda_allocator_release(a, p[i]), 0, "block %d: %s", i, nn_last_error());
    cr_assert_eq(stats(a).n_blocks_cached, N);
    cr_assert_eq(stats(a).n_blocks_in_use, 0);
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = nn_cuda_allocator_alloc(a, 100 + (size_t)(i % 3) * 600));
    cr_assert_eq(d.mallocs, N, "the second round must be served from the cache");
    free(p);
    nn_cuda_allocator_destroy(a);
    cr_assert_eq(d.live, 0);
}

/* ---- errors and out of memory ------------------------------------------------------ */

Test(cuda_alloc, release_of_a_foreign_or_released_pointer_fails) {
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, 1 << 20);
    int x;
    cr_assert_eq(nn_cuda_allocator_release(a, NULL), 0, "NULL is ignored");
    cr_assert_eq(nn_cuda_allocator_release(a, &x), -1);
    cr_assert(strstr(nn_last_error(), "was not allocated by this allocator"), "%s", nn_last_error());
    void *p = nn_cuda_allocator_alloc(a, 10);
    cr_assert_eq(nn_cuda_allocator_release(a, p), 0);
    cr_assert_eq(nn_cuda_allocator_release(a, p), -1, "double release must be caught");
    nn_cuda_allocator_destroy(a);
}

Test(cuda_alloc, out_of_memory_releases_the_cache_and_retries) {
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, 10u << 20);   /* a 10 MiB device */
    void *p[4];
    for (int i = 0; i < 4; i++) cr_assert_not_null(p[i] = nn_cuda_allocator_alloc(a, 2u << 20));
    for (int i = 0; i < 4; i++) nn_cuda_allocator_release(a, p[i]);
    cr_assert_eq(stats(a).cached_bytes, 8u << 20);
    /* 6 MiB does not fit next to 8 MiB of cached blocks, but fits once they are freed */
    void *big = nn_cuda_allocator_alloc(a, 6u << 20);
    cr_assert_not_null(big, "%s", nn_last_error());
    nn_cuda_alloc_stats s = stats(a);
    cr_assert_eq(s.n_oom_retries, 1);
    cr_assert_eq(s.cached_bytes, 0);
    cr_assert_eq(d.frees, 4);
    cr_assert_eq(s.reserved_bytes, d.used);
    nn_cuda_allocator_destroy(a);
    cr_assert_eq(d.live, 0);
}

Test(cuda_alloc, out_of_memory_message_says_asked_free_and_what_to_lower) {
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, 10u << 20);
    void *keep = nn_cuda_allocator_alloc(a, 4u << 20);
    cr_assert_not_null(keep);
    cr_assert_null(nn_cuda_allocator_alloc(a, 8u << 20));
    const char *e = nn_last_error();
    cr_assert(strstr(e, "out of GPU memory"), "%s", e);
    cr_assert(strstr(e, "8.00 MiB requested"), "the request: %s", e);
    cr_assert(strstr(e, "6.00 MiB free of 10.00 MiB"), "free memory: %s", e);
    cr_assert(strstr(e, "4.00 MiB in 1 blocks"), "what this process holds: %s", e);
    cr_assert(strstr(e, "lower the batch size"), "advice: %s", e);
    cr_assert_eq(stats(a).n_oom_retries, 1);
    /* other device errors are passed through without a retry */
    d.fail_other = 1;
    cr_assert_null(nn_cuda_allocator_alloc(a, 1000));
    cr_assert(strstr(nn_last_error(), "device lost"), "%s", nn_last_error());
    cr_assert_eq(stats(a).n_oom_retries, 1);
    /* and the allocator still works */
    void *p = nn_cuda_allocator_alloc(a, 1000);
    cr_assert_not_null(p);
    nn_cuda_allocator_destroy(a);
    cr_assert_eq(d.live, 0);
}

Test(cuda_alloc, empty_cache_and_process_wide_stats) {
    nn_cuda_alloc_stats s;
    nn_cuda_alloc_set_current(NULL);
    cr_assert_eq(nn_cuda_memory_stats(&s), -1, "no CUDA backend started in this process");
    cr_assert(strstr(nn_last_error(), "not started"), "%s", nn_last_error());
    fake_dev d;
    nn_cuda_allocator *a = fake_allocator(&d, 1u << 30);
    nn_cuda_alloc_set_current(a);
    void *p = nn_cuda_allocator_alloc(a, 3000), *q = nn_cuda_allocator_alloc(a, 300000);
    nn_cuda_allocator_release(a, q);
    cr_assert_eq(nn_cuda_memory_stats(&s), 0);
    cr_assert_eq(s.n_blocks_cached, 1);
    cr_assert_eq(nn_cuda_empty_cache(), 0);
    cr_assert_eq(nn_cuda_memory_stats(&s), 0);
    cr_assert_eq(s.cached_bytes, 0);
    cr_assert_eq(s.reserved_bytes, s.in_use_bytes);
    cr_assert_eq(d.live, 1);
    nn_cuda_allocator_release(a, p);
    nn_cuda_allocator_destroy(a);
    cr_assert_null(nn_cuda_alloc_current(), "destroying the current allocator unsets it");
}

Test(cuda_alloc, format_bytes) {
    char b[32];
    cr_assert_str_eq(nn_format_bytes(0, b, sizeof b), "0 B");
    cr_assert_str_eq(nn_format_bytes(1023, b, sizeof b), "1023 B");
    cr_assert_str_eq(nn_format_bytes(1536, b, sizeof b), "1.50 KiB");
    cr_assert_str_eq(nn_format_bytes((size_t)3 << 30, b, sizeof b), "3.00 GiB");
}

/* ---- the algorithm cache ------------------------------------------------------------ */

static nn_conv_shape vgg_conv(void) {
    nn_conv_shape s = {64, 64, 160, 384, 64, 160, 384, 3, 3, 1, 1, 1, 0};
    return s;
}

Test(cuda_plan, cache_key_is_the_full_geometry_direction_and_settings) {
    nn_algo_cache c;
    nn_algo_cache_init(&c);
    nn_conv_shape base = vgg_conv();
    nn_conv_key k;
    nn_conv_key_make(&k, &base, NN_CONV_FWD, NN_PRECISION_FP32, 0);
    nn_algo_choice ch = {1, 1000, 3, 0.5f, 0, -1, 0};
    cr_assert_null(nn_algo_cache_find(&c, &k));
    cr_assert_eq(nn_algo_cache_put(&c, &k, &ch), 0);
    const nn_algo_choice *got = nn_algo_cache_find(&c, &k);
    cr_assert(got && got->algo == 1 && got->workspace == 1000);
    /* every field of the geometry, the direction and the settings must matter */
    for (int f = 0; f < 15; f++) {
        nn_conv_shape s = base;
        nn_conv_dir dir = NN_CONV_FWD;
        nn_precision prec = NN_PRECISION_FP32;
        int det = 0;
        int *field[12] = {&s.n,     &s.c_in,  &s.h_in, &s.w_in, &s.c_out,  &s.h_out,
                          &s.w_out, &s.kh,    &s.kw,   &s.stride, &s.pad, &s.dilation};
        if (f < 12) *field[f] += 1;
        else if (f == 12) dir = NN_CONV_BWD_DATA;
        else if (f == 13) prec = NN_PRECISION_TF32;
        else det = 1;
        nn_conv_key k2;
        nn_conv_key_make(&k2, &s, dir, prec, det);
        cr_assert_not(nn_conv_key_equal(&k, &k2), "changing field %d must change the key", f);
        cr_assert_null(nn_algo_cache_find(&c, &k2), "field %d", f);
    }
    cr_assert_eq(c.hits, 1);
    cr_assert_eq(c.misses, 16);
    /* replace keeps one entry */
    ch.algo = 5;
    nn_algo_cache_put(&c, &k, &ch);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(nn_algo_cache_find(&c, &k)->algo, 5);
    nn_algo_cache_free(&c);
}

Test(cuda_plan, cache_holds_every_deep3d_geometry) {
    /* The transposed convolutions of DEEP3D.md (scale s: kernel 2s, stride s,
     * padding s/2; and kernel 4 stride 2 padding 1), each as the conv it is the
     * adjoint of, in three directions: all distinct entries. */
    nn_algo_cache c;
    nn_algo_cache_init(&c);
    int scales[] = {1, 2, 4, 8, 16};
    nn_conv_key keys[18];
    int n_put = 0;
    for (int i = 0; i < 6; i++) {
        int s = i < 5 ? scales[i] : 2, k = i == 0 ? 1 : (i < 5 ? 2 * s : 4), p = i == 0 ? 0 : (i < 5 ? s / 2 : 1);
        int h = i < 5 ? 80 / s : 80, w = i < 5 ? 192 / s : 192;
        nn_conv_shape g = {64, 33, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k, 33, h, w, k, k, s, p, 1, 0};
        for (int dir = 0; dir < 3; dir++) {
            nn_conv_key_make(&keys[n_put], &g, (nn_conv_dir)dir, NN_PRECISION_FP32, 0);
            nn_algo_choice ch = {n_put, 0, 3, 1, 0, -1, 0};
            cr_assert_eq(nn_algo_cache_put(&c, &keys[n_put], &ch), 0);
            n_put++;
        }
    }
    cr_assert_eq(c.n, n_put, "%d geometries x directions, %d entries", n_put, c.n);
    for (int i = 0; i < n_put; i++) {
        const nn_algo_choice *got = nn_algo_cache_find(&c, &keys[i]);
        cr_assert(got && got->algo == i, "entry %d", i);
    }
    nn_algo_cache_free(&c);
}

/* ---- the choice rules ----------------------------------------------------------------- */

/* fake measurements: {algo, ok, time_ms, workspace, deterministic, math_type, tensor_op} */
static const nn_algo_perf cands[] = {
    {0, 1, 5.0f, 0, 1, 3, 0},            /* slow, no workspace, deterministic */
    {1, 1, 2.0f, 64u << 20, 1, 3, 0},     /* fast, 64 MiB */
    {2, 1, 1.0f, 512u << 20, 0, 3, 0},    /* fastest, 512 MiB, not deterministic */
    {3, 0, 0.1f, 0, 1, 3, 0},             /* failed */
    {4, 1, 0.5f, 8u << 20, 1, 1, 1},      /* tensor-op math */
    {5, 1, 3.0f, 0, 0, 3, 0},             /* no workspace, not deterministic */
};
enum { NC = sizeof cands / sizeof cands[0] };

Test(cuda_plan, choose_the_fastest_that_qualifies) {
    nn_algo_choice ch;
    cr_assert_eq(nn_plan_choose(cands, NC, (size_t)1 << 30, 0, 1, &ch), 0);
    cr_assert_eq(ch.algo, 4, "tensor-op allowed (tf32): the fastest successful one");
    cr_assert_eq(nn_plan_choose(cands, NC, (size_t)1 << 30, 0, 0, &ch), 0);
    cr_assert_eq(ch.algo, 2, "fp32 excludes tensor-op math");
    cr_assert_eq(ch.workspace, 512u << 20);
    cr_assert_eq(ch.fallback, 0);
    cr_assert_eq(nn_plan_choose(cands, NC, 100u << 20, 0, 0, &ch), 0);
    cr_assert_eq(ch.algo, 1, "the cap excludes the 512 MiB one");
    cr_assert_eq(nn_plan_choose(cands, NC, (size_t)1 << 30, 1, 0, &ch), 0);
    cr_assert_eq(ch.algo, 1, "deterministic mode excludes algos 2 and 5");
    cr_assert_eq(nn_plan_choose(cands, NC, 0, 0, 0, &ch), 0);
    cr_assert_eq(ch.algo, 5, "cap 0: the fastest zero-workspace one (algo 3 failed)");
    cr_assert_eq(nn_plan_choose(cands, NC, 0, 1, 0, &ch), 0);
    cr_assert_eq(ch.algo, 0);
}

Test(cuda_plan, choose_reports_why_nothing_qualifies) {
    nn_algo_perf only[] = {{0, 0, 1, 0, 1, 3, 0}, {1, 1, 1, 1000, 1, 3, 0}, {2, 1, 1, 0, 0, 3, 0}};
    nn_algo_choice ch;
    cr_assert_eq(nn_plan_choose(only, 3, 10, 1, 0, &ch), -1);
    const char *e = nn_last_error();
    cr_assert(strstr(e, "no usable cuDNN algorithm among 3 measured: 1 failed, 1 need more workspace"), "%s", e);
    cr_assert(strstr(e, "1 are not deterministic (deterministic mode is on)"), "%s", e);
    cr_assert_eq(nn_plan_choose(only, 0, 10, 0, 0, &ch), -1, "no candidates at all");
}

static int ws_calls;
static size_t ws_asked;
static int ws_fail(size_t bytes, void *ctx) {
    (void)ctx;
    ws_calls++;
    ws_asked = bytes;
    return nn_fail("out of GPU memory: fake");
}
static int ws_ok(size_t bytes, void *ctx) {
    size_t *have = ctx;
    ws_calls++;
    if (bytes > *have) *have = bytes;
    return 0;
}

Test(cuda_plan, decide_falls_back_to_zero_workspace_when_the_workspace_cannot_grow) {
    nn_algo_choice ch;
    ws_calls = 0;
    cr_assert_eq(nn_plan_decide(cands, NC, (size_t)1 << 30, 0, 0, ws_fail, NULL, &ch), 0, "%s", nn_last_error());
    cr_assert_eq(ws_calls, 1);
    cr_assert_eq(ws_asked, 512u << 20, "it first tries the fastest one's workspace");
    cr_assert_eq(ch.algo, 5);
    cr_assert_eq(ch.workspace, 0);
    cr_assert_eq(ch.fallback, 1);
    cr_assert_eq(ch.zero_algo, 5);
    cr_assert_str_eq(nn_last_error(), "", "the out-of-memory error is cleared by the fallback");
    /* deterministic: the zero-workspace deterministic one */
    cr_assert_eq(nn_plan_decide(cands, NC, (size_t)1 << 30, 1, 0, ws_fail, NULL, &ch), 0);
    cr_assert_eq(ch.algo, 0);
    /* the workspace grows to the choice when it can */
    size_t have = 0;
    ws_calls = 0;
    cr_assert_eq(nn_plan_decide(cands, NC, 100u << 20, 0, 0, ws_ok, &have, &ch), 0);
    cr_assert_eq(ch.algo, 1);
    cr_assert_eq(have, 64u << 20);
    cr_assert_eq(ch.fallback, 0);
    cr_assert_eq(ch.zero_algo, 5, "the zero-workspace alternative is kept for run time");
    cr_assert_eq(ch.zero_math_type, 3);
    /* a zero-workspace choice never asks for workspace */
    ws_calls = 0;
    cr_assert_eq(nn_plan_decide(cands, NC, 0, 0, 0, ws_fail, NULL, &ch), 0);
    cr_assert_eq(ws_calls, 0);
    /* nothing runs without workspace: a clear error */
    nn_algo_perf need[] = {{7, 1, 1, 4096, 1, 3, 0}};
    cr_assert_eq(nn_plan_decide(need, 1, 1 << 20, 0, 0, ws_fail, NULL, &ch), -1);
    cr_assert(strstr(nn_last_error(), "no algorithm runs without one"), "%s", nn_last_error());
    have = 0;
    cr_assert_eq(nn_plan_decide(need, 1, 1 << 20, 0, 0, ws_ok, &have, &ch), 0);
    cr_assert_eq(ch.algo, 7);
    cr_assert_eq(ch.zero_algo, -1, "no zero-workspace alternative");
}

Test(cuda_plan, workspace_cap_and_find_workspace) {
    cr_assert_eq(nn_plan_workspace_cap((size_t)80 << 30, 0), NN_PLAN_WORKSPACE_MAX, "1 GiB at most");
    cr_assert_eq(nn_plan_workspace_cap((size_t)800 << 20, 0), (size_t)100 << 20, "1/8 of what is available");
    cr_assert_eq(nn_plan_workspace_cap(0, 0), 0, "nothing available: zero-workspace algorithms only");
    cr_assert_eq(nn_plan_workspace_cap((size_t)80 << 30, 12345), 12345, "the user's limit wins");
    size_t needs[] = {0, 1000, SIZE_MAX, 5000, 300};
    cr_assert_eq(nn_plan_find_workspace(needs, 5, 10000), 5000);
    cr_assert_eq(nn_plan_find_workspace(needs, 5, 4999), 1000, "needs above the cap are not measured");
    cr_assert_eq(nn_plan_find_workspace(needs, 5, 0), 0);
}

/* ---- settings --------------------------------------------------------------------------- */

Test(cuda_plan, precision_and_deterministic_settings) {
    cr_assert_eq(nn_cuda_precision(), NN_PRECISION_FP32, "fp32 by default");
    cr_assert_eq(nn_cuda_set_precision("tf32"), 0);
    cr_assert_eq(nn_cuda_precision(), NN_PRECISION_TF32);
    cr_assert_str_eq(nn_precision_name(nn_cuda_precision()), "tf32");
    cr_assert_eq(nn_cuda_set_precision("bf16"), 0);
    cr_assert_eq(nn_cuda_precision(), NN_PRECISION_BF16);
    cr_assert_str_eq(nn_precision_name(nn_cuda_precision()), "bf16");
    cr_assert_eq(nn_cuda_set_precision("fp64"), -1);
    cr_assert(strstr(nn_last_error(), "unknown precision 'fp64' (expected fp32, tf32 or bf16)"), "%s", nn_last_error());
    cr_assert_eq(nn_cuda_precision(), NN_PRECISION_BF16, "a failed set changes nothing");
    cr_assert_eq(nn_cuda_set_precision(NULL), -1);
    cr_assert_eq(nn_cuda_set_precision("fp32"), 0);
    cr_assert_eq(nn_cuda_precision(), NN_PRECISION_FP32);
    cr_assert_eq(nn_cuda_deterministic(), 0);
    cr_assert_eq(nn_cuda_set_deterministic(5), 0);
    cr_assert_eq(nn_cuda_deterministic(), 1);
    nn_cuda_set_workspace_limit(1 << 20);
    cr_assert_eq(nn_cuda_workspace_limit(), 1u << 20);
}
