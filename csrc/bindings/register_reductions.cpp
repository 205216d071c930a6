// softmax, log_softmax and logsumexp over the last axis of arrays prepared by the Python layer.
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

void softmax(py::array x, py::array y, bool log, int isa, int threads,
             std::optional<py::array> mask) {
  const char* name = log ? "log_softmax" : "softmax";
  const DType dt = dtype_of(x, name, "x");
  require_dtype(y, dt, name, "out");
  require_writeable(y, name, "out");
  if (x.ndim() < 1) throw py::value_error(std::string(name) + "(): x must have at least one axis");
  require_shape(y, shape_of(x), name, "out");
  const IsaTable& table = table_for(isa);
  const parallel::RowShape shape = row_shape(x);
  const parallel::StridedArray xs = strided(x, true), ys = strided(y, true, true);
  parallel::StridedArray ms;
  if (mask) {
    require_dtype(*mask, dt, name, "where");
    require_shape(*mask, shape_of(x), name, "where");
    ms = strided(*mask, true);
  }
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  const auto op = log ? parallel::RowOp::log_softmax : parallel::RowOp::softmax;
  with_storage(dt, [&](auto s) {
    parallel::row_map(kernels_of<decltype(s)>(table), op, shape, xs, ms, ys, nt);
  });
}

void reduce(bool entropy, py::array x, std::optional<py::array> b, py::array out,
            std::optional<py::array> sign, int isa, int threads) {
  const char* name = entropy ? "entropy_from_logits" : "logsumexp";
  const DType dt = dtype_of(x, name, "x");
  if (x.ndim() < 1) throw py::value_error("logsumexp(): x must have at least one axis");
  std::vector<py::ssize_t> outer = shape_of(x);
  outer.pop_back();
  require_dtype(out, compute_dtype(dt), name, "out");
  require_writeable(out, name, "out");
  require_shape(out, outer, name, "out");
  parallel::StridedArray bs, ss;
  if (b) {
    require_dtype(*b, dt, name, "b");
    require_shape(*b, shape_of(x), name, "b");
    bs = strided(*b, true);
  }
  if (sign) {
    require_dtype(*sign, compute_dtype(dt), name, "sign");
    require_writeable(*sign, name, "sign");
    require_shape(*sign, outer, name, "sign");
    ss = strided(*sign, false, true);
  }
  const IsaTable& table = table_for(isa);
  const parallel::RowShape shape = row_shape(x);
  const parallel::StridedArray xs = strided(x, true), os = strided(out, false, true);
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  const auto op = entropy ? parallel::RowReduction::entropy : parallel::RowReduction::logsumexp;
  with_storage(dt, [&](auto s) {
    parallel::reduce_rows(kernels_of<decltype(s)>(table), op, shape, xs, bs, os, ss, nt);
  });
}

// Gradient of softmax (log=False) or log_softmax (log=True) given the upstream gradient g
// and the forward output y; or (hardmax) a one-hot of each row's first maximum.
void row_op(const char* name, parallel::RowOp op, py::array x, std::optional<py::array> aux,
            py::array out, int isa, int threads) {
  const DType dt = dtype_of(x, name, "x");
  if (x.ndim() < 1) throw py::value_error(std::string(name) + "(): x must have at least one axis");
  require_dtype(out, dt, name, "out");
  require_writeable(out, name, "out");
  require_shape(out, shape_of(x), name, "out");
  parallel::StridedArray as;
  if (aux) {
    require_dtype(*aux, dt, name, "y");
    require_shape(*aux, shape_of(x), name, "y");
    as = strided(*aux, true);
  }
  const IsaTable& table = table_for(isa);
  const parallel::RowShape shape = row_shape(x);
  const parallel::StridedArray xs = strided(x, true), os = strided(out, true, true);
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  with_storage(dt, [&](auto s) {
    parallel::row_map(kernels_of<decltype(s)>(table), op, shape, xs, as, os, nt);
  });
}

}  // namespace

void register_reductions(py::module_& m) {
  m.def("softmax", &softmax, py::arg("x"), py::arg("out"), py::arg("log"), py::arg("isa"),
        py::arg("threads"), py::arg("mask") = py::none(),
        "softmax (log=False) or log_softmax (log=True) along the last axis of x into out, "
        "over the entries where mask (same shape and dtype as x) is non-zero.");
  m.def("logsumexp",
        [](py::array x, std::optional<py::array> b, py::array out, std::optional<py::array> sign,
           int isa, int threads) { reduce(false, x, b, out, sign, isa, threads); },
        py::arg("x"), py::arg("b"), py::arg("out"), py::arg("sign"), py::arg("isa"),
        py::arg("threads"),
        "log|sum(b*exp(x))| along the last axis of x into out (and its sign into sign).");
  m.def("entropy",
        [](py::array x, std::optional<py::array> mask, py::array out, int isa, int threads) {
          reduce(true, x, mask, out, std::nullopt, isa, threads);
        },
        py::arg("x"), py::arg("mask"), py::arg("out"), py::arg("isa"), py::arg("threads"),
        "Entropy (nats) of softmax along the last axis of x, over entries where mask != 0.");
  m.def("softmax_backward",
        [](py::array g, py::array y, py::array out, bool log, int isa, int threads) {
          row_op(log ? "log_softmax_backward" : "softmax_backward",
                 log ? parallel::RowOp::log_softmax_backward : parallel::RowOp::softmax_backward,
                 g, y, out, isa, threads);
        },
        py::arg("grad"), py::arg("y"), py::arg("out"), py::arg("log"), py::arg("isa"),
        py::arg("threads"), "Vector-Jacobian product of (log_)softmax along the last axis.");
  m.def("hardmax",
        [](py::array x, py::array out, int isa, int threads) {
          row_op("hardmax", parallel::RowOp::hardmax, x, std::nullopt, out, isa, threads);
        },
        py::arg("x"), py::arg("out"), py::arg("isa"), py::arg("threads"),
        "One-hot of the first maximum along the last axis.");
}

}  // namespace logitkit::bindings
