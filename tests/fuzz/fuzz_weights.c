/* libFuzzer target: the weights/checkpoint loader (nn/weights.c nn_weights_open, then
 * every tensor read into a tensor of its stored shape, the configuration getters) and
 * deep3d train's checkpoint settings (train_read_settings). The CRC-32 guards the
 * file, so most mutations stop there; the corpus files carry valid CRCs and the
 * target also re-seals each input's CRC with probability 1/2 (the first input byte's
 * low bit) so the parser behind it is reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../nn/nn.h"
#include "../../nn/weights.h"
#include "../../train/train.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *b = malloc(size ? size : 1);
    memcpy(b, data, size);
    if (size > 68 && (data[size - 1] & 1)) { /* re-seal: CRC over the body at its end */
        uint64_t total = 0;
        for (int i = 0; i < 8; i++) total |= (uint64_t)b[16 + i] << (8 * i);
        if (total == size) {
            uint32_t crc = nn_crc32(0, b, size - 4);
            for (int i = 0; i < 4; i++) b[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        }
    }
    nn_weights_file *f = nn_weights_open(fuzz_write("input.d3w", b, size));
    free(b);
    if (!f) return 0;
    for (int i = 0; i < nn_weights_count(f); i++) {
        const nn_weights_info *t = nn_weights_tensor(f, i);
        nn_tensor *dst = nn_tensor_new(NN_CPU, t->ndim, t->shape);
        if (dst) nn_weights_read(f, t->name, dst);
        nn_tensor_unref(dst);
    }
    long l;
    double d;
    const char *s;
    nn_weights_config_int(f, "step", &l);
    nn_weights_config_double(f, "lr", &d);
    nn_weights_config_str(f, "optimizer", &s);
    train_state st;
    train_read_settings(f, 1000, &st);
    nn_weights_close(f);
    return 0;
}
