#include "services/device/device_messaging_service.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include "core/d2c/record.h"
#include "core/error.h"
#include "core/time_text.h"
#include "services/c2d/c2d_service.h"
#include "services/rpc/proto_time.h"

namespace ferry::device {
namespace {

grpc::ServerUnaryReactor* Unimplemented(grpc::CallbackServerContext* ctx) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "C2D is not served by this process"));
  return reactor;
}

constexpr std::string_view kService = "ferry.v1.DeviceMessaging";
constexpr auto kMaxWait = std::chrono::seconds(10);

// Application property names a device may not use: IoT Hub's system
// properties, and every iothub-* name (so that no device can pass for the
// hub's own stamps or lifecycle notifications).
bool IsReservedName(std::string_view name) {
  return d2c::IsSystemProperty(name) || name.rfind("iothub-", 0) == 0;
}

bool IsText(std::string_view s) {
  // proto3 strings are UTF-8 already; NUL is the one byte the store refuses.
  return s.find('\0') == std::string_view::npos;
}

// How long a send may wait for Kafka: the call's deadline, at most 10 s.
std::chrono::steady_clock::time_point WaitUntil(const grpc::CallbackServerContext* ctx) {
  const auto now_sys = std::chrono::system_clock::now();
  const auto cap = std::chrono::steady_clock::now() + kMaxWait;
  const auto deadline = ctx->deadline();
  if (deadline >= now_sys + kMaxWait) return cap;
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::max(deadline - now_sys, std::chrono::system_clock::duration::zero()));
}

std::string AuthMethod(const rpc::Caller& caller) {
  return fmt::format(
      R"({{"scope":"{}","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}})",
      caller.kind == rpc::Caller::Kind::kDevice ? "device" : "hub");
}

Error Unavailable(const kafka::ProduceResult& r) {
  return Error(Reason::kServiceUnavailable,
               r.status == kafka::ProduceResult::Status::kTimedOut
                   ? "Kafka did not acknowledge the event in time; it may still land"
                   : "Kafka refused the event: " + r.error);
}

// Now, at the precision the record carries the enqueued time (the
// iothub-enqueuedtime header and the Kafka timestamp hold milliseconds), so
// that the time SendEvent answers is the time the store holds.
TimePoint EnqueuedNow(const Clock& clock) {
  return std::chrono::floor<std::chrono::milliseconds>(clock.Now());
}

}  // namespace

kafka::OutgoingRecord BuildRecord(const std::string& topic, const rpc::Caller& caller,
                                  const v1::D2cMessage& m, TimePoint now, std::size_t* size_out) {
  kafka::OutgoingRecord r;
  r.topic = topic;
  r.key = caller.device_id.value_or("");
  r.value = m.body();
  r.timestamp_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  // d2c::MessageSize, header by header: the consumer counts the same
  // headers the same way, so what is accepted here is never too large there.
  std::size_t size = m.body().size();
  auto add = [&](std::string name, std::string value) {
    size += d2c::PropertySize(name, value);
    r.headers.emplace_back(std::move(name), std::move(value));
  };
  for (const auto& [name, value] :
       {std::pair{"message-id", m.message_id()}, std::pair{"correlation-id", m.correlation_id()},
        std::pair{"content-type", m.content_type()},
        std::pair{"content-encoding", m.content_encoding()}}) {
    if (value.size() > 128 || !IsText(value)) {
      throw Error(Reason::kArgumentInvalid,
                  fmt::format("{} must be at most 128 characters of text", name));
    }
    if (!value.empty()) add(name, value);
  }
  if (m.has_creation_time()) {
    // What the consumer can land (d2c::Decode dead-letters other times).
    const TimePoint created = rpc::FromProtoTime(m.creation_time(), "creation_time");
    if (!d2c::IsStorableTime(created)) {
      throw Error(Reason::kArgumentInvalid, "creation_time must be in the years 1970 to 2199");
    }
    add("iothub-creation-time-utc", FormatTime(created));
  }
  // Sorted, so the record does not depend on map iteration order.
  if (m.properties_size() > static_cast<int>(kMaxProperties)) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("at most {} application properties", kMaxProperties));
  }
  std::vector<std::pair<std::string, std::string>> props(m.properties().begin(),
                                                         m.properties().end());
  std::sort(props.begin(), props.end());
  for (auto& [name, value] : props) {
    if (name.empty() || !IsText(name) || !IsText(value)) {
      throw Error(Reason::kArgumentInvalid, "property names must be non-empty text, values text");
    }
    if (IsReservedName(name)) {
      throw Error(Reason::kArgumentInvalid,
                  fmt::format("property name '{}' is reserved for system properties", name));
    }
    add(std::move(name), std::move(value));
  }
  // The hub's stamps (they add nothing to the size).
  add("iothub-connection-device-id", r.key);
  add("iothub-connection-auth-generation-id", caller.generation_id.value_or(""));
  add("iothub-connection-auth-method", AuthMethod(caller));
  add("iothub-enqueuedtime", FormatTime(now));
  add("iothub-message-source", "Telemetry");
  if (size > d2c::kMaxD2cMessageBytes) {
    throw Error(
        Reason::kMessageTooLarge,
        fmt::format("message is {} bytes as IoT Hub counts (body, system property values, "
                    "application property names and values); the limit is 256 KB ({} bytes)",
                    size, d2c::kMaxD2cMessageBytes));
  }
  if (size_out != nullptr) *size_out = size;
  return r;
}

grpc::ServerUnaryReactor* DeviceMessagingService::SendEvent(grpc::CallbackServerContext* ctx,
                                                            const v1::SendEventRequest* request,
                                                            v1::SendEventResponse* response) {
  const auto wait_until = WaitUntil(ctx);
  return runtime_.UnaryAsync(
      ctx, kService, "SendEvent", request, response,
      [this, wait_until](const rpc::Caller& caller, const v1::SendEventRequest& req,
                         v1::SendEventResponse& resp, const rpc::RpcRuntime::Finish& finish) {
        const TimePoint now = EnqueuedNow(clock_);
        const kafka::OutgoingRecord record = BuildRecord(topic_, caller, req.message(), now);
        // Too few in-sync replicas for acks=all: refused now, with the
        // reason, rather than waited on and timed out.
        if (std::string why = producer_.Refusal(topic_, record.key); !why.empty()) {
          throw Error(Reason::kServiceUnavailable, why);
        }
        const bool queued =
            producer_.Send(record, wait_until, [&resp, finish, now](const kafka::ProduceResult& r) {
              if (r.status != kafka::ProduceResult::Status::kAcknowledged) {
                finish(Unavailable(r));
                return;
              }
              resp.set_partition(r.partition);
              resp.set_offset(r.offset);
              *resp.mutable_enqueued_time() = rpc::ToProtoTime(now);
              finish(std::nullopt);
            });
        if (!queued) {
          throw Error(Reason::kThrottlingException, "the producer's queue is full; retry later");
        }
      });
}

grpc::ServerUnaryReactor* DeviceMessagingService::SendEventBatch(
    grpc::CallbackServerContext* ctx, const v1::SendEventBatchRequest* request,
    v1::SendEventBatchResponse* response) {
  const auto wait_until = WaitUntil(ctx);
  return runtime_.UnaryAsync(
      ctx, kService, "SendEventBatch", request, response,
      [this, wait_until](const rpc::Caller& caller, const v1::SendEventBatchRequest& req,
                         v1::SendEventBatchResponse& resp, const rpc::RpcRuntime::Finish& finish) {
        if (req.messages_size() == 0 ||
            static_cast<std::size_t>(req.messages_size()) > kMaxBatchMessages) {
          throw Error(Reason::kArgumentInvalid, "a batch holds 1 to 500 messages");
        }
        const TimePoint now = EnqueuedNow(clock_);
        std::vector<kafka::OutgoingRecord> records;
        std::size_t total = 0;
        for (const auto& m : req.messages()) {
          std::size_t size = 0;
          records.push_back(BuildRecord(topic_, caller, m, now, &size));
          total += size;
        }
        if (total > d2c::kMaxD2cMessageBytes) {
          throw Error(
              Reason::kMessageTooLarge,
              fmt::format(
                  "batch is {} bytes as IoT Hub counts; the limit is 256 KB ({} bytes) in all",
                  total, d2c::kMaxD2cMessageBytes));
        }
        for (const kafka::OutgoingRecord& r : records) {
          if (std::string why = producer_.Refusal(topic_, r.key); !why.empty()) {
            throw Error(Reason::kServiceUnavailable, why);
          }
        }
        for (std::size_t i = 0; i < records.size(); ++i) resp.add_results();
        struct Progress {
          std::mutex mutex;
          std::size_t left = 0;
          std::optional<Error> error;
          bool abandoned = false;  // answered early: the response is gone
        };
        auto progress = std::make_shared<Progress>();
        progress->left = records.size();
        for (std::size_t i = 0; i < records.size(); ++i) {
          v1::SendEventResponse* slot = resp.mutable_results(static_cast<int>(i));
          const bool queued = producer_.Send(
              records[i], wait_until, [progress, slot, finish, now](const kafka::ProduceResult& r) {
                std::optional<Error> error;
                bool last = false;
                {
                  std::lock_guard lock(progress->mutex);
                  if (progress->abandoned) return;
                  if (r.status == kafka::ProduceResult::Status::kAcknowledged) {
                    slot->set_partition(r.partition);
                    slot->set_offset(r.offset);
                    *slot->mutable_enqueued_time() = rpc::ToProtoTime(now);
                  } else if (!progress->error) {
                    progress->error = Unavailable(r);
                  }
                  last = --progress->left == 0;
                  error = progress->error;
                }
                if (last) finish(error);
              });
          if (!queued) {
            // The ones queued so far complete on their own; answer now.
            {
              std::lock_guard lock(progress->mutex);
              progress->abandoned = true;
            }
            finish(
                Error(Reason::kThrottlingException, "the producer's queue is full; retry later"));
            return;
          }
        }
      });
}

grpc::ServerUnaryReactor* DeviceMessagingService::Receive(grpc::CallbackServerContext* ctx,
                                                          const v1::ReceiveRequest* request,
                                                          v1::ReceiveResponse* response) {
  if (c2d_ == nullptr) return Unimplemented(ctx);
  return c2d_->Receive(ctx, request, response);
}

grpc::ServerUnaryReactor* DeviceMessagingService::Complete(grpc::CallbackServerContext* ctx,
                                                           const v1::SettleRequest* request,
                                                           v1::SettleResponse* response) {
  if (c2d_ == nullptr) return Unimplemented(ctx);
  return c2d_->Settle(ctx, "Complete", request, response);
}

grpc::ServerUnaryReactor* DeviceMessagingService::Abandon(grpc::CallbackServerContext* ctx,
                                                          const v1::SettleRequest* request,
                                                          v1::SettleResponse* response) {
  if (c2d_ == nullptr) return Unimplemented(ctx);
  return c2d_->Settle(ctx, "Abandon", request, response);
}

grpc::ServerUnaryReactor* DeviceMessagingService::Reject(grpc::CallbackServerContext* ctx,
                                                         const v1::SettleRequest* request,
                                                         v1::SettleResponse* response) {
  if (c2d_ == nullptr) return Unimplemented(ctx);
  return c2d_->Settle(ctx, "Reject", request, response);
}

grpc::ServerWriteReactor<v1::ReceivedMessage>* DeviceMessagingService::Subscribe(
    grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* request) {
  if (c2d_ == nullptr) return v1::DeviceMessaging::CallbackService::Subscribe(ctx, request);
  return c2d_->Subscribe(ctx, request);
}

}  // namespace ferry::device
