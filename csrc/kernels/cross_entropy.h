// Fused cross-entropy over one row of logits: statistics in one read, the gradient in one
// more sweep while the row is still in cache. Compiled per ISA inside LOGITKIT_ISA_NS.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

// Max and index of its first occurrence. Indices ride along as values of T (exact below
// 2^24 for float); longer rows take the scalar loop.
template <class V, class S>
void row_max_argmax(const S* x, ptrdiff_t n, typename V::T& max_out, ptrdiff_t& arg_out) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  if (n > (ptrdiff_t(1) << (sizeof(T) == 4 ? 24 : 52))) {
    T m = ninf;
    ptrdiff_t a = 0;
    for (ptrdiff_t i = 0; i < n; ++i)
      if (widen(x[i]) > m) m = widen(x[i]), a = i;
    max_out = m, arg_out = a;
    return;
  }
  alignas(64) T lanes[2 * V::N];
  for (int j = 0; j < 2 * V::N; ++j) lanes[j] = T(j);
  V m0 = V::set1(ninf), m1 = m0, best0 = V::zero(), best1 = V::zero();
  V idx0 = V::load(lanes), idx1 = V::load(lanes + V::N);
  const V step = V::set1(T(2 * V::N));
  auto take = [](V v, V idx, V& m, V& best) {
    const auto gt = lt(m, v);  // strictly greater: each lane keeps its first maximum
    m = select(gt, v, m);
    best = select(gt, idx, best);
  };
  ptrdiff_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    take(V::load(x + i), idx0, m0, best0);
    take(V::load(x + i + V::N), idx1, m1, best1);
    idx0 = idx0 + step;
    idx1 = idx1 + step;
  }
  if (i < n) take(load_partial<V>(x + i, n - i, ninf), idx0, m0, best0);
  if (i + V::N < n) take(load_partial<V>(x + i + V::N, n - i - V::N, ninf), idx1, m1, best1);
  alignas(64) T mv[2 * V::N], bv[2 * V::N];
  m0.store(mv), m1.store(mv + V::N), best0.store(bv), best1.store(bv + V::N);
  T m = ninf;
  T a = 0;
  for (int j = 0; j < 2 * V::N; ++j) {
    if (mv[j] > m || (mv[j] == m && bv[j] < a)) m = mv[j], a = bv[j];
  }
  max_out = m;
  arg_out = static_cast<ptrdiff_t>(a);
}

template <class V, class S>
void hardmax_row(const S* x, S* y, ptrdiff_t n) {
  using T = typename V::T;
  T m;
  ptrdiff_t arg;
  row_max_argmax<V>(x, n, m, arg);
  const bool nan_row = has_nan(x, n);
  const T fill = nan_row ? std::numeric_limits<T>::quiet_NaN() : T(0);
  for (ptrdiff_t i = 0; i < n; ++i) y[i] = narrow<S>(fill);
  if (!nan_row && n > 0) y[arg] = narrow<S>(T(1));
}

// H = -sum p log p = log(sum) + sum e (m - x) / sum with e = exp(x - m): every term is
// non-negative, so a nearly deterministic row keeps its small entropy's precision.
template <class V, class VD, class S>
double entropy_row(const S* x, const S* mask, ptrdiff_t n) {
  using T = typename V::T;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const V zero = V::zero(), vninf = V::set1(ninf);
  T m;
  if (mask) {
    m = weighted_row_stats<V, VD>(x, mask, n).max;
  } else {
    m = row_max<V>(x, n);
  }
  if (!std::isfinite(m)) {
    // NaN counted: NaN. k counted +inf entries: the limit distribution is uniform over them,
    // entropy log k. No counted mass: with a mask the probabilities are all 0 (entropy 0, as
    // 0 log 0 = 0); without one the row is all -inf and softmax is NaN, so is its entropy.
    std::ptrdiff_t k = 0;
    for (ptrdiff_t i = 0; i < n; ++i) {
      if (mask && widen(mask[i]) == T(0)) continue;
      if (std::isnan(widen(x[i]))) return std::numeric_limits<double>::quiet_NaN();
      k += (widen(x[i]) == std::numeric_limits<T>::infinity());
    }
    if (k > 0) return std::log(double(k));
    return mask ? 0.0 : std::numeric_limits<double>::quiet_NaN();
  }
  const V mv = V::set1(m), one = V::set1(T(1));
  WideSum<VD> rest, weighted_gap;
  TieCount<V> count;
  struct Terms {
    V rest, gap;
  };
  auto terms = [&](V xv, V wv) {
    const V xc = mask ? select(ne(wv, zero), xv, vninf) : xv;
    const auto at_max = eq(xc, mv);
    const V e = exp_sum_term_(xc - mv);
    count.add(at_max);
    // e * gap is 0 for entries far below the max (including -inf ones, where e = 0)
    return Terms{select(at_max, zero, e), select(eq(e, zero), zero, e * (mv - xc))};
  };
  auto at = [&](ptrdiff_t i) { return terms(V::load(x + i), mask ? V::load(mask + i) : one); };
  auto add = [&](Terms t) {
    rest.add(t.rest);
    weighted_gap.add(t.gap);
  };
  // As in the row statistics, four vectors are added in T before each widening to double:
  // every term is non-negative and below 1, so this costs two roundings of a few terms.
  ptrdiff_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    const Terms a = at(i), b = at(i + V::N), c = at(i + 2 * V::N), d = at(i + 3 * V::N);
    add(Terms{(a.rest + b.rest) + (c.rest + d.rest), (a.gap + b.gap) + (c.gap + d.gap)});
  }
  for (; i + V::N <= n; i += V::N) add(at(i));
  if (i < n) {
    add(terms(load_partial<V>(x + i, n - i, ninf), mask ? load_partial<V>(mask + i, n - i, 0) : one));
  }
  const double at_max = count.total(), rest_sum = rest.total();
  return log_abs_sum(at_max, rest_sum).value + weighted_gap.total() / (at_max + rest_sum);
}

// The index of z's single maximum where softmax(z) puts at least 1/2 there (st being z's
// statistics), else -1: where divergence_row's gradients cancel.
template <class S, class T>
ptrdiff_t confident_max(const S* z, ptrdiff_t n, const RowStats<T>& st) {
  if (st.at_max != 1.0 || st.rest > 1.0) return -1;
  for (ptrdiff_t j = 0; j < n; ++j) {
    if (widen(z[j]) == st.max) return j;
  }
  return -1;
}

// divergence_row's KL and gradients for one row of finite logits, formed in double.
template <class S, class T>
double kl_row_in_double(const S* zp, const S* zq, ptrdiff_t n, const RowStats<T>& sp,
                        const RowStats<T>& sq, double lp_off, double lq_off, S* grad_p, S* grad_q,
                        double scale) {
  auto lp = [&](ptrdiff_t j) { return (double(widen(zp[j])) - double(sp.max)) - lp_off; };
  auto lq = [&](ptrdiff_t j) { return (double(widen(zq[j])) - double(sq.max)) - lq_off; };
  double value = 0;
  for (ptrdiff_t j = 0; j < n; ++j) {
    const double p = std::exp(lp(j));
    if (p != 0) value += p * (lp(j) - lq(j));
  }
  // At the single maximum k of a confident P, d_k - KL as sum_j p_j (d_k - d_j), d = lp - lq
  // (see divergence_row): in double too, d_k and KL agree to far more digits than their
  // difference has.
  const ptrdiff_t top = std::isfinite(value) ? confident_max(zp, n, sp) : -1;
  double top_gap = 0;
  if (top >= 0) {
    const double d_top = lp(top) - lq(top);
    for (ptrdiff_t j = 0; j < n; ++j) {
      const double p = std::exp(lp(j));
      if (p != 0 && j != top) top_gap += p * (d_top - (lp(j) - lq(j)));
    }
  }
  double p_top = 0;
  for (ptrdiff_t j = 0; j < n; ++j) {
    // Read both entries before writing: a gradient may be written over its logits.
    const double lpj = lp(j), lqj = lq(j), p = std::exp(lpj), q = std::exp(lqj);
    if (j == top) p_top = p;
    if (grad_q) grad_q[j] = narrow<S>(T(scale * (q - p)));
    if (grad_p) grad_p[j] = narrow<S>(T(scale * (p == 0 ? 0.0 : p * ((lpj - lqj) - value))));
  }
  if (top >= 0 && grad_p) grad_p[top] = narrow<S>(T(scale * p_top * top_gap));
  return value;
}

// KL(P || Q) or the generalized JSD of P = softmax(zp), Q = softmax(zq); see table.h.
// Log-probabilities are formed as (z - max) - log(sum) with the subtraction compensated, so
// they are exact to rounding; rows whose maximum is not finite give NaN. The logits and the
// gradients are of the storage type S.
template <class V, class VD, class S>
double divergence_row(const S* zp, const S* zq, ptrdiff_t n, double beta, S* grad_p, S* grad_q,
                      double scale) {
  using T = typename V::T;
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const RowStats<T> sp = row_stats<V, VD>(zp, n), sq = row_stats<V, VD>(zq, n);
  if (!std::isfinite(sp.max) || !std::isfinite(sq.max) || std::isnan(sp.rest) ||
      std::isnan(sq.rest)) {
    if (grad_p)
      for (ptrdiff_t i = 0; i < n; ++i) grad_p[i] = narrow<S>(T(nan));
    if (grad_q)
      for (ptrdiff_t i = 0; i < n; ++i) grad_q[i] = narrow<S>(T(nan));
    return nan;
  }
  const double lp_off = log_abs_sum(sp.at_max, sp.rest).value;
  const double lq_off = log_abs_sum(sq.at_max, sq.rest).value;
  const V mp = V::set1(sp.max), neg_mp = V::set1(-sp.max), mq = V::set1(sq.max),
          neg_mq = V::set1(-sq.max);
  const V cp = V::set1(T(lp_off)), cq = V::set1(T(lq_off)), zero = V::zero();
  const bool kl = beta < 0;
  const V vb = V::set1(T(kl ? 0 : beta)), vb1 = V::set1(T(kl ? 0 : 1 - beta));
  const V log_b = V::set1(T(kl ? 0 : std::log(beta))), log_b1 = V::set1(T(kl ? 0 : std::log1p(-beta)));

  struct Terms {
    V lp, lq, p, q, lm;
  };
  auto terms = [&](V xp, V xq) {
    Terms t;
    t.lp = sub_shift_exact(xp, mp, neg_mp, cp);
    t.lq = sub_shift_exact(xq, mq, neg_mq, cq);
    t.p = exp_(t.lp);
    t.q = exp_(t.lq);
    if (!kl) {  // log M = logaddexp(log beta + lp, log(1 - beta) + lq)
      const V a = log_b + t.lp, b = log_b1 + t.lq;
      const V hi = max_(a, b), lo = min_(a, b);
      t.lm = select(eq(hi, V::set1(-std::numeric_limits<T>::infinity())), hi,
                    hi + log1p_unit_(exp_(lo - hi)));
    }
    return t;
  };
  // p * (a - b), with p = 0 adding 0 even where a - b is infinite
  auto weighted = [&](V p, V a, V b) { return select(eq(p, zero), zero, p * (a - b)); };

  WideSum<VD> total, sum_p, sum_q;
  auto body = [&](V xp, V xq, auto&& mask) {
    const Terms t = terms(xp, xq);
    if (kl) {
      total.add(mask(weighted(t.p, t.lp, t.lq)));
    } else {
      const V hp = vb * weighted(t.p, t.lp, t.lm), hq = vb1 * weighted(t.q, t.lq, t.lm);
      total.add(mask(hp + hq));
      sum_p.add(mask(hp));  // sum_c p_c h_c, for the gradient through softmax(zp)
      sum_q.add(mask(hq));
    }
  };
  ptrdiff_t i = 0;
  for (; i + V::N <= n; i += V::N) body(V::load(zp + i), V::load(zq + i), [](V v) { return v; });
  if (i < n) {
    const auto valid = tail_mask<V>(n - i);
    body(load_partial<V>(zp + i, n - i, 0), load_partial<V>(zq + i, n - i, 0),
         [&](V v) { return select(valid, v, zero); });
  }
  const double value = total.total();
  if (kl && !std::isfinite(value)) {
    // Finite logits whose log-ratio overflows T (log q = -6e38 for zq = [-3e38, 3e38] in
    // float32): the row again in double, where the divergence (beyond T's range, so inf once
    // rounded) and its gradient p (lp - lq - KL), finite as the difference of two huge
    // terms, are exact to rounding instead of inf - inf = NaN.
    bool finite = true;
    for (ptrdiff_t j = 0; j < n && finite; ++j) {
      finite = std::isfinite(double(widen(zp[j]))) && std::isfinite(double(widen(zq[j])));
    }
    if (finite) return kl_row_in_double(zp, zq, n, sp, sq, lp_off, lq_off, grad_p, grad_q, scale);
  }
  if (!grad_p && !grad_q) return value;

  // d KL/d zq = q - p;  d KL/d zp = p ((lp - lq) - KL).
  // JSD: d/dzp = p (h - sum p h) / p-weighted, with h = beta (lp - lm); likewise for q.
  //
  // At the single maximum k of a confident P (p_k >= 1/2) the gradient through P cancels.
  // With KL, d = lp - lq: d_k - KL = sum_{j != k} p_j (d_k - d_j) is far below d_k and KL.
  // With the JSD, h = beta (lp - lm): h_k - sum_j p_j h_j = sum_j p_j (h_k - h_j) likewise;
  // and the same holds for the gradient through Q at Q's confident maximum, with
  // g = (1 - beta) (lq - lm). For KL, where Q's maximum is P's k too, q_k - p_k =
  // (1 - p_k) - (1 - q_k) is far below both. For zp = [0, -20], zq = [0, 0] float32 gave
  // 6e-8 and 0 for 4.1e-8 and 2.1e-9. Those entries are formed again: the sums over the other
  // entries are taken in the gradient sweep, and 1 - p_k = rest / sum comes from the
  // statistics, in double.
  const double p_sum = sp.at_max + sp.rest, q_sum = sq.at_max + sq.rest;
  const bool value_finite = std::isfinite(value);
  const bool grads_through_p = grad_p || (kl && grad_q);
  const ptrdiff_t top_p = value_finite && grads_through_p ? confident_max(zp, n, sp) : -1;
  const ptrdiff_t top_q = value_finite && !kl && grad_q ? confident_max(zq, n, sq) : -1;
  const bool fix_kl_q = kl && top_p >= 0 && sq.at_max == 1.0 && widen(zq[top_p]) == sq.max;
  // The per-entry quantity whose spread about entry k the sums take, as the sweep forms it
  // (so that entry k's own term is exactly 0).
  auto spread_p = [&](const Terms& t) { return kl ? t.lp - t.lq : vb * (t.lp - t.lm); };
  auto spread_q = [&](const Terms& t) { return vb1 * (t.lq - t.lm); };
  auto at_entry = [&](ptrdiff_t j, auto&& spread) {
    alignas(64) T lanes[V::N];
    spread(terms(V::set1(widen(zp[j])), V::set1(widen(zq[j])))).store(lanes);
    return V::set1(lanes[0]);
  };
  const V top_p_spread = top_p >= 0 ? at_entry(top_p, spread_p) : zero;
  const V top_q_spread = top_q >= 0 ? at_entry(top_q, spread_q) : zero;
  WideSum<VD> gap_p, gap_q;  // sum_j p_j (s_k - s_j), and Q's
  const V s = V::set1(T(scale));
  const V kl_v = V::set1(T(value));
  const V shp = V::set1(T(sum_p.total())), shq = V::set1(T(sum_q.total()));
  auto grads = [&](V xp, V xq, V& gp, V& gq, auto&& mask) {
    const Terms t = terms(xp, xq);
    if (kl) {
      gq = s * (t.q - t.p);
      gp = s * (weighted(t.p, t.lp, t.lq) - t.p * kl_v);
    } else {
      gp = s * (vb * weighted(t.p, t.lp, t.lm) - t.p * shp);
      gq = s * (vb1 * weighted(t.q, t.lq, t.lm) - t.q * shq);
    }
    if (top_p >= 0) gap_p.add(mask(weighted(t.p, top_p_spread, spread_p(t))));
    if (top_q >= 0) gap_q.add(mask(weighted(t.q, top_q_spread, spread_q(t))));
  };
  V gp, gq;
  for (i = 0; i + V::N <= n; i += V::N) {
    grads(V::load(zp + i), V::load(zq + i), gp, gq, [](V v) { return v; });
    if (grad_p) gp.store(grad_p + i);
    if (grad_q) gq.store(grad_q + i);
  }
  if (i < n) {
    const auto valid = tail_mask<V>(n - i);
    grads(load_partial<V>(zp + i, n - i, 0), load_partial<V>(zq + i, n - i, 0), gp, gq,
          [&](V v) { return select(valid, v, zero); });
    if (grad_p) store_partial(grad_p + i, n - i, gp);
    if (grad_q) store_partial(grad_q + i, n - i, gq);
  }
  if (top_p >= 0 && grad_p) grad_p[top_p] = narrow<S>(T(scale * (gap_p.total() / p_sum)));
  if (top_q >= 0 && grad_q) grad_q[top_q] = narrow<S>(T(scale * (gap_q.total() / q_sum)));
  if (fix_kl_q && grad_q) {
    grad_q[top_p] = narrow<S>(T(scale * (sp.rest / p_sum - sq.rest / q_sum)));
  }
  return value;
}


template <class V>
struct CrossEntropyKernel {
  using T = typename V::T;

  const CrossEntropyParams<T>& p;
  const bool capped = p.softcap > 0;
  const V cap = V::set1(p.softcap);
  const V inv_cap = V::set1(capped ? T(1) / p.softcap : T(0));
  const V one = V::set1(T(1));

  V capped_logits(V z) const { return capped ? cap * tanh_(z * inv_cap) : z; }
  // One value capped by the same vector code as the sweep, so that the row maximum and the
  // target compare equal to their own entries there.
  T capped_one(T z) const {
    alignas(64) T lanes[V::N];
    capped_logits(V::set1(z)).store(lanes);
    return lanes[0];
  }
  // d(capped)/dz at a raw logit z: 1 - tanh^2(z / c) = 4 e / (1 + e)^2 with e = exp(-2|z| / c).
  // Formed as 1 - t^2 from the capped value it cancelled where |t| is near 1: 4608 ulp off at
  // z / c = 5 in float32, and 0 instead of 6e-9 at z / c = 10.
  V cap_slope(V z) const {
    if (!capped) return one;
    const V e = exp_(V::set1(T(-2)) * abs_(z * inv_cap));
    const V one_plus_e = one + e;
    return V::set1(T(4)) * e / (one_plus_e * one_plus_e);
  }
};

// z and grad are of the storage type S; the soft targets and class weights are in the
// compute type.
template <class V, class VD, class S>
CrossEntropyRow cross_entropy_row(const S* z, ptrdiff_t n, long long target,
                                  const typename V::T* soft, bool counted,
                                  const CrossEntropyParams<typename V::T>& params,
                                  double grad_scale, S* grad, Workspace ws) {
  using T = typename V::T;
  using Mask = typename V::Mask;
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const CrossEntropyKernel<V> k{params};
  const T* w = params.class_weight;
  const double a = params.smoothing, C = double(n);

  CrossEntropyRow out{0.0, 0.0, -1};
  const bool need_smooth = soft == nullptr && a > 0;
  // The plain case (index target, no smoothing or cap, no argmax) is exactly logsumexp's
  // statistics, whose sweep is the tuned one.
  const bool plain = !soft && !need_smooth && !k.capped && !params.want_argmax;
  RowStats<T> plain_stats{};
  T m_raw;
  ptrdiff_t top = -1;  // the first maximum of the row (not in the plain case)
  // Read before anything is written: grad may be z itself.
  const T z_target_raw = (!soft && counted && target >= 0) ? widen(z[target]) : T(0);
  // For a plain row with a gradient the one read of the row also stores exp(z - m_b) in
  // the scratch row (m_b: the running max of each block), so the gradient costs one scaling
  // per block instead of a second exp per entry, and grad is written once.
  T* exps = nullptr;
  T* block_max = nullptr;
  if (plain && grad && counted) {
    exps = take_scratch<T>(ws, n);
    block_max = take_scratch<T>(ws, n / (kStatsBlockBytes / ptrdiff_t(sizeof(T))) + 1);
    plain_stats = row_stats_store<V, VD, true>(z, exps, n, block_max);
    m_raw = plain_stats.max;
    if (!std::isfinite(m_raw)) exps = nullptr;
  } else if (plain) {
    plain_stats = row_stats<V, VD>(z, n);
    m_raw = plain_stats.max;
  } else {
    row_max_argmax<V>(z, n, m_raw, top);
    if (params.want_argmax) out.argmax = top;
  }
  const T m = k.capped_one(m_raw);

  if (!std::isfinite(m)) {
    // +inf, or only -inf (and maybe NaN): the loss over all classes has no limit here, so the
    // row's loss and gradient are NaN; lse follows logsumexp's rules.
    out.lse = logsumexp_special_row<S>(z, nullptr, n).value;
    out.loss = counted ? nan : 0.0;
    if (grad) {
      for (ptrdiff_t j = 0; j < n; ++j) grad[j] = narrow<S>(counted ? T(nan) : T(0));
    }
    return out;
  }

  // Sweep 1: exp(z - m) split into the entries at the max and the rest, and the sums the
  // label smoothing (index targets) or the soft targets need.
  const V mv = V::set1(m), zero = V::zero();
  const V spread = V::set1(T(a / C)), keep = V::set1(T(1.0 - a));
  TieCount<V> count;
  WideSum<VD> rest, smooth, target_weight, target_dist, target_weight_rest;
  auto sweep = [&](V zv, V wv, V yv, Mask valid) {
    V zc = k.capped_logits(zv);
    zc = select(valid, zc, V::set1(-std::numeric_limits<T>::infinity()));
    const auto at_max = eq(zc, mv);
    rest.add(select(at_max, zero, exp_sum_term_(zc - mv)));
    count.add(at_max);
    const V gap = select(valid, mv - zc, zero);  // >= 0: sums below never cancel
    // A zero coefficient times an infinite gap (a -inf logit) counts as 0, as 0 log 0 does.
    auto weighted_gap = [&](V coeff) { return select(eq(coeff, zero), zero, coeff * gap); };
    if (need_smooth) smooth.add(weighted_gap(wv));
    if (soft) {
      const V yw = select(valid, fma(keep, yv, spread) * wv, zero);
      target_weight.add(yw);
      target_weight_rest.add(select(at_max, zero, yw));  // for the maximum's gradient entry
      target_dist.add(weighted_gap(yw));
    }
  };
  const Mask all = eq(zero, zero);
  ptrdiff_t i = 0;
  if (!plain) {
    for (; i + V::N <= n; i += V::N) {
      sweep(V::load(z + i), w ? V::load(w + i) : k.one, soft ? V::load(soft + i) : zero, all);
    }
    if (i < n) {
      const ptrdiff_t r = n - i;
      sweep(load_partial<V>(z + i, r, 0), w ? load_partial<V>(w + i, r, 0) : k.one,
            soft ? load_partial<V>(soft + i, r, 0) : zero, tail_mask<V>(r));
    }
  }
  // Soft targets whose products with the class weights overflow T (3e38 * 3e38 in float32)
  // from finite operands: the soft sums, and below the gradient, are formed again in double,
  // where a term that is 0 in exact arithmetic (a gap of 0 times a huge weight) stays 0
  // instead of inf * 0 = NaN.
  double wy = soft ? target_weight.total() : 0.0;
  double wy_rest = soft ? target_weight_rest.total() : 0.0;
  double wy_dist = soft ? target_dist.total() : 0.0;
  const bool soft_in_double = soft && !std::isfinite(wy) && [&] {
    for (ptrdiff_t j = 0; j < n; ++j) {
      if (!std::isfinite(soft[j]) || (w && !std::isfinite(w[j]))) return false;
    }
    return true;
  }();
  auto soft_weight = [&](ptrdiff_t j) {  // the row's q_j in double
    return ((1.0 - a) * double(soft[j]) + a / C) * (w ? double(w[j]) : 1.0);
  };
  if (soft_in_double) {
    wy = wy_rest = wy_dist = 0.0;
    for (ptrdiff_t j = 0; j < n; ++j) {
      const T zc = k.capped_one(widen(z[j]));
      const double yw = soft_weight(j), gap = double(T(m - zc));
      wy += yw;
      if (zc != m) wy_rest += yw;
      if (yw != 0.0) wy_dist += yw * gap;
    }
  }
  const double at_max = plain ? plain_stats.at_max : count.total();
  const double rest_sum = plain ? plain_stats.rest : rest.total();
  const double log_sum = log_abs_sum(at_max, rest_sum).value;  // log(sum exp(z - m))
  const double lse = double(m) + log_sum;
  out.lse = lse;
  if (std::isnan(lse) && params.want_argmax) {  // the max skipped a NaN; NumPy reports it
    for (ptrdiff_t j = 0; j < n; ++j) {
      if (std::isnan(widen(z[j]))) {
        out.argmax = j;
        break;
      }
    }
  }
  if (!counted) {
    if (grad) {
      for (ptrdiff_t j = 0; j < n; ++j) grad[j] = narrow<S>(T(0));
    }
    return out;
  }

  // Loss. Every term is a sum of non-negative gaps (m - z_c) plus log_sum, so it keeps its
  // relative precision when the loss is tiny (a confident, correct prediction).
  const double z_loss_term = params.z_loss * lse * lse;
  double z_target = 0, w_target = 1, target_coeff = 0;
  if (soft) {
    out.loss = wy * log_sum + wy_dist + z_loss_term;
    target_coeff = wy;
  } else {
    z_target = double(k.capped_one(z_target_raw));
    w_target = w ? double(w[target]) : 1.0;
    const double nll = (double(m) - z_target) + log_sum;
    const double smooth_loss = params.weight_sum * log_sum + smooth.total();
    out.loss = (1.0 - a) * w_target * nll + (a / C) * smooth_loss + z_loss_term;
    target_coeff = (1.0 - a) * w_target + (a / C) * params.weight_sum;
  }
  if (!grad) return out;

  // Sweep 2: grad_j = s * (coeff * p_j - q_j) * cap'(z_j), where q is the smoothed target
  // distribution times the class weights, and p_j = exp(z_j - m) / sum.
  const double sum = at_max + rest_sum;
  const double p_coeff = grad_scale * (target_coeff + 2.0 * params.z_loss * lse) / sum;
  // With probability targets, the entry of a single maximum is sum(q) p_top - q_top, which
  // cancels when p_top rounds to 1 and q_top holds most of sum(q): 0 instead of -2e-9 for
  // a one-hot target and logits [0, 20], 0 instead of -1e23 (-inf in float16) for the
  // target [0.6, 3e38]. Formed in double as q_rest p_top - q_top (1 - p_top), where
  // 1 - p_top = rest_sum / sum and q_rest is the target weight away from the maximum, it
  // keeps its accuracy. Read before the gradient is written over z.
  const bool fix_top = soft && at_max == 1.0 && top >= 0;
  double z_top_raw = 0, q_top = 0;
  if (fix_top) {
    z_top_raw = double(widen(z[top]));
    alignas(64) T lanes[V::N];  // q_top as the sweeps form it
    (fma(keep, V::set1(soft[top]), spread) * V::set1(w ? w[top] : T(1))).store(lanes);
    q_top = soft_in_double ? soft_weight(top) : double(lanes[0]);
  }
  auto slope_at = [&](double z_raw) {  // cap_slope in double
    const double e = std::exp(-2.0 * std::fabs(z_raw) / double(params.softcap));
    return k.capped ? 4.0 * e / ((1.0 + e) * (1.0 + e)) : 1.0;
  };
  if (soft_in_double) {
    for (ptrdiff_t j = 0; j < n; ++j) {
      const T zraw = widen(z[j]);
      const double p = std::exp(double(k.capped_one(zraw)) - double(m));
      const double g = (p * p_coeff - soft_weight(j) * grad_scale) * slope_at(double(zraw));
      grad[j] = narrow<S>(T(g));
    }
  } else if (exps) {
    scale_blocks<V>(exps, grad, n, block_max, m, p_coeff, params.stream_grad);
  } else {
    const V p_scale = V::set1(T(p_coeff)), q_scale = V::set1(T(grad_scale)), neg_m = V::set1(-m);
    write_row<V>(grad, n, params.stream_grad, [&](ptrdiff_t j, ptrdiff_t count) {
      const V zraw = load_n<V>(z + j, count, 0);
      const V zc = k.capped_logits(zraw);
      const V wv = w ? load_n<V>(w + j, count, 0) : k.one;
      const V q = soft ? fma(keep, load_n<V>(soft + j, count, 0), spread) * wv
                       : (need_smooth ? spread * wv : zero);
      return (exp_diff(zc, mv, neg_m) * p_scale - q * q_scale) * k.cap_slope(zraw);
    });
  }
  if (fix_top) {
    const double p_top = 1.0 / sum, others = rest_sum / sum;  // 1 - p_top
    const double g = wy_rest * p_top - q_top * others + 2.0 * params.z_loss * lse * p_top;
    grad[top] = narrow<S>(T(grad_scale * g * slope_at(z_top_raw)));
  }
  if (!soft) {
    // The target's entry holds p_t - 1, which cancels when p_t is near 1: form it in double
    // as expm1(z_t - lse).
    const double pt_minus_1 = std::expm1((z_target - double(m)) - log_sum);
    const double pt = 1.0 + pt_minus_1;
    const double slope = slope_at(double(z_target_raw));  // as cap_slope, from the raw logit
    const double g = (1.0 - a) * w_target * pt_minus_1 +
                     (a / C) * (pt * params.weight_sum - w_target) +
                     2.0 * params.z_loss * lse * pt;
    grad[target] = narrow<S>(T(grad_scale * g * slope));
  }
  return out;
}

}  // namespace logitkit::LOGITKIT_ISA_NS
