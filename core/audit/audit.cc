#include "core/audit/audit.h"

namespace ferry::audit {

Entry For(const auth::Caller& caller, std::string action, std::string target,
          nlohmann::json details) {
  Entry e;
  e.actor = caller.principal;
  switch (caller.kind) {
    case auth::Caller::Kind::kPolicy:
      e.actor_kind = "policy";
      break;
    case auth::Caller::Kind::kDevice:
      e.actor_kind = "device";
      break;
    case auth::Caller::Kind::kAnonymous:
      e.actor_kind = "anonymous";
      break;
  }
  e.action = std::move(action);
  e.target = std::move(target);
  e.details = std::move(details);
  return e;
}

void Write(pqxx::transaction_base& tx, const Entry& entry, const nlohmann::json& extra) {
  nlohmann::json details = entry.details.is_object() ? entry.details : nlohmann::json::object();
  if (extra.is_object()) details.update(extra);
  tx.exec_params0(
      "INSERT INTO audit_log (actor, actor_kind, action, target, details) VALUES ($1, $2, $3, $4, "
      "$5::jsonb)",
      entry.actor, entry.actor_kind, entry.action, entry.target, details.dump());
}

}  // namespace ferry::audit
