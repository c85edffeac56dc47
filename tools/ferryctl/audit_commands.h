#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `audit list`: the operator audit log. A command's exit code goes to
// `code`.
void AddAuditCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                      int& code);

}  // namespace ferry::ctl
