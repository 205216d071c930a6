#include "bindings/common.h"
#include "runtime/buffer_pool.h"

#include <memory>

#ifndef LOGITKIT_VERSION
#define LOGITKIT_VERSION "0.0.0"
#endif

namespace logitkit::bindings {

namespace {

const float* float_buffer(const py::array& a, const char* func, const char* arg) {
  if (!py::isinstance<py::array_t<float>>(a) || a.ndim() != 1 ||
      (a.shape(0) > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(float)))) {
    throw py::value_error(std::string(func) + "(): " + arg +
                          " must be a contiguous 1-d float32 array");
  }
  return static_cast<const float*>(a.data());
}

double bandwidth_read(const py::array& x, int isa, int threads) {
  const float* xp = float_buffer(x, "bandwidth_read", "x");
  const auto& k = table_for(isa).bandwidth;
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  return parallel::bandwidth_read(k, xp, x.shape(0), nt);
}

void bandwidth_copy(const py::array& x, py::array& out, bool nontemporal, int isa, int threads) {
  const float* xp = float_buffer(x, "bandwidth_copy", "x");
  float_buffer(out, "bandwidth_copy", "out");
  require_writeable(out, "bandwidth_copy", "out");
  if (out.shape(0) != x.shape(0)) {
    throw py::value_error("bandwidth_copy(): x and out must have the same length");
  }
  float* yp = static_cast<float*>(out.mutable_data());
  const auto& k = table_for(isa).bandwidth;
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  parallel::bandwidth_copy(k, xp, yp, x.shape(0), nontemporal, nt);
}

// src and dst: contiguous 1-d arrays of one length, one of them float32 and the other of
// 16-bit items (viewed as uint16 by the Python layer).
void convert16(const py::array& src, py::array& dst, bool bfloat16, bool to_float, int isa,
               int threads) {
  const char* name = to_float ? "widen_to_float32" : "narrow_from_float32";
  const py::array& wide = to_float ? dst : src;
  const py::array& narrow = to_float ? src : dst;
  float_buffer(wide, name, to_float ? "dst" : "src");
  if (!py::isinstance<py::array_t<std::uint16_t>>(narrow) || narrow.ndim() != 1 ||
      (narrow.shape(0) > 1 && narrow.strides(0) != 2) || narrow.shape(0) != wide.shape(0)) {
    throw py::value_error(std::string(name) +
                          "(): the 16-bit side must be a contiguous 1-d uint16 array of the "
                          "float32 side's length");
  }
  require_writeable(dst, name, "dst");
  const auto kind = storage_kind(bfloat16);
  const auto& k = table_for(isa).convert;
  const int nt = runtime::resolve_threads(threads);
  const std::ptrdiff_t count = src.shape(0);
  if (to_float) {
    const auto* s = static_cast<const std::uint16_t*>(src.data());
    auto* d = static_cast<float*>(dst.mutable_data());
    ReleaseGil release;
    parallel::widen_to_float(k, kind, s, d, count, nt);
  } else {
    const auto* s = static_cast<const float*>(src.data());
    auto* d = static_cast<std::uint16_t*>(dst.mutable_data());
    ReleaseGil release;
    parallel::narrow_from_float(k, kind, s, d, count, nt);
  }
}

// A 1-d uint8 array over a cached block of at least `bytes`; the block goes back to the cache
// when the last array over it dies.
py::array pooled_bytes(std::size_t bytes) {
  auto block = std::make_unique<runtime::BufferBlock>(runtime::take_buffer(bytes));
  void* data = block->data;
  struct Return {  // the block goes back if the capsule cannot be made
    std::unique_ptr<runtime::BufferBlock>& b;
    ~Return() {
      if (b) runtime::give_back_buffer(*b);
    }
  } on_failure{block};
  py::capsule owner(block.get(), [](void* p) {
    std::unique_ptr<runtime::BufferBlock> b(static_cast<runtime::BufferBlock*>(p));
    runtime::give_back_buffer(*b);
  });
  block.release();  // the capsule owns it now
  return py::array(py::dtype("uint8"), {static_cast<py::ssize_t>(bytes)}, {py::ssize_t(1)}, data,
                   owner);
}

}  // namespace

void register_runtime(py::module_& m) {
  m.attr("__version__") = LOGITKIT_VERSION;
  m.def("isa_names", [] {
    py::list names;
    for (auto isa : runtime::all_isas()) names.append(runtime::isa_name(isa));
    return names;
  }, "Names of every instruction set logitkit knows, indexed by their numeric id.");
  m.def("compiled_isas", [] {
    py::list names;
    for (auto isa : runtime::all_isas())
      if (runtime::is_compiled(isa)) names.append(runtime::isa_name(isa));
    return names;
  });
  m.def("supported_isas", [] {
    py::list names;
    for (auto isa : runtime::all_isas())
      if (runtime::cpu_supports(isa)) names.append(runtime::isa_name(isa));
    return names;
  });
  m.def("best_isa", [] { return static_cast<int>(runtime::best_isa()); });
  m.def("openmp_enabled", &runtime::openmp_enabled);
  m.def("hardware_threads", &runtime::hardware_threads);
  m.def("default_threads", &runtime::default_threads);
  m.def("stream_min_bytes", &parallel::stream_min_bytes,
        "Outputs of at least this many bytes are written with non-temporal stores.");
  m.def("set_stream_min_bytes", &parallel::set_stream_min_bytes, py::arg("bytes"));
  m.def("bandwidth_read", &bandwidth_read, py::arg("x"), py::arg("isa"), py::arg("threads"),
        "The read yardstick: sum of a contiguous float32 buffer, as fast as it can be read.");
  m.def("bandwidth_copy", &bandwidth_copy, py::arg("x"), py::arg("out"), py::arg("nontemporal"),
        py::arg("isa"), py::arg("threads"),
        "The copy yardstick: out[:] = x for contiguous float32 buffers, with plain or "
        "non-temporal stores.");
  m.def("convert16", &convert16, py::arg("src"), py::arg("dst"), py::arg("bfloat16"),
        py::arg("to_float"), py::arg("isa"), py::arg("threads"),
        "float16/bfloat16 (as uint16) to float32 when to_float, else float32 to 16 bits; "
        "rounding to nearest even.");
  m.def("pooled_bytes", &pooled_bytes, py::arg("bytes"),
        "A uint8 array of `bytes` over a block from the result-buffer cache.");
  m.def("set_buffer_cache_limit", &runtime::set_buffer_cache_limit, py::arg("bytes"));
  m.def("buffer_cache_limit", &runtime::buffer_cache_limit);
  m.def("buffer_cache_bytes", &runtime::buffer_cache_bytes);
  m.attr("long_row_bytes") = parallel::kLongRowBytes;
  m.attr("chunk_bytes") = parallel::kChunkBytes;
}

}  // namespace logitkit::bindings
