#pragma once

#include "core/clock.h"
#include "ferry/v1/access.grpc.pb.h"
#include "services/auth/policy_store.h"
#include "services/rpc/runtime.h"

namespace ferry::access {

// ferry.v1.AccessPolicies. Every method needs a policy with all four
// permissions (method_rules.cc).
class PolicyService final : public ferry::v1::AccessPolicies::CallbackService {
 public:
  PolicyService(rpc::RpcRuntime& runtime, PolicyStore& store, const Clock& clock)
      : runtime_(runtime), store_(store), clock_(clock) {}

  grpc::ServerUnaryReactor* CreatePolicy(grpc::CallbackServerContext* ctx,
                                         const v1::CreatePolicyRequest* request,
                                         v1::Policy* response) override;
  grpc::ServerUnaryReactor* GetPolicy(grpc::CallbackServerContext* ctx,
                                      const v1::GetPolicyRequest* request,
                                      v1::Policy* response) override;
  grpc::ServerUnaryReactor* ListPolicies(grpc::CallbackServerContext* ctx,
                                         const v1::ListPoliciesRequest* request,
                                         v1::ListPoliciesResponse* response) override;
  grpc::ServerUnaryReactor* UpdatePolicy(grpc::CallbackServerContext* ctx,
                                         const v1::UpdatePolicyRequest* request,
                                         v1::Policy* response) override;
  grpc::ServerUnaryReactor* DeletePolicy(grpc::CallbackServerContext* ctx,
                                         const v1::DeletePolicyRequest* request,
                                         v1::DeletePolicyResponse* response) override;
  grpc::ServerUnaryReactor* RegeneratePolicyKey(grpc::CallbackServerContext* ctx,
                                                const v1::RegeneratePolicyKeyRequest* request,
                                                v1::Policy* response) override;

 private:
  rpc::RpcRuntime& runtime_;
  PolicyStore& store_;
  const Clock& clock_;
};

// 1 to 64 ASCII letters, digits, - . _; throws ferry::Error(kArgumentInvalid).
void ValidatePolicyName(const std::string& name);
// Throws ferry::Error(kArgumentInvalid) for an empty slot.
KeySlot SlotFromProto(v1::KeySlot slot);

}  // namespace ferry::access
