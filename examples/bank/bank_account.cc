#include "bank/bank_account.h"

#include <cmath>


namespace examples {
namespace {

using dobj::Json;
using dobj::Response;

struct InsufficientFunds {};

// A positive, finite amount, or nullopt.
std::optional<double> parse_amount(const std::optional<std::string>& s) {
  if (!s || s->empty()) return std::nullopt;
  try {
    size_t used = 0;
    double v = std::stod(*s, &used);
    if (used != s->size() || !std::isfinite(v) || v <= 0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Integral amounts are bound as integers, so balances stay exact integers.
dobj::SqlValue amount_value(double v) {
  if (v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<int64_t>(v);
  return v;
}

}  // namespace

void BankAccount::ensure_schema() {
  if (schema_ready_) return;
  // NUMERIC: an integral amount stays an INTEGER, so sums of integers are exact.
  storage().sql().exec(
      "CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, balance NUMERIC NOT NULL)");
  schema_ready_ = true;
}

Json BankAccount::balance_of(const std::string& account) {
  auto rows = storage().sql().exec("SELECT balance FROM accounts WHERE id = ?", account);
  return rows.empty() ? Json(0) : rows.one<Json>();
}

dobj::Task<Response> BankAccount::fetch(dobj::Request req) {
  auto segments = req.path_segments();
  if (!segments || segments->size() != 3) co_return Response::error(404, "not found");
  const std::string& op = (*segments)[2];
  ensure_schema();

  if (op == "balance") {
    if (req.method != "GET") co_return Response::error(405, "use GET");
    auto account = req.query("account");
    if (!account || account->empty()) co_return Response::error(400, "missing account");
    co_return Response::json(Json({{"balance", balance_of(*account)}}).dump());
  }
  if (op != "deposit" && op != "transfer") co_return Response::error(404, "not found");
  if (req.method != "POST") co_return Response::error(405, "use POST");
  auto amount = parse_amount(req.query("amount"));
  if (!amount) co_return Response::error(400, "amount must be a positive number");

  if (op == "deposit") {
    auto account = req.query("account");
    if (!account || account->empty()) co_return Response::error(400, "missing account");
    storage().sql().exec(
        "INSERT INTO accounts(id, balance) VALUES (?1, ?2) "
        "ON CONFLICT(id) DO UPDATE SET balance = balance + ?2",
        *account, amount_value(*amount));
    co_return Response::json(Json({{"balance", balance_of(*account)}}).dump());
  }

  auto from = req.query("from");
  auto to = req.query("to");
  if (!from || from->empty() || !to || to->empty()) {
    co_return Response::error(400, "transfer needs from and to");
  }
  try {
    storage().transaction_sync([&] {
      auto have = storage().sql().exec("SELECT balance FROM accounts WHERE id = ?", *from);
      // NUMERIC: an INTEGER or a REAL, both read as double.
      double balance = have.empty() ? 0 : have.one<double>();
      if (balance < *amount) throw InsufficientFunds{};
      storage().sql().exec("UPDATE accounts SET balance = balance - ?2 WHERE id = ?1", *from,
                           amount_value(*amount));
      storage().sql().exec(
          "INSERT INTO accounts(id, balance) VALUES (?1, ?2) "
          "ON CONFLICT(id) DO UPDATE SET balance = balance + ?2",
          *to, amount_value(*amount));
    });
  } catch (const InsufficientFunds&) {
    co_return Response::error(409, "Insufficient funds");
  }
  co_return Response::json(Json({{"from", balance_of(*from)}, {"to", balance_of(*to)}}).dump());
}

}  // namespace examples
