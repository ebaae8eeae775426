/* libFuzzer target: the stereo-pair and frame-layout code (data/stereo.c). The input
 * is a list of file names, one per line, made (empty) in a fresh folder and listed by
 * stereo_dataset_add in the layout its first byte picks (pairing <id>_L / <id>_R names,
 * left/ and right/ subfolders: a name "left/x.png" makes the subfolder); the last bytes
 * also size a small frame that stereo_split_frame cuts in every layout. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../data/stereo.h"
#include "../../nn/status.h"
#include "fuzz_util.h"

static void make_tree(const char *root, const uint8_t *data, size_t size) {
    char name[128], path[512];
    size_t i = 1;
    for (int files = 0; i < size && files < 64; files++) {
        size_t n = 0;
        while (i < size && data[i] != '\n' && n < sizeof name - 1) {
            char c = (char)data[i++];
            name[n++] = c == '\0' ? '_' : c;
        }
        while (i < size && data[i] != '\n') i++;
        i++;
        name[n] = '\0';
        if (!n || strstr(name, "..") || name[0] == '/') continue;
        char *slash = strchr(name, '/');
        if (slash && strchr(slash + 1, '/')) continue; /* one level of subfolders */
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/%s", root, name);
            mkdir(path, 0755);
            *slash = '/';
        }
        snprintf(path, sizeof path, "%s/%s", root, name);
        FILE *f = fopen(path, "wb");
        if (f) fclose(f);
    }
}

static int remove_tree(const char *root) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char root[256];
    snprintf(root, sizeof root, "%s/tree", fuzz_dir());
    if (remove_tree(root) != 0 || mkdir(root, 0755) != 0) abort();
    make_tree(root, data, size);
    stereo_layout layout = size ? (stereo_layout)(data[0] % 5) : STEREO_PAIRS;
    stereo_dataset *ds = stereo_dataset_new();
    if (stereo_dataset_add(ds, root, layout) == 0)
        for (int i = 0; i < ds->n; i++) /* empty files: every load must fail cleanly */
            if (ds->items[i].left) {
                image *l, *r;
                if (stereo_load_pair(ds, i, &l, &r) == 0) abort();
            }
    stereo_dataset_free(ds);
    if (size >= 3) {
        int w = 1 + data[size - 2] % 48, h = 1 + data[size - 1] % 48;
        image *frame = image_new(w, h);
        for (int k = 1; k < 5 && frame; k++) {
            image *l, *r;
            if (stereo_split_frame(frame, (stereo_layout)k, "frame", &l, &r) == 0) {
                if (l->w != r->w || l->h != r->h) abort();
                image_free(l), image_free(r);
            }
        }
        image_free(frame);
    }
    return 0;
}
