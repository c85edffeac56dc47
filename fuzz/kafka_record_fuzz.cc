// Kafka record decoding (core/d2c/record.h, the contract of
// docs/d2c-record-contract.md). The input is taken apart into a key, a
// value, a timestamp and headers, named from the contract's header names or
// arbitrarily. Properties: Decode never throws and gives exactly one of an
// event or a dead letter; an event holds only what the store accepts (a
// device id of 1 to 128 characters of text, text properties, a time inside
// the store's years, at most 256 KB as IoT Hub counts).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "core/d2c/record.h"
#include "fuzz/fuzz_check.h"

namespace {

constexpr std::array<const char*, 16> kNames = {"iothub-connection-device-id",
                                                "iothub-enqueuedtime",
                                                "message-id",
                                                "correlation-id",
                                                "content-type",
                                                "content-encoding",
                                                "iothub-creation-time-utc",
                                                "device_id",
                                                "creation-time",
                                                "ttl",
                                                "qos",
                                                "iothub-message-source",
                                                "x-opt-sequence-number",
                                                "dt-subject",
                                                "temperature",
                                                "level"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferry::d2c;
  FuzzedDataProvider in(data, size);
  KafkaRecord record;
  record.topic = "events";
  record.offset = 42;
  if (in.ConsumeBool()) record.key = in.ConsumeRandomLengthString(160);
  if (in.ConsumeBool()) record.timestamp_ms = in.ConsumeIntegral<std::int64_t>();
  const int headers = in.ConsumeIntegralInRange(0, 12);
  for (int i = 0; i < headers; ++i) {
    KafkaHeader h;
    h.name = in.ConsumeBool() ? std::string(in.PickValueInArray(kNames))
                              : in.ConsumeRandomLengthString(40);
    if (in.ConsumeIntegralInRange(0, 9) != 0) h.value = in.ConsumeRandomLengthString(200);
    record.headers.push_back(std::move(h));
  }
  const auto now = ferry::TimePoint(
      std::chrono::milliseconds(in.ConsumeIntegralInRange<std::int64_t>(0, 7258118399999)));
  record.value = in.ConsumeRemainingBytesAsString();

  const Decoded decoded = Decode(record, now);
  FERRY_FUZZ_CHECK(decoded.event.has_value() != decoded.dead_letter.has_value());
  if (decoded.dead_letter) {
    FERRY_FUZZ_CHECK(!decoded.dead_letter->detail.empty());
    FERRY_FUZZ_CHECK(!ReasonName(decoded.dead_letter->reason).empty());
    return 0;
  }
  const Event& e = *decoded.event;
  FERRY_FUZZ_CHECK(!e.device_id.empty() && e.device_id.size() <= 128 &&
                   IsStorableText(e.device_id));
  FERRY_FUZZ_CHECK(IsStorableTime(e.enqueued_time));
  FERRY_FUZZ_CHECK(!e.creation_time || IsStorableTime(*e.creation_time));
  for (const auto* props : {&e.system_properties, &e.application_properties}) {
    for (const auto& [k, v] : *props)
      FERRY_FUZZ_CHECK(!k.empty() && IsStorableText(k) && IsStorableText(v));
  }
  FERRY_FUZZ_CHECK(e.system_properties.at("iothub-connection-device-id") == e.device_id);
  FERRY_FUZZ_CHECK(MessageSize(e) <= kMaxD2cMessageBytes);
  FERRY_FUZZ_CHECK(e.body == record.value);
  return 0;
}
