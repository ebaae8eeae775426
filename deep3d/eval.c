/* deep3d eval: the MAE (0..255) of a model's predicted right view on stereo pairs, at
 * the network resolution, next to the identity and global-disparity baselines
 * (DEEP3D.md "Evaluation and baselines"). The global shift is the one deep3d train
 * fitted on its training pairs (stored in the model file); for a model file without it,
 * the best shift on the evaluated pairs themselves is used and reported as such. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "evaluate.h"
#include "runtime.h"

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *device_name = "auto", *layout_name = "pairs";
    cli_list data = {0};
    long threads = 0;
    int json = 0;
    const cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "FILE", "model file (default: the bundled one)", 0, 0, NULL},
        {"data", CLI_LIST, &data, "DIR", "stereo pairs to evaluate (repeatable)", 0, 0, NULL},
        {"layout", CLI_STRING, &layout_name, "NAME", "pairs (default), sbs, sbs-half, ou or ou-half", 0, 0, "pairs|sbs|sbs-half|ou|ou-half"},
        {"json", CLI_FLAG, &json, NULL, "print one JSON object: pairs, mae_model, mae_identity, mae_global", 0, 0, NULL},
        {"device", CLI_STRING, &device_name, "DEV", "cpu, cuda or auto (default: auto)", 0, 0, "cpu|cuda|auto"},
        {"threads", CLI_INT, &threads, "N", "CPU threads (default: all cores)", 1, 1024, NULL},
        {0},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse("eval", "--model FILE --data DIR [--json]", opts, argc, argv, pos, 0, &n_pos);
    if (rc) return rc > 0 ? 0 : 2;
    if (!data.n) return cli_error("eval", "no --data folder given"), 2;
    if (!model_path && !(model_path = deep3d_bundled_model()))
        return cli_error("eval", "no --model given and the bundled model weights/%s was not found", DEEP3D_BUNDLED_MODEL);
    deep3d_set_threads(threads);
    nn_device device;
    if (nn_device_parse(device_name, &device)) return cli_error("eval", "%s", nn_last_error());
    stereo_dataset *ds = stereo_dataset_open(data.items, data.n, layout_name);
    deep3d_model m;
    if (!ds || deep3d_model_load(&m, model_path, device)) {
        stereo_dataset_free(ds);
        return cli_error("eval", "%s", nn_last_error());
    }
    int global_d = m.cfg.global_disparity, oracle = !m.cfg.has_global_disparity;
    double unused;
    int skipped = 0;
    eval_result r;
    rc = (oracle && deep3d_fit_global_disparity(ds, m.cfg.width, m.cfg.height, m.cfg.dmin,
                                                m.cfg.dmin + m.cfg.disparities - 1, &global_d, &unused, &skipped, NULL)) ||
         deep3d_evaluate(&m, ds, global_d, &r);
    const deep3d_config cfg = m.cfg;
    deep3d_model_free(&m);
    stereo_dataset_free(ds);
    if (rc) return cli_error("eval", "%s", nn_last_error());
    if (json)
        printf("{\"pairs\": %d, \"mae_model\": %.6f, \"mae_identity\": %.6f, \"mae_global\": %.6f, "
               "\"global_disparity\": %d, \"global_disparity_from\": \"%s\"}\n",
               r.pairs, r.mae_model, r.mae_identity, r.mae_global, r.global_disparity,
               oracle ? "evaluated pairs" : "training pairs");
    else
        printf("%d pairs at %dx%d, MAE (0..255): model %.3f, identity %.3f, global disparity %d px %.3f%s\n", r.pairs,
               cfg.width, cfg.height, r.mae_model, r.mae_identity, r.global_disparity, r.mae_global,
               oracle ? " (shift fitted on these pairs: the model file has none)" : "");
    return 0;
}
