#include "consumers/d2c/metrics.h"

#include "core/metrics.h"

namespace ferry::d2c {

Metrics::Metrics(prometheus::Registry& r)
    : events(metrics::CounterFamily(r, "ferry_d2c_events_landed_total",
                                    "D2C events landed in the event store, by Kafka partition.")),
      bytes(metrics::CounterFamily(r, "ferry_d2c_bytes_landed_total",
                                   "Body bytes of the D2C events landed, by Kafka partition.")),
      dead_letters(metrics::CounterFamily(r, "ferry_d2c_dead_letters_total",
                                          "D2C records dead-lettered, by reason.")),
      batch_records(metrics::Histogram(
          r, "ferry_d2c_batch_records", "Records per landing batch.",
          prometheus::Histogram::BucketBoundaries{1, 10, 50, 100, 500, 1000, 2000, 5000, 10000})),
      batch_seconds(metrics::Histogram(
          r, "ferry_d2c_batch_duration_seconds", "Time to land one batch (all its transactions).",
          prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1, 2.5, 5})),
      next_offset(metrics::GaugeFamily(r, "ferry_d2c_next_offset",
                                       "Checkpointed next offset, by Kafka partition owned here.")),
      lag(metrics::GaugeFamily(r, "ferry_d2c_lag_records",
                               "High watermark minus checkpoint, by Kafka partition owned here.")),
      owned(metrics::GaugeFamily(r, "ferry_d2c_partition_owned",
                                 "1 while this process owns and consumes the Kafka partition.")),
      rebalances(metrics::CounterFamily(r, "ferry_d2c_rebalances_total",
                                        "Partition assignments and revocations seen, by kind.")),
      fenced(
          metrics::Counter(r, "ferry_d2c_fenced_batches_total",
                           "Batches not landed because another owner had claimed the partition.")),
      claim_retries(metrics::Counter(r, "ferry_d2c_claim_retries_total",
                                     "Failed partition claims retried with backoff.")),
      landing_retries(metrics::Counter(r, "ferry_d2c_landing_retries_total",
                                       "Batches whose landing failed and was retried.")),
      routed(metrics::CounterFamily(
          r, "ferry_d2c_routed_total",
          "D2C messages delivered by routing, by endpoint (replays included).")),
      dropped(
          metrics::Counter(r, "ferry_d2c_dropped_total",
                           "D2C messages that matched no route with the fallback off (IoT Hub's "
                           "d2c.telemetry.egress.dropped).")),
      oversized(metrics::CounterFamily(
          r, "ferry_d2c_endpoint_oversized_total",
          "D2C messages not delivered to a Kafka endpoint because its enrichments made "
          "them larger than 256 KB, by endpoint (IoT Hub's "
          "d2c.telemetry.egress.invalid).")),
      undefined(
          metrics::CounterFamily(r, "ferry_d2c_route_evaluation_undefined_total",
                                 "Route conditions that evaluated to undefined or null (a missing "
                                 "property, a type mismatch, a non-JSON body), by route.")),
      replay_skipped(
          metrics::Counter(r, "ferry_d2c_replay_skipped_total",
                           "Replayed records skipped: already landed, or past retention.")),
      resets(metrics::Counter(
          r, "ferry_d2c_checkpoint_resets_seen_total",
          "Owned partitions whose checkpoint was reset by an operator, seen here.")),
      lost(metrics::CounterFamily(
          r, "ferry_d2c_lost_records_total",
          "Records Kafka deleted (retention, DeleteRecords) before they were landed: "
          "data "
          "loss, by Kafka partition; each gap is also a row in d2c_gaps.")),
      stopped(metrics::GaugeFamily(
          r, "ferry_d2c_partition_stopped",
          "1 while a partition owned here is stopped because its checkpoint is above the "
          "log's end (topic re-created?): reset its checkpoint to go on.")),
      buffered(metrics::Gauge(r, "ferry_d2c_buffered_bytes",
                              "D2C data fetched and not yet landed here (buffered, or in a batch "
                              "being landed), "
                              "against the --d2c-buffer-mb budget.")),
      route_version(metrics::Gauge(r, "ferry_d2c_route_version",
                                   "Route-set version of the last batch landed here.")) {}

}  // namespace ferry::d2c
