/* Files written whole or not at all: a temporary file beside the destination, flushed
 * to disk (fsync), renamed over it, then the folder fsync'ed so the rename survives a
 * power cut. Used by nn_weights_save (models, checkpoints) and image_save_png.
 *
 * The temporary name is short and fixed in length, "<folder>/.deep3d-XXXXXX" (mkstemp),
 * so it is legal wherever the destination's name is (a "<name>.tmp.<pid>" suffix made
 * 250-byte names fail), is created exclusively (never follows or reuses a file), and is
 * recognisable: nn_remove_stale_temporaries removes the ones a killed process left.
 * Source: the write-temp-fsync-rename pattern; POSIX rename(2) replaces atomically,
 * mkstemp(3) creates with O_EXCL. */
#ifndef NN_ATOMIC_FILE_H
#define NN_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

/* The prefix of every temporary name, in the destination's folder. */
#define NN_TMP_PREFIX ".deep3d-"

/* Creates and opens for writing ("wb") a new temporary file in the folder of path; its
 * name goes to tmp (size bytes: strlen(path) + 16 suffice). Its mode is 0666 less the
 * umask, as fopen would give the final file. NULL + nn_fail("cannot create a temporary
 * file beside <path>: <strerror>") on failure. */
FILE *nn_atomic_open(const char *path, char *tmp, size_t size);

/* Flushes, fsyncs and closes fp, renames tmp over path and fsyncs the folder. On any
 * failure tmp is removed, an existing path is untouched, and -1 + nn_fail("<what>
 * <path>: <step> <tmp>: <strerror>") is returned, what being e.g. "cannot write". fp is
 * always closed. */
int nn_atomic_commit(FILE *fp, const char *tmp, const char *path, const char *what);

/* Closes fp and removes tmp (after a failed write); errors are ignored. */
void nn_atomic_abandon(FILE *fp, const char *tmp);

/* 0 if the folder dir takes new files: a temporary is created there (nn_atomic_open)
 * and removed at once, so a read-only or unwritable --out is found before any work.
 * -1 + nn_fail("output folder <dir> is not writable: <strerror>") otherwise. */
int nn_check_writable_folder(const char *dir);

/* Removes the temporaries (NN_TMP_PREFIX followed by 6 characters, regular files)
 * directly inside folder dir: those of a process killed while it wrote. Returns how
 * many were removed (0 when dir cannot be read). Only for a folder that no other live
 * process is writing into (a training run's own --out). */
int nn_remove_stale_temporaries(const char *dir);

#endif
