// WebhookProcessor: a durable queue processed by alarms. See README.md.
#pragma once

#include <dobj/dobj.h>

namespace examples {

class WebhookProcessor : public dobj::DurableObject {
 public:
  WebhookProcessor(dobj::State& state, dobj::Env& env);
  dobj::Task<dobj::Response> fetch(dobj::Request req) override;
  dobj::Task<void> alarm(dobj::AlarmInfo info) override;

  static constexpr int kMaxAttempts = 3;

 private:
  void schedule_next();
};

}  // namespace examples
