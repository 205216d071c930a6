// Layout: how the rows of an operation lie in memory, decided once per call, and the moves
// between layouts (row offsets, gathers, transposes). The operations in row_ops.cpp and
// loss_ops.cpp ask plan_rows() for a plan and then only pick their kernels for it.
#pragma once
#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/table.h"
#include "parallel/driver.h"

namespace logitkit::parallel::detail {

using std::ptrdiff_t;

// Maps a row number to the element offset of that row in each operand. Adjacent outer axes
// that are laid out contiguously in every operand are merged first, so the common cases
// (C-contiguous and simple slices) cost one multiplication per row.
class RowOffsets {
 public:
  RowOffsets(const std::vector<ptrdiff_t>& shape, const std::vector<const StridedArray*>& ops)
      : strides_(ops.size()) {
    auto stride = [&](size_t k, size_t d) -> ptrdiff_t {
      return ops[k]->data ? ops[k]->outer_strides[d] : 0;
    };
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      bool mergeable = !dims_.empty();
      for (size_t k = 0; mergeable && k < ops.size(); ++k) {
        mergeable = strides_[k].back() == shape[d] * stride(k, d);
      }
      if (mergeable) {
        dims_.back() *= shape[d];
        for (size_t k = 0; k < ops.size(); ++k) strides_[k].back() = stride(k, d);
      } else {
        dims_.push_back(shape[d]);
        for (size_t k = 0; k < ops.size(); ++k) strides_[k].push_back(stride(k, d));
      }
    }
  }

  // True when the rows of operand `op` lie `step` elements apart (one merged axis, or none).
  bool uniform(size_t op, ptrdiff_t& step) const {
    if (dims_.size() > 1) return false;
    step = dims_.empty() ? 0 : strides_[op][0];
    return true;
  }

  // The outermost axis takes what is left of row without a division: with one merged axis
  // (the common case) an offset is one multiplication, which short rows feel.
  ptrdiff_t offset(size_t op, ptrdiff_t row) const {
    if (dims_.empty()) return 0;
    ptrdiff_t off = 0;
    for (size_t d = dims_.size() - 1; d > 0; --d) {
      off += (row % dims_[d]) * strides_[op][d];
      row /= dims_[d];
    }
    return off + row * strides_[op][0];
  }

 private:
  std::vector<ptrdiff_t> dims_;
  std::vector<std::vector<ptrdiff_t>> strides_;  // per operand, per merged axis
};

inline ptrdiff_t product(const std::vector<ptrdiff_t>& v) {
  ptrdiff_t p = 1;
  for (ptrdiff_t s : v) p *= s;
  return p;
}

template <class T>
void gather(const T* src, ptrdiff_t stride, ptrdiff_t n, T* dst) {
  for (ptrdiff_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}

template <class T>
void scatter(const T* src, ptrdiff_t n, T* dst, ptrdiff_t stride) {
  for (ptrdiff_t i = 0; i < n; ++i) dst[i * stride] = src[i];
}

// ---- rows that are columns: the reduction axis is not the contiguous one ----------------

// An outer axis along which x (and y, when given) are contiguous: its entries become the
// lanes of the column kernels. -1 when there is none.
inline int contiguous_outer_axis(const RowShape& shape, const StridedArray& x, const StridedArray* y) {
  for (size_t d = shape.outer.size(); d-- > 0;) {
    if (shape.outer[d] > 1 && x.outer_strides[d] == 1 && (!y || y->outer_strides[d] == 1)) {
      return static_cast<int>(d);
    }
  }
  return -1;
}

// Columns per work item. The column kernels read each row of their block whole, so wider
// blocks make longer contiguous reads; the accumulators their sweeps update (20 bytes a
// column for float) should stay in L1, and all their per-column arrays (up to 112 bytes a
// column) in L2; and every thread should have an item, the same share of the columns where
// a slab has to be split. The split depends on the thread count, which changes no result:
// a column's result does not depend on the block it is in.
template <class T>
ptrdiff_t column_chunk(ptrdiff_t slabs, ptrdiff_t width, int threads) {
  constexpr ptrdiff_t kMaxColumns = 1024, kMinColumns = 64, kAlign = 16;
  ptrdiff_t pieces = (width + kMaxColumns - 1) / kMaxColumns;
  if (slabs * pieces < threads) pieces = (threads + slabs - 1) / slabs;
  if (slabs == 1 && pieces > 1) pieces = (pieces + threads - 1) / threads * threads;
  const ptrdiff_t share = (width + pieces - 1) / pieces;
  return std::min(width, std::max(kMinColumns, (share + kAlign - 1) / kAlign * kAlign));
}

// Row numbers (in the row-major order of the outer axes) as an operand of RowOffsets, for
// the per-row arrays of the cross-entropy.
inline StridedArray row_numbers(const std::vector<ptrdiff_t>& outer) {
  static char any;  // RowOffsets only asks whether an operand has data
  StridedArray a;
  a.data = &any;
  a.outer_strides.resize(outer.size());
  ptrdiff_t step = 1;
  for (size_t d = outer.size(); d-- > 0;) {
    a.outer_strides[d] = step;
    step *= outer[d];
  }
  return a;
}

// Many short contiguous rows: blocks of rows are transposed into a scratch block, whose
// columns are then the rows, so that the vectors run across rows.
constexpr ptrdiff_t kShortRow = 16, kShortRowBlock = 256;

// ---- the plan ---------------------------------------------------------------------------

// The ladder every row operation climbs, in this order:
//   columns     the reduction axis is strided and an outer axis is contiguous in the inputs
//               and outputs: the column kernels put that axis's entries in the vector lanes,
//               reading the data in place;
//   short_rows  many contiguous rows of at most kShortRow entries: blocks of rows are
//               transposed into scratch and run through the column kernels;
//   rows        one row at a time, read in place when every operand is contiguous along the
//               axis, else gathered into a per-thread buffer.
enum class Layout { columns, short_rows, rows };

// What an operation's kernels can take, besides plain rows.
struct Abilities {
  bool columns = false;     // column kernels that read a strided axis in place
  bool short_rows = false;  // column kernels for transposed blocks of short rows
  // the column kernels index per-row arrays by row number, so the columns must be
  // consecutive rows: the contiguous outer axis is the last one longer than 1
  bool consecutive_columns = false;
};

struct RowPlan {
  Layout layout = Layout::rows;
  ptrdiff_t rows = 0;      // number of rows (the product of the outer axes)
  bool contiguous = true;  // every operand with data is contiguous along the reduction axis
  int column_axis = -1;    // Layout::columns: the outer axis whose entries become lanes
};

// along_axis: the operands read or written along the reduction axis (null data: absent);
// lanes: the inputs and outputs that must be contiguous along the column axis (null: none).
inline RowPlan plan_rows(const RowShape& shape,
                         std::initializer_list<const StridedArray*> along_axis,
                         const StridedArray& lanes_in, const StridedArray* lanes_out,
                         const Abilities& can) {
  RowPlan plan;
  plan.rows = product(shape.outer);
  for (const StridedArray* a : along_axis) {
    if (a->data && a->axis_stride != 1) plan.contiguous = false;
  }
  if (can.columns && !plan.contiguous && plan.rows > 1) {
    const int d = contiguous_outer_axis(shape, lanes_in, lanes_out);
    bool usable = d >= 0;
    if (usable && can.consecutive_columns) {
      for (size_t e = static_cast<size_t>(d) + 1; usable && e < shape.outer.size(); ++e) {
        usable = shape.outer[e] == 1;
      }
    }
    if (usable) {
      plan.layout = Layout::columns;
      plan.column_axis = d;
      return plan;
    }
  }
  if (can.short_rows && plan.contiguous && shape.n <= kShortRow && plan.rows >= kShortRowBlock) {
    plan.layout = Layout::short_rows;
  }
  return plan;
}

// ---- transposes between rows and column blocks --------------------------------------------

// Between rows [first, first + count) of operand `op`, each n long, and the columns of
// `block`: entry c of row first + r is block[c * count + r]. Rows the same distance apart
// (nearly always) take the kernels' transpose in registers when they are at least a vector
// long, and otherwise a loop unrolled for their length, a few times faster than the general
// one on these short rows (`python -m logitkit bench --shapes 262144x10`).
template <int N, bool kToColumns, class T>
void transpose_uniform(T* rows, ptrdiff_t step, ptrdiff_t count, T* block) {
  for (ptrdiff_t r = 0; r < count; ++r) {
    T* row = rows + r * step;
    for (int c = 0; c < N; ++c) {
      if (kToColumns) {
        block[c * count + r] = row[c];
      } else {
        row[c] = block[c * count + r];
      }
    }
  }
}

template <bool kToColumns, class T, int... Ns>
bool transpose_short(T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n, T* block,
                     std::integer_sequence<int, Ns...>) {
  return ((n == Ns + 1 ? (transpose_uniform<Ns + 1, kToColumns>(rows, step, count, block), true)
                       : false) ||
          ...);
}

template <bool kToColumns, class S, class T = compute_t<S>>
void transpose_block(const KernelSet<S>& k, T* rows, ptrdiff_t step, ptrdiff_t count, ptrdiff_t n,
                     T* block) {
  if (n >= k.transpose_min_n) {
    if (kToColumns) {
      k.rows_to_columns(rows, step, count, n, block);
    } else {
      k.columns_to_rows(block, rows, step, count, n);
    }
    return;
  }
  transpose_short<kToColumns>(rows, step, count, n, block,
                              std::make_integer_sequence<int, kShortRow>{});
}

template <bool kToColumns, class T>
void transpose_rows(const KernelSet<T>& k, T* base, const RowOffsets& offsets, size_t op,
                    ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, T* block) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && (n >= k.transpose_min_n || n <= kShortRow)) {
    transpose_block<kToColumns>(k, base + first * step, step, count, n, block);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    T* row = base + offsets.offset(op, first + r);
    for (ptrdiff_t c = 0; c < n; ++c) {
      if (kToColumns) {
        block[c * count + r] = row[c];
      } else {
        row[c] = block[c * count + r];
      }
    }
  }
}

// Rows [first, first + count) of operand `op` into `staging`, n apart, in the compute type;
// and back.
template <class S>
void widen_rows(const KernelSet<S>& k, const S* base, const RowOffsets& offsets, size_t op,
                ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, compute_t<S>* staging) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && step == n) {
    k.widen_row(base + first * n, staging, count * n);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    k.widen_row(base + offsets.offset(op, first + r), staging + r * n, n);
  }
}

template <class S>
void narrow_rows(const KernelSet<S>& k, const compute_t<S>* staging, S* base,
                 const RowOffsets& offsets, size_t op, ptrdiff_t first, ptrdiff_t count,
                 ptrdiff_t n) {
  ptrdiff_t step = 0;
  if (offsets.uniform(op, step) && step == n) {
    k.narrow_row(staging, base + first * n, count * n);
    return;
  }
  for (ptrdiff_t r = 0; r < count; ++r) {
    k.narrow_row(staging + r * n, base + offsets.offset(op, first + r), n);
  }
}

// Between rows of S and the columns of a compute-type block. 16-bit rows are converted
// through `staging` (a block's worth), as rows n apart, so that the transposes and the column
// kernels see float32 only.
template <class S>
void rows_to_columns(const KernelSet<S>& k, const S* base, const RowOffsets& offsets, size_t op,
                     ptrdiff_t first, ptrdiff_t count, ptrdiff_t n, compute_t<S>* block,
                     compute_t<S>* staging) {
  if constexpr (std::is_same_v<S, compute_t<S>>) {
    transpose_rows<true>(k, const_cast<S*>(base), offsets, op, first, count, n, block);
  } else {
    widen_rows(k, base, offsets, op, first, count, n, staging);
    transpose_block<true>(k, staging, n, count, n, block);
  }
}

template <class S>
void columns_to_rows(const KernelSet<S>& k, const compute_t<S>* block, S* base,
                     const RowOffsets& offsets, size_t op, ptrdiff_t first, ptrdiff_t count,
                     ptrdiff_t n, compute_t<S>* staging) {
  using T = compute_t<S>;
  if constexpr (std::is_same_v<S, T>) {
    transpose_rows<false>(k, base, offsets, op, first, count, n, const_cast<T*>(block));
  } else {
    transpose_block<false>(k, staging, n, count, n, const_cast<T*>(block));
    narrow_rows(k, staging, base, offsets, op, first, count, n);
  }
}

}  // namespace logitkit::parallel::detail
