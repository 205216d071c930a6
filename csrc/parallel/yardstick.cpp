// The memory yardstick: a read and a copy over the same buffers, with the kernels' own loads
// and stores, that the benchmarks set the kernels against.
#include <vector>

#include "parallel/driver.h"
#include "parallel/schedule.h"

namespace logitkit::parallel {

using namespace detail;

double bandwidth_read(const BandwidthKernels<float>& k, const float* x, ptrdiff_t count,
                      int threads) {
  std::vector<double> sums(static_cast<size_t>((count + kElementBlock - 1) / kElementBlock));
  for_each_block(count, threads, [&](ptrdiff_t b, ptrdiff_t i, ptrdiff_t len) {
    sums[b] = k.read_sum(x + i, len);
  });
  double total = 0.0;
  for (double v : sums) total += v;
  return total;
}

void bandwidth_copy(const BandwidthKernels<float>& k, const float* x, float* y, ptrdiff_t count,
                    bool stream, int threads) {
  for_each_block(count, threads,
                 [&](ptrdiff_t, ptrdiff_t i, ptrdiff_t len) { k.copy(x + i, y + i, len, stream); });
}

}  // namespace logitkit::parallel
