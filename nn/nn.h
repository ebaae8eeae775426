/* The deep3d CNN framework: one include for all of nn/ and layers/. */
#ifndef NN_NN_H
#define NN_NN_H

#include "backend.h"
#include "graph.h"
#include "optim.h"
#include "status.h"
#include "tensor.h"
#include "../layers/batchnorm2d.h"
#include "../layers/conv2d.h"
#include "../layers/conv_transpose2d.h"
#include "../layers/disparity_smoothness.h"
#include "../layers/dropout.h"
#include "../layers/elementwise.h"
#include "../layers/l1_loss.h"
#include "../layers/linear.h"
#include "../layers/maxpool2d.h"
#include "../layers/reshape.h"
#include "../layers/selection.h"
#include "../layers/softmax.h"
#include "../layers/ssim_l1_loss.h"

#endif
