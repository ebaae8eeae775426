/* stb_image and stb_image_write compiled into the fuzz targets with the sanitizers and
 * coverage (the product links Debian's libstb, which holds the same code). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
