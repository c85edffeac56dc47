#pragma once

#include <iosfwd>
#include <memory>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// Exit codes (docs/ferryctl.md; scripts test for them, keep their meaning):
// 0 done; 1 Ferry refused or failed the call (the IoT Hub reason is printed),
// or some lines of an import failed; 2 usage error (bad flags or arguments,
// an unreadable file); 3 Ferry unreachable, UNAVAILABLE, past --timeout, or
// not ready (`health`); 4 not found (DeviceNotFound, PolicyNotFound,
// RouteNotFound, ... : gRPC NOT_FOUND).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;
inline constexpr int kExitNotFound = 4;

// ferryctl's command tree, for Run and for tests that walk it. Parsing runs
// the chosen command: it prints to `out` and `err` and stores its exit code
// in `code`. Usage errors throw CLI::ParseError (a command's own checks
// included). `options`, `out`, `err` and `code` must outlive the app.
[[nodiscard]] std::unique_ptr<CLI::App> MakeApp(Options& options, std::ostream& out,
                                                std::ostream& err, int& code);

// ferryctl's command line; writes results to `out`, errors to `err`.
int Run(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace ferry::ctl
