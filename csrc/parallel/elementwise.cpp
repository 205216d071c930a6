// Elementwise operations, in fixed blocks over contiguous buffers: the sigmoid family, the
// information measures of two arrays, and the 16-bit conversions.
#include "parallel/driver.h"
#include "parallel/schedule.h"

namespace logitkit::parallel {

using namespace detail;

template <class T>
void unary(const KernelSet<T>& k, UnaryOp op, const T* x, T* y, ptrdiff_t count, int threads) {
  const auto fn = k.unary[op];
  // Elementwise outputs are written with plain stores: streaming measured no faster (see
  // row_map; `python -m logitkit bench --ops sigmoid`, with lk._core.set_stream_min_bytes
  // lowered), the write-backs of plain stores overlapping the arithmetic of later blocks.
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { fn(x + i, y + i, len); });
}

template <class S>
void binary(const KernelSet<S>& k, BinaryOp op, const S* a, const S* b, S* y, ptrdiff_t count,
            int threads) {
  const auto fn = k.binary[op];
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { fn(a + i, b + i, y + i, len); });
}

template <class S>
void widen(const KernelSet<S>& k, const S* src, compute_t<S>* dst, ptrdiff_t count, int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.widen_row(src + i, dst + i, len); });
}

template <class S>
void narrow(const KernelSet<S>& k, const compute_t<S>* src, S* dst, ptrdiff_t count,
            int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.narrow_row(src + i, dst + i, len); });
}

template void unary<half_t>(const KernelSet<half_t>&, UnaryOp, const half_t*, half_t*, ptrdiff_t,
                            int);
template void unary<bf16_t>(const KernelSet<bf16_t>&, UnaryOp, const bf16_t*, bf16_t*, ptrdiff_t,
                            int);
template void widen<half_t>(const KernelSet<half_t>&, const half_t*, float*, ptrdiff_t, int);
template void widen<bf16_t>(const KernelSet<bf16_t>&, const bf16_t*, float*, ptrdiff_t, int);
template void narrow<half_t>(const KernelSet<half_t>&, const float*, half_t*, ptrdiff_t, int);
template void narrow<bf16_t>(const KernelSet<bf16_t>&, const float*, bf16_t*, ptrdiff_t, int);
template void binary<half_t>(const KernelSet<half_t>&, BinaryOp, const half_t*, const half_t*,
                             half_t*, ptrdiff_t, int);
template void binary<bf16_t>(const KernelSet<bf16_t>&, BinaryOp, const bf16_t*, const bf16_t*,
                             bf16_t*, ptrdiff_t, int);
template void binary<float>(const KernelSet<float>&, BinaryOp, const float*, const float*,
                            float*, ptrdiff_t, int);
template void binary<double>(const KernelSet<double>&, BinaryOp, const double*, const double*,
                             double*, ptrdiff_t, int);
template void unary<float>(const KernelSet<float>&, UnaryOp, const float*, float*, ptrdiff_t, int);
template void unary<double>(const KernelSet<double>&, UnaryOp, const double*, double*, ptrdiff_t,
                            int);

}  // namespace logitkit::parallel
