// AVX-512 (F, BW, DQ, VL) with AVX512_BF16: the avx512 vector types in a namespace of their
// own, narrowing float to bfloat16 with VCVTNEPS2BF16 (see simd/avx512.h).
#pragma once

#define LOGITKIT_SIMD_AVX512_BF16 1
#include "simd/avx512.h"
