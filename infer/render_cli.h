/* The rendering options shared by deep3d infer, eval and video, so every command
 * renders alike: --render, --strength, --convergence and the warp renderer's settings
 * (render.h's render_config documents each). */
#ifndef INFER_RENDER_CLI_H
#define INFER_RENDER_CLI_H

#include "../deep3d/cli.h"
#include "render.h"

typedef struct render_cli {
    const char *render, *disparity, *interp;
    double strength, convergence, refine_radius, refine_eps, snap_radius, snap_kappa, gap;
} render_cli;

/* The defaults of render_config_default (render warp, disparity mean, interp cubic,
 * strength 1, no convergence, refine radius 4, eps 1e-3, gap 1). */
void render_cli_defaults(render_cli *r);

/* Appends the options to opts (which holds n entries and room for
 * RENDER_CLI_OPTIONS more); returns the new count. The caller ends the table. */
#define RENDER_CLI_OPTIONS 10
int render_cli_add(cli_option *opts, int n, render_cli *r);

/* Copies the parsed options into cfg's rendering fields. Returns 0 (the option table
 * has already checked names and ranges). */
int render_cli_apply(const render_cli *r, render_config *cfg);

#endif
