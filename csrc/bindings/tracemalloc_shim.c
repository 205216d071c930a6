/* The tracemalloc C API with C linkage, for the C++ binding files. CPython 3.10 and 3.11
   declare PyTraceMalloc_Track and PyTraceMalloc_Untrack in tracemalloc.h outside an
   extern "C" block, so a C++ caller would link against C++-mangled names that the
   interpreter does not export. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "bindings/tracemalloc_shim.h"

int logitkit_trace_track(unsigned int domain, uintptr_t ptr, size_t size) {
  return PyTraceMalloc_Track(domain, ptr, size);
}

int logitkit_trace_untrack(unsigned int domain, uintptr_t ptr) {
  return PyTraceMalloc_Untrack(domain, ptr);
}
