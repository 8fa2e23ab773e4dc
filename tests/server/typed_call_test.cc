// Typed calls between objects through dobj::Server: classes bound with
// bind<T>, methods listed in kMethods, stubs from env().ns<T>(...).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dobj/dobj.h"
#include "testing/http_client.h"
#include "support/server_process.h"

namespace dobj::test {
namespace {

struct Entry {
  std::string who;
  int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Entry, who, amount)

class Ledger : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<int64_t> add(Entry e) {
    int64_t total = storage().get<int64_t>("total").value_or(0) + e.amount;
    storage().put("total", total);
    storage().put("last", e.who);
    co_return total;
  }
  Task<std::string> last() { co_return storage().get<std::string>("last").value_or(""); }
  static constexpr auto kMethods =
      dobj::methods(Method{"add", &Ledger::add}, Method{"last", &Ledger::last});
};

class Teller : public DurableObject {
 public:
  using DurableObject::DurableObject;
  Task<Response> fetch(Request req) override {
    if (req.query("wrong-class")) {
      try {
        (void)env().ns<Teller>("LEDGER");
      } catch (const Error& e) {
        co_return Response::text(e.what());
      }
      co_return Response::text("no error");
    }
    auto ledgers = env().ns<Ledger>("LEDGER");
    auto ledger = ledgers.get(ledgers.id_from_name("books"));
    // Named, not temporaries inside the co_await: GCC 12 destroys a
    // temporary with a destructor in a co_await expression twice
    // (include/dobj/object.h, Stub::call).
    Entry ada{"ada", 5}, bob{"bob", 7}, cy{"cy", 1};
    int64_t total = co_await ledger.call(&Ledger::add, ada);
    total = co_await ledger.call(&Ledger::add, bob);
    std::string last = co_await ledger.call(&Ledger::last);
    // The string form reaches the same registered method.
    int64_t again = co_await ledger.untyped().call<int64_t>("add", cy);
    co_return Response::json(
        nlohmann::json{{"total", total}, {"last", last}, {"again", again}}.dump());
  }
};

class TypedCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.bind<Ledger>("LEDGER");
    server_.bind<Teller>("TELLER");
    ServerOptions o;
    o.data_dir = dir_.path();
    o.listen = "127.0.0.1:0";
    o.shards = 2;
    o.admin_token = "t";
    ASSERT_TRUE(server_.start(o).is_ok());
  }
  void TearDown() override { server_.stop(); }
  TempDir dir_;
  Server server_;
};

TEST_F(TypedCallTest, ATypedCallReachesTheMethodAndReturnsItsType) {
  HttpResponse r = http(server_.port(), "GET", "/teller/t");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["total"], 12);
  EXPECT_EQ(j["last"], "bob");
  EXPECT_EQ(j["again"], 13);
}

TEST_F(TypedCallTest, ATypedNamespaceOfTheWrongClassIsRefused) {
  EXPECT_EQ(http(server_.port(), "GET", "/teller/t?wrong-class=1").body,
            "the binding LEDGER holds dobj::test::(anonymous namespace)::Ledger, not "
            "dobj::test::(anonymous namespace)::Teller");
}

}  // namespace
}  // namespace dobj::test
