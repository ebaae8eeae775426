/* Animated GIFs through giflib. See gif.h. */
#include "gif.h"

#include <gif_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../nn/status.h"
#include "files.h"

int gif_write_animation(const char *path, const uint8_t *const *frames, int n, int w, int h, int delay_cs,
                        int replace) {
    if (n < 1 || w < 1 || h < 1 || w > 65535 || h > 65535 || (size_t)h * n > 65535u * 256)
        return nn_fail("gif: cannot write '%s': bad size %d x %d x %d frames", path, w, h, n);
    const size_t plane = (size_t)w * h, all = plane * (size_t)n;
    GifByteType *r = malloc(all), *g = malloc(all), *b = malloc(all), *idx = malloc(all);
    GifColorType colors[256];
    int ncolors = 256, err = 0, rc = -1;
    char tmp[4200];
    files_tmp_name(tmp, sizeof tmp, path);
    GifFileType *gif = NULL;
    if (!r || !g || !b || !idx) {
        nn_fail("gif: cannot write '%s': out of memory", path);
        goto done;
    }
    for (int f = 0; f < n; f++)
        for (size_t i = 0; i < plane; i++) {
            const uint8_t *p = frames[f] + 3 * i;
            r[f * plane + i] = p[0], g[f * plane + i] = p[1], b[f * plane + i] = p[2];
        }
    /* the frames stacked vertically: one image of w x (n h) pixels, one colour table */
    if (GifQuantizeBuffer((unsigned)w, (unsigned)(h * n), &ncolors, r, g, b, idx, colors) == GIF_ERROR) {
        nn_fail("gif: cannot write '%s': colour quantization failed", path);
        goto done;
    }
    ColorMapObject *map = GifMakeMapObject(256, colors);
    gif = EGifOpenFileName(tmp, false, &err);
    if (!map || !gif) {
        GifFreeMapObject(map);
        nn_fail("gif: cannot write '%s': %s", path, gif ? "out of memory" : GifErrorString(err));
        goto done;
    }
    EGifSetGifVersion(gif, true);
    int ok = EGifPutScreenDesc(gif, w, h, 8, 0, map) != GIF_ERROR;
    GifFreeMapObject(map);
    static const GifByteType app[11] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
    static const GifByteType loop[3] = {1, 0, 0}; /* sub-block 1: loop count 0 = forever */
    ok = ok && EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) != GIF_ERROR &&
         EGifPutExtensionBlock(gif, 11, app) != GIF_ERROR && EGifPutExtensionBlock(gif, 3, loop) != GIF_ERROR &&
         EGifPutExtensionTrailer(gif) != GIF_ERROR;
    for (int f = 0; ok && f < n; f++) {
        GraphicsControlBlock gcb = {.DisposalMode = DISPOSE_DO_NOT, .UserInputFlag = false, .DelayTime = delay_cs,
                                    .TransparentColor = NO_TRANSPARENT_COLOR};
        GifByteType ext[4];
        size_t len = EGifGCBToExtension(&gcb, ext);
        ok = EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, (int)len, ext) != GIF_ERROR &&
             EGifPutImageDesc(gif, 0, 0, w, h, false, NULL) != GIF_ERROR;
        for (int y = 0; ok && y < h; y++) ok = EGifPutLine(gif, idx + (size_t)f * plane + (size_t)y * w, w) != GIF_ERROR;
    }
    if (!ok) err = gif->Error;
    if (EGifCloseFile(gif, ok ? &err : NULL) == GIF_ERROR && ok) ok = 0;
    gif = NULL;
    if (!ok) {
        unlink(tmp);
        nn_fail("gif: cannot write '%s': %s", path, GifErrorString(err) ? GifErrorString(err) : "giflib failed");
        goto done;
    }
    if (files_commit(tmp, path, replace)) {
        nn_fail_context("gif");
        goto done;
    }
    rc = 0;
done:
    free(r), free(g), free(b), free(idx);
    return rc;
}
