#include "services/rpc/runtime.h"

#include <chrono>

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/rpc/status.h"

namespace ferry::rpc {

struct RpcMetrics {
  explicit RpcMetrics(prometheus::Registry& registry)
      : requests(metrics::CounterFamily(registry, "ferry_grpc_requests_total",
                                        "gRPC calls handled, by service, method and status code.")),
        throttled(
            metrics::CounterFamily(registry, "ferry_throttled_total",
                                   "Calls refused with ThrottlingException, by operation class.")),
        duration(metrics::HistogramFamily(
            registry, "ferry_grpc_request_duration_seconds",
            "Time from a call's arrival to its status, by service and method.")) {}

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& throttled;
  prometheus::Family<prometheus::Histogram>& duration;
};

namespace {

const prometheus::Histogram::BucketBoundaries& Buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return buckets;
}

// grpc::StatusCode's canonical names, for the code label.
std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE:
      return "UNKNOWN";
  }
  return "UNKNOWN";
}

// A call refused for what it sent (no or a bad credential, a missing
// permission, a malformed request), not for Ferry's own trouble.
bool IsRefusal(const Error& e) {
  return e.reason() == Reason::kIotHubUnauthorizedAccess ||
         e.reason() == Reason::kPermissionDenied || e.reason() == Reason::kArgumentInvalid ||
         e.reason() == Reason::kArgumentNull;
}

void RefuseNul(const google::protobuf::Message& request) {
  if (const auto field = FieldWithNul(request)) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("{} holds a NUL character, which text fields must not", *field));
  }
}

}  // namespace

std::optional<std::string> FieldWithNul(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  std::string scratch;
  for (const FieldDescriptor* f : fields) {
    const int n = f->is_repeated() ? reflection->FieldSize(message, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string path = f->is_repeated() ? fmt::format("{}[{}]", f->name(), i) : f->name();
      if (f->type() == FieldDescriptor::TYPE_STRING) {
        const std::string& value =
            f->is_repeated() ? reflection->GetRepeatedStringReference(message, f, i, &scratch)
                             : reflection->GetStringReference(message, f, &scratch);
        if (value.find('\0') != std::string::npos) return path;
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const google::protobuf::Message& sub = f->is_repeated()
                                                   ? reflection->GetRepeatedMessage(message, f, i)
                                                   : reflection->GetMessage(message, f);
        if (auto inner = FieldWithNul(sub)) return path + "." + *inner;
      }
    }
  }
  return std::nullopt;
}

RpcRuntime::RpcRuntime(Executor& executor, Authorizer& authorizer, prometheus::Registry& registry)
    : executor_(executor),
      authorizer_(authorizer),
      metrics_(std::make_unique<RpcMetrics>(registry)) {}

RpcRuntime::~RpcRuntime() = default;

void RpcRuntime::Dispatch(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                          std::string_view service, std::string_view method,
                          const google::protobuf::Message& request,
                          std::optional<std::string> device_id,
                          std::function<void(const Caller&, Finish)> body) {
  static const auto logger = log::Get("rpc");
  const auto started = std::chrono::steady_clock::now();
  const MethodRule* rule = FindMethodRule(service, method);
  std::string authorization;
  const auto& metadata = ctx->client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }

  // Every way a call ends goes through here, once.
  auto finished = std::make_shared<std::atomic<bool>>(false);
  auto end = [this, ctx, reactor, service, method, started, finished](
                 const grpc::Status& status, std::optional<Reason> reason) {
    if (finished->exchange(true)) return;
    Ended(ctx, service, method, started, status, reason);
    reactor->Finish(status);
  };
  Finish finish = [end](const std::optional<Error>& error) {
    if (error) {
      end(ToStatus(*error), error->reason());
    } else {
      end(grpc::Status::OK, std::nullopt);
    }
  };

  if (rule == nullptr) {
    logger->error("refused a method with no authorization rule service=\"{}\" method=\"{}\"",
                  service, method);
    end(grpc::Status(grpc::StatusCode::INTERNAL, "ServerError: method has no access rule"),
        Reason::kServerError);
    return;
  }
  if (!rule->device_scoped) device_id.reset();

  auto task = [this, ctx, rule, &request, authorization = std::move(authorization),
               device_id = std::move(device_id), body = std::move(body), end, finish] {
    if (ctx->IsCancelled()) {
      end(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled before it ran"), std::nullopt);
      return;
    }
    try {
      // Authenticate first: a caller without a valid credential never draws
      // on an operation class's budget. Failed calls draw on a budget of
      // their own, so that they cannot lock anyone else out.
      std::optional<Caller> caller;
      try {
        RefuseNul(request);
        caller = authorizer_.Authorize(*rule, authorization, device_id);
      } catch (const Error& e) {
        if (!IsRefusal(e)) throw;  // e.g. the credential store unreachable: UNAVAILABLE
        if (const auto refused = Throttled(kRefusedClass)) {
          finish(*refused);
          return;
        }
        throw;
      }
      if (const auto refused = Throttled(static_cast<std::size_t>(rule->throttle))) {
        finish(*refused);
        return;
      }
      body(*caller, finish);
    } catch (const Error& e) {
      finish(e);
    } catch (const std::exception& e) {
      logger->error("unexpected error service=\"{}\" method=\"{}\" error=\"{}\"", rule->service,
                    rule->method, e.what());
      end(grpc::Status(grpc::StatusCode::INTERNAL, "ServerError: internal error"),
          Reason::kServerError);
    }
  };
  try {
    executor_.Post(std::move(task));
  } catch (const std::logic_error&) {
    // Shutting down: the executor takes no more work.
    end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ServiceUnavailable: shutting down"),
        Reason::kServiceUnavailable);
  }
}

void RpcRuntime::SetThrottles(const ThrottleRates& rates) {
  const auto make = [](double rate) -> std::unique_ptr<TokenBucket> {
    if (rate <= 0) return nullptr;
    return std::make_unique<TokenBucket>(rate, rate);
  };
  buckets_[static_cast<std::size_t>(Throttle::kD2cSend)] = make(rates.d2c_sends);
  buckets_[static_cast<std::size_t>(Throttle::kC2dSend)] = make(rates.c2d_sends);
  buckets_[static_cast<std::size_t>(Throttle::kC2dReceive)] = make(rates.c2d_receives);
  buckets_[static_cast<std::size_t>(Throttle::kRegistry)] = make(rates.registry);
  buckets_[kRefusedClass] = make(rates.unauthenticated);
}

std::optional<Error> RpcRuntime::Throttled(std::size_t bucket_class) {
  static constexpr std::array<std::string_view, kBuckets> kNames = {
      "none", "d2c_sends", "c2d_sends", "c2d_receives", "registry", "unauthenticated"};
  const auto& bucket = buckets_[bucket_class];
  if (!bucket || bucket->TryTake()) return std::nullopt;
  metrics_->throttled.Add({{"class", std::string(kNames[bucket_class])}}).Increment();
  return Error(
      Reason::kThrottlingException,
      bucket_class == kRefusedClass
          ? fmt::format(
                "over {:g} calls a second without a valid credential on this replica; retry with "
                "backoff",
                bucket->rate())
          : fmt::format(
                "over {:g} calls a second for this operation on this replica; retry with backoff",
                bucket->rate()));
}

Caller RpcRuntime::AuthorizeStream(grpc::CallbackServerContext* ctx, std::string_view service,
                                   std::string_view method,
                                   const google::protobuf::Message& request,
                                   std::optional<std::string> device_id) {
  const MethodRule* rule = FindMethodRule(service, method);
  if (rule == nullptr) throw Error(Reason::kServerError, "method has no access rule");
  std::string authorization;
  const auto& metadata = ctx->client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  if (!rule->device_scoped) device_id.reset();
  try {
    RefuseNul(request);
    return authorizer_.Authorize(*rule, authorization, device_id);
  } catch (const Error& e) {
    if (!IsRefusal(e)) throw;
    if (auto refused = Throttled(kRefusedClass)) throw std::move(*refused);
    throw;
  }
}

grpc::Status RpcRuntime::EndStream(grpc::CallbackServerContext* ctx, std::string_view service,
                                   std::string_view method,
                                   std::chrono::steady_clock::time_point started,
                                   const std::optional<Error>& error) {
  grpc::Status status = error ? ToStatus(*error) : grpc::Status::OK;
  Ended(ctx, service, method, started, status,
        error ? std::optional(error->reason()) : std::nullopt);
  return status;
}

void RpcRuntime::Ended(grpc::CallbackServerContext* ctx, std::string_view service,
                       std::string_view method, std::chrono::steady_clock::time_point started,
                       const grpc::Status& status, std::optional<Reason> reason) {
  if (reason) {
    ctx->AddTrailingMetadata(kReasonMetadataKey, std::string(ReasonName(*reason)));
    ctx->AddTrailingMetadata(kCodeMetadataKey, std::to_string(IotHubCode(*reason)));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string s(service), m(method);
  metrics_->requests
      .Add({{"service", s}, {"method", m}, {"code", std::string(CodeName(status.error_code()))}})
      .Increment();
  metrics_->duration.Add({{"service", s}, {"method", m}}, Buckets()).Observe(seconds);
}

void CancellableReactor::SetOnCancel(const std::function<void()>& on_cancel) {
  bool run = false;
  {
    std::lock_guard lock(mutex_);
    on_cancel_ = on_cancel;
    run = cancelled_;
  }
  if (run) on_cancel();
}

void CancellableReactor::OnCancel() {
  std::function<void()> run;
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    run = on_cancel_;
  }
  if (run) run();
}

}  // namespace ferry::rpc
