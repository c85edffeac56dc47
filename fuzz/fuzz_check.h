#pragma once

#include <cstdio>
#include <cstdlib>

// A property the fuzzed code must keep: prints what broke and aborts, which
// libFuzzer reports as a crash with the input that caused it.
#define FERRY_FUZZ_CHECK(cond)                                                         \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)
