#include "testutil.h"

#include "../nn/cuda_plan.h"
#include "../nn/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

nn_tensor *tu_uniform(int ndim, const int *shape, double lo, double hi, uint64_t seed) {
    nn_tensor *t = nn_tensor_new(NN_CPU, ndim, shape);
    cr_assert_not_null(t, "tensor: %s", nn_last_error());
    for (size_t i = 0; i < t->numel; i++) t->data[i] = (nn_real)(lo + (hi - lo) * nn_hash_uniform(seed, i));
    return t;
}

nn_tensor *tu_uniform4(int d0, int d1, int d2, int d3, double lo, double hi, uint64_t seed) {
    int shape[4] = {d0, d1, d2, d3};
    int ndim = 4;
    while (ndim > 1 && shape[ndim - 1] == 0) ndim--;
    return tu_uniform(ndim, shape, lo, hi, seed);
}

nn_real *tu_uniform_array(size_t n, uint64_t seed) {
    nn_real *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (nn_real)(2 * nn_hash_uniform(seed, i) - 1);
    return p;
}

double tu_assert_close_scaled(const nn_real *a, const double *ref, size_t n, double tol, const char *what) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    nn_real *r = calloc(n + 1, sizeof *r);
    cr_assert_not_null(r);
    for (size_t i = 0; i < n; i++) {
        r[i] = (nn_real)ref[i];
        err = fmax(err, fabs((double)a[i] - ref[i]));
    }
    tu_assert_close(a, r, n, tol * scale, 0, what);
    free(r);
    return scale > 0 ? err / scale : err;
}

/* The 7 loops of a convolution over every (input, weight, output) triple: with `out`,
 * out += w * x (forward); otherwise dx += dout * w (input gradient). */
static void naive_conv_loops(const nn_conv_shape *s, const nn_real *x, const nn_real *w, double *out,
                             const nn_real *dout, double *dx) {
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->c_out; o++)
            for (int y = 0; y < s->h_out; y++)
                for (int xo = 0; xo < s->w_out; xo++) {
                    const size_t oi = (((size_t)n * s->c_out + o) * s->h_out + y) * s->w_out + xo;
                    for (int c = 0; c < s->c_in; c++)
                        for (int i = 0; i < s->kh; i++)
                            for (int j = 0; j < s->kw; j++) {
                                const int iy = y * s->stride - s->pad + i * s->dilation;
                                const int ix = xo * s->stride - s->pad + j * s->dilation;
                                if (iy < 0 || iy >= s->h_in || ix < 0 || ix >= s->w_in) continue;
                                const size_t xi = (((size_t)n * s->c_in + c) * s->h_in + iy) * s->w_in + ix;
                                const size_t wi = (((size_t)o * s->c_in + c) * s->kh + i) * s->kw + j;
                                if (out) out[oi] += (double)w[wi] * x[xi];
                                else dx[xi] += (double)dout[oi] * w[wi];
                            }
                }
}

double *tu_naive_conv2d(const nn_real *x, const nn_real *w, const nn_real *b, const nn_conv_shape *s) {
    const size_t ny = (size_t)s->n * s->c_out * s->h_out * s->w_out, plane = (size_t)s->h_out * s->w_out;
    double *out = malloc((ny ? ny : 1) * sizeof *out);
    cr_assert_not_null(out);
    for (size_t k = 0; k < ny; k++) out[k] = b ? b[k / plane % (size_t)s->c_out] : 0;
    naive_conv_loops(s, x, w, out, NULL, NULL);
    return out;
}

double *tu_naive_conv2d_backward_data(const nn_real *init, const nn_real *dout, const nn_real *w,
                                      const nn_conv_shape *s) {
    const size_t nx = (size_t)s->n * s->c_in * s->h_in * s->w_in;
    double *dx = malloc((nx ? nx : 1) * sizeof *dx);
    cr_assert_not_null(dx);
    for (size_t k = 0; k < nx; k++) dx[k] = init[k];
    naive_conv_loops(s, NULL, w, NULL, dout, dx);
    return dx;
}

const nn_backend *tu_require_cuda(void) {
    const nn_backend *g = nn_backend_cuda();
    if (!g) {
        const char *e = nn_last_error();
        if (!strncmp(e, "no CUDA device", 14)) cr_skip_test("%s", e);
        if (strstr(e, "built without CUDA")) cr_skip_test("no CUDA device: %s", e);
        cr_assert_fail("the CUDA backend failed to start: %s", e);
    }
    cr_assert_eq(nn_cuda_set_precision("fp32"), 0);
    nn_cuda_set_deterministic(0);
    return g;
}

nn_real *tu_host(const nn_tensor *t) {
    nn_real *h = malloc(t->numel * sizeof *h);
    cr_assert_not_null(h);
    cr_assert_eq(nn_tensor_download(t, h), 0, "download: %s", nn_last_error());
    return h;
}

double tu_assert_close(const nn_real *a, const nn_real *b, size_t n, double atol, double rtol,
                       const char *what) {
    double max_err = 0, worst_excess = -INFINITY;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)b[i]);
        double excess = err - (atol + rtol * fabs((double)b[i]));
        if (isnan(err)) excess = INFINITY;
        if (err > max_err || isnan(err)) max_err = err;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    cr_assert(n == 0 || worst_excess <= 0,
              "%s: element %zu of %zu is %.9g, expected %.9g (|diff| %.3g > atol %.3g + rtol %.3g*|ref|)",
              what, worst, n, (double)a[worst], (double)b[worst], fabs((double)a[worst] - (double)b[worst]),
              atol, rtol);
    return max_err;
}

double tu_assert_tensors_close(const nn_tensor *a, const nn_tensor *b, double atol, double rtol,
                               const char *what) {
    char sa[64], sb[64];
    cr_assert(nn_tensor_same_shape(a, b), "%s: shape %s, expected %s", what, nn_shape_str(a, sa, sizeof sa),
              nn_shape_str(b, sb, sizeof sb));
    nn_real *ha = tu_host(a), *hb = tu_host(b);
    double e = tu_assert_close(ha, hb, a->numel, atol, rtol, what);
    free(ha);
    free(hb);
    return e;
}

/* loss = sum(out * R) in double, evaluated without recording */
static double eval_loss(tu_forward_fn fn, nn_tensor **inputs, void *ctx, const nn_real *r,
                        unsigned long long seed) {
    nn_graph g;
    nn_graph_init(&g, 1);
    g.recording = 0;
    g.dropout_seed = seed;
    nn_tensor *out = fn(&g, inputs, ctx);
    cr_assert_not_null(out, "forward failed: %s", nn_last_error());
    nn_real *h = tu_host(out);
    double s = 0;
    for (size_t i = 0; i < out->numel; i++) s += (double)h[i] * (double)r[i];
    free(h);
    nn_tensor_unref(out);
    nn_graph_free(&g);
    return s;
}

void tu_gradcheck(const char *name, tu_forward_fn fn, nn_tensor **inputs, int n_inputs, void *ctx,
                  double h, double atol, double rtol, int max_per_input, double max_skip_frac) {
    const unsigned long long seed = 1234;
    /* analytic: one recorded forward + backward with upstream gradient R */
    nn_graph g;
    nn_graph_init(&g, 1);
    g.dropout_seed = seed;
    for (int i = 0; i < n_inputs; i++) {
        nn_tensor_unref(inputs[i]->grad);
        inputs[i]->grad = NULL;
    }
    nn_tensor *out = fn(&g, inputs, ctx);
    cr_assert_not_null(out, "%s: forward failed: %s", name, nn_last_error());
    nn_tensor *r = tu_uniform(out->ndim, out->shape, -1, 1, 99);
    cr_assert_eq(nn_graph_backward_from(&g, out, r), 0, "%s: backward failed: %s", name, nn_last_error());
    nn_tensor_unref(out);
    nn_graph_clear(&g);
    nn_graph_free(&g);

    for (int i = 0; i < n_inputs; i++) {
        nn_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        cr_assert_not_null(x->grad, "%s: input %d received no gradient", name, i);
        nn_real *analytic = tu_host(x->grad);
        size_t n = x->numel, count = n < (size_t)max_per_input ? n : (size_t)max_per_input;
        int checked = 0, skipped = 0;
        for (size_t s = 0; s < count; s++) {
            size_t j = count == n ? s : (size_t)((double)s * (double)n / (double)count + 0.5 * n / count) % n;
            nn_real saved = x->data[j];
            double f0 = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = (nn_real)(saved + h);
            double fp = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = (nn_real)(saved - h);
            double fm = eval_loss(fn, inputs, ctx, r->data, seed);
            x->data[j] = saved;
            double central = (fp - fm) / (2 * h), right = (fp - f0) / h, left = (f0 - fm) / h;
            double tol = atol + rtol * fabs(central);
            if (fabs(right - left) > 10 * tol + 1e3 * h) {  /* a kink lies inside [x-h, x+h] */
                skipped++;
                continue;
            }
            checked++;
            double a = (double)analytic[j];
            cr_assert(fabs(a - central) <= tol,
                      "%s: d/d input %d [%zu]: analytic %.10g, finite difference %.10g (|diff| %.3g > %.3g)",
                      name, i, j, a, central, fabs(a - central), tol);
        }
        cr_assert(skipped <= max_skip_frac * (checked + skipped),
                  "%s: input %d: %d of %d elements skipped at kinks (limit %.0f%%)", name, i, skipped,
                  checked + skipped, 100 * max_skip_frac);
        cr_assert(checked > 0, "%s: input %d: nothing checked", name, i);
        free(analytic);
    }
    nn_tensor_unref(r);
}

extern char **environ;

/* ---- running the deep3d binary (tests/test_cli.c, tests/test_train.c) ----------- */


const char *tc_binary(void) {
    const char *b = getenv("DEEP3D_BIN");
    return b && *b ? b : "build/deep3d";
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

const char *tc_which(const char *name) {
    static char buf[4096];
    const char *path = getenv("PATH");
    if (!path) return NULL;
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
        if (len && access(buf, X_OK) == 0) return buf;
        p += len;
        if (*p == ':') p++;
    }
    return NULL;
}

/* Starts argv[0] (a path, or a name looked up in PATH) with stdin from /dev/null and
 * stdout and stderr into files in `scratch`; returns its pid. */
static pid_t spawn_argv(const char *scratch, const char *const *argv) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/.stdout", scratch);
    snprintf(err_path, sizeof err_path, "%s/.stderr", scratch);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s: %s (build it first; DEEP3D_BIN names it)", argv[0], strerror(rc));
    return pid;
}

pid_t tc_spawn(const char *scratch, const char *const *args) {
    const char *argv[64];
    int n = 0;
    argv[n++] = tc_binary();
    while (*args) {
        cr_assert_lt(n, 63, "too many arguments");
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    return spawn_argv(scratch, argv);
}

void tc_collect(tc_result *r, const char *scratch, pid_t pid) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/.stdout", scratch);
    snprintf(err_path, sizeof err_path, "%s/.stderr", scratch);
    int st;
    struct rusage ru;
    pid_t got;
    while ((got = wait4(pid, &st, 0, &ru)) < 0 && errno == EINTR) {}
    cr_assert_eq(got, pid, "wait4: %s", strerror(errno));
    r->maxrss_kib = ru.ru_maxrss;
    r->exited = WIFEXITED(st);
    r->status = r->exited ? WEXITSTATUS(st) : WTERMSIG(st);
    r->out = slurp(out_path);
    r->err = slurp(err_path);
    unlink(out_path), unlink(err_path);
}

void tc_run_argv(tc_result *r, const char *scratch, const char *const *argv) {
    tc_collect(r, scratch, spawn_argv(scratch, argv));
}

void tc_run(tc_result *r, const char *scratch, const char *const *args) {
    tc_collect(r, scratch, tc_spawn(scratch, args));
}

void tc_free(tc_result *r) {
    free(r->out), free(r->err);
    r->out = r->err = NULL;
}

/* Asserts a clean failure: exited (no signal), status non-zero, stderr exactly one
 * line starting with "deep3d " and containing every NULL-terminated substring given. */
void tc_expect_error(const tc_result *r, const char *what, ...) {
    cr_assert(r->exited, "%s: killed by signal %d; stderr: %s", what, r->status, r->err);
    cr_assert_neq(r->status, 0, "%s: exit status 0; stdout: %s", what, r->out);
    size_t len = strlen(r->err);
    const char *nl = strchr(r->err, '\n');
    cr_assert(len > 0 && nl == r->err + len - 1, "%s: stderr must be one line, got:\n%s", what, r->err);
    cr_assert(!strncmp(r->err, "deep3d ", 7), "%s: the line should start with 'deep3d ': %s", what, r->err);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_assert(strstr(r->err, s), "%s: stderr does not name '%s': %s", what, s, r->err);
    va_end(ap);
}

void tu_tmpdir(char *buf, const char *prefix) {
    snprintf(buf, 64, "/tmp/%s_XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *path) {
    if (path[0]) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_join(const char *dir, const char *name) {
    static char bufs[16][512];
    static int k;
    char *b = bufs[k++ & 15];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

nn_conv_shape tu_wgeom_shape(const tu_wgeom *g) {
    nn_conv_shape s = {g->n, g->ci, g->h, g->w, g->co, g->h + 2 * g->pad - 2, g->w + 2 * g->pad - 2,
                       3, 3, 1, g->pad, 1, 0};
    return s;
}

/* Asserts two weights files hold the same configuration text and bit-identical tensors
 * (names, shapes and values, read through nn_weights_read). */
void tu_expect_same_weights(const char *a_path, const char *b_path) {
    nn_weights_file *a = nn_weights_open(a_path), *b = nn_weights_open(b_path);
    cr_assert(a && b, "%s", nn_last_error());
    cr_assert_str_eq(nn_weights_config(a), nn_weights_config(b), "configurations differ");
    cr_assert_eq(nn_weights_count(a), nn_weights_count(b), "tensor counts differ");
    for (int i = 0; i < nn_weights_count(a); i++) {
        const nn_weights_info *ia = nn_weights_tensor(a, i);
        cr_assert(nn_weights_has(b, ia->name), "%s lacks %s", b_path, ia->name);
        nn_tensor *ta = nn_tensor_new(NN_CPU, ia->ndim, ia->shape), *tb = nn_tensor_new(NN_CPU, ia->ndim, ia->shape);
        cr_assert_eq(nn_weights_read(a, ia->name, ta), 0, "%s", nn_last_error());
        cr_assert_eq(nn_weights_read(b, ia->name, tb), 0, "%s", nn_last_error());
        for (size_t j = 0; j < ta->numel; j++)
            cr_assert(!memcmp(&ta->data[j], &tb->data[j], sizeof(nn_real)),
                      "%s[%zu]: %.9g (uninterrupted) vs %.9g (resumed)", ia->name, j, (double)ta->data[j],
                      (double)tb->data[j]);
        nn_tensor_unref(ta), nn_tensor_unref(tb);
    }
    nn_weights_close(a), nn_weights_close(b);
}


/* Copies the weights file src to dst (float32) with the configuration lines of the keys
 * in drop (NULL-terminated) left out and the text add ("key=value\n" lines) appended. */
void tu_rewrite_config(const char *src, const char *dst, const char *const *drop, const char *add) {
    nn_weights_file *f = nn_weights_open(src);
    cr_assert_not_null(f, "%s", nn_last_error());
    char config[4096] = "";
    for (const char *line = nn_weights_config(f); *line;) {
        const char *nl = strchr(line, '\n');
        const size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        int keep = 1;
        for (const char *const *k = drop; *k && keep; k++)
            keep = strncmp(line, *k, strlen(*k)) || line[strlen(*k)] != '=';
        if (keep) strncat(config, line, len);
        line += len;
    }
    strncat(config, add, sizeof config - strlen(config) - 1);
    const int n = nn_weights_count(f);
    nn_tensor **t = malloc((size_t)n * sizeof *t);
    const char **names = malloc((size_t)n * sizeof *names);
    cr_assert(t && names);
    for (int i = 0; i < n; i++) {
        const nn_weights_info *info = nn_weights_tensor(f, i);
        t[i] = nn_tensor_new(NN_CPU, info->ndim, info->shape), names[i] = info->name;
        cr_assert_eq(nn_weights_read(f, info->name, t[i]), 0, "%s", nn_last_error());
    }
    cr_assert_eq(nn_weights_save(dst, config, t, names, n, NN_WEIGHTS_F32), 0, "%s", nn_last_error());
    for (int i = 0; i < n; i++) nn_tensor_unref(t[i]);
    free(t), free(names);
    nn_weights_close(f);
}

/* The whole file at path in a malloc'd buffer (one byte more, NUL), its size in *n. */
unsigned char *tu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n, "reading %s", path);
    b[*n] = 0;
    fclose(f);
    return b;
}

unsigned char *tc_decode_frames(const char *file, int w, int h, int *n) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -i '%s' -map 0:v:0 -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -", file);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    const size_t fb = (size_t)3 * w * h;
    size_t cap = 64, got = 0;
    unsigned char *buf = malloc(cap * fb);
    cr_assert_not_null(buf);
    while (1) {
        if (got == cap) {
            buf = realloc(buf, (cap *= 2) * fb);
            cr_assert_not_null(buf);
        }
        if (fread(buf + got * fb, 1, fb, p) != fb) break;
        got++;
    }
    cr_assert_eq(pclose(p), 0, "decoding %s failed", file);
    *n = (int)got;
    return buf;
}
