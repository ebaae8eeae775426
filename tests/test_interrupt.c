/* deep3d train interrupted and restarted (issue 11), through the real binary:
 * SIGINT/SIGTERM mid-run save the step reached and resume to the model of an
 * uninterrupted run, byte for byte; a second signal stops at once; step and cosine
 * schedules resume exactly (N + resume N = 2N); an existing run folder is not replaced
 * without --resume or --overwrite; --out is checked writable before any work; a killed
 * run's temporaries are removed; log.csv is rewritten up to the checkpoint on resume
 * and its write errors are reported; checkpoint settings are validated and explicit
 * options that disagree with them refused; unreadable validation pairs are skipped.
 *
 * Fixtures: a few 80x40 noise pairs, the right view the left shifted by 2 pixels, and
 * the tiny network of tests/test_train.c (64x32, width/16, D = 9). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "../nn/nn.h"
#include "../nn/weights.h"
#include "testutil.h"

static char root[64];
static void make_root(void) { tu_tmpdir(root, "deep3d_test_interrupt"); }
static void remove_root(void) { tu_rmtree(root); }
static const char *P(const char *name) { return tu_join(root, name); }

TestSuite(train_interrupt, .init = make_root, .fini = remove_root, .timeout = 240);
TestSuite(train_run_folder, .init = make_root, .fini = remove_root, .timeout = 120);

#define RUN(r, ...) tc_run((r), root, (const char *const[]){__VA_ARGS__, NULL})
#define START(...) tc_spawn(root, (const char *const[]){__VA_ARGS__, NULL})
#define TINY "--threads", "1", "--device", "cpu", "--width", "64", "--height", "32", "--width-div", "16", \
             "--disparities", "9", "--dmin", "-4", "--batch", "2", "--log-every", "1", "--lr", "0.001"

/* n pairs of 80x40 noise in folder dir: <i>_L.png, and <i>_R.png = left shifted by 2. */
static void write_pairs(const char *dir, int n) {
    cr_assert_eq(mkdir(P(dir), 0755), 0, "mkdir %s", dir);
    const int w = 80, h = 40;
    unsigned char *l = malloc((size_t)3 * w * h), *r = malloc((size_t)3 * w * h);
    char name[256];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3 * w * h; k++) l[k] = (unsigned char)(256 * nn_hash_uniform(40 + (uint64_t)i, (uint64_t)k));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(r + 3 * (y * w + x), l + 3 * (y * w + (x >= 2 ? x - 2 : 0)), 3);
        snprintf(name, sizeof name, "%s/%d_L.png", dir, i);
        cr_assert(stbi_write_png(P(name), w, h, 3, l, 3 * w));
        snprintf(name, sizeof name, "%s/%d_R.png", dir, i);
        cr_assert(stbi_write_png(P(name), w, h, 3, r, 3 * w));
    }
    free(l), free(r);
}

static void expect_ok(tc_result *r, const char *what) {
    cr_assert(r->exited && r->status == 0, "%s failed (status %d, %s): %s", what, r->status,
              r->exited ? "exited" : "signal", r->err);
    tc_free(r);
}

/* The rows of a log.csv: steps[i] and "loss,lr" of row i; returns the row count. */
static int read_rows(const char *path, int *steps, char (*vals)[64], int max) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char buf[512];
    cr_assert_not_null(fgets(buf, sizeof buf, f), "%s is empty", path);
    cr_assert(!strncmp(buf, "step,loss,lr,", 13), "%s header: %s", path, buf);
    int n = 0;
    while (fgets(buf, sizeof buf, f)) {
        cr_assert_lt(n, max, "%s: too many rows", path);
        char loss[32], lr[32];
        cr_assert_eq(sscanf(buf, "%d,%31[^,],%31[^,],", &steps[n], loss, lr), 3, "%s row: %s", path, buf);
        snprintf(vals[n], 64, "%s,%s", loss, lr);
        n++;
    }
    fclose(f);
    return n;
}

/* log.csv of a and b: rows for steps 1..steps exactly once each, in order, with the
 * same loss and lr; returns how many distinct lr values were logged. */
static int expect_same_logs(const char *a, const char *b, int steps) {
    static int sa[4096], sb[4096];
    static char va[4096][64], vb[4096][64];
    cr_assert_eq(read_rows(a, sa, va, 4096), steps, "%s: not %d rows", a, steps);
    cr_assert_eq(read_rows(b, sb, vb, 4096), steps, "%s: not %d rows", b, steps);
    int lrs = 1;
    for (int i = 0; i < steps; i++) {
        cr_assert(sa[i] == i + 1 && sb[i] == i + 1, "row %d is step %d / %d: a step missing or repeated", i, sa[i], sb[i]);
        cr_assert_str_eq(va[i], vb[i], "step %d: loss,lr %s uninterrupted vs %s resumed", i + 1, va[i], vb[i]);
        if (i && strcmp(strchr(va[i], ','), strchr(va[i - 1], ','))) lrs++;
    }
    return lrs;
}

static long config_long(const char *path, const char *key) {
    nn_weights_file *f = nn_weights_open(path);
    cr_assert_not_null(f, "%s", nn_last_error());
    long v = -1;
    cr_assert_eq(nn_weights_config_int(f, key, &v), 0, "%s", nn_last_error());
    nn_weights_close(f);
    return v;
}

/* Entries of folder dir (relative to root) whose names start with prefix. */
static int count_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(P(dir));
    cr_assert_not_null(d, "opendir %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static int log_rows(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = -1, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- signals ---------------------------------------------------------------------- */

/* Run A: 300 steps straight. Run B: the same, stopped by sig once it has logged 3
 * steps: exit 128 + sig, one line naming the checkpoint, a checkpoint at the step of
 * its last log row, no temporary left; resumed to 300 it ends with A's model and log,
 * byte for byte. */
static void expect_signal_saves_and_resumes(int sig) {
    write_pairs("d", 3);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "300", "--checkpoint-every", "1000");
    expect_ok(&r, "run A");
    pid_t pid = START("train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "300", "--checkpoint-every", "1000");
    for (int i = 0; i < 20000 && log_rows(P("b/log.csv")) < 3; i++) sleep_ms(2);
    cr_assert_eq(kill(pid, sig), 0);
    tc_collect(&r, root, pid);
    cr_assert(r.exited && r.status == 128 + sig, "stopped by signal %d: %s %d (want exit %d); stderr: %s", sig,
              r.exited ? "exit" : "killed by", r.status, 128 + sig, r.err);
    cr_assert(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "one line on stderr expected:\n%s", r.err);
    cr_assert(strstr(r.err, sig == SIGINT ? "SIGINT" : "SIGTERM") && strstr(r.err, P("b/checkpoint.d3w")),
              "the line should name the signal and the checkpoint: %s", r.err);
    tc_free(&r);
    const long step = config_long(P("b/checkpoint.d3w"), "step");
    cr_assert(step >= 3 && step < 300, "checkpoint at step %ld", step);
    cr_assert_eq(log_rows(P("b/log.csv")), step, "log.csv has %d rows, the checkpoint is at step %ld",
                 log_rows(P("b/log.csv")), step);
    cr_assert_eq(count_prefixed("b", ".deep3d-"), 0, "a temporary file was left in b/");
    cr_assert_neq(access(P("b/model.d3w"), F_OK), 0, "model.d3w written by an interrupted run");
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "300", "--checkpoint-every", "1000",
        "--resume", P("b/checkpoint.d3w"));
    expect_ok(&r, "run B resumed");
    tu_expect_same_weights(P("a/model.d3w"), P("b/model.d3w"));
    tu_expect_same_weights(P("a/checkpoint.d3w"), P("b/checkpoint.d3w"));
    expect_same_logs(P("a/log.csv"), P("b/log.csv"), 300);
}

Test(train_interrupt, sigint_saves_the_step_reached_and_resumes_exactly) { expect_signal_saves_and_resumes(SIGINT); }
Test(train_interrupt, sigterm_saves_the_step_reached_and_resumes_exactly) { expect_signal_saves_and_resumes(SIGTERM); }

/* A second signal while the first is being handled ends the process at once, by that
 * signal. SIGINT and SIGTERM: two different signals are both delivered (two of the
 * same may merge into one while pending); the threads may take them in either order. */
Test(train_interrupt, second_signal_stops_at_once) {
    write_pairs("d", 2);
    pid_t pid = START("train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "100000");
    for (int i = 0; i < 20000 && log_rows(P("b/log.csv")) < 2; i++) sleep_ms(2);
    cr_assert_eq(kill(pid, SIGINT), 0);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    tc_result r;
    tc_collect(&r, root, pid);
    cr_assert(!r.exited && (r.status == SIGTERM || r.status == SIGINT),
              "SIGINT + SIGTERM: %s %d (killed by the second signal expected)", r.exited ? "exit" : "killed by",
              r.status);
    tc_free(&r);
}

/* N + resume N = 2N straight, byte for byte, for the step and the cosine schedules (the
 * first part planned for 2N: --lr-steps 6 for cosine; the checkpoint keeps it), with
 * the learning rate changing within the run so a wrong schedule would show. */
static void expect_schedule_resumes_exactly(const char *schedule) {
    write_pairs("d", 3);
    tc_result r;
    RUN(&r, "train", TINY, "--lr-schedule", schedule, "--lr-step", "2", "--data", P("d"), "--out", P("a"), "--steps",
        "6");
    expect_ok(&r, "6 steps straight");
    RUN(&r, "train", TINY, "--lr-schedule", schedule, "--lr-step", "2", "--lr-steps", "6", "--data", P("d"), "--out",
        P("b"), "--steps", "3");
    expect_ok(&r, "3 steps");
    cr_assert_eq(config_long(P("b/checkpoint.d3w"), "lr_total_steps"), 6);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "6", "--resume", P("b/checkpoint.d3w"));
    expect_ok(&r, "resumed to 6");
    tu_expect_same_weights(P("a/model.d3w"), P("b/model.d3w"));
    cr_assert_geq(expect_same_logs(P("a/log.csv"), P("b/log.csv"), 6), 3, "the %s schedule kept lr nearly constant",
                  schedule);
}

Test(train_interrupt, cosine_schedule_resumes_exactly) { expect_schedule_resumes_exactly("cosine"); }
Test(train_interrupt, step_schedule_resumes_exactly) { expect_schedule_resumes_exactly("step"); }

/* ---- the run folder ---------------------------------------------------------------- */

/* A folder holding a run is not trained into without --resume (exit 1, one line naming
 * the folder and both ways out, the files untouched), nor resumed from another run's
 * checkpoint; --overwrite replaces it (the new log has only the new rows). */
Test(train_run_folder, existing_run_needs_resume_or_overwrite) {
    write_pairs("d", 2);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "3");
    expect_ok(&r, "first run");
    size_t n0, n1;
    unsigned char *before = tu_read_file(P("a/checkpoint.d3w"), &n0);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "2");
    tc_expect_error(&r, "training into a run folder", P("a"), "already holds a training run", "--resume", "--overwrite",
                    NULL);
    cr_assert_eq(r.status, 1);
    tc_free(&r);
    unsigned char *after = tu_read_file(P("a/checkpoint.d3w"), &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the checkpoint changed");
    cr_assert_eq(log_rows(P("a/log.csv")), 3, "log.csv changed");
    free(before), free(after);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "1");
    expect_ok(&r, "run b");
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "4", "--resume", P("b/checkpoint.d3w"));
    tc_expect_error(&r, "resuming b into a", P("a"), "already holds a training run", NULL);
    tc_free(&r);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "2", "--overwrite");
    expect_ok(&r, "--overwrite");
    cr_assert_eq(log_rows(P("a/log.csv")), 2);
    cr_assert_eq(config_long(P("a/checkpoint.d3w"), "step"), 2);
}

/* --out is a file: refused before the data is even listed (no output on stdout). */
Test(train_run_folder, out_not_writable_is_refused_before_any_work) {
    write_pairs("d", 1);
    FILE *f = fopen(P("file"), "w");
    fclose(f);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("file"), "--steps", "2");
    tc_expect_error(&r, "--out is a file", P("file"), NULL);
    cr_assert_str_empty(r.out, "work was done before the check: %s", r.out);
    tc_free(&r);
}

/* Temporaries of a killed run (".deep3d-" + 6 characters) are removed at the start;
 * names that only look alike and the user's files stay. */
Test(train_run_folder, stale_temporaries_are_removed_and_only_those) {
    write_pairs("d", 1);
    cr_assert_eq(mkdir(P("a"), 0755), 0);
    const char *names[] = {"a/.deep3d-Ab12Cd", "a/.deep3d-Ab12Cde", "a/notes.txt", "a/.deep3d-"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(P(names[i]), "w");
        fputs("x", f);
        fclose(f);
    }
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "1");
    cr_assert(strstr(r.out, "removed 1 temporary file"), "stdout: %s", r.out);
    expect_ok(&r, "train");
    cr_assert_neq(access(P(names[0]), F_OK), 0, "%s was left", names[0]);
    for (int i = 1; i < 4; i++) cr_assert_eq(access(P(names[i]), F_OK), 0, "%s was removed", names[i]);
}

/* A resume rewrites log.csv up to the checkpoint's step: rows past it (written after
 * the checkpoint by a run that then died) are not repeated. */
Test(train_run_folder, resume_rewrites_the_log_up_to_the_checkpoint) {
    write_pairs("d", 2);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "5");
    expect_ok(&r, "straight");
    RUN(&r, "train", TINY, "--lr-steps", "5", "--data", P("d"), "--out", P("b"), "--steps", "2");
    expect_ok(&r, "2 steps");
    size_t n;
    unsigned char *ck2 = tu_read_file(P("b/checkpoint.d3w"), &n);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "4", "--resume", P("b/checkpoint.d3w"));
    expect_ok(&r, "to 4");
    FILE *f = fopen(P("b/checkpoint.d3w"), "wb"); /* as if it died after logging 4 steps, checkpoint at 2 */
    cr_assert_eq(fwrite(ck2, 1, n, f), n);
    fclose(f);
    free(ck2);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("b"), "--steps", "5", "--resume", P("b/checkpoint.d3w"));
    expect_ok(&r, "from 2 to 5");
    expect_same_logs(P("a/log.csv"), P("b/log.csv"), 5);
}

/* A log.csv write that fails (the file size limit stands for a full disk; SIGXFSZ
 * ignored so writes fail with EFBIG) stops training with one line naming log.csv. */
Test(train_run_folder, log_write_errors_are_reported) {
    write_pairs("d", 2);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {400, 400};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "50", "--checkpoint-every", "1000");
    tc_expect_error(&r, "log.csv beyond the file size limit", P("a/log.csv"), "cannot write", NULL);
    cr_assert_eq(r.status, 1);
    tc_free(&r);
}

/* Crafted settings are refused like the options (naming the file, the key and the
 * rule); an explicit option that disagrees with the checkpoint is refused naming both
 * values, and the same value is accepted. */
Test(train_run_folder, checkpoint_settings_are_validated_and_explicit_options_compared) {
    write_pairs("d", 2);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "1", "--checkpoint-every", "1");
    expect_ok(&r, "train");
    const char *bad[][3] = {{"lr", "-0.5", "--lr must be"}, {"optimizer", "rmsprop", "--optimizer must be one of"},
                            {"batch", "0", "--batch must be"},  {"lr_schedule", "linear", "--lr-schedule"},
                            {"step", "-3", "step=-3"},  {"crop_scale", "0", "--crop-scale must be"}};
    for (int i = 0; i < 6; i++) {
        char kv[64];
        snprintf(kv, sizeof kv, "%s=%s\n", bad[i][0], bad[i][1]);
        tu_rewrite_config(P("a/checkpoint.d3w"), P("x.d3w"), (const char *const[]){bad[i][0], NULL}, kv);
        kv[strlen(kv) - 1] = '\0';
        RUN(&r, "train", TINY, "--data", P("d"), "--out", P("x"), "--steps", "3", "--resume", P("x.d3w"));
        tc_expect_error(&r, kv, P("x.d3w"), kv, bad[i][2], NULL);
        tc_free(&r);
    }
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--lr", "0.01", "--data", P("d"), "--out", P("a"), "--steps",
        "2", "--resume", P("a/checkpoint.d3w"));
    tc_expect_error(&r, "--lr 0.01 against lr=0.001", "--lr 0.01", "lr=0.001", P("a/checkpoint.d3w"), NULL);
    tc_free(&r);
    RUN(&r, "train", "--threads", "1", "--device", "cpu", "--optimizer", "adam", "--data", P("d"), "--out", P("a"),
        "--steps", "2", "--resume", P("a/checkpoint.d3w"));
    tc_expect_error(&r, "--optimizer adam against sgd", "--optimizer adam", "optimizer=sgd", NULL);
    tc_free(&r);
    RUN(&r, "train", TINY, "--crop-scale", "1", "--data", P("d"), "--out", P("a"), "--steps", "2", "--resume",
        P("a/checkpoint.d3w"));
    tc_expect_error(&r, "--crop-scale 1 against 0.6", "--crop-scale 1", "crop_scale=0.6", NULL);
    tc_free(&r);
    RUN(&r, "train", TINY, "--data", P("d"), "--out", P("a"), "--steps", "2", "--resume", P("a/checkpoint.d3w"));
    expect_ok(&r, "resume with the same explicit values");
}

/* Validation: one pair cut short among good ones is skipped at the start with a
 * warning naming it and counted; training runs and validates on the others. Only bad
 * pairs: an error before training. */
Test(train_run_folder, unreadable_validation_pairs_are_skipped) {
    write_pairs("d", 2);
    write_pairs("v", 3);
    size_t n;
    unsigned char *b = tu_read_file(P("v/1_R.png"), &n);
    FILE *f = fopen(P("v/1_R.png"), "wb");
    fwrite(b, 1, n / 2, f);
    fclose(f);
    free(b);
    tc_result r;
    RUN(&r, "train", TINY, "--data", P("d"), "--val-data", P("v"), "--val-every", "1", "--out", P("a"), "--steps", "2");
    cr_assert(r.exited && r.status == 0, "training stopped (%d): %s", r.status, r.err);
    cr_assert(strstr(r.err, "warning") && strstr(r.err, "1_R.png") && strstr(r.err, "validation"), "stderr: %s", r.err);
    cr_assert(strstr(r.out, "validation: 2 pairs") && strstr(r.out, "skipped 1 unreadable validation pair"),
              "stdout: %s", r.out);
    tc_free(&r);
    cr_assert_eq(mkdir(P("w"), 0755), 0);
    f = fopen(P("w/x_L.png"), "wb"), fputs("not a png", f), fclose(f);
    f = fopen(P("w/x_R.png"), "wb"), fputs("not a png", f), fclose(f);
    RUN(&r, "train", TINY, "--data", P("d"), "--val-data", P("w"), "--out", P("b"), "--steps", "2");
    cr_assert(r.exited && r.status == 1, "status %d", r.status);
    cr_assert(strstr(r.err, "none of the 1 validation pairs") && strstr(r.err, "x_L.png"), "stderr: %s", r.err);
    cr_assert_neq(access(P("b/checkpoint.d3w"), F_OK), 0);
    tc_free(&r);
}
