#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

#include "core/auth/credentials.h"

namespace ferry::audit {

// An operation an operator must be able to account for afterwards (policy
// changes, device deletions, queue purges, checkpoint resets, dead-letter
// re-drives): who did it, what, to what. Written in the same transaction as
// the operation itself, so the log holds exactly what happened.
struct Entry {
  std::string actor;       // the token's policy name or device id
  std::string actor_kind;  // "policy", "device" or "anonymous"
  std::string action;      // e.g. "policy.update", "c2d.purge"
  std::string target;      // what it acted on: a policy, device, partition
  nlohmann::json details = nlohmann::json::object();
};

[[nodiscard]] Entry For(const auth::Caller& caller, std::string action, std::string target,
                        nlohmann::json details = nlohmann::json::object());

// Inserts `entry` into audit_log within `tx`, with `extra` merged into its
// details (what only the store knows, e.g. how many rows a purge took).
void Write(pqxx::transaction_base& tx, const Entry& entry,
           const nlohmann::json& extra = nlohmann::json::object());

}  // namespace ferry::audit
