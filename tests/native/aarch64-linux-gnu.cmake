# CMake toolchain for the aarch64 cross build of check_isas.sh: Debian's cross g++
# (g++-aarch64-linux-gnu), or $AARCH64_CXX, linked statically so that user-mode qemu runs the
# result without an aarch64 sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
if(DEFINED ENV{AARCH64_CXX})
  set(CMAKE_CXX_COMPILER "$ENV{AARCH64_CXX}")
else()
  set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
endif()
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
