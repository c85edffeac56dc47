#pragma once

#include "core/clock.h"
#include "core/pg/pool.h"
#include "ferry/v1/audit.grpc.pb.h"
#include "services/rpc/runtime.h"

namespace ferry::audit {

// ferry.v1.AuditLog: reads the audit_log table that the stores write
// (core/audit/audit.h).
class AuditService final : public v1::AuditLog::CallbackService {
 public:
  AuditService(rpc::RpcRuntime& runtime, pg::Pool& pool) : runtime_(runtime), pool_(pool) {}

  grpc::ServerUnaryReactor* ListAuditRecords(grpc::CallbackServerContext* ctx,
                                             const v1::ListAuditRecordsRequest* request,
                                             v1::ListAuditRecordsResponse* response) override;

 private:
  rpc::RpcRuntime& runtime_;
  pg::Pool& pool_;
};

}  // namespace ferry::audit
