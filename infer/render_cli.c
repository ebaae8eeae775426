#include "render_cli.h"

#include <string.h>

void render_cli_defaults(render_cli *r) {
    render_config d;
    render_config_default(&d);
    r->render = "warp", r->disparity = "mean", r->interp = "cubic";
    r->strength = d.strength, r->convergence = d.convergence, r->refine_radius = d.refine_radius;
    r->refine_eps = d.refine_eps, r->gap = d.gap, r->snap_radius = d.snap_radius, r->snap_kappa = d.snap_kappa;
}

int render_cli_add(cli_option *opts, int n, render_cli *r) {
    const cli_option add[RENDER_CLI_OPTIONS] = {
        {"render", CLI_STRING, &r->render, "MODE",
         "warp (default: one refined disparity per pixel, sharp, occlusion-aware) or blend (the paper's soft "
         "selection of D shifted copies)", 0, 0, "warp|blend"},
        {"strength", CLI_DOUBLE, &r->strength, "X", "scale every disparity: 0 = the left view, 1 = the model's (default)",
         0, 10, NULL},
        {"convergence", CLI_DOUBLE, &r->convergence, "X",
         "put this quantile of the frame's disparities at the screen: 0 = nearest point (all behind), 1 = farthest "
         "(all in front) (default: the model's own)", 0, 1, NULL},
        {"disparity", CLI_STRING, &r->disparity, "KIND",
         "warp: mean (default, the expected disparity), median, or mode (the expected value within the dominant "
         "mode)", 0, 0, "mean|median|mode"},
        {"interp", CLI_STRING, &r->interp, "KIND", "warp: cubic (default), lanczos3 or linear sampling along x", 0, 0,
         "cubic|lanczos3|linear"},
        {"refine-radius", CLI_DOUBLE, &r->refine_radius, "PX",
         "warp: guided-filter radius in network pixels, 0 = no refinement (default: 32)", 0, 1000, NULL},
        {"refine-eps", CLI_DOUBLE, &r->refine_eps, "X", "warp: guided-filter eps on the 0..1 grey guide (default: 0.01)",
         1e-9, 10, NULL},
        {"snap-radius", CLI_DOUBLE, &r->snap_radius, "PX",
         "warp: edge-snapping window radius in network pixels, 0 = off (default: 1)", 0, 1000, NULL},
        {"snap-kappa", CLI_DOUBLE, &r->snap_kappa, "X",
         "warp: snap a depth edge where the colours on its sides differ by more than X (0..255, default: 12)", 0, 255,
         NULL},
        {"gap", CLI_DOUBLE, &r->gap, "X",
         "warp: a depth edge stretches a pixel by more than 1 + X pixels; its pixels are filled from the background "
         "(default: 1)", 0, 1000, NULL},
    };
    for (int i = 0; i < RENDER_CLI_OPTIONS; i++) opts[n++] = add[i];
    return n;
}

int render_cli_apply(const render_cli *r, render_config *cfg) {
    cfg->mode = !strcmp(r->render, "blend") ? RENDER_BLEND : RENDER_WARP;
    cfg->disparity = !strcmp(r->disparity, "mode")     ? WARP_DISP_MODE
                     : !strcmp(r->disparity, "median") ? WARP_DISP_MEDIAN
                                                       : WARP_DISP_MEAN;
    cfg->interp = !strcmp(r->interp, "linear") ? WARP_INTERP_LINEAR
                  : !strcmp(r->interp, "lanczos3") ? WARP_INTERP_LANCZOS3
                                                   : WARP_INTERP_CUBIC;
    cfg->strength = r->strength, cfg->convergence = r->convergence, cfg->refine_radius = r->refine_radius;
    cfg->refine_eps = r->refine_eps, cfg->gap = r->gap, cfg->snap_radius = r->snap_radius;
    cfg->snap_kappa = r->snap_kappa;
    return 0;
}
