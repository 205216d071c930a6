// Elementwise functions over contiguous 1-d buffers prepared by the Python layer.
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

void unary(int op, py::array x, py::array y, int isa, int threads) {
  const char* name = "unary";
  if (op < 0 || op >= kNumUnaryOps) throw py::value_error("unary(): unknown operation");
  const DType dt = dtype_of(x, name, "x");
  require_dtype(y, dt, name, "out");
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
  with_storage(dt, [&](auto s) {
    using S = decltype(s);
    const S* xp = static_cast<const S*>(x.data());
    S* yp = static_cast<S*>(y.mutable_data());
    ReleaseGil release;
    parallel::unary(kernels_of<S>(table), uop, xp, yp, count, nt);
  });
}

// dst[:] = src between a 16-bit type and float32 (either way), over contiguous 1-d arrays of
// one length; to nearest even.
void astype(const py::array& src, py::array& dst, int isa, int threads) {
  const char* name = "astype";
  const DType from = dtype_of(src, name, "src"), to = dtype_of(dst, name, "dst");
  const bool widens = (from == DType::f16 || from == DType::bf16) && to == DType::f32;
  const bool narrows = from == DType::f32 && (to == DType::f16 || to == DType::bf16);
  if (!widens && !narrows) {
    throw py::type_error("astype(): converts between float16/bfloat16 and float32 only");
  }
  require_writeable(dst, name, "dst");
  auto contiguous = [](const py::array& a) {
    return a.ndim() == 1 && (a.shape(0) < 2 || a.strides(0) == a.itemsize());
  };
  if (!contiguous(src) || !contiguous(dst) || src.shape(0) != dst.shape(0)) {
    throw py::value_error("astype(): src and dst must be contiguous 1-d of the same length");
  }
  const IsaTable& table = table_for(isa);
  const std::ptrdiff_t count = src.shape(0);
  const int nt = runtime::resolve_threads(threads);
  with_storage(widens ? from : to, [&](auto s) {
    using S = decltype(s);
    if constexpr (is_storage16<S>) {
      if (widens) {
        const S* sp = static_cast<const S*>(src.data());
        float* dp = static_cast<float*>(dst.mutable_data());
        ReleaseGil release;
        parallel::widen(kernels_of<S>(table), sp, dp, count, nt);
      } else {
        const float* sp = static_cast<const float*>(src.data());
        S* dp = static_cast<S*>(dst.mutable_data());
        ReleaseGil release;
        parallel::narrow(kernels_of<S>(table), sp, dp, count, nt);
      }
    }
  });
}

void binary(int op, py::array a, py::array b, py::array y, int isa, int threads) {
  const char* name = "binary";
  if (op < 0 || op >= kNumBinaryOps) throw py::value_error("binary(): unknown operation");
  const DType dt = dtype_of(a, name, "a");
  require_same_dtype(a, b, name, "b");
  require_same_dtype(a, y, name, "out");
  require_writeable(y, name, "out");
  for (const py::array* arr : {&a, &b, &y}) {
    if (arr->ndim() != 1 || arr->shape(0) != a.shape(0) ||
        (arr->shape(0) > 1 && arr->strides(0) != static_cast<py::ssize_t>(a.itemsize()))) {
      throw py::value_error("binary(): a, b and out must be contiguous 1-d of one length");
    }
  }
  const IsaTable& table = table_for(isa);
  const std::ptrdiff_t count = a.shape(0);
  const int nt = runtime::resolve_threads(threads);
  const auto bop = static_cast<BinaryOp>(op);
  with_storage(dt, [&](auto s) {
    using S = decltype(s);
    const S* ap = static_cast<const S*>(a.data());
    const S* bp = static_cast<const S*>(b.data());
    S* yp = static_cast<S*>(y.mutable_data());
    ReleaseGil release;
    parallel::binary(kernels_of<S>(table), bop, ap, bp, yp, count, nt);
  });
}

}  // namespace

void register_elementwise(py::module_& m) {
  m.def("binary", &binary, py::arg("op"), py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("isa"), py::arg("threads"),
        "Apply elementwise operation `op` to contiguous 1-d a and b into out.");
  m.attr("OP_ENTR") = static_cast<int>(kEntr);
  m.attr("OP_REL_ENTR") = static_cast<int>(kRelEntr);
  m.attr("OP_KL_DIV_ELEMENTWISE") = static_cast<int>(kKlDivElementwise);
  m.attr("OP_KL_DIV_TORCH") = static_cast<int>(kKlDivTorch);
  m.attr("OP_KL_DIV_TORCH_LOG_TARGET") = static_cast<int>(kKlDivTorchLogTarget);
  m.def("astype", &astype, py::arg("src"), py::arg("dst"), py::arg("isa"), py::arg("threads"),
        "dst[:] = src between float16/bfloat16 and float32, to nearest even.");
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
