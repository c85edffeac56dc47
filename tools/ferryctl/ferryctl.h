#pragma once

#include <iosfwd>

namespace ferry::ctl {

// Exit codes: 0 done; 1 the server refused (reason printed); 2 usage error;
// 3 Ferry unreachable or unavailable.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

// ferryctl's command line; writes results to `out`, errors to `err`.
int Run(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace ferry::ctl
