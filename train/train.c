/* deep3d train: trains Deep3D on left/right stereo pairs (DEEP3D.md "Training").
 *
 * Each step: a batch from the background loader (random 2.4:1 crop of random scale,
 * flip with left/right swap, identical colour jitter), forward, the loss, backward, an
 * optimizer step. The loss is the photometric loss of the predicted right view against
 * the true one (--loss: l1, the paper's, or ssim-l1, Godard et al. 2017 eq. 2,
 * layers/ssim_l1_loss.h) plus --smoothness W times the edge-aware smoothness of the
 * expected disparity (Godard et al. eq. 3, layers/disparity_smoothness.h). The
 * smoothness is computed and logged even when W = 0 (then outside the graph). Every
 * batch and every dropout mask is a function of (seed, step), so --resume continues
 * exactly where a checkpoint left off.
 *
 * The next batch is uploaded while a step computes: step k (forward, backward,
 * optimizer step) is queued, then batch k+1 is taken from the loader and its upload
 * into the same input tensors started (nn_tensor_upload_async: the queued step still
 * reads batch k), then step k's loss is downloaded (on CUDA the host waits there for
 * step k while the copy runs), then nn_device_wait_uploads() before step k+1 is queued.
 * So the loss is checked for finiteness after its optimizer step: a diverged run fails
 * with the same message and saves nothing of that step. On the CPU the upload is a
 * plain copy after step k, and the steps compute exactly what they did before.
 *
 * Writes into --out: log.csv (step, loss, lr, images/s, validation MAE of the model and
 * both baselines, then the loss's photometric and smoothness parts), checkpoint.d3w
 * (float32, with optimizer state and every training setting; atomic) every
 * --checkpoint-every steps and at the end, and model.d3w (float16) at the end.
 *
 * Nothing is lost or overwritten silently:
 *  - an --out folder that already holds a run (checkpoint.d3w, model.d3w or log.csv) is
 *    an error unless --resume continues that run's checkpoint or --overwrite is given
 *    (which removes those three files first); --out must be writable (a temporary file
 *    is made and removed) before any other work; temporaries of a killed process
 *    (".deep3d-XXXXXX", nn/atomic_file.h) in --out are removed at the start;
 *  - SIGINT or SIGTERM: the current step finishes, a checkpoint of the step reached is
 *    written and named, and the process exits with 128 + the signal (130, 143); a
 *    second signal ends it at once (by that signal);
 *  - on --resume, log.csv is rewritten (atomically) with the rows up to the checkpoint's
 *    step, so steps past it are not repeated; every write to it is checked;
 *  - validation pairs are decoded once at the start: unreadable ones are skipped with a
 *    warning and counted, as training pairs are; none readable is an error;
 *  - a checkpoint's settings are validated like the options (train_read_settings) and
 *    an option given explicitly that disagrees with the checkpoint is an error naming
 *    both values; the cosine schedule's length (--lr-steps, default --steps) is kept in
 *    the checkpoint, so a resumed run follows the schedule it started with.
 *
 * Resuming: --resume FILE continues from a checkpoint; --resume auto from the newest
 * complete checkpoint in --out (every checkpoint*.d3w there that opens, its CRC checked,
 * the highest step; damaged ones are named and skipped), or from scratch when there is
 * none. log.csv then keeps only its rows up to the checkpoint's step, so the steps run
 * after the checkpoint and lost with the run are not logged twice.
 *
 * Data parallelism (train/dist.h): started by `mpirun -np K`, K processes each train on
 * --batch N samples of a batch of K*N (the checkpoint's batch is K*N; resumed with
 * another K it is split again), batch norm statistics synchronised, gradients averaged
 * before each optimizer step, the logged loss the mean over the K parts. Rank 0 alone
 * writes --out, validates and prints (the others' stdout is discarded; their warnings
 * and errors go to stderr, naming the rank); an error in any process ends the job. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../data/loader.h"
#include "../deep3d/cli.h"
#include "../deep3d/commands.h"
#include "../deep3d/evaluate.h"
#include "../deep3d/model.h"
#include "../deep3d/runtime.h"
#include "../nn/atomic_file.h"
#include "../nn/weights.h"
#include "dist.h"
#include <dirent.h>
#include <unistd.h>
#include "train.h"

typedef struct train_opts {
    cli_list data, val_data;
    const char *out, *resume, *variant, *optimizer, *schedule, *layout, *device, *precision, *loss;
    int deterministic, overwrite;
    long steps, batch, seed, threads, width, height, disparities, dmin, width_div;
    long lr_step, lr_steps, checkpoint_every, val_every, log_every, max_pixels;
    double lr, weight_decay, smoothness, crop_scale;
    /* the command line, to tell options given explicitly from defaults */
    const struct cli_option *opts;
    int argc;
    char **argv;
} train_opts;

static const char *loss_names[] = {"l1", "ssim-l1"};

/* Godard et al.'s SSIM weight (their alpha, eq. 2) */
#define SSIM_ALPHA 0.85

static const char *schedule_names[] = {"constant", "step", "cosine"};

/* The shortest decimal that strtod reads back as v exactly: crop_scale 0.6 is written
 * "0.6", not "0.59999999999999998" (what %.17g gives), and still resumes bit for bit. */
static void format_exact(char *buf, size_t n, double v) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Checkpoint = model tensors + optimizer state ("optim.velocity.<p>", "optim.m.<p>",
 * "optim.v.<p>") + the training state in the config text (weights/FORMAT.md). */
static int save_checkpoint(const char *path, const deep3d_model *m, const nn_optimizer *opt,
                           const train_state *st) {
    char config[2048], names_buf[3 * DEEP3D_MAX_TENSORS][96];
    deep3d_config_format(&m->cfg, config, sizeof config);
    size_t len = strlen(config);
    char crop_scale[32];
    format_exact(crop_scale, sizeof crop_scale, st->crop_scale);
    snprintf(config + len, sizeof config - len,
             "step=%ld\nseed=%ld\nbatch=%ld\noptimizer=%s\nlr=%.17g\nlr_schedule=%s\nlr_step=%ld\nweight_decay=%.17g\n"
             "loss=%s\nsmoothness=%.17g\nlr_total_steps=%ld\nlr_gamma=%.17g\nlr_min_factor=%.17g\ncrop_scale=%s\n",
             st->step, st->seed, st->batch, st->optimizer == NN_OPTIM_ADAM ? "adam" : "sgd", st->lr,
             schedule_names[st->schedule], st->lr_step, st->weight_decay, loss_names[st->loss], st->smoothness,
             st->lr_total_steps, st->lr_gamma, st->lr_min_factor, crop_scale);
    nn_tensor *tensors[3 * DEEP3D_MAX_TENSORS];
    const char *names[3 * DEEP3D_MAX_TENSORS];
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) tensors[n] = m->tensors[i], names[n] = m->tensors[i]->name, n++;
    for (int i = 0; i < opt->n_params; i++) {
        const char *p = opt->params[i]->name;
        snprintf(names_buf[n], sizeof names_buf[n], "optim.%s.%s", st->optimizer == NN_OPTIM_ADAM ? "m" : "velocity", p);
        tensors[n] = opt->state1[i], names[n] = names_buf[n], n++;
        if (opt->state2 && opt->state2[i]) {
            snprintf(names_buf[n], sizeof names_buf[n], "optim.v.%s", p);
            tensors[n] = opt->state2[i], names[n] = names_buf[n], n++;
        }
    }
    return nn_weights_save(path, config, tensors, names, n, NN_WEIGHTS_F32);
}

/* The checkpoint keys of the training settings and the options they come from. The
 * model's own keys (variant ... width_div) are read by deep3d_model_read; they are
 * listed here to be validated and compared with explicit options alike. */
static const struct {
    const char *key, *option;
    int required;
} setting_keys[] = {
    {"seed", "seed", 1},          {"batch", "batch", 1},       {"optimizer", "optimizer", 1},
    {"lr", "lr", 1},              {"lr_schedule", "lr-schedule", 1}, {"lr_step", "lr-step", 1},
    {"weight_decay", "weight-decay", 1}, {"loss", "loss", 0}, {"smoothness", "smoothness", 0},
    {"lr_total_steps", "lr-steps", 0}, {"variant", "variant", 1}, {"width", "width", 1},
    {"height", "height", 1},      {"disparities", "disparities", 1}, {"dmin", "dmin", 1},
    {"width_div", "width-div", 1}, {"crop_scale", "crop-scale", 0},
};
#define N_SETTING_KEYS (int)(sizeof setting_keys / sizeof setting_keys[0])

static int build_options(train_opts *o, cli_option *opts);

/* Checks every setting of f against its option's range and choices. */
static int validate_settings(const nn_weights_file *f, const cli_option *opts) {
    const char *path = nn_weights_path(f);
    long step;
    if (nn_weights_config_int(f, "step", &step)) return nn_fail_context("%s is not a training checkpoint", path);
    if (step < 0 || step > 1000000000L)
        return nn_fail("checkpoint %s: step=%ld is not a valid setting (0..1000000000)", path, step);
    for (int i = 0; i < N_SETTING_KEYS; i++) {
        const char *v = nn_weights_config_get(f, setting_keys[i].key);
        if (!v) {
            if (setting_keys[i].required)
                return nn_fail("%s is not a training checkpoint: its configuration has no key '%s'", path,
                               setting_keys[i].key);
            continue;
        }
        const cli_option *o = cli_find(opts, setting_keys[i].option, strlen(setting_keys[i].option));
        char why[256];
        if (o && cli_check_value(o, v, why, sizeof why))
            return nn_fail("checkpoint %s: %s=%.64s is not a valid setting: %s", path, setting_keys[i].key, v, why);
    }
    double g = 0.1, mf = 0.01;
    if ((nn_weights_config_get(f, "lr_gamma") && nn_weights_config_double(f, "lr_gamma", &g)) ||
        (nn_weights_config_get(f, "lr_min_factor") && nn_weights_config_double(f, "lr_min_factor", &mf)))
        return -1;
    if (!(g > 0 && g <= 1) || !(mf >= 0 && mf <= 1))
        return nn_fail("checkpoint %s: lr_gamma=%g or lr_min_factor=%g is not a valid setting (0..1)", path, g, mf);
    return 0;
}

int train_read_settings(const nn_weights_file *f, long default_total, train_state *st) {
    train_opts defaults;
    cli_option opts[40];
    build_options(&defaults, opts);
    if (validate_settings(f, opts)) return -1;
    const char *opt = nn_weights_config_get(f, "optimizer"), *sched = nn_weights_config_get(f, "lr_schedule");
    const char *loss = nn_weights_config_get(f, "loss");
    memset(st, 0, sizeof *st);
    nn_weights_config_int(f, "step", &st->step);
    nn_weights_config_int(f, "seed", &st->seed);
    nn_weights_config_int(f, "batch", &st->batch);
    nn_weights_config_double(f, "lr", &st->lr);
    nn_weights_config_int(f, "lr_step", &st->lr_step);
    nn_weights_config_double(f, "weight_decay", &st->weight_decay);
    st->optimizer = !strcmp(opt, "adam") ? NN_OPTIM_ADAM : NN_OPTIM_SGD;
    st->schedule = !strcmp(sched, "cosine") ? NN_LR_COSINE : !strcmp(sched, "constant") ? NN_LR_CONSTANT : NN_LR_STEP;
    /* checkpoints written before these keys existed: l1, no smoothness, the schedule
     * length of the resuming run's --steps, the constants and the crop scale of that time */
    st->loss = loss && !strcmp(loss, "ssim-l1") ? LOSS_SSIM_L1 : LOSS_L1;
    st->smoothness = 0, st->lr_total_steps = default_total, st->lr_gamma = 0.1, st->lr_min_factor = 0.01;
    st->crop_scale = TRAIN_CROP_SCALE_BEFORE;
    if (nn_weights_config_get(f, "crop_scale")) nn_weights_config_double(f, "crop_scale", &st->crop_scale);
    if (nn_weights_config_get(f, "smoothness")) nn_weights_config_double(f, "smoothness", &st->smoothness);
    if (nn_weights_config_get(f, "lr_total_steps")) nn_weights_config_int(f, "lr_total_steps", &st->lr_total_steps);
    if (nn_weights_config_get(f, "lr_gamma")) nn_weights_config_double(f, "lr_gamma", &st->lr_gamma);
    if (nn_weights_config_get(f, "lr_min_factor")) nn_weights_config_double(f, "lr_min_factor", &st->lr_min_factor);
    return 0;
}

/* An option given on the command line that disagrees with the checkpoint's setting:
 * -1 + nn_fail naming both values. --batch is compared times the number of processes. */
static int check_explicit_options(const train_opts *o, const nn_weights_file *f, int processes) {
    for (int i = 0; i < N_SETTING_KEYS; i++) {
        const char *v = nn_weights_config_get(f, setting_keys[i].key);
        const cli_option *opt = cli_find(o->opts, setting_keys[i].option, strlen(setting_keys[i].option));
        if (!v || !opt || !cli_given(o->opts, o->argc, o->argv, opt->name)) continue;
        char given[64];
        int same = 1;
        if (opt->kind == CLI_INT) {
            /* --batch is per process; the checkpoint keeps the whole batch */
            const long k = !strcmp(opt->name, "batch") ? processes : 1;
            same = strtol(v, NULL, 10) == k * *(long *)opt->dest;
            snprintf(given, sizeof given, "%ld%s", *(long *)opt->dest, k > 1 ? " (per process)" : "");
        } else if (opt->kind == CLI_DOUBLE) {
            same = strtod(v, NULL) == *(double *)opt->dest;
            snprintf(given, sizeof given, "%g", *(double *)opt->dest);
        } else if (opt->kind == CLI_STRING) {
            same = !strcmp(v, *(const char **)opt->dest);
            snprintf(given, sizeof given, "%s", *(const char **)opt->dest);
        }
        if (!same)
            return nn_fail("--%s %s disagrees with the checkpoint %s (%s=%.64s): leave the option out to continue "
                           "that run as it was, or train a new run without --resume",
                           opt->name, given, nn_weights_path(f), setting_keys[i].key, v);
    }
    return 0;
}

static int read_optimizer_state(const nn_weights_file *f, nn_optimizer *opt, const train_state *st) {
    char name[128];
    for (int i = 0; i < opt->n_params; i++) {
        const char *p = opt->params[i]->name;
        snprintf(name, sizeof name, "optim.%s.%s", st->optimizer == NN_OPTIM_ADAM ? "m" : "velocity", p);
        if (nn_weights_read(f, name, opt->state1[i])) return -1;
        if (st->optimizer == NN_OPTIM_ADAM) {
            snprintf(name, sizeof name, "optim.v.%s", p);
            if (nn_weights_read(f, name, opt->state2[i])) return -1;
        }
    }
    opt->step = st->step;
    return 0;
}

/* The loader's next batch into *b (valid until the next call), reporting the pairs it
 * skipped since the last report. */
static int next_batch(loader *ld, loader_batch *b, long *warnings_seen, int tty, int rank) {
    if (loader_next(ld, b)) return -1;
    if (loader_warning_count(ld) > *warnings_seen) {
        *warnings_seen = loader_warning_count(ld);
        char who[32] = "";
        if (rank) snprintf(who, sizeof who, "rank %d: ", rank);
        fprintf(stderr, "%s%swarning: %s (pair skipped)\n", tty ? "\n" : "", who, loader_last_warning(ld));
    }
    return 0;
}

/* --resume auto: the newest complete checkpoint in dir (dist.h "Resuming" above) into
 * path, or "" when there is none (dir missing or holding none). A checkpoint that does
 * not open (truncated, CRC mismatch) or has no step is named on stderr and skipped; of
 * equal steps the first name in byte order is taken. Temporary files of an interrupted
 * save (".deep3d-XXXXXX", nn/atomic_file.h) do not start with "checkpoint" and are
 * ignored, as is any other name that does not end in .d3w.
 * 0, or -1 + nn_fail when dir cannot be read. */
static int find_checkpoint(const char *dir, char *path, size_t size) {
    path[0] = '\0';
    DIR *dh = opendir(dir);
    if (!dh) return errno == ENOENT ? 0 : nn_fail("--resume auto: cannot read %s: %s", dir, strerror(errno));
    long best = -1;
    struct dirent *e;
    char cand[4096];
    while ((e = readdir(dh))) {
        const size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "checkpoint", 10) || len < 14 || strcmp(e->d_name + len - 4, ".d3w")) continue;
        snprintf(cand, sizeof cand, "%s/%s", dir, e->d_name);
        nn_weights_file *f = nn_weights_open(cand);
        long step = -1;
        if (!f || nn_weights_config_int(f, "step", &step)) {
            fprintf(stderr, "warning: --resume auto skips %s: %s\n", cand, nn_last_error());
        } else if (step > best || (step == best && strcmp(cand, path) < 0)) { /* ties: the first name */
            best = step;
            snprintf(path, size, "%s", cand);
        }
        nn_weights_close(f);
    }
    closedir(dh);
    return 0;
}

static void format_duration(double s, char *buf, size_t size) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

/* ---- signals: finish the step, checkpoint, exit 128 + signal ---- */

/* The first SIGINT/SIGTERM received, 0: none. Atomic, and set by exchange: the two
 * signals may run their handlers at once on two threads (a process-directed signal goes
 * to any thread), and exactly one of them must see that it came second. */
static atomic_int stop_signal;

static void on_stop_signal(int sig) {
    if (atomic_exchange(&stop_signal, sig)) { /* the second one: stop at once, by the signal */
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the run folder ---- */

static const char *const run_files[] = {"checkpoint.d3w", "model.d3w", "log.csv"};

/* 1 when a and b name the same existing file. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Prepares --out before any other work: created if missing, writable (a temporary file
 * is made and removed), a killed run's temporaries removed, and no earlier run's files
 * replaced unless --resume continues that run or --overwrite says so. */
static int prepare_out(const train_opts *o) {
    char path[4096];
    if (mkdir(o->out, 0777) && errno != EEXIST) return nn_fail("cannot create output folder %s: %s", o->out, strerror(errno));
    if (nn_check_writable_folder(o->out)) return -1;
    int stale = nn_remove_stale_temporaries(o->out);
    if (stale) printf("removed %d temporary file%s left in %s by a run that was killed\n", stale, stale == 1 ? "" : "s", o->out);
    snprintf(path, sizeof path, "%s/checkpoint.d3w", o->out);
    const int continuing = o->resume && (!strcmp(o->resume, "auto") || same_file(o->resume, path));
    for (int i = 0; i < 3 && !continuing; i++) {
        snprintf(path, sizeof path, "%s/%s", o->out, run_files[i]);
        if (access(path, F_OK) != 0) continue;
        if (!o->overwrite)
            return nn_fail("%s already holds a training run (%s): --resume %s/checkpoint.d3w continues it, --overwrite "
                           "replaces it", o->out, run_files[i], o->out);
        if (unlink(path)) return nn_fail("cannot remove %s (--overwrite): %s", path, strerror(errno));
    }
    return 0;
}

/* ---- log.csv ---- */

#define LOG_HEADER "step,loss,lr,img_per_s,val_mae_model,val_mae_identity,val_mae_global,photometric,smoothness\n"

/* The error of the last writes to csv, if any: -1 + nn_fail naming the file. */
static int check_log(FILE *csv, const char *path) {
    errno = 0;
    if (fflush(csv) != 0 || ferror(csv)) return nn_fail("cannot write %s: %s", path, strerror(errno ? errno : EIO));
    return 0;
}

/* Opens log.csv for appending. Fresh runs start it with the header; a resumed run
 * first rewrites it (atomically) with its header and the rows of steps <= step, so
 * the rows past the checkpoint are not repeated. */
static FILE *open_log(const char *path, int resume, long step) {
    FILE *in = resume ? fopen(path, "r") : NULL;
    if (in) {
        char tmp[4200], line[4096];
        FILE *out = nn_atomic_open(path, tmp, sizeof tmp);
        if (!out) {
            fclose(in);
            return NULL;
        }
        int first = 1, err = 0;
        while (!err && fgets(line, sizeof line, in)) {
            char *end;
            long row = strtol(line, &end, 10);
            if (first || (end != line && *end == ',' && row <= step)) err = fputs(line, out) < 0;
            first = 0;
        }
        err = err || ferror(in);
        fclose(in);
        if (err) {
            nn_atomic_abandon(out, tmp);
            nn_fail("cannot rewrite %s up to step %ld: %s", path, step, strerror(errno ? errno : EIO));
            return NULL;
        }
        if (nn_atomic_commit(out, tmp, path, "cannot rewrite")) return NULL;
    }
    FILE *csv = fopen(path, in ? "a" : "w");
    if (!csv) {
        nn_fail("cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!in) fputs(LOG_HEADER, csv);
    if (check_log(csv, path)) {
        fclose(csv);
        return NULL;
    }
    return csv;
}

/* ---- validation pairs ---- */

/* Decodes every validation pair once; the unreadable ones are dropped with a warning on
 * stderr and counted in *skipped. Error only when none is readable. */
static int check_validation_pairs(stereo_dataset *ds, int *skipped) {
    const int n = ds->n;
    char last[1024] = "";
    *skipped = 0;
    for (int i = 0; i < ds->n;) {
        image *l, *r;
        if (stereo_load_pair(ds, i, &l, &r) == 0) {
            image_free(l), image_free(r);
            i++;
            continue;
        }
        snprintf(last, sizeof last, "%s", nn_last_error());
        fprintf(stderr, "warning: %s (validation pair skipped)\n", last);
        stereo_dataset_drop(ds, i);
        ++*skipped;
    }
    if (ds->n == 0) return nn_fail("none of the %d validation pairs can be read; the last: %s", n, last);
    return 0;
}

static int run(train_opts *o, dist *d) {
    stereo_dataset *train_ds = NULL, *val_ds = NULL;
    deep3d_model m = {0};
    nn_optimizer opt = {0};
    loader *ld = NULL;
    FILE *csv = NULL;
    nn_weights_file *ckpt = NULL;
    nn_tensor *left = NULL, *right = NULL;
    int rc = -1, model_ready = 0, opt_ready = 0, val_skipped = 0;
    char path[4096], log_path[4096];
    nn_device device;
    train_state st = {0};

    const int lead = d->rank == 0; /* writes --out, validates, prints */
    char resume[4096] = "";
    catch_stop_signals();
    image_set_max_pixels(o->max_pixels);
    if (deep3d_setup_device(o->device, o->precision, o->deterministic, &device) || dist_use_device(d, device) ||
        (lead && prepare_out(o)))
        goto done;
    if (!(train_ds = stereo_dataset_open(o->data.items, o->data.n, o->layout))) goto done;
    if (lead && o->val_data.n &&
        (!(val_ds = stereo_dataset_open(o->val_data.items, o->val_data.n, o->layout)) ||
         check_validation_pairs(val_ds, &val_skipped)))
        goto done;

    /* the checkpoint to resume from: rank 0 chooses, every process reads it */
    if (o->resume && !strcmp(o->resume, "auto")) {
        if (lead && find_checkpoint(o->out, resume, sizeof resume)) goto done;
        if (dist_bcast_host(d, resume, sizeof resume)) goto done;
        if (!resume[0]) printf("--resume auto: no checkpoint in %s; starting at step 0\n", o->out);
    } else if (o->resume) {
        snprintf(resume, sizeof resume, "%s", o->resume);
    }
    if (resume[0]) {
        if (!(ckpt = nn_weights_open(resume)) || train_read_settings(ckpt, o->steps, &st) ||
            check_explicit_options(o, ckpt, d->size) || deep3d_model_read(&m, ckpt, device))
            goto done;
        model_ready = 1;
        printf("resuming from %s at step %ld\n", resume, st.step);
    } else {
        deep3d_config cfg = deep3d_default_config();
        snprintf(cfg.variant, sizeof cfg.variant, "%s", o->variant);
        cfg.width = (int)o->width, cfg.height = (int)o->height, cfg.disparities = (int)o->disparities;
        cfg.dmin = (int)o->dmin, cfg.width_div = (int)o->width_div;
        st.seed = o->seed, st.batch = o->batch * d->size, st.lr = o->lr, st.lr_step = o->lr_step, st.weight_decay = o->weight_decay;
        st.lr_total_steps = o->lr_steps ? o->lr_steps : o->steps, st.lr_gamma = 0.1, st.lr_min_factor = 0.01;
        st.loss = !strcmp(o->loss, "ssim-l1") ? LOSS_SSIM_L1 : LOSS_L1, st.smoothness = o->smoothness;
        st.crop_scale = o->crop_scale;
        st.optimizer = !strcmp(o->optimizer, "adam") ? NN_OPTIM_ADAM : NN_OPTIM_SGD;
        st.schedule = !strcmp(o->schedule, "cosine") ? NN_LR_COSINE : !strcmp(o->schedule, "constant") ? NN_LR_CONSTANT : NN_LR_STEP;
        if (deep3d_model_init(&m, &cfg, device, (uint64_t)st.seed)) goto done;
        model_ready = 1;
        /* the global-disparity baseline, fitted once on the training pairs (by rank 0) */
        double mae = 0;
        int best = 0, skipped = 0;
        const int dmax = cfg.dmin + cfg.disparities - 1;
        disparity_coverage cov;
        disparity_coverage_init(&cov, cfg.width);
        if (lead &&
            deep3d_fit_global_disparity(train_ds, cfg.width, cfg.height, cfg.dmin, dmax, &best, &mae, &skipped, &cov))
            goto done;
        if (dist_bcast_host(d, &best, sizeof best)) goto done;
        m.cfg.has_global_disparity = 1, m.cfg.global_disparity = best;
        printf("global disparity on the %d training pairs: %d px (MAE %.3f)\n", train_ds->n - skipped, best, mae);
        /* does [dmin, dmax] cover the data? per-pixel best shifts by block matching */
        printf("disparity range %d..%d px: %.1f%% of the %.0f matched pixels have their best shift outside "
               "(best shifts at %dx%d: 1%% %d, 5%% %d, median %d, 95%% %d, 99%% %d px; searched %d..%d)\n",
               cfg.dmin, dmax, 100 * disparity_coverage_outside(&cov, cfg.dmin, dmax), cov.counted, cfg.width,
               cfg.height, disparity_coverage_quantile(&cov, 0.01), disparity_coverage_quantile(&cov, 0.05),
               disparity_coverage_quantile(&cov, 0.5), disparity_coverage_quantile(&cov, 0.95),
               disparity_coverage_quantile(&cov, 0.99), cov.search_min, cov.search_max);
    }
    if (st.step > o->steps) {
        nn_fail("the checkpoint is at step %ld, past --steps %ld", st.step, o->steps);
        goto done;
    }
    if (st.step == o->steps) { /* nothing left to train: only write the model file */
        snprintf(path, sizeof path, "%s/model.d3w", o->out);
        if (lead && deep3d_model_save(&m, path, 1)) goto done;
        printf("the checkpoint is at step %ld already: wrote %s\n", st.step, path);
        rc = 0;
        goto done;
    }
    /* the replicas start equal: rank 0's tensors (initialised or read) everywhere */
    if (dist_bcast_tensors(d, m.tensors, m.n_tensors)) goto done;
    if (st.batch % d->size) {
        nn_fail("the batch of %ld samples per step (the checkpoint's) cannot be split among %d processes", st.batch,
                d->size);
        goto done;
    }
    const long part = st.batch / d->size; /* this process's samples of each batch */
    nn_tensor *params[DEEP3D_MAX_TENSORS];
    int n_params = 0;
    for (int i = 0; i < m.n_tensors; i++)
        if (m.trainable[i]) params[n_params++] = m.tensors[i];
    if (nn_optimizer_init(&opt, st.optimizer, params, n_params)) goto done;
    opt_ready = 1;
    opt.weight_decay = (nn_real)st.weight_decay;
    if (ckpt && read_optimizer_state(ckpt, &opt, &st)) goto done;
    nn_weights_close(ckpt), ckpt = NULL;
    nn_lr_schedule sched = {.kind = st.schedule, .base = st.lr, .step_size = st.lr_step, .gamma = st.lr_gamma,
                            .total_steps = st.lr_total_steps, .min_factor = st.lr_min_factor};

    loader_config lc = loader_defaults();
    lc.batch = (int)part, lc.width = m.cfg.width, lc.height = m.cfg.height;
    lc.global_batch = (int)st.batch, lc.first_sample = (int)(d->rank * part);
    lc.seed = (uint64_t)st.seed, lc.start_step = st.step;
    lc.aug.scale_min = st.crop_scale; /* up to 1, augment_defaults()'s scale_max */
    lc.cache_bytes = ((size_t)2 << 30) / (size_t)d->local_size; /* the machine's 2 GiB shared */
    if (d->local_size > 1) { /* the machine's cores shared among its processes, at most 8 each */
        const long cores = sysconf(_SC_NPROCESSORS_ONLN) / d->local_size;
        lc.threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    }
    if (!(ld = loader_create(train_ds, &lc))) goto done;
    left = nn_tensor_new4(device, (int)part, 3, m.cfg.height, m.cfg.width);
    right = nn_tensor_new_like(left);
    if (!left || !right) goto done;

    snprintf(log_path, sizeof log_path, "%s/log.csv", o->out);
    if (lead && !(csv = open_log(log_path, resume[0] != 0, st.step))) goto done;
    printf("training %s (width/%d, %dx%d, D=%d from %d, %.2f M parameters) on %d pairs, batch %ld, %s lr %g, "
           "loss %s + %g x smoothness, crops %g..1, %s, steps %ld..%ld\n",
           m.cfg.variant, m.cfg.width_div, m.cfg.width, m.cfg.height, m.cfg.disparities, m.cfg.dmin,
           (double)deep3d_model_param_count(&m) / 1e6, train_ds->n, st.batch, st.optimizer == NN_OPTIM_ADAM ? "adam" : "sgd", st.lr,
           loss_names[st.loss], st.smoothness, st.crop_scale, nn_device_name(device), st.step, o->steps);
    if (val_ds)
        printf("validation: %d pairs every %ld steps%s\n", val_ds->n, o->val_every,
               val_skipped ? " (unreadable ones skipped, above)" : "");
    if (d->size > 1) {
        size_t grad_values = 0;
        for (int i = 0; i < n_params; i++) grad_values += params[i]->numel;
        printf("data parallel: %d processes (%d on this machine) x %ld samples, %s; %.2f MiB of gradients averaged "
               "per step (%s), batch norm statistics over all %ld samples\n",
               d->size, d->local_size, part, nn_device_name(device), (double)grad_values * sizeof(nn_real) / 1048576.0,
               device == NN_CUDA ? "NCCL" : "MPI_Allreduce", st.batch);
    }
    fflush(stdout);

    const int tty = lead && cli_is_tty();
    const long first = st.step;
    int stop_early = stop_signal; /* rank 0's decides for every process */
    if (d->size > 1 && dist_bcast_host(d, &stop_early, sizeof stop_early)) goto done;
    if (stop_early) { /* during the preparation: no step was made, nothing new to save */
        if (lead)
            fprintf(stderr, "deep3d train: stopped by %s before the first step (step %ld): nothing new to save\n",
                    stop_early == SIGINT ? "SIGINT" : "SIGTERM", st.step);
        rc = 128 + stop_early;
        goto done;
    }
    double t_start = deep3d_now(), t_log = t_start, loss_sum = 0, photo_sum = 0, smooth_sum = 0;
    long loss_count = 0, warnings_seen = 0, images_since_log = 0;
    int have_batch = 0; /* the batch of st.step is in left/right (uploaded during the previous step) */
    for (; st.step < o->steps;) {
        loader_batch b;
        if (!have_batch) { /* the first step, or the loader failed while the previous step ran */
            if (next_batch(ld, &b, &warnings_seen, tty, d->rank) || nn_tensor_upload(left, b.left) ||
                nn_tensor_upload(right, b.right))
                goto done;
        }
        const double lr = nn_lr_at(&sched, st.step);
        nn_graph g;
        nn_graph_init(&g, 1);
        g.sample_offset = d->rank * part;
        g.collective = d->size > 1 ? &d->collective : NULL;
        g.dropout_seed = (unsigned long long)(nn_hash_uniform((uint64_t)st.seed, (uint64_t)st.step) * 9007199254740992.0);
        nn_tensor *pred = NULL, *prob = NULL, *photo = NULL, *smooth = NULL, *loss = NULL;
        /* queue step st.step: nothing below waits for the device before the loss download.
         * loss = photometric + W * smoothness; with W = 0 the smoothness is only logged
         * (computed outside the graph) and the loss is the photometric part itself. */
        const int smoothed = st.smoothness > 0;
        int err = deep3d_forward(&m, &g, left, &pred, &prob) ||
                  !(photo = st.loss == LOSS_SSIM_L1 ? nn_ssim_l1_loss(&g, pred, right, SSIM_ALPHA)
                                                    : nn_l1_loss(&g, pred, right)) ||
                  !(smooth = nn_disparity_smoothness(smoothed ? &g : NULL, prob, left, m.cfg.dmin)) ||
                  !(loss = smoothed ? nn_add_scaled(&g, photo, smooth, st.smoothness) : nn_tensor_ref(photo)) ||
                  nn_graph_backward(&g, loss);
        nn_tensor_unref(pred), nn_tensor_unref(prob), nn_tensor_unref(loss);
        nn_graph_free(&g);
        if (!err) err = dist_average_grads(d, opt.params, opt.n_params);
        if (!err) err = nn_optimizer_step(&opt, (nn_real)lr) || nn_optimizer_zero_grad(&opt);
        /* the next batch into the tensors the queued step reads; a loader failure is
         * reported at the top of the next step (loader_next then fails again alike), so
         * this step is still logged and checkpointed */
        have_batch = 0;
        if (!err && st.step + 1 < o->steps && next_batch(ld, &b, &warnings_seen, tty, d->rank) == 0) {
            err = nn_tensor_upload_async(left, b.left) || nn_tensor_upload_async(right, b.right);
            have_batch = !err;
        }
        nn_real photo_value = 0, smooth_value = 0;
        /* waits for the step, not for the upload */
        if (!err) err = nn_tensor_download(photo, &photo_value) || nn_tensor_download(smooth, &smooth_value);
        nn_tensor_unref(photo), nn_tensor_unref(smooth);
        /* the whole batch's: the mean of the processes' parts */
        /* with rank 0's stop signal (the others add 0), so every process stops at the
         * same step: mpirun forwards SIGINT and SIGTERM to every rank, not necessarily
         * within the same step */
        double parts[3] = {(double)photo_value, (double)smooth_value, lead ? (double)stop_signal : 0};
        if (!err) err = dist_sum_host(d, parts, 3);
        const double photo_mean = parts[0] / d->size, smooth_mean = parts[1] / d->size;
        const double loss_value = photo_mean + st.smoothness * smooth_mean;
        if (!err) err = nn_device_wait_uploads(device);
        if (!err && !isfinite(loss_value)) err = nn_fail("the loss is %g at step %ld: training diverged; lower --lr", loss_value, st.step);
        if (err) goto done;
        st.step++;
        loss_sum += loss_value, photo_sum += photo_mean, smooth_sum += smooth_mean;
        loss_count++, images_since_log += st.batch;

        const double now = deep3d_now(), rate = (double)(st.step - first) * st.batch / (now - t_start);
        char eta[32];
        format_duration((double)(o->steps - st.step) * st.batch / rate, eta, sizeof eta);
        if (tty)
            fprintf(stderr, "\rstep %ld/%ld  loss %.3f  lr %.2e  %.2f img/s  ETA %s   ", st.step, o->steps,
                    loss_value, lr, rate, eta);
        const int last = st.step == o->steps;
        const int do_val = val_ds && (st.step % o->val_every == 0 || last);
        if (lead && (st.step % o->log_every == 0 || do_val || last)) {
            eval_result ev = {0};
            if (do_val && deep3d_evaluate(&m, val_ds, m.cfg.global_disparity, &ev)) goto done;
            if (do_val && ev.skipped)
                fprintf(stderr, "%swarning: %d validation pair%s unreadable at step %ld, left out (%s)\n", tty ? "\n" : "",
                        ev.skipped, ev.skipped == 1 ? "" : "s", st.step, nn_last_error());
            const double ips = images_since_log / (now - t_log);
            fprintf(csv, "%ld,%.6f,%.6g,%.4f", st.step, loss_sum / loss_count, lr, ips);
            if (do_val) fprintf(csv, ",%.6f,%.6f,%.6f", ev.mae_model, ev.mae_identity, ev.mae_global);
            else fprintf(csv, ",,,");
            fprintf(csv, ",%.6f,%.6f\n", photo_sum / loss_count, smooth_sum / loss_count);
            if (check_log(csv, log_path)) goto done;
            if (!tty || do_val) {
                printf("%sstep %ld/%ld loss %.4f lr %.3g %.2f img/s ETA %s", tty ? "\n" : "", st.step, o->steps,
                       loss_sum / loss_count, lr, ips, eta);
                if (do_val)
                    printf("  val MAE model %.3f identity %.3f global(%d) %.3f", ev.mae_model, ev.mae_identity,
                           ev.global_disparity, ev.mae_global);
                printf("\n");
                fflush(stdout);
            }
            loss_sum = photo_sum = smooth_sum = 0, loss_count = 0, images_since_log = 0, t_log = now;
        }
        const int stop = (int)parts[2]; /* rank 0's, summed with the losses above */
        const int stopping = stop && !last;
        snprintf(path, sizeof path, "%s/checkpoint.d3w", o->out);
        if (lead && (st.step % o->checkpoint_every == 0 || last || stopping)) {
            if (save_checkpoint(path, &m, &opt, &st)) goto done;
        }
        if (stopping) {
            if (lead)
                fprintf(stderr, "%sdeep3d train: stopped by %s at step %ld/%ld: saved %s; continue with --resume %s\n",
                        tty ? "\n" : "", stop == SIGINT ? "SIGINT" : "SIGTERM", st.step, o->steps, path, path);
            rc = 128 + stop;
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/model.d3w", o->out);
    if (lead && deep3d_model_save(&m, path, 1)) goto done;
    char total[32];
    const double elapsed = deep3d_now() - t_start;
    format_duration(elapsed, total, sizeof total);
    printf("%sdone: %ld steps in %s; wrote %s/model.d3w and %s/checkpoint.d3w\n", tty ? "\n" : "", st.step - first,
           total, o->out, o->out);
    if (d->size > 1)
        printf("data parallel: %.3f s per step, %.2f images/s over %d processes; gradient average %.1f ms per step "
               "(%zu bytes per process per step; host time%s)\n",
               elapsed / (double)(st.step - first), (double)(st.step - first) * st.batch / elapsed, d->size,
               1e3 * d->reduce_s / (double)(st.step - first), d->grad_bytes,
               device == NN_CUDA ? " to queue it: the GPU runs it in stream order" : "");
    if (warnings_seen && lead)
        printf("skipped %ld bad pair%s (last: %s)\n", warnings_seen, warnings_seen == 1 ? "" : "s",
               loader_last_warning(ld));
    else if (warnings_seen)
        fprintf(stderr, "rank %d: skipped %ld bad pair%s (last: %s)\n", d->rank, warnings_seen,
                warnings_seen == 1 ? "" : "s", loader_last_warning(ld));
    if (val_skipped) printf("skipped %d unreadable validation pair%s\n", val_skipped, val_skipped == 1 ? "" : "s");
    rc = 0;
done:
    if (csv) fclose(csv);
    loader_free(ld);
    nn_tensor_unref(left), nn_tensor_unref(right);
    if (opt_ready) nn_optimizer_free(&opt);
    if (model_ready) deep3d_model_free(&m);
    nn_weights_close(ckpt);
    stereo_dataset_free(train_ds), stereo_dataset_free(val_ds);
    return rc;
}

/* Fills o with the defaults and opts (room for 40) with deep3d train's option table,
 * whose entries point into o. Returns the number of options. */
static int build_options(train_opts *o, cli_option *opts) {
    *o = (train_opts){.out = NULL, .variant = "released", .optimizer = "sgd", .schedule = "step", .layout = "pairs", .loss = "l1",
                    .device = "auto", .precision = "fp32", .steps = 1000, .batch = 4, .seed = 1, .width = 384, .height = 160,
                    .disparities = 33, .dmin = -15, .width_div = 1, .lr_step = 20000, .checkpoint_every = 500,
                    .val_every = 100, .log_every = 10, .lr = 0.002, .crop_scale = augment_defaults().scale_min, .max_pixels = IMAGE_DEFAULT_MAX_PIXELS};
    const cli_option table[] = {
        {"data", CLI_LIST, &o->data, "DIR", "training pairs (repeatable; layouts in data/README.md)", 0, 0, NULL},
        {"out", CLI_STRING, &o->out, "DIR", "output folder: log.csv, checkpoint.d3w, model.d3w", 0, 0, NULL},
        {"steps", CLI_INT, &o->steps, "N", "train until this step (default: 1000)", 1, 1e9, NULL},
        {"batch", CLI_INT, &o->batch, "N", "pairs per step and process: under mpirun -np K a step takes K*N (default: 4; the paper: 64)", 1, 4096, NULL},
        {"lr", CLI_DOUBLE, &o->lr, "X", "learning rate (default: 0.002, the paper's)", 1e-12, 10, NULL},
        {"optimizer", CLI_STRING, &o->optimizer, "NAME", "sgd (momentum 0.9, the paper's) or adam (default: sgd)", 0, 0, "sgd|adam"},
        {"lr-schedule", CLI_STRING, &o->schedule, "NAME", "step (x0.1 every --lr-step), cosine or constant (default: step)", 0, 0, "step|cosine|constant"},
        {"lr-step", CLI_INT, &o->lr_step, "N", "steps between x0.1 decays (default: 20000)", 1, 1e9, NULL},
        {"lr-steps", CLI_INT, &o->lr_steps, "N", "length of the cosine schedule (default: --steps; kept by --resume)", 1, 1e9, NULL},
        {"weight-decay", CLI_DOUBLE, &o->weight_decay, "X", "L2 weight decay (default: 0)", 0, 1, NULL},
        {"loss", CLI_STRING, &o->loss, "NAME", "l1 (the paper's, default) or ssim-l1 (0.85 SSIM + 0.15 L1, Godard et al. 2017)", 0, 0, "l1|ssim-l1"},
        {"smoothness", CLI_DOUBLE, &o->smoothness, "W", "weight of the edge-aware disparity smoothness (Godard et al. 2017; default: 0, off)", 0, 1000, NULL},
        {"crop-scale", CLI_DOUBLE, &o->crop_scale, "X", "random crops of X..1 times the largest crop of the network's aspect (zoom 1..1/X; default: 0.6)", 0.05, 1, NULL},
        {"variant", CLI_STRING, &o->variant, "NAME", "released (default) or vgg16", 0, 0, "released|vgg16"},
        {"width", CLI_INT, &o->width, "PX", "network width, multiple of 32 (default: 384)", 32, 8192, NULL},
        {"height", CLI_INT, &o->height, "PX", "network height, multiple of 32 (default: 160)", 32, 8192, NULL},
        {"disparities", CLI_INT, &o->disparities, "N", "disparity levels (default: 33)", 1, 1024, NULL},
        {"dmin", CLI_INT, &o->dmin, "PX", "smallest disparity (default: -15)", -4096, 4096, NULL},
        {"width-div", CLI_INT, &o->width_div, "N", "divide conv/fc widths by N: 1, 2, 4, 8 (default: 1)", 1, 64, NULL},
        {"layout", CLI_STRING, &o->layout, "NAME", "pairs (default), sbs, sbs-half, ou or ou-half", 0, 0, "pairs|sbs|sbs-half|ou|ou-half"},
        {"val-data", CLI_LIST, &o->val_data, "DIR", "validation pairs (repeatable)", 0, 0, NULL},
        {"val-every", CLI_INT, &o->val_every, "N", "validate every N steps (default: 100)", 1, 1e9, NULL},
        {"checkpoint-every", CLI_INT, &o->checkpoint_every, "N", "checkpoint every N steps (default: 500)", 1, 1e9, NULL},
        {"log-every", CLI_INT, &o->log_every, "N", "a log line every N steps (default: 10)", 1, 1e9, NULL},
        {"resume", CLI_STRING, &o->resume, "FILE|auto", "continue from a checkpoint.d3w (its model and settings), or auto: from the newest complete checkpoint in --out, else from scratch; at --steps already: only write model.d3w", 0, 0, NULL},
        {"overwrite", CLI_FLAG, &o->overwrite, NULL, "replace the run already in --out (its checkpoint, model and log)", 0, 0, NULL},
        {"max-pixels", CLI_INT, &o->max_pixels, "N", "skip pairs of larger images, before decoding (default: 100000000)", 1, 4e12, NULL},
        {"seed", CLI_INT, &o->seed, "N", "seed of initialisation, batches and dropout (default: 1)", 0, 2e9, NULL},
        {"threads", CLI_INT, &o->threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {"device", CLI_STRING, &o->device, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"precision", CLI_STRING, &o->precision, "P", "fp32 (default), tf32 or bf16 (CUDA only)", 0, 0, "fp32|tf32|bf16"},
        {"deterministic", CLI_FLAG, &o->deterministic, NULL, "CUDA: only deterministic cuDNN algorithms", 0, 0, NULL},
        {0},
    };
    int n = 0;
    while (table[n].name) n++;
    memcpy(opts, table, (size_t)(n + 1) * sizeof *table);
    return n;
}

int cmd_train(int argc, char **argv) {
    train_opts o;
    cli_option opts[40];
    build_options(&o, opts);
    o.opts = opts, o.argc = argc, o.argv = argv;
    const char *pos[1];
    int n_pos;
    int rc = cli_parse("train", "--data DIR [--data DIR ...] --out DIR [options]", opts, argc, argv, pos, 0, &n_pos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.data.n) return cli_error("train", "no --data folder given"), 2;
    if (!o.out) return cli_error("train", "no --out folder given"), 2;
    dist d;
    if (dist_start(&d)) {
        cli_error("train", "%s", nn_last_error());
        dist_abort(&d, 1);
        dist_end(&d);
        return 1;
    }
    if (d.rank != 0 && !freopen("/dev/null", "w", stdout)) { /* rank 0 prints */
        cli_error("train", "rank %d: cannot discard its output: %s", d.rank, strerror(errno));
        dist_abort(&d, 1);
    }
    long threads = o.threads;
    if (!threads && d.local_size > 1) { /* the machine's cores shared among its processes */
        threads = sysconf(_SC_NPROCESSORS_ONLN) / d.local_size;
        if (threads < 1) threads = 1;
    }
    deep3d_set_threads(threads);
    rc = run(&o, &d);
    if (rc < 0) {
        if (d.size > 1) cli_error("train", "rank %d of %d: %s", d.rank, d.size, nn_last_error());
        else cli_error("train", "%s", nn_last_error());
        dist_abort(&d, 1); /* the others may wait in a collective: end the job */
        dist_end(&d);
        return 1;
    }
    if (dist_end(&d)) return cli_error("train", "%s", nn_last_error());
    return rc; /* 0, or 128 + the signal that stopped it */
}
