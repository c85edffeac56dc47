#pragma once

#include <string>

#include "core/clock.h"
#include "core/kafka/producer.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "services/rpc/runtime.h"

namespace ferry::device {

// ferry.v1.DeviceMessaging: device-to-cloud events produced to the D2C topic
// under the record contract (docs/d2c-record-contract.md), stamped with the
// connection properties IoT Hub stamps. Answers only after Kafka acknowledged.
class DeviceMessagingService final : public ferry::v1::DeviceMessaging::CallbackService {
 public:
  DeviceMessagingService(rpc::RpcRuntime& runtime, kafka::Producer& producer, std::string topic,
                         const Clock& clock)
      : runtime_(runtime), producer_(producer), topic_(std::move(topic)), clock_(clock) {}

  grpc::ServerUnaryReactor* SendEvent(grpc::CallbackServerContext* ctx,
                                      const v1::SendEventRequest* request,
                                      v1::SendEventResponse* response) override;
  grpc::ServerUnaryReactor* SendEventBatch(grpc::CallbackServerContext* ctx,
                                           const v1::SendEventBatchRequest* request,
                                           v1::SendEventBatchResponse* response) override;

 private:
  rpc::RpcRuntime& runtime_;
  kafka::Producer& producer_;
  std::string topic_;
  const Clock& clock_;
};

inline constexpr std::size_t kMaxBatchMessages = 500;
inline constexpr std::size_t kMaxMessageBytes = 256 * 1024;

// The record for one message (exposed for tests). Throws ferry::Error:
// kArgumentInvalid for bad property names or ids, kMessageTooLarge over
// 256 KB counted as IoT Hub counts.
kafka::OutgoingRecord BuildRecord(const std::string& topic, const rpc::Caller& caller,
                                  const v1::D2cMessage& message, TimePoint now,
                                  std::size_t* size_out = nullptr);

}  // namespace ferry::device
