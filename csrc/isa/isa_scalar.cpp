// The scalar kernel table: the generic kernels compiled for this instruction set, in a
// namespace of their own so that no scalar code can be shared with another ISA's.
#define LOGITKIT_ISA_NS isa_scalar
#include "kernels/make_table.h"
#include "runtime/tables.h"
#include "simd/scalar.h"

namespace logitkit {

const IsaTable* isa_table_scalar() {
  static const IsaTable table =
      isa_scalar::make_table<simd::scalar::VF32, simd::scalar::VF64>("scalar");
  return &table;
}

}  // namespace logitkit
