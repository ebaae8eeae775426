/* deep3d infer: converts single images to stereo with a trained model.
 * For each input NAME.ext it writes into --out: NAME_right.png (the predicted right
 * view at the input's own resolution, DEEP3D.md "Rendering at the source resolution"),
 * NAME_sbs.png (full side-by-side, left view on the left), NAME_anaglyph.png (red-cyan),
 * NAME_depth.png (the disparity map, near = bright), and on request NAME_ou.png
 * (over-under). Every file is written to a temporary name and renamed. */
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
#include "render.h"

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

/* Writes a planar (3, h, w) array as OUT/STEM_SUFFIX.png. */
static int save(const char *out, const char *stem, const char *suffix, nn_real *data, int w, int h) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s.png", out, stem, suffix);
    image im = {.w = w, .h = h, .data = data};
    return image_save_png(&im, path);
}

static int convert(deep3d_model *m, const char *in_path, const char *out, int mask) {
    double t0 = deep3d_now();
    image *left = image_load(in_path);
    if (!left) return -1;
    const int W = left->w, H = left->h;
    nn_real *right = malloc((size_t)3 * H * W * sizeof *right), *disp = malloc((size_t)H * W * sizeof *disp);
    nn_real *extra = NULL;
    render_config cfg;
    render_config_default(&cfg);
    cfg.net_w = m->cfg.width, cfg.net_h = m->cfg.height, cfg.D = m->cfg.disparities, cfg.dmin = m->cfg.dmin;
    render_info info;
    net_ctx ctx = {m};
    char stem[256];
    deep3d_stem(in_path, stem, sizeof stem);
    int rc = -1;
    if (!right || !disp) {
        nn_fail("out of memory for a %dx%d image", W, H);
        goto done;
    }
    if (render_image(right, disp, &info, &cfg, run_window, &ctx, left->data, H, W)) goto done;
    if ((mask & FMT_RIGHT) && save(out, stem, "right", right, W, H)) goto done;
    if (mask & FMT_SBS) {
        if (!(extra = render_side_by_side(left->data, right, H, W)) || save(out, stem, "sbs", extra, 2 * W, H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_OU) {
        if (!(extra = render_over_under(left->data, right, H, W)) || save(out, stem, "ou", extra, W, 2 * H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_ANAGLYPH) {
        if (!(extra = render_anaglyph(left->data, right, H, W)) || save(out, stem, "anaglyph", extra, W, H)) goto done;
        free(extra), extra = NULL;
    }
    if (mask & FMT_DEPTH) {
        extra = render_depth_map(disp, H, W, m->cfg.disparities, m->cfg.dmin, info.scale);
        if (!extra || save(out, stem, "depth", extra, W, H)) goto done;
    }
    printf("%s: %dx%d, %d network window%s, %.2f s -> %s/%s_*.png\n", in_path, W, H, info.n_windows,
           info.n_windows == 1 ? "" : "s", deep3d_now() - t0, out, stem);
    rc = 0;
done:
    free(extra), free(right), free(disp);
    image_free(left);
    return rc;
}

int cmd_infer(int argc, char **argv) {
    const char *model_path = NULL, *out = ".", *format_list = "right,sbs,anaglyph,depth", *device_name = "auto", *precision = "fp32";
    long threads = 0;
    const cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled weights/" DEEP3D_BUNDLED_MODEL ")", 0, 0, NULL},
        {"out", CLI_STRING, &out, "DIR", "output folder, created if missing (default: the current folder)", 0, 0, NULL},
        {"formats", CLI_STRING, &format_list, "LIST", "comma-separated: right,sbs,anaglyph,depth,ou (default: the first four)", 0, 0, NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"precision", CLI_STRING, &precision, "P", "fp32 (default), tf32 or bf16 (CUDA only)", 0, 0, "fp32|tf32|bf16"},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {0},
    };
    const char *images[4096];
    int n_images;
    int rc = cli_parse("infer", "[options] IMAGE...", opts, argc, argv, images, 4096, &n_images);
    if (rc) return rc > 0 ? 0 : 2;
    if (!n_images) return cli_error("infer", "no input images (usage: deep3d infer [options] IMAGE...)"), 2;
    int mask;
    nn_device device;
    if (parse_formats(format_list, &mask) || deep3d_setup_device(device_name, precision, 0, &device))
        return cli_error("infer", "%s", nn_last_error());
    deep3d_set_threads(threads);
    if (!model_path && !(model_path = deep3d_bundled_model()))
        return cli_error("infer", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    if (mkdir(out, 0777) && errno != EEXIST)
        return cli_error("infer", "cannot create output folder %s: %s", out, strerror(errno));
    deep3d_model m;
    if (deep3d_model_load(&m, model_path, device)) return cli_error("infer", "%s", nn_last_error());
    int failed = 0;
    for (int i = 0; i < n_images; i++)
        if (convert(&m, images[i], out, mask)) {
            cli_error("infer", "%s", nn_last_error());
            failed++;
        }
    deep3d_model_free(&m);
    if (failed && n_images > 1) cli_error("infer", "%d of %d images failed", failed, n_images);
    return failed ? 1 : 0;
}
