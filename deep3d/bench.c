/* deep3d bench: times training steps or inference passes of the real model after a
 * warm-up, and measures the machine's sgemm rate on the network's own conv shapes in
 * the same run, for scale. JSON keys follow the PyTorch peer's `bench` output
 * (img_per_s, median_s, min_s, tflop_per_s). A training step counts 3x the forward
 * FLOPs, as the peer does. --model FILE times that file's network (bench/video.sh
 * uses it for the network-only rate next to deep3d video's end-to-end rate).
 *
 * Timer: wall clock (monotonic) around each step. On the CUDA device the backend's
 * synchronize() is called before the clock starts and before it stops, so a step's
 * time covers all of its GPU work ("timer": "wall+sync"); CUDA events would need the
 * CUDA headers in this file, and the peer times the same way (time.perf_counter
 * around torch.cuda.synchronize()).
 *
 * Memory: peak_rss_mib is VmHWM of /proc/self/status (proc(5)) read right after the
 * timed steps and before the sgemm measurement: the process's peak resident set so
 * far, model initialisation and warm-up included (the kernel counter that getrusage's
 * ru_maxrss and GNU time's %M report for a whole process, as bench/cpu.sh measures the
 * peer). On CUDA it counts host memory only. The sgemm rate is measured on the CPU
 * only (sgemm_gflop_per_s is 0 on CUDA).
 *
 * --mode loader times the data loader alone (data/loader.h) on --data: batches of the
 * network's size taken as fast as it gives them, with training augmentation and no
 * cache (every sample read and decoded, as when a dataset is far larger than memory),
 * --loader-threads workers. It reports images/s over the timed batches and the
 * workers' own rate (samples per busy thread-second), to put next to a --mode train
 * run's images/s: the loader never stalls the trainer while it is the faster. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/loader.h"
#include "../nn/cuda_plan.h"
#include "cli.h"
#include "commands.h"
#include "model.h"
#include "runtime.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* sgemm GFLOP/s on the im2col products of the backbone's convs at this resolution:
 * M x N x K = C_out x (H W) x (9 C_in), one image; best of 3 per shape, total flops
 * over total time. */
static double sgemm_rate(const deep3d_model *m) {
    double flops = 0, secs = 0;
    int h = m->cfg.height, w = m->cfg.width;
    for (int i = 0; i < m->n_convs; i++) {
        int M = m->conv_w[i]->shape[0], K = m->conv_w[i]->shape[1] * 9, N = h * w;
        float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)K * N, 4), *c = calloc((size_t)M * N, 4);
        double best = 1e30;
        for (int r = 0; r < 3 && a && b && c; r++) {
            double t0 = deep3d_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
            double t = deep3d_now() - t0;
            best = t < best ? t : best;
        }
        flops += 2.0 * M * N * K;
        secs += best;
        free(a), free(b), free(c);
        if (m->pool_after[i]) h /= 2, w /= 2;
    }
    return flops / secs / 1e9;
}

/* Peak resident set size of this process so far in MiB (VmHWM of /proc/self/status,
 * proc(5)), or -1 when it cannot be read (not Linux). */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            kib = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

/* --mode loader: see the header comment. */
static int bench_loader(const cli_list *data, const char *layout, long batch, long threads, long iters, long warmup,
                        long width, long height, int json) {
    if (!data->n) return cli_error("bench", "--mode loader needs --data DIR");
    stereo_dataset *ds = stereo_dataset_open(data->items, data->n, layout);
    if (!ds) return cli_error("bench", "%s", nn_last_error());
    loader_config lc = loader_defaults();
    lc.batch = (int)batch, lc.width = (int)width, lc.height = (int)height, lc.threads = (int)threads;
    lc.cache_bytes = 0;
    loader *ld = loader_create(ds, &lc);
    if (!ld) {
        stereo_dataset_free(ds);
        return cli_error("bench", "%s", nn_last_error());
    }
    loader_batch b;
    double t0 = 0;
    loader_stat s0 = {0}, s1;
    for (long it = 0; it < warmup + iters; it++) {
        if (it == warmup) t0 = deep3d_now(), loader_stats(ld, &s0);
        if (loader_next(ld, &b)) {
            loader_free(ld), stereo_dataset_free(ds);
            return cli_error("bench", "%s", nn_last_error());
        }
        if (!json && cli_is_tty()) fprintf(stderr, "\rloader batch %ld/%ld   ", it + 1, warmup + iters);
    }
    const double secs = deep3d_now() - t0;
    loader_stats(ld, &s1);
    const double ips = (double)(iters * batch) / secs;
    const double per_thread = (double)(s1.samples - s0.samples) / (s1.busy_s - s0.busy_s);
    if (!json && cli_is_tty()) fputc('\n', stderr);
    if (json)
        printf("{\"impl\": \"deep3d-c\", \"mode\": \"loader\", \"batch\": %ld, \"height\": %ld, \"width\": %ld, "
               "\"loader_threads\": %d, \"pairs\": %d, \"iters\": %ld, \"warmup\": %ld, \"img_per_s\": %.4f, "
               "\"img_per_thread_s\": %.4f, \"cache\": false}\n",
               batch, height, width, s1.threads, ds->n, iters, warmup, ips, per_thread);
    else
        printf("loader batch %ld at %ldx%ld, %d worker thread%s, %d pairs, no cache: %.2f images/s (%.2f per busy "
               "thread-second)\n",
               batch, width, height, s1.threads, s1.threads == 1 ? "" : "s", ds->n, ips, per_thread);
    loader_free(ld);
    stereo_dataset_free(ds);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *mode = "train", *device_name = "cpu", *variant = "released", *precision = "fp32", *model_path = NULL;
    long batch = 4, threads = 0, iters = 5, warmup = 2, width = 384, height = 160, width_div = 1, loader_threads = 0;
    int json = 0, profile = 0;
    cli_list data = {0};
    const char *layout = "pairs";
    const cli_option opts[] = {
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: cpu)", 0, 0, "cpu|cuda|auto"},
        {"mode", CLI_STRING, &mode, "MODE", "train (forward, backward, SGD step), infer, or loader (the data loader alone, on --data) (default: train)", 0, 0, "train|infer|loader"},
        {"data", CLI_LIST, &data, "DIR", "--mode loader: pairs or a packed dataset (DIR:train ...; repeatable)", 0, 0, NULL},
        {"layout", CLI_STRING, &layout, "NAME", "--mode loader: layout of --data folders (default: pairs)", 0, 0, "pairs|sbs|sbs-half|ou|ou-half"},
        {"loader-threads", CLI_INT, &loader_threads, "N", "--mode loader: worker threads (default: one per core, at most 8)", 1, 1024, NULL},
        {"batch", CLI_INT, &batch, "N", "images per step (default: 4)", 1, 4096, NULL},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {"iters", CLI_INT, &iters, "N", "timed steps (default: 5)", 1, 100000, NULL},
        {"warmup", CLI_INT, &warmup, "N", "untimed steps first (default: 2)", 0, 100000, NULL},
        {"variant", CLI_STRING, &variant, "NAME", "released or vgg16 (default: released)", 0, 0, "released|vgg16"},
        {"width", CLI_INT, &width, "PX", "network width, multiple of 32 (default: 384)", 32, 8192, NULL},
        {"height", CLI_INT, &height, "PX", "network height, multiple of 32 (default: 160)", 32, 8192, NULL},
        {"width-div", CLI_INT, &width_div, "N", "divide conv/fc widths by N (default: 1)", 1, 64, NULL},
        {"model", CLI_STRING, &model_path, "FILE",
         "time this model file's network (its variant, size, widths and weights; the four options above are ignored)",
         0, 0, NULL},
        {"precision", CLI_STRING, &precision, "P",
         "math of the CUDA backend: fp32, tf32 or bf16 (default: fp32; the CPU computes in fp32 only)", 0, 0,
         "fp32|tf32|bf16"},
        {"json", CLI_FLAG, &json, NULL, "print one JSON object", 0, 0, NULL},
        {"profile", CLI_FLAG, &profile, NULL, "print a table of time per op", 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse("bench", "[options]", opts, argc, argv, pos, 0, &n_pos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!strcmp(mode, "loader")) {
        deep3d_set_threads(threads);
        return bench_loader(&data, layout, batch, loader_threads, iters, warmup, width, height, json);
    }
    nn_device device;
    if (nn_device_parse(device_name, &device)) return cli_error("bench", "%s", nn_last_error());
    if (device == NN_CPU && strcmp(precision, "fp32"))
        return cli_error("bench", "--precision %s needs --device cuda (the CPU backend computes in fp32 only)",
                         precision), 2;
    if (nn_cuda_set_precision(precision)) return cli_error("bench", "%s", nn_last_error());
    const nn_backend *be = nn_backend_of(device);
    deep3d_set_threads(threads);
    deep3d_config cfg = deep3d_default_config();
    snprintf(cfg.variant, sizeof cfg.variant, "%s", variant);
    cfg.width = (int)width, cfg.height = (int)height, cfg.width_div = (int)width_div;
    deep3d_model m;
    if (model_path ? deep3d_model_load(&m, model_path, device) : deep3d_model_init(&m, &cfg, device, 0))
        return cli_error("bench", "%s", nn_last_error());
    if (model_path) cfg = m.cfg, variant = m.cfg.variant, width_div = m.cfg.width_div;
    const int train = !strcmp(mode, "train");
    nn_tensor *left = nn_tensor_new4(device, (int)batch, 3, cfg.height, cfg.width), *right = nn_tensor_new_like(left);
    nn_optimizer opt;
    nn_tensor *params[DEEP3D_MAX_TENSORS];
    int n_params = 0;
    for (int i = 0; i < m.n_tensors; i++)
        if (m.trainable[i]) params[n_params++] = m.tensors[i];
    if (!left || !right || nn_optimizer_init(&opt, NN_OPTIM_SGD, params, n_params))
        return cli_error("bench", "%s", nn_last_error());
    nn_real *host = malloc(left->numel * sizeof *host);
    for (size_t i = 0; i < left->numel; i++) host[i] = (nn_real)(255 * nn_hash_uniform(1, i));
    nn_tensor_upload(left, host);
    for (size_t i = 0; i < left->numel; i++) host[i] = (nn_real)(255 * nn_hash_uniform(2, i));
    nn_tensor_upload(right, host);
    free(host);
    double *times = malloc((size_t)iters * sizeof *times);
    for (long it = 0; it < warmup + iters; it++) {
        if (profile && it == warmup) nn_profile_reset(), nn_profile_enable(1);
        if (be->synchronize()) return cli_error("bench", "%s", nn_last_error());
        double t0 = deep3d_now();
        nn_graph g;
        nn_graph_init(&g, train);
        if (profile) g.recording = 1; /* the profile times recorded ops; inference keeps its semantics */
        nn_tensor *pred = NULL, *prob = NULL, *loss = NULL;
        int err = deep3d_forward(&m, &g, left, &pred, &prob);
        if (!err && train) {
            loss = nn_l1_loss(&g, pred, right);
            err = !loss || nn_graph_backward(&g, loss) || nn_optimizer_step(&opt, (nn_real)1e-6) ||
                  nn_optimizer_zero_grad(&opt);
        }
        err = err || be->synchronize();
        nn_tensor_unref(pred), nn_tensor_unref(prob), nn_tensor_unref(loss);
        nn_graph_free(&g);
        if (err) return cli_error("bench", "%s", nn_last_error());
        if (it >= warmup) times[it - warmup] = deep3d_now() - t0;
        if (!json) fprintf(stderr, "\r%s step %ld/%ld: %.3f s   ", mode, it + 1, warmup + iters, deep3d_now() - t0);
    }
    const double rss = peak_rss_mib();
    if (!json) fputc('\n', stderr);
    if (profile) nn_profile_print(stderr, (int)iters), nn_profile_enable(0);
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    const double med = times[iters / 2], fl = deep3d_model_flops(&m) * (train ? 3 : 1) * (double)batch;
    const double sgemm = device == NN_CPU ? sgemm_rate(&m) : 0;
    const char *timer = device == NN_CUDA ? "wall+sync" : "wall";
    char rss_json[32], rss_text[48], sgemm_text[48];
    if (rss >= 0)
        snprintf(rss_json, sizeof rss_json, "%.1f", rss), snprintf(rss_text, sizeof rss_text, "%.1f MiB", rss);
    else
        snprintf(rss_json, sizeof rss_json, "null"), snprintf(rss_text, sizeof rss_text, "unknown");
    if (device == NN_CPU)
        snprintf(sgemm_text, sizeof sgemm_text, "%.1f GFLOP/s", sgemm);
    else
        snprintf(sgemm_text, sizeof sgemm_text, "not measured on %s", nn_device_name(device));
    if (json)
        printf("{\"impl\": \"deep3d-c\", \"device\": \"%s\", \"variant\": \"%s\", \"mode\": \"%s\", \"batch\": %ld, "
               "\"height\": %d, \"width\": %d, \"width_div\": %ld, \"threads\": %ld, \"precision\": \"%s\", "
               "\"timer\": \"%s\", \"iters\": %ld, \"warmup\": %ld, \"median_s\": %.6f, \"min_s\": %.6f, "
               "\"img_per_s\": %.4f, \"gflop_per_img_fwd\": %.4f, \"tflop_per_s\": %.6f, \"gflop_per_s\": %.3f, "
               "\"sgemm_gflop_per_s\": %.3f, \"peak_rss_mib\": %s}\n",
               nn_device_name(device), variant, mode, batch, cfg.height, cfg.width, width_div,
               threads ? threads : (long)omp_get_max_threads(), precision,
               timer, iters, warmup, med, times[0], (double)batch / med, deep3d_model_flops(&m) / 1e9,
               fl / med / 1e12, fl / med / 1e9, sgemm, rss_json);
    else
        printf("%s %s batch %ld at %dx%d on %s (%s, timer %s): median %.3f s, min %.3f s, %.2f images/s, "
               "%.1f GFLOP/s (machine sgemm on the network's conv shapes: %s), peak RSS %s\n",
               variant, mode, batch, cfg.width, cfg.height, nn_device_name(device), precision, timer, med, times[0],
               (double)batch / med, fl / med / 1e9, sgemm_text, rss_text);
    free(times);
    nn_optimizer_free(&opt);
    nn_tensor_unref(left), nn_tensor_unref(right);
    deep3d_model_free(&m);
    return 0;
}
