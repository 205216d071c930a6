// The contract between the per-ISA kernels and the ISA-independent layers above them:
// plain data types and one table of function pointers per instruction set.
#pragma once
#include <cstddef>
#include <cstdint>

#include "simd/storage.h"

namespace logitkit {

// Partial reduction of a row (or of one fixed-size chunk of it) for the log-sum-exp family.
// The entries equal to the maximum are kept apart from the rest, so that
// log(at_max + rest) can be formed as log(at_max) + log1p(rest / at_max): this keeps full
// relative precision when the maximum dominates, e.g. log_softmax([0, -50])[0] = -1.9e-22.
template <class T>
struct RowStats {
  T max;          // maximum over the counted entries (-inf when there are none)
  double at_max;  // number of entries equal to max, or the sum of their weights
  double rest;    // sum of (weight *) exp(x - max) over the entries below max
};

// log|sum| and the sign of sum (+1, -1, 0, or NaN) of a weighted sum of exponentials.
struct LseResult {
  double value;
  double sign;
};

// The row statistics work in blocks of this many bytes (see rows.h); the callers of
// stats_store size its block_max by them.
constexpr std::ptrdiff_t kStatsBlockBytes = 2048;

// Scratch memory for one kernel call, owned by the caller: the driver keeps a block per
// thread and hands it to the kernels that need one, so that no kernel allocates. A kernel
// carves its arrays from the front (take_scratch, in kernels/rows.h); a nested call gets what is left.
struct Workspace {
  unsigned char* next;
  unsigned char* end;
};

// The scratch one call of any kernel computing in T takes, for a row of n entries (width 0)
// or a block of `width` columns of n entries, each piece with room for its 64-byte alignment.
// A row kernel takes a row of exponentials and its blocks' maxima (softmax_row,
// cross_entropy_row). A column kernel takes its per-column arrays (16 arrays of 8-byte slots,
// padded to 16 columns), two rows for a special column, and a row kernel's share for that
// column's cross-entropy.
template <class T>
constexpr std::size_t scratch_bytes(std::ptrdiff_t n, std::ptrdiff_t width) {
  const auto items = [](std::ptrdiff_t count) {
    return static_cast<std::size_t>(count) * sizeof(T) + 64;
  };
  const std::ptrdiff_t block = kStatsBlockBytes / static_cast<std::ptrdiff_t>(sizeof(T));
  const std::size_t row = items(n) + items(n / block + 1);
  if (width == 0) return row;
  const auto columns = static_cast<std::size_t>((width + 15) / 16 * 16) * 8 * 16 + 64;
  return columns + items(2 * n) + row;
}

// Options of the fused cross-entropy that are the same for every row.
template <class T>
struct CrossEntropyParams {
  const T* class_weight = nullptr;  // length C, or null for weight 1
  double weight_sum = 0;            // sum of the class weights (C without weights)
  double smoothing = 0;             // effective label smoothing alpha (already Megatron-scaled)
  double z_loss = 0;                // coefficient of lse^2
  T softcap = 0;                    // logits become softcap * tanh(z / softcap); 0: off
  bool want_argmax = true;          // without it the row statistics take a faster path
  bool stream_grad = false;         // write the gradient with non-temporal stores
};

struct CrossEntropyRow {
  double loss;  // 0 for a row that does not count
  double lse;   // logsumexp of the (capped) logits
  long long argmax;  // -1 when not asked for
};

// What `logitkit eval` needs of one row of logits z against its label t, for softmax p:
// lse = log sum_j exp(z_j); loss = lse - z_t; entropy = -sum_j p_j log p_j (nats);
// brier = sum_j (p_j - [j == t])^2; rank = #{j : z_j > z_t} + #{j < t : z_j == z_t} (the
// label's place with argmax's tie rule, so rank 0 means argmax == t).
// A row whose maximum is finite gets all of them, -inf entries counting as probability 0;
// one whose maximum is not (a NaN, +inf, or only -inf) gets lse as logsumexp gives it, NaN
// for loss, entropy and brier, max NaN when a NaN is present, and argmax at its first NaN.
struct EvalRow {
  double lse;
  double max;  // the largest entry, in the compute type's precision
  double loss;
  double entropy;
  double brier;
  long long argmax;  // first index of the max
  long long rank;
  bool finite;  // no NaN or infinity in the row
};

enum UnaryOp : int { kSigmoid = 0, kLogSigmoid, kSoftplus, kLogit, kExp, kLog, kEntr, kNumUnaryOps };

// Elementwise functions of two arrays (the SciPy and PyTorch information measures).
enum BinaryOp : int {
  kRelEntr = 0,       // x log(x/y)                          (scipy.special.rel_entr)
  kKlDivElementwise,  // x log(x/y) - x + y                  (scipy.special.kl_div)
  kKlDivTorch,        // t (log t - a), 0 where t == 0        (F.kl_div pointwise, a = log q)
  kKlDivTorchLogTarget,  // exp(t) (t - a)                   (F.kl_div with log_target)
  kNumBinaryOps
};

// The kernels of one storage type S (float, double, half_t or bf16_t; simd/storage.h) on one
// ISA. Operands of type S are the arrays a user hands over: the kernels convert them in their
// loads and stores and compute in T = compute_t<S>. Operands of type T are the driver's
// scratch blocks and the per-call options.
template <class S>
struct KernelSet {
  using T = compute_t<S>;
  // Whole-row operations for rows short enough to stay in cache; y may alias x. Kernels
  // with a `stream` flag write their output with non-temporal stores when it is set (for
  // outputs larger than the cache, which the next reader would not find there anyway).
  void (*softmax_row)(const S* x, S* y, std::ptrdiff_t n, Workspace ws);
  void (*log_softmax_row)(const S* x, S* y, std::ptrdiff_t n, bool stream);
  LseResult (*logsumexp_row)(const S* x, const S* b, std::ptrdiff_t n);  // b may be null
  // softmax or log_softmax over the entries whose mask is non-zero; the others get 0 / -inf.
  void (*masked_softmax_row)(const S* x, const S* mask, S* y, std::ptrdiff_t n, bool log);
  // Vector-Jacobian products: out = y * (g - sum(g * y)) for softmax outputs y, or
  // out = g - exp(y) * sum(g) for log_softmax outputs y. out may alias g or y.
  void (*softmax_backward_row)(const S* g, const S* y, S* out, std::ptrdiff_t n, bool log);
  // One-hot of the first maximum (a NaN row gives NaN everywhere). y may alias x.
  void (*hardmax_row)(const S* x, S* y, std::ptrdiff_t n);
  // Entropy of softmax(x) in nats over the entries with non-zero mask (all when null).
  double (*entropy_row)(const S* x, const S* mask, std::ptrdiff_t n);

  // Conversion of n contiguous values to the compute type and back (copies when S is T).
  void (*widen_row)(const S* src, T* dst, std::ptrdiff_t n);
  void (*narrow_row)(const T* src, S* dst, std::ptrdiff_t n);

  // The same along a non-contiguous axis: x holds `width` contiguous columns whose n entries
  // are x_stride apart, and each column is one row of the operation (see columns.h). These
  // and the transposes are in the compute type.
  void (*softmax_columns)(const T* x, std::ptrdiff_t x_stride, T* y, std::ptrdiff_t y_stride,
                          std::ptrdiff_t n, std::ptrdiff_t width, bool log, Workspace ws);
  void (*logsumexp_columns)(const T* x, std::ptrdiff_t x_stride, T* out, std::ptrdiff_t n,
                            std::ptrdiff_t width, Workspace ws);
  void (*entropy_columns)(const T* x, std::ptrdiff_t x_stride, T* out, std::ptrdiff_t n,
                          std::ptrdiff_t width, Workspace ws);
  // The cross-entropy of plain rows (index targets; no smoothing, soft targets, softcap or
  // argmax) along columns: column j has target[j], counted[j] and grad_scale[j], and gets
  // loss[j] and lse[j]; grad (null: none) is laid out like z, and may be z.
  void (*cross_entropy_columns)(const T* z, std::ptrdiff_t z_stride, std::ptrdiff_t n,
                                std::ptrdiff_t width, const long long* target,
                                const unsigned char* counted, const double* grad_scale,
                                const CrossEntropyParams<T>& params, T* grad,
                                std::ptrdiff_t grad_stride, double* loss, double* lse,
                                Workspace ws);
  // Between `count` rows of n entries, `step` elements apart, and the columns of `block`
  // (entry c of row r at block[c * count + r]): the short-row paths run the column kernels on
  // such blocks. Rows must hold at least transpose_min_n entries.
  void (*rows_to_columns)(const T* rows, std::ptrdiff_t step, std::ptrdiff_t count,
                          std::ptrdiff_t n, T* block);
  void (*columns_to_rows)(const T* block, T* rows, std::ptrdiff_t step, std::ptrdiff_t count,
                          std::ptrdiff_t n);
  std::ptrdiff_t transpose_min_n;

  // Pieces from which long rows are assembled chunk by chunk (possibly across threads).
  RowStats<T> (*stats)(const S* x, std::ptrdiff_t n);
  RowStats<T> (*weighted_stats)(const S* x, const S* b, std::ptrdiff_t n);
  // The statistics of softmax, which needs only the sum (at_max 0, rest the whole sum), that
  // also store y = exp(x - m_b) per block of kStatsBlockBytes (m_b, the running max the block
  // was summed against, into block_max[b]); scale_blocks then turns y into
  // coeff * exp(x - max). y must not be x.
  RowStats<T> (*stats_store)(const S* x, T* y, std::ptrdiff_t n, T* block_max);
  void (*scale_blocks)(const T* src, S* dst, std::ptrdiff_t n, const T* block_max, T max,
                       double coeff, bool stream);
  void (*sub_shift)(const S* x, S* y, std::ptrdiff_t n, T shift, T offset,  // (x-s)-c
                    bool stream);
  // Rows whose maximum is not finite (NaN, +inf, or all -inf): scalar and rare.
  void (*softmax_special)(const S* x, S* y, std::ptrdiff_t n, bool log);
  LseResult (*logsumexp_special)(const S* x, const S* b, std::ptrdiff_t n);

  void (*unary[kNumUnaryOps])(const S* x, S* y, std::ptrdiff_t n);
  void (*binary[kNumBinaryOps])(const S* a, const S* b, S* y, std::ptrdiff_t n);

  // Binary cross-entropy with logits over one row of n independent classes:
  //   loss_i = w_i (pw_i y'_i softplus(-x_i) + (1 - y'_i) softplus(x_i)),
  //   y' = (1 - smoothing) y + smoothing / 2. w, pw (length n) may be null (weight 1).
  // Writes loss_i into loss (when not null), grad_scale_i * d(loss_i)/d(x_i) into grad (when
  // not null; grad_scale null means the scalar `scale`), and returns the sum of loss_i.
  double (*bce_row)(const S* x, const S* y, const S* w, const S* pw, std::ptrdiff_t n,
                    double smoothing, S* loss, S* grad, const S* grad_scale, double scale);

  // Divergence between P = softmax(zp) and Q = softmax(zq) over one row: KL(P || Q) when
  // beta < 0, else the generalized Jensen-Shannon divergence with mixture beta P + (1-beta) Q
  // (0 < beta < 1). When grad_p / grad_q are not null they receive scale * d/dzp, d/dzq.
  double (*divergence_row)(const S* zp, const S* zq, std::ptrdiff_t n, double beta, S* grad_p,
                           S* grad_q, double scale);

  // One row of the fused cross-entropy: loss, lse and argmax from one read of the logits and,
  // when grad is not null, grad = grad_scale * d(loss)/d(logits) written in a second sweep
  // over the (cached) row. target is a class index, or soft points at a row of target
  // probabilities. A row with counted == false gets loss 0 and a zero gradient. grad may
  // alias z (the gradient then overwrites the logits). soft is in the compute type.
  CrossEntropyRow (*cross_entropy_row)(const S* z, std::ptrdiff_t n, long long target,
                                       const T* soft, bool counted,
                                       const CrossEntropyParams<T>& params, double grad_scale,
                                       S* grad, Workspace ws);

  // The statistics of `logitkit eval` for one row of n >= 1 logits and its label
  // 0 <= target < n (see EvalRow), from two reads of the row.
  EvalRow (*eval_row)(const S* z, std::ptrdiff_t n, long long target);
};

// The memory yardstick, with the kernels' own loads and stores: a read-only sum, and a copy
// with plain or non-temporal stores.
template <class T>
struct BandwidthKernels {
  double (*read_sum)(const T* x, std::ptrdiff_t n);
  void (*copy)(const T* x, T* y, std::ptrdiff_t n, bool stream);
};

struct IsaTable {
  const char* name;
  KernelSet<float> f32;
  KernelSet<double> f64;
  KernelSet<half_t> f16;
  KernelSet<bf16_t> bf16;
  BandwidthKernels<float> bandwidth;  // float lanes; the yardstick is dtype-blind
};

template <class S>
const KernelSet<S>& kernels_of(const IsaTable& t) {
  if constexpr (std::is_same_v<S, float>) {
    return t.f32;
  } else if constexpr (std::is_same_v<S, double>) {
    return t.f64;
  } else if constexpr (std::is_same_v<S, half_t>) {
    return t.f16;
  } else {
    return t.bf16;
  }
}

}  // namespace logitkit
