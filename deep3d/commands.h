/* The subcommands of the deep3d binary. Each takes the subcommand's argv (argv[0] is
 * the subcommand name) and returns the process exit status: 0 on success, 1 on any
 * error (after printing one line "deep3d CMD: what went wrong" to stderr), 2 for bad
 * usage. */
#ifndef DEEP3D_COMMANDS_H
#define DEEP3D_COMMANDS_H

int cmd_train(int argc, char **argv);   /* train/train.c */
int cmd_infer(int argc, char **argv);   /* infer/infer.c */
int cmd_eval(int argc, char **argv);    /* deep3d/eval.c */
int cmd_bench(int argc, char **argv);   /* deep3d/bench.c */
int cmd_dataset(int argc, char **argv); /* deep3d/dataset_cmd.c */
int cmd_video(int argc, char **argv);   /* infer/video.c */


#endif
