#include "tools/ferryctl/audit_commands.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ferry/v1/audit.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {
namespace {

class AuditClient final : public Session {
 public:
  using Session::Session;

  int ListAudit(v1::ListAuditRecordsRequest req, long limit) {
    std::vector<v1::AuditRecord> all;
    while (limit <= 0 || static_cast<long>(all.size()) < limit) {
      v1::ListAuditRecordsResponse resp;
      const grpc::Status s = audit_->ListAuditRecords(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const auto& r : resp.records()) all.push_back(r);
      if (resp.next_after_id() == 0) break;
      req.set_after_id(resp.next_after_id());
    }
    if (limit > 0 && static_cast<long>(all.size()) > limit)
      all.resize(static_cast<std::size_t>(limit));
    if (options_.json) {
      for (const auto& r : all) out_ << Json(r) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    rows.reserve(all.size());
    for (const auto& r : all) {
      rows.push_back({std::to_string(r.id()), Time(r.time()), r.actor_kind() + ":" + r.actor(),
                      r.action(), r.target(), r.details_json().empty() ? "-" : r.details_json()});
    }
    Table(out_, {"ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS"}, rows);
    return kExitOk;
  }

 private:
  std::unique_ptr<v1::AuditLog::Stub> audit_ = v1::AuditLog::NewStub(channel_);
};

}  // namespace

void AddAuditCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                      int& code) {
  struct State {
    std::string action, target, actor, since;
    std::int64_t after_id = 0;
    long limit = 0;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return AuditClient(options, out, err); };
  CLI::App* audit = app.add_subcommand("audit", "The operator audit log (needs ServiceConnect)")
                        ->footer("Example: ferryctl audit list --action device.delete");
  audit->require_subcommand(1);
  CLI::App* list =
      audit->add_subcommand("list", "Audit records, oldest first")
          ->footer("Example: ferryctl audit list --since 2026-11-26T00:00:00Z --actor backend");
  list->add_option("--action", st->action,
                   "Only this action (e.g. policy.create, device.delete, c2d.purge)");
  list->add_option("--target", st->target, "Only this target (a policy name, device id, ...)");
  list->add_option("--actor", st->actor, "Only this actor (a policy name or device id)");
  list->add_option("--since", st->since, "Only records at or after this time (RFC 3339)");
  list->add_option("--after-id", st->after_id, "Start after this record id");
  list->add_option("--limit", st->limit, "At most this many (0: all)");
  list->callback([st, client, &code] {
    v1::ListAuditRecordsRequest req;
    req.set_after_id(st->after_id);
    req.set_page_size(st->limit > 0 && st->limit < 1000 ? static_cast<int>(st->limit) : 1000);
    req.set_action(st->action);
    req.set_target(st->target);
    req.set_actor(st->actor);
    if (!st->since.empty()) *req.mutable_since() = TimeOption("--since", st->since);
    code = client().ListAudit(req, st->limit);
  });
}

}  // namespace ferry::ctl
