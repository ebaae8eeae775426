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
    {"infer", cmd_infer, "convert images or folders of them to stereo: side-by-side, anaglyph, depth map, ..."},
    {"video", cmd_video, "convert videos to stereo videos, every audio and subtitle stream kept, resumable"},
    {"train", cmd_train, "train Deep3D on left/right stereo pairs"},
    {"eval", cmd_eval, "mean absolute error of a model on stereo pairs, next to the baselines"},
    {"bench", cmd_bench, "time training steps, inference or the data loader"},
    {"dataset", cmd_dataset, "pack stereo pairs into a sharded dataset; split, inspect, verify it"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: deep3d COMMAND [options]   (deep3d COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

/* Threads that spin while they wait take the cores from the threads doing the work.
 * Our OpenMP loops and OpenBLAS's matrix products (its own pthreads) alternate, so
 *  - OpenMP threads spinning between loops took the cores from OpenBLAS: a Deep3D
 *    training step on 2 cores took 11-13 s with spinning threads and 1.9-2.1 s with
 *    sleeping ones (OMP_WAIT_POLICY=passive; bench/README.md);
 *  - OpenBLAS's idle threads spin with sched_yield for 2^28 cycles (its default
 *    THREAD_TIMEOUT) after each product, into our OpenMP loops: with
 *    OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles, its minimum) they sleep at once, and
 *    inference at batch 1 took 0.14-0.17 s against 0.18-0.23 s (6 alternations in one
 *    run), batch 4 0.45-0.56 against 0.60-0.80 s, a training step 1.67-1.85 against
 *    1.72-2.09 s (perf showed 12% of the cycles in sched_yield before).
 * libgomp and OpenBLAS read these variables once, when the process starts, so for the
 * ones the user has not set we set these values and start the program again; if that
 * fails, it goes on with the defaults. */
static void prefer_sleeping_threads(char **argv) {
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) changed |= !setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) changed |= !setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    if (changed) execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    prefer_sleeping_threads(argv);
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
