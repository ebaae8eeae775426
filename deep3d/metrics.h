/* Image quality measures of deep3d eval, on planar RGB host images (3, H, W), 0..255.
 *
 * SSIM: Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From Error
 * Visibility to Structural Similarity", IEEE TIP 2004, eq. 13, with the paper's
 * settings: an 11x11 Gaussian window of sigma 1.5 (normalised), K1 = 0.01, K2 = 0.03,
 * L = 255, on each colour channel; the mean over the pixels whose window lies inside
 * the image ("valid"), then over the 3 channels (as skimage's structural_similarity
 * with gaussian_weights=True, channel_axis, use_sample_covariance=False).
 *
 * Detail kept: how much fine detail a predicted right view keeps, relative to the left
 * view it was made from: var(LoG(grey(pred))) / var(LoG(grey(left))), where grey is
 * the BT.601 luma (0.299 R + 0.587 G + 0.114 B), LoG the Laplacian of a Gaussian of
 * sigma 1 px (the separable Gaussian, radius 4, normalised, edges replicated, then the
 * 5-point Laplacian), and the variance is taken over every row and over the columns
 * between 5% of the width from each side (the sides are where the views differ most by
 * construction). A clean warp of the left view measures about 0.9-1.0; a blend of
 * several shifted copies much less; noise or sharpening more.
 *
 * Errors: sizes below 11 x 11 (SSIM) or 3 x 3 (detail), out of memory: NAN and
 * nn_fail. */
#ifndef DEEP3D_METRICS_H
#define DEEP3D_METRICS_H

#include "../nn/real.h"

/* Mean SSIM of a against b (the reference), both (3, H, W). */
double metric_ssim(const nn_real *a, const nn_real *b, int H, int W);

/* var(LoG(grey(img))) over the interior defined above; img (3, H, W). */
double metric_log_variance(const nn_real *img, int H, int W);

/* metric_log_variance(pred) / metric_log_variance(left). */
double metric_detail_kept(const nn_real *pred, const nn_real *left, int H, int W);

#endif
