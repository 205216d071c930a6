// Rows whose maximum is not finite: they contain NaN, +inf, or only -inf. Rare, so plain
// scalar loops; the rules are those documented in logitkit.reference.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

#include "simd/storage.h"
#include "table.h"

namespace logitkit::LOGITKIT_ISA_NS {

// softmax: NaN anywhere -> row NaN; k entries at +inf -> 1/k each, 0 elsewhere (the limit
// as those logits grow); all -inf -> NaN (0/0). log_softmax takes the log of that.
template <class S>
void softmax_special_row(const S* x, S* y, std::ptrdiff_t n, bool log) {
  using T = compute_t<S>;
  constexpr T inf = std::numeric_limits<T>::infinity();
  constexpr T nan = std::numeric_limits<T>::quiet_NaN();
  std::ptrdiff_t n_inf = 0;
  bool has_nan = false;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    has_nan |= std::isnan(widen(x[i]));
    n_inf += (widen(x[i]) == inf);
  }
  if (has_nan || n_inf == 0) {
    for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = narrow<S>(nan);
    return;
  }
  const T at_inf = log ? T(-std::log(double(n_inf))) : T(1.0 / double(n_inf));
  const T elsewhere = log ? -inf : T(0);
  for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = narrow<S>(widen(x[i]) == inf ? at_inf : elsewhere);
}

// softmax with a mask whose counted maximum is not finite: NaN among the counted entries
// gives a NaN row; k counted +inf entries share the mass; no counted finite mass at all
// (everything masked, or only -inf counted) gives 0 (log: -inf) everywhere.
template <class S>
void masked_softmax_special_row(const S* x, const S* mask, S* y, std::ptrdiff_t n, bool log) {
  using T = compute_t<S>;
  constexpr T inf = std::numeric_limits<T>::infinity();
  std::ptrdiff_t n_inf = 0;
  bool has_nan = false;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    if (widen(mask[i]) == T(0)) continue;
    has_nan |= std::isnan(widen(x[i]));
    n_inf += (widen(x[i]) == inf);
  }
  const T elsewhere = log ? -inf : T(0);
  if (has_nan) {
    for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = narrow<S>(std::numeric_limits<T>::quiet_NaN());
    return;
  }
  const T at_inf = n_inf == 0 ? elsewhere
                              : (log ? T(-std::log(double(n_inf))) : T(1.0 / double(n_inf)));
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    y[i] = narrow<S>((widen(mask[i]) != T(0) && widen(x[i]) == inf) ? at_inf : elsewhere);
  }
}

// Entries with weight 0 are not counted at all, even when x is inf or NaN there.
template <class S>
LseResult logsumexp_special_row(const S* x, const S* b, std::ptrdiff_t n) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  double weight_at_inf = 0.0;
  bool has_plus_inf = false;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const double w = b ? double(widen(b[i])) : 1.0;
    if (w == 0.0) continue;
    const double v = double(widen(x[i]));
    if (std::isnan(v) || std::isnan(w)) return {nan, nan};
    if (v == inf) {
      weight_at_inf += w;
      has_plus_inf = true;
    }
  }
  if (weight_at_inf > 0) return {inf, 1.0};
  if (weight_at_inf < 0) return {inf, -1.0};
  if (has_plus_inf) return {nan, nan};  // +inf entries whose weights cancel: inf - inf
  return {-inf, 0.0};
}

}  // namespace logitkit::LOGITKIT_ISA_NS
