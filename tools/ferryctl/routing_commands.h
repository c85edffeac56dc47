#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `routes create|update|get|list|delete|test|fallback|settings` and
// `endpoints create|list|delete`: message routing. A command's exit code goes
// to `code`.
void AddRoutingCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                        int& code);

}  // namespace ferry::ctl
