// Runs the row kernels over strided N-d arrays with OpenMP. The reduction axis is the last
// one; every other axis is an "outer" axis enumerating rows. Strides are in elements.
//
// One file per job: layout.h plans how the rows lie (columns, short rows, plain or gathered
// rows) and moves data between layouts; schedule.h spreads work over threads; row_ops.cpp,
// loss_ops.cpp and elementwise.cpp pick the kernels for a plan; eval_ops.cpp runs the
// statistics of `logitkit eval`; yardstick.cpp is the memory yardstick the benchmarks
// measure against.
//
// Each operation is a template over the storage type S of its arrays (float, double, half_t,
// bf16_t): 16-bit arrays are read and written as they are, converted inside the kernels, and
// per-row results (logsumexp values, losses) are in the compute type compute_t<S>.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/table.h"

namespace logitkit::parallel {

struct StridedArray {
  void* data = nullptr;
  std::vector<std::ptrdiff_t> outer_strides;  // one per outer axis
  std::ptrdiff_t axis_stride = 1;             // along the reduction axis (unused for outputs
                                              // that have no such axis)
};

struct RowShape {
  std::vector<std::ptrdiff_t> outer;  // sizes of the outer axes
  std::ptrdiff_t n = 0;               // length of the reduction axis
};

// Row-to-row operations along the last axis.
//   softmax, log_softmax: y = op(x); with `aux` (a 0/1 mask, same shape as x) the masked
//     entries are left out.
//   softmax_backward, log_softmax_backward: x holds the upstream gradient, aux the forward
//     output; y receives the gradient with respect to the forward input.
//   hardmax: y = one-hot of the first maximum of x.
// y may be x itself.
enum class RowOp { softmax, log_softmax, softmax_backward, log_softmax_backward, hardmax };

template <class T>
void row_map(const KernelSet<T>& k, RowOp op, const RowShape& shape, const StridedArray& x,
             const StridedArray& aux, const StridedArray& y, int threads);

// Row reductions along the last axis.
//   logsumexp: out = log|sum(b * exp(x))|; sign (optional) receives the sign of the sum.
//     Without a sign output a negative sum gives NaN. b may have data == nullptr.
//   entropy: out = entropy of softmax(x) in nats, over the entries where b (a 0/1 mask, or
//     none) is non-zero.
enum class RowReduction { logsumexp, entropy };

template <class T>
void reduce_rows(const KernelSet<T>& k, RowReduction op, const RowShape& shape,
                 const StridedArray& x, const StridedArray& b, const StridedArray& out,
                 const StridedArray& sign, int threads);

// Per-row inputs and outputs of the cross-entropy, contiguous in row order.
struct CrossEntropyRows {
  const long long* target = nullptr;     // class index per row (index targets)
  const unsigned char* counted = nullptr;  // 0: the row is ignored or masked out
  const double* grad_scale = nullptr;     // d(reduced loss)/d(row loss), when a gradient is wanted
  double* loss = nullptr;
  double* lse = nullptr;
  long long* argmax = nullptr;
};

// Fused cross-entropy along the last axis of z, with class-probability targets in `soft`
// (data == nullptr for index targets) and the gradient into `grad` (data == nullptr: none).
// soft is in the compute type; z and grad in S.
template <class T>
void cross_entropy(const KernelSet<T>& k, const RowShape& shape, const StridedArray& z,
                   const StridedArray& soft, const StridedArray& grad,
                   const CrossEntropyRows& rows, const CrossEntropyParams<compute_t<T>>& params,
                   int threads);

// Per-row outputs of eval_rows, contiguous in row order (see EvalRow in kernels/table.h).
struct EvalRows {
  double* lse = nullptr;
  double* max = nullptr;
  double* loss = nullptr;
  double* entropy = nullptr;
  double* brier = nullptr;
  long long* argmax = nullptr;
  long long* rank = nullptr;
  bool* finite = nullptr;
};

// The statistics of `logitkit eval` for each row of a C-contiguous (rows, n) array z against
// its label target[r] (0 <= target[r] < n, n >= 1). Each row is computed by one thread, so
// the results do not depend on the thread count.
template <class S>
void eval_rows(const KernelSet<S>& k, std::ptrdiff_t rows, std::ptrdiff_t n, const S* z,
               const long long* target, const EvalRows& out, int threads);

// KL or generalized JSD (beta < 0: KL) between softmax rows of two C-contiguous (rows, n)
// arrays; value[r] per row, and when grad_p / grad_q are not null, scale[r] times the
// gradients. Rows are independent, so the result does not depend on the thread count.
template <class S>
void divergence(const KernelSet<S>& k, std::ptrdiff_t rows, std::ptrdiff_t n, const S* zp,
                const S* zq, double beta, double* value, S* grad_p, S* grad_q,
                const double* scale, int threads);

// Binary cross-entropy with logits over `count` contiguous elements (w, pw, loss, grad and
// grad_scale may be null; see KernelSet::bce_row). Returns the sum of the elementwise losses,
// added up over fixed blocks in order so it does not depend on the thread count.
template <class S>
double binary_cross_entropy(const KernelSet<S>& k, std::ptrdiff_t count, const S* x, const S* y,
                            const S* w, const S* pw, double smoothing, S* loss, S* grad,
                            const S* grad_scale, double scale, int threads);

// y = f(a, b) elementwise over `count` contiguous elements. y may be a or b itself.
template <class S>
void binary(const KernelSet<S>& k, BinaryOp op, const S* a, const S* b, S* y,
            std::ptrdiff_t count, int threads);

// y = f(x) elementwise over `count` contiguous elements. y may be x itself.
template <class T>
void unary(const KernelSet<T>& k, UnaryOp op, const T* x, T* y, std::ptrdiff_t count,
           int threads);

// The memory yardstick over `count` contiguous floats: a read-only sum (returned, so the
// reads cannot be skipped), and a copy with plain or non-temporal stores.
double bandwidth_read(const BandwidthKernels<float>& k, const float* x, std::ptrdiff_t count,
                      int threads);
void bandwidth_copy(const BandwidthKernels<float>& k, const float* x, float* y,
                    std::ptrdiff_t count, bool stream, int threads);

// Conversion of `count` contiguous values of a 16-bit storage type to float32 and back.
template <class S>
void widen(const KernelSet<S>& k, const S* src, compute_t<S>* dst, std::ptrdiff_t count,
           int threads);
template <class S>
void narrow(const KernelSet<S>& k, const compute_t<S>* src, S* dst, std::ptrdiff_t count,
            int threads);

// Outputs of at least this many bytes (over the whole call) are written with non-temporal
// stores: bigger than the last-level cache, they would be evicted before anyone read them,
// and a plain store would first read every line it writes. Settable for measurements.
std::ptrdiff_t stream_min_bytes();
void set_stream_min_bytes(std::ptrdiff_t bytes);

// Below this many elements a call runs on the calling thread: a fork/join costs more.
constexpr std::ptrdiff_t kSerialWork = 1 << 15;

// A row longer than this many bytes is processed in fixed-size chunks whose partial
// statistics are merged in order; one such row may be shared by several threads.
constexpr std::ptrdiff_t kLongRowBytes = 160 * 1024;
constexpr std::ptrdiff_t kChunkBytes = 64 * 1024;

}  // namespace logitkit::parallel
