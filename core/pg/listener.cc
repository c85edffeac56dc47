#include "core/pg/listener.h"

#include <chrono>

#include <pqxx/pqxx>
#include <prometheus/counter.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/pg/pool.h"

namespace ferry::pg {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel,
           const std::vector<std::function<void(const std::string&)>>& callbacks,
           prometheus::Counter& counter)
      : pqxx::notification_receiver(conn, channel), callbacks_(callbacks), counter_(counter) {}

  void operator()(const std::string& payload, int) override {
    counter_.Increment();
    for (const auto& cb : callbacks_) cb(payload);
  }

 private:
  const std::vector<std::function<void(const std::string&)>>& callbacks_;
  prometheus::Counter& counter_;
};

}  // namespace

struct Listener::Session {
  std::unique_ptr<pqxx::connection> conn;
  std::vector<std::unique_ptr<Receiver>> receivers;  // declared after conn: destroyed first
};

Listener::Listener(Pool& pool, prometheus::Registry& registry)
    : pool_(pool),
      reconnects_(metrics::Counter(registry, "ferry_pg_listener_reconnects_total",
                                   "Times the LISTEN connection was (re)established.")),
      notifications_(metrics::Counter(registry, "ferry_pg_notifications_total",
                                      "PostgreSQL notifications received.")),
      worker_("pg listener", [this] { return Tick(); }) {}

Listener::~Listener() {
  Stop();
}

void Listener::Subscribe(const std::string& channel,
                         std::function<void(const std::string&)> on_notify) {
  subscribers_[channel].push_back(std::move(on_notify));
}

void Listener::OnResync(std::function<void()> resync) {
  resyncs_.push_back(std::move(resync));
}

void Listener::Start() {
  worker_.Start();
}

void Listener::Stop() {
  worker_.Stop();
  session_.reset();
  connected_ = false;
}

void Listener::Resync() {
  for (const auto& r : resyncs_) r();
}

std::chrono::milliseconds Listener::Tick() {
  static const auto logger = log::Get("pg");
  try {
    if (!session_) {
      auto session = std::make_unique<Session>();
      session->conn = pool_.OpenDedicated();
      for (const auto& [channel, callbacks] : subscribers_) {
        session->receivers.push_back(
            std::make_unique<Receiver>(*session->conn, channel, callbacks, notifications_));
      }
      // LISTEN takes effect with the next query; make sure it has.
      pqxx::nontransaction(*session->conn).exec("SELECT 1");
      session_ = std::move(session);
      connected_ = true;
      reconnects_.Increment();
      backoff_ = std::chrono::milliseconds(100);
      Resync();
    }
    session_->conn->await_notification(0, 200000);
    return std::chrono::milliseconds(0);
  } catch (const std::exception& e) {
    session_.reset();
    if (connected_.exchange(false)) {
      logger->warn("listen connection lost error=\"{}\"", e.what());
      Resync();
    }
    const auto wait = backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
    return wait;
  }
}

}  // namespace ferry::pg
