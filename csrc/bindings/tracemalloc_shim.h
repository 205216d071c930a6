/* Reports blocks to tracemalloc (see tracemalloc_shim.c); call with the GIL held. Both
   return what PyTraceMalloc_Track and PyTraceMalloc_Untrack return: -2 when tracemalloc is
   not tracing, -1 when the trace could not be stored, 0 otherwise. */
#ifndef LOGITKIT_BINDINGS_TRACEMALLOC_SHIM_H
#define LOGITKIT_BINDINGS_TRACEMALLOC_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int logitkit_trace_track(unsigned int domain, uintptr_t ptr, size_t size);
int logitkit_trace_untrack(unsigned int domain, uintptr_t ptr);

#ifdef __cplusplus
}
#endif

#endif
