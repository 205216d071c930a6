// One accessor per compiled ISA; each is defined in its own generated isa_<name>.cpp (see
// csrc/isa/isas.cmake) and only called after the CPU has been checked for that ISA.
#pragma once
#include "isa_list.h"
#include "kernels/table.h"

namespace logitkit {

#define LOGITKIT_ISA_TABLE_ACCESSOR(name, requirement) const IsaTable* isa_table_##name();
LOGITKIT_COMPILED_ISAS(LOGITKIT_ISA_TABLE_ACCESSOR)
#undef LOGITKIT_ISA_TABLE_ACCESSOR

}  // namespace logitkit
