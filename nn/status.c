#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char message[1024];

int nn_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return -1;
}

int nn_fail_context(const char *fmt, ...) {
    char cause[sizeof message];
    memcpy(cause, message, sizeof cause);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (cause[0] && n >= 0 && (size_t)n < sizeof message)
        snprintf(message + n, sizeof message - (size_t)n, ": %s", cause);
    return -1;
}

const char *nn_last_error(void) { return message; }

void nn_clear_error(void) { message[0] = '\0'; }
