// Equivalence of every vectorised kernel table with the scalar one.
//
// Each ISA compiles the same generic kernels with other vector types, lane counts, summation
// orders and (mostly) fused multiply-adds, so on identical inputs it may differ from the
// scalar table by rounding only. Finite results are therefore bounded in units in the last
// place of the element type; anything decided by the special-value rules (NaN, infinities,
// rows that are all -inf, huge finite values) must come out exactly as in the scalar table.
//
// Build: the CMake target isa_equivalence (option LOGITKIT_BUILD_ISA_HARNESS), as
// check_isas.sh does. It links the tables of every ISA that csrc/isa/isas.cmake compiles for
// the target architecture, and runs each one the runtime finds this CPU able to execute.
// Usage: isa_equivalence [-v] [seed]; -v shows the worst case of each line. Exit status 1
// when any check fails.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/tables.h"

namespace {

using logitkit::IsaTable;
using logitkit::KernelSet;
using logitkit::LseResult;
using logitkit::RowStats;
using std::ptrdiff_t;

// ---- tolerances ----------------------------------------------------------------------
//
// In ulps of the element type (float ulps for the double-valued results of float rows),
// about twice the largest difference from the scalar table measured on sse2 and avx2 over
// about a hundred seeds and on neon (under qemu) over a few, so that other seeds and
// compilers have room while a real regression does not hide. The f64 sums stand out: the
// scalar table adds a long row strictly in order, the vector tables in lanes, and over 4099
// entries of a few tied values (the "ties" rows) the two orders drift apart by up to 76
// ulps of the sum. sub_shift is additions and subtractions only: every ISA must give the
// same bits.
//
// From unary:entr on, the measurements are over sixty seeds on sse2 and avx2 and four on
// neon. softmax_backward_row's f32 rows came out bit for bit the same (its sum is carried in
// double and rounded to float once), which nothing guarantees: 1 ulp leaves room for that
// one rounding to fall the other way. Its f64 tolerances are the largest of all: with a
// constant g, y (g - s) and g - exp(y) s cancel down to the rounding of the sum s itself,
// which the scalar table forms in order over 4099 equal terms and which drifts by up to
// 1024 ulps of g. hardmax_row and the argmax of cross_entropy_row follow from comparisons
// alone and must agree exactly, as must eval_row's maximum, argmax, rank and finiteness; its
// sums were measured over fifteen seeds on sse2, avx2, avx512 and avx512bf16.
struct Tolerance {
  const char* func;
  double f32, f64;
};

constexpr Tolerance kTolerances[] = {
    {"softmax_row", 8, 160},
    {"log_softmax_row", 4, 16},
    {"logsumexp_row", 0.6, 6},
    {"logsumexp_row+b", 3, 8},
    {"stats", 2, 128},
    {"weighted_stats", 4, 12},
    {"sub_shift", 0, 0},
    {"softmax_special", 0, 0},
    {"logsumexp_special", 0, 0},
    {"unary:sigmoid", 4, 4},
    {"unary:log_sigmoid", 6, 6},
    {"unary:softplus", 6, 6},
    {"unary:logit", 2, 2},
    {"unary:exp", 2, 2},
    {"unary:log", 2, 2},
    {"unary:entr", 4, 4},
    {"masked_softmax_row", 6, 128},
    {"masked_softmax_row+log", 4, 16},
    {"softmax_backward_row", 1, 1400},
    {"softmax_backward_row+log", 4, 2048},
    {"hardmax_row", 0, 0},
    {"entropy_row", 4.5, 40},
    {"cross_entropy_row:argmax", 0, 0},
    {"cross_entropy_row:lse", 5, 42},
    {"cross_entropy_row:loss", 5, 96},
    {"cross_entropy_row:grad", 20, 640},
    {"eval_row:argmax,rank", 0, 0},
    {"eval_row:max,finite", 0, 0},
    {"eval_row:lse", 2, 6},
    {"eval_row:loss", 3, 32},
    {"eval_row:entropy", 5, 24},
    {"eval_row:brier", 6, 24},
    {"bce_row:sum", 6, 96},
    {"bce_row:loss", 10, 10},
    {"bce_row:grad", 8, 10},
    {"softmax_columns", 8, 160},
    {"softmax_columns+log", 4, 16},
    {"logsumexp_columns", 1, 6},  // rounded to T, unlike the double-valued row results
    {"entropy_columns", 4.5, 40},
    {"cross_entropy_columns:lse", 5, 42},
    {"cross_entropy_columns:loss", 5, 96},
    {"cross_entropy_columns:grad", 20, 640},
    {"rows_to_columns", 0, 0},  // moves values: every ISA must give the same bits
    {"columns_to_rows", 0, 0},
};

const char* const kUnaryNames[] = {"unary:sigmoid", "unary:log_sigmoid", "unary:softplus", "unary:logit",
                                   "unary:exp",     "unary:log",         "unary:entr"};
// A new UnaryOp without a name here would otherwise be read past the end of the array.
static_assert(sizeof(kUnaryNames) / sizeof(kUnaryNames[0]) == logitkit::kNumUnaryOps,
              "name every UnaryOp in kUnaryNames (and give it inputs in unary_inputs)");

// ---- element types -------------------------------------------------------------------

template <class T>
struct Dtype;

template <>
struct Dtype<float> {
  static constexpr const char* name = "f32";
  static constexpr float huge = 1e30f;
  static const KernelSet<float>& of(const IsaTable& t) { return t.f32; }
};

template <>
struct Dtype<double> {
  static constexpr const char* name = "f64";
  static constexpr double huge = 1e300;
  static const KernelSet<double>& of(const IsaTable& t) { return t.f64; }
};

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();
template <class T>
constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

// Spacing of T's numbers at magnitude mag; below the normal range it is the subnormal step.
template <class T>
double ulp_at(double mag) {
  if (!(mag >= double(std::numeric_limits<T>::min()))) {
    return double(std::numeric_limits<T>::denorm_min());
  }
  return std::ldexp(double(std::numeric_limits<T>::epsilon()), std::ilogb(mag));
}

// Difference in ulps of T at the larger of the two magnitudes (or at mag, when the quantity
// is known to be computed relative to something larger). NaN and infinities admit no
// rounding difference: a mismatch there is infinitely many ulps.
template <class T>
double ulp_diff(double got, double want, double mag = 0) {
  if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want) ? 0 : kInf<double>;
  if (std::isinf(got) || std::isinf(want)) return got == want ? 0 : kInf<double>;
  if (got == want) return 0;
  mag = std::max({mag, std::fabs(got), std::fabs(want)});
  return std::fabs(got - want) / ulp_at<T>(mag);
}

template <class T>
bool same_bits(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(T)) == 0;
}

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g (%a)", v, v);
  return buf;
}

// ---- bookkeeping ---------------------------------------------------------------------

// One output line: one function of one ISA for one element type.
struct Check {
  std::string func;
  double tol = 0;
  double max_ulp = 0;
  long compared = 0;
  long failed = 0;
  long nan_rows = 0, nan_row_max_differs = 0;  // see compare_stats
  long unmeasured = 0;                        // see compare_lse
  std::vector<std::string> examples;
  std::string worst;  // the case behind max_ulp

  // Descriptions are built only for failures and new maxima, which keeps the run cheap.
  template <class Describe>
  void record(double ulps, double allowed, const Describe& describe) {
    ++compared;
    if (std::isfinite(ulps) && ulps > max_ulp) {
      max_ulp = ulps;
      worst = describe();
    }
    if (!(ulps <= allowed)) fail(describe() + "  ulp=" + (std::isfinite(ulps) ? std::to_string(ulps) : "mismatch"));
  }
  void fail(const std::string& what) {
    ++failed;
    if (examples.size() < 6) examples.push_back(what);
  }
};

class Checks {
 public:
  template <class T>
  Check& get(const char* func) {
    for (Check& c : checks_) {
      if (c.func == func) return c;
    }
    Check c;
    c.func = func;
    for (const Tolerance& t : kTolerances) {
      if (c.func == t.func) c.tol = std::is_same<T, float>::value ? t.f32 : t.f64;
    }
    checks_.push_back(c);
    return checks_.back();
  }
  std::deque<Check>& all() { return checks_; }

 private:
  std::deque<Check> checks_;  // references handed out stay valid as checks are added
};

// ---- inputs --------------------------------------------------------------------------

// Every tail length up to several vectors for every lane count (1..16), then tails around
// the larger block sizes, then rows long enough for summation order to matter.
std::vector<ptrdiff_t> test_sizes() {
  std::vector<ptrdiff_t> s;
  for (ptrdiff_t n = 0; n <= 70; ++n) s.push_back(n);
  for (ptrdiff_t n : {127, 128, 129, 255, 256, 257, 1000, 4099}) s.push_back(n);
  return s;
}

// The driver's part in these direct kernel calls: the scratch of one call, sized for double
// (the larger bound) so that one helper serves both types.
logitkit::Workspace scratch(ptrdiff_t n, ptrdiff_t width = 0) {
  static std::vector<unsigned char> block;
  const size_t bytes = logitkit::scratch_bytes<double>(n, width);
  if (block.size() < bytes) block.resize(bytes);
  return {block.data(), block.data() + block.size()};
}

// Each (dtype, function group, size, pattern, repetition) gets its own stream, so every
// ISA sees the same inputs and a failing case can be regenerated on its own.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(splitmix(seed)) {}
  static std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return splitmix(a ^ splitmix(b)); }
  double normal() { return normal_(gen_); }
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(gen_); }
  ptrdiff_t index(ptrdiff_t n) { return static_cast<ptrdiff_t>(gen_() % std::uint64_t(n)); }
  long integer(long lo, long hi) { return lo + static_cast<long>(gen_() % std::uint64_t(hi - lo + 1)); }

 private:
  static std::uint64_t splitmix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::mt19937_64 gen_;
  std::normal_distribution<double> normal_;
};

enum class Pattern {
  kNormal1,
  kNormal30,
  kNormal300,
  kTies,       // small integers: many entries equal to the maximum
  kSomeNegInf, // -inf entries in an otherwise finite row
  kHuge,       // +-1e30 (f32) / +-1e300 (f64) and +-max among ordinary values
  kNaN,
  kPosInf1,
  kPosInf2,
  kAllNegInf,
  kNaNPosInf,
  kNaNAllNegInf,
};

// exact: the unweighted results follow from the special-value rules alone (for huge rows:
// each entry is at the max or exp underflows to 0, so there is nothing to round). Weighted
// rows are never exact as such: the weights decide which special entries count, and tied
// huge maxima sum their weights in lane order; compare_lse and compare_stats still demand
// exact agreement wherever a counted entry is NaN, the counted max is not finite, or every
// exponential below the max underflows.
struct PatternInfo {
  Pattern pattern;
  const char* name;
  ptrdiff_t min_n;
  bool exact;
};

constexpr PatternInfo kPatterns[] = {
    {Pattern::kNormal1, "normal*1", 0, false},
    {Pattern::kNormal30, "normal*30", 1, false},
    {Pattern::kNormal300, "normal*300", 1, false},
    {Pattern::kTies, "ties", 1, false},
    {Pattern::kSomeNegInf, "some -inf", 2, false},
    {Pattern::kHuge, "huge", 1, true},
    {Pattern::kNaN, "one NaN", 1, true},
    {Pattern::kPosInf1, "+inf once", 1, true},
    {Pattern::kPosInf2, "+inf twice", 2, true},
    {Pattern::kAllNegInf, "all -inf", 1, true},
    {Pattern::kNaNPosInf, "NaN and +inf", 2, true},
    {Pattern::kNaNAllNegInf, "NaN among -inf", 1, true},
};

// Fills x; returns the positions holding a non-finite or huge value.
template <class T>
std::vector<ptrdiff_t> fill_row(Pattern p, Rng& rng, std::vector<T>& x) {
  const ptrdiff_t n = static_cast<ptrdiff_t>(x.size());
  std::vector<ptrdiff_t> special;
  auto normals = [&](double scale) {
    for (T& v : x) v = T(rng.normal() * scale);
  };
  // Distinct random positions, so that "twice" really means two entries.
  auto put = [&](T value, int count) {
    for (int k = 0; k < count; ++k) {
      ptrdiff_t i;
      do i = rng.index(n);
      while (std::find(special.begin(), special.end(), i) != special.end());
      x[i] = value;
      special.push_back(i);
    }
  };
  switch (p) {
    case Pattern::kNormal1: normals(1); break;
    case Pattern::kNormal30: normals(30); break;
    case Pattern::kNormal300: normals(300); break;
    case Pattern::kTies:
      for (T& v : x) v = T(rng.integer(-3, 3));
      break;
    case Pattern::kSomeNegInf: {
      normals(30);
      const ptrdiff_t keep = rng.index(n);  // at least one finite entry
      for (ptrdiff_t i = 0; i < n; ++i) {
        if (i != keep && rng.uniform() < 0.3) {
          x[i] = -kInf<T>;
          special.push_back(i);
        }
      }
      break;
    }
    case Pattern::kHuge: {
      normals(1);
      const T values[] = {Dtype<T>::huge, -Dtype<T>::huge, std::numeric_limits<T>::max(),
                          -std::numeric_limits<T>::max()};
      put(Dtype<T>::huge, 1);
      for (ptrdiff_t i = 0; i < n; ++i) {
        if (rng.uniform() < 0.25 && std::find(special.begin(), special.end(), i) == special.end()) {
          // +max only now and then, so that most huge rows have +1e30 as their maximum
          const T v = values[rng.index(rng.uniform() < 0.1 ? 4 : 2)];
          x[i] = v;
          special.push_back(i);
        }
      }
      break;
    }
    case Pattern::kNaN: normals(1); put(kNaN<T>, 1); break;
    case Pattern::kPosInf1: normals(1); put(kInf<T>, 1); break;
    case Pattern::kPosInf2: normals(1); put(kInf<T>, 2); break;
    case Pattern::kAllNegInf:
      std::fill(x.begin(), x.end(), -kInf<T>);
      for (ptrdiff_t i = 0; i < n; ++i) special.push_back(i);
      break;
    case Pattern::kNaNPosInf: normals(1); put(kNaN<T>, 1); put(kInf<T>, 1); break;
    case Pattern::kNaNAllNegInf:
      std::fill(x.begin(), x.end(), -kInf<T>);
      put(kNaN<T>, 1);
      break;
  }
  return special;
}

enum class Weights { kMixed, kMasked, kAllZero, kOneNaN };

struct WeightsInfo {
  Weights kind;
  const char* name;
};

constexpr WeightsInfo kWeightKinds[] = {
    {Weights::kMixed, "weights normal, 20% zero"},
    {Weights::kMasked, "weights zero at the special entries"},
    {Weights::kAllZero, "weights all zero"},
    {Weights::kOneNaN, "one NaN weight"},
};

template <class T>
void fill_weights(Weights kind, Rng& rng, const std::vector<ptrdiff_t>& special, std::vector<T>& b) {
  for (T& w : b) w = rng.uniform() < 0.2 ? T(0) : T(rng.normal());
  if (kind == Weights::kMasked) {
    for (ptrdiff_t i : special) b[i] = T(0);
  } else if (kind == Weights::kAllZero) {
    std::fill(b.begin(), b.end(), T(0));
  } else if (kind == Weights::kOneNaN && !b.empty()) {
    b[rng.index(static_cast<ptrdiff_t>(b.size()))] = kNaN<T>;
  }
}

// ---- what the kernels should be compared against -------------------------------------

// Magnitudes of the sums a (weighted) row reduces to, relative to its counted maximum m:
// the reductions' rounding is relative to these sums of absolute values, not to the
// (possibly cancelling) signed results.
struct RowSums {
  bool counted_nan = false;
  double m = -kInf<double>;
  long double sum = 0;      // sum of b exp(x - m), to judge cancellation
  long double sum_abs = 0;  // sum of |b| exp(x - m)
  double at_max_abs = 0;    // sum of |b| over the entries equal to m
  double rest_abs = 0;      // sum of |b| exp(x - m) over the others
  // exp(x - m) underflows for every entry under m, so any correct kernel's rest is exactly
  // 0 (rows of huge values, or all entries tied).
  bool rest_underflows = true;
};

// exp(d) is below half the smallest subnormal of T (with a margin for the rounding of d),
// so every correct exp returns exactly 0: a fact that needs no scalar table to check.
template <class T>
bool exp_underflows(long double d) {
  static const long double limit = std::log(static_cast<long double>(std::numeric_limits<T>::denorm_min())) - 1;
  return d < limit;
}

template <class T>
RowSums row_sums(const T* x, const T* b, ptrdiff_t n) {
  RowSums s;
  for (ptrdiff_t i = 0; i < n; ++i) {
    const double w = b ? double(b[i]) : 1.0;
    if (w == 0) continue;
    if (std::isnan(x[i]) || std::isnan(w)) {
      s.counted_nan = true;
    } else {
      s.m = std::max(s.m, double(x[i]));
    }
  }
  if (s.counted_nan || !std::isfinite(s.m)) return s;
  for (ptrdiff_t i = 0; i < n; ++i) {
    const double w = b ? double(b[i]) : 1.0;
    if (w == 0) continue;
    if (double(x[i]) == s.m) {
      s.sum += w;
      s.sum_abs += std::fabs(w);
      s.at_max_abs += std::fabs(w);
    } else {
      const long double d = static_cast<long double>(x[i]) - s.m;
      if (!exp_underflows<T>(d)) s.rest_underflows = false;
      const long double t = std::exp(d) * w;
      s.sum += t;
      s.sum_abs += std::fabs(t);
      s.rest_abs += double(std::fabs(t));
    }
  }
  return s;
}

struct Case {
  std::string what;  // size and input pattern, for failure messages
};

// exact_at(i): element i is decided by the special-value rules; mag_at(i): the magnitude its
// rounding is relative to when that is more than the element itself (see ulp_diff).
template <class T, class ExactAt, class MagAt>
void compare_rows_by(Check& c, const std::vector<T>& got, const std::vector<T>& want, const Case& cs,
                     const ExactAt& exact_at, const MagAt& mag_at, const std::vector<T>* input = nullptr) {
  for (size_t i = 0; i < got.size(); ++i) {
    const bool exact = exact_at(i);
    c.record(ulp_diff<T>(got[i], want[i], exact ? 0.0 : mag_at(i)), exact ? 0.0 : c.tol, [&] {
      std::string s = cs.what + " i=" + std::to_string(i);
      if (input) s += " x=" + fmt(double((*input)[i]));
      return s + " got=" + fmt(double(got[i])) + " scalar=" + fmt(double(want[i]));
    });
  }
}

template <class T>
void compare_rows(Check& c, const std::vector<T>& got, const std::vector<T>& want, bool exact,
                  const Case& cs, const std::vector<T>* input = nullptr) {
  compare_rows_by(
      c, got, want, cs, [&](size_t) { return exact; }, [](size_t) { return 0.0; }, input);
}

// y may alias x: the kernel run in place must give the bits it gives out of place.
template <class T>
void compare_in_place(Check& c, const std::vector<T>& in_place, const std::vector<T>& out_of_place,
                      const Case& cs) {
  for (size_t i = 0; i < in_place.size(); ++i) {
    if (!same_bits(in_place[i], out_of_place[i])) {
      c.fail(cs.what + " i=" + std::to_string(i) + " in place " + fmt(double(in_place[i])) +
             " != out of place " + fmt(double(out_of_place[i])));
      return;
    }
  }
}

// The streamed (non-temporal) output of a kernel must equal its plain output bit for bit,
// written at every alignment relative to the vector width.
template <class T, class Run>
void compare_streamed(Check& c, const std::vector<T>& plain, const Case& cs, Run&& run) {
  std::vector<T> buf(plain.size() + 16);
  for (size_t shift : {size_t(0), size_t(1), size_t(3)}) {
    T* out = buf.data() + shift;
    run(out);
    const std::vector<T> got(out, out + plain.size());
    compare_in_place(c, got, plain, Case{cs.what + " streamed, offset " + std::to_string(shift)});
  }
}

// log-sum-exp = m + log|S|. The final addition can cancel (m < 0 < log|S|), and S itself
// cancels with weights of both signs, where its error is relative to sum |terms| and so is
// the error of log|S| relative to kappa = sum|terms| / |S|: the magnitude the ulps are
// measured at is the largest of |result|, |m| and kappa. A sum that cancels to within a few
// roundings of its terms is zero for all that floating point can tell, and its sign and log
// are noise.
constexpr long double kCancelled = 16;  // in ulps of sum |terms|

template <class T>
void compare_lse(Check& c, LseResult got, LseResult want, const T* x, const T* b, ptrdiff_t n,
                 bool exact, const Case& cs) {
  auto describe = [&] {
    return cs.what + " got=(" + fmt(got.value) + ", sign " + fmt(got.sign) + ") scalar=(" +
           fmt(want.value) + ", sign " + fmt(want.sign) + ")";
  };
  const RowSums s = row_sums(x, b, n);
  if (exact || s.counted_nan || !std::isfinite(s.m)) {
    const bool same = same_value(got.value, want.value) && same_value(got.sign, want.sign);
    c.record(same ? 0.0 : kInf<double>, 0.0, describe);
    return;
  }
  const long double eps = std::numeric_limits<T>::epsilon();
  if (std::fabs(s.sum) <= kCancelled * eps * s.sum_abs) {
    ++c.unmeasured;
    const bool nan_agrees = std::isnan(got.value) == std::isnan(want.value);
    c.record(nan_agrees ? 0.0 : kInf<double>, 0.0, describe);
    return;
  }
  if (!same_value(got.sign, want.sign)) {
    c.record(kInf<double>, 0.0, describe);
    return;
  }
  const double kappa = double(s.sum_abs / std::fabs(s.sum));
  c.record(ulp_diff<T>(got.value, want.value, std::max(std::fabs(s.m), kappa)), c.tol, describe);
}

// The max must be identical and the sums close relative to their sums of absolute values.
// A row with a counted NaN is the exception: which lane's max() sees the NaN depends on the
// lane count and on the max instruction (x86 max returns its second operand on NaN, NEON
// returns NaN), so the partial max may legitimately be NaN on one ISA and a number on
// another. What the callers rely on is that such a row never looks ordinary: either the max
// is not finite (they take the special path, which rescans the row) or a sum is NaN.
template <class T>
void compare_stats(Check& c, const RowStats<T>& got, const RowStats<T>& want, const T* x, const T* b,
                   ptrdiff_t n, bool exact, const Case& cs) {
  auto describe = [&] {
    return cs.what + " got=(max " + fmt(double(got.max)) + ", at_max " + fmt(got.at_max) + ", rest " +
           fmt(got.rest) + ") scalar=(max " + fmt(double(want.max)) + ", at_max " + fmt(want.at_max) +
           ", rest " + fmt(want.rest) + ")";
  };
  auto looks_ordinary = [](const RowStats<T>& r) {
    return std::isfinite(r.max) && !std::isnan(r.at_max) && !std::isnan(r.rest);
  };
  const RowSums s = row_sums(x, b, n);
  if (s.counted_nan) {
    ++c.nan_rows;
    if (!same_value(double(got.max), double(want.max))) ++c.nan_row_max_differs;
    c.record(looks_ordinary(got) || looks_ordinary(want) ? kInf<double> : 0.0, 0.0, describe);
    return;
  }
  if (!same_value(double(got.max), double(want.max))) {
    c.record(kInf<double>, 0.0, describe);
    return;
  }
  if (!std::isfinite(want.max)) {
    const bool same = same_value(got.at_max, want.at_max) && same_value(got.rest, want.rest);
    c.record(same ? 0.0 : kInf<double>, 0.0, describe);
    return;
  }
  if (s.rest_underflows && !(got.rest == 0 && want.rest == 0)) {
    c.fail(describe() + "  every exp(x - max) underflows: rest must be 0 in both");
    return;
  }
  const double u = std::max(ulp_diff<T>(got.at_max, want.at_max, s.at_max_abs),
                            ulp_diff<T>(got.rest, want.rest, s.rest_abs));
  c.record(u, exact ? 0.0 : c.tol, describe);
}

// ---- the row functions ---------------------------------------------------------------

template <class T>
void run_row_functions(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (ptrdiff_t n : test_sizes()) {
    for (const PatternInfo& pi : kPatterns) {
      if (n < pi.min_n) continue;
      const int reps = pi.exact ? 1 : (n <= 70 ? 3 : 2);
      for (int rep = 0; rep < reps; ++rep) {
        Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 1 : 2), Rng::mix(std::uint64_t(n) * 131 + int(pi.pattern), rep)));
        std::vector<T> x(static_cast<size_t>(n));
        const std::vector<ptrdiff_t> special = fill_row(pi.pattern, rng, x);
        const Case cs{std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " pattern=" + pi.name +
                      " rep=" + std::to_string(rep)};
        std::vector<T> y_ref(x.size()), y(x.size()), y_in(x.size());

        {
          Check& c = checks.get<T>("softmax_row");
          ref.softmax_row(x.data(), y_ref.data(), n, scratch(n));
          k.softmax_row(x.data(), y.data(), n, scratch(n));
          compare_rows(c, y, y_ref, pi.exact, cs);
          y_in = x;
          k.softmax_row(y_in.data(), y_in.data(), n, scratch(n));
          compare_in_place(c, y_in, y, cs);
        }
        {
          Check& c = checks.get<T>("log_softmax_row");
          ref.log_softmax_row(x.data(), y_ref.data(), n, false);
          k.log_softmax_row(x.data(), y.data(), n, false);
          compare_rows(c, y, y_ref, pi.exact, cs);
          y_in = x;
          k.log_softmax_row(y_in.data(), y_in.data(), n, false);
          compare_in_place(c, y_in, y, cs);
          compare_streamed(c, y, cs, [&](T* out) { k.log_softmax_row(x.data(), out, n, true); });
        }
        compare_lse(checks.get<T>("logsumexp_row"), k.logsumexp_row(x.data(), nullptr, n),
                    ref.logsumexp_row(x.data(), nullptr, n), x.data(), static_cast<const T*>(nullptr), n,
                    pi.exact, cs);
        compare_stats(checks.get<T>("stats"), k.stats(x.data(), n), ref.stats(x.data(), n), x.data(),
                      static_cast<const T*>(nullptr), n, pi.exact, cs);

        // The chunk kernel gets the shift the driver would pass (the row's max) and also a
        // shift of 0.
        T finite_max = -kInf<T>;
        for (T v : x) {
          if (std::isfinite(v)) finite_max = std::max(finite_max, v);
        }
        const T shifts[] = {std::isfinite(finite_max) ? finite_max : T(1.5), T(0)};
        for (T shift : shifts) {
          const T offset = T(std::log(1.0 + rng.uniform() * double(n)));
          const Case sc{cs.what + " shift=" + fmt(double(shift))};
          {
            Check& c = checks.get<T>("sub_shift");
            ref.sub_shift(x.data(), y_ref.data(), n, shift, offset, false);
            k.sub_shift(x.data(), y.data(), n, shift, offset, false);
            compare_rows(c, y, y_ref, false, Case{sc.what + " offset=" + fmt(double(offset))}, &x);
            y_in = x;
            k.sub_shift(y_in.data(), y_in.data(), n, shift, offset, false);
            compare_in_place(c, y_in, y, sc);
            compare_streamed(c, y, sc, [&](T* out) { k.sub_shift(x.data(), out, n, shift, offset, true); });
          }
        }

        // The column kernels on a block of 11 columns (a partial vector on every ISA), column
        // j holding the row rotated by j: each lane sees the pattern, special values and all.
        if (n > 0) {
          constexpr ptrdiff_t W = 11;
          std::vector<T> cols(static_cast<size_t>(n * W)), c_ref(cols.size()), c_got(cols.size());
          for (ptrdiff_t c = 0; c < n; ++c) {
            for (ptrdiff_t j = 0; j < W; ++j) cols[size_t(c * W + j)] = x[size_t((c + j) % n)];
          }
          for (bool log : {false, true}) {
            Check& c = checks.get<T>(log ? "softmax_columns+log" : "softmax_columns");
            ref.softmax_columns(cols.data(), W, c_ref.data(), W, n, W, log, scratch(n, W));
            k.softmax_columns(cols.data(), W, c_got.data(), W, n, W, log, scratch(n, W));
            compare_rows(c, c_got, c_ref, pi.exact, Case{cs.what + (log ? " columns log" : " columns")}, &cols);
          }
          std::vector<T> l_ref(W), l_got(W);
          ref.logsumexp_columns(cols.data(), W, l_ref.data(), n, W, scratch(n, W));
          k.logsumexp_columns(cols.data(), W, l_got.data(), n, W, scratch(n, W));
          compare_rows(checks.get<T>("logsumexp_columns"), l_got, l_ref, pi.exact, Case{cs.what + " columns"});
        }

        // The special-row kernels are scalar code in every ISA; they must agree bit for bit
        // on any row, not only on the rows that reach them.
        for (bool log : {false, true}) {
          Check& c = checks.get<T>("softmax_special");
          ref.softmax_special(x.data(), y_ref.data(), n, log);
          k.softmax_special(x.data(), y.data(), n, log);
          compare_rows(c, y, y_ref, true, Case{cs.what + (log ? " log" : "")});
        }
        compare_lse(checks.get<T>("logsumexp_special"), k.logsumexp_special(x.data(), nullptr, n),
                    ref.logsumexp_special(x.data(), nullptr, n), x.data(), static_cast<const T*>(nullptr), n,
                    true, cs);

        for (const WeightsInfo& wi : kWeightKinds) {
          const bool has_special = !special.empty();
          if (wi.kind == Weights::kMasked && !has_special) continue;
          if ((wi.kind == Weights::kAllZero || wi.kind == Weights::kOneNaN) &&
              !(pi.pattern == Pattern::kNormal1 || pi.pattern == Pattern::kNaN)) {
            continue;
          }
          std::vector<T> b(x.size());
          fill_weights(wi.kind, rng, special, b);
          const Case wc{cs.what + " " + wi.name};
          compare_lse(checks.get<T>("logsumexp_row+b"), k.logsumexp_row(x.data(), b.data(), n),
                      ref.logsumexp_row(x.data(), b.data(), n), x.data(), b.data(), n, false, wc);
          compare_stats(checks.get<T>("weighted_stats"), k.weighted_stats(x.data(), b.data(), n),
                        ref.weighted_stats(x.data(), b.data(), n), x.data(), b.data(), n, false, wc);
          compare_lse(checks.get<T>("logsumexp_special"), k.logsumexp_special(x.data(), b.data(), n),
                      ref.logsumexp_special(x.data(), b.data(), n), x.data(), b.data(), n, true, wc);
        }
      }
    }
  }
}

// ---- masked rows: masked softmax and entropy -----------------------------------------

// A double-valued result of a row against the scalar table's, in ulps of T at mag (or at the
// result itself).
template <class T, class Describe>
void compare_value(Check& c, double got, double want, double mag, bool exact, const Describe& describe) {
  c.record(ulp_diff<T>(got, want, exact ? 0.0 : mag), exact ? 0.0 : c.tol, describe);
}

enum class MaskKind { kRandom, kAllZero, kAllOne, kSpecialOff, kSpecialOn, kOnlyNegInf };

struct MaskInfo {
  MaskKind kind;
  const char* name;
};

constexpr MaskInfo kMaskKinds[] = {
    {MaskKind::kRandom, "mask random 0/1"},
    {MaskKind::kAllZero, "mask all 0"},
    {MaskKind::kAllOne, "mask all 1"},
    {MaskKind::kSpecialOff, "mask 0 at the special entries"},
    {MaskKind::kSpecialOn, "mask 1 at the special entries"},
    {MaskKind::kOnlyNegInf, "mask 1 at the -inf entries only"},
};

// Fills mask with 0 and 1; false when the kind adds nothing to this row (no special entries
// to hide or to count, no -inf entries).
template <class T>
bool fill_mask(MaskKind kind, Rng& rng, const std::vector<T>& x, const std::vector<ptrdiff_t>& special,
               std::vector<T>& mask) {
  // a density per row, so that some rows count only a few entries and others nearly all
  const double density = 0.1 + 0.8 * rng.uniform();
  for (T& m : mask) m = rng.uniform() < density ? T(1) : T(0);
  switch (kind) {
    case MaskKind::kRandom: return true;
    case MaskKind::kAllZero: std::fill(mask.begin(), mask.end(), T(0)); return true;
    case MaskKind::kAllOne: std::fill(mask.begin(), mask.end(), T(1)); return true;
    case MaskKind::kSpecialOff:
    case MaskKind::kSpecialOn:
      for (ptrdiff_t i : special) mask[i] = kind == MaskKind::kSpecialOn ? T(1) : T(0);
      return !special.empty();
    case MaskKind::kOnlyNegInf: {
      bool any = false;
      for (size_t i = 0; i < x.size(); ++i) {
        mask[i] = x[i] == -kInf<T> ? T(1) : T(0);
        any = any || mask[i] != T(0);
      }
      return any;
    }
  }
  return false;
}

// A (masked) row whose result the special-value rules fix on their own: a counted NaN, a
// counted maximum that is not finite, or every counted exponential below the maximum
// underflowing (then softmax is 1/k or 0, log_softmax -log k or -inf, entropy log k).
// (row_sums would say the same, but its long double exponentials are slow under emulation.)
template <class T>
bool decided_by_rules(const T* x, const T* mask, ptrdiff_t n) {
  auto counted = [&](ptrdiff_t i) { return !mask || mask[i] != T(0); };
  double m = -kInf<double>;
  for (ptrdiff_t i = 0; i < n; ++i) {
    if (!counted(i)) continue;
    if (std::isnan(x[i])) return true;
    m = std::max(m, double(x[i]));
  }
  if (!std::isfinite(m)) return true;
  for (ptrdiff_t i = 0; i < n; ++i) {
    if (counted(i) && double(x[i]) != m && !exp_underflows<T>(static_cast<long double>(x[i]) - m)) return false;
  }
  return true;
}

// The column kernels of entropy and cross-entropy on 11 columns (a partial vector on every
// ISA), column j holding the row rotated by j, with its own target, weight of its row's
// gradient, and some columns not counted.
template <class T>
void check_loss_columns(const KernelSet<T>& ref, const KernelSet<T>& k, const std::vector<T>& x,
                        ptrdiff_t n, Checks& checks, const std::string& row) {
  constexpr ptrdiff_t W = 11;
  std::vector<T> cols(static_cast<size_t>(n * W));
  std::vector<std::vector<T>> column(W, std::vector<T>(static_cast<size_t>(n)));
  for (ptrdiff_t c = 0; c < n; ++c) {
    for (ptrdiff_t j = 0; j < W; ++j) {
      cols[size_t(c * W + j)] = column[size_t(j)][size_t(c)] = x[size_t((c + j) % n)];
    }
  }
  std::vector<bool> decided(W);
  std::vector<double> mag(W);
  for (ptrdiff_t j = 0; j < W; ++j) {
    const std::vector<T>& col = column[size_t(j)];
    decided[size_t(j)] = decided_by_rules(col.data(), static_cast<const T*>(nullptr), n);
    const T m = *std::max_element(col.begin(), col.end());
    mag[size_t(j)] = std::isfinite(double(m)) ? std::fabs(double(m)) : 0.0;
  }
  auto describe = [&](const char* what, ptrdiff_t j, double got, double want) {
    return [=, &row] {
      return row + " column " + std::to_string(j) + " " + what + " got=" + fmt(got) + " scalar=" + fmt(want);
    };
  };

  std::vector<T> e_ref(W), e_got(W);
  ref.entropy_columns(cols.data(), W, e_ref.data(), n, W, scratch(n, W));
  k.entropy_columns(cols.data(), W, e_got.data(), n, W, scratch(n, W));
  for (ptrdiff_t j = 0; j < W; ++j) {
    compare_value<T>(checks.get<T>("entropy_columns"), e_got[size_t(j)], e_ref[size_t(j)], 0.0,
                     decided[size_t(j)], describe("entropy", j, e_got[size_t(j)], e_ref[size_t(j)]));
  }

  std::vector<long long> target(W);
  std::vector<unsigned char> counted(W);
  std::vector<double> scale(W), loss_ref(W), loss_got(W), lse_ref(W), lse_got(W);
  for (ptrdiff_t j = 0; j < W; ++j) {
    target[size_t(j)] = (3 * j) % n;
    counted[size_t(j)] = j % 4 != 1;
    scale[size_t(j)] = 1.0 / double(j + 1);
  }
  logitkit::CrossEntropyParams<T> params;
  params.want_argmax = false;
  params.z_loss = 1e-3;
  std::vector<T> g_ref(cols.size(), T(-7.25)), g_got(cols.size(), T(-7.25));
  ref.cross_entropy_columns(cols.data(), W, n, W, target.data(), counted.data(), scale.data(), params,
                            g_ref.data(), W, loss_ref.data(), lse_ref.data(), scratch(n, W));
  k.cross_entropy_columns(cols.data(), W, n, W, target.data(), counted.data(), scale.data(), params,
                          g_got.data(), W, loss_got.data(), lse_got.data(), scratch(n, W));
  for (ptrdiff_t j = 0; j < W; ++j) {
    const size_t i = size_t(j);
    compare_value<T>(checks.get<T>("cross_entropy_columns:lse"), lse_got[i], lse_ref[i], mag[i], decided[i],
                     describe("lse", j, lse_got[i], lse_ref[i]));
    compare_value<T>(checks.get<T>("cross_entropy_columns:loss"), loss_got[i], loss_ref[i], mag[i], decided[i],
                     describe("loss", j, loss_got[i], loss_ref[i]));
  }
  // gradient entries are relative to their column's scale, the largest any of them can be
  compare_rows_by(
      checks.get<T>("cross_entropy_columns:grad"), g_got, g_ref, Case{row + " cross_entropy_columns"},
      [&](size_t i) { return bool(decided[i % W]); }, [&](size_t i) { return scale[i % W]; }, &cols);
}

template <class T>
void run_masked_rows(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (ptrdiff_t n : test_sizes()) {
    for (const PatternInfo& pi : kPatterns) {
      if (n < pi.min_n) continue;
      const int reps = pi.exact ? 1 : (n <= 70 ? 2 : 1);
      for (int rep = 0; rep < reps; ++rep) {
        Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 5 : 6), Rng::mix(std::uint64_t(n) * 131 + int(pi.pattern), rep)));
        std::vector<T> x(static_cast<size_t>(n)), mask(x.size()), y_ref(x.size()), y(x.size()), y_in;
        const std::vector<ptrdiff_t> special = fill_row(pi.pattern, rng, x);
        const std::string row = std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " pattern=" + pi.name +
                                " rep=" + std::to_string(rep);

        auto check_entropy = [&](const T* m, const Case& cs) {
          const double got = k.entropy_row(x.data(), m, n), want = ref.entropy_row(x.data(), m, n);
          // every term of the entropy is non-negative: its rounding is relative to itself
          compare_value<T>(checks.get<T>("entropy_row"), got, want, 0.0, decided_by_rules(x.data(), m, n),
                           [&] { return cs.what + " got=" + fmt(got) + " scalar=" + fmt(want); });
        };
        check_entropy(nullptr, Case{row + " no mask"});
        if (n > 0) check_loss_columns(ref, k, x, n, checks, row);

        for (const MaskInfo& mi : kMaskKinds) {
          if (!fill_mask(mi.kind, rng, x, special, mask)) continue;
          const Case cs{row + " " + mi.name};
          const bool exact = decided_by_rules(x.data(), mask.data(), n);
          for (bool log : {false, true}) {
            Check& c = checks.get<T>(log ? "masked_softmax_row+log" : "masked_softmax_row");
            ref.masked_softmax_row(x.data(), mask.data(), y_ref.data(), n, log);
            k.masked_softmax_row(x.data(), mask.data(), y.data(), n, log);
            // an entry outside the mask is 0 (-inf) by rule, however the rest of the row rounds
            compare_rows_by(
                c, y, y_ref, Case{cs.what + (log ? " log" : "")},
                [&](size_t i) { return exact || mask[i] == T(0); }, [](size_t) { return 0.0; }, &x);
            y_in = x;
            k.masked_softmax_row(y_in.data(), mask.data(), y_in.data(), n, log);
            compare_in_place(c, y_in, y, cs);
          }
          check_entropy(mask.data(), cs);
        }
      }
    }
  }
}

// ---- softmax backward and hardmax ----------------------------------------------------

template <class T>
void run_backward_and_hardmax(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed,
                              Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (ptrdiff_t n : test_sizes()) {
    for (const PatternInfo& pi : kPatterns) {
      if (n < pi.min_n) continue;
      const int reps = pi.exact ? 1 : (n <= 70 ? 2 : 1);
      for (int rep = 0; rep < reps; ++rep) {
        Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 7 : 8), Rng::mix(std::uint64_t(n) * 131 + int(pi.pattern), rep)));
        std::vector<T> x(static_cast<size_t>(n)), y_ref(x.size()), y(x.size()), y_in;
        fill_row(pi.pattern, rng, x);
        const Case cs{std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " pattern=" + pi.name +
                      " rep=" + std::to_string(rep)};

        {
          Check& c = checks.get<T>("hardmax_row");
          auto check_hardmax = [&](const std::vector<T>& in, const Case& hc) {
            ref.hardmax_row(in.data(), y_ref.data(), n);
            k.hardmax_row(in.data(), y.data(), n);
            compare_rows(c, y, y_ref, true, hc, &in);
            y_in = in;
            k.hardmax_row(y_in.data(), y_in.data(), n);
            compare_in_place(c, y_in, y, hc);
          };
          check_hardmax(x, cs);
          if (pi.pattern == Pattern::kTies) {
            // +0 and -0 compare equal, so the first of them is the maximum, whichever lane
            // and whichever of the two signs holds it
            std::vector<T> zeros = x;
            for (T& v : zeros) {
              if (v >= T(0)) v = rng.uniform() < 0.5 ? T(0) : T(-0.0);
            }
            check_hardmax(zeros, Case{cs.what + " signed zeros"});
          }
        }

        // y as the forward pass would have left it; g either random or constant, the latter
        // making y * (g - sum(g y)) cancel down to rounding noise.
        for (bool log : {false, true}) {
          Check& c = checks.get<T>(log ? "softmax_backward_row+log" : "softmax_backward_row");
          std::vector<T> fwd(x.size()), g(x.size()), out_ref(x.size()), out(x.size()), out_in;
          if (log) {
            ref.log_softmax_row(x.data(), fwd.data(), n, false);
          } else {
            ref.softmax_row(x.data(), fwd.data(), n, scratch(n));
          }
          for (bool constant : {false, true}) {
            const double g0 = rng.normal();
            for (T& v : g) v = T(constant ? g0 : rng.normal());
            const Case bc{cs.what + (log ? " log" : "") + (constant ? " g constant" : " g normal")};
            ref.softmax_backward_row(g.data(), fwd.data(), out_ref.data(), n, log);
            k.softmax_backward_row(g.data(), fwd.data(), out.data(), n, log);
            // The sum s is rounded relative to sum |g y| (log: sum |g|), and g - s or
            // g - exp(y) s relative to the larger of its operands.
            double sum_abs = 0;
            for (ptrdiff_t i = 0; i < n; ++i) {
              sum_abs += std::fabs(double(g[i]) * (log ? 1.0 : double(fwd[i])));
            }
            compare_rows_by(
                c, out, out_ref, bc, [](size_t) { return false; },
                [&](size_t i) {
                  const double gi = std::fabs(double(g[i])), yi = double(fwd[i]);
                  return log ? std::max(gi, std::exp(yi) * sum_abs) : std::fabs(yi) * std::max(gi, sum_abs);
                },
                &g);
            out_in = g;
            k.softmax_backward_row(out_in.data(), fwd.data(), out_in.data(), n, log);
            compare_in_place(c, out_in, out, Case{bc.what + " out=g"});
            out_in = fwd;
            k.softmax_backward_row(g.data(), out_in.data(), out_in.data(), n, log);
            compare_in_place(c, out_in, out, Case{bc.what + " out=y"});
          }
        }
      }
    }
  }
}

// ---- fused cross-entropy -------------------------------------------------------------

// One combination of the options of cross_entropy_row.
struct CeVariant {
  bool soft, weighted, smoothing, z_loss, softcap, counted;
  bool argmax;  // without it, index targets with no smoothing or cap take logsumexp's sweep
  int grad;     // 0: none, 1: a buffer of its own, 2: written over the logits
};

constexpr int kCeVariants = 128 * 3;

CeVariant ce_variant(int v) {
  CeVariant o;
  o.soft = v & 1;
  o.weighted = (v >> 1) & 1;
  o.smoothing = (v >> 2) & 1;
  o.z_loss = (v >> 3) & 1;
  o.softcap = (v >> 4) & 1;
  o.counted = (v >> 5) & 1;
  o.argmax = (v >> 6) & 1;
  o.grad = v >> 7;
  return o;
}

std::string describe(const CeVariant& o, long long target) {
  std::string s = o.soft ? " soft targets" : " target=" + std::to_string(target);
  if (o.weighted) s += " class weights";
  if (o.smoothing) s += " smoothing 0.1";
  if (o.z_loss) s += " z_loss 1e-3";
  if (o.softcap) s += " softcap 5";
  s += o.counted ? " counted" : " not counted";
  if (!o.argmax) s += " no argmax";
  s += o.grad == 0 ? " no grad" : (o.grad == 1 ? " grad" : " grad over z");
  return s;
}

bool same_row(const logitkit::CrossEntropyRow& a, const logitkit::CrossEntropyRow& b) {
  return same_bits(a.loss, b.loss) && same_bits(a.lse, b.lse) && a.argmax == b.argmax;
}

template <class T>
void run_cross_entropy(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  constexpr T kCap = 5;
  constexpr double kSmoothing = 0.1, kZLoss = 1e-3;
  for (ptrdiff_t n : test_sizes()) {
    if (n == 0) continue;  // no class for a target to name (and soft targets would be null)
    for (const PatternInfo& pi : kPatterns) {
      if (n < pi.min_n) continue;
      const int reps = pi.exact ? 1 : (n <= 70 ? 2 : 1);
      for (int rep = 0; rep < reps; ++rep) {
        Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 9 : 10), Rng::mix(std::uint64_t(n) * 131 + int(pi.pattern), rep)));
        const size_t len = static_cast<size_t>(n);
        std::vector<T> z(len), soft(len), w(len), grad_ref(len), grad(len), z_in;
        fill_row(pi.pattern, rng, z);
        const std::string row = std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " pattern=" + pi.name +
                                " rep=" + std::to_string(rep);

        // Target probabilities with some exact zeros (0 log 0 where a logit is -inf), and
        // positive class weights.
        double soft_sum = 0, weight_sum = 0;
        for (T& v : soft) {
          v = rng.uniform() < 0.2 ? T(0) : T(rng.uniform());
          soft_sum += double(v);
        }
        for (T& v : soft) v = soft_sum > 0 ? T(double(v) / soft_sum) : T(1.0 / double(n));
        for (T& v : w) {
          v = T(0.1 + 1.9 * rng.uniform());
          weight_sum += double(v);
        }
        // The target is often the first maximum, where a confident prediction makes the
        // loss tiny, otherwise any class.
        long long target = 0;
        if (rng.uniform() < 0.3) {
          T best = -kInf<T>;
          for (ptrdiff_t i = 0; i < n; ++i) {
            if (z[i] > best) best = z[i], target = i;
          }
        } else {
          target = rng.index(n);
        }

        // The logits as the kernel sees them, without and with the cap, their maximum m
        // (lse = m + log(sum), an addition that cancels when m < 0), and exp(z - m), from
        // which the gradient's magnitudes follow.
        std::vector<double> z_plain(len), z_capped(len), e_plain(len), e_capped(len);
        double m_plain = -kInf<double>, m_capped = -kInf<double>;
        for (size_t i = 0; i < len; ++i) {
          z_plain[i] = double(z[i]);
          z_capped[i] = double(kCap) * std::tanh(double(z[i]) / double(kCap));
          if (z_plain[i] > m_plain) m_plain = z_plain[i];
          if (z_capped[i] > m_capped) m_capped = z_capped[i];
        }
        for (size_t i = 0; i < len; ++i) {
          e_plain[i] = std::exp(z_plain[i] - m_plain);
          e_capped[i] = std::exp(z_capped[i] - m_capped);
        }

        // Each row runs a window of the option combinations, with a stride prime to their
        // count so that every option changes along the window; over the rows of each
        // pattern every combination comes up many times. Long rows add only the summation
        // order, and run fewer.
        const int start = int(rng.index(kCeVariants));
        const int window = n <= 70 ? 12 : 4;
        for (int j = 0; j < window; ++j) {
          const CeVariant o = ce_variant((start + 37 * j) % kCeVariants);
          logitkit::CrossEntropyParams<T> params;
          params.class_weight = o.weighted ? w.data() : nullptr;
          params.weight_sum = o.weighted ? weight_sum : double(n);
          params.smoothing = o.smoothing ? kSmoothing : 0.0;
          params.z_loss = o.z_loss ? kZLoss : 0.0;
          params.softcap = o.softcap ? kCap : T(0);
          params.want_argmax = o.argmax;
          const T* soft_p = o.soft ? soft.data() : nullptr;
          const double gs = 1.0 / double(n);
          // unwritten entries would show as a difference between the two tables
          std::fill(grad_ref.begin(), grad_ref.end(), T(-7.25));
          std::fill(grad.begin(), grad.end(), T(-7.25));
          const logitkit::CrossEntropyRow want = ref.cross_entropy_row(
              z.data(), n, target, soft_p, o.counted, params, gs, o.grad ? grad_ref.data() : nullptr, scratch(n));
          const logitkit::CrossEntropyRow got = k.cross_entropy_row(
              z.data(), n, target, soft_p, o.counted, params, gs, o.grad ? grad.data() : nullptr, scratch(n));
          const Case cs{row + describe(o, target)};
          auto describe_row = [&] {
            return cs.what + " got=(loss " + fmt(got.loss) + ", lse " + fmt(got.lse) + ", argmax " +
                   std::to_string(got.argmax) + ") scalar=(loss " + fmt(want.loss) + ", lse " + fmt(want.lse) +
                   ", argmax " + std::to_string(want.argmax) + ")";
          };

          const std::vector<double>& e = o.softcap ? e_capped : e_plain;
          const double m = o.softcap ? m_capped : m_plain;
          checks.get<T>("cross_entropy_row:argmax").record(got.argmax == want.argmax ? 0.0 : kInf<double>, 0.0,
                                                           describe_row);
          compare_value<T>(checks.get<T>("cross_entropy_row:lse"), got.lse, want.lse,
                           std::isfinite(m) ? std::fabs(m) : 0.0, pi.exact && !o.softcap, describe_row);
          // q: the smoothed target distribution times the class weights; coeff: the factor
          // of p_j in the gradient, which is also the total weight of the loss's gaps.
          const double a = params.smoothing, C = double(n), lse = want.lse;
          const double w_t = o.weighted ? double(w[size_t(target)]) : 1.0;
          double coeff = 0;
          std::vector<double> q(len);
          for (size_t i = 0; i < len; ++i) {
            const double wi = o.weighted ? double(w[i]) : 1.0;
            q[i] = (o.soft ? (1.0 - a) * double(soft[i]) + a / C : a / C) * wi;
            if (o.soft) coeff += q[i];
          }
          if (!o.soft) coeff = (1.0 - a) * w_t + a / C * params.weight_sum;
          // Every part of the loss is a sum of non-negative gaps m - z_c, so its rounding is
          // relative to itself, except under the cap: m and the target's logit are capped
          // with the C library's tanh, the sweep's logits with the kernel's, and the two
          // differ in the last place of values up to the cap. A gap that should be 0 (the
          // target at the maximum, a row of one class) is then off by that much, and so is
          // log(sum), whose maximum's entry may not be recognised as such.
          const double cap_mag = o.softcap ? coeff * double(kCap) : 0.0;
          // A row that does not count has loss 0 exactly.
          compare_value<T>(checks.get<T>("cross_entropy_row:loss"), got.loss, want.loss, cap_mag, !o.counted,
                           describe_row);

          if (o.grad) {
            // grad_j = s (c p_j - q_j) cap'(z_j): its rounding is relative to s (|c| p_j + q_j),
            // and cap' = 1 - tanh^2 is rounded absolutely (it cancels where the cap
            // saturates), so it does not shrink that magnitude. The target's entry is formed
            // from p_t - 1 = expm1((z_t - m) - log(sum)), whose argument is off by the
            // cap's last place as above.
            const double zl = std::fabs(2.0 * params.z_loss * lse);
            const double to_p = std::exp(m - lse);  // p_j = exp(z_j - m) exp(m - lse)
            auto mag_at = [&](size_t i) {
              if (!std::isfinite(lse)) return 0.0;
              const double p = e[i] * to_p;
              if (!o.soft && ptrdiff_t(i) == target) {
                return gs * ((1.0 - a) * w_t * std::fabs(p - 1.0) + a / C * (p * params.weight_sum + w_t) + zl * p +
                             (o.softcap ? (coeff + zl) * p * double(kCap) : 0.0));
              }
              return gs * ((coeff + zl) * p + q[i]);
            };
            compare_rows_by(
                checks.get<T>("cross_entropy_row:grad"), grad, grad_ref, cs,
                [&](size_t) { return !o.counted; }, mag_at, &z);
          }
          if (o.grad == 2) {
            Check& c = checks.get<T>("cross_entropy_row:grad");
            z_in = z;
            const logitkit::CrossEntropyRow in_place =
                k.cross_entropy_row(z_in.data(), n, target, soft_p, o.counted, params, gs, z_in.data(), scratch(n));
            if (!same_row(in_place, got)) c.fail(describe_row() + "  differs with grad over z");
            compare_in_place(c, z_in, grad, Case{cs.what});
          }
          if (o.grad) {
            logitkit::CrossEntropyParams<T> streamed = params;
            streamed.stream_grad = true;
            compare_streamed(checks.get<T>("cross_entropy_row:grad"), grad, cs, [&](T* out) {
              const logitkit::CrossEntropyRow r =
                  k.cross_entropy_row(z.data(), n, target, soft_p, o.counted, streamed, gs, out, scratch(n));
              if (!same_row(r, got)) {
                checks.get<T>("cross_entropy_row:grad").fail(describe_row() + "  differs when streamed");
              }
            });
          }
        }
      }
    }
  }
}

// ---- the statistics of logitkit eval -------------------------------------------------

// eval_row against the scalar table: the maximum, its index, the label's rank and the
// finiteness follow from comparisons alone and must agree exactly; the sums and what follows
// from them, within rounding (lse relative to the maximum it adds to).
template <class T>
void run_eval_rows(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (ptrdiff_t n : test_sizes()) {
    if (n == 0) continue;
    for (const PatternInfo& pi : kPatterns) {
      if (n < pi.min_n) continue;
      const int reps = pi.exact ? 2 : (n <= 70 ? 4 : 2);
      for (int rep = 0; rep < reps; ++rep) {
        Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 13 : 14), Rng::mix(std::uint64_t(n) * 131 + int(pi.pattern), rep)));
        std::vector<T> z(static_cast<size_t>(n));
        fill_row(pi.pattern, rng, z);
        // The label: often the first maximum (a tiny loss, p_t near 1), sometimes the last
        // entry tied with it (ties before the label rank above it), otherwise any class.
        long long target = rng.index(n);
        const double pick = rng.uniform();
        if (pick < 0.5) {
          T best = -kInf<T>;
          for (ptrdiff_t i = 0; i < n; ++i) {
            if (z[i] > best || (pick >= 0.3 && z[i] == best)) best = z[i], target = i;
          }
        }
        const logitkit::EvalRow want = ref.eval_row(z.data(), n, target);
        const logitkit::EvalRow got = k.eval_row(z.data(), n, target);
        const std::string row = std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " pattern=" + pi.name +
                                " rep=" + std::to_string(rep) + " target=" + std::to_string(target);
        auto describe = [&] {
          auto all = [](const logitkit::EvalRow& r) {
            return "(lse " + fmt(r.lse) + ", max " + fmt(r.max) + ", loss " + fmt(r.loss) + ", entropy " +
                   fmt(r.entropy) + ", brier " + fmt(r.brier) + ", argmax " + std::to_string(r.argmax) +
                   ", rank " + std::to_string(r.rank) + ", finite " + std::to_string(r.finite) + ")";
          };
          return row + " got=" + all(got) + " scalar=" + all(want);
        };
        checks.get<T>("eval_row:argmax,rank")
            .record(got.argmax == want.argmax && got.rank == want.rank ? 0.0 : kInf<double>, 0.0, describe);
        checks.get<T>("eval_row:max,finite")
            .record(same_value(got.max, want.max) && got.finite == want.finite ? 0.0 : kInf<double>, 0.0, describe);
        const double m = std::isfinite(want.max) ? std::fabs(want.max) : 0.0;
        compare_value<T>(checks.get<T>("eval_row:lse"), got.lse, want.lse, m, pi.exact, describe);
        compare_value<T>(checks.get<T>("eval_row:loss"), got.loss, want.loss, 0.0, pi.exact, describe);
        compare_value<T>(checks.get<T>("eval_row:entropy"), got.entropy, want.entropy, 0.0, pi.exact, describe);
        compare_value<T>(checks.get<T>("eval_row:brier"), got.brier, want.brier, 0.0, pi.exact, describe);
      }
    }
  }
}

// ---- the elementwise functions -------------------------------------------------------

// Values on and next to the boundaries of the kernels' ranges and branches, plus the
// special values; rows of them are drawn at random so that each sits in many lanes.
template <class T>
std::vector<T> around(std::initializer_list<double> centres, int steps) {
  std::vector<T> v;
  for (double c : centres) {
    T lo = T(c), hi = T(c);
    v.push_back(T(c));
    for (int s = 0; s < steps; ++s) {
      lo = std::nextafter(lo, -kInf<T>);
      hi = std::nextafter(hi, kInf<T>);
      v.push_back(lo);
      v.push_back(hi);
    }
  }
  return v;
}

template <class T>
std::vector<T> specials() {
  using L = std::numeric_limits<T>;
  return {kNaN<T>, -kNaN<T>, kInf<T>, -kInf<T>, T(0), T(-0.0), L::denorm_min(), -L::denorm_min(),
          L::min(), -L::min(), L::max(), -L::max(), L::epsilon(), -L::epsilon()};
}

template <class T>
std::vector<T> general_edges() {
  using L = std::numeric_limits<T>;
  const double log_max = std::log(double(L::max()));
  const double log_min = std::log(double(L::min()));
  const double log_tiny = std::log(double(L::denorm_min()));
  // the clamp limits of exp_ in kernels/math.h
  const double clamp_lo = std::is_same<T, float>::value ? -104.0 : -746.0;
  const double clamp_hi = std::is_same<T, float>::value ? 89.0 : 710.0;
  const double half_ln2 = 0.34657359027997264;  // bound of exp's reduced argument
  const double split = 0.88137358701954280;     // exp(-x) = sqrt(2) - 1, log1p_unit_'s branch
  std::vector<T> v = around<T>({log_max, -log_max, log_min, -log_min, log_tiny, -log_tiny, clamp_lo,
                                -clamp_lo, clamp_hi, -clamp_hi, 0.5, -0.5, 1.0, -1.0, 20.0, -20.0, 40.0,
                                -40.0, 1e-8, -1e-8, half_ln2, -half_ln2, split, -split},
                               3);
  for (T s : specials<T>()) v.push_back(s);
  return v;
}

template <class T>
std::vector<T> logit_edges() {
  using L = std::numeric_limits<T>;
  // 0.3 and 0.7 bound the |p - 1/2| < 0.2 branch; 0 and 1 bound the domain.
  std::vector<T> v = around<T>({0.0, 1.0, 0.5, 0.3, 0.7, 0.25, 0.75, 1e-30, 1e-7, 1.0 - 1e-7}, 3);
  for (T s : {T(-1), T(2), T(1.5), T(-0.5), T(1) + L::epsilon() * 16, -L::epsilon(), T(1) - L::epsilon() / 2}) {
    v.push_back(s);
  }
  for (T s : specials<T>()) v.push_back(s);
  return v;
}

template <class T>
std::vector<T> log_edges() {
  std::vector<T> v = around<T>({1.0, 2.0, 0.5, 1.4142135623730951, 0.70710678118654757,
                                double(std::numeric_limits<T>::min()), 2.0 * double(std::numeric_limits<T>::denorm_min())},
                               3);
  for (T s : {T(-1), T(-2.5), T(3), T(1e-3)}) v.push_back(s);
  for (T s : specials<T>()) v.push_back(s);
  return v;
}

enum class UnaryInput { kNormal1, kNormal30, kNormal300, kEdges, kUnit, kUnitTails, kLogitEdges, kPositive, kLogEdges };

struct UnaryInputInfo {
  UnaryInput input;
  const char* name;
};

std::vector<UnaryInputInfo> unary_inputs(int op) {
  switch (op) {
    case logitkit::kLogit:
      return {{UnaryInput::kUnit, "uniform(0,1)"},
              {UnaryInput::kUnitTails, "near 0 and near 1"},
              {UnaryInput::kLogitEdges, "logit edges"}};
    case logitkit::kLog:
      return {{UnaryInput::kPositive, "positive, all exponents incl. subnormal"},
              {UnaryInput::kLogEdges, "log edges"}};
    case logitkit::kEntr:  // -x log x: its domain is x >= 0, and log's edges are its own
      return {{UnaryInput::kUnit, "uniform(0,1)"},
              {UnaryInput::kPositive, "positive, all exponents incl. subnormal"},
              {UnaryInput::kLogEdges, "log edges"},
              {UnaryInput::kEdges, "edges"}};
    default:
      return {{UnaryInput::kNormal1, "normal*1"},
              {UnaryInput::kNormal30, "normal*30"},
              {UnaryInput::kNormal300, "normal*300"},
              {UnaryInput::kEdges, "edges"}};
  }
}

template <class T>
void fill_unary(UnaryInput in, Rng& rng, std::vector<T>& x) {
  using L = std::numeric_limits<T>;
  auto from = [&](const std::vector<T>& pool) {
    for (T& v : x) v = pool[size_t(rng.index(ptrdiff_t(pool.size())))];
  };
  // 2^e (1 + u) with e over T's whole exponent range, subnormals included.
  auto log_uniform = [&](int e_lo, int e_hi) {
    return T(std::ldexp(1.0 + rng.uniform(), int(rng.integer(e_lo, e_hi))));
  };
  const int e_tiny = L::min_exponent - L::digits;
  switch (in) {
    case UnaryInput::kNormal1: for (T& v : x) v = T(rng.normal()); break;
    case UnaryInput::kNormal30: for (T& v : x) v = T(rng.normal() * 30); break;
    case UnaryInput::kNormal300: for (T& v : x) v = T(rng.normal() * 300); break;
    case UnaryInput::kEdges: from(general_edges<T>()); break;
    case UnaryInput::kUnit:
      for (T& v : x) {
        v = T(rng.uniform());
        if (v == T(0)) v = L::min();
      }
      break;
    case UnaryInput::kUnitTails:
      for (T& v : x) {
        const T t = log_uniform(e_tiny, -3);
        v = rng.uniform() < 0.5 ? t : T(1) - std::max(t, L::epsilon() / 2);
      }
      break;
    case UnaryInput::kLogitEdges: from(logit_edges<T>()); break;
    case UnaryInput::kPositive:
      for (T& v : x) {
        // a quarter near 1, where log's reduction and its sqrt(2) split matter most
        v = rng.uniform() < 0.25 ? log_uniform(-1, 0) : log_uniform(e_tiny, L::max_exponent - 1);
      }
      break;
    case UnaryInput::kLogEdges: from(log_edges<T>()); break;
  }
}

template <class T>
void run_unary(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (int op = 0; op < logitkit::kNumUnaryOps; ++op) {
    Check& c = checks.get<T>(kUnaryNames[op]);
    for (ptrdiff_t n : test_sizes()) {
      for (const UnaryInputInfo& ui : unary_inputs(op)) {
        const int reps = n <= 70 ? 3 : 2;
        for (int rep = 0; rep < reps; ++rep) {
          Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 3 : 4),
                           Rng::mix((std::uint64_t(n) * 131 + int(ui.input)) * 16 + std::uint64_t(op), rep)));
          std::vector<T> x(static_cast<size_t>(n)), y_ref(x.size()), y(x.size()), y_in;
          fill_unary(ui.input, rng, x);
          const Case cs{std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " input=" + ui.name +
                        " rep=" + std::to_string(rep)};
          ref.unary[op](x.data(), y_ref.data(), n);
          k.unary[op](x.data(), y.data(), n);
          compare_rows(c, y, y_ref, false, cs, &x);
          y_in = x;
          k.unary[op](y_in.data(), y_in.data(), n);
          compare_in_place(c, y_in, y, cs);
        }
      }
    }
  }
}

// ---- binary cross-entropy with logits ------------------------------------------------

enum class BceInput { kNormal3, kNormal30, kWide, kEdges };

struct BceInputInfo {
  BceInput input;
  const char* name;
};

constexpr BceInputInfo kBceInputs[] = {
    {BceInput::kNormal3, "x normal*3"},
    {BceInput::kNormal30, "x normal*30"},
    {BceInput::kWide, "x of any magnitude, some +-inf"},
    {BceInput::kEdges, "x edges"},
};

template <class T>
void fill_bce_logits(BceInput in, Rng& rng, std::vector<T>& x) {
  switch (in) {
    case BceInput::kNormal3: for (T& v : x) v = T(rng.normal() * 3); break;
    case BceInput::kNormal30: for (T& v : x) v = T(rng.normal() * 30); break;
    case BceInput::kWide:
      for (T& v : x) {
        const double sign = rng.uniform() < 0.5 ? -1.0 : 1.0;
        v = rng.uniform() < 0.05
                ? T(sign * kInf<double>)
                : T(sign * std::ldexp(1.0 + rng.uniform(),
                                      int(rng.integer(-8, std::numeric_limits<T>::max_exponent - 1))));
      }
      break;
    case BceInput::kEdges: {
      const std::vector<T> pool = general_edges<T>();
      for (T& v : x) v = pool[size_t(rng.index(ptrdiff_t(pool.size())))];
      break;
    }
  }
}

// c * softplus, with a zero coefficient giving 0 even where softplus is infinite, as the
// kernels define it.
double times(double c, double sp) { return c == 0 ? 0.0 : c * sp; }

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

template <class T>
void run_bce(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  const bool is_f32 = std::is_same<T, float>::value;
  for (ptrdiff_t n : test_sizes()) {
    for (const BceInputInfo& bi : kBceInputs) {
      for (bool labels : {false, true}) {
        const int reps = n <= 70 ? 2 : 1;
        for (int rep = 0; rep < reps; ++rep) {
          Rng rng(Rng::mix(Rng::mix(seed, is_f32 ? 11 : 12),
                           Rng::mix((std::uint64_t(n) * 131 + int(bi.input)) * 2 + labels, rep)));
          const size_t len = static_cast<size_t>(n);
          std::vector<T> x(len), y(len), w(len), pw(len), scale(len);
          std::vector<T> loss_ref(len), loss(len), grad_ref(len), grad(len);
          fill_bce_logits(bi.input, rng, x);
          // hard labels make a coefficient exactly 0 without smoothing, which must silence
          // an infinite softplus
          for (T& v : y) v = labels ? T(rng.integer(0, 1)) : T(rng.uniform());
          for (T& v : w) v = T(2 * rng.uniform());
          for (T& v : pw) v = T(0.1 + 2.9 * rng.uniform());
          for (T& v : scale) v = T(rng.uniform());
          const std::string row = std::string(Dtype<T>::name) + " n=" + std::to_string(n) + " " + bi.name +
                                  (labels ? " y labels" : " y uniform") + " rep=" + std::to_string(rep);
          std::vector<double> sp_pos(len), sp_neg(len), s_pos(len), s_neg(len);
          for (size_t i = 0; i < len; ++i) {
            sp_pos[i] = softplus(double(x[i]));
            sp_neg[i] = softplus(-double(x[i]));
            s_pos[i] = sigmoid(double(x[i]));
            s_neg[i] = sigmoid(-double(x[i]));
          }
          // Short rows run every combination of the options, long ones (where only the
          // summation order is new) a few, from a random start.
          const int count = n <= 70 ? 16 : 4;
          const int start = int(rng.index(16));
          const int bare = int(rng.index(count));

          for (int j = 0; j < count; ++j) {
            const int v = (start + 5 * j) % 16;
            const bool has_w = v & 1, has_pw = v & 2, per_entry_scale = v & 8;
            const double smoothing = (v & 4) ? 0.1 : 0.0;
            const T* wp = has_w ? w.data() : nullptr;
            const T* pwp = has_pw ? pw.data() : nullptr;
            const T* sp = per_entry_scale ? scale.data() : nullptr;
            const double sum_ref =
                ref.bce_row(x.data(), y.data(), wp, pwp, n, smoothing, loss_ref.data(), grad_ref.data(), sp, 0.5);
            const double sum =
                k.bce_row(x.data(), y.data(), wp, pwp, n, smoothing, loss.data(), grad.data(), sp, 0.5);
            const Case cs{row + (has_w ? " w" : "") + (has_pw ? " pos_weight" : "") +
                          (smoothing > 0 ? " smoothing 0.1" : "") + (per_entry_scale ? " grad_scale[]" : " scale 0.5")};

            // Both terms of a loss are non-negative, and so are both terms of a gradient
            // before their subtraction. With smoothing, y' = (1 - a) y + a/2 is fused in some
            // ISAs and not in others, so 1 - y' is known to an ulp of 1 rather than of itself:
            // there its magnitude is that of 1, times the softplus (sigmoid) it multiplies.
            std::vector<double> loss_mag(len), grad_mag(len);
            double sum_mag = 0;
            for (size_t i = 0; i < len; ++i) {
              const double yi = (1.0 - smoothing) * double(y[i]) + smoothing / 2;
              const double coeff_pos = smoothing > 0 ? 1.0 : 1.0 - yi;
              const double wi = has_w ? double(w[i]) : 1.0, pwi = has_pw ? double(pw[i]) : 1.0;
              loss_mag[i] = wi * (times(pwi * yi, sp_neg[i]) + times(coeff_pos, sp_pos[i]));
              const double gsi = per_entry_scale ? double(scale[i]) : 0.5;
              grad_mag[i] = std::fabs(gsi * wi) * (coeff_pos * s_pos[i] + pwi * yi * s_neg[i]);
              if (std::isfinite(loss_mag[i])) sum_mag += loss_mag[i];
            }
            compare_value<T>(checks.get<T>("bce_row:sum"), sum, sum_ref, sum_mag, false,
                             [&] { return cs.what + " got=" + fmt(sum) + " scalar=" + fmt(sum_ref); });
            compare_rows_by(
                checks.get<T>("bce_row:loss"), loss, loss_ref, cs, [](size_t) { return false; },
                [&](size_t i) { return loss_mag[i]; }, &x);
            compare_rows_by(
                checks.get<T>("bce_row:grad"), grad, grad_ref, cs, [](size_t) { return false; },
                [&](size_t i) { return grad_mag[i]; }, &x);
            if (j == bare) {
              // the sum must not depend on which of the outputs are asked for
              const double alone = k.bce_row(x.data(), y.data(), wp, pwp, n, smoothing, nullptr, nullptr, sp, 0.5);
              if (!same_bits(alone, sum)) {
                checks.get<T>("bce_row:sum").fail(cs.what + " without loss and grad buffers: " + fmt(alone) +
                                                  " != " + fmt(sum));
              }
            }
          }
        }
      }
    }
  }
}

// ---- driver --------------------------------------------------------------------------

struct Totals {
  int passed = 0, failed = 0;
};

// The short-row transposes, against the scalar table's, on rows of every length they take,
// row counts that leave some rows after the last full vector of rows, and rows spaced wider
// than their length; the entries between the rows must stay untouched.
template <class T>
void run_transposes(const KernelSet<T>& ref, const KernelSet<T>& k, std::uint64_t seed, Checks& checks) {
  Rng rng(Rng::mix(seed, sizeof(T) == 4 ? 11 : 12));
  for (ptrdiff_t n = k.transpose_min_n; n <= 16; ++n) {
    for (ptrdiff_t count : {1, 7, 8, 9, 17, 37, 256}) {
      for (ptrdiff_t gap : {0, 3}) {
        const ptrdiff_t step = n + gap;
        const Case cs{"n=" + std::to_string(n) + " count=" + std::to_string(count) + " step=" +
                      std::to_string(step)};
        std::vector<T> rows(static_cast<size_t>(count * step));
        for (T& v : rows) v = T(rng.normal());
        std::vector<T> want(static_cast<size_t>(n * count)), got(want.size());
        ref.rows_to_columns(rows.data(), step, count, n, want.data());
        k.rows_to_columns(rows.data(), step, count, n, got.data());
        compare_rows(checks.get<T>("rows_to_columns"), got, want, true, cs);
        std::vector<T> back_want(rows.size(), T(-7)), back_got(rows.size(), T(-7));
        ref.columns_to_rows(want.data(), back_want.data(), step, count, n);
        k.columns_to_rows(want.data(), back_got.data(), step, count, n);
        compare_rows(checks.get<T>("columns_to_rows"), back_got, back_want, true, cs);
      }
    }
  }
}

template <class T>
void run_dtype(const char* isa, const IsaTable& scalar, const IsaTable& table, std::uint64_t seed,
               bool verbose, Totals& totals) {
  Checks checks;
  run_row_functions(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_unary(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_masked_rows(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_backward_and_hardmax(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_cross_entropy(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_eval_rows(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_bce(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  run_transposes(Dtype<T>::of(scalar), Dtype<T>::of(table), seed, checks);
  for (Check& c : checks.all()) {
    const bool ok = c.failed == 0;
    std::printf("%-10s %s  %-24s max %9.3f ulp  tol %3g  %8ld values  %s", isa, Dtype<T>::name,
                c.func.c_str(), c.max_ulp, c.tol, c.compared, ok ? "ok" : "FAIL");
    if (c.nan_rows) {
      std::printf("  [NaN rows: max differs from scalar in %ld of %ld]", c.nan_row_max_differs, c.nan_rows);
    }
    if (c.unmeasured) std::printf("  [%ld sums cancelling to noise not measured]", c.unmeasured);
    std::printf("\n");
    if (verbose && !c.worst.empty()) std::printf("          worst: %s %s\n", isa, c.worst.c_str());
    if (!ok) {
      std::printf("        %ld failing values, e.g.\n", c.failed);
      for (const std::string& e : c.examples) std::printf("          %s %s\n", isa, e.c_str());
    }
    (ok ? totals.passed : totals.failed) += 1;
  }
}

// The 16-bit storage types: the conversions in every table's loads and stores are exact
// operations, so they must give the scalar table's bits for every half and bfloat16 value
// (both ways) and for float32 values around every rounding boundary, at every tail length.
// NaN only has to stay NaN on widening (F16C may quiet a signalling half NaN).
template <class S>
int check_conversions(const char* isa, const char* type, const KernelSet<S>& ref,
                      const KernelSet<S>& k, std::uint64_t seed) {
  int failed = 0;
  std::vector<S> all(65536 + 37);
  for (size_t i = 0; i < all.size(); ++i) all[i] = S{static_cast<std::uint16_t>(i & 0xffff)};
  std::vector<float> want(all.size()), got(all.size());
  for (ptrdiff_t offset : {ptrdiff_t(0), ptrdiff_t(1), ptrdiff_t(7)}) {
    const ptrdiff_t n = static_cast<ptrdiff_t>(all.size()) - offset;
    ref.widen_row(all.data() + offset, want.data(), n);
    k.widen_row(all.data() + offset, got.data(), n);
    for (ptrdiff_t i = 0; i < n; ++i) {
      const bool both_nan = std::isnan(want[i]) && std::isnan(got[i]);
      if (!both_nan && std::memcmp(&want[i], &got[i], sizeof(float)) != 0) {
        if (failed++ < 5) std::printf("        %s %s widen 0x%04x: %a vs %a\n", isa, type,
                                      all[offset + i].bits, double(want[i]), double(got[i]));
      }
    }
  }
  // float32 inputs: random bit patterns, and every 16-bit value's neighbourhood (the value,
  // the halfway points on either side and one ulp either side of them)
  Rng rng(seed);
  std::vector<float> wide;
  for (int i = 0; i < 200000; ++i) {
    const auto bits = static_cast<std::uint32_t>(rng.integer(0, 0xffffffffL));
    float f;
    std::memcpy(&f, &bits, sizeof f);
    wide.push_back(f);
  }
  for (std::uint32_t h = 0; h < 65536; h += 3) {
    float f = 0;
    ref.widen_row(&all[h], &f, 1);
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    for (std::uint32_t d : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x7fffu, 0x8000u, 0x8001u}) {
      for (std::uint32_t v : {u + d, u - d}) {
        float g;
        std::memcpy(&g, &v, sizeof g);
        wide.push_back(g);
      }
    }
  }
  // Subnormal floats, which a hardware conversion may read as zero (VCVTNEPS2BF16 does), of
  // both signs across their range and each next to a normal value, so that vectors mix the
  // two; and the NaNs of every kind, the infinities and the zeros.
  for (std::uint32_t m = 1; m < 0x800000u; m += 0x3fd) {
    for (std::uint32_t sign : {0u, 0x80000000u}) {
      for (std::uint32_t v : {sign | m, sign | (0x3f800000u + m)}) {
        float g;
        std::memcpy(&g, &v, sizeof g);
        wide.push_back(g);
      }
    }
  }
  for (std::uint32_t v : {0x7f800001u, 0xff800001u, 0x7fbfffffu, 0x7fc00000u, 0xffc00001u,
                          0x7fffffffu, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u,
                          0x007fffffu, 0x807fffffu, 0x00008000u, 0x00018000u}) {
    float g;
    std::memcpy(&g, &v, sizeof g);
    wide.push_back(g);
  }
  std::vector<S> narrow_want(wide.size()), narrow_got(wide.size());
  for (ptrdiff_t offset : {ptrdiff_t(0), ptrdiff_t(3)}) {
    const ptrdiff_t n = static_cast<ptrdiff_t>(wide.size()) - offset;
    ref.narrow_row(wide.data() + offset, narrow_want.data(), n);
    k.narrow_row(wide.data() + offset, narrow_got.data(), n);
    for (ptrdiff_t i = 0; i < n; ++i) {
      if (narrow_want[i].bits != narrow_got[i].bits) {
        if (failed++ < 10) std::printf("        %s %s narrow %a: 0x%04x vs 0x%04x\n", isa, type,
                                       double(wide[offset + i]), narrow_want[i].bits,
                                       narrow_got[i].bits);
      }
    }
  }
  std::printf("%-10s %-8s conversions (all 2^16 values, %zu float32 values)  %s\n", isa, type,
              wide.size(), failed ? "FAIL" : "ok");
  return failed;
}

// A 16-bit kernel is the float32 kernel with its loads and stores converting: on one table,
// softmax of 16-bit rows must equal the float32 softmax of the widened rows, rounded once.
template <class S>
int check_storage_rows(const char* isa, const char* type, const IsaTable& t, std::uint64_t seed) {
  int failed = 0;
  Rng rng(seed);
  const KernelSet<S>& k = logitkit::kernels_of<S>(t);
  for (ptrdiff_t n : {1, 2, 5, 15, 16, 17, 31, 100, 513, 4099}) {
    std::vector<S> x(static_cast<size_t>(n)), y(x.size()), yr(x.size());
    std::vector<float> xf(x.size()), yf(x.size());
    for (auto& v : xf) v = float(rng.uniform() * 40 - 20);
    k.narrow_row(xf.data(), x.data(), n);
    k.widen_row(x.data(), xf.data(), n);
    for (int log = 0; log < 2; ++log) {
      if (log) {
        k.log_softmax_row(x.data(), y.data(), n, false);
        t.f32.log_softmax_row(xf.data(), yf.data(), n, false);
      } else {
        k.softmax_row(x.data(), y.data(), n, scratch(n));
        t.f32.softmax_row(xf.data(), yf.data(), n, scratch(n));
      }
      k.narrow_row(yf.data(), yr.data(), n);
      for (ptrdiff_t i = 0; i < n; ++i) {
        if (y[i].bits != yr[i].bits && failed++ < 5) {
          std::printf("        %s %s %s n=%td [%td]: 0x%04x vs 0x%04x\n", isa, type,
                      log ? "log_softmax" : "softmax", n, i, y[i].bits, yr[i].bits);
        }
      }
    }
  }
  std::printf("%-10s %-8s softmax rows = float32 rows rounded once  %s\n", isa, type,
              failed ? "FAIL" : "ok");
  return failed;
}

// The same for the kernels of two inputs: the elementwise pairs, the binary cross-entropy and
// the divergences from logits. Their 16-bit outputs must be the float32 outputs rounded once,
// and their sums (double) the float32 kernels' sums, bit for bit; NaN only has to stay NaN.
template <class S>
int check_storage_pairs(const char* isa, const char* type, const IsaTable& t, std::uint64_t seed) {
  int failed = 0;
  Rng rng(Rng::mix(seed, 16));
  const KernelSet<S>& k = logitkit::kernels_of<S>(t);
  const KernelSet<float>& f = t.f32;
  auto report = [&](const std::string& what) {
    if (failed++ < 5) std::printf("        %s %s %s\n", isa, type, what.c_str());
  };
  // the 16-bit rows, rounded once from `values`, and their float32 widening
  auto rows16 = [&](const std::vector<float>& values, std::vector<S>& narrow, std::vector<float>& wide) {
    const auto n = static_cast<ptrdiff_t>(values.size());
    narrow.resize(values.size());
    wide.resize(values.size());
    k.narrow_row(values.data(), narrow.data(), n);
    k.widen_row(narrow.data(), wide.data(), n);
  };
  auto compare = [&](const std::vector<S>& got, const std::vector<float>& want32, const std::string& what) {
    const auto n = static_cast<ptrdiff_t>(got.size());
    std::vector<S> want(got.size());
    k.narrow_row(want32.data(), want.data(), n);
    std::vector<float> g(got.size());
    k.widen_row(got.data(), g.data(), n);
    for (ptrdiff_t i = 0; i < n; ++i) {
      const bool both_nan = std::isnan(g[i]) && std::isnan(want32[i]);
      if (!both_nan && got[i].bits != want[i].bits) {
        char bits[64];
        std::snprintf(bits, sizeof bits, " [%td]: 0x%04x vs 0x%04x", i, got[i].bits, want[i].bits);
        report(what + bits);
        return;
      }
    }
  };
  auto compare_sum = [&](double got, double want, const std::string& what) {
    if (!same_value(got, want)) report(what + ": " + fmt(got) + " vs " + fmt(want));
  };
  for (ptrdiff_t n : {1, 2, 5, 15, 16, 17, 31, 100, 513, 4099}) {
    const auto len = static_cast<size_t>(n);
    const std::string at = " n=" + std::to_string(n);
    std::vector<float> va(len), vb(len), vx(len), vy(len), vw(len), vpw(len), vs(len);
    for (size_t i = 0; i < len; ++i) {
      va[i] = float(std::fabs(rng.normal()) * 2);
      vb[i] = float(std::fabs(rng.normal()) * 2);
      vx[i] = float(rng.normal() * 4);
      vy[i] = float(rng.uniform());
      vw[i] = float(2 * rng.uniform());
      vpw[i] = float(0.1 + 2.9 * rng.uniform());
      vs[i] = float(rng.normal());
    }
    // the special values of the elementwise rules and the losses, once each in longer rows
    if (n >= 17) {
      va[0] = 0, vb[1] = 0, va[2] = kInf<float>, vb[3] = kInf<float>, va[4] = kNaN<float>;
      vx[5] = kInf<float>, vx[6] = -kInf<float>, vx[7] = kNaN<float>, vb[8] = -1, vy[9] = kNaN<float>;
    }
    std::vector<S> a, b, x, y, w, pw, gs;
    std::vector<float> af, bf, xf, yf, wf, pwf, gsf;
    rows16(va, a, af);
    rows16(vb, b, bf);
    rows16(vx, x, xf);
    rows16(vy, y, yf);
    rows16(vw, w, wf);
    rows16(vpw, pw, pwf);
    rows16(vs, gs, gsf);
    std::vector<S> out(len), out2(len);
    std::vector<float> out32(len), out32b(len);
    for (int op = 0; op < logitkit::kNumBinaryOps; ++op) {
      k.binary[op](a.data(), b.data(), out.data(), n);
      f.binary[op](af.data(), bf.data(), out32.data(), n);
      compare(out, out32, "binary op " + std::to_string(op) + at);
    }
    for (int v = 0; v < 4; ++v) {
      const bool weighted = v & 1;
      const double smoothing = (v & 2) ? 0.1 : 0.0;
      const std::string what = std::string("bce_row") + (weighted ? " w pw grad_scale[]" : "") +
                               (smoothing > 0 ? " smoothing 0.1" : "") + at;
      const double sum = k.bce_row(x.data(), y.data(), weighted ? w.data() : nullptr,
                                   weighted ? pw.data() : nullptr, n, smoothing, out.data(), out2.data(),
                                   weighted ? gs.data() : nullptr, 0.5);
      const double sum32 = f.bce_row(xf.data(), yf.data(), weighted ? wf.data() : nullptr,
                                     weighted ? pwf.data() : nullptr, n, smoothing, out32.data(),
                                     out32b.data(), weighted ? gsf.data() : nullptr, 0.5);
      compare_sum(sum, sum32, what + " sum");
      compare(out, out32, what + " loss");
      compare(out2, out32b, what + " grad");
    }
    for (double beta : {-1.0, 0.3}) {
      const std::string what = std::string(beta < 0 ? "divergence_row KL" : "divergence_row JSD") + at;
      // b (positive) as the second logits: the rows with a NaN or +inf logit are the first's
      const double value = k.divergence_row(x.data(), b.data(), n, beta, out.data(), out2.data(), 0.7);
      const double value32 = f.divergence_row(xf.data(), bf.data(), n, beta, out32.data(), out32b.data(), 0.7);
      compare_sum(value, value32, what + " value");
      compare(out, out32, what + " grad_p");
      compare(out2, out32b, what + " grad_q");
      const double alone = k.divergence_row(b.data(), a.data(), n, beta, nullptr, nullptr, 0.7);
      const double alone32 = f.divergence_row(bf.data(), af.data(), n, beta, nullptr, nullptr, 0.7);
      compare_sum(alone, alone32, what + " of b and a, without gradients");
    }
  }
  std::printf("%-10s %-8s pair kernels = float32 kernels rounded once  %s\n", isa, type,
              failed ? "FAIL" : "ok");
  return failed;
}

void run_storage16(const char* isa, const IsaTable& scalar, const IsaTable& t, std::uint64_t seed,
                   Totals& totals) {
  const int results[] = {
      check_conversions<logitkit::half_t>(isa, "float16", scalar.f16, t.f16, seed),
      check_conversions<logitkit::bf16_t>(isa, "bfloat16", scalar.bf16, t.bf16, seed),
      check_storage_rows<logitkit::half_t>(isa, "float16", t, seed),
      check_storage_rows<logitkit::bf16_t>(isa, "bfloat16", t, seed),
      check_storage_pairs<logitkit::half_t>(isa, "float16", t, seed),
      check_storage_pairs<logitkit::bf16_t>(isa, "bfloat16", t, seed)};
  for (int failed : results) (failed == 0 ? totals.passed : totals.failed) += 1;
}

struct Isa {
  const char* name;
  const IsaTable* (*table)();
  bool supported;
  const char* requirement;
};

// Every vector ISA of csrc/isa/isas.cmake that this build compiles, with the runtime's
// verdict on this CPU; the scalar table is the reference, not a candidate.
std::vector<Isa> compiled_isas() {
  namespace rt = logitkit::runtime;
  std::vector<Isa> isas;
#define LOGITKIT_HARNESS_ISA(name, requirement)                                         \
  if (rt::Isa::name != rt::Isa::scalar) {                                                \
    isas.push_back(                                                                      \
        {#name, &logitkit::isa_table_##name, rt::cpu_supports(rt::Isa::name), requirement}); \
  }
  LOGITKIT_COMPILED_ISAS(LOGITKIT_HARNESS_ISA)
#undef LOGITKIT_HARNESS_ISA
  return isas;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 20240611;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-v") == 0) {
      verbose = true;
    } else {
      seed = std::strtoull(argv[i], nullptr, 0);
    }
  }
  std::printf("isa_equivalence: every kernel table against the scalar table, seed %" PRIu64 "\n", seed);

  // Only a table the CPU can execute may be built: its static initialiser is compiled with
  // that ISA's flags too.
  const IsaTable& scalar = *logitkit::isa_table_scalar();
  Totals totals;
  run_storage16("scalar", scalar, scalar, seed, totals);
  const std::vector<Isa> isas = compiled_isas();
  if (isas.empty()) std::printf("no vector ISA compiled in: nothing to compare\n");
  for (const Isa& isa : isas) {
    if (!isa.supported) {
      std::printf("%-10s compiled but skipped: it needs %s, which this CPU (or OS) lacks\n", isa.name,
                  isa.requirement);
      continue;
    }
    const IsaTable& table = *isa.table();
    run_dtype<float>(isa.name, scalar, table, seed, verbose, totals);
    run_dtype<double>(isa.name, scalar, table, seed, verbose, totals);
    run_storage16(isa.name, scalar, table, seed, totals);
  }
  std::printf("%d passed, %d failed\n", totals.passed, totals.failed);
  return totals.failed == 0 ? 0 : 1;
}
