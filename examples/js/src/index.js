// The examples of EXAMPLES.md as Durable Objects in JavaScript. The same
// HTTP contract as the C++ example server (examples/server): one test body
// checks both (tests/integration/examples_test.cc).
import { DurableObject } from "cloudflare:workers";
import { error, segments, parseIntStrict, readJson } from "./http.js";
// The chat page of the C++ example server (a Text module, as wrangler imports .html).
import chatPage from "../../server/index.html";

// 1. Counter: a named singleton.
export class Counter extends DurableObject {
  async fetch(request) {
    const path = segments(request.url);
    if (!path || path.length < 2 || path.length > 3) return error(404, "not found");
    if (path.length === 3) {
      if (path[2] !== "increment") return error(404, "not found");
      if (request.method !== "POST" && request.method !== "GET") {
        return error(405, "use POST (or GET) to increment");
      }
      const count = ((await this.ctx.storage.get("count")) ?? 0) + 1;
      await this.ctx.storage.put("count", count);
      return new Response(String(count));
    }
    if (request.method !== "GET") return error(405, "use GET to read the counter");
    return new Response(String((await this.ctx.storage.get("count")) ?? 0));
  }
}

// 2. KvProbe: the key-value storage API, one call per route.
export class KvProbe extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    const path = url.pathname;
    const nameEnd = path.indexOf("/", 1);
    if (nameEnd < 0) return error(404, "not found");
    const keyStart = path.indexOf("/", nameEnd + 1);
    const storage = this.ctx.storage;
    if (keyStart < 0) {
      if (request.method === "GET") return this.list(url.searchParams);
      if (request.method === "DELETE") {
        await storage.deleteAll();
        return Response.json({ ok: true });
      }
      return error(405, "use GET to list or DELETE to delete all");
    }
    let key;
    try {
      key = decodeURIComponent(path.slice(keyStart + 1));
    } catch {
      return error(400, "malformed percent-encoding in the key");
    }
    try {
      if (request.method === "POST" && (key === "batch" || key === "transaction")) {
        const { value: body, error: bad } = await readJson(request);
        if (bad) return bad;
        if (typeof body !== "object" || body === null || Array.isArray(body)) {
          return error(400, "body must be a JSON object");
        }
        return key === "batch" ? await this.batch(body) : await this.transaction(body);
      }
      if (request.method === "PUT") {
        const { value, error: bad } = await readJson(request);
        if (bad) return bad;
        await storage.put(key, value);
        return Response.json({ ok: true });
      }
      if (request.method === "GET") {
        const value = await storage.get(key);
        if (value === undefined) return error(404, "no such key");
        return Response.json(value);
      }
      if (request.method === "DELETE") return Response.json({ deleted: await storage.delete(key) });
    } catch (e) {
      return error(400, e.message);  // a key or value over the limits
    }
    return error(405, "use PUT, GET or DELETE on a key");
  }

  async list(params) {
    const options = {};
    for (const name of ["prefix", "start", "startAfter", "end"]) {
      if (params.has(name)) options[name] = params.get(name);
    }
    if (params.has("reverse")) {
      const r = params.get("reverse");
      if (r !== "true" && r !== "false") return error(400, "reverse must be true or false");
      options.reverse = r === "true";
    }
    if (params.has("limit")) {
      options.limit = parseIntStrict(params.get("limit"));
      if (options.limit === null) return error(400, "limit must be an integer");
    }
    try {
      const entries = await this.ctx.storage.list(options);
      return Response.json([...entries]);
    } catch (e) {
      return error(400, e.message);
    }
  }

  async batch(body) {
    const keys = Object.keys(body);
    if (keys.length !== 1) return error(400, "give exactly one of put, get or delete");
    const isKeyList = (v) => Array.isArray(v) && v.every((k) => typeof k === "string");
    if ("put" in body) {
      if (typeof body.put !== "object" || body.put === null || Array.isArray(body.put)) {
        return error(400, "put must be an object");
      }
      await this.ctx.storage.put(body.put);
      return Response.json({ ok: true });
    }
    if ("get" in body) {
      if (!isKeyList(body.get)) return error(400, "get must be an array of strings");
      return Response.json(Object.fromEntries(await this.ctx.storage.get(body.get)));
    }
    if ("delete" in body) {
      if (!isKeyList(body.delete)) return error(400, "delete must be an array of strings");
      return Response.json({ deleted: await this.ctx.storage.delete(body.delete) });
    }
    return error(400, "give exactly one of put, get or delete");
  }

  async transaction(body) {
    if (!Array.isArray(body.ops)) return error(400, 'body must be {"ops": [...]}');
    // Check every op before running any, so a bad body writes nothing.
    for (const op of body.ops) {
      if (typeof op !== "object" || op === null || typeof op.op !== "string") {
        return error(400, 'each op needs an "op" string');
      }
      const hasKey = typeof op.key === "string";
      if (op.op === "put" && (!hasKey || !("value" in op))) {
        return error(400, "a put op needs a string key and a value");
      }
      if (op.op === "delete" && !hasKey) return error(400, "a delete op needs a string key");
      if (!["put", "delete", "fail"].includes(op.op)) return error(400, `unknown op ${op.op}`);
    }
    try {
      await this.ctx.storage.transaction(async (txn) => {
        for (const op of body.ops) {
          if (op.op === "put") await txn.put(op.key, op.value);
          if (op.op === "delete") await txn.delete(op.key);
          if (op.op === "fail") throw new Error("rolled back");
        }
      });
    } catch {
      return error(409, "rolled back");
    }
    return Response.json({ ok: true });
  }
}

// 3. SqlProbe: the per-object SQL API.
export class SqlProbe extends DurableObject {
  async fetch(request) {
    const path = segments(request.url);
    if (!path || path.length !== 2) return error(404, "not found");
    if (request.method !== "POST") return error(405, 'use POST with {"query": ...}');
    const { value: body, error: bad } = await readJson(request);
    if (bad) return bad;
    if (typeof body !== "object" || body === null || typeof body.query !== "string") {
      return error(400, 'body must be {"query": "...", "params": [...]}');
    }
    if ("params" in body && !Array.isArray(body.params)) return error(400, "params must be an array");
    const params = (body.params ?? []).map((p) =>
      typeof p === "object" && p !== null ? JSON.stringify(p) : typeof p === "boolean" ? Number(p) : p);
    let cursor;
    try {
      cursor = this.ctx.storage.sql.exec(body.query, ...params);
    } catch (e) {
      return error(400, e.message);
    }
    const rows = cursor.raw().toArray();
    return Response.json({
      columns: cursor.columnNames,
      rows: rows.map((r) => r.map((v) => (v instanceof ArrayBuffer ? [...new Uint8Array(v)] : v))),
      rowsRead: cursor.rowsRead,
      rowsWritten: cursor.rowsWritten,
    });
  }
}

// 4. RateLimiter: one object per key, a fixed 60-second window.
export class RateLimiter extends DurableObject {
  static WINDOW_MS = 60_000;

  async fetch(request) {
    if (request.method !== "POST") return error(405, "use POST");
    const limit = parseIntStrict(new URL(request.url).searchParams.get("limit"));
    if (limit === null || limit < 0) return error(400, "limit must be a non-negative integer");
    const now = Date.now();
    const storage = this.ctx.storage;
    let start = (await storage.get("window_start")) ?? 0;
    let calls = (await storage.get("calls")) ?? 0;
    if (start === 0 || now - start >= RateLimiter.WINDOW_MS) {
      start = now;
      calls = 0;
      await storage.put("window_start", start);
    }
    if (calls >= limit) return Response.json({ allowed: false, remaining: 0 }, { status: 429 });
    calls += 1;
    await storage.put("calls", calls);
    return Response.json({ allowed: true, remaining: limit - calls });
  }
}

// 5. ShardedCounter: ten counter objects per name, summed by the Worker.
const SHARDS = 10;
export class CounterShard extends DurableObject {
  async fetch(request) {
    if (request.method === "POST") {
      const count = ((await this.ctx.storage.get("count")) ?? 0) + 1;
      await this.ctx.storage.put("count", count);
      return new Response("ok");
    }
    return new Response(String((await this.ctx.storage.get("count")) ?? 0));
  }
}

async function shardedCounter(request, env, name, increment) {
  const shard = (i) => env.SHARDED_COUNTER.getByName(`${name}:${i}`);
  if (increment) {
    if (request.method !== "POST") return error(405, "use POST to increment");
    return shard(Math.floor(Math.random() * SHARDS)).fetch("http://shard/", { method: "POST" });
  }
  if (request.method !== "GET") return error(405, "use GET to read");
  const answers = await Promise.all(
    Array.from({ length: SHARDS }, (_, i) => shard(i).fetch("http://shard/")));
  let sum = 0;
  for (const r of answers) {
    if (r.status !== 200) return r;
    sum += Number(await r.text());
  }
  return new Response(String(sum));
}

// 6. ChatRoom: room coordination with the WebSocket hibernation API.
export class ChatRoom extends DurableObject {
  async fetch(request) {
    const path = segments(request.url);
    if (path[2] === "count") return new Response(String(this.ctx.getWebSockets().length));
    if (path[2] !== "websocket") return error(404, "not found");
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return error(426, "expected a WebSocket upgrade");
    }
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair);
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    if (typeof message !== "string") return;
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(message);
      } catch {
        // a socket that is closing misses the message
      }
    }
  }

  async webSocketClose(ws, code) {
    ws.close(code, "closing");
  }
}

// 7. TaskRunner: work scheduled with the alarm, retried when it throws.
const MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000;
export class TaskRunner extends DurableObject {
  async fetch(request) {
    const path = segments(request.url);
    if (!path || path.length < 2 || path.length > 3) return error(404, "not found");
    const op = path[2] ?? "";
    const storage = this.ctx.storage;
    if (op === "schedule") {
      if (request.method !== "POST") return error(405, "use POST");
      const q = new URL(request.url).searchParams;
      const number = (name, fallback) => (q.has(name) ? parseIntStrict(q.get(name)) : fallback);
      const delay = number("delay_ms", null);
      const repeat = number("repeat", 1);
      const fail = number("fail", 0);
      if (delay === null || delay < 0 || repeat === null || repeat < 1 || fail === null || fail < 0) {
        return error(400, "delay_ms must be a number >= 0; repeat >= 1 and fail >= 0 when given");
      }
      if (delay > MAX_DELAY_MS) return error(400, `delay_ms must be at most ${MAX_DELAY_MS} (ten years)`);
      const at = Date.now() + delay;
      await storage.put({ delay_ms: delay, repeat, fail });
      await storage.setAlarm(at);
      return Response.json({ scheduled: at });
    }
    if (op === "alarm") {
      if (request.method !== "DELETE") return error(405, "use DELETE");
      await storage.deleteAlarm();
      return Response.json({ ok: true });
    }
    if (op !== "") return error(404, "not found");
    if (request.method !== "GET") return error(405, "use GET");
    return Response.json({
      fired: (await storage.get("fired")) ?? 0,
      attempts: (await storage.get("attempts")) ?? 0,
      retryCounts: (await storage.get("retry_counts")) ?? [],
      alarm: await storage.getAlarm(),
    });
  }

  async alarm(alarmInfo) {
    const storage = this.ctx.storage;
    await storage.put("attempts", ((await storage.get("attempts")) ?? 0) + 1);
    const counts = (await storage.get("retry_counts")) ?? [];
    counts.push(alarmInfo?.retryCount ?? 0);
    await storage.put("retry_counts", counts);
    const failed = (await storage.get("failed")) ?? 0;
    if (failed < ((await storage.get("fail")) ?? 0)) {
      await storage.put("failed", failed + 1);
      throw new Error("task failed on purpose");  // the runtime retries
    }
    const fired = ((await storage.get("fired")) ?? 0) + 1;
    await storage.put("fired", fired);
    if (fired < ((await storage.get("repeat")) ?? 1)) {
      await storage.setAlarm(Date.now() + ((await storage.get("delay_ms")) ?? 0));
    }
  }
}

// 8. BankAccount: transfers in one transaction.
export class BankAccount extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // NUMERIC: an integral amount stays an INTEGER, so sums of integers are exact.
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, balance NUMERIC NOT NULL)");
  }

  balanceOf(account) {
    const rows = this.ctx.storage.sql.exec("SELECT balance FROM accounts WHERE id = ?", account).toArray();
    return rows.length ? rows[0].balance : 0;
  }

  async fetch(request) {
    const path = segments(request.url);
    if (!path || path.length !== 3) return error(404, "not found");
    const op = path[2];
    const q = new URL(request.url).searchParams;
    const sql = this.ctx.storage.sql;
    if (op === "balance") {
      if (request.method !== "GET") return error(405, "use GET");
      const account = q.get("account");
      if (!account) return error(400, "missing account");
      return Response.json({ balance: this.balanceOf(account) });
    }
    if (op !== "deposit" && op !== "transfer") return error(404, "not found");
    if (request.method !== "POST") return error(405, "use POST");
    const text = q.get("amount");
    const amount = text && text.trim() === text ? Number(text) : NaN;
    if (!Number.isFinite(amount) || amount <= 0) return error(400, "amount must be a positive number");
    if (op === "deposit") {
      const account = q.get("account");
      if (!account) return error(400, "missing account");
      sql.exec("INSERT INTO accounts(id, balance) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET balance = balance + ?2",
        account, amount);
      return Response.json({ balance: this.balanceOf(account) });
    }
    const from = q.get("from");
    const to = q.get("to");
    if (!from || !to) return error(400, "transfer needs from and to");
    try {
      this.ctx.storage.transactionSync(() => {
        if (this.balanceOf(from) < amount) throw new RangeError("Insufficient funds");
        sql.exec("UPDATE accounts SET balance = balance - ?2 WHERE id = ?1", from, amount);
        sql.exec("INSERT INTO accounts(id, balance) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET balance = balance + ?2",
          to, amount);
      });
    } catch (e) {
      if (e instanceof RangeError) return error(409, "Insufficient funds");
      throw e;
    }
    return Response.json({ from: this.balanceOf(from), to: this.balanceOf(to) });
  }
}

// 9. WebhookProcessor: a durable queue, processed by alarms.
const MAX_ATTEMPTS = 3;
export class WebhookProcessor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS events(
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, customer TEXT NOT NULL,
      type TEXT NOT NULL, fail_times INTEGER NOT NULL, backoff_ms INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,
      state TEXT NOT NULL DEFAULT 'pending', done_order INTEGER)`);
  }

  async fetch(request) {
    const path = segments(request.url);
    if (!path || path.length !== 2) return error(404, "not found");
    const sql = this.ctx.storage.sql;
    if (request.method === "GET") {
      const processed = [];
      const dead = [];
      for (const row of sql.exec("SELECT id, attempts, state FROM events WHERE state != 'pending' ORDER BY done_order")) {
        (row.state === "processed" ? processed : dead).push({ id: row.id, attempts: row.attempts });
      }
      const pending = sql.exec("SELECT count(*) AS n FROM events WHERE state = 'pending'").one().n;
      return Response.json({ processed, pending, dead });
    }
    if (request.method !== "POST") return error(405, "use POST to queue or GET to read");
    let backoff = 1000;
    const q = new URL(request.url).searchParams;
    if (q.has("backoff_ms")) {
      backoff = parseIntStrict(q.get("backoff_ms"));
      if (backoff === null || backoff < 0) return error(400, "backoff_ms must be a non-negative integer");
    }
    const { value: event, error: bad } = await readJson(request);
    if (bad) return bad;
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      return error(400, "body must be a JSON object");
    }
    for (const field of ["id", "customer", "type"]) {
      if (typeof event[field] !== "string" || event[field] === "") return error(400, `missing ${field}`);
    }
    const failTimes = event.fail_times ?? 0;
    if (!Number.isInteger(failTimes)) return error(400, "fail_times must be an integer");
    // Idempotent on the event id: a repeat is accepted and ignored.
    sql.exec(`INSERT INTO events(id, customer, type, fail_times, backoff_ms, next_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO NOTHING`, event.id, event.customer, event.type, failTimes, backoff, Date.now());
    await this.scheduleNext();
    return new Response("Queued", { status: 202 });  // sent once the event and the alarm are durable
  }

  // The alarm goes to the earliest time at which some customer's first
  // pending event may be tried.
  async scheduleNext() {
    const { at } = this.ctx.storage.sql.exec(`SELECT min(next_at) AS at FROM events e WHERE state = 'pending'
      AND seq = (SELECT min(seq) FROM events f WHERE f.customer = e.customer AND f.state = 'pending')`).one();
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(1, at));
  }

  async alarm() {
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    let order = sql.exec("SELECT coalesce(max(done_order), 0) AS o FROM events").one().o;
    // Each customer's events in arrival order: handle the first pending one
    // while it is due; a processed or dead event lets the next one go.
    for (;;) {
      const due = sql.exec(`SELECT seq, fail_times, backoff_ms, attempts FROM events e WHERE state = 'pending'
        AND next_at <= ? AND seq = (SELECT min(seq) FROM events f WHERE f.customer = e.customer AND f.state = 'pending')
        ORDER BY seq`, now).toArray();
      if (due.length === 0) break;
      for (const row of due) {
        const attempts = row.attempts + 1;
        if (attempts <= row.fail_times) {  // this attempt fails
          if (attempts >= MAX_ATTEMPTS) {
            sql.exec("UPDATE events SET attempts = ?, state = 'dead', done_order = ? WHERE seq = ?", attempts, ++order, row.seq);
          } else {
            sql.exec("UPDATE events SET attempts = ?, next_at = ? WHERE seq = ?",
              attempts, now + row.backoff_ms * 2 ** (attempts - 1), row.seq);
          }
        } else {
          sql.exec("UPDATE events SET attempts = ?, state = 'processed', done_order = ? WHERE seq = ?", attempts, ++order, row.seq);
        }
      }
    }
    await this.scheduleNext();
  }
}

// The Worker: /<route>/<name>/... → the object idFromName(<name>) of the route's binding.
const ROUTES = {
  counter: "COUNTER", kv: "KV", sql: "SQL", bank: "BANK", ratelimit: "RATE_LIMITER",
  tasks: "TASK_RUNNER", webhooks: "WEBHOOKS", room: "CHAT_ROOM",
};

export default {
  async fetch(request, env) {
    if (request.method === "GET" && /^\/*$/.test(new URL(request.url).pathname)) {
      return new Response(chatPage, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    const path = segments(request.url);
    if (!path) return error(400, "malformed percent-encoding in the path");
    if (path.length < 2) return error(404, "not found");
    const [kind, name] = path;
    if (kind === "sharded") {
      const increment = path.length === 3 && path[2] === "increment";
      if (path.length !== 2 && !increment) return error(404, "not found");
      return shardedCounter(request, env, name, increment);
    }
    const binding = Object.hasOwn(ROUTES, kind) ? ROUTES[kind] : null;
    if (!binding) return error(404, `no route for /${kind}`);
    return env[binding].getByName(name).fetch(request);
  },
};
