#include "core/d2c/partition.h"

#include <algorithm>

namespace ferry::d2c {

std::size_t HeldBytes(const KafkaRecord& r) {
  // A small event with a few headers takes about twice its size_bytes().
  constexpr std::size_t kPerString = 32;
  return r.size_bytes() + sizeof(KafkaRecord) + 3 * kPerString +
         r.headers.size() * (sizeof(KafkaHeader) + 2 * kPerString);
}

std::int64_t LagRecords(std::optional<std::int64_t> checkpoint, std::int64_t low,
                        std::int64_t high) {
  const std::int64_t from = checkpoint ? *checkpoint : std::max<std::int64_t>(low, 0);
  return std::max<std::int64_t>(0, high - from);
}

LogPlace PlaceInLog(std::optional<std::int64_t> checkpoint, std::int64_t start, std::int64_t low,
                    std::int64_t high) {
  if (!checkpoint)
    return {LogPlace::Kind::kInside, start < 0 ? start : std::clamp(start, low, high)};
  if (*checkpoint < low) return {LogPlace::Kind::kBelowStart, low};
  if (*checkpoint > high) return {LogPlace::Kind::kAboveEnd, high};
  return {LogPlace::Kind::kInside, *checkpoint};
}

const Partition* Partitions::Find(std::int32_t p) const {
  const auto it = parts_.find(p);
  return it == parts_.end() ? nullptr : &it->second;
}

Partition* Partitions::Current(std::int32_t p, std::uint64_t generation) {
  const auto it = parts_.find(p);
  if (it == parts_.end() || it->second.generation != generation) return nullptr;
  return &it->second;
}

std::chrono::milliseconds Partitions::Backoff(int failures) {
  return std::chrono::milliseconds(100 << failures);
}

void Partitions::Assign(std::int32_t p, SteadyTime now) {
  Partition& st = parts_[p];
  st = Partition{};
  st.generation = next_generation_++;
  st.claim_at = now;
}

bool Partitions::Release(std::int32_t p) {
  const auto it = parts_.find(p);
  if (it == parts_.end()) return false;
  buffered_bytes_ -= it->second.held_bytes;
  parts_.erase(it);
  return true;
}

AppendResult Partitions::Append(KafkaRecord r, SteadyTime now) {
  const auto it = parts_.find(r.partition);
  if (it == parts_.end()) return AppendResult::kIgnored;
  Partition& st = it->second;
  if (st.phase != Partition::Phase::kActive) return AppendResult::kIgnored;
  if (st.expected_offset && r.offset < *st.expected_offset) {
    return AppendResult::kIgnored;  // a stale pre-seek fetch
  }
  if (st.buffer.empty()) st.first_buffered = now;
  st.buffer_bytes += r.size_bytes();
  const std::size_t held = HeldBytes(r);
  st.held_bytes += held;
  buffered_bytes_ += held;
  st.expected_offset = r.offset + 1;
  st.buffer.push_back(std::move(r));
  // Half the budget is for what is held here, the other half for
  // librdkafka's prefetch (which drains into it after a pause).
  if (!st.backpressure && (st.buffer.size() >= limits_.max_buffered_records ||
                           buffered_bytes_ >= limits_.max_buffered_bytes / 2)) {
    st.backpressure = true;
    return AppendResult::kPause;
  }
  return AppendResult::kBuffered;
}

std::vector<PartitionJob> Partitions::Dispatch(SteadyTime now, bool flush, bool stopping) {
  std::vector<PartitionJob> jobs;
  for (auto& [p, st] : parts_) {
    if (st.phase == Partition::Phase::kClaiming) {
      if (!st.claim_posted && now >= st.claim_at && !stopping) {
        st.claim_posted = true;
        jobs.push_back({PartitionJob::Kind::kClaim, p, st.generation});
      }
      continue;
    }
    if (st.phase == Partition::Phase::kStopped || st.landing || st.gap_check_posted) continue;
    if (st.out_of_range && !st.retry && st.buffer.empty()) {
      // Everything fetched has landed: the checkpoint is the position.
      if (now >= st.gap_check_at && !stopping) {
        st.gap_check_posted = true;
        jobs.push_back({PartitionJob::Kind::kGapCheck, p, st.generation, st.epoch, st.checkpoint,
                        st.expected_offset.value_or(st.start_offset)});
      }
      continue;
    }
    if (st.retry) {
      if (now < st.retry_at && !flush) continue;
      PartitionJob job{PartitionJob::Kind::kLand, p, st.generation, st.epoch};
      job.records = std::move(*st.retry);
      st.retry.reset();
      st.landing = true;
      jobs.push_back(std::move(job));
      continue;
    }
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - st.first_buffered);
    if (!BatchDue(st.buffer.size(), st.buffer_bytes, waited, limits_.linger, limits_.batch,
                  flush || st.out_of_range)) {
      continue;
    }
    PartitionJob job{PartitionJob::Kind::kLand, p, st.generation, st.epoch};
    st.buffer_bytes -= TakeBatch(st.buffer, limits_.batch, job.records);
    st.out_bytes = 0;
    for (const KafkaRecord& r : job.records) st.out_bytes += HeldBytes(r);
    if (!st.buffer.empty()) st.first_buffered = now;
    st.landing = true;
    jobs.push_back(std::move(job));
  }
  // Resume what back-pressure paused once both its own buffer and the
  // total have halved.
  if (buffered_bytes_ < limits_.max_buffered_bytes / 4) {
    for (auto& [p, st] : parts_) {
      if (st.backpressure && st.phase == Partition::Phase::kActive &&
          st.buffer.size() < limits_.max_buffered_records / 2) {
        st.backpressure = false;
        jobs.push_back({PartitionJob::Kind::kResume, p, st.generation});
      }
    }
  }
  return jobs;
}

bool Partitions::OnClaimFailed(std::int32_t p, std::uint64_t generation, SteadyTime now) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->claim_posted = false;
  st->failures = std::min(st->failures + 1, 8);
  st->claim_at = now + Backoff(st->failures);
  return true;
}

bool Partitions::OnClaimed(std::int32_t p, std::uint64_t generation, std::int64_t epoch,
                           std::optional<std::int64_t> checkpoint, std::int64_t start_offset) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->claim_posted = false;
  st->failures = 0;
  st->epoch = epoch;
  st->checkpoint = checkpoint;
  // A logical start (earliest, latest) has no offset to compare records with.
  st->expected_offset = start_offset >= 0 ? std::optional(start_offset) : std::nullopt;
  st->start_offset = start_offset;
  st->phase = Partition::Phase::kActive;
  return true;
}

void Partitions::OnStartFailed(std::int32_t p, SteadyTime now) {
  const auto it = parts_.find(p);
  if (it == parts_.end()) return;
  Fence(it->second, now);
  it->second.claim_at = now + std::chrono::seconds(1);
}

void Partitions::Fence(Partition& st, SteadyTime now) {
  st.phase = Partition::Phase::kClaiming;
  st.generation = next_generation_++;
  st.buffer.clear();
  buffered_bytes_ -= st.held_bytes;
  st.buffer_bytes = 0;
  st.held_bytes = 0;
  st.out_bytes = 0;
  st.retry.reset();
  st.backpressure = false;
  st.out_of_range = false;
  st.claim_posted = false;
  st.claim_at = now;
}

bool Partitions::OnLanded(std::int32_t p, std::uint64_t generation, std::int64_t next_offset) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->landing = false;
  st->failures = 0;
  st->held_bytes -= st->out_bytes;
  buffered_bytes_ -= st->out_bytes;
  st->out_bytes = 0;
  st->checkpoint = next_offset;
  return true;
}

bool Partitions::OnLandingFailed(std::int32_t p, std::uint64_t generation,
                                 std::vector<KafkaRecord> records, SteadyTime now) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->landing = false;
  st->failures = std::min(st->failures + 1, 8);
  st->retry = std::move(records);
  st->retry_at = now + Backoff(st->failures);
  return true;
}

bool Partitions::OnLandingFenced(std::int32_t p, std::uint64_t generation, SteadyTime now) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->landing = false;
  Fence(*st, now);
  return true;
}

std::map<std::int32_t, std::int64_t> Partitions::EpochsToCheck() const {
  std::map<std::int32_t, std::int64_t> asked;
  for (const auto& [p, st] : parts_) {
    if (st.phase != Partition::Phase::kClaiming) asked[p] = st.epoch;
  }
  return asked;
}

std::vector<std::pair<std::int32_t, EpochMove>> Partitions::OnEpochs(
    const std::map<std::int32_t, std::int64_t>& asked,
    const std::map<std::int32_t, std::pair<std::int64_t, std::string>>& epochs,
    const std::string& owner, SteadyTime now) {
  epochs_posted_ = false;
  std::vector<std::pair<std::int32_t, EpochMove>> fenced;
  for (const auto& [p, asked_epoch] : asked) {
    const auto it = parts_.find(p);
    const auto now_epoch = epochs.find(p);
    if (it == parts_.end() || now_epoch == epochs.end()) continue;
    Partition& st = it->second;
    // Only a partition still at the epoch asked about, with no batch out
    // (a landing batch finds out itself, fenced), whose epoch moved.
    if (st.phase == Partition::Phase::kClaiming || st.epoch != asked_epoch || st.landing ||
        now_epoch->second.first == asked_epoch) {
      continue;
    }
    // Still ours: an operator reset the checkpoint. Else claimed elsewhere
    // while Kafka still assigns it here: as for a fenced batch, claim it
    // afresh (a revocation follows if the group moved it).
    fenced.emplace_back(
        p, now_epoch->second.second == owner ? EpochMove::kReset : EpochMove::kClaimedElsewhere);
    Fence(st, now);
  }
  return fenced;
}

OutOfRangeResult Partitions::OnOutOfRange(std::int32_t p) {
  const auto it = parts_.find(p);
  // Before the claim it was assigned at Kafka's committed offset: the claim
  // starts it at the checkpoint.
  if (it == parts_.end() || it->second.phase != Partition::Phase::kActive) {
    return OutOfRangeResult::kNotActive;
  }
  const bool first = !it->second.out_of_range;
  it->second.out_of_range = true;
  return first ? OutOfRangeResult::kFirstReport : OutOfRangeResult::kRepeated;
}

bool Partitions::OnGapCheckFailed(std::int32_t p, std::uint64_t generation, SteadyTime now) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return false;
  st->gap_check_posted = false;
  st->gap_check_at = now + std::chrono::seconds(1);
  return true;
}

GapResult Partitions::OnGapChecked(std::int32_t p, std::uint64_t generation, const GapCheck& check,
                                   SteadyTime now) {
  Partition* st = Current(p, generation);
  if (st == nullptr) return GapResult::kStale;
  st->gap_check_posted = false;
  if (check.fenced) {
    Fence(*st, now);
    return GapResult::kFenced;
  }
  st->out_of_range = false;
  if (check.ahead) {
    st->phase = Partition::Phase::kStopped;
    return GapResult::kStopped;
  }
  if (check.skipped) st->checkpoint = *check.resume_at;
  // What arrived since the check was posted (a stale report: fetching had
  // gone on) is fetched again from the resume position.
  st->buffer.clear();
  buffered_bytes_ -= st->held_bytes - st->out_bytes;
  st->held_bytes = st->out_bytes;
  st->buffer_bytes = 0;
  st->backpressure = false;
  st->expected_offset = *check.resume_at >= 0 ? std::optional(*check.resume_at) : std::nullopt;
  return GapResult::kResume;
}

Placement Partitions::PlacementOf(std::int32_t p) const {
  const Partition* st = Find(p);
  if (st == nullptr) return {};
  Placement placement;
  const bool active = st->phase == Partition::Phase::kActive;
  // One that is consuming resumes where the next record is expected.
  if (active && !st->out_of_range) {
    placement.offset = st->expected_offset.value_or(st->start_offset);
  }
  placement.paused = !active || st->backpressure || st->out_of_range;
  return placement;
}

bool Partitions::Drained() const {
  return std::all_of(parts_.begin(), parts_.end(),
                     [](const auto& e) { return e.second.buffer.empty() && !e.second.retry; });
}

}  // namespace ferry::d2c
