/* Animated GIFs through giflib (Debian libgif-dev, GIFLIB 5.2): the "wiggle" stereo
 * picture, the two views shown in turn.
 *
 * The frames share one global colour table of up to 256 colours, made by giflib's
 * GifQuantizeBuffer (Heckbert's median-cut quantizer, giflib's quantize.c) over all the
 * frames together, so a colour does not change from frame to frame. GIF89a, a Graphics
 * Control Extension per frame (delay in hundredths of a second, no transparency, no
 * disposal) and the NETSCAPE2.0 application extension with loop count 0 (forever), the
 * de-facto standard every browser follows. Source: the GIF89a specification
 * (CompuServe, 1990) and giflib's egif_lib.c. */
#ifndef DATA_GIF_H
#define DATA_GIF_H

#include <stdint.h>

/* Writes n frames, each packed RGB (h rows of 3 w bytes), shown delay_cs hundredths of
 * a second each, looping forever. Atomic like image_write_rgb8 (temporary file,
 * files_commit with `replace`). Errors (-1 + nn_fail("gif: cannot write '<path>':
 * ...")): sizes (1..65535), out of memory, giflib's error text, the commit's. */
int gif_write_animation(const char *path, const uint8_t *const *frames, int n, int w, int h, int delay_cs,
                        int replace);

#endif
