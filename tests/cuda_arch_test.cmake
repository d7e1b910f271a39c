cmake_minimum_required(VERSION 3.20)
# cmake -P tests/cuda_arch_test.cmake: the CUDA architecture rule of
# cmake/mplb_cuda_arch.cmake on nvcc version banners (no nvcc needed).
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/mplb_cuda_arch.cmake)
set(fails 0)
foreach(case
    "Cuda compilation tools, release 13.0, V13.0.88|90;100"
    "Cuda compilation tools, release 12.8, V12.8.61|90;100"
    "Cuda compilation tools, release 12.6, V12.6.77|90"
    "Cuda compilation tools, release 11.8, V11.8.89|90"
    "Cuda compilation tools, release 11.7, V11.7.99|"
    "no banner at all|")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 banner)
  list(LENGTH parts np)
  set(want "")
  if(np GREATER 1)
    list(SUBLIST parts 1 -1 want)
  endif()
  mplb_nvcc_version("${banner}" v)
  mplb_cuda_arch_for("${v}" got msg)
  if(NOT "${got}" STREQUAL "${want}")
    message(SEND_ERROR "FAIL '${banner}': got '${got}', want '${want}'")
    math(EXPR fails "${fails} + 1")
  elseif(NOT "${got}" STREQUAL "90;100" AND msg STREQUAL "")
    message(SEND_ERROR "FAIL '${banner}': no message for '${got}'")
    math(EXPR fails "${fails} + 1")
  else()
    message(STATUS "ok   '${banner}' -> '${got}'")
  endif()
endforeach()
if(fails)
  message(FATAL_ERROR "${fails} failed")
endif()
