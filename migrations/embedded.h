#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ferry::migrations {

// (file name, text) of every migrations/*.sql, in file-name order.
[[nodiscard]] const std::vector<std::pair<std::string, std::string>>& EmbeddedFiles();

}  // namespace ferry::migrations
