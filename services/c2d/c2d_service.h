#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "core/clock.h"
#include "core/executor.h"
#include "core/periodic.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "services/c2d/c2d_store.h"
#include "services/c2d/wake_hub.h"
#include "services/rpc/runtime.h"

namespace ferry::c2d {

inline constexpr std::chrono::seconds kMaxReceiveWait{120};

struct FeedbackMetrics;

// C2D metrics (no device ids in labels).
struct Metrics {
  explicit Metrics(prometheus::Registry& registry);

  prometheus::Counter& sent;
  prometheus::Counter& duplicates;
  prometheus::Counter& delivered;
  prometheus::Counter& completed;
  prometheus::Counter& abandoned;
  prometheus::Counter& rejected;
  prometheus::Family<prometheus::Counter>& dead_lettered;
  prometheus::Counter& purged;
  prometheus::Counter& queue_full;
  prometheus::Counter& lock_lost;
  prometheus::Gauge& pending;
  prometheus::Gauge& devices_at_limit;
  prometheus::Gauge& waiting;
  prometheus::Histogram& first_delivery_seconds;
};

// What operators send, mapped onto c2d::SendRequest and checked by
// c2d::ValidateSend (core/c2d/send.h). Throws ferry::Error(kArgumentInvalid
// or kMessageTooLarge).
OutgoingMessage ValidateSend(const v1::SendC2dRequest& request, TimePoint now,
                             std::chrono::seconds default_ttl);

// ferry.v1.CloudToDevice. Counts the feedback a purge writes in
// `feedback_metrics`.
class CloudToDeviceService final : public v1::CloudToDevice::CallbackService {
 public:
  CloudToDeviceService(rpc::RpcRuntime& runtime, Store& store, const Clock& clock, Metrics& metrics,
                       FeedbackMetrics& feedback_metrics, std::chrono::seconds default_ttl);
  ~CloudToDeviceService() override;

  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* ctx,
                                 const v1::SendC2dRequest* request,
                                 v1::SendC2dResponse* response) override;
  grpc::ServerUnaryReactor* PurgeQueue(grpc::CallbackServerContext* ctx,
                                       const v1::PurgeQueueRequest* request,
                                       v1::PurgeQueueResponse* response) override;
  grpc::ServerUnaryReactor* GetMessage(grpc::CallbackServerContext* ctx,
                                       const v1::GetC2dMessageRequest* request,
                                       v1::C2dMessageState* response) override;
  grpc::ServerUnaryReactor* ListQueue(grpc::CallbackServerContext* ctx,
                                      const v1::ListQueueRequest* request,
                                      v1::ListQueueResponse* response) override;

 private:
  rpc::RpcRuntime& runtime_;
  Store& store_;
  const Clock& clock_;
  Metrics& metrics_;
  FeedbackMetrics& feedback_metrics_;
  const std::chrono::seconds default_ttl_;
  // Refreshes the pending and at-limit gauges every 15 s.
  PeriodicWorker gauges_;
};

// The device side of C2D, served through ferry.v1.DeviceMessaging: Receive
// (a long poll that holds no thread while it waits), Complete, Abandon,
// Reject and Subscribe. Counts the feedback a settlement writes in
// `feedback_metrics`.
class DeviceC2d final {
 public:
  DeviceC2d(rpc::RpcRuntime& runtime, Store& store, WakeHub& hub, Executor& executor,
            const Clock& clock, Metrics& metrics, FeedbackMetrics& feedback_metrics)
      : runtime_(runtime),
        store_(store),
        hub_(hub),
        executor_(executor),
        clock_(clock),
        metrics_(metrics),
        feedback_metrics_(feedback_metrics) {}

  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* ctx,
                                    const v1::ReceiveRequest* request,
                                    v1::ReceiveResponse* response);
  grpc::ServerUnaryReactor* Settle(grpc::CallbackServerContext* ctx, std::string_view method,
                                   const v1::SettleRequest* request, v1::SettleResponse* response);
  grpc::ServerWriteReactor<v1::ReceivedMessage>* Subscribe(grpc::CallbackServerContext* ctx,
                                                           const v1::SubscribeRequest* request);

 private:
  struct Waiter;
  class SubscribeReactor;
  void Attempt(const std::shared_ptr<Waiter>& waiter);
  void Delivered(const StoredMessage& m);

  rpc::RpcRuntime& runtime_;
  Store& store_;
  WakeHub& hub_;
  Executor& executor_;
  const Clock& clock_;
  Metrics& metrics_;
  FeedbackMetrics& feedback_metrics_;
};

// The message as a device receives it.
void EncodeReceived(const StoredMessage& m, v1::ReceivedMessage* out);

}  // namespace ferry::c2d
