/* deep3d: automatic 2D-to-3D conversion (Xie, Girshick, Farhadi, Deep3D, ECCV 2016). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"infer", cmd_infer, "convert images to stereo: right view, side-by-side, anaglyph, depth map"},
    {"train", cmd_train, "train Deep3D on left/right stereo pairs"},
    {"eval", cmd_eval, "mean absolute error of a model on stereo pairs, next to the baselines"},
    {"bench", cmd_bench, "time training steps or inference of the real model"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: deep3d COMMAND [options]   (deep3d COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "deep3d: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
