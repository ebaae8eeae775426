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
    /* append ": <cause>", cut to fit (by hand: snprintf of a 1024-byte cause into the
     * rest of the buffer trips -Wformat-truncation at -O1 and -O2) */
    if (cause[0] && n >= 0 && (size_t)n + 2 < sizeof message) {
        size_t used = (size_t)n, room = sizeof message - 1 - used - 2, len = strlen(cause);
        if (len > room) len = room;
        memcpy(message + used, ": ", 2);
        memcpy(message + used + 2, cause, len);
        message[used + 2 + len] = '\0';
    }
    return -1;
}

const char *nn_last_error(void) { return message; }

void nn_clear_error(void) { message[0] = '\0'; }
