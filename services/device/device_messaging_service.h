#pragma once

#include <string>

#include "core/clock.h"
#include "core/kafka/producer.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "services/rpc/runtime.h"

namespace ferry::c2d {
class DeviceC2d;
}

namespace ferry::device {

// ferry.v1.DeviceMessaging: device-to-cloud events produced to the D2C topic
// under the record contract (docs/d2c-record-contract.md), stamped with the
// connection properties IoT Hub stamps. Answers only after Kafka acknowledged.
class DeviceMessagingService final : public ferry::v1::DeviceMessaging::CallbackService {
 public:
  // `c2d` serves the device side of C2D (Receive, Complete, Abandon,
  // Reject, Subscribe); without it those answer UNIMPLEMENTED.
  DeviceMessagingService(rpc::RpcRuntime& runtime, kafka::Producer& producer, std::string topic,
                         const Clock& clock, c2d::DeviceC2d* c2d = nullptr)
      : runtime_(runtime),
        producer_(producer),
        topic_(std::move(topic)),
        clock_(clock),
        c2d_(c2d) {}

  grpc::ServerUnaryReactor* SendEvent(grpc::CallbackServerContext* ctx,
                                      const v1::SendEventRequest* request,
                                      v1::SendEventResponse* response) override;
  grpc::ServerUnaryReactor* SendEventBatch(grpc::CallbackServerContext* ctx,
                                           const v1::SendEventBatchRequest* request,
                                           v1::SendEventBatchResponse* response) override;
  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* ctx,
                                    const v1::ReceiveRequest* request,
                                    v1::ReceiveResponse* response) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const v1::SettleRequest* request,
                                     v1::SettleResponse* response) override;
  grpc::ServerUnaryReactor* Abandon(grpc::CallbackServerContext* ctx,
                                    const v1::SettleRequest* request,
                                    v1::SettleResponse* response) override;
  grpc::ServerUnaryReactor* Reject(grpc::CallbackServerContext* ctx,
                                   const v1::SettleRequest* request,
                                   v1::SettleResponse* response) override;
  grpc::ServerWriteReactor<v1::ReceivedMessage>* Subscribe(
      grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* request) override;

 private:
  rpc::RpcRuntime& runtime_;
  kafka::Producer& producer_;
  std::string topic_;
  const Clock& clock_;
  c2d::DeviceC2d* c2d_;
};

inline constexpr std::size_t kMaxBatchMessages = 500;
inline constexpr std::size_t kMaxProperties = 128;

// The record for one message (exposed for tests). Throws ferry::Error:
// kArgumentInvalid for bad property names or ids, kMessageTooLarge over
// d2c::kMaxD2cMessageBytes as d2c::MessageSize counts.
kafka::OutgoingRecord BuildRecord(const std::string& topic, const rpc::Caller& caller,
                                  const v1::D2cMessage& message, TimePoint now,
                                  std::size_t* size_out = nullptr);

}  // namespace ferry::device
