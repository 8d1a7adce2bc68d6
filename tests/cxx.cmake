# C++ programs using cgc (when a C++ compiler is there; scripts/deps.sh
# installs g++): exceptions through cgc_protect and out of cleanups.
include(CheckLanguage)
check_language(CXX)
if(CMAKE_CXX_COMPILER)
  enable_language(CXX)
  add_executable(cxx_exceptions cxx_exceptions.cpp cxx_frames.c)
  set_source_files_properties(cxx_frames.c PROPERTIES COMPILE_OPTIONS "-fno-exceptions")
  target_include_directories(cxx_exceptions PRIVATE ${CGC_TEST_DIR})
  target_compile_options(cxx_exceptions PRIVATE -Wall -Wextra $<$<BOOL:${CGC_WERROR}>:-Werror>)
  target_link_libraries(cxx_exceptions PRIVATE cgc)
  add_test(NAME cxx_exceptions_protect COMMAND cxx_exceptions protect)
  set_tests_properties(cxx_exceptions_protect PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "cxx_exceptions protect: ok")
  cgc_abort_test(cxx_exceptions_protect_then_unrecovered PROGRAM cxx_exceptions CASE protect_then_unrecovered
    REGEX "panic: nobody recovers this")
  cgc_abort_test(cxx_exceptions_cleanup_throw PROGRAM cxx_exceptions CASE cleanup_throw
    REGEX "^cgc: cgc_free: an exception or a thread exit \\(pthread_exit, cancellation\\) left the cleanup 0x[0-9a-f]+ \\(on 0x0\\), which must return")
  cgc_abort_test(cxx_exceptions_panic_swallow PROGRAM cxx_exceptions CASE panic_swallow
    REGEX "^cgc: cgc_panic: a panic was stopped by a foreign handler \\(C\\+\\+ catch \\(\\.\\.\\.\\) must rethrow\\)$")
else()
  message(STATUS "no C++ compiler: the C++ tests are not built")
endif()
