/* Model files: the configuration of deep3d_config_format() plus every tensor of the model
 * by name, in the deep3d weights format (weights/FORMAT.md, nn/weights.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/weights.h"
#include "model.h"

int deep3d_model_save(const deep3d_model *m, const char *path, int half) {
    char config[512];
    deep3d_config_format(&m->cfg, config, sizeof config);
    const char *names[DEEP3D_MAX_TENSORS];
    for (int i = 0; i < m->n_tensors; i++) names[i] = m->tensors[i]->name;
    return nn_weights_save(path, config, m->tensors, names, m->n_tensors, half ? NN_WEIGHTS_F16 : NN_WEIGHTS_F32);
}

/* Reads the model configuration of an open weights file. */
static int read_config(const nn_weights_file *f, deep3d_config *c) {
    const char *model = nn_weights_config_get(f, "model"), *variant;
    long width, height, disparities, dmin, width_div;
    if (!model || strcmp(model, "deep3d"))
        return nn_fail("%s: weights file holds no deep3d model (config key model=deep3d missing)", nn_weights_path(f));
    if (nn_weights_config_str(f, "variant", &variant) || nn_weights_config_int(f, "width", &width) ||
        nn_weights_config_int(f, "height", &height) || nn_weights_config_int(f, "disparities", &disparities) ||
        nn_weights_config_int(f, "dmin", &dmin) || nn_weights_config_int(f, "width_div", &width_div))
        return -1;
    memset(c, 0, sizeof *c);
    snprintf(c->variant, sizeof c->variant, "%s", variant);
    c->width = (int)width, c->height = (int)height, c->disparities = (int)disparities;
    c->dmin = (int)dmin, c->width_div = (int)width_div;
    const char *global = nn_weights_config_get(f, "global_disparity");
    if (global) {
        c->has_global_disparity = 1;
        c->global_disparity = atoi(global);
    }
    if (deep3d_config_check(c)) return nn_fail_context("%s: bad model configuration", nn_weights_path(f));
    return 0;
}

int deep3d_model_read(deep3d_model *m, const nn_weights_file *f, nn_device device) {
    deep3d_config cfg;
    if (read_config(f, &cfg) || deep3d_model_alloc(m, &cfg, device)) return -1;
    for (int i = 0; i < m->n_tensors; i++)
        if (nn_weights_read(f, m->tensors[i]->name, m->tensors[i])) {
            deep3d_model_free(m);
            return -1;
        }
    return 0;
}

int deep3d_model_load(deep3d_model *m, const char *path, nn_device device) {
    nn_weights_file *f = nn_weights_open(path);
    if (!f) return -1;
    int rc = deep3d_model_read(m, f, device);
    nn_weights_close(f);
    return rc;
}
