#include "services/events/events_service.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/kafka/producer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/rpc/proto_time.h"
#include "store/d2c/event_reader.h"
#include "store/d2c/event_store.h"

namespace ferry::events {
namespace {

constexpr std::string_view kService = "ferry.v1.Events";
constexpr std::chrono::milliseconds kKafkaTimeout{3000};
constexpr std::chrono::milliseconds kTailPoll{250};
constexpr std::size_t kTailBatch = 500;

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("events");
  return logger;
}

std::size_t PageSize(int requested) {
  if (requested < 0 || requested > 1000) {
    throw Error(Reason::kArgumentInvalid, "page_size must be 0 (meaning 100) to 1000");
  }
  return requested == 0 ? 100 : static_cast<std::size_t>(requested);
}

std::optional<d2c::Position> ParsePosition(const std::string& text, std::string_view field) {
  if (text.empty()) return std::nullopt;
  auto p = d2c::Position::Parse(text);
  if (!p)
    throw Error(Reason::kArgumentInvalid, fmt::format("{} is not a position from Ferry", field));
  return p;
}

void Encode(const d2c::StoredEvent& stored, v1::StoredEvent* out) {
  const d2c::Event& e = stored.event;
  out->set_device_id(e.device_id);
  out->set_topic(stored.topic);
  out->set_partition(stored.partition);
  out->set_offset(stored.offset);
  *out->mutable_enqueued_time() = rpc::ToProtoTime(e.enqueued_time);
  out->set_message_id(e.message_id.value_or(""));
  out->set_correlation_id(e.correlation_id.value_or(""));
  out->set_content_type(e.content_type.value_or(""));
  out->set_content_encoding(e.content_encoding.value_or(""));
  if (e.creation_time) *out->mutable_creation_time() = rpc::ToProtoTime(*e.creation_time);
  for (const auto& [k, v] : e.system_properties) (*out->mutable_system_properties())[k] = v;
  for (const auto& [k, v] : e.application_properties) (*out->mutable_properties())[k] = v;
  out->set_body(e.body);
  *out->mutable_landed_time() = rpc::ToProtoTime(stored.landed_at);
  out->set_position(stored.position.ToString());
}

void Encode(const std::string& group, const d2c::CheckpointRow& c, std::int64_t lag,
            v1::Checkpoint* out) {
  out->set_consumer_group(group);
  out->set_topic(c.topic);
  out->set_partition(c.partition);
  out->set_owner(c.owner);
  out->set_epoch(c.epoch);
  out->set_next_offset(c.next_offset.value_or(-1));
  out->set_high_offset(c.high_offset.value_or(c.next_offset.value_or(-1)));
  out->set_lag(lag);
  *out->mutable_last_commit_time() = rpc::ToProtoTime(c.updated_at);
  *out->mutable_claimed_time() = rpc::ToProtoTime(c.claimed_at);
  out->set_dropped(c.dropped);
  out->set_routed_elsewhere(c.routed_elsewhere);
  out->set_replay_skipped(c.replay_skipped);
  out->set_route_version(c.route_version.value_or(0));
  out->set_lost(c.lost);
}

std::optional<std::pair<std::int32_t, std::int64_t>> ParseDeadLetterToken(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::int32_t p = 0;
  long long o = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d.%lld%c", &p, &o, &tail) != 2) {
    throw Error(Reason::kArgumentInvalid, "page_token is not a token from Ferry");
  }
  return std::pair{p, static_cast<std::int64_t>(o)};
}

}  // namespace

// One TailEvents stream: a thread that polls in landing order and writes a
// batch at a time, waiting for each write before the next.
class EventsService::TailReactor final : public grpc::ServerWriteReactor<v1::TailEventsResponse> {
 public:
  TailReactor(EventsService& service, grpc::CallbackServerContext* ctx,
              const v1::TailEventsRequest* request)
      : service_(service),
        ctx_(ctx),
        request_(*request),
        started_(std::chrono::steady_clock::now()) {
    service_.tail_streams_.Increment();
    thread_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }

  void OnCancel() override {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    cv_.notify_all();
  }

  void OnDone() override {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
    service_.tail_streams_.Decrement();
    --service_.open_tails_;
    delete this;
  }

 private:
  void Run() {
    std::optional<Error> error;
    try {
      const rpc::Caller caller =
          service_.runtime_.AuthorizeStream(ctx_, kService, "TailEvents", request_, std::nullopt);
      d2c::EventQuery q;
      q.group = service_.Group(request_.consumer_group());
      if (!request_.device_id().empty()) q.device_id = request_.device_id();
      q.after = ParsePosition(request_.position(), "position");
      if (!q.after) q.after = service_.reader_.Now();
      q.limit = kTailBatch;
      Logger()->info("tail stream opened group=\"{}\" device=\"{}\" from={} by=\"{}\"", q.group,
                     request_.device_id(), q.after->ToString(), caller.principal);
      while (!Cancelled()) {
        const std::vector<d2c::StoredEvent> events = service_.reader_.Read(q);
        if (events.empty()) {
          std::unique_lock lock(mutex_);
          cv_.wait_for(lock, kTailPoll, [this] { return cancelled_; });
          continue;
        }
        v1::TailEventsResponse response;
        for (const auto& e : events) Encode(e, response.add_events());
        q.after = events.back().position;
        response.set_position(q.after->ToString());
        {
          std::unique_lock lock(mutex_);
          writing_ = true;
        }
        StartWrite(&response);
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return !writing_; });
        if (!write_ok_) break;
      }
    } catch (const Error& e) {
      error = e;
    } catch (const std::exception& e) {
      Logger()->warn("tail stream failed error=\"{}\"", e.what());
      error = Error(Reason::kServiceUnavailable,
                    "the event store is unavailable; resume from the last position");
    }
    Finish(service_.runtime_.EndStream(ctx_, kService, "TailEvents", started_, error));
  }

  bool Cancelled() {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }

  EventsService& service_;
  grpc::CallbackServerContext* ctx_;
  const v1::TailEventsRequest request_;
  const std::chrono::steady_clock::time_point started_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_ok_ = true;
  bool cancelled_ = false;
  std::thread thread_;
};

EventsService::EventsService(rpc::RpcRuntime& runtime, d2c::EventStore& store,
                             d2c::EventReader& reader, kafka::Producer* kafka, std::string topic,
                             std::string group, const Clock& clock, prometheus::Registry& registry)
    : runtime_(runtime),
      store_(store),
      reader_(reader),
      kafka_(kafka),
      topic_(std::move(topic)),
      group_(std::move(group)),
      clock_(clock),
      tail_streams_(metrics::Gauge(registry, "ferry_events_tail_streams",
                                   "TailEvents streams open on this replica.")),
      redriven_(metrics::CounterFamily(
          registry, "ferry_d2c_redriven_total",
          "Dead letters re-driven, by outcome (stored, routed, dropped, still_dead, "
          "not_found).")),
      resets_(metrics::Counter(registry, "ferry_d2c_checkpoint_resets_total",
                               "Partition checkpoints reset through ferry.v1.Events.")) {}

std::string EventsService::Group(const std::string& requested) const {
  if (requested.size() > 255) throw Error(Reason::kArgumentInvalid, "consumer_group is too long");
  return requested.empty() ? group_ : requested;
}

grpc::ServerUnaryReactor* EventsService::ReadEvents(grpc::CallbackServerContext* ctx,
                                                    const v1::ReadEventsRequest* request,
                                                    v1::ReadEventsResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ReadEvents", request, response,
      [this](const rpc::Caller&, const v1::ReadEventsRequest& req, v1::ReadEventsResponse& resp) {
        d2c::EventQuery q;
        q.group = Group(req.consumer_group());
        if (!req.device_id().empty()) q.device_id = req.device_id();
        if (req.has_start_time()) q.from = rpc::FromProtoTime(req.start_time(), "start_time");
        if (req.has_end_time()) q.to = rpc::FromProtoTime(req.end_time(), "end_time");
        if (q.from && q.to && *q.to <= *q.from) {
          throw Error(Reason::kArgumentInvalid, "end_time must be after start_time");
        }
        q.limit = PageSize(req.page_size());
        q.after = ParsePosition(req.page_token(), "page_token");
        const auto events = reader_.Read(q);
        for (const auto& e : events) Encode(e, resp.add_events());
        resp.set_next_page_token(!events.empty() ? events.back().position.ToString()
                                                 : q.after.value_or(d2c::Position{}).ToString());
      });
}

grpc::ServerWriteReactor<v1::TailEventsResponse>* EventsService::TailEvents(
    grpc::CallbackServerContext* ctx, const v1::TailEventsRequest* request) {
  if (++open_tails_ > kMaxTailStreams) {
    --open_tails_;
    struct Refused final : grpc::ServerWriteReactor<v1::TailEventsResponse> {
      void OnDone() override { delete this; }
    };
    auto* refused = new Refused();
    refused->Finish(runtime_.EndStream(
        ctx, kService, "TailEvents", std::chrono::steady_clock::now(),
        Error(Reason::kThrottlingException,
              fmt::format("at most {} tail streams per replica", kMaxTailStreams))));
    return refused;
  }
  return new TailReactor(*this, ctx, request);
}

grpc::ServerUnaryReactor* EventsService::ListCheckpoints(grpc::CallbackServerContext* ctx,
                                                         const v1::ListCheckpointsRequest* request,
                                                         v1::ListCheckpointsResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListCheckpoints", request, response,
      [this](const rpc::Caller&, const v1::ListCheckpointsRequest& req,
             v1::ListCheckpointsResponse& resp) {
        const std::string group = Group(req.consumer_group());
        for (const auto& c : store_.Checkpoints(group, "")) {
          std::int64_t lag = -1;
          if (kafka_ != nullptr) {
            if (const auto marks = kafka_->Watermarks(c.topic, c.partition, kKafkaTimeout)) {
              lag = std::max<std::int64_t>(0, marks->second - c.next_offset.value_or(marks->first));
            }
          }
          Encode(group, c, lag, resp.add_checkpoints());
        }
      });
}

grpc::ServerUnaryReactor* EventsService::ResetCheckpoints(
    grpc::CallbackServerContext* ctx, const v1::ResetCheckpointsRequest* request,
    v1::ResetCheckpointsResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ResetCheckpoints", request, response,
      [this](const rpc::Caller& caller, const v1::ResetCheckpointsRequest& req,
             v1::ResetCheckpointsResponse& resp) {
        const std::string group = Group(req.consumer_group());
        const std::string topic = req.topic().empty() ? topic_ : req.topic();
        if (req.target_case() == v1::ResetCheckpointsRequest::TARGET_NOT_SET) {
          throw Error(Reason::kArgumentInvalid, "give a target: earliest, latest, offset or time");
        }
        // Kafka reads negative times as "latest" (-1) and "earliest" (-2).
        std::int64_t time_ms = 0;
        if (req.target_case() == v1::ResetCheckpointsRequest::kTime) {
          time_ms = ToUnixMicros(rpc::FromProtoTime(req.time(), "time")) / 1000;
          if (time_ms < 0) throw Error(Reason::kArgumentInvalid, "time must not be before 1970");
        }
        std::vector<std::int32_t> partitions(req.partitions().begin(), req.partitions().end());
        if (partitions.empty()) {
          for (const auto& c : store_.Checkpoints(group, topic)) partitions.push_back(c.partition);
          if (partitions.empty()) {
            throw Error(Reason::kArgumentInvalid,
                        fmt::format("no checkpoints for group '{}' topic '{}': name the partitions",
                                    group, topic));
          }
        }
        for (const std::int32_t p : partitions) {
          if (p < 0) throw Error(Reason::kArgumentInvalid, "partitions must not be negative");
          std::optional<std::pair<std::int64_t, std::int64_t>> marks;
          if (kafka_ != nullptr) marks = kafka_->Watermarks(topic, p, kKafkaTimeout);
          const auto need_marks = [&]() -> std::pair<std::int64_t, std::int64_t> {
            if (!marks) {
              throw Error(Reason::kServiceUnavailable,
                          fmt::format("Kafka did not answer for {} partition {}", topic, p));
            }
            return *marks;
          };
          std::int64_t offset = 0;
          switch (req.target_case()) {
            case v1::ResetCheckpointsRequest::kEarliest:
              offset = need_marks().first;
              break;
            case v1::ResetCheckpointsRequest::kLatest:
              offset = need_marks().second;
              break;
            case v1::ResetCheckpointsRequest::kOffset:
              offset = req.offset();
              if (offset < 0) throw Error(Reason::kArgumentInvalid, "offset must not be negative");
              if (marks && (offset < marks->first || offset > marks->second)) {
                throw Error(Reason::kArgumentInvalid,
                            fmt::format("offset {} is outside partition {}'s log [{}, {}]", offset,
                                        p, marks->first, marks->second));
              }
              break;
            case v1::ResetCheckpointsRequest::kTime: {
              const auto found = kafka_ == nullptr
                                     ? std::nullopt
                                     : kafka_->OffsetForTime(topic, p, time_ms, kKafkaTimeout);
              if (!found) {
                throw Error(
                    Reason::kServiceUnavailable,
                    fmt::format("Kafka could not find an offset by time for {} partition {}", topic,
                                p));
              }
              offset = *found >= 0 ? *found : need_marks().second;
              break;
            }
            case v1::ResetCheckpointsRequest::TARGET_NOT_SET:
              break;
          }
          const auto audit =
              audit::For(caller, "checkpoint.reset", fmt::format("{}/{}/{}", group, topic, p));
          const d2c::CheckpointRow row = store_.ResetCheckpoint({group, topic, p}, offset, &audit);
          resets_.Increment();
          Logger()->info(
              "checkpoint reset group=\"{}\" topic=\"{}\" partition={} next_offset={} epoch={}"
              " owner=\"{}\" by=\"{}\"",
              group, topic, p, offset, row.epoch, row.owner, caller.principal);
          std::int64_t lag = -1;
          if (marks) lag = std::max<std::int64_t>(0, marks->second - offset);
          Encode(group, row, lag, resp.add_checkpoints());
        }
      });
}

grpc::ServerUnaryReactor* EventsService::ListDeadLetters(grpc::CallbackServerContext* ctx,
                                                         const v1::ListDeadLettersRequest* request,
                                                         v1::ListDeadLettersResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListDeadLetters", request, response,
      [this](const rpc::Caller&, const v1::ListDeadLettersRequest& req,
             v1::ListDeadLettersResponse& resp) {
        d2c::DeadLetterFilter f;
        f.group = Group(req.consumer_group());
        if (!req.reason().empty()) f.reason = req.reason();
        if (req.has_partition()) f.partition = req.partition();
        f.after = ParseDeadLetterToken(req.page_token());
        f.limit = PageSize(req.page_size());
        const auto rows = store_.DeadLetters(f);
        for (const auto& d : rows) {
          v1::DeadLetter* out = resp.add_dead_letters();
          out->set_topic(d.topic);
          out->set_partition(d.partition);
          out->set_offset(d.offset);
          out->set_reason(d.reason);
          out->set_detail(d.detail);
          *out->mutable_dead_lettered_time() = rpc::ToProtoTime(d.dead_lettered_at);
          out->set_key(d.record.key.value_or(""));
          out->set_value(d.record.value.value_or(""));
          for (const auto& h : d.record.headers) {
            v1::KafkaRecordHeader* hh = out->add_headers();
            hh->set_name(h.name);
            hh->set_value(h.value.value_or(""));
            hh->set_null_value(!h.value.has_value());
          }
          if (d.record.timestamp_ms) {
            *out->mutable_record_time() =
                rpc::ToProtoTime(FromUnixMicros(*d.record.timestamp_ms * 1000));
          }
        }
        if (rows.size() == f.limit) {
          resp.set_next_page_token(fmt::format("{}.{}", rows.back().partition, rows.back().offset));
        }
      });
}

grpc::ServerUnaryReactor* EventsService::RedriveDeadLetters(
    grpc::CallbackServerContext* ctx, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  return runtime_.Unary(
      ctx, kService, "RedriveDeadLetters", request, response,
      [this](const rpc::Caller& caller, const v1::RedriveDeadLettersRequest& req,
             v1::RedriveDeadLettersResponse& resp) {
        const std::string group = Group(req.consumer_group());
        const std::string topic = req.topic().empty() ? topic_ : req.topic();
        std::vector<std::pair<std::int32_t, std::int64_t>> keys;
        if (req.records_size() > 1000)
          throw Error(Reason::kArgumentInvalid, "at most 1000 records at once");
        for (const auto& r : req.records()) keys.emplace_back(r.partition(), r.offset());
        if (keys.empty()) {
          d2c::DeadLetterFilter f;
          f.group = group;
          f.topic = topic;
          if (!req.reason().empty()) f.reason = req.reason();
          if (req.has_partition()) f.partition = req.partition();
          f.limit = PageSize(req.limit());
          for (const auto& d : store_.DeadLetters(f)) keys.emplace_back(d.partition, d.offset);
        }
        const auto audit = audit::For(caller, "deadletter.redrive", group + "/" + topic);
        for (const auto& r : store_.Redrive(group, topic, keys, clock_.Now(), &audit)) {
          v1::RedriveResult* out = resp.add_results();
          out->set_partition(r.partition);
          out->set_offset(r.offset);
          out->set_outcome(r.outcome);
          out->set_reason(r.reason);
          out->set_detail(r.detail);
          redriven_.Add({{"outcome", r.outcome}}).Increment();
        }
        Logger()->info("dead letters re-driven group=\"{}\" topic=\"{}\" count={} by=\"{}\"", group,
                       topic, resp.results_size(), caller.principal);
      });
}

}  // namespace ferry::events
