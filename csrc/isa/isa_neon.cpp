// The neon kernel table: the generic kernels compiled for this instruction set, in a
// namespace of their own so that no neon code can be shared with another ISA's.
#define LOGITKIT_ISA_NS isa_neon
#include "kernels/make_table.h"
#include "runtime/tables.h"
#include "simd/neon.h"

namespace logitkit {

const IsaTable* isa_table_neon() {
  static const IsaTable table =
      isa_neon::make_table<simd::neon::VF32, simd::neon::VF64>("neon");
  return &table;
}

}  // namespace logitkit
