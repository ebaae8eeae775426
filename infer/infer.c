/* deep3d infer: converts images to stereo with a trained model.
 * For each input NAME.ext it writes into --out (a subfolder of it for images found below
 * an input folder) one file per --formats entry, every layout of infer/layouts.h:
 * NAME_<layout>.png (NAME_right.png, NAME_sbs.png, NAME_sbs-half.png, NAME_ou.png, ...),
 * NAME_depth.jpg with --depth-format jpg (the name Facebook's 3D photos read beside
 * NAME.jpg), and NAME_wiggle.gif (the two views in turn). Every file is written to a
 * temporary name and renamed; a file that exists is kept (the image is skipped when all
 * of its outputs exist) unless --overwrite. One image failing does not stop the others;
 * a summary line counts converted, skipped and failed images.
 *
 * Frames with letterbox bars (--letterbox detect, the default): the picture inside the
 * bars is converted and the bars are copied into both views (infer_render_boxed).
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

#include "../data/files.h"
#include "../data/gif.h"
#include "../data/image.h"
#include "../deep3d/cli.h"
#include "../deep3d/commands.h"
#include "../deep3d/model.h"
#include "../deep3d/runtime.h"
#include "../nn/atomic_file.h"
#include "infer.h"
#include "layouts.h"
#include "render.h"
#include "render_cli.h"
#ifdef NN_WITH_CUDA
#include "render_cuda.h"
#endif

/* How long each view of a wiggle GIF shows, in hundredths of a second. */
#define WIGGLE_DELAY_CS 12

/* Image names a folder is searched for (stb_image's formats). */
#define INFER_PATTERNS "*.jpg,*.jpeg,*.png,*.bmp,*.tga,*.gif,*.psd,*.hdr,*.pic,*.ppm,*.pgm,*.pnm"

int infer_run_window(void *ctx, const nn_real *window, nn_real *prob) {
    deep3d_model *m = ctx;
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
int infer_run_windows_gpu(void *ctx, nn_tensor *windows, nn_tensor **prob) {
    deep3d_model *m = ctx;
    nn_graph g;
    nn_graph_init(&g, 0);
    *prob = NULL;
    int rc = deep3d_forward(m, &g, windows, NULL, prob);
    nn_graph_free(&g);
    return rc ? -1 : 0;
}
#endif

render_config infer_render_config(const deep3d_model *m, const render_config *opts) {
    render_config cfg = *opts;
    cfg.net_w = m->cfg.width, cfg.net_h = m->cfg.height, cfg.D = m->cfg.disparities, cfg.dmin = m->cfg.dmin;
    return cfg;
}

int infer_render(deep3d_model *m, const render_config *cfg, const nn_real *left, int H, int W, nn_real *right,
                 nn_real *disp, render_info *info) {
#ifdef NN_WITH_CUDA
    if (m->device == NN_CUDA) return render_image_cuda(right, disp, info, cfg, infer_run_windows_gpu, m, left, H, W);
#endif
    return render_image(right, disp, info, cfg, infer_run_window, m, left, H, W);
}

int infer_render_boxed(deep3d_model *m, const render_config *cfg, const nn_real *left, int H, int W,
                       const letterbox *box, nn_real *right, nn_real *disp, render_info *info) {
    if (letterbox_is_full(box, H, W)) return infer_render(m, cfg, left, H, W, right, disp, info);
    const size_t n = (size_t)box->w * box->h;
    nn_real *buf = malloc(7 * n * sizeof *buf);
    if (!buf) return nn_fail("infer: out of memory for a %d x %d picture", box->w, box->h);
    nn_real *l = buf, *r = buf + 3 * n, *d = buf + 6 * n;
    letterbox_crop(l, left, 3, H, W, box);
    int rc = infer_render(m, cfg, l, box->h, box->w, r, d, info);
    if (rc == 0) {
        memcpy(right, left, (size_t)3 * H * W * sizeof *right);
        letterbox_paste(right, r, 3, H, W, box);
        if (disp) {
            memset(disp, 0, (size_t)H * W * sizeof *disp);
            letterbox_paste(disp, d, 1, H, W, box);
        }
    }
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- outputs */

/* What to write, and how. */
typedef struct infer_opts {
    const char *out;    /* output folder */
    unsigned mask;      /* 1 << LAYOUT_* */
    int swap, anaglyph, depth_jpg, letterbox, overwrite;
    render_config render;
} infer_opts;

/* OUT[/REL]/STEM_<layout>.<ext> of one output. */
static void output_path(char *buf, size_t size, const infer_opts *o, const char *rel, const char *stem, int kind) {
    char name[512];
    const char *ext = kind == LAYOUT_WIGGLE ? "gif" : kind == LAYOUT_DEPTH && o->depth_jpg ? "jpg" : "png";
    snprintf(name, sizeof name, "%s_%s.%s", stem, layout_name(kind), ext);
    files_join(buf, size, o->out, rel, name);
}

/* One input image on its way: loaded, rendered, saved. A failed step keeps its
 * message in err (later steps of other images overwrite nn_last_error). */
typedef struct frame {
    const char *path, *rel;
    char stem[256];
    unsigned todo;           /* outputs to write: missing, or all with --overwrite */
    image *left;
    nn_real *right, *disp;   /* (3, H, W), (H, W) */
    letterbox box;           /* the picture inside the bars */
    nn_real *crop;           /* (3 + 3 + 1, box.h, box.w) left, right, disp of the box, when
                              * it is not the whole frame (the CUDA path renders it) */
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
    free(f->right), free(f->disp), free(f->crop);
    image_free(f->left);
    memset(f, 0, sizeof *f);
}

/* Which outputs of the image are to be written (f->todo). */
static void frame_plan(frame *f, const infer_opts *o) {
    deep3d_stem(f->path, f->stem, sizeof f->stem);
    f->todo = 0;
    for (int k = 0; k < LAYOUT_COUNT; k++) {
        if (!(o->mask & (1u << k))) continue;
        char path[4096];
        output_path(path, sizeof path, o, f->rel, f->stem, k);
        if (o->overwrite || !files_exists(path)) f->todo |= 1u << k;
    }
}

/* Decodes the image, finds its bars and allocates its outputs; f->ok says whether it
 * worked. */
static void frame_load(frame *f, const files_item *in, const infer_opts *o) {
    memset(f, 0, sizeof *f);
    f->path = in->path, f->rel = in->rel, f->ok = 1, f->t0 = deep3d_now();
    frame_plan(f, o);
    if (!f->todo) return;
    if (!(f->left = image_load(f->path))) {
        frame_fail(f);
        return;
    }
    const int W = f->left->w, H = f->left->h;
    f->box = letterbox_full(H, W);
    if (o->letterbox) letterbox_detect(&f->box, f->left->data, H, W);
    f->right = malloc((size_t)3 * H * W * sizeof *f->right), f->disp = malloc((size_t)H * W * sizeof *f->disp);
    if (!f->right || !f->disp) {
        nn_fail("out of memory for a %dx%d image", W, H);
        frame_fail(f);
    }
}

/* Writes the requested outputs of a rendered frame and prints its line. */
static int frame_save(frame *f, const deep3d_model *m, const infer_opts *o) {
    const int W = f->left->w, H = f->left->h;
    const layout_input in = {f->left->data, f->right, f->disp, H, W, m->cfg.disparities, m->cfg.dmin,
                             f->info.scale, o->anaglyph, o->swap};
    char dir[4096];
    if (f->rel[0]) snprintf(dir, sizeof dir, "%s/%s", o->out, f->rel);
    else snprintf(dir, sizeof dir, "%s", o->out);
    if (files_mkdirs(dir)) return -1;
    uint8_t *buf = malloc((size_t)6 * H * W), *second = NULL;
    if (!buf) return nn_fail("out of memory for a %dx%d image", W, H);
    int rc = 0;
    for (int k = 0; k < LAYOUT_COUNT && rc == 0; k++) {
        if (!(f->todo & (1u << k))) continue;
        char path[4096];
        output_path(path, sizeof path, o, f->rel, f->stem, k);
        if (k == LAYOUT_WIGGLE) {
            if (!second && !(second = malloc((size_t)3 * H * W))) {
                rc = nn_fail("out of memory for a %dx%d image", W, H);
                break;
            }
            layout_view_bytes(buf, o->swap ? f->right : f->left->data, H, W);
            layout_view_bytes(second, o->swap ? f->left->data : f->right, H, W);
            const uint8_t *frames[2] = {buf, second};
            rc = gif_write_animation(path, frames, 2, W, H, WIGGLE_DELAY_CS, o->overwrite);
            continue;
        }
        int ow, oh;
        rc = layout_size(k, W, H, &ow, &oh) || layout_compose(buf, k, &in) ||
             image_write_rgb8(path, buf, ow, oh, k == LAYOUT_DEPTH && o->depth_jpg ? IMAGE_JPEG : IMAGE_PNG,
                              o->overwrite);
    }
    free(buf), free(second);
    if (rc) return -1;
    char bars[64] = "";
    if (!letterbox_is_full(&f->box, H, W))
        snprintf(bars, sizeof bars, ", bars excluded (picture %dx%d)", f->box.w, f->box.h);
    printf("%s: %dx%d%s, %d network window%s, %.2f s -> %s/%s_*\n", f->path, W, H, bars, f->info.n_windows,
           f->info.n_windows == 1 ? "" : "s", deep3d_now() - f->t0, dir, f->stem);
    return 0;
}

/* Counts a finished image and reports a failure (one line). */
typedef struct tally {
    int converted, skipped, failed;
} tally;

static void frame_report(const frame *f, tally *t) {
    if (!f->ok) {
        cli_error("infer", "%s", f->err);
        t->failed++;
    } else if (!f->todo) {
        printf("%s: skipped (its outputs exist; --overwrite replaces them)\n", f->path);
        t->skipped++;
    } else {
        t->converted++;
    }
}

/* CPU: one image after the other, the network one window at a time. */
static void convert_cpu(deep3d_model *m, const files_list *in, const infer_opts *o, tally *t) {
    const render_config cfg = infer_render_config(m, &o->render);
    for (int i = 0; i < in->n; i++) {
        frame f;
        frame_load(&f, &in->items[i], o);
        if (f.ok && f.todo &&
            infer_render_boxed(m, &cfg, f.left->data, f.left->h, f.left->w, &f.box, f.right, f.disp, &f.info))
            frame_fail(&f);
        if (f.ok && f.todo && frame_save(&f, m, o)) frame_fail(&f);
        frame_report(&f, t);
        frame_free(&f);
    }
}

#ifdef NN_WITH_CUDA
/* Decodes the image, cuts out the picture inside its bars, and starts its upload
 * (render_cuda_prepare). */
static void gpu_prepare(frame *f, const files_item *in, const render_config *cfg, const infer_opts *o) {
    frame_load(f, in, o);
    if (!f->ok || !f->todo) return;
    const int H = f->left->h, W = f->left->w;
    const nn_real *src = f->left->data;
    if (!letterbox_is_full(&f->box, H, W)) {
        if (!(f->crop = malloc((size_t)7 * f->box.w * f->box.h * sizeof *f->crop))) {
            nn_fail("out of memory for a %dx%d picture", f->box.w, f->box.h);
            frame_fail(f);
            return;
        }
        letterbox_crop(f->crop, src, 3, H, W, &f->box);
        src = f->crop;
    }
    if (render_cuda_prepare(&f->job, cfg, src, f->box.h, f->box.w)) frame_fail(f);
}

/* Waits for the GPU, downloads, and puts the picture back between its bars. */
static void gpu_finish(frame *f) {
    render_cuda_job *job = f->job;
    f->job = NULL; /* finish frees it */
    const int H = f->left->h, W = f->left->w;
    if (!f->crop) {
        if (render_cuda_finish(job, f->right, f->disp, &f->info)) frame_fail(f);
        return;
    }
    const size_t n = (size_t)f->box.w * f->box.h;
    if (render_cuda_finish(job, f->crop + 3 * n, f->crop + 6 * n, &f->info)) {
        frame_fail(f);
        return;
    }
    memcpy(f->right, f->left->data, (size_t)3 * H * W * sizeof *f->right);
    memset(f->disp, 0, (size_t)H * W * sizeof *f->disp);
    letterbox_paste(f->right, f->crop + 3 * n, 3, H, W, &f->box);
    letterbox_paste(f->disp, f->crop + 6 * n, 1, H, W, &f->box);
}

/* CUDA: the pipeline described at the top of this file. */
static void convert_cuda(deep3d_model *m, const files_list *in, const infer_opts *o, tally *t) {
    const render_config cfg = infer_render_config(m, &o->render);
    frame a, b, *cur = &a, *next = &b;
    const int n = in->n;
    gpu_prepare(cur, &in->items[0], &cfg, o);
    if (cur->ok && cur->todo && render_cuda_launch(cur->job, infer_run_windows_gpu, m)) frame_fail(cur);
    for (int i = 0; i < n; i++) {
        if (i + 1 < n) gpu_prepare(next, &in->items[i + 1], &cfg, o); /* while the GPU works on image i */
        if (cur->ok && cur->todo) gpu_finish(cur);
        if (i + 1 < n && next->ok && next->todo && render_cuda_launch(next->job, infer_run_windows_gpu, m))
            frame_fail(next);
        if (cur->ok && cur->todo && frame_save(cur, m, o)) frame_fail(cur); /* while the GPU works on image i+1 */
        frame_report(cur, t);
        frame_free(cur);
        frame *tmp = cur;
        cur = next, next = tmp;
    }
}
#endif

/* Two inputs whose outputs would have the same names (d1/same.png and d2/same.jpg both
 * make OUT/same_*.png): 1 and the first such pair (*first, *second: indices into in),
 * found by sorting "rel/stem" keys; 0 if none; -1 + nn_fail when out of memory. */
typedef struct out_key {
    char key[4096 + 256];
    int item;
} out_key;

static int cmp_out_key(const void *a, const void *b) {
    const out_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->item - y->item;
}

static int same_outputs(const files_list *in, int *first, int *second) {
    out_key *k = malloc(sizeof *k * (size_t)(in->n ? in->n : 1));
    if (!k) return nn_fail("infer: out of memory for %d output names", in->n);
    for (int i = 0; i < in->n; i++) {
        char stem[256];
        deep3d_stem(in->items[i].path, stem, sizeof stem);
        snprintf(k[i].key, sizeof k[i].key, "%s/%s", in->items[i].rel, stem);
        k[i].item = i;
    }
    qsort(k, (size_t)in->n, sizeof *k, cmp_out_key);
    int found = 0;
    for (int i = 1; i < in->n && !found; i++)
        if (!strcmp(k[i - 1].key, k[i].key)) *first = k[i - 1].item, *second = k[i].item, found = 1;
    free(k);
    return found;
}

int cmd_infer(int argc, char **argv) {
    const char *model_path = NULL, *format_list = "right,sbs,anaglyph,depth", *device_name = "auto",
               *precision = "fp32", *anaglyph = "dubois", *depth_format = "png", *letterbox_mode = "detect",
               *patterns = INFER_PATTERNS;
    long threads = 0, max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    infer_opts o = {.out = "."};
    render_cli rcli;
    render_cli_defaults(&rcli);
    cli_option opts[20 + RENDER_CLI_OPTIONS] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled weights/" DEEP3D_BUNDLED_MODEL ")", 0, 0, NULL},
        {"out", CLI_STRING, &o.out, "DIR", "output folder, created if missing (default: the current folder)", 0, 0, NULL},
        {"formats", CLI_STRING, &format_list, "LIST",
         "comma-separated layouts: right, sbs, sbs-half, ou, ou-half, anaglyph, cross, depth, rgbd, wiggle (default: "
         "right,sbs,anaglyph,depth); each writes NAME_<layout>.png (wiggle: .gif)", 0, 0, NULL},
        {"anaglyph", CLI_STRING, &anaglyph, "METHOD", "dubois (default), color, half-color or gray", 0, 0,
         "dubois|color|half-color|gray"},
        {"depth-format", CLI_STRING, &depth_format, "EXT",
         "png (default) or jpg: NAME_depth.jpg at the photo's size, the name Facebook 3D photos read", 0, 0, "png|jpg"},
        {"swap", CLI_FLAG, &o.swap, NULL, "the right view first (left/right swapped): cross-eyed viewing", 0, 0, NULL},
        {"letterbox", CLI_STRING, &letterbox_mode, "MODE",
         "detect (default): black bars found and copied into both views, the picture inside converted; off: the "
         "whole frame", 0, 0, "detect|off"},
        {"overwrite", CLI_FLAG, &o.overwrite, NULL, "replace outputs that exist (default: keep them, skip the image)",
         0, 0, NULL},
        {"pattern", CLI_STRING, &patterns, "GLOBS",
         "file names searched for in input folders, comma-separated, any letter case (default: the image types)", 0,
         0, NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"precision", CLI_STRING, &precision, "P", "fp32 (default), tf32 or bf16 (CUDA only)", 0, 0, "fp32|tf32|bf16"},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {"max-pixels", CLI_INT, &max_pixels, "N", "refuse images of more pixels, before decoding (default: 100000000)", 1, 4e12, NULL},
    };
    render_cli_add(opts, 13, &rcli);
    const char *args[4096];
    int n_args;
    int rc = cli_parse("infer", "[options] IMAGE|FOLDER...", opts, argc, argv, args, 4096, &n_args);
    if (rc) return rc > 0 ? 0 : 2;
    if (!n_args) return cli_error("infer", "no input images (usage: deep3d infer [options] IMAGE|FOLDER...)"), 2;
    nn_device device;
    render_config_default(&o.render);
    render_cli_apply(&rcli, &o.render);
    o.anaglyph = anaglyph_parse(anaglyph), o.depth_jpg = !strcmp(depth_format, "jpg");
    o.letterbox = !strcmp(letterbox_mode, "detect");
    if (layout_parse_list(format_list, &o.mask)) return cli_error("infer", "--formats: %s", nn_last_error()), 2;
    if (deep3d_setup_device(device_name, precision, 0, &device)) return cli_error("infer", "%s", nn_last_error());
    image_set_max_pixels(max_pixels);
    deep3d_set_threads(threads);
    if (!model_path && !(model_path = deep3d_bundled_model()))
        return cli_error("infer", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    if (files_mkdirs(o.out)) return cli_error("infer", "cannot create output folder %s: %s", o.out, nn_last_error());
    files_list in = {0};
    tally t = {0};
    for (int i = 0; i < n_args; i++)
        if (files_list_add(&in, args[i], patterns, o.out)) { /* a missing input counts as a failed image */
            cli_error("infer", "image: %s", nn_last_error());
            t.failed++;
        }
    int a = 0, b = 0, dup = same_outputs(&in, &a, &b);
    if (dup < 0) {
        files_list_free(&in);
        return cli_error("infer", "%s", nn_last_error());
    }
    if (dup) {
        char stem[256];
        deep3d_stem(in.items[a].path, stem, sizeof stem);
        cli_error("infer", "'%s' and '%s' would write the same outputs (%s_*); give them different names or "
                  "convert them into different --out folders", in.items[a].path, in.items[b].path, stem);
        files_list_free(&in);
        return 2;
    }
    if (nn_check_writable_folder(o.out)) { /* before any image is computed */
        files_list_free(&in);
        return cli_error("infer", "%s", nn_last_error());
    }
    deep3d_model m;
    if (in.n > 0 && deep3d_model_load(&m, model_path, device)) {
        files_list_free(&in);
        return cli_error("infer", "%s", nn_last_error());
    }
    if (in.n > 0) {
#ifdef NN_WITH_CUDA
        if (device == NN_CUDA) convert_cuda(&m, &in, &o, &t);
        else
#endif
            convert_cpu(&m, &in, &o, &t);
        deep3d_model_free(&m);
    }
    const int total = t.converted + t.skipped + t.failed;
    printf("infer: %d converted, %d skipped, %d failed\n", t.converted, t.skipped, t.failed);
    if (t.failed && total > 1) cli_error("infer", "%d of %d images failed", t.failed, total);
    files_list_free(&in);
    return t.failed ? 1 : 0;
}
