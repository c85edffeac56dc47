#pragma once

#include <ostream>

#include <CLI/CLI.hpp>

#include "tools/ferryctl/session.h"

namespace ferry::ctl {

// `events read|tail`, `checkpoints list|reset`, `deadletters list|redrive`
// and `enrichments set|list|delete`. A command's exit code goes to `code`.
void AddD2cCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                    int& code);

}  // namespace ferry::ctl
