#include "support/mixed_load.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "testing/http_client.h"
#include "testing/ws_client.h"

namespace dobj::test {

using Json = nlohmann::json;
using namespace std::chrono_literals;

MixedLoad::MixedLoad(std::string tag, uint32_t seed) : tag_(std::move(tag)), rng_(seed) {}

namespace {

// One kept-alive connection per node; each request through a random one.
class Through {
 public:
  Through(const std::vector<int>& ports, unsigned seed) : pick_(seed) {
    for (int port : ports) clients_.push_back(std::make_unique<HttpClient>(port, 2s));
  }
  HttpResponse request(const std::string& method, const std::string& target, const std::string& body = "") {
    return clients_[pick_() % clients_.size()]->request(method, target, body);
  }

 private:
  std::mt19937 pick_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

}  // namespace

bool MixedLoad::prepare(int port) {
  for (int a = 0; a < kAccounts; ++a) {
    if (http(port, "POST",
             "/bank/" + tag_ + "/deposit?account=a" + std::to_string(a) +
                 "&amount=" + std::to_string(kStartBalance))
            .status != 200) {
      return false;
    }
  }
  Json create = {{"query", "CREATE TABLE IF NOT EXISTS t(v INTEGER PRIMARY KEY)"}};
  return http(port, "POST", "/sql/" + tag_, create.dump()).status == 200;
}

void MixedLoad::run(const std::vector<int>& ports, const std::function<void()>& cut) {
  ++round_;
  unsigned seed = static_cast<unsigned>(round_) * 100;
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  auto take_id = [this] {
    std::lock_guard lock(mu_);
    return next_id_++;
  };
  for (int c = 0; c < kCounters; ++c) {
    load.emplace_back([&, c, seed = seed + 10 + static_cast<unsigned>(c)] {
      Through client(ports, seed);
      while (!stop) {
        HttpResponse r =
            client.request("POST", "/counter/" + tag_ + "-c" + std::to_string(c) + "/increment");
        std::lock_guard lock(mu_);
        if (r.status != 200) {
          ++unanswered_[c];
          if (r.status != 0 && !(unavailable_is_unknown_ && r.status == 503)) {
            odd_answers_.push_back("increment answered " + std::to_string(r.status) + ": " + r.body);
          }
          return;
        }
        counter_[c] = std::stoll(r.body);
        unanswered_[c] = 0;
      }
    });
  }
  for (int b = 0; b < kBatchers; ++b) {
    load.emplace_back([&, b, seed = seed + 20 + static_cast<unsigned>(b)] {
      Through client(ports, seed);
      while (!stop) {
        std::string n = std::to_string(take_id());
        Json body = {{"put", {{"b" + n + "-x", n}, {"b" + n + "-y", n}}}};
        HttpResponse r =
            client.request("POST", "/kv/" + tag_ + "-b" + std::to_string(b) + "/batch", body.dump());
        if (r.status != 200) return;
        std::lock_guard lock(mu_);
        batches_[b].push_back(std::stoi(n));
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&, t, seed = seed + 30 + static_cast<unsigned>(t)] {
      Through client(ports, seed);
      std::mt19937 local(static_cast<unsigned>(round_ * 10 + t));
      while (!stop) {
        int from = static_cast<int>(local() % kAccounts), to = static_cast<int>(local() % kAccounts);
        HttpResponse r = client.request(
            "POST", "/bank/" + tag_ + "/transfer?from=a" + std::to_string(from) + "&to=a" +
                        std::to_string(to) + "&amount=" + std::to_string(1 + local() % 200));
        if (r.status != 200 && r.status != 409) return;
      }
    });
  }
  // New objects, one write each: a database file is made for every one.
  load.emplace_back([&, seed = seed + 4] {
    Through client(ports, seed);
    for (int i = 0; !stop; ++i) {
      std::string name = tag_ + "-new-" + std::to_string(round_) + "-" + std::to_string(i);
      if (client.request("POST", "/counter/" + name + "/increment").status != 200) return;
      std::lock_guard lock(mu_);
      created_.push_back(name);
    }
  });
  load.emplace_back([&, seed = seed + 5] {
    Through client(ports, seed);
    while (!stop) {
      int64_t v = take_id();
      Json body = {{"query", "INSERT INTO t(v) VALUES (?)"}, {"params", {v}}};
      if (client.request("POST", "/sql/" + tag_, body.dump()).status != 200) return;
      std::lock_guard lock(mu_);
      rows_.push_back(v);
    }
  });
  // Alarms: each acknowledged schedule must fire, before the cut or after.
  load.emplace_back([&, seed = seed + 6] {
    Through client(ports, seed);
    std::mt19937 local(static_cast<unsigned>(round_));
    while (!stop) {
      std::string name = tag_ + "-t" + std::to_string(take_id());
      if (client.request("POST", "/tasks/" + name + "/schedule?delay_ms=" +
                                     std::to_string(local() % 300))
              .status != 200) {
        return;
      }
      {
        std::lock_guard lock(mu_);
        tasks_.push_back(name);
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  // A chat room keeps going under the load (it has nothing durable).
  load.emplace_back([&] {
    WsClient a(ports[static_cast<size_t>(round_) % ports.size()], "/room/" + tag_ + "/websocket", 2s);
    if (!a.connected()) return;
    for (int i = 0; !stop; ++i) {
      if (!a.send_text("m" + std::to_string(i)) || !a.next_message()) return;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng_() % 600));
  cut();
  stop = true;
  for (auto& t : load) t.join();
}

std::vector<std::string> MixedLoad::check(int port) {
  std::vector<std::string> problems;
  auto problem = [&](const std::string& what) {
    problems.push_back("round " + std::to_string(round_) + ": " + what);
  };
  HttpClient client(port, 10s);
  for (int c = 0; c < kCounters; ++c) {
    std::string name = tag_ + "-c" + std::to_string(c);
    HttpResponse r = client.request("GET", "/counter/" + name);
    int64_t now = r.status == 200 ? std::stoll(r.body) : -1;
    // Increments that got no answer (one per cut at most) may have landed.
    if (now < counter_[c] || now > counter_[c] + unanswered_[c]) {
      problem("counter " + name + " is " + r.body + ", acknowledged " +
              std::to_string(counter_[c]) + " and " + std::to_string(unanswered_[c]) +
              " unanswered since");
    }
    ++checked_;
  }
  for (int b = 0; b < kBatchers; ++b) {
    const auto& ns = batches_[b];
    for (size_t i = 0; i < ns.size(); i += 64) {
      Json keys = Json::array();
      for (size_t j = i; j < std::min(ns.size(), i + 64); ++j) {
        keys.push_back("b" + std::to_string(ns[j]) + "-x");
        keys.push_back("b" + std::to_string(ns[j]) + "-y");
      }
      HttpResponse r = client.request("POST", "/kv/" + tag_ + "-b" + std::to_string(b) + "/batch",
                                      Json({{"get", keys}}).dump());
      Json got = Json::parse(r.body, nullptr, false);
      if (r.status != 200 || !got.is_object() || got.size() != keys.size()) {
        problem("KV batches of " + tag_ + "-b" + std::to_string(b) + " from " +
                std::to_string(ns[i]) + ": " + std::to_string(got.is_object() ? got.size() : 0) +
                " of " + std::to_string(keys.size()) + " keys");
      }
      checked_ += static_cast<int64_t>(keys.size());
    }
  }
  for (const auto& name : created_) {
    HttpResponse r = client.request("GET", "/counter/" + name);
    if (r.body != "1") problem("new object " + name + " is '" + r.body + "', acknowledged 1");
    ++checked_;
  }
  for (const auto& odd : odd_answers_) problem(odd);
  odd_answers_.clear();
  int64_t total = 0;
  for (int a = 0; a < kAccounts; ++a) {
    HttpResponse r = client.request("GET", "/bank/" + tag_ + "/balance?account=a" + std::to_string(a));
    Json bal = Json::parse(r.body, nullptr, false);
    total += bal.is_object() && bal["balance"].is_number() ? bal["balance"].get<int64_t>() : 0;
  }
  if (total != kAccounts * kStartBalance) problem("bank total is " + std::to_string(total));
  {
    HttpResponse r = client.request("POST", "/sql/" + tag_, Json({{"query", "SELECT v FROM t"}}).dump());
    Json got = Json::parse(r.body, nullptr, false);
    std::set<int64_t> have;
    if (got.is_object() && got["rows"].is_array()) {
      for (auto& row : got["rows"]) have.insert(row[0].get<int64_t>());
    }
    size_t missing = 0;
    for (int64_t v : rows_) missing += have.count(v) ? 0 : 1;
    if (missing) problem(std::to_string(missing) + " of " + std::to_string(rows_.size()) + " SQL rows missing");
    checked_ += static_cast<int64_t>(rows_.size());
  }
  // Every acknowledged alarm fires (due ones within seconds of the restart).
  auto deadline = std::chrono::steady_clock::now() + alarm_wait_;
  for (const auto& name : tasks_) {
    for (;;) {
      HttpResponse r = client.request("GET", "/tasks/" + name);
      Json st = Json::parse(r.body, nullptr, false);
      if (st.is_object() && st["fired"].is_number() && st["fired"].get<int>() >= 1) break;
      if (std::chrono::steady_clock::now() > deadline) {
        problem("alarm of " + name + " never fired: " + r.body);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    ++checked_;
  }
  {
    WsClient a(port, "/room/" + tag_ + "-check/websocket", 5s), b(port, "/room/" + tag_ + "-check/websocket", 5s);
    std::string text = "after round " + std::to_string(round_);
    if (!a.connected() || !b.connected() || !a.send_text(text) || a.next_message() != text ||
        b.next_message() != text) {
      problem("the chat room does not broadcast after the restart");
    }
  }
  return problems;
}

std::vector<std::string> corrupt_databases(const std::string& data_dir, int* checked) {
  std::vector<std::string> bad;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir + "/objects")) {
    if (entry.path().extension() != ".sqlite") continue;
    ++*checked;
    // Opened the way the server opens it (exclusive, no shared memory, no
    // checkpoint on close), so checking it changes nothing.
    sqlite3* db = nullptr;
    std::string result;
    if (sqlite3_open_v2(entry.path().c_str(), &db, SQLITE_OPEN_READWRITE, "unix-none") != SQLITE_OK) {
      result = "cannot open";
    } else {
      sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
      sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr);
      sqlite3_exec(
          db, "PRAGMA integrity_check",
          [](void* out, int, char** values, char**) {
            *static_cast<std::string*>(out) += values[0] ? values[0] : "null";
            return 0;
          },
          &result, nullptr);
    }
    sqlite3_close(db);
    if (result != "ok") bad.push_back(entry.path().string() + ": " + result);
  }
  return bad;
}

}  // namespace dobj::test
