// The per-row statistics of `logitkit eval` (EvalRow, table.h) in two reads of the row: the
// first finds the maximum m; the second, against m and while the row is still in cache, sums
// the exponentials and what the entropy and the Brier score need, and counts the label's
// rank. A short scan from the front then finds the first index of m. Compiled per ISA inside
// LOGITKIT_ISA_NS.
//
// That fast path assumes every entry is finite, and finds out when one is not: a NaN or an
// infinity turns the entropy's sum NaN (or the maximum non-finite), and the row is then done
// again by the careful path, which checks every entry. Such rows are rare, and the fast path
// is spared the checks.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

#include "combine.h"
#include "rows.h"
#include "special.h"

namespace logitkit::LOGITKIT_ISA_NS {

// Rows longer than this are left to the careful path: the fast path counts the rank in lanes
// of T, which are exact integers up to 2^24 in float.
template <class T>
constexpr ptrdiff_t kEvalFastRowMax = ptrdiff_t(1) << (sizeof(T) == 4 ? 24 : 52);

struct EvalSums {
  double at_max;   // entries equal to m
  double rest;     // sum of e = exp(z - m) over the entries below m
  double gap;      // sum of e (m - z)
  double squares;  // sum of e^2 over the entries below m
  ptrdiff_t rank;  // counted by the fast path only
};

// The second read, against a finite maximum m. e is split into the entries at m (e = 1,
// counted) and the rest, as the row statistics are. A square below T's smallest normal number
// adds nothing the sum can hold next to the max's 1, and forming it as a subnormal costs a
// microcode assist per lane on x86, so it is flushed to 0.
// kFast: the entries are taken to be finite (see the top of the file): e (m - z) is NaN for a
// -inf entry, where the careful path adds 0; and the rank of the label z_t (finite) is
// counted: an entry ranks above it when it is >= z_t before the label and > z_t after it. For
// a finite z_t, z >= z_t is z > (the next value below z_t), so one strict comparison against
// a threshold chosen per vector counts both.
template <class V, class VD, bool kFast, class S>
EvalSums eval_sums(const S* z, ptrdiff_t n, typename V::T m, ptrdiff_t t) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const V mv = V::set1(m), zero = V::zero(), one = V::set1(T(1));
  const V tiny = V::set1(sizeof(T) == 4 ? T(0x1p-63) : T(0x1p-511));
  const T zt = widen(z[t]);
  const V above = V::set1(zt), at_or_above = V::set1(std::nextafter(zt, ninf));
  const ptrdiff_t label_vector = t - t % N;  // where the vector holding the label starts
  alignas(64) T lanes[N];
  for (int j = 0; j < N; ++j) lanes[j] = T(j);
  const V straddle = select(lt(V::load(lanes), V::set1(T(t % N))), at_or_above, above);
  auto threshold = [&](ptrdiff_t i) {
    return i < label_vector ? at_or_above : (i == label_vector ? straddle : above);
  };

  TieCount<V> count;
  V rank = zero;
  WideSum<VD> rest, weighted_gap, squares;
  struct Terms {
    V rest, gap, square;
  };
  auto terms = [&](V x, ptrdiff_t i) {
    const auto at_max = eq(x, mv);
    const V e = exp_sum_term_(x - mv);
    count.add(at_max);
    if (kFast) rank = rank + select(lt(threshold(i), x), one, zero);
    const V r = select(at_max, zero, e);
    const V gap = kFast ? e * (mv - x) : select(eq(e, zero), zero, e * (mv - x));
    return Terms{r, gap, select(lt(r, tiny), zero, r * r)};
  };
  auto add = [&](Terms a) {
    rest.add(a.rest);
    weighted_gap.add(a.gap);
    squares.add(a.square);
  };
  // As in entropy_row, four vectors are added in T before each widening to double: every
  // term is non-negative and at most 1 (the gaps: at most 1/e), so this costs two roundings
  // of a few terms.
  ptrdiff_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const Terms a = terms(V::load(z + i), i), b = terms(V::load(z + i + N), i + N);
    const Terms c = terms(V::load(z + i + 2 * N), i + 2 * N);
    const Terms d = terms(V::load(z + i + 3 * N), i + 3 * N);
    add(Terms{(a.rest + b.rest) + (c.rest + d.rest), (a.gap + b.gap) + (c.gap + d.gap),
              (a.square + b.square) + (c.square + d.square)});
  }
  for (; i + N <= n; i += N) add(terms(V::load(z + i), i));
  // padded with -inf: no term, no tie with m, and never above the label. Its gap e (m - z)
  // is 0 * inf, which the fast path must not see.
  if (i < n) {
    Terms tail = terms(load_partial<V>(z + i, n - i, ninf), i);
    if (kFast) tail.gap = select(tail_mask<V>(n - i), tail.gap, zero);
    add(tail);
  }
  return {count.total(), rest.total(), weighted_gap.total(), squares.total(),
          static_cast<ptrdiff_t>(reduce_add(rank))};
}

// The label's own e^2, formed as eval_sums formed it.
template <class V>
typename V::T label_square(typename V::T zt, typename V::T m) {
  using T = typename V::T;
  const V tiny = V::set1(sizeof(T) == 4 ? T(0x1p-63) : T(0x1p-511));
  const V e = exp_sum_term_(V::set1(zt) - V::set1(m));
  alignas(64) T lane[V::N];
  select(lt(e, tiny), V::zero(), e * e).store(lane);
  return lane[0];
}

// The statistics that follow from the sums, for a row with a finite maximum m.
template <class V, class S>
void finish_eval_row(const EvalSums& s, typename V::T m, typename V::T zt, EvalRow& out) {
  const double sum = s.at_max + s.rest;
  const double log_sum = log_abs_sum(s.at_max, s.rest).value;  // lse - m
  out.lse = double(m) + log_sum;
  // m - z_t >= 0 and log_sum >= 0: a tiny loss (a confident, correct row) keeps its precision
  out.loss = (double(m) - double(zt)) + log_sum;
  // H = lse - sum p z = log_sum + sum e (m - z) / sum: non-negative terms only
  out.entropy = log_sum + s.gap / sum;
  // Brier = (1 - p_t)^2 + sum_{j != t} p_j^2. 1 - p_t cancels when p_t is near 1: it is formed
  // in double as -expm1(z_t - lse). The other squares are the sweep's, less the label's own,
  // formed again as the sweep formed it; when the label is not at m, what is left holds the
  // max's 1, so the subtraction cannot cancel.
  const double pt_minus_1 = std::expm1((double(zt) - double(m)) - log_sum);
  const double others = zt == m ? (s.at_max - 1.0) + s.squares
                                : s.at_max + (s.squares - double(label_square<V>(zt, m)));
  out.brier = pt_minus_1 * pt_minus_1 + others / (sum * sum);
}

// First index of m, which the row holds: a scan from the front, vector by vector.
template <class V, class S>
ptrdiff_t first_index_of(const S* z, ptrdiff_t n, typename V::T m) {
  const V mv = V::set1(m);
  ptrdiff_t i = 0;
  for (; i + V::N <= n; i += V::N) {
    if (!all_(ne(V::load(z + i), mv))) break;
  }
  for (; i < n; ++i) {
    if (widen(z[i]) == m) return i;
  }
  return 0;
}

// The careful path: one entry at a time for the maximum, its first index, the rank and the
// finiteness, then the sums that treat -inf entries as probability 0.
template <class V, class VD, class S>
EvalRow eval_row_careful(const S* z, ptrdiff_t n, ptrdiff_t t) {
  using T = typename V::T;
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const T zt = widen(z[t]);
  T m = -std::numeric_limits<T>::infinity();
  EvalRow out{nan, nan, nan, nan, nan, 0, 0, true};
  ptrdiff_t first_max = 0, first_nan = -1;
  for (ptrdiff_t j = 0; j < n; ++j) {
    const T v = widen(z[j]);
    if (v > m) m = v, first_max = j;
    out.rank += (v > zt) || (j < t && v == zt);
    if (std::isnan(v) && first_nan < 0) first_nan = j;
    out.finite = out.finite && std::isfinite(v);
  }
  // NumPy's max and argmax report the first NaN
  out.argmax = first_nan < 0 ? first_max : first_nan;
  out.max = first_nan < 0 ? double(m) : nan;
  if (!std::isfinite(out.max)) {
    out.lse = logsumexp_special_row<S>(z, nullptr, n).value;
    return out;
  }
  finish_eval_row<V, S>(eval_sums<V, VD, false>(z, n, m, t), m, zt, out);
  return out;
}

template <class V, class VD, class S>
EvalRow eval_row(const S* z, ptrdiff_t n, long long target) {
  using T = typename V::T;
  const auto t = static_cast<ptrdiff_t>(target);
  const T zt = widen(z[t]);
  if (n >= kEvalFastRowMax<T> || !std::isfinite(zt)) return eval_row_careful<V, VD>(z, n, t);
  const T m = row_max<V>(z, n);
  if (!std::isfinite(m)) return eval_row_careful<V, VD>(z, n, t);
  const EvalSums s = eval_sums<V, VD, true>(z, n, m, t);
  if (std::isnan(s.gap)) return eval_row_careful<V, VD>(z, n, t);
  EvalRow out{0, double(m), 0, 0, 0, first_index_of<V>(z, n, m), s.rank, true};
  finish_eval_row<V, S>(s, m, zt, out);
  return out;
}

}  // namespace logitkit::LOGITKIT_ISA_NS
