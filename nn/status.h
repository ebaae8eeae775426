/* Error status shared by the whole library.
 *
 * Library functions never print and never exit: they return 0 on success and -1
 * on failure (or NULL for functions that return a pointer), after recording a
 * one-line message with nn_fail(). Only the command-line front end prints it.
 * The message is per thread, so loader threads do not clobber the main one.
 */
#ifndef NN_STATUS_H
#define NN_STATUS_H

#include <stddef.h>

/* Records a printf-style message as the current error and returns -1.
 * Source: our own; modelled on errno + strerror, but with a full sentence. */
int nn_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like nn_fail, but keeps the message already recorded as the cause:
 * "<new message>: <previous message>". Use it to add context (a file name). */
int nn_fail_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded on this thread ("" if none). */
const char *nn_last_error(void);

/* Clears the message on this thread. */
void nn_clear_error(void);

/* Records "what (file:line)" and returns -1; used by NN_CHECK-style macros. */
#define NN_FAIL_HERE(what) nn_fail("%s (%s:%d)", (what), __FILE__, __LINE__)

#endif
