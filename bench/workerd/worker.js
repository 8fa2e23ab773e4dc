// JavaScript versions of the EXAMPLES.md objects for workerd, so that the
// benchmarks run the same workloads on both runtimes. Same routes, same answers.

const json = (value, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
const error = (status, message) => json({ error: message }, status);
const text = (body, status = 200) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

function segments(request) {
  return new URL(request.url).pathname.split("/").filter(Boolean).map(decodeURIComponent);
}

export class Counter {
  constructor(state) {
    this.storage = state.storage;
  }
  async fetch(request) {
    const parts = segments(request);
    if (parts.length === 3 && parts[2] === "increment") {
      if (request.method !== "POST" && request.method !== "GET") return error(405, "use POST");
      const n = ((await this.storage.get("count")) || 0) + 1;
      this.storage.put("count", n); // the output gate holds the answer until it is durable
      return text(String(n));
    }
    if (parts.length !== 2) return error(404, "not found");
    if (request.method !== "GET") return error(405, "use GET");
    return text(String((await this.storage.get("count")) || 0));
  }
}

class RolledBack extends Error {}

export class KvProbe {
  constructor(state) {
    this.storage = state.storage;
  }
  async fetch(request) {
    const url = new URL(request.url);
    const path = url.pathname;
    const nameEnd = path.indexOf("/", 1);
    const keyStart = path.indexOf("/", nameEnd + 1);
    if (keyStart < 0) {
      if (request.method === "GET") return this.list(url.searchParams);
      if (request.method === "DELETE") {
        await this.storage.deleteAll();
        return json({ ok: true });
      }
      return error(405, "use GET or DELETE");
    }
    const key = decodeURIComponent(path.slice(keyStart + 1));
    let body;
    if (request.method === "POST" || request.method === "PUT") {
      try {
        body = JSON.parse(await request.text());
      } catch {
        return error(400, "body is not valid JSON");
      }
    }
    try {
      if (request.method === "POST" && key === "batch") return await this.batch(body);
      if (request.method === "POST" && key === "transaction") return await this.transaction(body);
      if (request.method === "PUT") {
        await this.storage.put(key, body);
        return json({ ok: true });
      }
      if (request.method === "GET") {
        const value = await this.storage.get(key);
        return value === undefined ? error(404, "no such key") : json(value);
      }
      if (request.method === "DELETE") return json({ deleted: await this.storage.delete(key) });
    } catch (e) {
      return error(400, String(e.message || e));
    }
    return error(405, "use PUT, GET or DELETE");
  }
  async list(params) {
    const options = {};
    for (const name of ["prefix", "start", "startAfter", "end"]) {
      if (params.has(name)) options[name] = params.get(name);
    }
    if (params.get("reverse") === "true") options.reverse = true;
    if (params.has("limit")) {
      const limit = Number(params.get("limit"));
      if (!Number.isInteger(limit)) return error(400, "limit must be an integer");
      options.limit = limit;
    }
    try {
      return json([...(await this.storage.list(options))]);
    } catch (e) {
      return error(400, String(e.message || e));
    }
  }
  async batch(body) {
    if (body.put) {
      await this.storage.put(body.put);
      return json({ ok: true });
    }
    if (body.get) return json(Object.fromEntries(await this.storage.get(body.get)));
    if (body.delete) return json({ deleted: await this.storage.delete(body.delete) });
    return error(400, "give one of put, get or delete");
  }
  async transaction(body) {
    try {
      await this.storage.transaction(async (txn) => {
        for (const op of body.ops) {
          if (op.op === "put") await txn.put(op.key, op.value);
          else if (op.op === "delete") await txn.delete(op.key);
          else if (op.op === "fail") throw new RolledBack();
        }
      });
    } catch (e) {
      if (e instanceof RolledBack) return error(409, "rolled back");
      throw e;
    }
    return json({ ok: true });
  }
}

export class SqlProbe {
  constructor(state) {
    this.sql = state.storage.sql;
  }
  async fetch(request) {
    if (request.method !== "POST") return error(405, "use POST");
    let body;
    try {
      body = JSON.parse(await request.text());
    } catch {
      return error(400, "body is not valid JSON");
    }
    try {
      const cursor = this.sql.exec(body.query, ...(body.params || []));
      const rows = [...cursor.raw()];
      return json({
        columns: cursor.columnNames,
        rows,
        rowsRead: cursor.rowsRead,
        rowsWritten: cursor.rowsWritten,
      });
    } catch (e) {
      return error(400, String(e.message || e));
    }
  }
}

export class CounterShard {
  constructor(state) {
    this.storage = state.storage;
  }
  async fetch(request) {
    if (request.method === "POST") {
      this.storage.put("count", ((await this.storage.get("count")) || 0) + 1);
      return text("ok");
    }
    return text(String((await this.storage.get("count")) || 0));
  }
}

// ChatRoom (EXAMPLES.md 6) with the hibernation API, as in dobj.
export class ChatRoom {
  constructor(state) {
    this.state = state;
  }
  async fetch(request) {
    const parts = segments(request);
    if (parts[2] === "count") return text(String(this.state.getWebSockets().length));
    if (request.headers.get("Upgrade") !== "websocket") return error(426, "expected a WebSocket");
    const pair = new WebSocketPair();
    this.state.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  webSocketMessage(ws, message) {
    if (typeof message !== "string") return;
    for (const s of this.state.getWebSockets()) s.send(message);
  }
  webSocketClose() {}
}

async function sharded(request, env, name, increment) {
  const ns = env.SHARDED_COUNTER;
  const shard = (i) => ns.get(ns.idFromName(`${name}:${i}`));
  if (increment) {
    if (request.method !== "POST") return error(405, "use POST");
    return shard(Math.floor(Math.random() * 10)).fetch("http://shard/", { method: "POST" });
  }
  const answers = await Promise.all([...Array(10).keys()].map((i) => shard(i).fetch("http://shard/")));
  let sum = 0;
  for (const a of answers) sum += Number(await a.text());
  return text(String(sum));
}

export default {
  async fetch(request, env) {
    const parts = segments(request);
    if (parts[0] === "sharded" && parts.length >= 2) {
      return sharded(request, env, parts[1], parts[2] === "increment");
    }
    const bindings = { counter: env.COUNTER, kv: env.KV, sql: env.SQL, room: env.CHAT_ROOM };
    const ns = bindings[parts[0]];
    if (!ns || parts.length < 2) return error(404, "not found");
    return ns.get(ns.idFromName(parts[1])).fetch(request);
  },
};
