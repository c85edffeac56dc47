#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <prometheus/registry.h>

#include "core/auth/authorizer.h"
#include "core/auth/credentials.h"
#include "core/error.h"
#include "core/executor.h"
#include "core/throttle.h"
#include "services/rpc/method_rules.h"

namespace ferry::rpc {

using auth::Caller;

// Decides whether a call may run, before its handler does. Runs on the
// executor. Throws ferry::Error (kIotHubUnauthorizedAccess,
// kPermissionDenied, ...) to refuse.
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // `device_id`: for device-scoped methods, the device the request names.
  [[nodiscard]] virtual Caller Authorize(const MethodRule& rule, std::string_view authorization,
                                         const std::optional<std::string>& device_id) = 0;
};

// IoT Hub's SAS rules (auth::SasAuthorizer) for every method.
class SasRpcAuthorizer final : public Authorizer {
 public:
  explicit SasRpcAuthorizer(const auth::SasAuthorizer& sas) : sas_(sas) {}
  Caller Authorize(const MethodRule& rule, std::string_view authorization,
                   const std::optional<std::string>& device_id) override {
    return sas_.Authorize({rule.permission, device_id}, authorization);
  }

 private:
  const auth::SasAuthorizer& sas_;
};

// Lets every call through, as an all-permissions caller: only for local
// experiments with authentication turned off on purpose
// (--insecure-no-auth), which ferryd warns about every minute.
class AllowAllAuthorizer final : public Authorizer {
 public:
  Caller Authorize(const MethodRule&, std::string_view,
                   const std::optional<std::string>& device_id) override {
    return {Caller::Kind::kAnonymous, "anonymous", auth::PermissionSet::All(), device_id};
  }
};

struct RpcMetrics;

// The path of the first text (proto `string`) field of `message`, at any
// depth, map keys and values included, that holds a NUL character; none if
// no field does. PostgreSQL text cannot hold NUL and libpq would cut the
// value there, so every request is checked once, here, before its handler
// or the authorizer sees it (`bytes` fields may hold anything).
[[nodiscard]] std::optional<std::string> FieldWithNul(const google::protobuf::Message& message);

// Calls a second per replica, by operation class; 0: unlimited. Each bucket
// holds one second's worth, so short bursts pass. `unauthenticated` bounds
// the calls whose authorization failed (no token, a bad one, a missing
// permission), whatever their class.
struct ThrottleRates {
  double d2c_sends = 0;
  double c2d_sends = 0;
  double c2d_receives = 0;
  double registry = 0;
  double unauthenticated = 0;
};

// A unary reactor that tells its handler when the client cancels (the
// default reactor cannot): for calls that wait.
class CancellableReactor final : public grpc::ServerUnaryReactor {
 public:
  // Runs `on_cancel` once the call is cancelled (at once if it already
  // was), on a gRPC thread.
  void SetOnCancel(const std::function<void()>& on_cancel);
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  std::mutex mutex_;
  bool cancelled_ = false;
  std::function<void()> on_cancel_;
};

// The one way a Ferry RPC runs: look up the method's rule (a method without
// one is refused), authorize, run the handler on the executor, map errors
// with ToStatus, count and time the call, finish. Thread-safe.
class RpcRuntime final {
 public:
  RpcRuntime(Executor& executor, Authorizer& authorizer, prometheus::Registry& registry);
  ~RpcRuntime();
  RpcRuntime(const RpcRuntime&) = delete;
  RpcRuntime& operator=(const RpcRuntime&) = delete;

  // Throttles calls per operation class (method_rules.cc). A call is
  // authorized first; an authorized call over its class's rate, or a refused
  // one over the `unauthenticated` rate, fails with RESOURCE_EXHAUSTED
  // (ThrottlingException), counted in ferry_throttled_total{class}. Call
  // before serving.
  void SetThrottles(const ThrottleRates& rates);

  // Finishes an asynchronous call: once, from any thread. With an error the
  // call fails with ToStatus(error); without, it succeeds.
  using Finish = std::function<void(const std::optional<Error>& error)>;

  // Like Unary, for handlers that complete later: called as
  // handler(caller, request, response, finish) on an executor thread; it must
  // call `finish` exactly once (later calls are ignored), or throw
  // ferry::Error before calling it.
  template <typename Request, typename Response, typename Handler>
  grpc::ServerUnaryReactor* UnaryAsync(grpc::CallbackServerContext* ctx, std::string_view service,
                                       std::string_view method, const Request* request,
                                       Response* response, Handler handler) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::optional<std::string> device_id;
    if constexpr (requires { request->device_id(); }) device_id = request->device_id();
    Dispatch(ctx, reactor, service, method, *request, std::move(device_id),
             [request, response, h = std::move(handler)](const Caller& caller, Finish finish) {
               h(caller, *request, *response, std::move(finish));
             });
    return reactor;
  }

  // Like UnaryAsync, for calls that wait: the handler is called as
  // handler(caller, request, response, finish, reactor) and may register a
  // cancellation callback with reactor.SetOnCancel.
  template <typename Request, typename Response, typename Handler>
  grpc::ServerUnaryReactor* UnaryWaiting(grpc::CallbackServerContext* ctx, std::string_view service,
                                         std::string_view method, const Request* request,
                                         Response* response, Handler handler) {
    auto* reactor = new CancellableReactor();
    std::optional<std::string> device_id;
    if constexpr (requires { request->device_id(); }) device_id = request->device_id();
    Dispatch(
        ctx, reactor, service, method, *request, std::move(device_id),
        [request, response, reactor, h = std::move(handler)](const Caller& caller, Finish finish) {
          h(caller, *request, *response, std::move(finish), *reactor);
        });
    return reactor;
  }

  // The handler is called as handler(caller, request, response) on an
  // executor thread; it throws ferry::Error to refuse. `ctx`, `request` and
  // `response` live until the call finishes.
  template <typename Request, typename Response, typename Handler>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, std::string_view service,
                                  std::string_view method, const Request* request,
                                  Response* response, Handler handler) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::optional<std::string> device_id;
    if constexpr (requires { request->device_id(); }) device_id = request->device_id();
    Dispatch(
        ctx, reactor, service, method, *request, std::move(device_id),
        [request, response, h = std::move(handler)](const Caller& caller, const Finish& finish) {
          h(caller, *request, *response);
          finish(std::nullopt);
        });
    return reactor;
  }

  // Server streams: checks the request's text (RefuseNul) and authorizes on
  // the calling thread (throws ferry::Error), and returns the caller.
  Caller AuthorizeStream(grpc::CallbackServerContext* ctx, std::string_view service,
                         std::string_view method, const google::protobuf::Message& request,
                         std::optional<std::string> device_id);
  // The status a stream ends with (trailers as for unary calls), counted and
  // timed like a unary call from `started`.
  grpc::Status EndStream(grpc::CallbackServerContext* ctx, std::string_view service,
                         std::string_view method, std::chrono::steady_clock::time_point started,
                         const std::optional<Error>& error);

 private:
  // `device_id` is what the request names, if it has such a field; it is
  // passed to the authorizer only for device-scoped methods.
  void Dispatch(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                std::string_view service, std::string_view method,
                const google::protobuf::Message& request, std::optional<std::string> device_id,
                std::function<void(const Caller&, Finish)> body);

  // Trailers with the reason, and the call counted and timed.
  void Ended(grpc::CallbackServerContext* ctx, std::string_view service, std::string_view method,
             std::chrono::steady_clock::time_point started, const grpc::Status& status,
             std::optional<Reason> reason);

  // The refusal for a call of `bucket_class` over its rate, counted; none
  // when it may run.
  std::optional<Error> Throttled(std::size_t bucket_class);

  // One bucket per operation class, and one for refused calls.
  static constexpr std::size_t kRefusedClass = kThrottleClasses;
  static constexpr std::size_t kBuckets = kThrottleClasses + 1;

  Executor& executor_;
  Authorizer& authorizer_;
  std::array<std::unique_ptr<TokenBucket>, kBuckets> buckets_;
  std::unique_ptr<RpcMetrics> metrics_;
};

}  // namespace ferry::rpc
