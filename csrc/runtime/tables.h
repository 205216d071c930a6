// One accessor per compiled ISA; each is defined in its own isa/ translation unit and only
// called after the CPU has been checked for that ISA.
#pragma once
#include "kernels/table.h"

namespace logitkit {

const IsaTable* isa_table_scalar();
const IsaTable* isa_table_sse2();
const IsaTable* isa_table_avx2();
const IsaTable* isa_table_avx512();
const IsaTable* isa_table_neon();

}  // namespace logitkit
