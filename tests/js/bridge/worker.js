import { DurableObject } from "cloudflare:workers";
import { Buffer as NodeBuffer } from "node:buffer";
import EventEmitter, { once } from "events";
import { env as processEnv } from "node:process";
import { AsyncLocalStorage } from "node:async_hooks";

// process.env holds the text vars before any module runs (nodejs_compat,
// compatibility date 2025-04-01 on).
const modeAtImport = process.env.MODE;
const sharedStorage = new AsyncLocalStorage();

// Values that structured clone keeps and JSON does not.
function samples() {
  return {
    map: new Map([["a", 1], [2, { b: [3] }]]),
    set: new Set([1, "two"]),
    date: new Date(1700000000000),
    bytes: new Uint8Array([0, 1, 255]),
    big: 12345678901234567890n,
    nested: { deep: [1, [2, [3]]], nil: null, undef: undefined },
    regexp: /ab+c/gi,
    float: -0.5,
  };
}

function same(a, b) {
  if (a instanceof Map) return b instanceof Map && a.size === b.size && [...a].every(([k, v]) => same(v, b.get(k)));
  if (a instanceof Set) return b instanceof Set && a.size === b.size && [...a].every((v) => b.has(v));
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Uint8Array) return b instanceof Uint8Array && a.length === b.length && a.every((v, i) => v === b[i]);
  if (a instanceof RegExp) return b instanceof RegExp && a.source === b.source && a.flags === b.flags;
  if (typeof a === "object" && a !== null) {
    return typeof b === "object" && b !== null && Object.keys(a).length === Object.keys(b).length &&
      Object.keys(a).every((k) => same(a[k], b[k]));
  }
  return Object.is(a, b);
}

// A form's entries as JSON: text values as they are, files with their name,
// type and bytes.
async function formEntries(form) {
  const out = [];
  for (const [name, value] of form) {
    out.push([name, typeof value === "string" ? value
      : { file: value.name, type: value.type, size: value.size, bytes: [...new Uint8Array(await value.arrayBuffer())] }]);
  }
  return out;
}

// Shared by the Worker and the objects of this script on one shard (one
// context each), as module state is in workerd.
const callLog = [];

export class Probe extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.loaded = null;
    // Asynchronous set-up holds every event until it is done.
    ctx.blockConcurrencyWhile(async () => {
      await new Promise((r) => setTimeout(r, 20));
      this.loaded = (await ctx.storage.get("boots")) ?? 0;
      await ctx.storage.put("boots", this.loaded + 1);
    });
  }

  async fetch(request) {
    const url = new URL(request.url);
    const op = url.pathname.split("/")[3];
    const storage = this.ctx.storage;
    switch (op) {
      case "note-call":
        callLog.push("object fetch");
        return new Response("ok");
      case "order": {
        const log = [];
        log.push("sync 1");
        queueMicrotask(() => log.push("microtask"));
        Promise.resolve().then(() => log.push("then"));
        setTimeout(() => log.push("timeout 0"), 0);
        log.push("sync 2");
        await storage.put("k", 1);
        log.push("after put");
        await new Promise((r) => setTimeout(r, 5));
        log.push("after timer");
        return Response.json(log);
      }
      case "clone-put":
        await storage.put("samples", samples());
        return new Response("ok");
      case "clone-get": {
        const got = await storage.get("samples");
        const want = samples();
        const bad = Object.keys(want).filter((k) => !same(want[k], got?.[k]));
        return Response.json({ bad, clone: same(structuredClone(want), want) });
      }
      case "throw":
        throw new Error("boom in fetch");
      case "reject":
        Promise.reject(new Error("nobody listens"));
        return new Response("ok");
      case "spin":
        for (;;) {}
      case "boots":
        return Response.json({ loaded: this.loaded, boots: await storage.get("boots") });
      case "id":
        return Response.json({ id: this.ctx.id.toString(), name: this.ctx.id.name,
          equal: this.ctx.id.equals(this.env.PROBE.idFromName(this.ctx.id.name)) });
      case "env":
        return Response.json({ mode: this.env.MODE, limits: this.env.LIMITS });
      case "sql": {
        const sql = storage.sql;
        sql.exec("CREATE TABLE IF NOT EXISTS t(a INTEGER, b TEXT)");
        sql.exec("INSERT INTO t VALUES (?, ?), (?, ?)", 1, "x", 2, "y");
        const c = sql.exec("SELECT a, b FROM t ORDER BY a");
        const rows = c.toArray();
        return Response.json({ rows, columns: c.columnNames, read: c.rowsRead,
          one: sql.exec("SELECT count(*) AS n FROM t").one().n,
          raw: sql.exec("SELECT a FROM t ORDER BY a").raw().toArray(), size: sql.databaseSize > 0 });
      }
      case "web": {
        const u = new URL("../x/y?q=1#h", "https://example.com/a/b/c");
        const p = new URLSearchParams("a=1&b=two+words&a=3");
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc")));
        const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
        const h = new Headers({ "X-A": "1" });
        h.append("x-a", "2");
        return Response.json({
          href: u.href, path: u.pathname, all: p.getAll("a"), b: p.get("b"),
          text: new TextDecoder().decode(new TextEncoder().encode("héllo")),
          b64: btoa("hi!"), unb64: atob("aGkh"), sha256: hex, header: h.get("X-A"),
          uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
        });
      }
      // A body streamed from timers: sent once the stream closes.
      case "stream-late": {
        let i = 0;
        return new Response(new ReadableStream({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 5));
            if (++i > 3) c.close(); else c.enqueue(new TextEncoder().encode(`chunk ${i};`));
          },
        }), { headers: { "content-type": "text/plain" } });
      }
      case "stream-fails":
        return new Response(new ReadableStream({
          start(c) { c.enqueue("part"); },
          async pull(c) { await new Promise((r) => setTimeout(r, 5)); c.error(new Error("the source broke")); },
        }));
      // The request's body, read chunk by chunk from its stream.
      case "read-body": {
        const reader = request.body.getReader();
        let n = 0, text = "";
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          n += value.length;
          text += decoder.decode(value);
        }
        return Response.json({ n, text, used: request.bodyUsed });
      }
      // A form the caller sent, as formData() reads it.
      case "form":
        return Response.json({ type: request.headers.get("content-type"), entries: await formEntries(await request.formData()) });
      // scheduler.wait: a timer as a promise; an aborted signal rejects it.
      case "wait": {
        const start = performance.now();
        await scheduler.wait(20);
        const waited = performance.now() - start;
        const c = new AbortController();
        const pending = scheduler.wait(60000, { signal: c.signal });
        c.abort(new Error("stop"));
        let aborted = null;
        try { await pending; } catch (e) { aborted = e.message; }
        return Response.json({ waited: waited >= 19, aborted, agent: navigator.userAgent });
      }
      // HMAC as webhooks and tokens use it (RFC 4231's test case 2), and the
      // errors a Worker meets.
      case "hmac": {
        const enc = new TextEncoder();
        const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
        const data = enc.encode("what do ya want for nothing?");
        const out = {};
        for (const hash of ["SHA-256", "SHA-512"]) {
          const key = await crypto.subtle.importKey("raw", enc.encode("Jefe"), { name: "HMAC", hash }, true, ["sign", "verify"]);
          const mac = await crypto.subtle.sign("HMAC", key, data);
          out[hash] = hex(mac);
          out[hash + " verifies"] = await crypto.subtle.verify("HMAC", key, mac, data);
          out[hash + " other data"] = await crypto.subtle.verify({ name: "HMAC" }, key, mac, enc.encode("nothing"));
        }
        const key = await crypto.subtle.importKey("raw", enc.encode("Jefe"), { name: "HMAC", hash: { name: "SHA-256" } }, true, ["verify"]);
        const jwk = await crypto.subtle.exportKey("jwk", key);
        const again = await crypto.subtle.importKey("jwk", jwk, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        out.jwk = [jwk.k, jwk.alg, hex(await crypto.subtle.sign("HMAC", again, data)) === out["SHA-256"]];
        const made = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-512" }, false, ["sign"]);
        out.generated = [made.algorithm.length, made.extractable, made.type];
        const errors = [];
        for (const attempt of [
          () => crypto.subtle.sign("HMAC", key, data),  // a verify-only key
          () => crypto.subtle.exportKey("raw", again),  // not extractable
          () => crypto.subtle.importKey("raw", enc.encode("k"), { name: "AES-CBC" }, false, ["encrypt"]),
          () => crypto.subtle.importKey("raw", enc.encode("k"), { name: "HMAC", hash: "MD5" }, false, ["sign"]),
        ]) {
          try { await attempt(); errors.push("none"); } catch (e) { errors.push(e.name); }
        }
        out.errors = errors;
        out.equal = [crypto.subtle.timingSafeEqual(enc.encode("ab"), enc.encode("ab")), crypto.subtle.timingSafeEqual(enc.encode("ab"), enc.encode("ac"))];
        try { crypto.subtle.timingSafeEqual(enc.encode("ab"), enc.encode("abc")); } catch (e) { out.equal.push(e.name); }
        return Response.json(out);
      }
      // Text across the boundary: keys and headers in, keys, headers and a
      // body out; short and long, ASCII and not, and a lone surrogate.
      case "text": {
        const key = "clé-" + "ü".repeat(300) + "😀";
        await storage.put(key, 1);
        const listed = [...(await storage.list({ prefix: "clé-" })).keys()];
        return new Response(listed.length + " " + (listed[0] === key) + " " + listed[0].length + "\uD800" + "ß".repeat(300),
          { headers: { "x-echo": request.headers.get("x-name") + "-ok", "x-short": "ö" } });
      }
      case "bytes": {
        // ASCII after a byte that is not UTF-8 (0xff), as given: no content type.
        const q = new URL(request.url).searchParams.get("ascii");
        return new Response(q ? new TextEncoder().encode(q) : new Uint8Array([0xff, 104, 105]));
      }
      // A header named by the query, read from the request and set on the
      // response (header names cross by the runtime's cache of names).
      case "header": {
        const name = new URL(request.url).searchParams.get("name");
        return new Response(request.headers.get(name), { headers: { [name]: request.headers.get(name) } });
      }
      case "abort":
        this.ctx.abort("asked to");
        return new Response("unreachable");
      // History (docs/history.md), with Cloudflare's names.
      case "bump": {
        const n = ((await storage.get("n")) ?? 0) + 1;
        await storage.put("n", n);
        return new Response(String(n));
      }
      case "n":
        return new Response(String((await storage.get("n")) ?? 0));
      case "bookmark":
        return new Response(await storage.getCurrentBookmark());
      case "bookmark-at":
        return new Response(await storage.getBookmarkForTime(new Date(Number(url.searchParams.get("t")))));
      case "restore":
        try {
          return new Response(await storage.onNextSessionRestoreBookmark(url.searchParams.get("b")));
        } catch (e) {
          return new Response(e.message, { status: 400 });
        }
      case "snapshot":
        return new Response(await storage.snapshot());
      case "fork":
        await this.ctx.onNextSessionRestore(url.searchParams.get("s"));
        this.ctx.abort("forking");
        return new Response("unreachable");
      case "txn-io": {
        await storage.put("u", 0);
        let error = null;
        try {
          await storage.transaction(async (txn) => {
            await txn.put("u", 1);
            await new Promise((r) => setTimeout(r, 5));
            await txn.put("u", 2);
          });
        } catch (e) {
          error = e.message;
        }
        return Response.json({ u: await storage.get("u"), error });
      }
      case "ws": {
        const [client, server] = Object.values(new WebSocketPair());
        this.ctx.acceptWebSocket(server, ["t1", "t2"]);
        server.serializeAttachment({ n: 0 });
        server.send("hello");
        return new Response(null, { status: 101, webSocket: client });
      }
      case "sync-kv": {  // ctx.storage.kv, over the same keys as the async API
        const kv = storage.kv;
        kv.put("sk-a", { n: 1 });
        kv.put("sk-b", new Map([["x", 2]]));
        await storage.put("sk-c", 3);
        const seen = {
          a: kv.get("sk-a"),
          b: kv.get("sk-b") instanceof Map ? [...kv.get("sk-b")] : null,
          c: kv.get("sk-c"),
          asyncA: await storage.get("sk-a"),
          missing: kv.get("sk-none") === undefined,
          listed: [...kv.list({ prefix: "sk-" })].map(([k]) => k),
          reversed: [...kv.list({ prefix: "sk-", reverse: true, limit: 2 })].map(([k]) => k),
          deleted: [kv.delete("sk-c"), kv.delete("sk-c")],
        };
        try {
          kv.put("sk-d", undefined);
        } catch (e) {
          seen.putUndefined = e.constructor.name;
        }
        return Response.json(seen);
      }
      case "sync-kv-read":
        return Response.json([...storage.kv.list({ prefix: "sk-" })].map(([k, v]) => [k, v instanceof Map ? [...v] : v]));
      case "txn": {
        await storage.put("t", 0);
        try {
          await storage.transaction(async (txn) => {
            await txn.put("t", 1);
            throw new Error("undo");
          });
        } catch {}
        const after = await storage.get("t");
        await storage.transaction(async (txn) => {
          await txn.put("t", 2);
          txn.rollback();
        });
        return Response.json({ afterThrow: after, afterRollback: await storage.get("t") });
      }
      default:
        return new Response("no such op", { status: 404 });
    }
  }

  // Every message counts in the socket's attachment, which outlives the
  // instance (hibernation).
  async webSocketMessage(ws, message) {
    const a = ws.deserializeAttachment();
    a.n += 1;
    ws.serializeAttachment(a);
    ws.send(`${message} ${a.n} ${this.ctx.getTags(ws).join(",")} ${this.ctx.getWebSockets("t1").length}`);
  }

  // RPC methods.
  async add(n) {
    const v = ((await this.ctx.storage.get("sum")) ?? 0) + n;
    await this.ctx.storage.put("sum", v);
    return v;
  }
  echo(value) {
    return { value, type: Object.prototype.toString.call(value) };
  }
  fail(message) {
    throw new RangeError(message);
  }
  failSubclass(message) {
    class QuotaError extends TypeError {}
    throw new QuotaError(message);
  }
  // Lets the failure of a stub it calls through (the object it calls throws).
  async relay(name) {
    return (await this.env.PROBE.getByName(name).fetch(`http://do/probe/${name}/throw`)).status;
  }
}

// A class in the style before DurableObject was a base class.
export class Plain {
  constructor(state, env) {
    this.state = state;
    this.env = env;
  }
  async fetch(request) {
    const n = ((await this.state.storage.get("n")) ?? 0) + 1;
    await this.state.storage.put("n", n);
    return new Response(`plain ${n} ${this.env.MODE}`);
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const [, kind, name] = url.pathname.split("/");
    if (kind === "probe") return env.PROBE.getByName(name).fetch(request);
    if (kind === "call-order") {
      // A stub call starts the object's event later, never inside the call:
      // the Worker's own code and its microtasks run first.
      callLog.length = 0;
      queueMicrotask(() => callLog.push("worker microtask"));
      const pending = env.PROBE.getByName(name).fetch("http://do/probe/" + name + "/note-call");
      callLog.push("worker after the call");
      await pending;
      return Response.json(callLog);
    }
    if (kind === "wait-until") {
      // A promise handed to waitUntil that fails is logged, not thrown.
      ctx.waitUntil(Promise.reject(new Error(`late failure ${name}`)));
      return new Response(`${typeof ctx.waitUntil} ${typeof ctx.passThroughOnException} ${ctx.passThroughOnException()}`);
    }
    if (kind === "plain") return env.PLAIN.get(env.PLAIN.idFromName(name)).fetch(request);
    if (kind === "rpc") {
      const stub = env.PROBE.getByName(name);
      // Calls through one stub arrive in order.
      const sums = await Promise.all([1, 2, 3, 4, 5].map((n) => stub.add(n)));
      const echoed = await stub.echo(new Map([["k", new Date(0)]]));
      let error = null;
      try {
        await stub.fail("not enough");
      } catch (e) {
        error = e.message;
      }
      return Response.json({ sums, echoed: echoed.type, mapOk: echoed.value.get("k").getTime() === 0, error });
    }
    // Served by js-mixed-server only, where C++ classes sit beside these.
    if (kind === "cpp") {
      if (!env.CPP_COUNTER) return new Response("no C++ here", { status: 404 });
      return env.CPP_COUNTER.getByName(name).fetch("http://cpp/");
    }
    if (kind === "calls") {
      if (!env.CALLS_JS) return new Response("no C++ here", { status: 404 });
      return env.CALLS_JS.getByName(name).fetch(request);
    }
    if (kind === "copies") {
      // Bodies that came from the runtime, copied: a Request made from the
      // client's (no content type sent) and a clone of the object's answer
      // (bytes, so none either) keep their headers as they are, and their
      // bodies: ASCII, and bytes that are not UTF-8.
      const copy = new Request(request);
      const answer = await env.PROBE.getByName(name).fetch("http://do/probe/" + name + "/bytes");
      const clone = answer.clone();
      return Response.json({
        requestType: copy.headers.get("content-type"), requestText: await copy.text(),
        cloneType: clone.headers.get("content-type"), cloneBytes: [...new Uint8Array(await clone.arrayBuffer())],
        answerBytes: [...new Uint8Array(await answer.arrayBuffer())],
      });
    }
    if (kind === "reach") {
      // One call to an object, and how it failed if it did.
      try {
        return new Response(`answered ${(await env.PROBE.getByName(name).fetch(`http://do/probe/${name}/boots`)).status}`);
      } catch (e) {
        return Response.json({ message: e.message, retryable: e.retryable === true, remote: e.remote === true });
      }
    }
    if (kind === "failures") {
      // What a stub's caller sees when the call fails, as on Cloudflare:
      // an exception with the markers, never a response.
      const seen = (e) => ({
        name: e.name, message: e.message, remote: e.remote === true, retryable: e.retryable === true,
        overloaded: e.overloaded === true,
      });
      const out = {};
      const stub = env.PROBE.getByName(name);
      for (const [key, call] of [
        ["rpc", () => stub.fail("too far")],
        ["subclass", () => stub.failSubclass("over quota")],
        ["fetch", () => stub.fetch(`http://do/probe/${name}/throw`)],
        ["reset", () => env.PROBE.getByName(`${name}-r`).fetch(`http://do/probe/${name}-r/abort`)],
        ["relayed", () => stub.relay(`${name}-t`)],
      ]) {
        try {
          out[key] = { resolved: await call() };
        } catch (e) {
          out[key] = seen(e);
          out[key].instance = e instanceof RangeError ? "RangeError" : e instanceof TypeError ? "TypeError" : "Error";
        }
      }
      // A response with an error status is an answer, not a failure.
      out.answer = (await stub.fetch(`http://do/probe/${name}/no-such-op`)).status;
      return Response.json(out);
    }
    if (kind === "streams") {
      if (url.searchParams.has("late")) {
        // The Worker's answer streamed through a TransformStream written after
        // it returned.
        const { readable, writable } = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } });
        const w = writable.getWriter();
        (async () => {
          for (const x of ["x", "y", "z"]) { await scheduler.wait(3); await w.write(x); }
          await w.close();
        })();
        return new Response(readable.pipeThrough(new TextEncoderStream()));
      }
      const out = {};
      const collect = async (stream) => { const parts = []; for await (const c of stream) parts.push(c); return parts; };
      // Reader, queue and close.
      const s1 = new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } });
      out.read = await collect(s1);
      out.lockedAfter = s1.locked;
      // tee: both halves see every chunk.
      const [t1, t2] = ReadableStream.from(["p", "q"]).tee();
      out.tee = [await collect(t1), await collect(t2)];
      // pipeTo a WritableStream, through a TransformStream.
      const sunk = [];
      await ReadableStream.from([1, 2, 3]).pipeThrough(new TransformStream({
        transform(n, c) { c.enqueue(n * 10); },
        flush(c) { c.enqueue("end"); },
      })).pipeTo(new WritableStream({ write(x) { sunk.push(x); }, close() { sunk.push("closed"); } }));
      out.piped = sunk;
      // A character split across chunks decodes whole.
      const euro = new TextEncoder().encode("€uro");
      out.decoded = (await collect(ReadableStream.from([euro.slice(0, 2), euro.slice(2)]).pipeThrough(new TextDecoderStream()))).join("");
      // cancel() reaches the source; errors reach the reader.
      let cancelled = null;
      const s2 = new ReadableStream({ start(c) { c.enqueue(1); }, cancel(reason) { cancelled = reason; } });
      await s2.cancel("enough");
      out.cancelled = cancelled;
      const s3 = new ReadableStream({ start(c) { c.error(new RangeError("bad source")); } });
      try { await s3.getReader().read(); } catch (e) { out.errored = e.message; }
      try { new ReadableStream({ start(c) { c.close(); c.enqueue("x"); } }); } catch (e) { out.afterClose = e.name; }
      // Bodies: a stream body read as text, a clone of a stream body, a
      // stream body sent to an object.
      out.text = await new Response(ReadableStream.from(["he", "llo"])).text();
      const r = new Response(ReadableStream.from(["clo", "ned"]));
      const copy = r.clone();
      out.clone = [await r.text(), await copy.text()];
      const sent = await env.PROBE.getByName(name).fetch(`http://do/probe/${name}/read-body`, {
        method: "POST", body: ReadableStream.from(["one ", "two"]),
      });
      out.sent = await sent.json();
      const late = await env.PROBE.getByName(name).fetch(`http://do/probe/${name}/stream-late`);
      out.late = await late.text();
      out.blobStream = await new Response(new Blob(["bl", "ob"]).stream()).text();
      return Response.json(out);
    }
    if (kind === "crypto-keys") {
      // Vectors OpenSSL's command line made (tests/js/crypto-vectors.json):
      // what is deterministic must come out the same, the rest must verify.
      const v = await request.json();
      const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
      const msg = bytes(v.msg);
      const tampered = new Uint8Array([...msg, 33]);
      const subtle = crypto.subtle;
      const out = {};
      const errorName = async (fn) => { try { await fn(); return "none"; } catch (e) { return e.name; } };

      const rs = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
      const rsaPriv = await subtle.importKey("pkcs8", bytes(v.rsaPk8), rs, true, ["sign"]);
      const rsaPub = await subtle.importKey("spki", bytes(v.rsaSpki), rs, true, ["verify"]);
      const jwk = await subtle.exportKey("jwk", rsaPriv);
      const again = await subtle.importKey("jwk", jwk, rs, false, ["sign"]);
      out.rsa = {
        signs: b64(await subtle.sign("RSASSA-PKCS1-v1_5", rsaPriv, msg)) === v.rsaSig,
        jwkSigns: b64(await subtle.sign(rs, again, msg)) === v.rsaSig,
        verifies: await subtle.verify(rs, rsaPub, bytes(v.rsaSig), msg),
        tampered: await subtle.verify(rs, rsaPub, bytes(v.rsaSig), tampered),
        spki: b64(await subtle.exportKey("spki", rsaPub)) === v.rsaSpki,
        algorithm: [rsaPub.algorithm.modulusLength, [...rsaPub.algorithm.publicExponent], rsaPub.algorithm.hash.name, rsaPub.type],
        jwk: [jwk.kty, jwk.alg, Object.keys(jwk).filter((k) => k.length <= 2 && k !== "e" && k !== "n").sort().join()],
      };
      const ps = { name: "RSA-PSS", hash: "SHA-256" };
      const psPriv = await subtle.importKey("pkcs8", bytes(v.rsaPk8), ps, false, ["sign"]);
      const psPub = await subtle.importKey("spki", bytes(v.rsaSpki), ps, false, ["verify"]);
      const psSig = await subtle.sign({ name: "RSA-PSS", saltLength: 32 }, psPriv, msg);
      out.pss = [await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, psPub, psSig, msg),
                 await subtle.verify({ name: "RSA-PSS", saltLength: 20 }, psPub, psSig, msg)];

      const es = { name: "ECDSA", namedCurve: "P-256" };
      const ecPub = await subtle.importKey("spki", bytes(v.ecSpki), es, true, ["verify"]);
      const ecJwk = await subtle.exportKey("jwk", ecPub);
      const ecFromJwk = await subtle.importKey("jwk", ecJwk, es, true, ["verify"]);
      const raw = await subtle.exportKey("raw", ecPub);
      const ecFromRaw = await subtle.importKey("raw", raw, es, true, ["verify"]);
      const e256 = { name: "ECDSA", hash: "SHA-256" };
      const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
      const pk8 = await subtle.exportKey("pkcs8", pair.privateKey);
      const reimported = await subtle.importKey("pkcs8", pk8, { name: "ECDSA", namedCurve: "P-384" }, false, ["sign"]);
      const e384 = { name: "ECDSA", hash: "SHA-384" };
      const sig384 = await subtle.sign(e384, reimported, msg);
      out.ecdsa = {
        verifies: await subtle.verify(e256, ecPub, bytes(v.ecSig), msg),
        tampered: await subtle.verify(e256, ecPub, bytes(v.ecSig), tampered),
        jwk: [ecJwk.kty, ecJwk.crv, ecJwk.d === undefined, await subtle.verify(e256, ecFromJwk, bytes(v.ecSig), msg)],
        raw: [raw.byteLength, await subtle.verify(e256, ecFromRaw, bytes(v.ecSig), msg)],
        generated: [sig384.byteLength, await subtle.verify(e384, pair.publicKey, sig384, msg), pair.privateKey.usages, pair.publicKey.usages],
      };

      const edPriv = await subtle.importKey("pkcs8", bytes(v.edPk8), "Ed25519", true, ["sign"]);
      const edJwk = await subtle.exportKey("jwk", edPriv);
      const edPub = await subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: edJwk.x }, "Ed25519", true, ["verify"]);
      const nodeName = { name: "NODE-ED25519", namedCurve: "NODE-ED25519" };
      const edNode = await subtle.importKey("raw", await subtle.exportKey("raw", edPub), nodeName, false, ["verify"]);
      out.ed25519 = {
        signs: b64(await subtle.sign("Ed25519", edPriv, msg)) === v.edSig,
        verifies: await subtle.verify("Ed25519", edPub, bytes(v.edSig), msg),
        tampered: await subtle.verify({ name: "Ed25519" }, edPub, bytes(v.edSig), tampered),
        node: await subtle.verify(nodeName, edNode, bytes(v.edSig), msg),
        jwk: [edJwk.kty, edJwk.crv, typeof edJwk.d],
      };

      // GCM's test case 2 (McGrew and Viega): zero key, iv and block.
      const aes = await subtle.importKey("raw", new Uint8Array(16), "AES-GCM", true, ["encrypt", "decrypt"]);
      const iv = new Uint8Array(12);
      const sealed = await subtle.encrypt({ name: "AES-GCM", iv }, aes, new Uint8Array(16));
      const hex = [...new Uint8Array(sealed)].map((x) => x.toString(16).padStart(2, "0")).join("");
      const aad = new TextEncoder().encode("header");
      const key256 = await subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
      const withAad = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad, tagLength: 96 }, key256, msg);
      const opened = await subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad, tagLength: 96 }, key256, withAad);
      const bad = new Uint8Array(sealed); bad[0] ^= 1;
      out.aes = {
        kat: hex,
        opened: new TextDecoder().decode(opened) === new TextDecoder().decode(msg),
        altered: await errorName(() => subtle.decrypt({ name: "AES-GCM", iv }, aes, bad)),
        jwk: (await subtle.exportKey("jwk", key256)).alg,
      };
      // Key derivation: RFC 6070's PBKDF2 vector, PBKDF2-SHA256 with 4096
      // iterations, RFC 5869's HKDF test case 1, and a derived AES key.
      const hexOf = (buf) => [...new Uint8Array(buf)].map((x) => x.toString(16).padStart(2, "0")).join("");
      const enc = new TextEncoder();
      const password = await subtle.importKey("raw", enc.encode("password"), "PBKDF2", false, ["deriveBits", "deriveKey"]);
      const ikm = await subtle.importKey("raw", new Uint8Array(22).fill(0x0b), "HKDF", false, ["deriveBits"]);
      const derived = await subtle.deriveKey({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 1000, hash: "SHA-256" },
        password, { name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
      out.derive = {
        pbkdf2: hexOf(await subtle.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 1, hash: "SHA-1" }, password, 160)),
        pbkdf2sha256: hexOf(await subtle.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 4096, hash: "SHA-256" }, password, 256)),
        hkdf: hexOf(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: Uint8Array.from({ length: 13 }, (_, i) => i),
          info: Uint8Array.from({ length: 10 }, (_, i) => 0xf0 + i) }, ikm, 336)),
        derivedKey: [derived.algorithm.name, derived.algorithm.length, (await subtle.exportKey("raw", derived)).byteLength],
        extractable: await errorName(() => subtle.importKey("raw", enc.encode("p"), "PBKDF2", true, ["deriveBits"])),
        oddLength: await errorName(() => subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new Uint8Array(0) }, ikm, 12)),
      };
      out.errors = {
        wrongKind: await errorName(() => subtle.importKey("spki", bytes(v.ecSpki), rs, false, ["verify"])),
        wrongCurve: await errorName(() => subtle.importKey("spki", bytes(v.ecSpki), { name: "ECDSA", namedCurve: "P-384" }, false, ["verify"])),
        garbage: await errorName(() => subtle.importKey("pkcs8", new Uint8Array([1, 2, 3]), rs, false, ["sign"])),
        signWithPublic: await errorName(() => subtle.sign(rs, rsaPub, msg)),
        wrongUsage: await errorName(() => subtle.importKey("spki", bytes(v.rsaSpki), rs, false, ["sign"])),
        unsupported: await errorName(() => subtle.importKey("spki", bytes(v.rsaSpki), { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"])),
        privateAsRaw: await errorName(() => subtle.exportKey("raw", edPriv)),
      };
      return Response.json(out);
    }
    if (kind === "node") {
      // What one request sets with enterWith must not reach the next.
      if (url.searchParams.has("enter")) {
        sharedStorage.enterWith("leak");
        return new Response(String(sharedStorage.getStore()));
      }
      // An AsyncLocalStorage store across awaits, timers, a stub call and
      // queueMicrotask; nested runs; nothing outside run().
      const als = new AsyncLocalStorage();
      const stores = [];
      await als.run("outer", async () => {
        stores.push(als.getStore());
        await scheduler.wait(1);
        stores.push(als.getStore());
        await new Promise((r) => setTimeout(r, 1));
        stores.push(als.getStore());
        await als.run("inner", async () => { await null; stores.push(als.getStore()); });
        stores.push(als.getStore());
        await env.PROBE.getByName(name).fetch(`http://do/probe/${name}/boots`);
        stores.push(als.getStore());
        await new Promise((r) => queueMicrotask(() => { stores.push(als.getStore()); r(); }));
        stores.push(als.exit(() => als.getStore()) ?? "exited");
      });
      stores.push(als.getStore() ?? "none");
      const leaked = sharedStorage.getStore() ?? null;
      // nodejs_compat: node:buffer and node:events, and the v2 globals.
      const b = NodeBuffer.from("héllo wörld", "utf8");
      const le = NodeBuffer.alloc(8);
      le.writeUInt32LE(0xdeadbeef, 0);
      le.writeInt16BE(-2, 4);
      class Ticker extends EventEmitter {}
      const t = new Ticker();
      const seen = [];
      t.on("tick", (n) => seen.push(`on ${n}`));
      t.once("tick", (n) => seen.push(`once ${n}`));
      t.emit("tick", 1);
      t.emit("tick", 2);
      setTimeout(() => t.emit("done", "late"), 1);
      const [late] = await once(t, "done");
      let unhandled = null;
      try { t.emit("error", new Error("no listener")); } catch (e) { unhandled = e.message; }
      return Response.json({
        global: typeof Buffer === "function" && Buffer === NodeBuffer && typeof process.nextTick === "function",
        length: b.length, byteLength: NodeBuffer.byteLength("héllo"),
        hex: b.toString("hex", 0, 3), base64: b.toString("base64"), base64url: NodeBuffer.from([251, 255]).toString("base64url"),
        back: NodeBuffer.from(b.toString("base64"), "base64").toString(), fromHex: NodeBuffer.from("68c3a9", "hex").toString(),
        latin1: NodeBuffer.from("é", "latin1")[0], utf16: NodeBuffer.from("hi", "utf16le").toString("hex"),
        concat: NodeBuffer.concat([NodeBuffer.from("ab"), NodeBuffer.from("cd")]).toString(),
        slice: (() => { const s = b.slice(0, 1); s[0] = 72; return b.toString("utf8", 0, 5); })(),
        numbers: [le.readUInt32LE(0), le.readInt16BE(4), le.readUint8(0), le.toString("hex")],
        json: JSON.stringify(NodeBuffer.from([1, 2])), equals: NodeBuffer.from("a").equals(NodeBuffer.from("a")),
        indexOf: b.indexOf("wörld"), isBuffer: [NodeBuffer.isBuffer(b), NodeBuffer.isBuffer(new Uint8Array(1))],
        events: seen, late, count: t.listenerCount("tick"), unhandled,
        env: [modeAtImport, processEnv.MODE, "LIMITS" in process.env],
        stores, leaked,
      });
    }
    if (kind === "forms") {
      // The client's own form (multipart or urlencoded), read here.
      if (request.method === "POST") return Response.json(await formEntries(await request.formData()));
      // A form made here, sent to an object as multipart and read there.
      const form = new FormData();
      form.append("greeting", "héllo\nworld");
      form.append("upload", new Blob([new Uint8Array([0, 13, 10, 255]), "ok"], { type: "Application/X-Test" }), "a \"b\".bin");
      form.append("greeting", "again");
      form.set("solo", "1");
      form.set("solo", "2");
      const sent = await env.PROBE.getByName(name).fetch(`http://do/probe/${name}/form`, { method: "POST", body: form });
      const params = new Request("http://do/", { method: "POST", body: new URLSearchParams("a=1&b=x+y") });
      const blob = new Blob(["héllo", new Uint8Array([33])], { type: "Text/Plain" });
      let notAForm = null;
      try { await new Response("just text").formData(); } catch (e) { notAForm = e.name; }
      return Response.json({
        object: await sent.json(),
        paramsType: params.headers.get("content-type"),
        params: await formEntries(await params.formData()),
        blob: { size: blob.size, type: blob.type, text: await blob.text(), slice: await blob.slice(1, -1).text(),
                tail: await blob.slice(-1).text() },
        fromResponse: await (await new Response(blob).blob()).text(),
        responseType: new Response(blob).headers.get("content-type"),
        file: (() => { const f = new File(["x"], "f.txt", { lastModified: 5 }); return [f.name, f.lastModified, f instanceof Blob]; })(),
        has: [form.has("solo"), form.getAll("greeting").length, form.get("missing")],
        notAForm,
      });
    }
    if (kind === "unique") {
      const a = env.PROBE.newUniqueId();
      const b = env.PROBE.idFromString(a.toString());
      return Response.json({ equal: a.equals(b), length: a.toString().length });
    }
    if (kind === "badid") {
      try {
        env.PROBE.idFromString("zz");
        return new Response("accepted");
      } catch (e) {
        return Response.json({ error: e.message }, { status: 400 });
      }
    }
    return new Response("not found", { status: 404 });
  },
};
