#include "services/c2d/c2d_service.h"

#include <condition_variable>
#include <mutex>

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/c2d/feedback.h"
#include "services/c2d/polling_reactor.h"
#include "services/registry/device_rules.h"
#include "services/rpc/proto_time.h"

namespace ferry::c2d {
namespace {

constexpr std::string_view kService = "ferry.v1.CloudToDevice";
constexpr std::string_view kDeviceService = "ferry.v1.DeviceMessaging";

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("c2d");
  return logger;
}

Ack AckFromProto(v1::AckMode a) {
  switch (a) {
    case v1::ACK_MODE_POSITIVE:
      return Ack::kPositive;
    case v1::ACK_MODE_NEGATIVE:
      return Ack::kNegative;
    case v1::ACK_MODE_FULL:
      return Ack::kFull;
    default:
      return Ack::kNone;
  }
}

v1::AckMode AckToProto(Ack a) {
  switch (a) {
    case Ack::kNone:
      return v1::ACK_MODE_NONE;
    case Ack::kPositive:
      return v1::ACK_MODE_POSITIVE;
    case Ack::kNegative:
      return v1::ACK_MODE_NEGATIVE;
    case Ack::kFull:
      return v1::ACK_MODE_FULL;
  }
  return v1::ACK_MODE_NONE;
}

v1::C2dState StateToProto(State s) {
  switch (s) {
    case State::kEnqueued:
      return v1::C2D_STATE_ENQUEUED;
    case State::kInvisible:
      return v1::C2D_STATE_INVISIBLE;
    case State::kCompleted:
      return v1::C2D_STATE_COMPLETED;
    case State::kDeadLettered:
      return v1::C2D_STATE_DEAD_LETTERED;
    case State::kPurged:
      return v1::C2D_STATE_PURGED;
  }
  return v1::C2D_STATE_UNSPECIFIED;
}

void EncodeState(const StoredMessage& m, v1::C2dMessageState* out) {
  out->set_device_id(m.device_id);
  out->set_sequence_number(m.sequence_number);
  out->set_message_id(m.message_id);
  out->set_correlation_id(m.correlation_id.value_or(""));
  out->set_state(StateToProto(m.lifecycle.state));
  out->set_delivery_count(m.lifecycle.delivery_count);
  if (m.lifecycle.state == State::kInvisible && m.lifecycle.lock_until) {
    *out->mutable_lock_until() = rpc::ToProtoTime(*m.lifecycle.lock_until);
  }
  *out->mutable_enqueued_time() = rpc::ToProtoTime(m.enqueued_at);
  *out->mutable_expiry_time() = rpc::ToProtoTime(m.lifecycle.expires_at);
  out->set_outcome(std::string(OutcomeName(m.lifecycle.outcome)));
  if (m.lifecycle.outcome_at)
    *out->mutable_outcome_time() = rpc::ToProtoTime(*m.lifecycle.outcome_at);
  out->set_ack(AckToProto(m.ack));
  if (m.first_delivered_at)
    *out->mutable_first_delivered_time() = rpc::ToProtoTime(*m.first_delivered_at);
}

std::size_t PageSize(int requested) {
  if (requested < 0 || requested > 1000)
    throw Error(Reason::kArgumentInvalid, "page_size must be 0 (100) to 1000");
  return requested == 0 ? 100 : static_cast<std::size_t>(requested);
}

WakeHub::Clock::time_point SteadyAt(TimePoint at, TimePoint now) {
  return WakeHub::Clock::now() + std::chrono::duration_cast<WakeHub::Clock::duration>(at - now);
}

}  // namespace

Metrics::Metrics(prometheus::Registry& r)
    : sent(metrics::Counter(r, "ferry_c2d_sent_total", "C2D messages enqueued.")),
      duplicates(
          metrics::Counter(r, "ferry_c2d_duplicates_total",
                           "C2D sends answered with an existing message (same message id).")),
      delivered(metrics::Counter(
          r, "ferry_c2d_delivered_total",
          "C2D messages locked for a device (each receive, redeliveries included).")),
      completed(metrics::Counter(r, "ferry_c2d_completed_total", "C2D messages completed.")),
      abandoned(metrics::Counter(r, "ferry_c2d_abandoned_total", "C2D abandons.")),
      rejected(metrics::Counter(r, "ferry_c2d_rejected_total", "C2D messages rejected.")),
      dead_lettered(metrics::CounterFamily(r, "ferry_c2d_dead_lettered_total",
                                           "C2D messages dead-lettered, by reason (Rejected, "
                                           "DeliveryCountExceeded, Expired).")),
      purged(metrics::Counter(r, "ferry_c2d_purged_total", "C2D messages purged.")),
      queue_full(metrics::Counter(r, "ferry_c2d_queue_full_total",
                                  "C2D sends refused with DeviceMaximumQueueDepthExceeded.")),
      lock_lost(metrics::Counter(r, "ferry_c2d_lock_lost_total",
                                 "Settlements refused with DeviceMessageLockLost.")),
      pending(
          metrics::Gauge(r, "ferry_c2d_pending_messages",
                         "Unexpired Enqueued and Invisible C2D messages, all devices (refreshed "
                         "every 15 s).")),
      devices_at_limit(metrics::Gauge(
          r, "ferry_c2d_devices_at_queue_limit",
          "Devices whose pending messages reach the queue depth (refreshed every 15 s).")),
      waiting(metrics::Gauge(
          r, "ferry_c2d_receive_waiting",
          "Receive calls and Subscribe streams waiting for a message on this replica.")),
      first_delivery_seconds(metrics::Histogram(
          r, "ferry_c2d_send_to_first_delivery_seconds",
          "Time from enqueue to a message's first delivery.",
          prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                  5, 10, 30, 60, 300})) {}

OutgoingMessage ValidateSend(const v1::SendC2dRequest& req, TimePoint now,
                             std::chrono::seconds default_ttl) {
  const v1::C2dMessage& m = req.message();
  SendRequest r;
  r.device_id = req.device_id();
  r.message_id = m.message_id();
  r.correlation_id = m.correlation_id();
  r.user_id = m.user_id();
  r.ack = AckFromProto(m.ack());
  if (m.has_ttl()) r.ttl = rpc::FromProtoDuration(m.ttl(), "ttl");
  if (m.has_expiry_time()) r.expiry_time = rpc::FromProtoTime(m.expiry_time(), "expiry_time");
  r.content_type = m.content_type();
  r.content_encoding = m.content_encoding();
  r.properties.assign(m.properties().begin(), m.properties().end());
  r.body = m.body();
  return c2d::ValidateSend(r, now, default_ttl, [] { return registry::NewEtag(); });
}

CloudToDeviceService::CloudToDeviceService(rpc::RpcRuntime& runtime, Store& store,
                                           const Clock& clock, Metrics& metrics,
                                           FeedbackMetrics& feedback_metrics,
                                           std::chrono::seconds default_ttl)
    : runtime_(runtime),
      store_(store),
      clock_(clock),
      metrics_(metrics),
      feedback_metrics_(feedback_metrics),
      default_ttl_(default_ttl),
      gauges_(
          "c2d queue statistics",
          [this] {
            const QueueStats s = store_.Stats(clock_.Now());
            metrics_.pending.Set(static_cast<double>(s.pending));
            metrics_.devices_at_limit.Set(static_cast<double>(s.devices_at_limit));
            return std::chrono::milliseconds(std::chrono::seconds(15));
          },
          std::chrono::seconds(15)) {
  gauges_.Start();
}

CloudToDeviceService::~CloudToDeviceService() {
  gauges_.Stop();
}

grpc::ServerUnaryReactor* CloudToDeviceService::Send(grpc::CallbackServerContext* ctx,
                                                     const v1::SendC2dRequest* request,
                                                     v1::SendC2dResponse* response) {
  return runtime_.Unary(
      ctx, kService, "Send", request, response,
      [this](const rpc::Caller&, const v1::SendC2dRequest& req, v1::SendC2dResponse& resp) {
        const TimePoint now = clock_.Now();
        const OutgoingMessage m = ValidateSend(req, now, default_ttl_);
        SendResult r;
        try {
          r = store_.Send(m, now);
        } catch (const Error& e) {
          if (e.reason() == Reason::kDeviceMaximumQueueDepthExceeded)
            metrics_.queue_full.Increment();
          throw;
        }
        (r.duplicate ? metrics_.duplicates : metrics_.sent).Increment();
        resp.set_sequence_number(r.message.sequence_number);
        resp.set_message_id(r.message.message_id);
        *resp.mutable_enqueued_time() = rpc::ToProtoTime(r.message.enqueued_at);
        resp.set_duplicate(r.duplicate);
      });
}

grpc::ServerUnaryReactor* CloudToDeviceService::PurgeQueue(grpc::CallbackServerContext* ctx,
                                                           const v1::PurgeQueueRequest* request,
                                                           v1::PurgeQueueResponse* response) {
  return runtime_.Unary(ctx, kService, "PurgeQueue", request, response,
                        [this](const rpc::Caller& caller, const v1::PurgeQueueRequest& req,
                               v1::PurgeQueueResponse& resp) {
                          registry::ValidateDeviceId(req.device_id());
                          const auto audit = audit::For(caller, "c2d.purge", req.device_id());
                          const PurgeResult purged =
                              store_.Purge(req.device_id(), clock_.Now(), &audit);
                          feedback_metrics_.CountWritten(purged.feedback);
                          const std::int64_t n = purged.purged;
                          metrics_.purged.Increment(static_cast<double>(n));
                          resp.set_device_id(req.device_id());
                          resp.set_total_messages_purged(n);
                          Logger()->info("queue purged device=\"{}\" purged={} by=\"{}\"",
                                         req.device_id(), n, caller.principal);
                        });
}

grpc::ServerUnaryReactor* CloudToDeviceService::GetMessage(grpc::CallbackServerContext* ctx,
                                                           const v1::GetC2dMessageRequest* request,
                                                           v1::C2dMessageState* response) {
  return runtime_.Unary(
      ctx, kService, "GetMessage", request, response,
      [this](const rpc::Caller&, const v1::GetC2dMessageRequest& req, v1::C2dMessageState& resp) {
        registry::ValidateDeviceId(req.device_id());
        if (req.message_id().empty() == (req.sequence_number() == 0)) {
          throw Error(Reason::kArgumentInvalid, "give a message_id or a sequence_number");
        }
        std::optional<std::string> id;
        std::optional<std::int64_t> seq;
        if (!req.message_id().empty()) id = req.message_id();
        if (req.sequence_number() != 0) seq = req.sequence_number();
        EncodeState(store_.Get(req.device_id(), id, seq), &resp);
      });
}

grpc::ServerUnaryReactor* CloudToDeviceService::ListQueue(grpc::CallbackServerContext* ctx,
                                                          const v1::ListQueueRequest* request,
                                                          v1::ListQueueResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListQueue", request, response,
      [this](const rpc::Caller&, const v1::ListQueueRequest& req, v1::ListQueueResponse& resp) {
        registry::ValidateDeviceId(req.device_id());
        const std::size_t limit = PageSize(req.page_size());
        std::int64_t after = 0;
        if (!req.page_token().empty()) {
          try {
            after = std::stoll(req.page_token());
          } catch (const std::exception&) {
            throw Error(Reason::kArgumentInvalid, "page_token is not a token from Ferry");
          }
        }
        const auto messages = store_.List(req.device_id(), req.include_finished(), after, limit);
        for (const auto& m : messages) EncodeState(m, resp.add_messages());
        if (messages.size() == limit)
          resp.set_next_page_token(std::to_string(messages.back().sequence_number));
      });
}

void EncodeReceived(const StoredMessage& m, v1::ReceivedMessage* out) {
  out->set_lock_token(m.lifecycle.lock_token);
  out->set_sequence_number(m.sequence_number);
  out->set_message_id(m.message_id);
  out->set_correlation_id(m.correlation_id.value_or(""));
  out->set_user_id(m.user_id.value_or(""));
  out->set_delivery_count(m.lifecycle.delivery_count);
  *out->mutable_enqueued_time() = rpc::ToProtoTime(m.enqueued_at);
  *out->mutable_expiry_time() = rpc::ToProtoTime(m.lifecycle.expires_at);
  out->set_content_type(m.content_type.value_or(""));
  out->set_content_encoding(m.content_encoding.value_or(""));
  for (const auto& [k, v] : m.properties) (*out->mutable_properties())[k] = v;
  out->set_body(m.body);
  out->set_to("/devices/" + m.device_id + "/messages/devicebound");
  out->set_ack(std::string(AckName(m.ack)));
  if (m.lifecycle.lock_until)
    *out->mutable_lock_until() = rpc::ToProtoTime(*m.lifecycle.lock_until);
}

// ---- Device side ----

struct DeviceC2d::Waiter {
  std::string device_id;
  WakeHub::Clock::time_point deadline;
  grpc::CallbackServerContext* ctx = nullptr;
  v1::ReceiveResponse* response = nullptr;
  rpc::RpcRuntime::Finish finish;
  Metrics* metrics = nullptr;
  std::mutex attempt;  // one attempt at a time
  std::atomic<bool> finished{false};
  std::atomic<std::uint64_t> watch{0};  // the current wake-up, if any

  void End(const std::optional<Error>& error) {
    if (finished.exchange(true)) return;
    metrics->waiting.Decrement();
    finish(error);
  }
};

void DeviceC2d::Delivered(const StoredMessage& m) {
  metrics_.delivered.Increment();
  if (m.first_delivered_at && m.lifecycle.lock_until &&
      *m.first_delivered_at == *m.lifecycle.lock_until - store_.limits().lock) {
    metrics_.first_delivery_seconds.Observe(
        std::chrono::duration<double>(*m.first_delivered_at - m.enqueued_at).count());
  }
}

void DeviceC2d::Attempt(const std::shared_ptr<Waiter>& w) {
  std::lock_guard guard(w->attempt);
  if (w->finished) return;
  if (w->ctx->IsCancelled()) {
    w->End(std::nullopt);
    return;
  }
  // Watch before looking, so that a send committed meanwhile still wakes us.
  const std::uint64_t watch = hub_.Watch(w->device_id, w->deadline, [this, w](WakeHub::Why why) {
    w->watch = 0;
    if (why == WakeHub::Why::kShutdown) {
      w->End(std::nullopt);
      return;
    }
    try {
      executor_.Post([this, w] { Attempt(w); });
    } catch (const std::exception&) {
      w->End(Error(Reason::kServiceUnavailable, "shutting down"));
    }
  });
  const TimePoint now = clock_.Now();
  ReceiveResult r;
  try {
    r = store_.Receive(w->device_id, now);
  } catch (const Error& e) {
    hub_.Cancel(watch);
    w->End(e);
    return;
  } catch (const std::exception& e) {
    hub_.Cancel(watch);
    Logger()->warn("receive failed device=\"{}\" error=\"{}\"", w->device_id, e.what());
    w->End(Error(Reason::kServiceUnavailable, "the database is unavailable"));
    return;
  }
  if (r.message) {
    hub_.Cancel(watch);
    EncodeReceived(*r.message, w->response->mutable_message());
    Delivered(*r.message);
    w->End(std::nullopt);
    return;
  }
  if (WakeHub::Clock::now() >= w->deadline) {
    hub_.Cancel(watch);
    w->End(std::nullopt);
    return;
  }
  // A lock that lapses before the deadline makes its message deliverable
  // without any notification.
  if (r.next_lapse) hub_.WakeBy(watch, SteadyAt(*r.next_lapse, now));
  w->watch = watch;
}

grpc::ServerUnaryReactor* DeviceC2d::Receive(grpc::CallbackServerContext* ctx,
                                             const v1::ReceiveRequest* request,
                                             v1::ReceiveResponse* response) {
  return runtime_.UnaryWaiting(
      ctx, kDeviceService, "Receive", request, response,
      [this, ctx](const rpc::Caller&, const v1::ReceiveRequest& req, v1::ReceiveResponse& resp,
                  rpc::RpcRuntime::Finish finish, rpc::CancellableReactor& reactor) {
        registry::ValidateDeviceId(req.device_id());
        const auto wait = rpc::FromProtoDuration(req.wait(), "wait");
        if (wait < std::chrono::microseconds(0) || wait > kMaxReceiveWait) {
          throw Error(Reason::kArgumentInvalid, "wait must be 0 to 120 seconds");
        }
        auto w = std::make_shared<Waiter>();
        w->device_id = req.device_id();
        w->deadline = WakeHub::Clock::now() + wait;
        w->ctx = ctx;
        w->response = &resp;
        w->finish = std::move(finish);
        w->metrics = &metrics_;
        metrics_.waiting.Increment();
        // A cancelled wait ends now: its wake-up goes, and the call finishes.
        reactor.SetOnCancel([this, w] {
          std::lock_guard guard(w->attempt);
          if (const std::uint64_t id = w->watch.exchange(0); id != 0) hub_.Cancel(id);
          w->End(std::nullopt);
        });
        Attempt(w);
      });
}

grpc::ServerUnaryReactor* DeviceC2d::Settle(grpc::CallbackServerContext* ctx,
                                            std::string_view method,
                                            const v1::SettleRequest* request,
                                            v1::SettleResponse* response) {
  const Settlement kind = method == "Complete"  ? Settlement::kComplete
                          : method == "Abandon" ? Settlement::kAbandon
                                                : Settlement::kReject;
  return runtime_.Unary(
      ctx, kDeviceService, method, request, response,
      [this, kind](const rpc::Caller&, const v1::SettleRequest& req, v1::SettleResponse&) {
        registry::ValidateDeviceId(req.device_id());
        if (req.lock_token().empty() || req.lock_token().size() > 64) {
          throw Error(Reason::kArgumentInvalid, "lock_token is required (as received)");
        }
        SettleResult r;
        try {
          r = store_.Settle(req.device_id(), req.lock_token(), kind, clock_.Now());
        } catch (const Error& e) {
          if (e.reason() == Reason::kDeviceMessageLockLost) metrics_.lock_lost.Increment();
          throw;
        }
        feedback_metrics_.CountWritten(r.feedback);
        if (r.repeated) return;
        switch (kind) {
          case Settlement::kComplete:
            metrics_.completed.Increment();
            break;
          case Settlement::kAbandon:
            metrics_.abandoned.Increment();
            break;
          case Settlement::kReject:
            metrics_.rejected.Increment();
            break;
        }
        if (r.message.lifecycle.state == State::kDeadLettered) {
          metrics_.dead_lettered
              .Add({{"reason", std::string(OutcomeName(r.message.lifecycle.outcome))}})
              .Increment();
        }
      });
}

// One Subscribe stream: each deliverable message is locked and sent; at
// most max_in_flight unsettled at once.
class DeviceC2d::SubscribeReactor final : public PollingWriteReactor<v1::ReceivedMessage> {
 public:
  SubscribeReactor(DeviceC2d& owner, grpc::CallbackServerContext* ctx,
                   const v1::SubscribeRequest& request)
      : PollingWriteReactor(owner.hub_, owner.executor_, request.device_id()),
        owner_(owner),
        ctx_(ctx),
        request_(request),
        device_id_(request.device_id()),
        max_in_flight_(request.max_in_flight()),
        started_(std::chrono::steady_clock::now()) {
    owner_.metrics_.waiting.Increment();
    Start();
  }
  ~SubscribeReactor() override { owner_.metrics_.waiting.Decrement(); }

 private:
  std::optional<WakeHub::Clock::time_point> Poll(v1::ReceivedMessage& out) override {
    if (!authorized_) {
      owner_.runtime_.AuthorizeStream(ctx_, kDeviceService, "Subscribe", request_, device_id_);
      registry::ValidateDeviceId(device_id_);
      if (max_in_flight_ < 0 || max_in_flight_ > 50) {
        throw Error(Reason::kArgumentInvalid, "max_in_flight must be 0 (10) to 50");
      }
      if (max_in_flight_ == 0) max_in_flight_ = 10;
      authorized_ = true;
      Logger()->info("subscribe stream opened device=\"{}\" max_in_flight={}", device_id_,
                     max_in_flight_);
    }
    const TimePoint now = owner_.clock_.Now();
    if (static_cast<int>(tokens_.size()) >= max_in_flight_) {
      // At the bound: forget the tokens that no longer hold a lock (settled
      // or lapsed), or look again in a second.
      std::vector<std::string> still;
      for (const auto& t : tokens_) {
        if (owner_.store_.CountLocked(device_id_, {t}, now) > 0) still.push_back(t);
      }
      tokens_ = std::move(still);
      if (static_cast<int>(tokens_.size()) >= max_in_flight_)
        return WakeHub::Clock::now() + std::chrono::seconds(1);
    }
    const ReceiveResult r = owner_.store_.Receive(device_id_, now);
    if (r.message) {
      tokens_.push_back(r.message->lifecycle.lock_token);
      EncodeReceived(*r.message, &out);
      owner_.Delivered(*r.message);
      return std::nullopt;
    }
    // Nothing now: a notification, the next lock lapse, or the 30 s safety
    // poll, whichever comes first.
    auto at = WakeHub::Clock::now() + std::chrono::seconds(30);
    if (r.next_lapse) at = std::min(at, SteadyAt(*r.next_lapse, now));
    return at;
  }

  grpc::Status Status(const std::optional<Error>& error) override {
    return owner_.runtime_.EndStream(ctx_, kDeviceService, "Subscribe", started_, error);
  }

  DeviceC2d& owner_;
  grpc::CallbackServerContext* ctx_;
  const v1::SubscribeRequest request_;
  const std::string device_id_;
  int max_in_flight_;
  const std::chrono::steady_clock::time_point started_;
  bool authorized_ = false;
  std::vector<std::string> tokens_;
};

grpc::ServerWriteReactor<v1::ReceivedMessage>* DeviceC2d::Subscribe(
    grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* request) {
  return new SubscribeReactor(*this, ctx, *request);
}

}  // namespace ferry::c2d
