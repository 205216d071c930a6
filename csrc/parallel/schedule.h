// Scheduling: how the work of a call is spread over threads. Every parallel loop here is
// scheduled `guided`; each item's result depends only on its index, never on the thread that
// runs it, so results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "parallel/layout.h"

namespace logitkit::parallel::detail {

// Outputs of at least this many bytes are written with non-temporal stores (see driver.h).
extern std::atomic<ptrdiff_t> g_stream_min_bytes;

// The calling thread's scratch block of at least `bytes`: one per thread, grown as needed and
// kept between calls, so that the kernels never allocate.
Workspace scratch_block(std::size_t bytes);

// The scratch for one call of a kernel computing in T on a row of n entries (width 0) or a
// block of `width` columns (scratch_bytes in kernels/table.h).
template <class T>
Workspace scratch(ptrdiff_t n, ptrdiff_t width) {
  return scratch_block(scratch_bytes<T>(n, width));
}

template <class T>
bool streams(ptrdiff_t elements) {
  return elements * static_cast<ptrdiff_t>(sizeof(T)) >= g_stream_min_bytes.load();
}

inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Row lengths are measured in the compute type, so that a 16-bit row is cut where the same
// row in float32 is: its results are float32's, rounded once.
template <class S>
constexpr ptrdiff_t long_row_elements() {
  return kLongRowBytes / static_cast<ptrdiff_t>(sizeof(compute_t<S>));
}

template <class S>
constexpr ptrdiff_t chunk_elements() {
  return kChunkBytes / static_cast<ptrdiff_t>(sizeof(compute_t<S>));
}

// `guided` rather than equal static shares: a thread that starts late or is slowed by another
// process leaves its share to the others, which on a shared machine made many short items
// (the blocks of short rows) up to a fifth faster (`python -m logitkit bench --shapes
// 262144x10 --threads 2`, static against guided).

// Threads go to rows when there are enough rows; otherwise to the chunks of each row.
inline int threads_for(ptrdiff_t rows, ptrdiff_t n, int threads) {
  if (rows * n < kSerialWork) return 1;
  return threads;
}

// Runs one_row(r, buffer, row_threads) for every row: either the rows one after another,
// each shared by all threads (split_rows), or the rows spread over a team of threads. Each
// thread gets its own buffer of row_buf elements for gathering strided rows.
template <class T, class OneRow>
void for_rows(ptrdiff_t rows, int threads, bool split_rows, ptrdiff_t row_buf,
              OneRow&& one_row) {
  if (split_rows) {
    std::vector<T> buf(static_cast<size_t>(row_buf));
    for (ptrdiff_t r = 0; r < rows; ++r) one_row(r, buf.data(), threads);
    return;
  }
  const int team = static_cast<int>(std::min<ptrdiff_t>(threads, rows));
  std::vector<T> bufs(static_cast<size_t>(row_buf) * team);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    T* buf = bufs.data() + static_cast<size_t>(row_buf) * thread_id();
#pragma omp for schedule(guided)
    for (ptrdiff_t r = 0; r < rows; ++r) one_row(r, buf, 1);
  }
}

// Elementwise work in fixed blocks: the blocking depends only on the size, so per-block sums
// added in block order do not depend on the thread count.
constexpr ptrdiff_t kElementBlock = 1 << 14;

template <class Fn>
void for_each_block(ptrdiff_t count, int threads, Fn&& fn) {
  const ptrdiff_t blocks = (count + kElementBlock - 1) / kElementBlock;
  const int nt = count < kSerialWork ? 1 : static_cast<int>(std::min<ptrdiff_t>(threads, blocks));
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(guided)
  for (ptrdiff_t b = 0; b < blocks; ++b) {
    fn(b, b * kElementBlock, std::min(kElementBlock, count - b * kElementBlock));
  }
}

// Runs fn(x_offset, y_offset, first_column, columns, buffer, first_row) over every slab of the
// other outer axes and every chunk of columns along axis d; buffer holds a chunk's worth of T
// for the calling thread, and first_row is the row number of the chunk's first column (the
// next columns' rows follow at the stride of axis d in row_numbers).
template <class T, class Fn>
void for_column_blocks(const RowShape& shape, int d, const StridedArray& x, const StridedArray& y,
                       int threads, Fn&& fn) {
  std::vector<ptrdiff_t> slab_shape = shape.outer;
  const ptrdiff_t width = slab_shape[d];
  slab_shape[d] = 1;
  const StridedArray numbers = row_numbers(shape.outer);
  const RowOffsets offsets(slab_shape, {&x, &y, &numbers});
  const ptrdiff_t slabs = product(slab_shape);
  const int nt = threads_for(slabs * width, shape.n, threads);
  const ptrdiff_t chunk = column_chunk<T>(slabs, width, nt);
  const ptrdiff_t per_slab = (width + chunk - 1) / chunk;
  const ptrdiff_t items = slabs * per_slab;
  const ptrdiff_t row_step = numbers.outer_strides[d];
  for_rows<T>(items, nt, false, chunk, [&](ptrdiff_t item, T* buf, int) {
    const ptrdiff_t slab = item / per_slab, first = (item % per_slab) * chunk;
    fn(offsets.offset(0, slab), offsets.offset(1, slab), first, std::min(chunk, width - first),
       buf, offsets.offset(2, slab) + first * row_step);
  });
}

// Runs fn(first_row, rows_in_block, in, out, staging) for every block of short rows, with in,
// out and staging three blocks' worth of the compute type for the calling thread.
template <class T, class Fn>
void for_short_row_blocks(ptrdiff_t rows, ptrdiff_t n, int threads, Fn&& fn) {
  const ptrdiff_t blocks = (rows + kShortRowBlock - 1) / kShortRowBlock;
  const ptrdiff_t block_elements = kShortRowBlock * n;
  for_rows<T>(blocks, threads_for(rows, n, threads), false, 3 * block_elements,
              [&](ptrdiff_t b, T* buf, int) {
                const ptrdiff_t first = b * kShortRowBlock;
                fn(first, std::min(kShortRowBlock, rows - first), buf, buf + block_elements,
                   buf + 2 * block_elements);
              });
}

}  // namespace logitkit::parallel::detail
