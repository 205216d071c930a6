// Fills the kernel table of one ISA. Included by exactly one translation unit per ISA,
// after it has defined LOGITKIT_ISA_NS and included its simd/ header.
//
// Everything under kernels/ lives in logitkit::LOGITKIT_ISA_NS, a namespace per target, so
// that no function compiled with one target's flags can be shared (by the linker's choice of
// one inline copy) with another target's code. The driver includes the ISA-independent
// merge code of combine.h once more under the namespace `host`: its baseline copy.
#pragma once
#include "columns.h"
#include "cross_entropy.h"
#include "eval_row.h"
#include "loss_columns.h"
#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

// The kernels of storage type S, computing in V::T. The 16-bit sets share the float set's
// column kernels and transposes, which the driver runs on float blocks.
template <class V, class VD, class S>
KernelSet<S> make_kernel_set() {
  using T = typename V::T;
  static_assert(std::is_same_v<T, compute_t<S>>, "V computes in S's compute type");
  KernelSet<S> k{};
  k.softmax_row = &softmax_row<V, VD, S>;
  k.log_softmax_row = &log_softmax_row<V, VD, S>;
  k.logsumexp_row = &logsumexp_row<V, VD, S>;
  k.masked_softmax_row = &masked_softmax_row<V, VD, S>;
  k.softmax_backward_row = &softmax_backward_row<V, VD, S>;
  k.hardmax_row = &hardmax_row<V, S>;
  k.entropy_row = &entropy_row<V, VD, S>;
  k.widen_row = &widen_row<V, S>;
  k.narrow_row = &narrow_row<V, S>;
  k.softmax_columns = &softmax_columns<V, VD>;
  k.logsumexp_columns = &logsumexp_columns<V, VD>;
  k.entropy_columns = &entropy_columns<V, VD>;
  k.cross_entropy_columns = &cross_entropy_columns<V, VD>;
  k.rows_to_columns = &rows_to_columns<V>;
  k.columns_to_rows = &columns_to_rows<V>;
  k.transpose_min_n = transpose_min_entries<V>();
  k.stats = &row_stats<V, VD, S>;
  k.weighted_stats = &weighted_row_stats<V, VD, S>;
  k.stats_store = &row_stats_store<V, VD, false, S>;
  k.scale_blocks = &scale_blocks<V, S>;
  k.sub_shift = &sub_shift<V, S>;
  k.softmax_special = &softmax_special_row<S>;
  k.logsumexp_special = &logsumexp_special_row<S>;
  k.unary[kSigmoid] = &unary_row<V, kSigmoid, S>;
  k.unary[kLogSigmoid] = &unary_row<V, kLogSigmoid, S>;
  k.unary[kSoftplus] = &unary_row<V, kSoftplus, S>;
  k.unary[kLogit] = &unary_row<V, kLogit, S>;
  k.unary[kExp] = &unary_row<V, kExp, S>;
  k.unary[kLog] = &unary_row<V, kLog, S>;
  k.unary[kEntr] = &unary_row<V, kEntr, S>;
  k.cross_entropy_row = &cross_entropy_row<V, VD, S>;
  k.eval_row = &eval_row<V, VD, S>;
  k.binary[kRelEntr] = &binary_row<V, kRelEntr, S>;
  k.binary[kKlDivElementwise] = &binary_row<V, kKlDivElementwise, S>;
  k.binary[kKlDivTorch] = &binary_row<V, kKlDivTorch, S>;
  k.binary[kKlDivTorchLogTarget] = &binary_row<V, kKlDivTorchLogTarget, S>;
  k.bce_row = &bce_row<V, VD, S>;
  k.divergence_row = &divergence_row<V, VD, S>;
  return k;
}

template <class VF, class VD>
IsaTable make_table(const char* name) {
  return IsaTable{name,
                  make_kernel_set<VF, VD, float>(),
                  make_kernel_set<VD, VD, double>(),
                  make_kernel_set<VF, VD, half_t>(),
                  make_kernel_set<VF, VD, bf16_t>(),
                  BandwidthKernels<float>{&read_sum<VF>, &copy_row<VF>}};
}

}  // namespace logitkit::LOGITKIT_ISA_NS
