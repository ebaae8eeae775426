/* libFuzzer target: option parsing (deep3d/cli.c): the input, split at NUL bytes, is
 * an argument vector for cli_parse over a table of every option kind (flag, integer,
 * number, string with and without choices, list), then cli_given and cli_check_value
 * on each option (make fuzz runs it with -close_fd_mask=3: the usage and error lines
 * it prints are dropped). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../deep3d/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[40];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0; i <= size && argc < 39;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    int flag = 0;
    long n = 0;
    double x = 0;
    const char *s = NULL, *c = NULL;
    cli_list list = {0};
    const cli_option opts[] = {
        {"flag", CLI_FLAG, &flag, NULL, "a flag", 0, 0, NULL},
        {"n", CLI_INT, &n, "N", "an integer", -5, 1e9, NULL},
        {"x", CLI_DOUBLE, &x, "X", "a number", 1e-12, 10, NULL},
        {"s", CLI_STRING, &s, "S", "a string", 0, 0, NULL},
        {"choice", CLI_STRING, &c, "C", "one of three", 0, 0, "sgd|adam|a|"},
        {"list", CLI_LIST, &list, "L", "repeatable", 0, 0, NULL},
        {0},
    };
    const char *pos[4];
    int n_pos;
    cli_parse("fuzz", "[options]", opts, argc, argv, pos, 4, &n_pos);
    char why[256];
    for (const cli_option *o = opts; o->name; o++) {
        cli_given(opts, argc, argv, o->name);
        for (int i = 1; i < argc; i++) cli_check_value(o, argv[i], why, sizeof why);
    }
    free(buf);
    return 0;
}
