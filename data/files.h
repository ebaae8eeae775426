/* Files for the converting commands: committing a finished temporary file under its
 * final name without clobbering what a user made, folders made on demand, and the
 * input list of a batch (files given, and folders searched recursively).
 *
 * Errors: -1 after nn_fail() with one line naming the path and strerror's reason;
 * nothing prints. */
#ifndef DATA_FILES_H
#define DATA_FILES_H

#include <stdio.h>

/* 1 when something (a file, a folder, a dangling link) has this name. */
int files_exists(const char *path);

/* 1 when path is a folder. */
int files_is_dir(const char *path);

/* mkdir -p: every missing folder of path. */
int files_mkdirs(const char *path);

/* "<path>.tmp.<pid>" into buf: the name a file is written under before files_commit. */
void files_tmp_name(char *buf, size_t size, const char *path);

/* Finishes a file written under tmp: flushes it to disk (fsync), then renames it to
 * path. replace = 0: fails with "'<path>' exists" when something already has that name
 * (renameat2 RENAME_NOREPLACE, or link + unlink where the filesystem lacks it), so a
 * file that appeared while we worked is not overwritten; replace = 1: rename(2)
 * replaces it atomically. On failure tmp is removed and path is untouched. */
int files_commit(const char *tmp, const char *path, int replace);

/* A FILE* on tmp's open descriptor fsynced and closed: 0, or -1 + nn_fail. */
int files_close_synced(FILE *f, const char *path);

/* The inputs of a batch: for every argument, the file itself, or when it is a folder
 * every file below it (recursively, in byte order of the names, skipping names that
 * start with '.') whose name matches one of the comma-separated fnmatch(3) patterns,
 * letter case ignored ("*.jpg,*.png"). rel is the folder of the file relative to the
 * argument's folder ("" for a file given directly, "a/b" below a folder). The folder
 * `exclude` (an output folder inside an input folder; may be NULL) is not entered. */
typedef struct files_item {
    char *path, *rel;
} files_item;

typedef struct files_list {
    files_item *items;
    int n, cap;
} files_list;

/* Adds arg's files to l. Errors: arg does not exist ("cannot open '<arg>': ..."), a
 * folder cannot be read, out of memory. */
int files_list_add(files_list *l, const char *arg, const char *patterns, const char *exclude);
void files_list_free(files_list *l);

/* dir "/" rel "/" name into buf (rel may be ""; no second slash after a dir ending in
 * one). */
void files_join(char *buf, size_t size, const char *dir, const char *rel, const char *name);

#endif
