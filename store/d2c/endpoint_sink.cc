#include "store/d2c/endpoint_sink.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/kafka/producer.h"

namespace ferry::d2c {

void KafkaEndpointSink::Deliver(const std::vector<OutgoingRecord>& records) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t pending = 0;
    std::size_t failed = 0;
    std::string error;
  };
  auto shared = std::make_shared<Shared>();
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (const OutgoingRecord& r : records) {
    {
      std::lock_guard lock(shared->mutex);
      ++shared->pending;
    }
    auto done = [shared](const kafka::ProduceResult& result) {
      std::lock_guard lock(shared->mutex);
      --shared->pending;
      if (result.status != kafka::ProduceResult::Status::kAcknowledged) {
        ++shared->failed;
        if (shared->error.empty())
          shared->error = result.error.empty() ? "timed out" : result.error;
      }
      shared->cv.notify_all();
    };
    // A full local queue drains as acknowledgements arrive.
    while (!producer_.Send(r, deadline, done)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        std::lock_guard lock(shared->mutex);
        --shared->pending;
        ++shared->failed;
        shared->error = "local producer queue full";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::unique_lock lock(shared->mutex);
  shared->cv.wait(lock, [&] { return shared->pending == 0; });
  if (shared->failed > 0) {
    throw Error(Reason::kServiceUnavailable,
                "Kafka endpoint delivery failed for " + std::to_string(shared->failed) + " of " +
                    std::to_string(records.size()) + " records: " + shared->error);
  }
}

}  // namespace ferry::d2c
