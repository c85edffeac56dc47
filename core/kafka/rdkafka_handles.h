#pragma once

// Owners for the librdkafka objects its C++ API hands out as raw pointers.
// Internal to the Kafka adapter: only ferry_kafka's sources include this
// header (no librdkafka type leaves core/kafka/).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

namespace ferry::kafka {

// An error object returned by librdkafka's incremental_(un)assign and
// friends; the caller owns it.
using ErrorPtr = std::unique_ptr<RdKafka::Error>;

// A list of topic partitions in the form librdkafka's list APIs take
// (assign, pause, seek, commitAsync, offsetsForTimes, ...), destroyed with
// the owner. Movable, not copyable.
class TopicPartitions final {
 public:
  TopicPartitions() = default;
  // One partition, its offset unset (librdkafka's OFFSET_INVALID).
  TopicPartitions(const std::string& topic, std::int32_t partition)
      : list_{RdKafka::TopicPartition::create(topic, partition)} {}
  // One partition at `offset` (absolute, logical, or a timestamp for
  // offsetsForTimes).
  TopicPartitions(const std::string& topic, std::int32_t partition, std::int64_t offset)
      : list_{RdKafka::TopicPartition::create(topic, partition, offset)} {}
  ~TopicPartitions() { RdKafka::TopicPartition::destroy(list_); }

  TopicPartitions(TopicPartitions&& other) noexcept : list_(std::move(other.list_)) {
    other.list_.clear();
  }
  TopicPartitions& operator=(TopicPartitions&& other) noexcept {
    if (this != &other) {
      RdKafka::TopicPartition::destroy(list_);
      list_ = std::move(other.list_);
      other.list_.clear();
    }
    return *this;
  }
  TopicPartitions(const TopicPartitions&) = delete;
  TopicPartitions& operator=(const TopicPartitions&) = delete;

  // For librdkafka's calls: they take the vector by reference, and some
  // (assignment, position) fill it; what they put in is owned here too.
  [[nodiscard]] std::vector<RdKafka::TopicPartition*>& get() { return list_; }
  [[nodiscard]] RdKafka::TopicPartition& front() { return *list_.front(); }
  [[nodiscard]] bool empty() const { return list_.empty(); }
  [[nodiscard]] auto begin() const { return list_.begin(); }
  [[nodiscard]] auto end() const { return list_.end(); }

 private:
  std::vector<RdKafka::TopicPartition*> list_;
};

}  // namespace ferry::kafka
