/* Command-line parsing shared by the subcommands: a table of options, "--name value"
 * or "--name=value", typed and range-checked, unknown options and impossible values
 * rejected with one line naming the option. Source: our own (getopt_long cannot give
 * per-option ranges and repeated list options in one table). */
#ifndef DEEP3D_CLI_H
#define DEEP3D_CLI_H

#include <stdio.h>

typedef enum {
    CLI_FLAG,    /* int *: set to 1 */
    CLI_INT,     /* long *: integer in [min, max] */
    CLI_DOUBLE,  /* double *: number in [min, max] */
    CLI_STRING,  /* const char **: any text, or one of `choices` ("a|b|c") when set */
    CLI_LIST,    /* cli_list *: repeatable, each value appended */
} cli_kind;

#define CLI_MAX_LIST 32
typedef struct cli_list {
    int n;
    const char *items[CLI_MAX_LIST];
} cli_list;

typedef struct cli_option {
    const char *name;     /* without the dashes: "steps" */
    cli_kind kind;
    void *dest;
    const char *metavar;  /* "N", "DIR", ... */
    const char *help;
    double min, max;      /* CLI_INT / CLI_DOUBLE range (inclusive) */
    const char *choices;  /* CLI_STRING: "released|vgg16", or NULL */
} cli_option;

/* Parses argv[1..argc-1] of subcommand `cmd`. Positional arguments are collected in
 * `positional` (capacity max_positional). "--help"/"-h" prints the usage to stdout and
 * returns 1. Returns 0 on success, or -1 after printing one error line to stderr
 * ("deep3d CMD: ..."). */
int cli_parse(const char *cmd, const char *synopsis, const cli_option *opts, int argc, char **argv,
              const char **positional, int max_positional, int *n_positional);

/* Checks a value for option o as cli_parse does (integer or number in [min, max], one
 * of the choices), without storing it: 0, or -1 with "--NAME must be ..., got 'V'" in
 * why (size bytes). Used to validate settings read back from a checkpoint. */
int cli_check_value(const cli_option *o, const char *value, char *why, size_t size);

/* The option of that name (len characters of name, no dashes), or NULL. */
const cli_option *cli_find(const cli_option *opts, const char *name, size_t len);

/* 1 when option `name` appears in argv[1..argc-1] as cli_parse reads it (values of
 * other options and arguments after "--" are not taken for options), else 0. */
int cli_given(const cli_option *opts, int argc, char **argv, const char *name);

/* Prints "usage: deep3d CMD SYNOPSIS" and the option table. */
void cli_usage(FILE *out, const char *cmd, const char *synopsis, const cli_option *opts);

/* Prints "deep3d CMD: <message>" to stderr and returns 1 (the exit status of a
 * runtime failure; usage errors return 2: deep3d/commands.h). */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 when stderr is a terminal (progress lines then redraw in place). */
int cli_is_tty(void);

#endif
