#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `policies create|get|list|update|delete|regenerate-key` (shared access
// policies) and `token` (a SAS token signed here). A command's exit code goes
// to `code`.
void AddPolicyCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                       int& code);

}  // namespace ferry::ctl
