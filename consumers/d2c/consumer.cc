#include "consumers/d2c/consumer.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <variant>

#include "consumers/d2c/metrics.h"
#include "core/d2c/partition.h"
#include "core/error.h"
#include "core/executor.h"
#include "core/kafka/group_consumer.h"
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
  explicit LogicalStartOffsets(const std::unique_ptr<kafka::GroupConsumer>& consumer)
      : consumer_(consumer) {}
  std::int64_t Resolve(const std::string& /*topic: the consumer's*/, std::int32_t partition,
                       StartFrom from, TimePoint at) override {
    switch (from) {
      case StartFrom::kEarliest:
        return kafka::kOffsetBeginning;
      case StartFrom::kLatest:
        return kafka::kOffsetEnd;
      case StartFrom::kTimestamp: {
        const std::int64_t offset = consumer_->OffsetForTime(
            partition,
            std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count(),
            std::chrono::milliseconds(10000));
        return offset < 0 ? kafka::kOffsetEnd : offset;
      }
    }
    return kafka::kOffsetBeginning;
  }

 private:
  const std::unique_ptr<kafka::GroupConsumer>& consumer_;
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

struct D2cConsumer::Impl final : public kafka::GroupConsumer::Listener {
  Impl(ConsumerOptions o, EventStore& s, const Clock& c, prometheus::Registry& r, StartOffsets* so)
      : options(std::move(o)),
        store(s),
        clock(c),
        metrics(r),
        executor(options.landing_threads + 1),
        parts(PartitionLimits{BatchLimits{options.batch_max_records, options.batch_max_bytes},
                              options.linger, options.max_buffered_records,
                              options.max_buffered_bytes}),
        logical(kafka),
        start_offsets(so != nullptr ? so : &logical) {}

  ConsumerOptions options;
  EventStore& store;
  const Clock& clock;
  Metrics metrics;
  Executor executor;
  // Poll thread only: every decision about a partition is made here.
  Partitions parts;
  std::unique_ptr<kafka::GroupConsumer> kafka;
  LogicalStartOffsets logical;
  StartOffsets* start_offsets;

  std::thread poller;
  std::atomic<bool> stopping{false};
  // steady_clock ticks when the poll loop last went round; 0 when not polling.
  std::atomic<SteadyClock::rep> polled_at{0};
  bool fatal_reported = false;

  SteadyClock::time_point next_lag_report;  // poll thread only

  // Shared with executor jobs.
  std::mutex mutex;
  std::condition_variable done_cv;
  std::set<std::int32_t> in_flight;  // partitions with a claim or a landing out
  std::deque<std::variant<ClaimDone, LandDone, EpochsDone, GapCheckDone>> done;

  // ---- Kafka's events (on the poll thread) ----

  void OnFatal(const std::string& error) override {
    if (!fatal_reported && options.on_fatal) {
      fatal_reported = true;
      options.on_fatal(error);
    }
  }

  void OnRebalance(const char* kind) override {
    metrics.rebalances.Add({{"kind", kind}}).Increment();
  }

  void OnAssigned(const std::vector<std::int32_t>& partitions) override {
    for (const std::int32_t p : partitions) {
      parts.Assign(p, SteadyClock::now());
      Logger()->info("partition assigned, claiming partition={} owner=\"{}\"", p, options.owner);
    }
  }

  void OnRevoked(const std::vector<std::int32_t>& partitions, bool lost) override {
    for (const std::int32_t p : partitions) Release(p, lost ? "lost" : "revoked");
  }

  void OnRecord(KafkaRecord r) {
    const std::int32_t p = r.partition;
    if (parts.Append(std::move(r), SteadyClock::now()) == AppendResult::kPause) kafka->Pause(p);
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

  // Starts fetching `p` at `offset` (absolute or logical); false if it
  // could not (the partition is then claimed afresh, with backoff).
  bool StartAt(std::int32_t p, std::int64_t offset) {
    return kafka->StartAt(p, offset, [this](std::int32_t q) { return parts.PlacementOf(q); });
  }

  // The effects of a fence Partitions decided: `p` is paused until claimed
  // afresh.
  void Fenced(std::int32_t p, const char* why) {
    kafka->Pause(p);
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
        LogPlace place;
        for (int attempt = 0;; ++attempt) {
          std::tie(d.low, d.high) =
              kafka->QueryWatermarks(d.partition, std::chrono::milliseconds(5000));
          place = PlaceInLog(d.from, d.start, d.low, d.high);
          if (place.kind != LogPlace::Kind::kAboveEnd || attempt == 4 || stopping) break;
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        switch (place.kind) {
          case LogPlace::Kind::kInside:
            d.resume_at = place.at;
            break;
          case LogPlace::Kind::kBelowStart:
            d.gap = store.SkipDeleted({options.group, options.topic, d.partition}, epoch, *d.from,
                                      place.at, options.owner);
            if (!d.gap->fenced) d.resume_at = place.at;
            break;
          case LogPlace::Kind::kAboveEnd:
            d.ahead = true;
            break;
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
    // The landing committed: its rows are in the store whoever owns the
    // partition by now, so they are counted before the ownership check (a
    // batch that finished after a revocation was once left uncounted).
    CountLanded(d);
    if (!parts.OnLanded(d.partition, d.generation, o.next_offset)) return;
    // The position is the owner's to report (Release removed the series).
    metrics.next_offset.Add({{"partition", metrics.P(d.partition)}})
        .Set(static_cast<double>(o.next_offset));
    // For standard lag tools only: the checkpoint in PostgreSQL is the truth.
    kafka->Commit(d.partition, o.next_offset);
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
          kafka->Resume(job.partition);
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
      const auto watermarks = kafka->CachedWatermarks(p);
      if (watermarks && watermarks->second >= 0) {
        metrics.lag.Add({{"partition", metrics.P(p)}})
            .Set(static_cast<double>(
                LagRecords(st.checkpoint, watermarks->first, watermarks->second)));
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
      // Up to 1000 records already fetched are taken before the bookkeeping.
      kafka->Poll(
          std::chrono::milliseconds(20), 1000, [this](KafkaRecord r) { OnRecord(std::move(r)); },
          [this](std::int32_t p, std::int64_t offset, const std::string& why) {
            OnOutOfRange(p, offset, why);
          });
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
    // waits a bounded while for that assignment.
    kafka->Close(std::chrono::seconds(10));
    if (kafka->leaked()) {
      // Still none (the broker is away): destroying the handle could abort
      // the process, so it is left to the exit.
      Logger()->warn(
          "d2c consumer stopped before its first assignment; its Kafka handle is left to the "
          "process exit"
          " (librdkafka 2.0.2 would abort destroying it)");
    }
    Logger()->info("d2c consumer left the group");
  }
};

namespace {

// The librdkafka properties of the D2C consumer: Ferry's defaults, then the
// operator's (a later one overrides).
std::vector<std::pair<std::string, std::string>> KafkaProperties(const ConsumerOptions& o) {
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", o.brokers},
      {"group.id", o.group},
      {"client.id", "ferryd-" + o.owner},
      // Eager round-robin, not cooperative-sticky: librdkafka 2.0.2's sticky
      // assignor crashes the process (a SIGSEGV in its own thread, where no
      // handler runs) when partition ownership changes under it, as it does
      // with members killed and restarted (fixed in 2.2.0, librdkafka#4252;
      // the soak found it), and aborts when destroyed before its first
      // assignment (#4312). Eager rebalances pause every partition for a
      // moment; fencing keeps landing exactly-once either way.
      // `--kafka-property partition.assignment.strategy=cooperative-sticky`
      // still works.
      {"partition.assignment.strategy", "roundrobin"},
      // Defaults for Kubernetes (a property given overrides them): a crashed
      // replica's partitions move after 10 s instead of librdkafka's 45 s
      // (brokers refuse sessions under 6 s); docs/reliability.md has the
      // measurements.
      {"session.timeout.ms", "10000"},
      {"heartbeat.interval.ms", "2000"},
  };
  if (!o.instance_id.empty()) props.emplace_back("group.instance.id", o.instance_id);
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("enable.auto.offset.store", "false");
  // Never let Kafka move a partition: an out-of-range position is reported
  // (GroupConsumer::Poll) and the checkpoint decides, recording any gap.
  if (o.kafka.count("auto.offset.reset") != 0) {
    throw std::runtime_error(
        "kafka property auto.offset.reset is Ferry's own (error): the checkpoint decides where a "
        "partition "
        "resumes, and records deleted before they landed are recorded as a gap, never skipped "
        "silently");
  }
  props.emplace_back("auto.offset.reset", "error");
  props.emplace_back("enable.partition.eof", "false");
  // librdkafka's prefetch, sized from the one budget (its queue is the
  // consumer's single queue, so the bound holds whatever the partition
  // count): a quarter of it queued, a quarter per fetch response (at least
  // what one message may take), and one queued message per KiB of that
  // quarter (each costs a few hundred bytes of librdkafka bookkeeping beyond
  // its payload, which queued.max.messages.kbytes does not count; 100,000,
  // librdkafka's default, took 40 MiB more). BENCHMARKS.md has the figures.
  const std::size_t quarter = o.max_buffered_bytes / 4;
  props.emplace_back("queued.max.messages.kbytes",
                     std::to_string(std::max<std::size_t>(quarter / 1024, 1024)));
  props.emplace_back("queued.min.messages",
                     std::to_string(std::max<std::size_t>(quarter / 1024, 2000)));
  props.emplace_back("fetch.max.bytes",
                     std::to_string(std::clamp<std::size_t>(quarter, 1 << 20, 64 << 20)));
  props.emplace_back("max.partition.fetch.bytes", "1048576");
  for (const auto& [k, v] : o.kafka) props.emplace_back(k, v);
  return props;
}

}  // namespace

D2cConsumer::D2cConsumer(ConsumerOptions options, EventStore& store, const Clock& clock,
                         prometheus::Registry& registry, StartOffsets* start_offsets)
    : impl_(std::make_unique<Impl>(std::move(options), store, clock, registry, start_offsets)) {}

D2cConsumer::~D2cConsumer() {
  Stop();
  if (impl_->kafka != nullptr && impl_->kafka->leaked()) {
    // The handle's threads may still call back into impl_: both stay.
    (void)impl_.release();
    return;
  }
  // Before the rest of impl_, which its callbacks use.
  impl_->kafka.reset();
}

void D2cConsumer::Start() {
  const ConsumerOptions& o = impl_->options;
  impl_->kafka =
      std::make_unique<kafka::GroupConsumer>(KafkaProperties(o), o.topic, *impl_, Logger());
  impl_->kafka->Subscribe();
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
  return impl_->kafka == nullptr ? "NONE" : impl_->kafka->RebalanceProtocol();
}

}  // namespace ferry::d2c
