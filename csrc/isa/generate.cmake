# Generates the per-ISA code from the list in isas.cmake, into LOGITKIT_ISA_GENERATED_DIR:
#   isa_<name>.cpp  one translation unit per target of this architecture (from isa.cpp.in),
#                   with the target's FLAGS (MSVC_FLAGS under MSVC) as its compile options
#   isa_list.h      the X-macro lists LOGITKIT_ISAS and LOGITKIT_COMPILED_ISAS (from
#                   isa_list.h.in), which runtime/, the tables and the harness expand
# and sets LOGITKIT_ISA_SOURCES to those translation units. Included from the top-level
# CMakeLists.txt, so that the source properties hold for its targets.

set(LOGITKIT_ISA_GENERATED_DIR "${CMAKE_BINARY_DIR}/generated")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(LOGITKIT_ARCH x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(LOGITKIT_ARCH aarch64)
else()
  set(LOGITKIT_ARCH "")  # the portable scalar table only
endif()

set(LOGITKIT_ISAS "")

# A build that only this machine runs (the sanitizer builds) can leave out the tables its CPU
# cannot execute, which are most of its compile time. Release builds compile them all.
set(LOGITKIT_ONLY_ISAS "" CACHE STRING
  "Compile only these kernel tables (a ;-list of names from csrc/isa/isas.cmake; scalar is always compiled). Empty: every table of the architecture")

function(logitkit_isa name)
  cmake_parse_arguments(PARSE_ARGV 1 ISA "" "ARCH;HEADER;NAMESPACE;REQUIRES" "FLAGS;MSVC_FLAGS")
  set(where "csrc/isa/isas.cmake, logitkit_isa(${name})")
  if(ISA_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${where}: unexpected arguments ${ISA_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "${where}: the name must be a lower-case C++ identifier")
  endif()
  if(name IN_LIST LOGITKIT_ISAS)
    message(FATAL_ERROR "${where}: listed twice")
  endif()
  foreach(field ARCH HEADER NAMESPACE REQUIRES)
    if(NOT DEFINED ISA_${field} OR ISA_${field} STREQUAL "")
      message(FATAL_ERROR "${where}: ${field} is missing")
    endif()
  endforeach()
  if(NOT ISA_ARCH MATCHES "^(any|x86_64|aarch64)$")
    message(FATAL_ERROR "${where}: ARCH must be any, x86_64 or aarch64, not ${ISA_ARCH}")
  endif()
  if(ISA_REQUIRES MATCHES "[\"\\\\]")
    message(FATAL_ERROR "${where}: REQUIRES becomes a C++ string: no quotes or backslashes")
  endif()
  list(APPEND LOGITKIT_ISAS ${name})
  set(LOGITKIT_ISAS "${LOGITKIT_ISAS}" PARENT_SCOPE)
  foreach(field ARCH HEADER NAMESPACE REQUIRES FLAGS MSVC_FLAGS)
    set(LOGITKIT_ISA_${name}_${field} "${ISA_${field}}" PARENT_SCOPE)
  endforeach()
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/isas.cmake")

list(GET LOGITKIT_ISAS 0 _logitkit_first)
if(NOT _logitkit_first STREQUAL "scalar" OR NOT LOGITKIT_ISA_scalar_ARCH STREQUAL "any")
  # the runtime falls back to it, and the harness compares every other table with it
  message(FATAL_ERROR "csrc/isa/isas.cmake: the first target must be scalar, for any ARCH")
endif()

set(LOGITKIT_ISA_SOURCES "")
set(LOGITKIT_ISAS_X "")
set(LOGITKIT_COMPILED_ISAS_X "")
foreach(ISA_NAME IN LISTS LOGITKIT_ISAS)
  set(entry " \\\n  X(${ISA_NAME}, \"${LOGITKIT_ISA_${ISA_NAME}_REQUIRES}\")")
  string(APPEND LOGITKIT_ISAS_X "${entry}")
  set(arch "${LOGITKIT_ISA_${ISA_NAME}_ARCH}")
  if(NOT (arch STREQUAL "any" OR arch STREQUAL LOGITKIT_ARCH))
    continue()
  endif()
  if(LOGITKIT_ONLY_ISAS AND NOT ISA_NAME STREQUAL "scalar" AND NOT ISA_NAME IN_LIST LOGITKIT_ONLY_ISAS)
    continue()
  endif()
  set(flags "${LOGITKIT_ISA_${ISA_NAME}_FLAGS}")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "MSVC")
    if(flags AND NOT LOGITKIT_ISA_${ISA_NAME}_MSVC_FLAGS)
      message(STATUS "logitkit: ${ISA_NAME} has no MSVC_FLAGS in csrc/isa/isas.cmake: not compiled")
      continue()
    endif()
    set(flags "${LOGITKIT_ISA_${ISA_NAME}_MSVC_FLAGS}")
  endif()
  string(APPEND LOGITKIT_COMPILED_ISAS_X "${entry}")
  set(ISA_HEADER "${LOGITKIT_ISA_${ISA_NAME}_HEADER}")
  set(ISA_NAMESPACE "${LOGITKIT_ISA_${ISA_NAME}_NAMESPACE}")
  set(source "${LOGITKIT_ISA_GENERATED_DIR}/isa_${ISA_NAME}.cpp")
  configure_file("${CMAKE_CURRENT_LIST_DIR}/isa.cpp.in" "${source}" @ONLY)
  set_source_files_properties("${source}" PROPERTIES
    COMPILE_OPTIONS "${flags}")
  list(APPEND LOGITKIT_ISA_SOURCES "${source}")
endforeach()
configure_file("${CMAKE_CURRENT_LIST_DIR}/isa_list.h.in" "${LOGITKIT_ISA_GENERATED_DIR}/isa_list.h"
  @ONLY)

foreach(only IN LISTS LOGITKIT_ONLY_ISAS)
  if(NOT only IN_LIST LOGITKIT_ISAS)
    message(FATAL_ERROR "LOGITKIT_ONLY_ISAS: no target '${only}' in csrc/isa/isas.cmake")
  endif()
endforeach()

list(TRANSFORM LOGITKIT_ISA_SOURCES REPLACE ".*/isa_(.*)\\.cpp$" "\\1"
  OUTPUT_VARIABLE _logitkit_compiled)
string(REPLACE ";" ", " _logitkit_compiled "${_logitkit_compiled}")
message(STATUS "logitkit kernel tables (${CMAKE_SYSTEM_PROCESSOR}): ${_logitkit_compiled}")
