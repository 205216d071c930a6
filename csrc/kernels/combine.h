// Scalar glue for the log-sum-exp family: merging partial row statistics in a fixed order
// and turning them into log|sum|. Shared by the per-ISA row kernels and by the threaded
// driver, which must produce bitwise the same numbers whichever of them does the work.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

#include "table.h"

namespace logitkit::LOGITKIT_ISA_NS {

template <class T>
inline RowStats<T> merge_stats(const RowStats<T>* parts, std::ptrdiff_t count) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::ptrdiff_t i = 0; i < count; ++i) {
    if (std::isnan(parts[i].max)) return parts[i];
    if (parts[i].max > m) m = parts[i].max;
  }
  RowStats<T> total{m, 0.0, 0.0};
  if (!std::isfinite(m)) return total;  // the caller takes the special-row path
  for (std::ptrdiff_t i = 0; i < count; ++i) {
    const RowStats<T>& p = parts[i];
    if (p.max == m) {
      total.at_max += p.at_max;
      total.rest += p.rest;
    } else if (p.max != -std::numeric_limits<T>::infinity()) {
      total.rest += (p.at_max + p.rest) * std::exp(double(p.max) - double(m));
    }
  }
  return total;
}

// log|at_max + rest| and its sign, keeping relative precision when at_max dominates.
inline LseResult log_abs_sum(double at_max, double rest) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (std::isnan(at_max) || std::isnan(rest)) {
    return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  }
  if (at_max == 0.0) {
    if (rest == 0.0) return {-inf, 0.0};
    return {std::log(std::fabs(rest)), rest > 0 ? 1.0 : -1.0};
  }
  const double t = rest / at_max;
  const double sign_at_max = at_max > 0 ? 1.0 : -1.0;
  // at_max is a count of entries (or a sum of weights): usually exactly one entry, whose log
  // is 0, and short rows feel the cost of the call.
  const double log_at_max = at_max == 1.0 ? 0.0 : std::log(std::fabs(at_max));
  if (t >= -1.0) {
    if (t == -1.0) return {-inf, 0.0};
    return {log_at_max + std::log1p(t), sign_at_max};
  }
  // |1 + t| = -(1 + t) = 1 + (-2 - t)
  return {log_at_max + std::log1p(-2.0 - t), -sign_at_max};
}

// Final log-sum-exp of a row with a finite maximum.
template <class T>
inline LseResult finish_logsumexp(const RowStats<T>& s) {
  LseResult r = log_abs_sum(s.at_max, s.rest);
  r.value += double(s.max);
  return r;
}

}  // namespace logitkit::LOGITKIT_ISA_NS
