// Concurrent calls into the native library, for ThreadSanitizer (tests/native/run_sanitized.sh
// thread). Python threads call logitkit at once with the GIL released; this does the same from
// std::threads, without Python: every thread runs the driver's paths (long and short rows,
// column kernels, the cross-entropy with its gradient, 16-bit conversions, the elementwise
// functions, the buffer cache) on every ISA table this CPU runs, and checks that each result
// is bitwise the one computed beforehand on one thread. The kernels' per-thread buffers, the
// lazily built tables and the shared buffer cache are what a race would show in.
//
// Built without OpenMP (ThreadSanitizer does not see inside libgomp), so that the threads
// here are the only concurrency. Exit status 0 when every result matched.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "parallel/driver.h"
#include "runtime/buffer_pool.h"
#include "runtime/runtime.h"

using namespace logitkit;
using parallel::RowShape;
using parallel::StridedArray;

namespace {

struct Inputs {
  std::ptrdiff_t rows = 48, n = 700;  // rows of 700: more than a block, fewer than a chunk
  std::vector<float> x, long_row;
  std::vector<long long> target;
  std::vector<unsigned char> counted;
  std::vector<double> scale;
  std::vector<half_t> x16;
};

Inputs make_inputs() {
  Inputs in;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  in.x.resize(static_cast<size_t>(in.rows * in.n));
  for (float& v : in.x) v = normal(rng);
  in.long_row.resize(200000);  // longer than kLongRowBytes: the chunked long-row path
  for (float& v : in.long_row) v = normal(rng);
  for (std::ptrdiff_t r = 0; r < in.rows; ++r) {
    in.target.push_back(static_cast<long long>((r * 37) % in.n));
    in.counted.push_back(r % 5 != 0);
    in.scale.push_back(1.0 / double(in.rows));
  }
  in.x16.resize(in.x.size());
  for (size_t i = 0; i < in.x.size(); ++i) {  // float16 bits of small values
    in.x16[i] = half_t{static_cast<std::uint16_t>(0x3000 + (i * 131) % 0x1800)};
  }
  return in;
}

StridedArray rows_of(const void* data, std::ptrdiff_t rows, std::ptrdiff_t row_stride,
                     std::ptrdiff_t axis_stride) {
  StridedArray a;
  a.data = const_cast<void*>(data);
  a.outer_strides = {row_stride};
  a.axis_stride = axis_stride;
  (void)rows;
  return a;
}

// Every path once; returns the outputs concatenated as bytes.
std::vector<unsigned char> run_all(const IsaTable& t, const Inputs& in) {
  std::vector<unsigned char> bytes;
  auto keep = [&](const void* p, size_t size) {
    const auto* b = static_cast<const unsigned char*>(p);
    bytes.insert(bytes.end(), b, b + size);
  };
  const auto& k = t.f32;
  const std::ptrdiff_t rows = in.rows, n = in.n;
  std::vector<float> y(in.x.size());
  const StridedArray none;

  // softmax and log_softmax along rows, and along columns (axis 0 of the same data)
  for (auto op : {parallel::RowOp::softmax, parallel::RowOp::log_softmax}) {
    parallel::row_map(k, op, RowShape{{rows}, n}, rows_of(in.x.data(), rows, n, 1), none,
                      rows_of(y.data(), rows, n, 1), 1);
    keep(y.data(), y.size() * sizeof(float));
    parallel::row_map(k, op, RowShape{{n}, rows}, rows_of(in.x.data(), n, 1, n), none,
                      rows_of(y.data(), n, 1, n), 1);
    keep(y.data(), y.size() * sizeof(float));
  }
  // many short rows (the transposed blocks)
  parallel::row_map(k, parallel::RowOp::softmax, RowShape{{rows * n / 10}, 10},
                    rows_of(in.x.data(), rows * n / 10, 10, 1), none,
                    rows_of(y.data(), rows * n / 10, 10, 1), 1);
  keep(y.data(), y.size() * sizeof(float));
  // one long row, in place
  std::vector<float> long_copy = in.long_row;
  parallel::row_map(k, parallel::RowOp::softmax,
                    RowShape{{1}, static_cast<std::ptrdiff_t>(long_copy.size())},
                    rows_of(long_copy.data(), 1, 0, 1), none, rows_of(long_copy.data(), 1, 0, 1),
                    1);
  keep(long_copy.data(), long_copy.size() * sizeof(float));

  // logsumexp and entropy of the rows
  std::vector<float> red(static_cast<size_t>(rows));
  StridedArray out;
  out.data = red.data();
  out.outer_strides = {1};
  for (auto op : {parallel::RowReduction::logsumexp, parallel::RowReduction::entropy}) {
    parallel::reduce_rows(k, op, RowShape{{rows}, n}, rows_of(in.x.data(), rows, n, 1), none,
                          out, none, 1);
    keep(red.data(), red.size() * sizeof(float));
  }

  // the cross-entropy with its gradient, label smoothing on
  std::vector<double> loss(static_cast<size_t>(rows)), lse(static_cast<size_t>(rows));
  std::vector<long long> argmax(static_cast<size_t>(rows));
  parallel::CrossEntropyRows ce{in.target.data(), in.counted.data(), in.scale.data(),
                                loss.data(), lse.data(), argmax.data()};
  CrossEntropyParams<float> params;
  params.weight_sum = double(n);
  params.smoothing = 0.1;
  parallel::cross_entropy(k, RowShape{{rows}, n}, rows_of(in.x.data(), rows, n, 1), none,
                          rows_of(y.data(), rows, n, 1), ce, params, 1);
  keep(loss.data(), loss.size() * sizeof(double));
  keep(y.data(), y.size() * sizeof(float));

  // 16-bit softmax, converted in the kernels' loads and stores
  std::vector<half_t> y16(in.x16.size());
  parallel::row_map(t.f16, parallel::RowOp::softmax, RowShape{{rows}, n},
                    rows_of(in.x16.data(), rows, n, 1), parallel::StridedArray{},
                    rows_of(y16.data(), rows, n, 1), 1);
  keep(y16.data(), y16.size() * sizeof(half_t));

  // elementwise
  parallel::unary(k, kSigmoid, in.x.data(), y.data(), static_cast<std::ptrdiff_t>(y.size()), 1);
  keep(y.data(), y.size() * sizeof(float));

  // the buffer cache, shared by every thread: take, write, give back
  runtime::BufferBlock block = runtime::take_buffer(size_t(17) << 20);
  std::memset(block.data, 1, 4096);
  runtime::give_back_buffer(block);
  return bytes;
}

}  // namespace

int main() {
  runtime::set_buffer_cache_limit(size_t(64) << 20);
  const Inputs in = make_inputs();
  std::vector<const IsaTable*> tables;
  for (runtime::Isa isa : runtime::all_isas()) {
    if (const IsaTable* t = runtime::usable_table(isa)) tables.push_back(t);
  }
  std::vector<std::vector<unsigned char>> expected;
  for (const IsaTable* t : tables) expected.push_back(run_all(*t, in));

  constexpr int kThreads = 4, kRounds = 3;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id) {
    threads.emplace_back([&, id] {
      for (int round = 0; round < kRounds; ++round) {
        for (size_t i = 0; i < tables.size(); ++i) {
          // each thread starts from another table, so that different ISAs run at once
          const size_t j = (i + size_t(id)) % tables.size();
          if (run_all(*tables[j], in) != expected[j]) ++mismatches[size_t(id)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  int total = 0;
  for (int m : mismatches) total += m;
  std::printf("thread_safety: %d threads x %d rounds x %zu ISA tables, %d mismatches\n", kThreads,
              kRounds, tables.size(), total);
  return total == 0 ? 0 : 1;
}
