#include "tests/support/kafka.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafkacpp.h>

namespace ferry::testing {

std::map<std::string, std::string> FastGroupTimers() {
  return {{"session.timeout.ms", "6000"},
          {"heartbeat.interval.ms", "500"},
          {"max.poll.interval.ms", "7000"},
          {"topic.metadata.refresh.interval.ms", "1000"}};
}

namespace {

class Counter final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      ++ok;
    } else {
      ++failed;
    }
  }
  std::atomic<int> ok{0}, failed{0};
};

Counter& Reports() {
  static Counter c;
  return c;
}

}  // namespace

TestProducer::TestProducer(const std::string& brokers, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"bootstrap.servers", brokers},
           {"enable.idempotence", "true"},
           {"acks", "all"},
           {"partitioner", "murmur2_random"},
           {"linger.ms", "5"},
           // A request to a broker that stopped answering (SIGSTOP) is given
           // up after 5 s and retried on the partition's new leader, not
           // after librdkafka's 30 s default (idempotence keeps the retry
           // from doubling a record). The record's own bound is `timeout`.
           {"request.timeout.ms", "5000"},
           {"message.timeout.ms", std::to_string(timeout.count())}}) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) throw std::runtime_error(err);
  }
  conf->set("dr_cb", &Reports(), err);
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) throw std::runtime_error(err);
}

TestProducer::~TestProducer() {
  producer_->flush(10000);
}

void TestProducer::Send(const std::string& topic, const std::vector<TestRecord>& records) {
  const int ok_before = Reports().ok.load();
  const int failed_before = Reports().failed.load();
  for (const TestRecord& r : records) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    for (const auto& [name, value] : r.headers) {
      if (value) {
        headers->add(name, value->data(), value->size());
      } else {
        headers->add(name, nullptr, 0);
      }
    }
    for (;;) {
      const RdKafka::ErrorCode e = producer_->produce(
          topic, r.partition < 0 ? RdKafka::Topic::PARTITION_UA : r.partition,
          RdKafka::Producer::RK_MSG_COPY, r.value ? const_cast<char*>(r.value->data()) : nullptr,
          r.value ? r.value->size() : 0, r.key ? r.key->data() : nullptr, r.key ? r.key->size() : 0,
          r.timestamp_ms.value_or(0), headers, nullptr);
      if (e == RdKafka::ERR_NO_ERROR) break;
      if (e != RdKafka::ERR__QUEUE_FULL) {
        delete headers;
        throw std::runtime_error("produce: " + RdKafka::err2str(e));
      }
      producer_->poll(10);
    }
  }
  if (producer_->flush(static_cast<int>(timeout_.count()) + 5000) != RdKafka::ERR_NO_ERROR) {
    throw std::runtime_error("flush timed out");
  }
  const int failed = Reports().failed.load() - failed_before;
  const int ok = Reports().ok.load() - ok_before;
  if (failed != 0 || ok < static_cast<int>(records.size())) {
    throw std::runtime_error("not every record was acknowledged: ok " + std::to_string(ok) +
                             ", failed " + std::to_string(failed));
  }
}

std::vector<TestRecord> ReadTopic(const std::string& brokers, const std::string& topic,
                                  int partitions, std::size_t expected,
                                  std::chrono::milliseconds timeout,
                                  std::chrono::milliseconds settle) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, err);
  conf->set("group.id", "ferry-test-reader", err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("enable.partition.eof", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) throw std::runtime_error("test reader: " + err);
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < partitions; ++p) {
    tps.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  consumer->assign(tps);
  RdKafka::TopicPartition::destroy(tps);
  std::vector<TestRecord> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool settling = false;
  // The end of each partition's log, once `expected` records are there.
  std::vector<std::int64_t> end(static_cast<std::size_t>(partitions), -1), next(end.size(), 0);
  const auto read_to_end = [&] {
    for (std::size_t p = 0; p < end.size(); ++p) {
      if (end[p] < 0) {
        std::int64_t low = 0, high = 0;
        if (consumer->query_watermark_offsets(topic, static_cast<std::int32_t>(p), &low, &high,
                                              5000) != RdKafka::ERR_NO_ERROR) {
          return false;
        }
        end[p] = high;
      }
      if (next[p] < end[p]) return false;
    }
    return true;
  };
  while (std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      next[static_cast<std::size_t>(m->partition())] = m->offset() + 1;
      TestRecord r;
      if (m->key() != nullptr) r.key = *m->key();
      if (m->payload() != nullptr)
        r.value.emplace(static_cast<const char*>(m->payload()), m->len());
      r.partition = m->partition();
      r.timestamp_ms = m->timestamp().timestamp;
      if (RdKafka::Headers* hs = m->headers()) {
        for (const auto& h : hs->get_all()) {
          std::optional<std::string> v;
          if (h.value() != nullptr) v.emplace(static_cast<const char*>(h.value()), h.value_size());
          r.headers.emplace_back(h.key(), v);
        }
      }
      out.push_back(std::move(r));
    }
    if (!settling && out.size() >= expected && read_to_end()) {
      settling = true;
      deadline = std::chrono::steady_clock::now() + settle;
    }
  }
  consumer->close();
  return out;
}

}  // namespace ferry::testing
