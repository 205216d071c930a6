// The runtime: the instruction sets, threads and the driver's settings.
#include "bindings/common.h"

#ifndef LOGITKIT_VERSION
#define LOGITKIT_VERSION "0.0.0"
#endif

namespace logitkit::bindings {

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
  m.attr("long_row_bytes") = parallel::kLongRowBytes;
  m.attr("chunk_bytes") = parallel::kChunkBytes;
}

}  // namespace logitkit::bindings
