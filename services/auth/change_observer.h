#pragma once

#include <functional>
#include <string>

namespace ferry::access {

// Told "device:<id>" or "policy:<name>" after a write to credentials, so that
// this process's credential cache drops its copy at once instead of waiting
// for the NOTIFY round trip (other replicas wait for NOTIFY).
using ChangeObserver = std::function<void(const std::string& subject)>;

// Calls the observer when the write returns or throws: an extra
// invalidation is harmless, a missing one is not.
class NotifyOnExit final {
 public:
  NotifyOnExit(const ChangeObserver& observer, std::string subject)
      : observer_(observer), subject_(std::move(subject)) {}
  ~NotifyOnExit() {
    if (observer_) observer_(subject_);
  }
  NotifyOnExit(const NotifyOnExit&) = delete;
  NotifyOnExit& operator=(const NotifyOnExit&) = delete;

 private:
  const ChangeObserver& observer_;
  std::string subject_;
};

}  // namespace ferry::access
