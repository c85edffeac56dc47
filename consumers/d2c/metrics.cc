#include "consumers/d2c/metrics.h"

namespace ferry::d2c {

Metrics::Metrics(prometheus::Registry& r)
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
      batch_records(prometheus::BuildHistogram()
                        .Name("ferry_d2c_batch_records")
                        .Help("Records per landing batch.")
                        .Register(r)
                        .Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 50, 100, 500, 1000,
                                                                         2000, 5000, 10000})),
      batch_seconds(
          prometheus::BuildHistogram()
              .Name("ferry_d2c_batch_duration_seconds")
              .Help("Time to land one batch (all its transactions).")
              .Register(r)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                               0.25, 0.5, 1, 2.5, 5})),
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
              .Help("1 while a partition owned here is stopped because its checkpoint is above the "
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

}  // namespace ferry::d2c
