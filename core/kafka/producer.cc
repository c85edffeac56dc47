#include "core/kafka/producer.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <prometheus/counter.h>

#include "core/kafka/rdkafka_handles.h"
#include "core/log.h"
#include "core/metrics.h"

namespace ferry::kafka {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("kafka");
  return logger;
}

// The replicas of one topic as last checked.
struct ReplicaState {
  int min_isr = 1;
  std::chrono::steady_clock::time_point min_isr_read;
  std::vector<int> in_sync;  // by partition
};

// The topic's min.insync.replicas (DescribeConfigs); nullopt if Kafka did
// not say in time.
std::optional<int> MinInsyncReplicas(rd_kafka_t* rk, const std::string& topic,
                                     std::chrono::milliseconds timeout) {
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), err,
                                            sizeof err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &res, 1, options, q);
  std::optional<int> out;
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(timeout.count()) + 1000)) {
    if (const rd_kafka_DescribeConfigs_result_t* r = rd_kafka_event_DescribeConfigs_result(ev);
        r != nullptr && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::size_t n = 0;
      const rd_kafka_ConfigResource_t** resources =
          rd_kafka_DescribeConfigs_result_resources(r, &n);
      for (std::size_t i = 0; i < n; ++i) {
        if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        std::size_t m = 0;
        const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &m);
        for (std::size_t j = 0; j < m; ++j) {
          const char* value = rd_kafka_ConfigEntry_value(entries[j]);
          if (std::string_view(rd_kafka_ConfigEntry_name(entries[j])) == "min.insync.replicas" &&
              value != nullptr) {
            out = std::atoi(value);
          }
        }
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_ConfigResource_destroy(res);
  return out;
}

struct Pending {
  std::chrono::steady_clock::time_point deadline;
  std::function<void(const ProduceResult&)> done;
};

}  // namespace

struct Producer::Impl final : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
  std::string brokers;
  std::map<std::string, std::string> properties;
  prometheus::Family<prometheus::Counter>& produced;

  std::mutex mutex;  // guards producer (swap) and pending
  std::shared_ptr<RdKafka::Producer> producer;
  std::unordered_map<std::uint64_t, Pending> pending;
  std::uint64_t next_id = 1;
  std::atomic<bool> fatal{false};
  std::atomic<bool> stopping{false};
  std::thread poller;
  mutable std::mutex replicas_mutex;
  std::map<std::string, ReplicaState> replicas;  // by topic

  Impl(std::string b, std::map<std::string, std::string> p, prometheus::Registry& r)
      : brokers(std::move(b)),
        properties(std::move(p)),
        produced(metrics::CounterFamily(r, "ferry_kafka_produced_total",
                                        "Records produced to Kafka for callers, by result.")) {}

  std::unique_ptr<RdKafka::Producer> Create() {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::map<std::string, std::string> all = {{"bootstrap.servers", brokers},
                                              {"enable.idempotence", "true"},
                                              {"acks", "all"},
                                              {"partitioner", "murmur2_random"},
                                              {"linger.ms", "2"},
                                              {"queue.buffering.max.messages", "100000"}};
    for (const auto& [k, v] : properties) all[k] = v;
    for (const auto& [k, v] : all) {
      if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
        throw std::runtime_error("kafka property " + k + ": " + err);
      }
    }
    conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err);
    conf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    if (!p) throw std::runtime_error("kafka producer: " + err);
    return p;
  }

  void Complete(std::uint64_t id, const ProduceResult& result) {
    std::function<void(const ProduceResult&)> done;
    {
      std::lock_guard lock(mutex);
      const auto it = pending.find(id);
      if (it == pending.end()) return;  // timed out already
      done = std::move(it->second.done);
      pending.erase(it);
    }
    produced
        .Add({{"result", result.status == ProduceResult::Status::kAcknowledged ? "acknowledged"
                         : result.status == ProduceResult::Status::kTimedOut   ? "timed_out"
                                                                               : "failed"}})
        .Increment();
    done(result);
  }

  void dr_cb(RdKafka::Message& m) override {
    const auto id = reinterpret_cast<std::uintptr_t>(m.msg_opaque());
    ProduceResult r;
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      r.status = ProduceResult::Status::kAcknowledged;
      r.partition = m.partition();
      r.offset = m.offset();
    } else {
      r.status = ProduceResult::Status::kFailed;
      r.error = m.errstr();
    }
    Complete(id, r);
  }

  void event_cb(RdKafka::Event& e) override {
    if (e.type() == RdKafka::Event::EVENT_ERROR) {
      if (e.fatal()) {
        Logger()->critical("kafka producer fatal error, recreating error=\"{}\"", e.str());
        fatal = true;
      } else {
        Logger()->warn("kafka producer error error=\"{}\"", e.str());
      }
    }
  }

  void ExpireDeadlines() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::uint64_t> expired;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, p] : pending) {
        if (p.deadline <= now) expired.push_back(id);
      }
    }
    for (const auto id : expired) {
      Complete(id, {ProduceResult::Status::kTimedOut, -1, -1, "not acknowledged in time"});
    }
  }

  void Loop() {
    while (!stopping) {
      std::shared_ptr<RdKafka::Producer> p;
      {
        std::lock_guard lock(mutex);
        p = producer;
      }
      p->poll(50);
      ExpireDeadlines();
      if (fatal.exchange(false)) {
        std::shared_ptr<RdKafka::Producer> fresh;
        try {
          fresh = Create();
        } catch (const std::exception& e) {
          Logger()->critical("kafka producer could not be recreated, retrying error=\"{}\"",
                             e.what());
          fatal = true;
          std::this_thread::sleep_for(std::chrono::seconds(1));
          continue;
        }
        std::shared_ptr<RdKafka::Producer> old;
        {
          std::lock_guard lock(mutex);
          old = std::move(producer);
          producer = std::move(fresh);
        }
        old->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
        old->poll(0);  // delivers the purged sends' failures
      }
    }
  }
};

Producer::Producer(std::string brokers, std::map<std::string, std::string> properties,
                   prometheus::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(brokers), std::move(properties), registry)) {
  impl_->producer = impl_->Create();
  impl_->poller = std::thread([this] { impl_->Loop(); });
}

Producer::~Producer() {
  impl_->stopping = true;
  impl_->poller.join();
  impl_->producer->flush(5000);
  impl_->producer->poll(0);
  // Whatever is still unacknowledged completes too: every send completes once.
  std::vector<std::uint64_t> left;
  {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [id, p] : impl_->pending) left.push_back(id);
  }
  for (const auto id : left) {
    impl_->Complete(id, {ProduceResult::Status::kFailed, -1, -1, "producer shut down"});
  }
}

bool Producer::Reachable(std::chrono::milliseconds timeout) {
  std::shared_ptr<RdKafka::Producer> p;
  {
    std::lock_guard lock(impl_->mutex);
    p = impl_->producer;
  }
  RdKafka::Metadata* md = nullptr;
  const RdKafka::ErrorCode e = p->metadata(false, nullptr, &md, static_cast<int>(timeout.count()));
  delete md;
  return e == RdKafka::ERR_NO_ERROR;
}

std::optional<std::pair<std::int64_t, std::int64_t>> Producer::Watermarks(
    const std::string& topic, std::int32_t partition, std::chrono::milliseconds timeout) {
  std::shared_ptr<RdKafka::Producer> p;
  {
    std::lock_guard lock(impl_->mutex);
    p = impl_->producer;
  }
  std::int64_t low = 0, high = 0;
  if (p->query_watermark_offsets(topic, partition, &low, &high,
                                 static_cast<int>(timeout.count())) != RdKafka::ERR_NO_ERROR) {
    return std::nullopt;
  }
  return std::pair{low, high};
}

std::optional<std::int64_t> Producer::OffsetForTime(const std::string& topic,
                                                    std::int32_t partition,
                                                    std::int64_t timestamp_ms,
                                                    std::chrono::milliseconds timeout) {
  std::shared_ptr<RdKafka::Producer> p;
  {
    std::lock_guard lock(impl_->mutex);
    p = impl_->producer;
  }
  TopicPartitions tps(topic, partition, timestamp_ms);
  const RdKafka::ErrorCode e = p->offsetsForTimes(tps.get(), static_cast<int>(timeout.count()));
  const std::int64_t offset = tps.front().offset();
  const RdKafka::ErrorCode pe = tps.front().err();
  if (e != RdKafka::ERR_NO_ERROR || pe != RdKafka::ERR_NO_ERROR) return std::nullopt;
  return offset;
}

std::string Producer::CheckReplicas(const std::string& topic, std::chrono::milliseconds timeout) {
  std::shared_ptr<RdKafka::Producer> p;
  {
    std::lock_guard lock(impl_->mutex);
    p = impl_->producer;
  }
  ReplicaState state;
  {
    std::lock_guard lock(impl_->replicas_mutex);
    state = impl_->replicas[topic];
  }
  // The topic's setting changes rarely: read it once a minute.
  const auto now = std::chrono::steady_clock::now();
  if (now - state.min_isr_read > std::chrono::minutes(1)) {
    if (const auto min_isr = MinInsyncReplicas(p->c_ptr(), topic, timeout)) {
      state.min_isr = *min_isr;
      state.min_isr_read = now;
    }
  }
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(p.get(), topic, nullptr, err));
  RdKafka::Metadata* raw = nullptr;
  if (t == nullptr || p->metadata(false, t.get(), &raw, static_cast<int>(timeout.count())) !=
                          RdKafka::ERR_NO_ERROR) {
    delete raw;
    return "";
  }
  std::unique_ptr<RdKafka::Metadata> md(raw);
  std::vector<int> in_sync;
  for (const RdKafka::TopicMetadata* tm : *md->topics()) {
    if (tm->topic() != topic) continue;
    in_sync.assign(tm->partitions()->size(), 0);
    for (const RdKafka::PartitionMetadata* pm : *tm->partitions()) {
      if (pm->id() >= 0 && static_cast<std::size_t>(pm->id()) < in_sync.size()) {
        in_sync[static_cast<std::size_t>(pm->id())] = static_cast<int>(pm->isrs()->size());
      }
    }
  }
  state.in_sync = in_sync;
  std::string short_ones;
  int fewest = 0;
  for (std::size_t i = 0; i < in_sync.size(); ++i) {
    if (in_sync[i] >= state.min_isr) continue;
    fewest = short_ones.empty() ? in_sync[i] : std::min(fewest, in_sync[i]);
    short_ones += (short_ones.empty() ? "" : ",") + std::to_string(i);
  }
  {
    std::lock_guard lock(impl_->replicas_mutex);
    impl_->replicas[topic] = state;
  }
  if (short_ones.empty()) return "";
  return fmt::format(
      "Kafka topic {} partitions {} have {} in-sync replica(s), fewer than its min.insync.replicas "
      "{}: "
      "sends to them are refused",
      topic, short_ones, fewest, state.min_isr);
}

std::string Producer::Refusal(const std::string& topic, const std::string& key) const {
  std::lock_guard lock(impl_->replicas_mutex);
  const auto it = impl_->replicas.find(topic);
  if (it == impl_->replicas.end() || it->second.in_sync.empty()) return "";
  const auto& in_sync = it->second.in_sync;
  // The partitioner Ferry produces with (murmur2_random; keys are never empty here).
  const std::int32_t p = rd_kafka_msg_partitioner_murmur2_random(
      nullptr, key.data(), key.size(), static_cast<std::int32_t>(in_sync.size()), nullptr, nullptr);
  if (p < 0 || static_cast<std::size_t>(p) >= in_sync.size() || key.empty() ||
      in_sync[static_cast<std::size_t>(p)] >= it->second.min_isr) {
    return "";
  }
  return fmt::format(
      "Kafka partition {} of {} has {} in-sync replica(s), fewer than its min.insync.replicas {}: "
      "the event was not sent (retry later)",
      p, topic, in_sync[static_cast<std::size_t>(p)], it->second.min_isr);
}

bool Producer::Send(const OutgoingRecord& r, std::chrono::steady_clock::time_point deadline,
                    std::function<void(const ProduceResult&)> done) {
  std::unique_lock lock(impl_->mutex);
  const std::uint64_t id = impl_->next_id++;
  RdKafka::Headers* headers = RdKafka::Headers::create();
  for (const auto& [k, v] : r.headers) headers->add(k, v.data(), v.size());
  impl_->pending.emplace(id, Pending{deadline, std::move(done)});
  const RdKafka::ErrorCode e = impl_->producer->produce(
      r.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
      const_cast<char*>(r.value.data()), r.value.size(), r.key.data(), r.key.size(), r.timestamp_ms,
      headers, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
  if (e == RdKafka::ERR_NO_ERROR) return true;
  delete headers;
  auto node = impl_->pending.extract(id);
  if (e == RdKafka::ERR__QUEUE_FULL) {
    impl_->produced.Add({{"result", "queue_full"}}).Increment();
    return false;
  }
  // Any other immediate error completes the send as failed, on this thread.
  lock.unlock();
  impl_->produced.Add({{"result", "failed"}}).Increment();
  node.mapped().done({ProduceResult::Status::kFailed, -1, -1, RdKafka::err2str(e)});
  return true;
}

}  // namespace ferry::kafka
