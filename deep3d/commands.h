/* The subcommands of the deep3d binary. Each takes the subcommand's argv (argv[0] is
 * the subcommand name) and returns the process exit status, after printing one line
 * "deep3d CMD: what went wrong" to stderr on any failure:
 *   0    success (also --help);
 *   2    a usage error: the command line alone is wrong: an unknown command or option,
 *        a value out of range or not among the choices, a missing required option or
 *        argument, a value the command cannot use (an unknown output format);
 *   1    any failure found while running: a missing, unreadable, corrupt or hostile
 *        file, bad data, a checkpoint that disagrees with an explicit option, an
 *        existing run folder without --resume or --overwrite, a full disk, no GPU;
 *   130  deep3d train stopped by SIGINT (Ctrl-C), 143 by SIGTERM (128 + the signal,
 *        as a shell reports a process killed by it) after saving its checkpoint. */
#define DEEP3D_EXIT_FAILURE 1
#define DEEP3D_EXIT_USAGE 2
#ifndef DEEP3D_COMMANDS_H
#define DEEP3D_COMMANDS_H

int cmd_train(int argc, char **argv);   /* train/train.c */
int cmd_infer(int argc, char **argv);   /* infer/infer.c */
int cmd_eval(int argc, char **argv);    /* deep3d/eval.c */
int cmd_bench(int argc, char **argv);   /* deep3d/bench.c */
int cmd_dataset(int argc, char **argv); /* deep3d/dataset_cmd.c */
int cmd_video(int argc, char **argv);   /* infer/video.c */


#endif
