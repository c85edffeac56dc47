#include "consumers/d2c/consumer.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

#include <librdkafka/rdkafkacpp.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include "core/d2c/partition.h"
#include "core/error.h"
#include "core/executor.h"
#include "core/kafka/rdkafka_handles.h"
#include "core/log.h"

namespace ferry::d2c {
namespace {

using SteadyClock = std::chrono::steady_clock;

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("d2c");
  return logger;
}

// Logical offsets are Kafka's; the store's start position resolves to them.
class LogicalStartOffsets final : public StartOffsets {
 public:
  explicit LogicalStartOffsets(const std::unique_ptr<RdKafka::KafkaConsumer>& consumer)
      : consumer_(consumer) {}
  std::int64_t Resolve(const std::string& topic, std::int32_t partition, StartFrom from,
                       TimePoint at) override {
    switch (from) {
      case StartFrom::kEarliest:
        return RdKafka::Topic::OFFSET_BEGINNING;
      case StartFrom::kLatest:
        return RdKafka::Topic::OFFSET_END;
      case StartFrom::kTimestamp: {
        kafka::TopicPartitions tps(
            topic, partition,
            std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
        const RdKafka::ErrorCode e = consumer_->offsetsForTimes(tps.get(), 10000);
        std::int64_t offset = tps.front().offset();
        const RdKafka::ErrorCode pe = tps.front().err();
        if (e != RdKafka::ERR_NO_ERROR || pe != RdKafka::ERR_NO_ERROR) {
          throw std::runtime_error("offsetsForTimes failed: " + RdKafka::err2str(e != 0 ? e : pe));
        }
        return offset < 0 ? RdKafka::Topic::OFFSET_END : offset;
      }
    }
    return RdKafka::Topic::OFFSET_BEGINNING;
  }

 private:
  const std::unique_ptr<RdKafka::KafkaConsumer>& consumer_;
};

struct Metrics {
  explicit Metrics(prometheus::Registry& r)
      : events(prometheus::BuildCounter()
                   .Name("ferry_d2c_events_landed_total")
                   .Help("D2C events landed in the event store, by Kafka partition.")
                   .Register(r)),
        bytes(prometheus::BuildCounter()
                  .Name("ferry_d2c_bytes_landed_total")
                  .Help("Body bytes of the D2C events landed, by Kafka partition.")
                  .Register(r)),
        dead_letters(prometheus::BuildCounter()
                         .Name("ferry_d2c_dead_letters_total")
                         .Help("D2C records dead-lettered, by reason.")
                         .Register(r)),
        batch_records(
            prometheus::BuildHistogram()
                .Name("ferry_d2c_batch_records")
                .Help("Records per landing batch.")
                .Register(r)
                .Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 50, 100, 500, 1000, 2000,
                                                                 5000, 10000})),
        batch_seconds(
            prometheus::BuildHistogram()
                .Name("ferry_d2c_batch_duration_seconds")
                .Help("Time to land one batch (all its transactions).")
                .Register(r)
                .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05,
                                                                 0.1, 0.25, 0.5, 1, 2.5, 5})),
        next_offset(prometheus::BuildGauge()
                        .Name("ferry_d2c_next_offset")
                        .Help("Checkpointed next offset, by Kafka partition owned here.")
                        .Register(r)),
        lag(prometheus::BuildGauge()
                .Name("ferry_d2c_lag_records")
                .Help("High watermark minus checkpoint, by Kafka partition owned here.")
                .Register(r)),
        owned(prometheus::BuildGauge()
                  .Name("ferry_d2c_partition_owned")
                  .Help("1 while this process owns and consumes the Kafka partition.")
                  .Register(r)),
        rebalances(prometheus::BuildCounter()
                       .Name("ferry_d2c_rebalances_total")
                       .Help("Partition assignments and revocations seen, by kind.")
                       .Register(r)),
        fenced(prometheus::BuildCounter()
                   .Name("ferry_d2c_fenced_batches_total")
                   .Help("Batches not landed because another owner had claimed the partition.")
                   .Register(r)
                   .Add({})),
        claim_retries(prometheus::BuildCounter()
                          .Name("ferry_d2c_claim_retries_total")
                          .Help("Failed partition claims retried with backoff.")
                          .Register(r)
                          .Add({})),
        landing_retries(prometheus::BuildCounter()
                            .Name("ferry_d2c_landing_retries_total")
                            .Help("Batches whose landing failed and was retried.")
                            .Register(r)
                            .Add({})),
        routed(prometheus::BuildCounter()
                   .Name("ferry_d2c_routed_total")
                   .Help("D2C messages delivered by routing, by endpoint (replays included).")
                   .Register(r)),
        dropped(prometheus::BuildCounter()
                    .Name("ferry_d2c_dropped_total")
                    .Help("D2C messages that matched no route with the fallback off (IoT Hub's "
                          "d2c.telemetry.egress.dropped).")
                    .Register(r)
                    .Add({})),
        oversized(
            prometheus::BuildCounter()
                .Name("ferry_d2c_endpoint_oversized_total")
                .Help("D2C messages not delivered to a Kafka endpoint because its enrichments made "
                      "them larger than 256 KB, by endpoint (IoT Hub's "
                      "d2c.telemetry.egress.invalid).")
                .Register(r)),
        undefined(prometheus::BuildCounter()
                      .Name("ferry_d2c_route_evaluation_undefined_total")
                      .Help("Route conditions that evaluated to undefined or null (a missing "
                            "property, a type mismatch, a non-JSON body), by route.")
                      .Register(r)),
        replay_skipped(prometheus::BuildCounter()
                           .Name("ferry_d2c_replay_skipped_total")
                           .Help("Replayed records skipped: already landed, or past retention.")
                           .Register(r)
                           .Add({})),
        resets(prometheus::BuildCounter()
                   .Name("ferry_d2c_checkpoint_resets_seen_total")
                   .Help("Owned partitions whose checkpoint was reset by an operator, seen here.")
                   .Register(r)
                   .Add({})),
        lost(prometheus::BuildCounter()
                 .Name("ferry_d2c_lost_records_total")
                 .Help("Records Kafka deleted (retention, DeleteRecords) before they were landed: "
                       "data "
                       "loss, by Kafka partition; each gap is also a row in d2c_gaps.")
                 .Register(r)),
        stopped(
            prometheus::BuildGauge()
                .Name("ferry_d2c_partition_stopped")
                .Help(
                    "1 while a partition owned here is stopped because its checkpoint is above the "
                    "log's end (topic re-created?): reset its checkpoint to go on.")
                .Register(r)),
        buffered(prometheus::BuildGauge()
                     .Name("ferry_d2c_buffered_bytes")
                     .Help("D2C data fetched and not yet landed here (buffered, or in a batch "
                           "being landed), "
                           "against the --d2c-buffer-mb budget.")
                     .Register(r)
                     .Add({})),
        route_version(prometheus::BuildGauge()
                          .Name("ferry_d2c_route_version")
                          .Help("Route-set version of the last batch landed here.")
                          .Register(r)
                          .Add({})) {}

  std::string P(std::int32_t p) { return std::to_string(p); }

  prometheus::Family<prometheus::Counter>& events;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Counter>& dead_letters;
  prometheus::Histogram& batch_records;
  prometheus::Histogram& batch_seconds;
  prometheus::Family<prometheus::Gauge>& next_offset;
  prometheus::Family<prometheus::Gauge>& lag;
  prometheus::Family<prometheus::Gauge>& owned;
  prometheus::Family<prometheus::Counter>& rebalances;
  prometheus::Counter& fenced;
  prometheus::Counter& claim_retries;
  prometheus::Counter& landing_retries;
  prometheus::Family<prometheus::Counter>& routed;
  prometheus::Counter& dropped;
  prometheus::Family<prometheus::Counter>& oversized;
  prometheus::Family<prometheus::Counter>& undefined;
  prometheus::Counter& replay_skipped;
  prometheus::Counter& resets;
  prometheus::Family<prometheus::Counter>& lost;
  prometheus::Family<prometheus::Gauge>& stopped;
  prometheus::Gauge& buffered;
  prometheus::Gauge& route_version;
};

struct ClaimDone {
  std::int32_t partition;
  std::uint64_t generation;
  std::optional<Claim> claim;
  std::int64_t start_offset = 0;
  std::string error;
};

struct EpochsDone {
  std::map<std::int32_t, std::pair<std::int64_t, std::string>> epochs;  // empty on error
  std::map<std::int32_t, std::int64_t> asked;                           // our epochs when asked
};

struct GapCheckDone {
  std::int32_t partition;
  std::uint64_t generation;
  std::optional<std::int64_t> from;  // the checkpoint when asked
  std::int64_t start = 0;            // without a checkpoint: the position it was started at
  std::int64_t low = -1;
  std::int64_t high = -1;
  std::optional<GapOutcome> gap;          // set when records were skipped
  std::optional<std::int64_t> resume_at;  // where fetching starts again
  bool ahead = false;                     // the checkpoint is above the log's end
  std::string error;
};

struct LandDone {
  std::int32_t partition;
  std::uint64_t generation;
  LandingBatch batch;
  std::optional<LandingOutcome> outcome;
  std::string error;
  double seconds = 0;
};

}  // namespace

struct D2cConsumer::Impl final : public RdKafka::RebalanceCb, public RdKafka::EventCb {
  Impl(ConsumerOptions o, EventStore& s, const Clock& c, prometheus::Registry& r, StartOffsets* so)
      : options(std::move(o)),
        store(s),
        clock(c),
        metrics(r),
        executor(options.landing_threads + 1),
        parts(PartitionLimits{BatchLimits{options.batch_max_records, options.batch_max_bytes},
                              options.linger, options.max_buffered_records,
                              options.max_buffered_bytes}),
        logical(consumer),
        start_offsets(so != nullptr ? so : &logical) {}

  ConsumerOptions options;
  EventStore& store;
  const Clock& clock;
  Metrics metrics;
  Executor executor;
  // Poll thread only: every decision about a partition is made here.
  Partitions parts;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  LogicalStartOffsets logical;
  StartOffsets* start_offsets;

  std::thread poller;
  std::atomic<bool> stopping{false};
  // steady_clock ticks when the poll loop last went round; 0 when not polling.
  std::atomic<SteadyClock::rep> polled_at{0};
  // Whether a rebalance has handed this consumer an assignment (even an
  // empty one) yet; see the end of Loop().
  bool assigned_once = false;
  bool leak_handle = false;
  bool fatal_reported = false;

  SteadyClock::time_point next_lag_report;  // poll thread only

  // Shared with executor jobs.
  std::mutex mutex;
  std::condition_variable done_cv;
  std::set<std::int32_t> in_flight;  // partitions with a claim or a landing out
  std::deque<std::variant<ClaimDone, LandDone, EpochsDone, GapCheckDone>> done;

  // ---- Kafka callbacks (on the poll thread) ----

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) {
          Logger()->critical("kafka fatal error error=\"{}\"", event.str());
          if (!fatal_reported && options.on_fatal) {
            fatal_reported = true;
            options.on_fatal(event.str());
          }
        } else {
          Logger()->warn("kafka error code={} error=\"{}\"", RdKafka::err2str(event.err()),
                         event.str());
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        // Offset commits are informational (the checkpoint is in PostgreSQL)
        // and fail routinely during rebalances.
        if (event.fac() == "COMMITFAIL") {
          Logger()->debug("kafka offset commit failed message=\"{}\"", event.str());
        } else if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
          Logger()->warn("kafka log facility={} message=\"{}\"", event.fac(), event.str());
        }
        break;
      default:
        break;
    }
  }

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    Logger()->debug("rebalance event={} partitions={} owner=\"{}\"", RdKafka::err2str(err),
                    partitions.size(), options.owner);
    assigned_once = true;
    // Eager (the default, see Start) hands over the whole assignment each
    // time; cooperative only what changes. The claims below work either way.
    const bool cooperative = c->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      metrics.rebalances.Add({{"kind", "assign"}}).Increment();
      if (cooperative) {
        if (const kafka::ErrorPtr e{c->incremental_assign(partitions)}) {
          Logger()->error("incremental_assign failed error=\"{}\"", e->str());
          return;
        }
      } else if (const RdKafka::ErrorCode e = c->assign(partitions); e != RdKafka::ERR_NO_ERROR) {
        Logger()->error("assign failed error=\"{}\"", RdKafka::err2str(e));
        return;
      }
      c->pause(partitions);
      for (auto* tp : partitions) {
        parts.Assign(tp->partition(), SteadyClock::now());
        Logger()->info("partition assigned, claiming partition={} owner=\"{}\"", tp->partition(),
                       options.owner);
      }
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      const bool lost = c->assignment_lost();
      metrics.rebalances.Add({{"kind", lost ? "lost" : "revoke"}}).Increment();
      for (auto* tp : partitions) Release(tp->partition(), lost ? "lost" : "revoked");
      if (cooperative) {
        if (const kafka::ErrorPtr e{c->incremental_unassign(partitions)}) {
          Logger()->error("incremental_unassign failed error=\"{}\"", e->str());
        }
      } else if (const RdKafka::ErrorCode e = c->unassign(); e != RdKafka::ERR_NO_ERROR) {
        Logger()->error("unassign failed error=\"{}\"", RdKafka::err2str(e));
      }
    } else {
      Logger()->error("rebalance error error=\"{}\"", RdKafka::err2str(err));
    }
  }

  // Waits for the partition's in-flight batch, then forgets the partition.
  void Release(std::int32_t p, const char* why) {
    {
      std::unique_lock lock(mutex);
      done_cv.wait(lock, [&] { return in_flight.count(p) == 0; });
    }
    if (!parts.Release(p)) return;
    metrics.owned.Add({{"partition", metrics.P(p)}}).Set(0);
    metrics.stopped.Remove(&metrics.stopped.Add({{"partition", metrics.P(p)}}));
    // Its lag and position are the new owner's to report now: no stale
    // series left behind here.
    metrics.lag.Remove(&metrics.lag.Add({{"partition", metrics.P(p)}}));
    metrics.next_offset.Remove(&metrics.next_offset.Add({{"partition", metrics.P(p)}}));
    Logger()->info("partition released partition={} why={} owner=\"{}\"", p, why, options.owner);
  }

  // ---- Jobs (on the executor) ----

  void PostClaim(const PartitionJob& job) {
    {
      std::lock_guard lock(mutex);
      in_flight.insert(job.partition);
    }
    const std::uint64_t gen = job.generation;
    const PartitionId id{options.group, options.topic, job.partition};
    executor.Post([this, id, gen] {
      ClaimDone d{id.partition, gen, std::nullopt, 0, ""};
      try {
        d.claim = store.ClaimPartition(id, options.owner);
        d.start_offset = d.claim->next_offset
                             ? *d.claim->next_offset
                             : start_offsets->Resolve(id.topic, id.partition, options.start_from,
                                                      options.start_time);
      } catch (const std::exception& e) {
        d.claim.reset();
        d.error = e.what();
      }
      std::lock_guard lock(mutex);
      in_flight.erase(id.partition);
      done.emplace_back(std::move(d));
      done_cv.notify_all();
    });
  }

  void PostLanding(PartitionJob& job) {
    const std::int32_t p = job.partition;
    {
      std::lock_guard lock(mutex);
      in_flight.insert(p);
    }
    const std::uint64_t gen = job.generation;
    LandingBatch batch{PartitionId{options.group, options.topic, p}, job.epoch,
                       std::move(job.records)};
    executor.Post([this, p, gen, batch = std::move(batch)]() mutable {
      LandDone d{p, gen, std::move(batch), std::nullopt, "", 0};
      const auto started = SteadyClock::now();
      try {
        d.outcome = store.Land(d.batch, clock.Now());
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      d.seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
      std::lock_guard lock(mutex);
      done.emplace_back(std::move(d));
      in_flight.erase(p);
      done_cv.notify_all();
    });
  }

  // ---- Poll-thread steps ----

  void Append(RdKafka::Message& m) {
    KafkaRecord r;
    r.topic = m.topic_name();
    r.partition = m.partition();
    r.offset = m.offset();
    if (m.key() != nullptr) r.key = *m.key();
    if (m.payload() != nullptr) r.value.emplace(static_cast<const char*>(m.payload()), m.len());
    const RdKafka::MessageTimestamp ts = m.timestamp();
    if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE)
      r.timestamp_ms = ts.timestamp;
    if (RdKafka::Headers* hs = m.headers()) {
      for (const RdKafka::Headers::Header& h : hs->get_all()) {
        KafkaHeader kh{h.key(), std::nullopt};
        if (h.value() != nullptr)
          kh.value.emplace(static_cast<const char*>(h.value()), h.value_size());
        r.headers.push_back(std::move(kh));
      }
    }
    if (parts.Append(std::move(r), SteadyClock::now()) == AppendResult::kPause) {
      SetPaused(m.partition(), true);
    }
  }

  void SetPaused(std::int32_t p, bool paused) {
    kafka::TopicPartitions tps(options.topic, p);
    if (paused) {
      consumer->pause(tps.get());
    } else {
      consumer->resume(tps.get());
    }
  }

  // Assigns `tp` again at its offset, the other partitions as they are.
  bool Reassign(const RdKafka::TopicPartition& tp) {
    if (consumer->rebalance_protocol() == "COOPERATIVE") {
      kafka::TopicPartitions tps(tp.topic(), tp.partition(), tp.offset());
      // An unassign error changes nothing here: the assign below decides.
      (void)kafka::ErrorPtr{consumer->incremental_unassign(tps.get())};
      const kafka::ErrorPtr ae{consumer->incremental_assign(tps.get())};
      if (ae == nullptr) return true;
      Logger()->error("re-assign failed partition={} error=\"{}\"", tp.partition(), ae->str());
      return false;
    }
    // Eager: the whole assignment, with this partition's new offset; the
    // others that are consuming resume where this consumer expects their
    // next record (librdkafka's position is unknown right after a seek,
    // librdkafka#3567, and would fall back to Kafka's committed offset,
    // which a checkpoint reset leaves behind); paused ones stay paused.
    kafka::TopicPartitions all;
    if (consumer->assignment(all.get()) != RdKafka::ERR_NO_ERROR) return false;
    consumer->position(all.get());
    std::vector<RdKafka::TopicPartition*> paused;  // points into `all`
    for (auto* a : all) {
      if (a->partition() == tp.partition()) {
        a->set_offset(tp.offset());
        continue;
      }
      const Placement placement = parts.PlacementOf(a->partition());
      if (placement.offset) a->set_offset(*placement.offset);
      if (placement.paused) paused.push_back(a);
    }
    const RdKafka::ErrorCode e = consumer->assign(all.get());
    if (e == RdKafka::ERR_NO_ERROR && !paused.empty()) consumer->pause(paused);
    if (e == RdKafka::ERR_NO_ERROR) return true;
    Logger()->error("re-assign failed partition={} error=\"{}\"", tp.partition(),
                    RdKafka::err2str(e));
    return false;
  }

  // Starts fetching `p` at `offset` (absolute or logical); false if it
  // could not (the partition is then claimed afresh, with backoff).
  bool StartAt(std::int32_t p, std::int64_t offset) {
    kafka::TopicPartitions tp(options.topic, p, offset);
    const RdKafka::ErrorCode e = consumer->seek(tp.front(), 5000);
    if (e != RdKafka::ERR_NO_ERROR) {
      // Not fetching yet: re-assign with the offset instead.
      Logger()->debug("seek failed, re-assigning partition={} error=\"{}\"", p,
                      RdKafka::err2str(e));
      if (!Reassign(tp.front())) return false;
    }
    consumer->resume(tp.get());
    return true;
  }

  // The effects of a fence Partitions decided: `p` is paused until claimed
  // afresh.
  void Fenced(std::int32_t p, const char* why) {
    SetPaused(p, true);
    metrics.owned.Add({{"partition", metrics.P(p)}}).Set(0);
    metrics.stopped.Remove(&metrics.stopped.Add({{"partition", metrics.P(p)}}));
    Logger()->warn("partition fenced, re-claiming partition={} why=\"{}\"", p, why);
  }

  void ProcessDone() {
    std::deque<std::variant<ClaimDone, LandDone, EpochsDone, GapCheckDone>> ready;
    {
      std::lock_guard lock(mutex);
      ready.swap(done);
    }
    for (auto& item : ready) {
      if (auto* c = std::get_if<ClaimDone>(&item)) {
        OnClaimed(*c);
      } else if (auto* e = std::get_if<EpochsDone>(&item)) {
        OnEpochs(*e);
      } else if (auto* g = std::get_if<GapCheckDone>(&item)) {
        OnGapChecked(*g);
      } else {
        OnLanded(std::get<LandDone>(item));
      }
    }
  }

  void OnClaimed(ClaimDone& d) {
    if (!d.claim) {
      if (!parts.OnClaimFailed(d.partition, d.generation, SteadyClock::now())) return;
      metrics.claim_retries.Increment();
      Logger()->warn("partition claim failed, retrying partition={} error=\"{}\"", d.partition,
                     d.error);
      return;
    }
    if (!parts.OnClaimed(d.partition, d.generation, d.claim->epoch, d.claim->next_offset,
                         d.start_offset)) {
      return;
    }
    if (!StartAt(d.partition, d.start_offset)) {
      parts.OnStartFailed(d.partition, SteadyClock::now());
      Fenced(d.partition, "could not start fetching at the checkpoint");
      return;
    }
    metrics.owned.Add({{"partition", metrics.P(d.partition)}}).Set(1);
    // Both series exist from the claim on (at 0), so that an alert sees the
    // first gap or stop as a change.
    metrics.lost.Add({{"partition", metrics.P(d.partition)}});
    metrics.stopped.Add({{"partition", metrics.P(d.partition)}}).Set(0);
    if (d.claim->next_offset) {
      metrics.next_offset.Add({{"partition", metrics.P(d.partition)}})
          .Set(static_cast<double>(*d.claim->next_offset));
    }
    Logger()->info("partition claimed partition={} epoch={} start_offset={}", d.partition,
                   d.claim->epoch, d.start_offset);
  }

  // Asks for the epochs of the partitions owned here: one that moved while
  // no batch was landing (an operator's checkpoint reset, or a claim by
  // another member) is re-claimed, which re-reads the checkpoint and seeks.
  void PostEpochCheck() {
    if (parts.epoch_check_posted() || stopping) return;
    EpochsDone d;
    d.asked = parts.EpochsToCheck();
    if (d.asked.empty()) return;
    parts.EpochCheckPosted();
    executor.Post([this, d = std::move(d)]() mutable {
      try {
        d.epochs = store.Epochs(options.group, options.topic);
      } catch (const std::exception& e) {
        Logger()->debug("epoch check failed error=\"{}\"", e.what());
      }
      std::lock_guard lock(mutex);
      done.emplace_back(std::move(d));
      done_cv.notify_all();
    });
  }

  void OnEpochs(EpochsDone& d) {
    for (const auto& [p, move] :
         parts.OnEpochs(d.asked, d.epochs, options.owner, SteadyClock::now())) {
      if (move == EpochMove::kReset) {
        metrics.resets.Increment();
        Fenced(p, "checkpoint reset by an operator");
      } else {
        metrics.fenced.Increment();
        Fenced(p, "claimed by another owner");
      }
    }
  }

  // ---- Gaps: the log no longer holds the fetch position ----

  // librdkafka reports an out-of-range fetch position instead of moving
  // the partition (auto.offset.reset=error) and stops fetching it.
  void OnOutOfRange(std::int32_t p, std::int64_t offset, const std::string& why) {
    const OutOfRangeResult result = parts.OnOutOfRange(p);
    if (result == OutOfRangeResult::kNotActive) {
      // Assigned at Kafka's committed offset while being claimed: the claim
      // starts it at the checkpoint.
      Logger()->debug("offset out of range before the claim partition={} offset={} error=\"{}\"", p,
                      offset, why);
      return;
    }
    if (result == OutOfRangeResult::kFirstReport) {
      // offset < 0: a late report of the assignment's missing committed
      // offset (Ferry does not use it); else the log no longer holds it.
      if (offset >= 0) {
        Logger()->warn(
            "fetch position out of range, checking the log partition={} offset={} error=\"{}\"", p,
            offset, why);
      } else {
        Logger()->debug(
            "fetching stopped on a stale offset report, re-starting partition={} error=\"{}\"", p,
            why);
      }
    }
  }

  // Off the poll thread: where is the checkpoint against the log's
  // [low, high)? Below the log start: the records in between are gone, and
  // SkipDeleted records them as lost while moving the checkpoint. Above the
  // end: stop (asked again for a few seconds first: a new leader's high
  // watermark can trail for a moment). Inside: fetch again from there.
  void PostGapCheck(const PartitionJob& job) {
    {
      std::lock_guard lock(mutex);
      in_flight.insert(job.partition);
    }
    GapCheckDone d{job.partition, job.generation, job.from, job.start};
    const std::int64_t epoch = job.epoch;
    executor.Post([this, d = std::move(d), epoch]() mutable {
      try {
        for (int attempt = 0;; ++attempt) {
          const RdKafka::ErrorCode e =
              consumer->query_watermark_offsets(options.topic, d.partition, &d.low, &d.high, 5000);
          if (e != RdKafka::ERR_NO_ERROR)
            throw std::runtime_error("watermarks: " + RdKafka::err2str(e));
          if (!d.from || *d.from <= d.high || attempt == 4 || stopping) break;
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        if (!d.from) {
          // Nothing landed yet: where it was started (a stale report of the
          // initial assignment), within the log.
          d.resume_at = d.start < 0 ? d.start : std::clamp(d.start, d.low, d.high);
        } else if (*d.from < d.low) {
          d.gap = store.SkipDeleted({options.group, options.topic, d.partition}, epoch, *d.from,
                                    d.low, options.owner);
          if (!d.gap->fenced) d.resume_at = d.low;
        } else if (*d.from > d.high) {
          d.ahead = true;
        } else {
          d.resume_at = *d.from;
        }
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      std::lock_guard lock(mutex);
      in_flight.erase(d.partition);
      done.emplace_back(std::move(d));
      done_cv.notify_all();
    });
  }

  void OnGapChecked(GapCheckDone& d) {
    if (!d.error.empty()) {
      if (!parts.OnGapCheckFailed(d.partition, d.generation, SteadyClock::now())) return;
      Logger()->warn("gap check failed, retrying partition={} error=\"{}\"", d.partition, d.error);
      return;
    }
    const GapCheck check{d.gap && d.gap->fenced, d.ahead, d.gap.has_value(), d.resume_at};
    const std::string p = metrics.P(d.partition);
    switch (parts.OnGapChecked(d.partition, d.generation, check, SteadyClock::now())) {
      case GapResult::kStale:
        return;
      case GapResult::kFenced:
        metrics.fenced.Increment();
        Fenced(d.partition, "checkpoint moved while skipping deleted records");
        return;
      case GapResult::kStopped:
        metrics.stopped.Add({{"partition", p}}).Set(1);
        Logger()->error(
            "partition stopped: its checkpoint is above the log's end (was the topic deleted and"
            " re-created?); nothing lands until its checkpoint is reset (ferryctl checkpoints "
            "reset) partition={} checkpoint={} log_start={} log_end={}",
            d.partition, *d.from, d.low, d.high);
        return;
      case GapResult::kResume:
        break;
    }
    if (d.gap) ReportGap(d);
    if (!StartAt(d.partition, *d.resume_at)) {
      parts.OnStartFailed(d.partition, SteadyClock::now());
      Fenced(d.partition, "could not start fetching after a gap check");
      return;
    }
    Logger()->info("partition fetching again partition={} offset={}", d.partition, *d.resume_at);
  }

  // Deleted records skipped: lost ones, and replayed ones already landed.
  void ReportGap(const GapCheckDone& d) {
    const std::string p = metrics.P(d.partition);
    const std::int64_t lost = d.gap->lost_to - d.gap->lost_from;
    metrics.replay_skipped.Increment(static_cast<double>(d.gap->replay_skipped));
    if (lost > 0) {
      metrics.lost.Add({{"partition", p}}).Increment(static_cast<double>(lost));
      Logger()->error(
          "data loss: Kafka deleted records before they were landed (retention or DeleteRecords);"
          " recorded in d2c_gaps partition={} from_offset={} to_offset={} lost={}",
          d.partition, d.gap->lost_from, d.gap->lost_to, lost);
    }
    if (d.gap->replay_skipped > 0) {
      Logger()->warn(
          "replay overtaken by retention: records already landed are gone from Kafka"
          " partition={} from_offset={} to_offset={}",
          d.partition, *d.from, d.gap->lost_from);
    }
    metrics.next_offset.Add({{"partition", p}}).Set(static_cast<double>(*d.resume_at));
  }

  void OnLanded(LandDone& d) {
    const auto now = SteadyClock::now();
    if (!d.outcome) {
      const std::size_t records = d.batch.records.size();
      if (!parts.OnLandingFailed(d.partition, d.generation, std::move(d.batch.records), now)) {
        return;
      }
      metrics.landing_retries.Increment();
      Logger()->warn("landing failed, will retry partition={} records={} error=\"{}\"", d.partition,
                     records, d.error);
      return;
    }
    if (d.outcome->fenced) {
      if (!parts.OnLandingFenced(d.partition, d.generation, now)) return;
      metrics.fenced.Increment();
      Fenced(d.partition, "checkpoint epoch moved on");
      return;
    }
    const LandingOutcome& o = *d.outcome;
    if (!parts.OnLanded(d.partition, d.generation, o.next_offset)) return;
    CountLanded(d);
    // For standard lag tools only: the checkpoint in PostgreSQL is the truth.
    kafka::TopicPartitions tps(options.topic, d.partition, o.next_offset);
    consumer->commitAsync(tps.get());
  }

  void CountLanded(const LandDone& d) {
    const LandingOutcome& o = *d.outcome;
    const std::string p = metrics.P(d.partition);
    metrics.events.Add({{"partition", p}}).Increment(static_cast<double>(o.events));
    metrics.bytes.Add({{"partition", p}}).Increment(static_cast<double>(o.bytes));
    for (const auto& [reason, n] : o.dead_letters) {
      metrics.dead_letters.Add({{"reason", std::string(ReasonName(reason))}})
          .Increment(static_cast<double>(n));
    }
    for (const auto& [endpoint, n] : o.routed) {
      metrics.routed.Add({{"endpoint", endpoint}}).Increment(static_cast<double>(n));
    }
    for (const auto& [endpoint, n] : o.oversized) {
      metrics.oversized.Add({{"endpoint", endpoint}}).Increment(static_cast<double>(n));
    }
    for (const auto& [route, n] : o.undefined) {
      metrics.undefined.Add({{"route", route}}).Increment(static_cast<double>(n));
    }
    metrics.dropped.Increment(static_cast<double>(o.dropped));
    metrics.replay_skipped.Increment(static_cast<double>(o.replay_skipped));
    metrics.route_version.Set(static_cast<double>(o.route_version));
    metrics.batch_records.Observe(static_cast<double>(d.batch.records.size()));
    metrics.batch_seconds.Observe(d.seconds);
    metrics.next_offset.Add({{"partition", p}}).Set(static_cast<double>(o.next_offset));
  }

  void Dispatch(bool flush) {
    for (PartitionJob& job : parts.Dispatch(SteadyClock::now(), flush, stopping)) {
      switch (job.kind) {
        case PartitionJob::Kind::kClaim:
          PostClaim(job);
          break;
        case PartitionJob::Kind::kGapCheck:
          PostGapCheck(job);
          break;
        case PartitionJob::Kind::kLand:
          PostLanding(job);
          break;
        case PartitionJob::Kind::kResume:
          SetPaused(job.partition, false);
          break;
      }
    }
    metrics.buffered.Set(static_cast<double>(parts.buffered_bytes()));
  }

  void ReportLag() {
    const auto now = SteadyClock::now();
    if (now < next_lag_report) return;
    next_lag_report = now + std::chrono::seconds(2);
    PostEpochCheck();
    for (const auto& [p, st] : parts.all()) {
      if (st.phase != Partition::Phase::kActive) continue;
      int64_t low = 0, high = 0;
      if (consumer->get_watermark_offsets(options.topic, p, &low, &high) == RdKafka::ERR_NO_ERROR &&
          high >= 0) {
        metrics.lag.Add({{"partition", metrics.P(p)}})
            .Set(static_cast<double>(LagRecords(st.checkpoint, low, high)));
      }
    }
  }

  bool Idle() {
    std::lock_guard lock(mutex);
    return in_flight.empty() && done.empty() && parts.Drained();
  }

  void Loop() {
    while (!stopping) {
      polled_at = SteadyClock::now().time_since_epoch().count();
      std::unique_ptr<RdKafka::Message> m(consumer->consume(20));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        Append(*m);
        // Drain what is already fetched before doing the bookkeeping.
        for (int i = 0; i < 1000; ++i) {
          std::unique_ptr<RdKafka::Message> more(consumer->consume(0));
          if (more->err() != RdKafka::ERR_NO_ERROR) break;
          Append(*more);
        }
      } else if (m->err() == RdKafka::ERR__AUTO_OFFSET_RESET) {
        OnOutOfRange(m->partition(), m->offset(), m->errstr());
      } else if (m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
        Logger()->warn("kafka consume error error=\"{}\"", m->errstr());
      }
      ProcessDone();
      Dispatch(false);
      ReportLag();
    }
    polled_at = 0;
    // Shutdown: land what was fetched (a bounded wait), then leave the group.
    const auto deadline = SteadyClock::now() + std::chrono::seconds(20);
    while (!Idle() && SteadyClock::now() < deadline) {
      ProcessDone();
      Dispatch(true);
      std::unique_lock lock(mutex);
      done_cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    // librdkafka 2.0.2 aborts when a cooperative-sticky consumer that has
    // joined its group is destroyed before its first assignment (its
    // assignor state is still NULL: librdkafka#4312, fixed in 2.3.0); the
    // soak hit it with SIGTERM right after a start. Such a consumer first
    // waits a bounded while for that assignment (the callback runs inside
    // consume(); records cannot arrive, new partitions start paused).
    const auto first_assignment = SteadyClock::now() + std::chrono::seconds(10);
    while (!assigned_once && SteadyClock::now() < first_assignment) {
      std::unique_ptr<RdKafka::Message> ignored(consumer->consume(100));
    }
    consumer->close();
    if (!assigned_once) {
      // Still none (the broker is away): destroying the handle could abort
      // the process, so it is left to the exit.
      leak_handle = true;
      Logger()->warn(
          "d2c consumer stopped before its first assignment; its Kafka handle is left to the "
          "process exit"
          " (librdkafka 2.0.2 would abort destroying it)");
    }
    Logger()->info("d2c consumer left the group");
  }
};

D2cConsumer::D2cConsumer(ConsumerOptions options, EventStore& store, const Clock& clock,
                         prometheus::Registry& registry, StartOffsets* start_offsets)
    : impl_(std::make_unique<Impl>(std::move(options), store, clock, registry, start_offsets)) {}

D2cConsumer::~D2cConsumer() {
  Stop();
  if (impl_->leak_handle) {
    // The handle's threads may still call back into impl_: both stay.
    (void)impl_.release();
    return;
  }
  // Before the rest of impl_, which its callbacks use.
  impl_->consumer.reset();
}

void D2cConsumer::Start() {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  auto set = [&](const std::string& k, const std::string& v) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      throw std::runtime_error("kafka property " + k + ": " + err);
    }
  };
  const ConsumerOptions& o = impl_->options;
  set("bootstrap.servers", o.brokers);
  set("group.id", o.group);
  set("client.id", "ferryd-" + o.owner);
  // Eager round-robin, not cooperative-sticky: librdkafka 2.0.2's sticky
  // assignor crashes the process (a SIGSEGV in its own thread, where no
  // handler runs) when partition ownership changes under it, as it does
  // with members killed and restarted (fixed in 2.2.0, librdkafka#4252; the
  // soak found it), and aborts when destroyed before its first assignment
  // (#4312). Eager rebalances pause every partition for a moment; fencing
  // keeps landing exactly-once either way. `--kafka-property
  // partition.assignment.strategy=cooperative-sticky` still works.
  set("partition.assignment.strategy", "roundrobin");
  // Defaults for Kubernetes (a property given overrides them): a crashed
  // replica's partitions move after 10 s instead of librdkafka's 45 s
  // (brokers refuse sessions under 6 s); docs/reliability.md has the
  // measurements.
  set("session.timeout.ms", "10000");
  set("heartbeat.interval.ms", "2000");
  if (!o.instance_id.empty()) set("group.instance.id", o.instance_id);
  set("enable.auto.commit", "false");
  set("enable.auto.offset.store", "false");
  // Never let Kafka move a partition: an out-of-range position is reported
  // (ERR__AUTO_OFFSET_RESET) and the checkpoint decides, recording any gap.
  if (o.kafka.count("auto.offset.reset") != 0) {
    throw std::runtime_error(
        "kafka property auto.offset.reset is Ferry's own (error): the checkpoint decides where a "
        "partition "
        "resumes, and records deleted before they landed are recorded as a gap, never skipped "
        "silently");
  }
  set("auto.offset.reset", "error");
  set("enable.partition.eof", "false");
  // librdkafka's prefetch, sized from the one budget (its queue is the
  // consumer's single queue, so the bound holds whatever the partition
  // count): a quarter of it queued, a quarter per fetch response (at least
  // what one message may take), and one queued message per KiB of that
  // quarter (each costs a few hundred bytes of librdkafka bookkeeping beyond
  // its payload, which queued.max.messages.kbytes does not count; 100,000,
  // librdkafka's default, took 40 MiB more). BENCHMARKS.md has the figures.
  const std::size_t quarter = o.max_buffered_bytes / 4;
  set("queued.max.messages.kbytes", std::to_string(std::max<std::size_t>(quarter / 1024, 1024)));
  set("queued.min.messages", std::to_string(std::max<std::size_t>(quarter / 1024, 2000)));
  set("fetch.max.bytes", std::to_string(std::clamp<std::size_t>(quarter, 1 << 20, 64 << 20)));
  set("max.partition.fetch.bytes", "1048576");
  for (const auto& [k, v] : o.kafka) set(k, v);
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(impl_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(impl_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    throw std::runtime_error("kafka callbacks: " + err);
  }
  impl_->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (impl_->consumer == nullptr) throw std::runtime_error("kafka consumer: " + err);
  const RdKafka::ErrorCode e = impl_->consumer->subscribe({o.topic});
  if (e != RdKafka::ERR_NO_ERROR) throw std::runtime_error("subscribe: " + RdKafka::err2str(e));
  Logger()->info(
      "d2c consumer joining group=\"{}\" topic=\"{}\" owner=\"{}\" instance_id=\"{}\" "
      "brokers=\"{}\"",
      o.group, o.topic, o.owner, o.instance_id, o.brokers);
  impl_->poller = std::thread([this] { impl_->Loop(); });
}

void D2cConsumer::Stop() {
  impl_->stopping = true;
  if (impl_->poller.joinable()) impl_->poller.join();
  impl_->executor.Stop();
}

std::optional<std::chrono::steady_clock::duration> D2cConsumer::Stalled() const {
  const auto at = impl_->polled_at.load();
  if (at == 0) return std::nullopt;
  const auto since_poll = SteadyClock::now().time_since_epoch() - SteadyClock::duration(at);
  return std::max(since_poll, impl_->executor.OldestWait().value_or(SteadyClock::duration::zero()));
}

std::string D2cConsumer::rebalance_protocol() const {
  return impl_->consumer == nullptr ? "NONE" : impl_->consumer->rebalance_protocol();
}

}  // namespace ferry::d2c
