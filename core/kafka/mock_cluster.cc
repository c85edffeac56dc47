#include "core/kafka/mock_cluster.h"

#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace ferry::kafka {

struct MockCluster::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int brokers = 1;
  std::mutex mutex;

  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

MockCluster::MockCluster(int brokers) : impl_(std::make_unique<Impl>()) {
  impl_->brokers = brokers;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The hosting instance only keeps the cluster's books; keep it quiet.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (impl_->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("cannot create Kafka handle for the mock cluster: ") +
                             err);
  }
  impl_->cluster = rd_kafka_mock_cluster_new(impl_->rk, brokers);
  if (impl_->cluster == nullptr) throw std::runtime_error("cannot start the Kafka mock cluster");
}

MockCluster::~MockCluster() = default;

std::string MockCluster::bootstrap() const {
  return rd_kafka_mock_cluster_bootstraps(impl_->cluster);
}

void MockCluster::CreateTopic(const std::string& name, int partitions) {
  if (name.empty() || partitions < 1 || partitions > 10000) {
    throw std::invalid_argument("topic needs a name and 1 to 10000 partitions");
  }
  std::lock_guard lock(impl_->mutex);
  const rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(impl_->cluster, name.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::invalid_argument(std::string("cannot create topic: ") + rd_kafka_err2str(e));
  }
}

std::string MockCluster::Command(const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  auto need = [&](auto& value, const char* usage) {
    if (!(in >> value)) throw std::invalid_argument(std::string("usage: ") + usage);
  };
  auto broker = [&](const char* usage) {
    int id = 0;
    need(id, usage);
    if (id < 1 || id > impl_->brokers) {
      throw std::invalid_argument("broker ids are 1 to " + std::to_string(impl_->brokers));
    }
    return id;
  };
  if (verb == "topic") {
    std::string name;
    int partitions = 0;
    need(name, "topic NAME PARTITIONS");
    need(partitions, "topic NAME PARTITIONS");
    CreateTopic(name, partitions);
    return "ok topic " + name + " " + std::to_string(partitions);
  }
  if (verb == "bootstrap") return "ok " + bootstrap();
  std::lock_guard lock(impl_->mutex);
  if (verb == "down" || verb == "up") {
    const int id = broker("down|up BROKER");
    if (verb == "down") {
      rd_kafka_mock_broker_set_down(impl_->cluster, id);
    } else {
      rd_kafka_mock_broker_set_up(impl_->cluster, id);
    }
    return "ok " + verb + " " + std::to_string(id);
  }
  if (verb == "rtt") {
    const int id = broker("rtt BROKER MS");
    int ms = 0;
    need(ms, "rtt BROKER MS");
    rd_kafka_mock_broker_set_rtt(impl_->cluster, id, ms);
    return "ok rtt " + std::to_string(id) + " " + std::to_string(ms);
  }
  if (verb == "errors") {
    int api = 0, count = 0, code = 0;
    need(api, "errors APIKEY COUNT CODE");
    need(count, "errors APIKEY COUNT CODE");
    need(code, "errors APIKEY COUNT CODE");
    if (count < 1 || count > 100000) throw std::invalid_argument("COUNT is 1 to 100000");
    const std::vector<rd_kafka_resp_err_t> errors(static_cast<std::size_t>(count),
                                                  static_cast<rd_kafka_resp_err_t>(code));
    rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api),
                                            errors.size(), errors.data());
    return "ok errors " + std::to_string(api) + " " + std::to_string(count) + " " +
           rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code));
  }
  if (verb == "clear") {
    int api = 0;
    need(api, "clear APIKEY");
    rd_kafka_mock_clear_request_errors(impl_->cluster, static_cast<int16_t>(api));
    return "ok clear " + std::to_string(api);
  }
  throw std::invalid_argument("unknown command '" + verb +
                              "' (topic, down, up, rtt, errors, clear, bootstrap)");
}

}  // namespace ferry::kafka
