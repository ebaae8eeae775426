/* libFuzzer target: image decoding through our wrapper (data/image.c image_load): the
 * budget and file-size checks before decoding, stb_image through the truncation-
 * noting reader, the GIF trailer. Any input: a crash, a leak, a hang (libFuzzer's
 * -timeout) or a blow-up past -rss_limit_mb is a finding. The budget is 4 MP here so a
 * valid file cannot exceed the fuzzer's memory limit by design. */
#include <stdint.h>
#include <stdlib.h>

#include "../../data/image.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    image_set_max_pixels(4000000);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    image *im = image_load(fuzz_write("input.img", data, size));
    if (im) { /* every value is 0..255: the decoded bytes went where they belong */
        for (size_t i = 0; i < (size_t)3 * im->w * im->h; i += 97)
            if (!(im->data[i] >= 0 && im->data[i] <= 255)) abort();
        image_free(im);
    }
    return 0;
}
