// Elementwise functions over contiguous 1-d buffers prepared by the Python layer.
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

void unary(int op, py::array x, py::array y, int isa, int threads) {
  const char* name = "unary";
  if (op < 0 || op >= kNumUnaryOps) throw py::value_error("unary(): unknown operation");
  const DType dt = dtype_of(x, name, "x");
  require_same_dtype(x, y, name, "out");
  require_writeable(y, name, "out");
  if (x.ndim() != 1 || y.ndim() != 1 || x.shape(0) != y.shape(0)) {
    throw py::value_error("unary(): x and out must be 1-d of the same length");
  }
  const auto item = static_cast<py::ssize_t>(x.itemsize());
  if ((x.shape(0) > 1 && (x.strides(0) != item || y.strides(0) != item))) {
    throw py::value_error("unary(): x and out must be contiguous");
  }
  const IsaTable& table = table_for(isa);
  const std::ptrdiff_t count = x.shape(0);
  const int nt = runtime::resolve_threads(threads);
  const auto uop = static_cast<UnaryOp>(op);
  if (dt == DType::f32) {
    const float* xp = static_cast<const float*>(x.data());
    float* yp = static_cast<float*>(y.mutable_data());
    py::gil_scoped_release release;
    parallel::unary(table.f32, uop, xp, yp, count, nt);
  } else {
    const double* xp = static_cast<const double*>(x.data());
    double* yp = static_cast<double*>(y.mutable_data());
    py::gil_scoped_release release;
    parallel::unary(table.f64, uop, xp, yp, count, nt);
  }
}

}  // namespace

void register_elementwise(py::module_& m) {
  m.def("unary", &unary, py::arg("op"), py::arg("x"), py::arg("out"), py::arg("isa"),
        py::arg("threads"), "Apply elementwise operation `op` to contiguous 1-d x into out.");
  m.attr("OP_SIGMOID") = static_cast<int>(kSigmoid);
  m.attr("OP_LOG_SIGMOID") = static_cast<int>(kLogSigmoid);
  m.attr("OP_SOFTPLUS") = static_cast<int>(kSoftplus);
  m.attr("OP_LOGIT") = static_cast<int>(kLogit);
  m.attr("OP_EXP") = static_cast<int>(kExp);
  m.attr("OP_LOG") = static_cast<int>(kLog);
}

}  // namespace logitkit::bindings
