#include "core/kafka/group_consumer.h"

#include <stdexcept>

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>

#include "core/kafka/rdkafka_handles.h"

namespace ferry::kafka {
namespace {

std::vector<std::int32_t> Numbers(const std::vector<RdKafka::TopicPartition*>& partitions) {
  std::vector<std::int32_t> out;
  out.reserve(partitions.size());
  for (const auto* tp : partitions) out.push_back(tp->partition());
  return out;
}

d2c::KafkaRecord ToRecord(RdKafka::Message& m) {
  d2c::KafkaRecord r;
  r.topic = m.topic_name();
  r.partition = m.partition();
  r.offset = m.offset();
  if (m.key() != nullptr) r.key = *m.key();
  if (m.payload() != nullptr) r.value.emplace(static_cast<const char*>(m.payload()), m.len());
  const RdKafka::MessageTimestamp ts = m.timestamp();
  if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
    r.timestamp_ms = ts.timestamp;
  }
  if (RdKafka::Headers* hs = m.headers()) {
    for (const RdKafka::Headers::Header& h : hs->get_all()) {
      d2c::KafkaHeader kh{h.key(), std::nullopt};
      if (h.value() != nullptr) {
        kh.value.emplace(static_cast<const char*>(h.value()), h.value_size());
      }
      r.headers.push_back(std::move(kh));
    }
  }
  return r;
}

}  // namespace

// The librdkafka handle and the callbacks it calls (on the poll thread).
struct GroupConsumer::Handle final : public RdKafka::RebalanceCb, public RdKafka::EventCb {
  Handle(std::string t, Listener& l, std::shared_ptr<spdlog::logger> log)
      : topic(std::move(t)), listener(l), logger(std::move(log)) {}

  std::string topic;
  Listener& listener;
  std::shared_ptr<spdlog::logger> logger;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  // Whether a rebalance has handed this consumer an assignment (even an
  // empty one) yet; see Close().
  bool assigned_once = false;

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) {
          logger->critical("kafka fatal error error=\"{}\"", event.str());
          listener.OnFatal(event.str());
        } else {
          logger->warn("kafka error code={} error=\"{}\"", RdKafka::err2str(event.err()),
                       event.str());
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        // Offset commits are informational (the checkpoint is in PostgreSQL)
        // and fail routinely during rebalances.
        if (event.fac() == "COMMITFAIL") {
          logger->debug("kafka offset commit failed message=\"{}\"", event.str());
        } else if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
          logger->warn("kafka log facility={} message=\"{}\"", event.fac(), event.str());
        }
        break;
      default:
        break;
    }
  }

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    logger->debug("rebalance event={} partitions={}", RdKafka::err2str(err), partitions.size());
    assigned_once = true;
    // Eager (Ferry's default) hands over the whole assignment each time;
    // cooperative only what changes. The listener's claims work either way.
    const bool cooperative = c->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      listener.OnRebalance("assign");
      if (cooperative) {
        if (const ErrorPtr e{c->incremental_assign(partitions)}) {
          logger->error("incremental_assign failed error=\"{}\"", e->str());
          return;
        }
      } else if (const RdKafka::ErrorCode e = c->assign(partitions); e != RdKafka::ERR_NO_ERROR) {
        logger->error("assign failed error=\"{}\"", RdKafka::err2str(e));
        return;
      }
      c->pause(partitions);
      listener.OnAssigned(Numbers(partitions));
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      const bool lost = c->assignment_lost();
      listener.OnRebalance(lost ? "lost" : "revoke");
      listener.OnRevoked(Numbers(partitions), lost);
      if (cooperative) {
        if (const ErrorPtr e{c->incremental_unassign(partitions)}) {
          logger->error("incremental_unassign failed error=\"{}\"", e->str());
        }
      } else if (const RdKafka::ErrorCode e = c->unassign(); e != RdKafka::ERR_NO_ERROR) {
        logger->error("unassign failed error=\"{}\"", RdKafka::err2str(e));
      }
    } else {
      logger->error("rebalance error error=\"{}\"", RdKafka::err2str(err));
    }
  }

  // Assigns `tp` again at its offset, the other partitions as placed.
  bool Reassign(const RdKafka::TopicPartition& tp,
                const std::function<d2c::Placement(std::int32_t)>& placement_of) {
    if (consumer->rebalance_protocol() == "COOPERATIVE") {
      TopicPartitions tps(tp.topic(), tp.partition(), tp.offset());
      // An unassign error changes nothing here: the assign below decides.
      (void)ErrorPtr{consumer->incremental_unassign(tps.get())};
      const ErrorPtr ae{consumer->incremental_assign(tps.get())};
      if (ae == nullptr) return true;
      logger->error("re-assign failed partition={} error=\"{}\"", tp.partition(), ae->str());
      return false;
    }
    // Eager: the whole assignment, with this partition's new offset; the
    // others that are consuming resume where the caller expects their next
    // record (librdkafka's position is unknown right after a seek,
    // librdkafka#3567, and would fall back to Kafka's committed offset,
    // which a checkpoint reset leaves behind); paused ones stay paused.
    TopicPartitions all;
    if (consumer->assignment(all.get()) != RdKafka::ERR_NO_ERROR) return false;
    consumer->position(all.get());
    std::vector<RdKafka::TopicPartition*> paused;  // points into `all`
    for (auto* a : all) {
      if (a->partition() == tp.partition()) {
        a->set_offset(tp.offset());
        continue;
      }
      const d2c::Placement placement = placement_of(a->partition());
      if (placement.offset) a->set_offset(*placement.offset);
      if (placement.paused) paused.push_back(a);
    }
    const RdKafka::ErrorCode e = consumer->assign(all.get());
    if (e == RdKafka::ERR_NO_ERROR && !paused.empty()) consumer->pause(paused);
    if (e == RdKafka::ERR_NO_ERROR) return true;
    logger->error("re-assign failed partition={} error=\"{}\"", tp.partition(),
                  RdKafka::err2str(e));
    return false;
  }
};

GroupConsumer::GroupConsumer(const std::vector<std::pair<std::string, std::string>>& properties,
                             std::string topic, Listener& listener,
                             std::shared_ptr<spdlog::logger> logger)
    : handle_(std::make_unique<Handle>(std::move(topic), listener, std::move(logger))) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : properties) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      throw std::runtime_error("kafka property " + k + ": " + err);
    }
  }
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(handle_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(handle_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    throw std::runtime_error("kafka callbacks: " + err);
  }
  handle_->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (handle_->consumer == nullptr) throw std::runtime_error("kafka consumer: " + err);
}

GroupConsumer::~GroupConsumer() {
  // A leaked handle's threads may still call back into handle_.
  if (leaked_) (void)handle_.release();
}

void GroupConsumer::Subscribe() {
  const RdKafka::ErrorCode e = handle_->consumer->subscribe({handle_->topic});
  if (e != RdKafka::ERR_NO_ERROR) throw std::runtime_error("subscribe: " + RdKafka::err2str(e));
}

void GroupConsumer::Poll(
    std::chrono::milliseconds timeout, int drain,
    const std::function<void(d2c::KafkaRecord)>& on_record,
    const std::function<void(std::int32_t, std::int64_t, const std::string&)>& on_out_of_range) {
  RdKafka::KafkaConsumer& c = *handle_->consumer;
  const std::unique_ptr<RdKafka::Message> m(c.consume(static_cast<int>(timeout.count())));
  if (m->err() == RdKafka::ERR_NO_ERROR) {
    on_record(ToRecord(*m));
    for (int i = 0; i < drain; ++i) {
      const std::unique_ptr<RdKafka::Message> more(c.consume(0));
      if (more->err() != RdKafka::ERR_NO_ERROR) break;
      on_record(ToRecord(*more));
    }
  } else if (m->err() == RdKafka::ERR__AUTO_OFFSET_RESET) {
    on_out_of_range(m->partition(), m->offset(), m->errstr());
  } else if (m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
    handle_->logger->warn("kafka consume error error=\"{}\"", m->errstr());
  }
}

void GroupConsumer::Pause(std::int32_t partition) {
  TopicPartitions tps(handle_->topic, partition);
  handle_->consumer->pause(tps.get());
}

void GroupConsumer::Resume(std::int32_t partition) {
  TopicPartitions tps(handle_->topic, partition);
  handle_->consumer->resume(tps.get());
}

bool GroupConsumer::StartAt(std::int32_t partition, std::int64_t offset,
                            const std::function<d2c::Placement(std::int32_t)>& placement_of) {
  TopicPartitions tp(handle_->topic, partition, offset);
  const RdKafka::ErrorCode e = handle_->consumer->seek(tp.front(), 5000);
  if (e != RdKafka::ERR_NO_ERROR) {
    // Not fetching yet: re-assign with the offset instead.
    handle_->logger->debug("seek failed, re-assigning partition={} error=\"{}\"", partition,
                           RdKafka::err2str(e));
    if (!handle_->Reassign(tp.front(), placement_of)) return false;
  }
  handle_->consumer->resume(tp.get());
  return true;
}

void GroupConsumer::Commit(std::int32_t partition, std::int64_t next_offset) {
  TopicPartitions tps(handle_->topic, partition, next_offset);
  handle_->consumer->commitAsync(tps.get());
}

std::optional<std::pair<std::int64_t, std::int64_t>> GroupConsumer::CachedWatermarks(
    std::int32_t partition) {
  std::int64_t low = 0;
  std::int64_t high = 0;
  if (handle_->consumer->get_watermark_offsets(handle_->topic, partition, &low, &high) !=
      RdKafka::ERR_NO_ERROR) {
    return std::nullopt;
  }
  return std::pair{low, high};
}

std::pair<std::int64_t, std::int64_t> GroupConsumer::QueryWatermarks(
    std::int32_t partition, std::chrono::milliseconds timeout) {
  std::int64_t low = -1;
  std::int64_t high = -1;
  const RdKafka::ErrorCode e = handle_->consumer->query_watermark_offsets(
      handle_->topic, partition, &low, &high, static_cast<int>(timeout.count()));
  if (e != RdKafka::ERR_NO_ERROR) throw std::runtime_error("watermarks: " + RdKafka::err2str(e));
  return {low, high};
}

std::int64_t GroupConsumer::OffsetForTime(std::int32_t partition, std::int64_t timestamp_ms,
                                          std::chrono::milliseconds timeout) {
  TopicPartitions tps(handle_->topic, partition, timestamp_ms);
  const RdKafka::ErrorCode e =
      handle_->consumer->offsetsForTimes(tps.get(), static_cast<int>(timeout.count()));
  const RdKafka::ErrorCode pe = tps.front().err();
  if (e != RdKafka::ERR_NO_ERROR || pe != RdKafka::ERR_NO_ERROR) {
    throw std::runtime_error("offsetsForTimes failed: " + RdKafka::err2str(e != 0 ? e : pe));
  }
  return tps.front().offset();
}

std::string GroupConsumer::RebalanceProtocol() const {
  return handle_->consumer->rebalance_protocol();
}

void GroupConsumer::Close(std::chrono::milliseconds first_assignment) {
  // The rebalance callback runs inside consume(); records cannot arrive
  // (new partitions start paused).
  const auto deadline = std::chrono::steady_clock::now() + first_assignment;
  while (!handle_->assigned_once && std::chrono::steady_clock::now() < deadline) {
    const std::unique_ptr<RdKafka::Message> ignored(handle_->consumer->consume(100));
  }
  handle_->consumer->close();
  leaked_ = !handle_->assigned_once;
}

}  // namespace ferry::kafka
