#pragma once

#include <atomic>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "core/clock.h"
#include "ferry/v1/events.grpc.pb.h"
#include "services/rpc/runtime.h"

namespace ferry::d2c {
class EventReader;
class EventStore;
}  // namespace ferry::d2c

namespace ferry::kafka {
class Producer;
}

namespace ferry::events {

// ferry.v1.Events: reading back the event store, checkpoints and their
// reset, dead letters and re-drive. `kafka` (may be null) answers
// watermarks and offsets for times; without it, lag is unknown and resets
// take absolute offsets only. Metrics: ferry_events_tail_streams,
// ferry_d2c_redriven_total{outcome}, ferry_d2c_checkpoint_resets_total.
class EventsService final : public v1::Events::CallbackService {
 public:
  EventsService(rpc::RpcRuntime& runtime, d2c::EventStore& store, d2c::EventReader& reader,
                kafka::Producer* kafka, std::string topic, std::string group, const Clock& clock,
                prometheus::Registry& registry);

  grpc::ServerUnaryReactor* ReadEvents(grpc::CallbackServerContext* ctx,
                                       const v1::ReadEventsRequest* request,
                                       v1::ReadEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::TailEventsResponse>* TailEvents(
      grpc::CallbackServerContext* ctx, const v1::TailEventsRequest* request) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* ctx,
                                            const v1::ListCheckpointsRequest* request,
                                            v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* ResetCheckpoints(grpc::CallbackServerContext* ctx,
                                             const v1::ResetCheckpointsRequest* request,
                                             v1::ResetCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* ctx,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(grpc::CallbackServerContext* ctx,
                                               const v1::RedriveDeadLettersRequest* request,
                                               v1::RedriveDeadLettersResponse* response) override;

  // Most tail streams open at once on this replica.
  static constexpr int kMaxTailStreams = 64;

 private:
  class TailReactor;
  std::string Group(const std::string& requested) const;

  rpc::RpcRuntime& runtime_;
  d2c::EventStore& store_;
  d2c::EventReader& reader_;
  kafka::Producer* kafka_;
  const std::string topic_;
  const std::string group_;
  const Clock& clock_;
  prometheus::Gauge& tail_streams_;
  prometheus::Family<prometheus::Counter>& redriven_;
  prometheus::Counter& resets_;
  std::atomic<int> open_tails_{0};
};

}  // namespace ferry::events
