// The fused cross-entropy over rows prepared by the Python layer (class axis last; per-row
// targets, masks and gradient scales already resolved).
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

template <class T>
CrossEntropyParams<T> params_of(const std::optional<py::array>& weight, double weight_sum,
                                double smoothing, double z_loss, double softcap,
                                bool want_argmax) {
  CrossEntropyParams<T> p;
  p.want_argmax = want_argmax;
  p.class_weight = weight ? static_cast<const T*>(weight->data()) : nullptr;
  p.weight_sum = weight_sum;
  p.smoothing = smoothing;
  p.z_loss = z_loss;
  p.softcap = static_cast<T>(softcap);
  return p;
}

template <class S>
void run(const KernelSet<S>& k, const py::array& z, const std::optional<py::array>& soft,
         const std::optional<py::array>& grad, const parallel::CrossEntropyRows& rows,
         const CrossEntropyParams<compute_t<S>>& p, int threads) {
  const parallel::RowShape shape = row_shape(z);
  const parallel::StridedArray zs = strided(z, true);
  const parallel::StridedArray ss = soft ? strided(*soft, true) : parallel::StridedArray{};
  const parallel::StridedArray gs = grad ? strided(*grad, true, true) : parallel::StridedArray{};
  ReleaseGil release;
  parallel::cross_entropy(k, shape, zs, ss, gs, rows, p, threads);
}

void cross_entropy(py::array z, std::optional<py::array_t<long long>> target,
                   std::optional<py::array> soft, py::array_t<unsigned char> counted,
                   std::optional<py::array_t<double>> grad_scale, std::optional<py::array> weight,
                   double weight_sum, double smoothing, double z_loss, double softcap,
                   std::optional<py::array> grad, py::array_t<double> loss,
                   py::array_t<double> lse, py::array_t<long long> argmax, bool want_argmax,
                   int isa, int threads) {
  const char* name = "cross_entropy";
  // Logits and gradient of a 16-bit type; soft targets and class weights in its compute type.
  const DType dt = dtype_of(z, name, "logits");
  auto same_dtype = [&](const py::array& a, const char* arg) {
    require_dtype(a, compute_dtype(dt), name, arg);
  };
  if (z.ndim() < 1) throw py::value_error("cross_entropy(): logits must have a class axis");
  std::vector<py::ssize_t> rows_shape = shape_of(z);
  rows_shape.pop_back();
  py::ssize_t n_rows = 1;
  for (auto s : rows_shape) n_rows *= s;
  auto require_rows = [&](const py::array& a, const char* arg) {
    if (a.ndim() != 1 || a.shape(0) != n_rows || !(a.flags() & py::array::c_style)) {
      throw py::value_error(std::string("cross_entropy(): ") + arg +
                            " must be contiguous with one entry per row");
    }
  };
  require_rows(counted, "counted");
  require_rows(loss, "loss");
  require_rows(lse, "lse");
  require_rows(argmax, "argmax");
  if (target) require_rows(*target, "target");
  if (grad_scale) require_rows(*grad_scale, "grad_scale");
  if (!target && !soft) throw py::value_error("cross_entropy(): a target is required");
  if (soft) {
    same_dtype(*soft, "target");
    require_shape(*soft, shape_of(z), name, "target");
  }
  if (grad) {
    require_dtype(*grad, dt, name, "grad_out");
    require_writeable(*grad, name, "grad_out");
    require_shape(*grad, shape_of(z), name, "grad_out");
    if (!grad_scale) throw py::value_error("cross_entropy(): grad_scale is required with grad");
  }
  if (weight) {
    same_dtype(*weight, "weight");
    if (weight->ndim() != 1 || weight->shape(0) != z.shape(z.ndim() - 1) ||
        !(weight->flags() & py::array::c_style)) {
      throw py::value_error("cross_entropy(): weight must be contiguous with one entry per class");
    }
  }
  parallel::CrossEntropyRows rows;
  rows.target = target ? target->data() : nullptr;
  rows.counted = counted.data();
  rows.grad_scale = grad_scale ? grad_scale->data() : nullptr;
  rows.loss = loss.mutable_data();
  rows.lse = lse.mutable_data();
  rows.argmax = argmax.mutable_data();
  const IsaTable& table = table_for(isa);
  const int nt = runtime::resolve_threads(threads);
  with_storage(dt, [&](auto s) {
    using S = decltype(s);
    run(kernels_of<S>(table), z, soft, grad, rows,
        params_of<compute_t<S>>(weight, weight_sum, smoothing, z_loss, softcap, want_argmax), nt);
  });
}

template <class S>
double bce_typed(const KernelSet<S>& k, const py::array& x, const py::array& y,
                 const std::optional<py::array>& w, const std::optional<py::array>& pw,
                 double smoothing, const std::optional<py::array>& loss,
                 const std::optional<py::array>& grad, const std::optional<py::array>& grad_scale,
                 double scale, int threads) {
  auto in = [](const std::optional<py::array>& a) {
    return a ? static_cast<const S*>(a->data()) : nullptr;
  };
  auto out = [](const std::optional<py::array>& a) {
    return a ? static_cast<S*>(const_cast<void*>(a->data())) : nullptr;
  };
  const S* xp = static_cast<const S*>(x.data());
  const S* yp = static_cast<const S*>(y.data());
  const auto count = static_cast<std::ptrdiff_t>(x.size());
  ReleaseGil release;
  return parallel::binary_cross_entropy(k, count, xp, yp, in(w), in(pw), smoothing, out(loss),
                                        out(grad), in(grad_scale), scale, threads);
}

// All arrays: contiguous, of the logits' dtype and size (the Python layer broadcasts).
double binary_cross_entropy(py::array x, py::array y, std::optional<py::array> w,
                            std::optional<py::array> pw, double smoothing,
                            std::optional<py::array> loss, std::optional<py::array> grad,
                            std::optional<py::array> grad_scale, double scale, int isa,
                            int threads) {
  const char* name = "binary_cross_entropy_with_logits";
  const DType dt = dtype_of(x, name, "logits");
  auto check = [&](const std::optional<py::array>& a, const char* arg, bool writeable) {
    if (!a) return;
    require_same_dtype(x, *a, name, arg);
    if (a->size() != x.size() || !(a->flags() & py::array::c_style)) {
      throw py::value_error(std::string(name) + "(): " + arg +
                            " must be contiguous with the logits' size");
    }
    if (writeable) require_writeable(*a, name, arg);
  };
  check(x, "logits", false);
  check(y, "target", false);
  check(w, "weight", false);
  check(pw, "pos_weight", false);
  check(loss, "loss", true);
  check(grad, "grad", true);
  check(grad_scale, "grad_output", false);
  const IsaTable& table = table_for(isa);
  const int nt = runtime::resolve_threads(threads);
  return with_storage(dt, [&](auto s) {
    return bce_typed(kernels_of<decltype(s)>(table), x, y, w, pw, smoothing, loss, grad,
                     grad_scale, scale, nt);
  });
}

// p and q: C-contiguous (rows, n) of one dtype; value: float64 (rows,); grads like p.
void divergence(py::array zp, py::array zq, double beta, py::array_t<double> value,
                std::optional<py::array> grad_p, std::optional<py::array> grad_q,
                std::optional<py::array_t<double>> scale, int isa, int threads) {
  const char* name = "divergence";
  const DType dt = dtype_of(zp, name, "p_logits");
  require_same_dtype(zp, zq, name, "q_logits");
  if (zp.ndim() != 2 || !(zp.flags() & py::array::c_style) || !(zq.flags() & py::array::c_style)) {
    throw py::value_error("divergence(): logits must be C-contiguous (rows, classes)");
  }
  require_shape(zq, shape_of(zp), name, "q_logits");
  const py::ssize_t rows = zp.shape(0), n = zp.shape(1);
  if (value.ndim() != 1 || value.shape(0) != rows) {
    throw py::value_error("divergence(): value must have one entry per row");
  }
  for (const auto* g : {&grad_p, &grad_q}) {
    if (!*g) continue;
    require_same_dtype(zp, **g, name, "grad");
    require_writeable(**g, name, "grad");
    require_shape(**g, shape_of(zp), name, "grad");
    if (!((*g)->flags() & py::array::c_style)) {
      throw py::value_error("divergence(): grad must be C-contiguous");
    }
    if (!scale || scale->size() != rows) {
      throw py::value_error("divergence(): scale must have one entry per row with grads");
    }
  }
  const IsaTable& table = table_for(isa);
  const int nt = runtime::resolve_threads(threads);
  double* v = value.mutable_data();
  const double* sc = scale ? scale->data() : nullptr;
  with_storage(dt, [&](auto s) {
    using S = decltype(s);
    auto out = [](const std::optional<py::array>& a) {
      return a ? static_cast<S*>(const_cast<void*>(a->data())) : nullptr;
    };
    const S* p = static_cast<const S*>(zp.data());
    const S* q = static_cast<const S*>(zq.data());
    S* gp = out(grad_p);
    S* gq = out(grad_q);
    ReleaseGil release;
    parallel::divergence(kernels_of<S>(table), rows, n, p, q, beta, v, gp, gq, sc, nt);
  });
}

}  // namespace

void register_losses(py::module_& m) {
  m.def("divergence", &divergence, py::arg("p_logits"), py::arg("q_logits"), py::arg("beta"),
        py::arg("value"), py::arg("grad_p"), py::arg("grad_q"), py::arg("scale"), py::arg("isa"),
        py::arg("threads"),
        "KL(P||Q) (beta < 0) or generalized JSD between softmax rows, with optional gradients. "
        "Logits and gradients in float16, bfloat16, float32 or float64.");
  m.def("binary_cross_entropy", &binary_cross_entropy, py::arg("logits"), py::arg("target"),
        py::arg("weight"), py::arg("pos_weight"), py::arg("smoothing"), py::arg("loss"),
        py::arg("grad"), py::arg("grad_scale"), py::arg("scale"), py::arg("isa"),
        py::arg("threads"),
        "Elementwise binary cross-entropy with logits; returns the sum of the losses.");
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("target"), py::arg("soft"),
        py::arg("counted"), py::arg("grad_scale"), py::arg("weight"), py::arg("weight_sum"),
        py::arg("smoothing"), py::arg("z_loss"), py::arg("softcap"), py::arg("grad"),
        py::arg("loss"), py::arg("lse"), py::arg("argmax"), py::arg("want_argmax"),
        py::arg("isa"), py::arg("threads"),
        "Fused cross-entropy rows along the last axis: per-row loss, lse, argmax, and the "
        "gradient scaled per row into grad. Logits and gradient in float16, bfloat16, float32 "
        "or float64; soft targets and class weights in the logits' compute type.");
}

}  // namespace logitkit::bindings
