// The per-row statistics of `logitkit eval` over a block of contiguous rows.
#include <algorithm>

#include "parallel/driver.h"
#include "parallel/schedule.h"

namespace logitkit::parallel {

using namespace detail;

template <class S>
void eval_rows(const KernelSet<S>& k, ptrdiff_t rows, ptrdiff_t n, const S* z,
               const long long* target, const EvalRows& out, int threads) {
  const int team = static_cast<int>(std::min<ptrdiff_t>(threads_for(rows, n, threads), rows));
#pragma omp parallel for num_threads(team) if (team > 1) schedule(guided)
  for (ptrdiff_t r = 0; r < rows; ++r) {
    const EvalRow s = k.eval_row(z + r * n, n, target[r]);
    out.lse[r] = s.lse;
    out.max[r] = s.max;
    out.loss[r] = s.loss;
    out.entropy[r] = s.entropy;
    out.brier[r] = s.brier;
    out.argmax[r] = s.argmax;
    out.rank[r] = s.rank;
    out.finite[r] = s.finite;
  }
}

template void eval_rows<float>(const KernelSet<float>&, ptrdiff_t, ptrdiff_t, const float*,
                               const long long*, const EvalRows&, int);
template void eval_rows<double>(const KernelSet<double>&, ptrdiff_t, ptrdiff_t, const double*,
                                const long long*, const EvalRows&, int);
template void eval_rows<half_t>(const KernelSet<half_t>&, ptrdiff_t, ptrdiff_t, const half_t*,
                                const long long*, const EvalRows&, int);
template void eval_rows<bf16_t>(const KernelSet<bf16_t>&, ptrdiff_t, ptrdiff_t, const bf16_t*,
                                const long long*, const EvalRows&, int);

}  // namespace logitkit::parallel
