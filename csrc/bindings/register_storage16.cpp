// float16 and bfloat16 arrays, handed over by the Python layer as C-contiguous uint16 views of
// their bits and computed in float32 blocks by the driver (see driver.h).
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

// Calls run(table, x bits, y bits, threads) without the GIL.
template <class Run>
void run_on_bits(const py::array& x, py::array& y, int isa, int threads, Run&& run) {
  const IsaTable& table = table_for(isa);
  const auto* xp = static_cast<const std::uint16_t*>(x.data());
  auto* yp = static_cast<std::uint16_t*>(y.mutable_data());
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  run(table, xp, yp, nt);
}

// softmax or log_softmax of the rows of x (rows, n) into y of the same shape (y may be x).
void softmax16(const py::array& x, py::array& y, bool log, bool bfloat16, int isa, int threads) {
  const char* name = log ? "log_softmax" : "softmax";
  require_bits16(x, name, "x");
  require_bits16(y, name, "out");
  require_writeable(y, name, "out");
  if (x.ndim() != 2) throw py::value_error(std::string(name) + "(): x must be 2-d rows");
  require_shape(y, shape_of(x), name, "out");
  run_on_bits(x, y, isa, threads, [&](const IsaTable& t, auto* xp, auto* yp, int nt) {
    parallel::softmax16(t.f32, t.convert, storage_kind(bfloat16), log, x.shape(0), x.shape(1),
                        xp, yp, nt);
  });
}

// logsumexp or entropy of the rows of x (rows, n > 0) into the float32 out (rows,).
void reduce16(const py::array& x, py::array& out, bool entropy, bool bfloat16, int isa,
              int threads) {
  const char* name = entropy ? "entropy_from_logits" : "logsumexp";
  require_bits16(x, name, "x");
  if (x.ndim() != 2 || x.shape(1) == 0) {
    throw py::value_error(std::string(name) + "(): x must be 2-d rows of at least one entry");
  }
  if (!py::isinstance<py::array_t<float>>(out) || out.ndim() != 1 || out.shape(0) != x.shape(0) ||
      !(out.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + "(): out must be contiguous float32, one per row");
  }
  require_writeable(out, name, "out");
  const IsaTable& table = table_for(isa);
  const auto* xp = static_cast<const std::uint16_t*>(x.data());
  auto* op = static_cast<float*>(out.mutable_data());
  const int nt = runtime::resolve_threads(threads);
  const auto what = entropy ? parallel::RowReduction::entropy : parallel::RowReduction::logsumexp;
  ReleaseGil release;
  parallel::reduce16(table.f32, table.convert, storage_kind(bfloat16), what, x.shape(0),
                     x.shape(1), xp, op, nt);
}

// Elementwise `op` of x into y (1-d, one length; y may be x).
void unary16(int op, const py::array& x, py::array& y, bool bfloat16, int isa, int threads) {
  const char* name = "unary";
  if (op < 0 || op >= kNumUnaryOps) throw py::value_error("unary(): unknown operation");
  require_bits16(x, name, "x");
  require_bits16(y, name, "out");
  require_writeable(y, name, "out");
  if (x.ndim() != 1) throw py::value_error("unary(): x must be 1-d");
  require_shape(y, shape_of(x), name, "out");
  run_on_bits(x, y, isa, threads, [&](const IsaTable& t, auto* xp, auto* yp, int nt) {
    parallel::unary16(t.f32, t.convert, storage_kind(bfloat16), static_cast<UnaryOp>(op), xp,
                      yp, x.shape(0), nt);
  });
}

}  // namespace

void require_bits16(const py::array& a, const char* func, const char* arg) {
  if (!py::isinstance<py::array_t<std::uint16_t>>(a) || !(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(func) + "(): " + arg +
                          " must be the C-contiguous uint16 bits of a float16/bfloat16 array");
  }
}

void register_storage16(py::module_& m) {
  m.def("softmax16", &softmax16, py::arg("x"), py::arg("out"), py::arg("log"),
        py::arg("bfloat16"), py::arg("isa"), py::arg("threads"),
        "softmax or log_softmax of float16/bfloat16 rows (as uint16 bits), in float32.");
  m.def("reduce16", &reduce16, py::arg("x"), py::arg("out"), py::arg("entropy"),
        py::arg("bfloat16"), py::arg("isa"), py::arg("threads"),
        "logsumexp or entropy of float16/bfloat16 rows (as uint16 bits) into float32 values.");
  m.def("unary16", &unary16, py::arg("op"), py::arg("x"), py::arg("out"), py::arg("bfloat16"),
        py::arg("isa"), py::arg("threads"),
        "Elementwise `op` over float16/bfloat16 values (as uint16 bits), in float32.");
}

}  // namespace logitkit::bindings
