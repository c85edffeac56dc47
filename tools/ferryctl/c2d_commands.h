#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `c2d send|purge|queue|get`, `feedback receive|complete|abandon|watch`
// (operators) and `device receive|complete|abandon|reject|send` (acting as a
// device, for trying things by hand). A command's exit code goes to `code`.
void AddC2dCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                    int& code);

}  // namespace ferry::ctl
