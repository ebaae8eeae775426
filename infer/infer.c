/* deep3d infer: converts single images to stereo with a trained model.
 * For each input NAME.ext it writes into --out: NAME_right.png (the predicted right
 * view at the input's own resolution, DEEP3D.md "Rendering at the source resolution"),
 * NAME_sbs.png (full side-by-side, left view on the left), NAME_anaglyph.png (red-cyan),
 * NAME_depth.png (the disparity map, near = bright), and on request NAME_ou.png
 * (over-under). Every file is written to a temporary name and renamed.
 *
 * --device cpu: render_image (infer/render.h), the network on one window at a time.
 * --device cuda: render_image_cuda's steps (infer/render_cuda.h): the frame is
 * uploaded once, the windows are cropped and resized on the GPU, the network runs on
 * all of them as one batch, and the right view and disparity are rendered on the GPU
 * and downloaded once. Images are pipelined: while the GPU works on image i, the host
 * decodes image i+1 (and starts its upload on the copy stream), then encodes image i's
 * outputs while the GPU works on image i+1. Output, messages and order are the same. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../data/image.h"
#include "../deep3d/cli.h"
#include "../deep3d/commands.h"
#include "../deep3d/model.h"
#include "../deep3d/runtime.h"
#include "infer.h"
#include "render.h"
#include "render_cli.h"
#ifdef NN_WITH_CUDA
#include "render_cuda.h"
#endif

enum { FMT_RIGHT = 1, FMT_SBS = 2, FMT_ANAGLYPH = 4, FMT_DEPTH = 8, FMT_OU = 16 };
static const struct {
    const char *name;
    int bit;
} formats[] = {{"right", FMT_RIGHT}, {"sbs", FMT_SBS}, {"anaglyph", FMT_ANAGLYPH}, {"depth", FMT_DEPTH}, {"ou", FMT_OU}};

static int parse_formats(const char *list, int *mask) {
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < sizeof formats / sizeof *formats && strcmp(formats[i].name, tok)) i++;
        if (i == sizeof formats / sizeof *formats)
            return nn_fail("--formats: unknown format '%s' (expected right, sbs, anaglyph, depth, ou)", tok);
        *mask |= formats[i].bit;
    }
    return *mask ? 0 : nn_fail("--formats: empty list");
}

/* The network on one window, for render_image(): window (3, H, W) -> prob (D, H, W). */
typedef struct net_ctx {
    deep3d_model *model;
} net_ctx;

static int run_window(void *ctx, const nn_real *window, nn_real *prob) {
    deep3d_model *m = ((net_ctx *)ctx)->model;
    nn_tensor *left = nn_tensor_new4(m->device, 1, 3, m->cfg.height, m->cfg.width), *p = NULL;
    nn_graph g;
    nn_graph_init(&g, 0);
    int rc = !left || nn_tensor_upload(left, window) || deep3d_forward(m, &g, left, NULL, &p) ||
             nn_tensor_download(p, prob);
    nn_tensor_unref(p);
    nn_tensor_unref(left);
    nn_graph_free(&g);
    return rc ? -1 : 0;
}

#ifdef NN_WITH_CUDA
/* The network on a batch of windows already on the GPU, for render_cuda_launch():
 * windows (N, 3, H, W) -> *prob (N, D, H, W). */
static int run_windows_gpu(void *ctx, nn_tensor *windows, nn_tensor **prob) {
    deep3d_model *m = ((net_ctx *)ctx)->model;
    nn_graph g;
    nn_graph_init(&g, 0);
    *prob = NULL;
    int rc = deep3d_forward(m, &g, windows, NULL, prob);
    nn_graph_free(&g);
    return rc ? -1 : 0;
}
#endif

/* Writes a planar (3, h, w) array as OUT/STEM_SUFFIX.png. */
static int save(const char *out, const char *stem, const char *suffix, nn_real *data, int w, int h) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s.png", out, stem, suffix);
    image im = {.w = w, .h = h, .data = data};
    return image_save_png(&im, path);
}

/* One input image on its way: loaded, rendered, saved. A failed step keeps its
 * message in err (later steps of other images overwrite nn_last_error). */
typedef struct frame {
    const char *path;
    image *left;
    nn_real *right, *disp;   /* (3, H, W), (H, W) */
    render_info info;
    double t0;
    int ok;
    char err[1024];
#ifdef NN_WITH_CUDA
    render_cuda_job *job;
#endif
} frame;

static void frame_fail(frame *f) {
    if (!f->ok) return;
    f->ok = 0;
    snprintf(f->err, sizeof f->err, "%s", nn_last_error());
}

static void frame_free(frame *f) {
#ifdef NN_WITH_CUDA
    render_cuda_free(f->job);
#endif
    free(f->right), free(f->disp);
    image_free(f->left);
    memset(f, 0, sizeof *f);
}

/* Decodes the image and allocates its outputs; f->ok says whether it worked. */
static void frame_load(frame *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = path, f->ok = 1, f->t0 = deep3d_now();
    if (!(f->left = image_load(path))) {
        frame_fail(f);
        return;
    }
    const int W = f->left->w, H = f->left->h;
    f->right = malloc((size_t)3 * H * W * sizeof *f->right), f->disp = malloc((size_t)H * W * sizeof *f->disp);
    if (!f->right || !f->disp) {
        nn_fail("out of memory for a %dx%d image", W, H);
        frame_fail(f);
    }
}

/* What to write, and how. */
typedef struct infer_opts {
    const char *out;     /* output folder */
    int mask;            /* FMT_* bits */
    int swap;            /* 1: the right view first (cross-eyed viewing) */
    render_config render;
} infer_opts;

/* Writes the requested outputs of a rendered frame and prints its line. With swap, the
 * two views trade places in every composition (side-by-side and over-under right view
 * first, the anaglyph's colours reversed). */
static int frame_save(frame *f, const deep3d_model *m, const infer_opts *o) {
    const int W = f->left->w, H = f->left->h, mask = o->mask;
    const char *out = o->out;
    const nn_real *left = o->swap ? f->right : f->left->data, *right_view = o->swap ? f->left->data : f->right;
    nn_real *extra = NULL;
    char stem[256];
    deep3d_stem(f->path, stem, sizeof stem);
    int rc = -1;
    if ((mask & FMT_RIGHT) && save(out, stem, "right", f->right, W, H)) goto done;
    if (mask & FMT_SBS) {
        if (!(extra = render_side_by_side(left, right_view, H, W)) || save(out, stem, "sbs", extra, 2 * W, H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_OU) {
        if (!(extra = render_over_under(left, right_view, H, W)) || save(out, stem, "ou", extra, W, 2 * H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_ANAGLYPH) {
        if (!(extra = render_anaglyph(left, right_view, H, W)) || save(out, stem, "anaglyph", extra, W, H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_DEPTH) {
        extra = render_depth_map(f->disp, H, W, m->cfg.disparities, m->cfg.dmin, f->info.scale);
        if (!extra || save(out, stem, "depth", extra, W, H)) goto done;
    }
    printf("%s: %dx%d, %d network window%s, %.2f s -> %s/%s_*.png\n", f->path, W, H, f->info.n_windows,
           f->info.n_windows == 1 ? "" : "s", deep3d_now() - f->t0, out, stem);
    rc = 0;
done:
    free(extra);
    return rc;
}

/* Reports a failed frame (one line); returns 1 if it failed. */
static int frame_report(const frame *f) {
    if (f->ok) return 0;
    cli_error("infer", "%s", f->err);
    return 1;
}

render_config infer_render_config(const deep3d_model *m, const render_config *opts) {
    render_config cfg = *opts;
    cfg.net_w = m->cfg.width, cfg.net_h = m->cfg.height, cfg.D = m->cfg.disparities, cfg.dmin = m->cfg.dmin;
    return cfg;
}

int infer_render(deep3d_model *m, const render_config *cfg, const nn_real *left, int H, int W, nn_real *right,
                 nn_real *disp, render_info *info) {
    net_ctx ctx = {m};
#ifdef NN_WITH_CUDA
    if (m->device == NN_CUDA) return render_image_cuda(right, disp, info, cfg, run_windows_gpu, &ctx, left, H, W);
#endif
    return render_image(right, disp, info, cfg, run_window, &ctx, left, H, W);
}

/* CPU: one image after the other, the network one window at a time. */
static int convert_cpu(deep3d_model *m, const char *const *images, int n_images, const infer_opts *o) {
    const render_config cfg = infer_render_config(m, &o->render);
    int failed = 0;
    for (int i = 0; i < n_images; i++) {
        frame f;
        frame_load(&f, images[i]);
        if (f.ok && infer_render(m, &cfg, f.left->data, f.left->h, f.left->w, f.right, f.disp, &f.info))
            frame_fail(&f);
        if (f.ok && frame_save(&f, m, o)) frame_fail(&f);
        failed += frame_report(&f);
        frame_free(&f);
    }
    return failed;
}

#ifdef NN_WITH_CUDA
/* Decodes the image and starts its upload (render_cuda_prepare). */
static void gpu_prepare(frame *f, const char *path, const render_config *cfg) {
    frame_load(f, path);
    if (f->ok && render_cuda_prepare(&f->job, cfg, f->left->data, f->left->h, f->left->w)) frame_fail(f);
}

/* CUDA: the pipeline described at the top of this file. */
static int convert_cuda(deep3d_model *m, const char *const *images, int n_images, const infer_opts *o) {
    const render_config cfg = infer_render_config(m, &o->render);
    net_ctx ctx = {m};
    int failed = 0;
    frame a, b, *cur = &a, *next = &b;
    gpu_prepare(cur, images[0], &cfg);
    if (cur->ok && render_cuda_launch(cur->job, run_windows_gpu, &ctx)) frame_fail(cur);
    for (int i = 0; i < n_images; i++) {
        if (i + 1 < n_images) gpu_prepare(next, images[i + 1], &cfg); /* while the GPU works on image i */
        if (cur->ok) {
            render_cuda_job *job = cur->job;
            cur->job = NULL; /* finish frees it */
            if (render_cuda_finish(job, cur->right, cur->disp, &cur->info)) frame_fail(cur);
        }
        if (i + 1 < n_images && next->ok && render_cuda_launch(next->job, run_windows_gpu, &ctx)) frame_fail(next);
        if (cur->ok && frame_save(cur, m, o)) frame_fail(cur); /* while the GPU works on image i+1 */
        failed += frame_report(cur);
        frame_free(cur);
        frame *t = cur;
        cur = next, next = t;
    }
    return failed;
}
#endif

int cmd_infer(int argc, char **argv) {
    const char *model_path = NULL, *format_list = "right,sbs,anaglyph,depth", *device_name = "auto", *precision = "fp32";
    long threads = 0, max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    infer_opts o = {.out = "."};
    render_cli rcli;
    render_cli_defaults(&rcli);
    cli_option opts[16 + RENDER_CLI_OPTIONS] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled weights/" DEEP3D_BUNDLED_MODEL ")", 0, 0, NULL},
        {"out", CLI_STRING, &o.out, "DIR", "output folder, created if missing (default: the current folder)", 0, 0, NULL},
        {"formats", CLI_STRING, &format_list, "LIST", "comma-separated: right,sbs,anaglyph,depth,ou (default: the first four)", 0, 0, NULL},
        {"swap", CLI_FLAG, &o.swap, NULL, "the right view first (left/right swapped): cross-eyed viewing", 0, 0, NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"precision", CLI_STRING, &precision, "P", "fp32 (default), tf32 or bf16 (CUDA only)", 0, 0, "fp32|tf32|bf16"},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {"max-pixels", CLI_INT, &max_pixels, "N", "refuse images of more pixels, before decoding (default: 100000000)", 1, 4e12, NULL},
    };
    render_cli_add(opts, 8, &rcli);
    const char *images[4096];
    int n_images;
    int rc = cli_parse("infer", "[options] IMAGE...", opts, argc, argv, images, 4096, &n_images);
    if (rc) return rc > 0 ? 0 : 2;
    if (!n_images) return cli_error("infer", "no input images (usage: deep3d infer [options] IMAGE...)"), 2;
    nn_device device;
    render_config_default(&o.render);
    render_cli_apply(&rcli, &o.render);
    if (parse_formats(format_list, &o.mask)) return cli_error("infer", "%s", nn_last_error()), 2;
    if (deep3d_setup_device(device_name, precision, 0, &device)) return cli_error("infer", "%s", nn_last_error());
    image_set_max_pixels(max_pixels);
    deep3d_set_threads(threads);
    if (!model_path && !(model_path = deep3d_bundled_model()))
        return cli_error("infer", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    if (mkdir(o.out, 0777) && errno != EEXIST)
        return cli_error("infer", "cannot create output folder %s: %s", o.out, strerror(errno));
    deep3d_model m;
    if (deep3d_model_load(&m, model_path, device)) return cli_error("infer", "%s", nn_last_error());
    int failed;
#ifdef NN_WITH_CUDA
    if (device == NN_CUDA) failed = convert_cuda(&m, images, n_images, &o);
    else
#endif
        failed = convert_cpu(&m, images, n_images, &o);
    deep3d_model_free(&m);
    if (failed && n_images > 1) cli_error("infer", "%d of %d images failed", failed, n_images);
    return failed ? 1 : 0;
}
