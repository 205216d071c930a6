// Fills the kernel table of one ISA. Included by exactly one translation unit per ISA,
// after it has defined LOGITKIT_ISA_NS and included its simd/ header.
#pragma once
#include "columns.h"
#include "convert.h"
#include "cross_entropy.h"
#include "loss_columns.h"
#include "rows.h"

namespace logitkit::LOGITKIT_ISA_NS {

template <class V, class VD>
KernelSet<typename V::T> make_kernel_set() {
  using T = typename V::T;
  KernelSet<T> k{};
  k.softmax_row = &softmax_row<V, VD>;
  k.log_softmax_row = &log_softmax_row<V, VD>;
  k.logsumexp_row = &logsumexp_row<V, VD>;
  k.masked_softmax_row = &masked_softmax_row<V, VD>;
  k.softmax_backward_row = &softmax_backward_row<V, VD>;
  k.hardmax_row = &hardmax_row<V>;
  k.entropy_row = &entropy_row<V, VD>;
  k.softmax_columns = &softmax_columns<V, VD>;
  k.logsumexp_columns = &logsumexp_columns<V, VD>;
  k.entropy_columns = &entropy_columns<V, VD>;
  k.cross_entropy_columns = &cross_entropy_columns<V, VD>;
  k.rows_to_columns = &rows_to_columns<V>;
  k.columns_to_rows = &columns_to_rows<V>;
  k.transpose_min_n = V::N;
  k.stats = &row_stats<V, VD>;
  k.weighted_stats = &weighted_row_stats<V, VD>;
  k.stats_store = &row_stats_store<V, VD, false>;
  k.scale_blocks = &scale_blocks<V>;
  k.sub_shift = &sub_shift<V>;
  k.softmax_special = &softmax_special_row<T>;
  k.logsumexp_special = &logsumexp_special_row<T>;
  k.unary[kSigmoid] = &unary_row<V, kSigmoid>;
  k.unary[kLogSigmoid] = &unary_row<V, kLogSigmoid>;
  k.unary[kSoftplus] = &unary_row<V, kSoftplus>;
  k.unary[kLogit] = &unary_row<V, kLogit>;
  k.unary[kExp] = &unary_row<V, kExp>;
  k.unary[kLog] = &unary_row<V, kLog>;
  k.unary[kEntr] = &unary_row<V, kEntr>;
  k.binary[kRelEntr] = &binary_row<V, kRelEntr>;
  k.binary[kKlDivElementwise] = &binary_row<V, kKlDivElementwise>;
  k.binary[kKlDivTorch] = &binary_row<V, kKlDivTorch>;
  k.binary[kKlDivTorchLogTarget] = &binary_row<V, kKlDivTorchLogTarget>;
  k.cross_entropy_row = &cross_entropy_row<V, VD>;
  k.bce_row = &bce_row<V, VD>;
  k.divergence_row = &divergence_row<V, VD>;
  return k;
}

template <class VF, class VD>
IsaTable make_table(const char* name) {
  return IsaTable{name, make_kernel_set<VF, VD>(), make_kernel_set<VD, VD>(),
                  BandwidthKernels<float>{&read_sum<VF>, &copy_row<VF>},
                  ConvertKernels{&half_to_float, &float_to_half, &bf16_to_float, &float_to_bf16}};
}

}  // namespace logitkit::LOGITKIT_ISA_NS
