# Sourced by check_isas.sh and run_sanitized.sh. `host_isas PYTHON` prints the kernel tables
# this CPU runs, as a CMake list, as named by the logitkit that PYTHON imports; nothing when
# none is importable, and the callers then build every table of the architecture.
host_isas() {
  (cd / && "$1" -c 'import logitkit; print(";".join(logitkit.available_isas()))' 2> /dev/null) ||
    true
}
