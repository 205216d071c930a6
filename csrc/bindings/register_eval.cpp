// The per-row statistics behind `logitkit eval`: a (rows, classes) block of logits and one
// label per row in, one value per row and statistic out. Private to the eval command.
#include <cstdint>
#include <string>

#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

constexpr const char* kName = "eval_rows";

bool contiguous_aligned(const py::array& a) {
  const auto address = reinterpret_cast<std::uintptr_t>(a.data());
  return (a.flags() & py::array::c_style) &&
         address % static_cast<std::uintptr_t>(a.itemsize()) == 0;
}

void require_rows(const py::array& a, py::ssize_t rows, const py::dtype& dtype,
                  const char* dtype_name, const char* arg, bool writeable) {
  if (!a.dtype().equal(dtype)) {
    throw py::type_error(std::string(kName) + "(): " + arg + " must have dtype " + dtype_name +
                         ", got " + std::string(py::str(a.dtype())));
  }
  if (a.ndim() != 1 || a.shape(0) != rows || !contiguous_aligned(a)) {
    throw py::value_error(std::string(kName) + "(): " + arg +
                          " must be contiguous and aligned with one entry per row (" +
                          std::to_string(rows) + ")");
  }
  if (writeable) require_writeable(a, kName, arg);
}

template <class U>
U* data_of(py::array& a) {
  return static_cast<U*>(a.mutable_data());
}

void eval_rows(py::array z, py::array target, py::array lse, py::array max, py::array loss,
               py::array entropy, py::array brier, py::array argmax, py::array rank,
               py::array finite, int isa, int threads) {
  const DType dt = dtype_of(z, kName, "logits");
  if (z.ndim() != 2 || !contiguous_aligned(z)) {
    throw py::value_error(std::string(kName) +
                          "(): logits must be a C-contiguous, aligned (rows, classes) array");
  }
  const py::ssize_t rows = z.shape(0), n = z.shape(1);
  if (n < 1 && rows > 0) throw py::value_error(std::string(kName) + "(): logits have no classes");
  const auto f64 = py::dtype::of<double>(), i64 = py::dtype::of<long long>();
  require_rows(target, rows, i64, "int64", "target", false);
  require_rows(lse, rows, f64, "float64", "lse", true);
  require_rows(max, rows, f64, "float64", "max", true);
  require_rows(loss, rows, f64, "float64", "loss", true);
  require_rows(entropy, rows, f64, "float64", "entropy", true);
  require_rows(brier, rows, f64, "float64", "brier", true);
  require_rows(argmax, rows, i64, "int64", "argmax", true);
  require_rows(rank, rows, i64, "int64", "rank", true);
  require_rows(finite, rows, py::dtype::of<bool>(), "bool", "finite", true);
  const auto* t = static_cast<const long long*>(target.data());
  for (py::ssize_t r = 0; r < rows; ++r) {
    if (t[r] < 0 || t[r] >= n) {
      throw py::index_error(std::string(kName) + "(): target " + std::to_string(t[r]) +
                            " in row " + std::to_string(r) + " is out of range for " +
                            std::to_string(n) + " classes");
    }
  }
  parallel::EvalRows rows_out;
  rows_out.lse = data_of<double>(lse);
  rows_out.max = data_of<double>(max);
  rows_out.loss = data_of<double>(loss);
  rows_out.entropy = data_of<double>(entropy);
  rows_out.brier = data_of<double>(brier);
  rows_out.argmax = data_of<long long>(argmax);
  rows_out.rank = data_of<long long>(rank);
  rows_out.finite = data_of<bool>(finite);
  const IsaTable& table = table_for(isa);
  const int nt = runtime::resolve_threads(threads);
  with_storage(dt, [&](auto s) {
    using S = decltype(s);
    const S* zd = static_cast<const S*>(z.data());
    ReleaseGil release;
    parallel::eval_rows(kernels_of<S>(table), rows, n, zd, t, rows_out, nt);
  });
}

}  // namespace

void register_eval(py::module_& m) {
  m.def("eval_rows", &eval_rows, py::arg("logits"), py::arg("target"), py::arg("lse"),
        py::arg("max"), py::arg("loss"), py::arg("entropy"), py::arg("brier"), py::arg("argmax"),
        py::arg("rank"), py::arg("finite"), py::arg("isa"), py::arg("threads"),
        "Per-row statistics of logits against labels for logitkit eval: logsumexp, max, "
        "first argmax, loss, entropy (nats), Brier term, rank of the label and finiteness. "
        "Logits in float16, bfloat16, float32 or float64, C-contiguous (rows, classes).");
}

}  // namespace logitkit::bindings
