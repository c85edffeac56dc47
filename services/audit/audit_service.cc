#include "services/audit/audit_service.h"

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"
#include "services/rpc/proto_time.h"

namespace ferry::audit {
namespace {

constexpr const char* kService = "ferry.v1.AuditLog";

}  // namespace

grpc::ServerUnaryReactor* AuditService::ListAuditRecords(grpc::CallbackServerContext* ctx,
                                                         const v1::ListAuditRecordsRequest* request,
                                                         v1::ListAuditRecordsResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListAuditRecords", request, response,
      [this](const rpc::Caller&, const v1::ListAuditRecordsRequest& req,
             v1::ListAuditRecordsResponse& resp) {
        if (req.page_size() < 0 || req.page_size() > 1000) {
          throw Error(Reason::kArgumentInvalid, "page_size must be 0 (default 100) to 1000");
        }
        if (req.after_id() < 0)
          throw Error(Reason::kArgumentInvalid, "after_id must not be negative");
        const std::int64_t limit = req.page_size() == 0 ? 100 : req.page_size();
        const std::optional<std::int64_t> since =
            req.has_since() ? std::optional<std::int64_t>(
                                  ToUnixMicros(rpc::FromProtoTime(req.since(), "since")))
                            : std::nullopt;
        static const std::string sql = fmt::format(
            "SELECT id, {}, actor, actor_kind, action, target, details::text FROM audit_log"
            " WHERE id > $1 AND ($2 = '' OR action = $2) AND ($3 = '' OR target = $3) AND ($4 = '' "
            "OR actor = $4)"
            " AND ($5::bigint IS NULL OR at >= {}) ORDER BY id LIMIT $6",
            pg::MicrosOf("at"), pg::TimestampFromMicros("$5"));
        pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
          resp.clear_records();
          const pqxx::result rows = tx.exec_params(sql, req.after_id(), req.action(), req.target(),
                                                   req.actor(), since, limit + 1);
          for (pqxx::result::size_type i = 0;
               i < rows.size() && static_cast<std::int64_t>(i) < limit; ++i) {
            const pqxx::row& r = rows[i];
            v1::AuditRecord* out = resp.add_records();
            out->set_id(r[0].as<std::int64_t>());
            *out->mutable_time() = rpc::ToProtoTime(FromUnixMicros(r[1].as<std::int64_t>()));
            out->set_actor(r[2].as<std::string>());
            out->set_actor_kind(r[3].as<std::string>());
            out->set_action(r[4].as<std::string>());
            out->set_target(r[5].as<std::string>());
            out->set_details_json(r[6].as<std::string>());
          }
          resp.set_next_after_id(
              static_cast<std::int64_t>(rows.size()) > limit ? resp.records().rbegin()->id() : 0);
        });
      });
}

}  // namespace ferry::audit
