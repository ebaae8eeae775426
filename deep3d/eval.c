/* deep3d eval: how well a model predicts the right view of stereo pairs it has not
 * seen, next to the identity and global-disparity baselines (DEEP3D.md "Evaluation and
 * baselines"): the mean absolute error (0..255), SSIM against the true right view, and
 * the detail kept (deep3d/metrics.h), per pair and summarised.
 * --resolution network (default): centre crops resized to the network input, one
 * window; --resolution source: each pair at its own size, rendered exactly as
 * deep3d infer renders (same code, same --render settings).
 * The global shift is the one deep3d train fitted on its training pairs (stored in the
 * model file); for a model file without it, the best shift on the evaluated pairs
 * themselves is used and reported as such. */
#include <stdio.h>
#include <string.h>

#include "../data/image.h"
#include "../infer/infer.h"
#include "../infer/render_cli.h"
#include "cli.h"
#include "commands.h"
#include "evaluate.h"
#include "runtime.h"

/* A JSON string value: the name with quotes and backslashes escaped, controls dropped. */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

static void print_json(const eval_report *r, const deep3d_config *cfg, int oracle, const char *resolution,
                       const char *render) {
    printf("{\"pairs\": %d, \"resolution\": \"%s\", \"render\": \"%s\", \"mae_model\": %.6f, \"mae_identity\": %.6f, "
           "\"mae_global\": %.6f, \"ssim_model\": %.6f, \"ssim_identity\": %.6f, \"ssim_global\": %.6f, "
           "\"detail_model_median\": %.6f, \"detail_model_min\": %.6f, \"global_disparity\": %d, "
           "\"global_disparity_from\": \"%s\", \"network\": \"%dx%d\", \"rows\": [",
           r->pairs, resolution, render, r->mae_model, r->mae_identity, r->mae_global, r->ssim_model, r->ssim_identity,
           r->ssim_global, r->detail_model_median, r->detail_model_min, r->global_disparity,
           oracle ? "evaluated pairs" : "training pairs", cfg->width, cfg->height);
    for (int i = 0; i < r->pairs; i++) {
        const eval_pair *e = &r->rows[i];
        printf("%s{\"name\": ", i ? ", " : "");
        json_string(e->name);
        printf(", \"width\": %d, \"height\": %d, \"mae_model\": %.6f, \"mae_identity\": %.6f, \"mae_global\": %.6f, "
               "\"ssim_model\": %.6f, \"ssim_identity\": %.6f, \"ssim_global\": %.6f, \"detail_model\": %.6f, "
               "\"detail_true\": %.6f}",
               e->w, e->h, e->mae_model, e->mae_identity, e->mae_global, e->ssim_model, e->ssim_identity, e->ssim_global,
               e->detail_model, e->detail_true);
    }
    printf("]}\n");
}

static void print_table(const eval_report *r, int oracle, const char *resolution, const char *render) {
    printf("%-24s %9s %8s %8s %8s %8s %8s %8s %8s\n", "pair", "size", "MAE", "ident.", "global", "SSIM", "ident.",
           "global", "detail");
    for (int i = 0; i < r->pairs; i++) {
        const eval_pair *e = &r->rows[i];
        char size[32];
        snprintf(size, sizeof size, "%dx%d", e->w, e->h);
        printf("%-24.24s %9s %8.3f %8.3f %8.3f %8.4f %8.4f %8.4f %8.3f\n", e->name, size, e->mae_model, e->mae_identity,
               e->mae_global, e->ssim_model, e->ssim_identity, e->ssim_global, e->detail_model);
    }
    printf("%d pairs at the %s resolution, %s rendering: MAE (0..255) model %.3f, identity %.3f, global disparity %d px "
           "%.3f%s; SSIM model %.4f, identity %.4f, global %.4f; detail kept median %.3f, min %.3f\n",
           r->pairs, resolution, render, r->mae_model, r->mae_identity, r->global_disparity, r->mae_global,
           oracle ? " (shift fitted on these pairs: the model file has none)" : "", r->ssim_model, r->ssim_identity,
           r->ssim_global, r->detail_model_median, r->detail_model_min);
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *device_name = "auto", *layout_name = "pairs", *resolution = "network";
    cli_list data = {0};
    long threads = 0, max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    int json = 0;
    render_cli rcli;
    render_cli_defaults(&rcli);
    cli_option opts[12 + RENDER_CLI_OPTIONS] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled one)", 0, 0, NULL},
        {"data", CLI_LIST, &data, "DIR", "stereo pairs to evaluate (repeatable)", 0, 0, NULL},
        {"layout", CLI_STRING, &layout_name, "NAME", "pairs (default), sbs, sbs-half, ou or ou-half", 0, 0, "pairs|sbs|sbs-half|ou|ou-half"},
        {"resolution", CLI_STRING, &resolution, "R",
         "network (default: centre crops at the network's size) or source (each pair at its own size, rendered as "
         "deep3d infer does)", 0, 0, "network|source"},
        {"json", CLI_FLAG, &json, NULL,
         "print one JSON object: mae_/ssim_ model, identity, global; detail_model_median, detail_model_min; rows", 0, 0,
         NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {"max-pixels", CLI_INT, &max_pixels, "N", "refuse images of more pixels, before decoding (default: 100000000)", 1, 4e12, NULL},
    };
    render_cli_add(opts, 8, &rcli);
    const char *pos[1];
    int n_pos;
    int rc = cli_parse("eval", "--model FILE --data DIR [--json]", opts, argc, argv, pos, 0, &n_pos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!data.n) return cli_error("eval", "no --data folder given"), 2;
    if (!model_path && !(model_path = deep3d_bundled_model()))
        return cli_error("eval", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    deep3d_set_threads(threads);
    image_set_max_pixels(max_pixels);
    nn_device device;
    if (nn_device_parse(device_name, &device)) return cli_error("eval", "%s", nn_last_error());
    stereo_dataset *ds = stereo_dataset_open(data.items, data.n, layout_name);
    deep3d_model m;
    if (!ds || deep3d_model_load(&m, model_path, device)) {
        stereo_dataset_free(ds);
        return cli_error("eval", "%s", nn_last_error());
    }
    render_config opts_cfg;
    render_config_default(&opts_cfg);
    render_cli_apply(&rcli, &opts_cfg);
    const render_config cfg = infer_render_config(&m, &opts_cfg);
    int global_d = m.cfg.global_disparity, oracle = !m.cfg.has_global_disparity;
    double unused;
    int skipped = 0;
    eval_report r;
    rc = (oracle && deep3d_fit_global_disparity(ds, m.cfg.width, m.cfg.height, m.cfg.dmin,
                                                m.cfg.dmin + m.cfg.disparities - 1, &global_d, &unused, &skipped, NULL)) ||
         deep3d_evaluate_pairs(&m, ds, &cfg, !strcmp(resolution, "source"), global_d, &r);
    const deep3d_config mcfg = m.cfg;
    deep3d_model_free(&m);
    stereo_dataset_free(ds);
    if (rc) return cli_error("eval", "%s", nn_last_error());
    if (json) print_json(&r, &mcfg, oracle, resolution, rcli.render);
    else print_table(&r, oracle, resolution, rcli.render);
    eval_report_free(&r);
    return 0;
}
