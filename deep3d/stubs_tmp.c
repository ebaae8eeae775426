#include "commands.h"
#include <stdio.h>
int cmd_train(int argc, char **argv) { (void)argc; (void)argv; fputs("train: not yet\n", stderr); return 1; }
int cmd_infer(int argc, char **argv) { (void)argc; (void)argv; fputs("infer: not yet\n", stderr); return 1; }
int cmd_eval(int argc, char **argv) { (void)argc; (void)argv; fputs("eval: not yet\n", stderr); return 1; }
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fputs("bench: not yet\n", stderr); return 1; }
