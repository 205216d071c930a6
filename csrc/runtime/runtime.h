// CPU feature detection, the kernel tables this build carries, and the thread default.
#pragma once
#include <string>
#include <vector>

#include "isa_list.h"
#include "kernels/table.h"

namespace logitkit::runtime {

// Every target of csrc/isa/isas.cmake, in its order: isa_names()'s indices.
#define LOGITKIT_ISA_ENUMERATOR(name, requirement) name,
enum class Isa : int { LOGITKIT_ISAS(LOGITKIT_ISA_ENUMERATOR) count };
#undef LOGITKIT_ISA_ENUMERATOR

const char* isa_name(Isa isa);
std::vector<Isa> all_isas();
bool is_compiled(Isa isa);
bool cpu_supports(Isa isa);
Isa best_isa();  // the fastest ISA that is both compiled in and supported by this CPU
// The table for `isa`, or nullptr when it is not compiled in or the CPU lacks it.
const IsaTable* usable_table(Isa isa);

bool openmp_enabled();
int hardware_threads();
// LOGITKIT_NUM_THREADS when set to a positive integer, else OpenMP's default.
int default_threads();
int resolve_threads(int requested);  // requested <= 0 means the default

}  // namespace logitkit::runtime
