#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <prometheus/registry.h>

#include "core/executor.h"
#include "services/rpc/method_rules.h"

namespace ferry::rpc {

// Who is calling, as the authorizer decided.
struct Caller {
  std::string principal;  // policy name, device id, or "anonymous"
};

// Decides whether a call may run, before its handler does. Runs on the
// executor (it may read the database). Throws
// ferry::Error(kIotHubUnauthorizedAccess) to refuse.
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  [[nodiscard]] virtual Caller Authorize(const MethodRule& rule, std::string_view authorization) = 0;
};

// Lets every call through. Until access control lands (issue 3) this is the
// only authorizer; it still runs for every call, so the path is exercised.
class AllowAllAuthorizer final : public Authorizer {
 public:
  Caller Authorize(const MethodRule&, std::string_view) override { return {"anonymous"}; }
};

struct RpcMetrics;

// The one way a Ferry RPC runs: look up the method's rule (a method without
// one is refused), authorize, run the handler on the executor, map errors
// with ToStatus, count and time the call, finish. Thread-safe.
class RpcRuntime final {
 public:
  RpcRuntime(Executor& executor, Authorizer& authorizer, prometheus::Registry& registry);
  ~RpcRuntime();
  RpcRuntime(const RpcRuntime&) = delete;
  RpcRuntime& operator=(const RpcRuntime&) = delete;

  // The handler is called as handler(caller, request, response) on an
  // executor thread; it throws ferry::Error to refuse. `ctx`, `request` and
  // `response` live until the call finishes.
  template <typename Request, typename Response, typename Handler>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, std::string_view service,
                                  std::string_view method, const Request* request,
                                  Response* response, Handler handler) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Dispatch(ctx, reactor, service, method,
             [request, response, h = std::move(handler)](const Caller& caller) {
               h(caller, *request, *response);
             });
    return reactor;
  }

 private:
  void Dispatch(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                std::string_view service, std::string_view method,
                std::function<void(const Caller&)> body);

  Executor& executor_;
  Authorizer& authorizer_;
  std::unique_ptr<RpcMetrics> metrics_;
};

}  // namespace ferry::rpc
