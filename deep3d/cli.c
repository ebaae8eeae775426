#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "deep3d %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_is_tty(void) { return isatty(STDERR_FILENO); }

void cli_usage(FILE *out, const char *cmd, const char *synopsis, const cli_option *opts) {
    fprintf(out, "usage: deep3d %s %s\n\noptions:\n", cmd, synopsis);
    for (const cli_option *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(out, "  %-24s %s\n", left, o->help);
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
}

int cli_check_value(const cli_option *o, const char *v, char *why, size_t size) {
    char *end;
    switch (o->kind) {
    case CLI_FLAG:
    case CLI_LIST: return 0;
    case CLI_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < o->min || x > o->max) {
            snprintf(why, size, "--%s must be an integer in %.0f..%.0f, got '%.64s'", o->name, o->min, o->max, v);
            return -1;
        }
        return 0;
    }
    case CLI_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < o->min || x > o->max) {
            snprintf(why, size, "--%s must be a number in %g..%g, got '%.64s'", o->name, o->min, o->max, v);
            return -1;
        }
        return 0;
    }
    case CLI_STRING:
        if (o->choices) {
            size_t n = strlen(v);
            const char *p = o->choices;
            int ok = 0;
            while (*p && !ok) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                ok = n == len && !strncmp(p, v, n);
                p += len + (bar ? 1 : 0);
            }
            if (!ok) {
                snprintf(why, size, "--%s must be one of %s, got '%.64s'", o->name, o->choices, v);
                return -1;
            }
        }
        return 0;
    }
    return -1;
}

static int set_value(const char *cmd, const cli_option *o, const char *v) {
    char why[256];
    if (cli_check_value(o, v, why, sizeof why)) {
        cli_error(cmd, "%s", why);
        return -1;
    }
    switch (o->kind) {
    case CLI_FLAG: *(int *)o->dest = 1; return 0;
    case CLI_INT: *(long *)o->dest = strtol(v, NULL, 10); return 0;
    case CLI_DOUBLE: *(double *)o->dest = strtod(v, NULL); return 0;
    case CLI_STRING: *(const char **)o->dest = v; return 0;
    case CLI_LIST: {
        cli_list *l = o->dest;
        if (l->n == CLI_MAX_LIST) {
            cli_error(cmd, "--%s given more than %d times", o->name, CLI_MAX_LIST);
            return -1;
        }
        l->items[l->n++] = v;
        return 0;
    }
    }
    return -1;
}

const cli_option *cli_find(const cli_option *opts, const char *name, size_t len) {
    for (const cli_option *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

int cli_given(const cli_option *opts, int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) return 0;
        if (strncmp(a, "--", 2)) continue;
        const char *n = a + 2, *eq = strchr(n, '=');
        size_t len = eq ? (size_t)(eq - n) : strlen(n);
        const cli_option *o = cli_find(opts, n, len);
        if (!o) continue;
        if (!strcmp(o->name, name)) return 1;
        if (o->kind != CLI_FLAG && !eq) i++; /* its value */
    }
    return 0;
}

int cli_parse(const char *cmd, const char *synopsis, const cli_option *opts, int argc, char **argv,
              const char **positional, int max_positional, int *n_positional) {
    *n_positional = 0;
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || !a[1]) {
            if (*n_positional == max_positional) {
                if (max_positional) cli_error(cmd, "too many arguments at '%s' (at most %d)", a, max_positional);
                else cli_error(cmd, "unexpected argument '%s'", a);
                return -1;
            }
            positional[(*n_positional)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_usage(stdout, cmd, synopsis, opts);
            return 1;
        }
        if (strncmp(a, "--", 2)) {
            cli_error(cmd, "unknown option %s (see deep3d %s --help)", a, cmd);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_option *o = cli_find(opts, name, len);
        if (!o) {
            cli_error(cmd, "unknown option --%.*s (see deep3d %s --help)", (int)len, name, cmd);
            return -1;
        }
        const char *value = NULL;
        if (o->kind == CLI_FLAG) {
            if (eq) {
                cli_error(cmd, "--%s takes no value", o->name);
                return -1;
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            cli_error(cmd, "--%s needs a value (%s)", o->name, o->metavar ? o->metavar : "VALUE");
            return -1;
        }
        if (set_value(cmd, o, value)) return -1;
    }
    return 0;
}
