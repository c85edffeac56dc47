#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `devices create|get|list|update|delete|regenerate-key|connection-string|
// export|import`: the device identity registry. A command's exit code goes to
// `code`.
void AddDeviceCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                       int& code);

}  // namespace ferry::ctl
