// C2D send validation (core/c2d/send.h). The input is taken apart into a
// SendRequest. Properties: ValidateSend fails only with ferry::Error, and
// only ArgumentInvalid or MessageTooLarge; what it accepts keeps IoT Hub's
// rules (ids and property characters, at most 128 properties, expiry 1
// minute to 2 days from now, 64 KB as IoT Hub counts).

#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "core/c2d/send.h"
#include "core/device_id.h"
#include "core/error.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferry::c2d;
  FuzzedDataProvider in(data, size);
  SendRequest r;
  r.device_id = in.ConsumeRandomLengthString(140);
  r.message_id = in.ConsumeRandomLengthString(140);
  r.correlation_id = in.ConsumeRandomLengthString(140);
  r.user_id = in.ConsumeRandomLengthString(140);
  r.ack = static_cast<Ack>(in.ConsumeIntegralInRange(0, 3));
  if (in.ConsumeBool()) r.ttl = std::chrono::microseconds(in.ConsumeIntegral<std::int64_t>());
  if (in.ConsumeBool()) {
    // Protobuf timestamps (years 1 to 9999), converted as the service does.
    r.expiry_time = ferry::FromUnixMicros(
        in.ConsumeIntegralInRange<std::int64_t>(-62135596800000000, 253402300799000000));
  }
  r.content_type = in.ConsumeRandomLengthString(300);
  r.content_encoding = in.ConsumeRandomLengthString(300);
  const int properties = in.ConsumeIntegralInRange(0, 140);
  for (int i = 0; i < properties && in.remaining_bytes() > 0; ++i) {
    r.properties.emplace_back(in.ConsumeRandomLengthString(30), in.ConsumeRandomLengthString(60));
  }
  if (in.ConsumeBool()) {
    r.body.assign(in.ConsumeIntegralInRange<std::size_t>(0, 70000), 'b');
  } else {
    r.body = in.ConsumeRemainingBytesAsString();
  }
  const ferry::TimePoint now(std::chrono::seconds(1795000000));

  OutgoingMessage m;
  try {
    m = ValidateSend(r, now, std::chrono::hours(1), [] { return std::string("generated-id"); });
  } catch (const ferry::Error& e) {
    FERRY_FUZZ_CHECK(e.reason() == ferry::Reason::kArgumentInvalid ||
                     e.reason() == ferry::Reason::kMessageTooLarge);
    return 0;
  }
  FERRY_FUZZ_CHECK(!m.device_id.empty() && m.device_id.size() <= 128);
  for (const char c : m.device_id) FERRY_FUZZ_CHECK(ferry::IsDeviceIdChar(c));
  FERRY_FUZZ_CHECK(!m.message_id.empty() && m.message_id.size() <= kMaxC2dIdLength);
  FERRY_FUZZ_CHECK(m.expires_at >= now + kMinTtl && m.expires_at <= now + kMaxTtl);
  FERRY_FUZZ_CHECK(m.properties.size() <= kMaxC2dProperties);
  std::size_t bytes = m.body.size() + m.message_id.size();
  for (const auto& [k, v] : m.properties) {
    FERRY_FUZZ_CHECK(!k.empty());
    bytes += k.size() + v.size();
  }
  FERRY_FUZZ_CHECK(bytes <= kMaxC2dMessageBytes);
  return 0;
}
