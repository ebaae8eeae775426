/* deep3d: automatic 2D-to-3D conversion (Xie, Girshick, Farhadi, Deep3D, ECCV 2016). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* OpenMP threads that spin while they wait take the cores from OpenBLAS's own threads
 * (its matrix products run between our OpenMP loops): a Deep3D training step on 2 cores
 * took 11-13 s with spinning threads and 1.9-2.1 s with sleeping ones, measured
 * alternately in one run (bench/README.md). libgomp reads OMP_WAIT_POLICY once, when the
 * process starts, so when the user has not chosen a policy we set "passive" and start
 * the program again; if that fails, it goes on with the default. */
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1)) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    prefer_passive_openmp(argv);
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
