#pragma once

#include <chrono>

#include "store/d2c/event_store.h"

namespace ferry::kafka {
class Producer;
}

namespace ferry::d2c {

// Delivers routed messages through a Kafka producer (idempotent, acks=all):
// waits until every record is acknowledged, at most `timeout`.
class KafkaEndpointSink final : public EndpointSink {
 public:
  KafkaEndpointSink(kafka::Producer& producer, std::chrono::milliseconds timeout)
      : producer_(producer), timeout_(timeout) {}
  void Deliver(const std::vector<OutgoingRecord>& records) override;

 private:
  kafka::Producer& producer_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace ferry::d2c
