// The reviewer's rules: Durable Object code checked against the model's
// classic mistakes (docs/review.md lists each rule with a wrong and a right
// example).
//
// Runs in a bare V8 context (src/review/review.cc) after acorn and
// acorn-walk (Debian's node-acorn), which parse the code into an ESTree.
// review(input) takes {files: [{path, text}], config, configPath, live} and
// returns {findings: [...], errors: [...]}; every finding has rule, severity,
// file, line, column, message, why and fix.
"use strict";

const RULES = {
  "constructor-async-storage": {
    severity: "error",
    why: "A constructor runs synchronously; storage work it starts finishes later, and events " +
      "can reach the object before it has.",
    fix: "Do the asynchronous set-up inside ctx.blockConcurrencyWhile(async () => { ... }) in " +
      "the constructor (SQL in the constructor is synchronous and fine).",
  },
  "state-in-memory": {
    severity: "warning",
    why: "A field changed by a handler and read back later lives only in memory: it is lost " +
      "when the object is evicted, hibernates, is reset or moves to another machine.",
    fix: "Keep the state in storage (put it when it changes, read it back or load it in " +
      "blockConcurrencyWhile in the constructor); a field may cache what storage holds.",
    replay: true,
  },
  "read-modify-write-across-io": {
    severity: "error",
    why: "An outgoing fetch, a timer or a call to another object opens the input gate: other " +
      "events run while it waits, so the value read before it may be stale when it is written.",
    fix: "Do the outside I/O before the read, or read again after it, or keep the read and the " +
      "write in one turn (ctx.storage.transaction, or no await between them but storage ones).",
  },
  "await-between-writes": {
    severity: "warning",
    why: "Writes in one turn commit together (write coalescing); an await of outside I/O between " +
      "two related writes splits them, and a crash or reset between them keeps the first only.",
    fix: "Make the related writes in one turn (no await but storage ones between them), as one " +
      "put({...}) of several keys, or in a transaction.",
  },
  "blocking-loop": {
    severity: "error",
    why: "An object runs one event at a time: a loop without an await never lets another event " +
      "in and ends only when the CPU limit resets the object.",
    fix: "Bound the loop, or do the work in steps scheduled with storage.setAlarm().",
  },
  "busy-wait": {
    severity: "error",
    why: "Spinning on the clock burns the object's CPU time and blocks every other event.",
    fix: "Wait with an alarm (storage.setAlarm) or, for a short pause, await a timer.",
  },
  "timer-for-scheduled-work": {
    severity: "warning",
    why: "setTimeout/setInterval live in memory: they die with the object (eviction, " +
      "hibernation, restart) and keep it resident meanwhile.",
    fix: "Schedule the work with ctx.storage.setAlarm(time) and do it in alarm(); alarms survive " +
      "restarts and are retried.",
  },
  "sleep-retry-loop": {
    severity: "warning",
    why: "Retrying with sleeps keeps the object busy, is lost on a restart and does not survive " +
      "the object being evicted.",
    fix: "Record the work in storage and retry it from alarm(): alarms are retried with backoff " +
      "and alarmInfo.retryCount says which attempt it is.",
  },
  "unique-id-per-request": {
    severity: "warning",
    why: "newUniqueId() in the request path makes a new object for every request: nothing is " +
      "shared between requests and each one pays for creating an object.",
    fix: "Address the object by what the request is about: idFromName(userId, roomName, ...).",
  },
  "constant-object-name": {
    severity: "warning",
    why: "Every request goes to the one object named by a constant: one object runs on one " +
      "thread, so this caps the whole application's throughput.",
    fix: "Name the object after the request's key (user, room, document), or shard a global " +
      "one: idFromName(`counter:${hash(key) % N}`).",
  },
  "websocket-accept-without-hibernation": {
    severity: "warning",
    why: "ws.accept() with event listeners keeps the object in memory for as long as any socket " +
      "is open: it cannot hibernate.",
    fix: "Accept with this.ctx.acceptWebSocket(server) and handle webSocketMessage, " +
      "webSocketClose and webSocketError; ctx.getWebSockets() lists the sockets.",
  },
  "websocket-set-without-cleanup": {
    severity: "warning",
    why: "Sockets kept in a field and never removed pile up: sends to closed sockets fail and " +
      "memory grows with every connection.",
    fix: "Remove the socket on close and error, or use ctx.acceptWebSocket and " +
      "ctx.getWebSockets() instead of a field.",
  },
  "broadcast-send-unguarded": {
    severity: "warning",
    why: "send() on a socket that is closing throws: one bad socket stops the broadcast for " +
      "everyone after it.",
    fix: "Wrap each send in try/catch (and drop the socket that failed).",
  },
  "kv-only-object": {
    severity: "info",
    why: "The class only gets and puts keys, with no read-modify-write, transaction, alarm, SQL " +
      "or sockets: it pays for a Durable Object's coordination without using it.",
    fix: "A key-value store would do, or put the coordination this object exists for in it.",
  },
  "block-concurrency-per-request": {
    severity: "warning",
    why: "blockConcurrencyWhile stops every other event of the object; on each request it " +
      "serialises the object for no gain (the input gate already orders storage).",
    fix: "Use it in the constructor for set-up only; in handlers rely on the input gate or use " +
      "storage.transaction.",
  },
  "block-concurrency-outside-io": {
    severity: "error",
    why: "Outside I/O inside blockConcurrencyWhile holds every request of the object while a " +
      "remote service answers (or times out).",
    fix: "Keep blockConcurrencyWhile to storage work; do outside I/O outside it.",
  },
  "rpc-not-awaited": {
    severity: "warning",
    why: "A call to another object that is not awaited: its errors are lost and the request may " +
      "end before it ran.",
    fix: "await the call, return it, or hand it to ctx.waitUntil().",
  },
  "websocket-close-not-called": {
    severity: "warning",
    why: "webSocketClose is called when the client closes; without ws.close() the close " +
      "handshake is not completed (before the web_socket_auto_reply_to_close flag).",
    fix: "Call ws.close(code, reason) in webSocketClose.",
  },
  "alarm-retry-unaware": {
    severity: "info",
    why: "Alarms run at least once: a failed alarm is retried, so outside effects in it can " +
      "happen twice.",
    fix: "Make the alarm idempotent (record what was done in storage) or look at " +
      "alarmInfo.retryCount / isRetry.",
  },
  "sql-transaction-statement": {
    severity: "error",
    why: "BEGIN, COMMIT, ROLLBACK, SAVEPOINT and PRAGMA user_version are refused by sql.exec: " +
      "the runtime owns the transaction.",
    fix: "Use ctx.storage.transactionSync(() => { ... }) for a transaction; keep a schema " +
      "version in a table of your own.",
  },
  "sql-too-many-bindings": {
    severity: "error",
    why: "sql.exec takes at most 100 bound parameters.",
    fix: "Split the statement into batches of at most 100 parameters.",
  },
  "unsupported-api": {
    severity: "warning",
    why: "dobj does not provide this API yet (docs/js.md lists what runs): the code will throw " +
      "when it reaches it.",
    fix: "Avoid it on dobj, or keep it behind a check.",
  },
  "event-stream-response": {
    severity: "warning",
    why: "dobj sends a response body whole, once its stream has ended (docs/js.md): server-sent " +
      "events that keep the stream open never reach the client.",
    fix: "Push updates over a hibernatable WebSocket (ctx.acceptWebSocket), or let the client poll.",
  },
  "config-class-not-exported": {
    severity: "error",
    why: "A Durable Object binding names a class the main module does not export.",
    fix: "Export the class from the main module, or fix class_name.",
  },
  "config-class-not-in-migration": {
    severity: "error",
    why: "A bound class must be declared by a migration (new_sqlite_classes or new_classes).",
    fix: 'Add { "tag": "v1", "new_sqlite_classes": ["Class"] } to migrations.',
  },
  "config-unsupported-binding": {
    severity: "warning",
    why: "dobj serves Durable Object bindings and vars; this kind of binding is not provided.",
    fix: "Remove it or keep its use out of the path dobj serves.",
  },
  "parse-error": {
    severity: "error",
    why: "The file is not valid JavaScript (ES modules).",
    fix: "Fix the syntax; for TypeScript, review the compiled output (wrangler or esbuild).",
  },
};

// Live numbers (advisor rules) that confirm a reviewer rule.
const CONFIRMED_BY = {
  "constant-object-name": "hot-object",
  "kv-only-object": "plain-key-value",
  "unique-id-per-request": "unique-id-per-request",
  "blocking-loop": "high-cpu",
  "busy-wait": "high-cpu",
  "websocket-accept-without-hibernation": "classic-websockets",
  "alarm-retry-unaware": "alarm-retries",
};

const STORAGE_READS = new Set(["get", "list", "getAlarm"]);
const STORAGE_WRITES = new Set(["put", "delete", "deleteAll", "setAlarm", "deleteAlarm"]);
const STORAGE_ASYNC = new Set([...STORAGE_READS, ...STORAGE_WRITES, "transaction", "sync"]);
const HANDLERS = new Set(["fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"]);
const UNSUPPORTED_GLOBALS = new Set(["HTMLRewriter", "caches", "CompressionStream", "DecompressionStream",
  "EventSource"]);
const SUPPORTED_CONFIG_KEYS = new Set(["name", "main", "compatibility_date", "compatibility_flags",
  "durable_objects", "migrations", "vars", "$schema", "workers_dev", "routes", "route",
  "observability", "placement", "build", "rules", "no_bundle", "minify", "keep_vars", "env",
  "dev", "account_id", "tsconfig", "upload_source_maps", "logpush", "limits", "triggers"]);
const BINDING_KEYS = ["kv_namespaces", "r2_buckets", "d1_databases", "queues", "services",
  "analytics_engine_datasets", "hyperdrive", "vectorize", "ai", "browser", "images",
  "dispatch_namespaces", "mtls_certificates", "send_email", "workflows", "secrets_store_secrets",
  "version_metadata", "assets", "tail_consumers", "pipelines"];

// ---- AST helpers ----------------------------------------------------------

function isFunction(n) {
  return n && (n.type === "FunctionDeclaration" || n.type === "FunctionExpression" ||
    n.type === "ArrowFunctionExpression");
}

// Sets node.parent on every node below root.
function link(root) {
  const stack = [root];
  while (stack.length) {
    const n = stack.pop();
    for (const key of Object.keys(n)) {
      if (key === "parent" || key === "loc") continue;
      const v = n[key];
      if (Array.isArray(v)) {
        for (const c of v) {
          if (c && typeof c.type === "string") {
            c.parent = n;
            stack.push(c);
          }
        }
      } else if (v && typeof v.type === "string") {
        v.parent = n;
        stack.push(v);
      }
    }
  }
}

// Every node below root, in source order; `into(n)` says whether to look
// inside a nested function n.
function nodesOf(root, into = () => true) {
  const out = [];
  const visit = (n) => {
    out.push(n);
    for (const key of Object.keys(n)) {
      if (key === "parent" || key === "loc") continue;
      const v = n[key];
      const kids = Array.isArray(v) ? v : [v];
      for (const c of kids) {
        if (c && typeof c.type === "string") {
          if (isFunction(c) && !into(c)) continue;
          visit(c);
        }
      }
    }
  };
  visit(root);
  return out.sort((a, b) => a.start - b.start);
}

// allNodes(root) and ownNodes(root), kept per node: rules ask
// for the same subtrees many times.
const allCache = new WeakMap();
const ownCache = new WeakMap();
function allNodes(root) {
  let v = allCache.get(root);
  if (!v) allCache.set(root, (v = nodesOf(root)));
  return v;
}
function ownNodes(root) {
  let v = ownCache.get(root);
  if (!v) ownCache.set(root, (v = nodesOf(root, () => false)));
  return v;
}

function memberName(n) {
  if (!n || n.type !== "MemberExpression") return null;
  if (!n.computed && n.property.type === "Identifier") return n.property.name;
  if (n.property.type === "PrivateIdentifier") return "#" + n.property.name;
  if (n.computed && n.property.type === "Literal") return String(n.property.value);
  return null;
}

// X.storage, or X.storage.kv (the synchronous key-value API, same keys).
function isStorageMember(n) {
  return memberName(n) === "storage" || (memberName(n) === "kv" && memberName(n.object) === "storage");
}

function calleeName(call) {
  if (call.type !== "CallExpression") return null;
  if (call.callee.type === "Identifier") return call.callee.name;
  return memberName(call.callee);
}

// this.X (or this.#X): X.
function thisField(n) {
  if (n && n.type === "MemberExpression" && n.object.type === "ThisExpression") return memberName(n);
  return null;
}

function stringValue(n) {
  if (!n) return null;
  if (n.type === "Literal" && typeof n.value === "string") return n.value;
  if (n.type === "TemplateLiteral" && n.expressions.length === 0) return n.quasis[0].value.cooked;
  return null;
}

function ancestors(n) {
  const out = [];
  for (let p = n.parent; p; p = p.parent) out.push(p);
  return out;
}

function enclosingFunction(n) {
  for (let p = n.parent; p; p = p.parent) if (isFunction(p)) return p;
  return null;
}

// Whether n sits inside a function passed as an argument to a call named one of names.
function insideCallbackOf(n, names) {
  for (let p = n.parent; p; p = p.parent) {
    if (isFunction(p) && p.parent && p.parent.type === "CallExpression" &&
        p.parent.arguments.includes(p) && names.includes(calleeName(p.parent))) {
      return true;
    }
  }
  return false;
}

// The variables a read's value is assigned to (const x = await get(k);
// x = ...; const {a, b} = ...).
function readInto(read) {
  for (let p = read.parent; p && !isFunction(p); p = p.parent) {
    if (p.type === "VariableDeclarator") {
      return allNodes(p.id).filter((x) => x.type === "Identifier").map((x) => x.name);
    }
    if (p.type === "AssignmentExpression" && p.left.type === "Identifier") return [p.left.name];
    if (p.type.endsWith("Statement")) break;
  }
  return [];
}

// Whether y can run after x on one path: not in two cases of a switch or
// two branches of an if or a ?: expression.
function sequential(x, y) {
  const above = new Set([x, ...ancestors(x)]);
  let lca = y;
  while (lca && !above.has(lca)) lca = lca.parent;
  if (!lca) return false;
  const inside = (n, part) => part && part.start <= n.start && n.end <= part.end;
  if (lca.type === "SwitchStatement") return false;
  if (lca.type === "IfStatement" || lca.type === "ConditionalExpression") {
    return inside(x, lca.test) || inside(y, lca.test);
  }
  return true;
}

function isLoop(n) {
  return ["WhileStatement", "DoWhileStatement", "ForStatement", "ForOfStatement",
    "ForInStatement"].includes(n.type);
}

function containsAwait(n) {
  return ownNodes(n).some((c) => c.type === "AwaitExpression" ||
    (c.type === "ForOfStatement" && c.await));
}

// ---- The review of one program ---------------------------------------------

class Review {
  constructor(input) {
    this.input = input;
    this.findings = [];
    this.errors = [];
    this.files = [];
    this.exported = new Set();
  }

  add(rule, file, node, message, extra = {}) {
    const r = RULES[rule];
    const loc = node && node.loc ? node.loc.start : { line: 1, column: 0 };
    if (file.suppressed(rule, loc.line)) return;
    const f = { rule, severity: r.severity, file: file.path, line: loc.line,
      column: loc.column + 1, message, why: r.why, fix: r.fix };
    if (r.replay) f.replayable = true;
    Object.assign(f, extra);
    this.findings.push(f);
  }

  parse() {
    for (const { path, text } of this.input.files) {
      const comments = [];
      let ast;
      try {
        ast = acorn.parse(text, { ecmaVersion: "latest", sourceType: "module", locations: true,
          allowHashBang: true, onComment: comments });
      } catch (e) {
        const line = e.loc ? e.loc.line : 1;
        const column = e.loc ? e.loc.column + 1 : 1;
        const ts = /\.(ts|tsx|mts)$/.test(path);
        this.findings.push({ rule: "parse-error", severity: "error", file: path, line, column,
          message: ts ? "TypeScript is reviewed from its compiled JavaScript: " + e.message
                      : e.message.replace(/ \(\d+:\d+\)$/, ""),
          why: RULES["parse-error"].why, fix: RULES["parse-error"].fix });
        continue;
      }
      link(ast);
      const file = { path, ast, text, suppressed: suppressions(comments) };
      this.files.push(file);
      for (const s of ast.body) {
        if (s.type === "ExportNamedDeclaration") {
          if (s.declaration && s.declaration.id) this.exported.add(s.declaration.id.name);
          for (const sp of s.specifiers || []) this.exported.add(sp.exported.name || sp.exported.value);
        }
      }
    }
  }

  run() {
    this.parse();
    for (const file of this.files) {
      const classes = this.objectClasses(file);
      for (const cls of classes) this.reviewClass(file, cls);
      this.reviewEverywhere(file, classes);
      this.reviewRequestPath(file);
    }
    this.reviewConfig();
    this.attachBindings();
    this.attachLive();
    this.findings.sort((a, b) => a.file < b.file ? -1 : a.file > b.file ? 1 :
      a.line - b.line || a.column - b.column);
    return { findings: this.findings, errors: this.errors };
  }

  // Classes that are Durable Objects: bound in the config, or shaped like one
  // (extends DurableObject, or a (state, env) constructor using storage).
  objectClasses(file) {
    const bound = new Set(((this.input.config || {}).durable_objects || {}).bindings
      ?.map((b) => b.class_name) || []);
    const out = [];
    for (const n of allNodes(file.ast)) {
      if (n.type !== "ClassDeclaration" && n.type !== "ClassExpression") continue;
      const name = n.id ? n.id.name : null;
      const sup = n.superClass;
      const extendsDO = sup && ((sup.type === "Identifier" && sup.name === "DurableObject") ||
        memberName(sup) === "DurableObject");
      const text = file.text.slice(n.start, n.end);
      const looksLike = /\.storage\b|blockConcurrencyWhile|acceptWebSocket/.test(text) &&
        !(sup && /WorkerEntrypoint|WorkflowEntrypoint/.test(file.text.slice(sup.start, sup.end)));
      if ((name && bound.has(name)) || extendsDO || looksLike) out.push(n);
    }
    return out;
  }

  // Names that refer to an object's storage in this class: this.X or local
  // variables assigned from *.storage (or *.storage.kv), and transaction
  // callbacks' parameters.
  storageAliases(cls) {
    const fields = new Set();
    const locals = new Set(["storage", "txn", "tx", "transaction"]);
    for (const n of allNodes(cls)) {
      const fromStorage = (v) => v && (isStorageMember(v) ||
        (v.type === "Identifier" && locals.has(v.name)));
      if (n.type === "AssignmentExpression" && fromStorage(n.right)) {
        const f = thisField(n.left);
        if (f) fields.add(f);
        if (n.left.type === "Identifier") locals.add(n.left.name);
      }
      if (n.type === "VariableDeclarator" && n.id.type === "Identifier" && fromStorage(n.init)) {
        locals.add(n.id.name);
      }
      if (n.type === "CallExpression" && ["transaction", "transactionSync"].includes(calleeName(n))) {
        const cb = n.arguments[0];
        if (isFunction(cb) && cb.params[0] && cb.params[0].type === "Identifier") {
          locals.add(cb.params[0].name);
        }
      }
    }
    return { fields, locals };
  }

  // The storage method a call makes (get, put, ...), or null.
  storageOp(call, aliases) {
    if (call.type !== "CallExpression" || call.callee.type !== "MemberExpression") return null;
    const op = memberName(call.callee);
    const obj = call.callee.object;
    const isStorage = isStorageMember(obj) ||
      (obj.type === "Identifier" && aliases.locals.has(obj.name)) ||
      (thisField(obj) && aliases.fields.has(thisField(obj)));
    return isStorage ? op : null;
  }

  // Whether call opens the input gate: outside I/O (fetch, timers, calls to
  // other objects).
  opensGate(n) {
    const c = n.type === "AwaitExpression" ? n.argument : n;
    if (!c) return false;
    if (c.type === "NewExpression" && c.callee.type === "Identifier" && c.callee.name === "Promise") {
      return /setTimeout|setInterval/.test(this.textOf(c));
    }
    // fetch(...).then(...): any call of the awaited expression.
    return ownNodes(c).some((x) => x.type === "CallExpression" && this.isOutsideCall(x));
  }

  isOutsideCall(c) {
    const name = calleeName(c);
    if (name === "fetch" || name === "connect") return true;
    if (["sleep", "delay", "wait", "setTimeout"].includes(name)) return true;
    // stub.method(): a call on something bound from a namespace's get().
    if (c.callee.type === "MemberExpression" && this.isStub(c.callee.object)) return true;
    return false;
  }

  isStub(n) {
    if (!n) return false;
    if (n.type === "CallExpression") return ["get", "getByName"].includes(calleeName(n)) &&
      n.callee.type === "MemberExpression" && /^(env|this\.env)\.[A-Z_0-9]+$/.test(this.textOf(n.callee.object));
    if (n.type === "Identifier") return this.stubs.has(n.name);
    return false;
  }

  textOf(n) { return this.current.text.slice(n.start, n.end); }

  reviewClass(file, cls) {
    this.current = file;
    const aliases = this.storageAliases(cls);
    const methods = cls.body.body.filter((m) => m.type === "MethodDefinition" ||
      (m.type === "PropertyDefinition" && isFunction(m.value)));
    const ctor = methods.find((m) => m.kind === "constructor");
    const handlers = methods.filter((m) => m.kind !== "constructor" && !m.static);
    this.stubs = this.stubNames(cls);
    const nameOf = (m) => m.key.name || m.key.value;

    // constructor-async-storage
    if (ctor) {
      for (const n of allNodes(ctor.value.body)) {
        if (n.type !== "CallExpression") continue;
        const op = this.storageOp(n, aliases);
        const outside = calleeName(n) === "fetch";
        if ((op && STORAGE_ASYNC.has(op)) || outside) {
          if (insideCallbackOf(n, ["blockConcurrencyWhile"])) continue;
          this.add("constructor-async-storage", file, n, outside
            ? "fetch() in the constructor of " + cls.id?.name + " runs after the constructor returns"
            : `storage.${op}() in the constructor of ${cls.id?.name} is not awaited before events arrive`);
        }
      }
    }

    // Per method: ordering rules.
    let usesTransaction = false;
    let usesOther = false;  // alarms, SQL, sockets, coordination
    let hasReadModifyWrite = false;
    for (const m of methods) {
      const fn = m.value;
      const all = nodesOf(fn.body, (f) => !["transaction", "transactionSync",
        "blockConcurrencyWhile"].includes(f.parent && calleeName(f.parent)));
      const everything = allNodes(fn.body);
      for (const n of everything) {
        if (n.type !== "CallExpression") continue;
        const op = this.storageOp(n, aliases);
        const name = calleeName(n);
        if (["transaction", "transactionSync"].includes(op)) usesTransaction = true;
        if (["setAlarm", "getAlarm", "deleteAlarm", "exec", "deleteAll", "list"].includes(op) ||
            ["acceptWebSocket", "getWebSockets", "blockConcurrencyWhile", "exec", "fetch"].includes(name)) {
          usesOther = true;
        }
      }
      const reads = all.filter((n) => STORAGE_READS.has(this.storageOp(n, aliases)));
      const writes = all.filter((n) => STORAGE_WRITES.has(this.storageOp(n, aliases)));
      const gates = all.filter((n) => n.type === "AwaitExpression" && this.opensGate(n));
      if (reads.length && writes.some((w) => reads.some((r) => r.start < w.start))) hasReadModifyWrite = true;
      if (m.kind === "constructor") continue;
      // read-modify-write-across-io: get … await outside I/O … put.
      for (const w of writes) {
        const values = this.storageOp(w, aliases) === "put"
          ? (w.arguments.length === 1 ? w.arguments : w.arguments.slice(1)) : [];
        const used = new Set(values.flatMap((a) => allNodes(a)).filter((x) => x.type === "Identifier")
          .map((x) => x.name));
        const r = reads.find((r) => r.end < w.start && enclosingFunction(r) === enclosingFunction(w) &&
          readInto(r).some((name) => used.has(name)));
        if (!r) continue;
        const g = gates.find((g) => g.start > r.end && g.end < w.start && sequential(r, g) &&
          sequential(g, w));
        if (g && sequential(r, w) && !insideCallbackOf(w, ["transaction", "blockConcurrencyWhile"])) {
          this.add("read-modify-write-across-io", file, w,
            `storage.${this.storageOp(w, aliases)}() at line ${w.loc.start.line} depends on the read at ` +
            `line ${r.loc.start.line}, but "${this.textOf(g.argument).slice(0, 40)}" (line ` +
            `${g.loc.start.line}) lets other events in between`);
          break;
        }
      }
      // await-between-writes: two writes with outside I/O awaited between them.
      for (let i = 1; i < writes.length; i++) {
        const a = writes[i - 1];
        const b = writes[i];
        if (enclosingFunction(a) !== enclosingFunction(b) || !sequential(a, b)) continue;
        const g = gates.find((g) => g.start > a.end && g.end < b.start && sequential(a, g) &&
          sequential(g, b));
        if (g && !this.findings.some((f) => f.rule === "read-modify-write-across-io" &&
            f.line === b.loc.start.line && f.file === file.path)) {
          this.add("await-between-writes", file, b,
            `the writes at lines ${a.loc.start.line} and ${b.loc.start.line} are split by an await of ` +
            `"${this.textOf(g.argument).slice(0, 40)}"`);
        }
      }
      // block-concurrency-per-request / -outside-io
      for (const n of everything) {
        if (n.type !== "CallExpression" || calleeName(n) !== "blockConcurrencyWhile") continue;
        if (HANDLERS.has(nameOf(m)) || !m.static) {
          this.add("block-concurrency-per-request", file, n,
            `blockConcurrencyWhile in ${nameOf(m)}() stops the object's other events on every call`);
        }
      }
      // alarm-retry-unaware
      if (nameOf(m) === "alarm") {
        const effects = everything.filter((n) => n.type === "CallExpression" &&
          (calleeName(n) === "fetch" || (n.callee.type === "MemberExpression" && this.isStub(n.callee.object))));
        const usesInfo = /retryCount|isRetry/.test(this.textOf(fn));
        if (effects.length && !usesInfo) {
          this.add("alarm-retry-unaware", file, effects[0],
            "alarm() makes an outside call without looking at alarmInfo.retryCount or isRetry");
        }
      }
      // websocket-close-not-called
      if (nameOf(m) === "webSocketClose" && !/\.close\s*\(/.test(this.textOf(fn.body))) {
        this.add("websocket-close-not-called", file, m.key,
          "webSocketClose() does not call ws.close()");
      }
    }
    // blockConcurrencyWhile holding outside I/O (constructor included).
    for (const n of allNodes(cls)) {
      if (n.type !== "CallExpression" || calleeName(n) !== "blockConcurrencyWhile") continue;
      const cb = n.arguments[0];
      if (!cb) continue;
      const io = allNodes(cb).find((c) => c.type === "CallExpression" && (calleeName(c) === "fetch" ||
        (c.callee.type === "MemberExpression" && this.isStub(c.callee.object))));
      if (io) {
        this.add("block-concurrency-outside-io", file, io,
          `"${this.textOf(io).slice(0, 40)}" inside blockConcurrencyWhile holds every request meanwhile`);
      }
    }

    this.reviewFields(file, cls, handlers, aliases);
    this.reviewSockets(file, cls);

    // kv-only-object
    const clsNodes = allNodes(cls);
    const hasFields = clsNodes.some((n) => (n.type === "AssignmentExpression" && thisField(n.left)) ||
      (n.type === "PropertyDefinition" && n.value && !isFunction(n.value)));
    const timersOrCalls = clsNodes.some((n) => n.type === "CallExpression" &&
      (["setTimeout", "setInterval"].includes(calleeName(n)) || this.isOutsideCall(n)));
    const gets = clsNodes.some((n) => this.storageOp(n, aliases) === "get");
    const puts = clsNodes.some((n) => ["put", "delete"].includes(this.storageOp(n, aliases)));
    if (gets && puts && !usesTransaction && !usesOther && !hasReadModifyWrite && !hasFields &&
        !timersOrCalls &&
        !handlers.some((m) => nameOf(m) === "alarm" || nameOf(m).startsWith("webSocket"))) {
      this.add("kv-only-object", file, cls.id || cls,
        `${cls.id ? cls.id.name : "this class"} only gets and puts keys`, { className: cls.id?.name });
    }
  }

  // Local names bound to stubs: const stub = env.X.get(id) / getByName(...).
  stubNames(root) {
    const out = new Set();
    for (const n of allNodes(root)) {
      if (n.type === "VariableDeclarator" && n.id.type === "Identifier" && n.init &&
          n.init.type === "CallExpression" && ["get", "getByName"].includes(calleeName(n.init)) &&
          n.init.callee.type === "MemberExpression" &&
          /(^|\.)env\.[A-Z_0-9]+$/.test(this.textOf(n.init.callee.object))) {
        out.add(n.id.name);
      }
    }
    return out;
  }

  // state-in-memory: this.X written in a handler, read in a handler, never
  // handed to a storage write.
  reviewFields(file, cls, handlers, aliases) {
    const written = new Map();  // field -> first write node in a handler
    const read = new Set();
    const persisted = new Set();
    const socketish = new Set();
    const mutators = new Set(["push", "pop", "shift", "unshift", "splice", "set", "add", "delete",
      "clear", "sort"]);
    for (const m of handlers) {
      for (const n of allNodes(m.value)) {
        let field = null;
        if (n.type === "AssignmentExpression") field = thisField(n.left) ||
          (n.left.type === "MemberExpression" && thisField(n.left.object));
        if (n.type === "UpdateExpression") field = thisField(n.argument) ||
          (n.argument.type === "MemberExpression" && thisField(n.argument.object));
        if (n.type === "CallExpression" && n.callee.type === "MemberExpression" &&
            mutators.has(memberName(n.callee))) {
          field = thisField(n.callee.object);
          if (field && n.arguments.some((a) => /ws|socket|server|client|conn|session/i.test(
            a.type === "Identifier" ? a.name : ""))) socketish.add(field);
        }
        if (field && !written.has(field)) written.set(field, n);
        const f = thisField(n);
        if (f && !(n.parent.type === "AssignmentExpression" && n.parent.left === n)) read.add(f);
      }
    }
    for (const n of allNodes(cls)) {
      if (n.type !== "CallExpression") continue;
      const op = this.storageOp(n, aliases);
      if (!op || !(STORAGE_WRITES.has(op) || op === "exec")) continue;
      for (const a of n.arguments) {
        for (const c of allNodes(a)) {
          const f = thisField(c);
          if (f) persisted.add(f);
        }
      }
    }
    for (const [field, node] of written) {
      if (!read.has(field) || persisted.has(field) || socketish.has(field) ||
          aliases.fields.has(field) || ["ctx", "env", "state", "storage", "sql"].includes(field)) {
        continue;
      }
      this.add("state-in-memory", file, node,
        `this.${field} is changed in a handler and read back, but never written to storage`,
        { className: cls.id?.name, field });
    }
  }

  reviewSockets(file, cls) {
    const text = this.textOf(cls);
    const nodes = allNodes(cls);
    // ws.accept() + listeners.
    for (const n of nodes) {
      if (n.type === "CallExpression" && calleeName(n) === "accept" && n.arguments.length === 0 &&
          /addEventListener\(\s*["'](message|close)["']/.test(text)) {
        this.add("websocket-accept-without-hibernation", file, n,
          `${this.textOf(n)} keeps the object in memory while the socket is open`,
          { className: cls.id?.name });
      }
    }
    // Sockets kept in a field with no removal.
    const added = new Map();
    const removed = new Set();
    for (const n of nodes) {
      if (n.type === "CallExpression" && n.callee.type === "MemberExpression") {
        const field = thisField(n.callee.object);
        const op = memberName(n.callee);
        if (!field) continue;
        const arg = n.arguments[n.arguments.length - 1];
        if (["add", "push", "set"].includes(op) && arg && arg.type === "Identifier" &&
            /^(ws|websocket|socket|server|webSocket|client|conn)$/i.test(arg.name)) {
          if (!added.has(field)) added.set(field, n);
        }
        if (["delete", "splice", "clear", "pop", "shift"].includes(op)) removed.add(field);
      }
      if (n.type === "AssignmentExpression" && thisField(n.left)) {
        if (n.right.type === "CallExpression" && calleeName(n.right) === "filter") removed.add(thisField(n.left));
      }
    }
    for (const [field, n] of added) {
      if (removed.has(field)) continue;
      this.add("websocket-set-without-cleanup", file, n,
        `sockets are added to this.${field} but never removed`);
    }
    // Broadcast loops whose send is not guarded.
    for (const n of nodes) {
      if (n.type !== "CallExpression" || calleeName(n) !== "send") continue;
      let loop = null;
      for (const p of ancestors(n)) {
        if (isLoop(p)) { loop = p; break; }
        if (isFunction(p)) {
          if (p.parent && p.parent.type === "CallExpression" && calleeName(p.parent) === "forEach") loop = p;
          break;
        }
      }
      if (!loop) continue;
      const guarded = ancestors(n).some((p) => p.type === "TryStatement" &&
        p.block.start <= n.start && n.end <= p.block.end);
      if (!guarded) {
        this.add("broadcast-send-unguarded", file, n,
          `${this.textOf(n).slice(0, 40)} in a loop: one closing socket throws and ends the broadcast`);
      }
    }
  }

  // Rules for all code of a file (classes and the Worker).
  reviewEverywhere(file, classes) {
    this.current = file;
    const inClass = (n) => classes.some((c) => c.start <= n.start && n.end <= c.end);
    for (const n of allNodes(file.ast)) {
      // blocking-loop / busy-wait
      if (isLoop(n) || n.type === "DoWhileStatement") {
        const test = n.type === "ForStatement" ? n.test : n.test;
        const forever = (n.type === "ForStatement" && !n.test) ||
          (test && test.type === "Literal" && test.value === true);
        const clocky = test && /\b(Date\.now|performance\.now|new Date)\b/.test(this.textOf(test));
        if ((forever || clocky) && !containsAwait(n.body)) {
          const exits = ownNodes(n.body).some((c) => c.type === "BreakStatement" ||
            c.type === "ReturnStatement" || c.type === "ThrowStatement");
          if (clocky) {
            this.add("busy-wait", file, n, "a loop waits on the clock without awaiting");
          } else if (!exits || inClass(n)) {
            if (!exits) this.add("blocking-loop", file, n, "an endless loop with no await and no exit");
          }
        }
        // sleep-retry-loop
        if (inClass(n) && containsAwait(n.body)) {
          const sleeps = ownNodes(n.body).filter((c) => c.type === "AwaitExpression" &&
            c.argument && (/setTimeout/.test(this.textOf(c.argument)) ||
              ["sleep", "delay", "wait"].includes(calleeName(c.argument))));
          const retries = ownNodes(n.body).some((c) => c.type === "TryStatement");
          if (sleeps.length && retries) {
            this.add("sleep-retry-loop", file, sleeps[0], "a retry loop that sleeps between attempts");
          }
        }
      }
      // timers in objects
      if (n.type === "CallExpression" && ["setTimeout", "setInterval"].includes(calleeName(n)) &&
          n.callee.type === "Identifier" && inClass(n)) {
        const cb = n.arguments[0];
        // new Promise((resolve) => setTimeout(resolve, ms)) is a sleep, not scheduled work.
        const isSleep = cb && cb.type === "Identifier" && ancestors(n).some((p) =>
          p.type === "NewExpression" && p.callee.name === "Promise" && isFunction(p.arguments[0]) &&
          p.arguments[0].params.some((q) => q.type === "Identifier" && q.name === cb.name));
        const resolves = isFunction(cb) && cb.body.type !== "BlockStatement" &&
          cb.body.type === "CallExpression" && /^(resolve|r|res|done)$/.test(calleeName(cb.body) || "");
        if (calleeName(n) === "setInterval" || !(isSleep || resolves)) {
          this.add("timer-for-scheduled-work", file, n,
            `${calleeName(n)}() schedules work in memory`);
        }
      }
      // sql.exec statements
      if (n.type === "CallExpression" && calleeName(n) === "exec" &&
          n.callee.type === "MemberExpression" && /sql$/.test(this.textOf(n.callee.object))) {
        const q = stringValue(n.arguments[0]) ??
          (n.arguments[0] && n.arguments[0].type === "TemplateLiteral"
            ? n.arguments[0].quasis.map((x) => x.value.cooked).join("?") : null);
        if (q !== null) {
          const m = /^\s*(BEGIN|COMMIT|ROLLBACK|END|SAVEPOINT|RELEASE)\b/i.exec(q) ||
            /PRAGMA\s+user_version/i.exec(q);
          if (m) this.add("sql-transaction-statement", file, n.arguments[0],
            `sql.exec("${m[0].trim()}...") is refused at run time`);
          const params = (q.match(/\?/g) || []).length;
          const args = n.arguments.length - 1;
          const spread = n.arguments.some((a) => a.type === "SpreadElement");
          if ((!spread && args > 100) || params > 100) {
            this.add("sql-too-many-bindings", file, n,
              `${Math.max(args, params)} bound parameters (at most 100)`);
          }
        }
      }
      // unsupported APIs
      if (n.type === "Identifier" && UNSUPPORTED_GLOBALS.has(n.name) && !this.declared(file, n.name) &&
          !(n.parent.type === "MemberExpression" && n.parent.property === n && !n.parent.computed) &&
          !(n.parent.type === "Property" && n.parent.key === n)) {
        this.add("unsupported-api", file, n, `${n.name} is not provided by dobj`);
      }
      if (n.type === "Literal" && typeof n.value === "string" && /^\s*text\/event-stream\b/i.test(n.value)) {
        this.add("event-stream-response", file, n, "a text/event-stream response is sent only when its stream ends");
      }
      if (n.type === "NewExpression" && n.callee.type === "Identifier" && n.callee.name === "WebSocket") {
        this.add("unsupported-api", file, n, "outgoing WebSockets (new WebSocket) are not provided by dobj");
      }
    }
    // rpc-not-awaited (anywhere: objects call objects, the Worker calls objects)
    this.stubs = this.stubNames(file.ast);
    for (const n of allNodes(file.ast)) {
      if (n.type !== "ExpressionStatement" || n.expression.type !== "CallExpression") continue;
      const c = n.expression;
      if (c.callee.type === "MemberExpression" && this.isStub(c.callee.object)) {
        this.add("rpc-not-awaited", file, c, `${this.textOf(c).slice(0, 50)} is not awaited`);
      }
    }
  }

  declared(file, name) {
    if (!file.declaredNames) {
      file.declaredNames = new Set();
      for (const n of allNodes(file.ast)) {
        if ((n.type === "VariableDeclarator" && n.id.type === "Identifier") ||
            ((n.type === "FunctionDeclaration" || n.type === "ClassDeclaration") && n.id)) {
          file.declaredNames.add(n.id.name);
        }
        if (n.type === "ImportSpecifier" || n.type === "ImportDefaultSpecifier") {
          file.declaredNames.add(n.local.name);
        }
      }
    }
    return file.declaredNames.has(name);
  }

  // The front Worker's request path: export default { fetch } (or a class
  // extending WorkerEntrypoint) and the functions it calls in this file.
  reviewRequestPath(file) {
    this.current = file;
    const roots = [];
    for (const s of file.ast.body) {
      if (s.type !== "ExportDefaultDeclaration") continue;
      const d = s.declaration;
      if (d.type === "ObjectExpression") {
        for (const p of d.properties) {
          if (p.type === "Property" && ["fetch", "queue", "scheduled"].includes(p.key.name) &&
              isFunction(p.value)) roots.push(p.value);
        }
      } else if (d.type === "ClassDeclaration" || d.type === "ClassExpression") {
        for (const m of d.body.body) if (m.type === "MethodDefinition" && m.kind === "method") roots.push(m.value);
      }
    }
    // Functions of the file called from the roots, transitively.
    const functions = new Map();
    for (const n of allNodes(file.ast)) {
      if (n.type === "FunctionDeclaration" && n.id) functions.set(n.id.name, n);
      if (n.type === "VariableDeclarator" && n.id.type === "Identifier" && isFunction(n.init)) {
        functions.set(n.id.name, n.init);
      }
    }
    const seen = new Set(roots);
    const queue = [...roots];
    while (queue.length) {
      const f = queue.pop();
      for (const n of allNodes(f)) {
        if (n.type === "CallExpression" && n.callee.type === "Identifier" && functions.has(n.callee.name)) {
          const g = functions.get(n.callee.name);
          if (!seen.has(g)) { seen.add(g); queue.push(g); }
        }
      }
    }
    const reported = new Set();
    for (const f of seen) {
      for (const n of allNodes(f)) {
        if (n.type !== "CallExpression" || n.callee.type !== "MemberExpression" || reported.has(n)) continue;
        const name = calleeName(n);
        const binding = /(?:^|\.)env\.([A-Za-z_0-9]+)$/.exec(this.textOf(n.callee.object));
        if (name === "newUniqueId") {
          reported.add(n);
          this.add("unique-id-per-request", file, n,
            `${this.textOf(n)} on the request path makes a new object per request`,
            binding ? { binding: binding[1] } : {});
        }
        if (["idFromName", "getByName"].includes(name) && stringValue(n.arguments[0]) !== null) {
          reported.add(n);
          this.add("constant-object-name", file, n,
            `every request goes to the one object ${name}(${JSON.stringify(stringValue(n.arguments[0]))})`,
            binding ? { binding: binding[1] } : {});
        }
      }
    }
  }

  reviewConfig() {
    const c = this.input.config;
    if (!c || this.input.checkConfig === false) return;
    const path = this.input.configPath || "wrangler.jsonc";
    const text = this.input.configText || "";
    const toml = path.endsWith(".toml");
    // The line of the first needle found (JSON quotes its keys, TOML need not).
    const lineOf = (needles) => {
      for (const needle of needles) {
        const at = text.indexOf(needle);
        if (at >= 0) return text.slice(0, at).split("\n").length;
      }
      return 1;
    };
    const file = { path, suppressed: suppressionsOfText(text, toml) };
    const at = (...needles) => ({ loc: { start: { line: lineOf(needles), column: 0 } } });
    const migrated = new Set();
    for (const m of c.migrations || []) {
      for (const k of ["new_sqlite_classes", "new_classes"]) for (const cl of m[k] || []) migrated.add(cl);
    }
    const mainParsed = this.files.length > 0;
    for (const b of (c.durable_objects || {}).bindings || []) {
      if (mainParsed && !this.exported.has(b.class_name)) {
        this.add("config-class-not-exported", file, at(`"${b.class_name}"`),
          `binding ${b.name} names class ${b.class_name}, which no module exports`);
      }
      if (!migrated.has(b.class_name)) {
        this.add("config-class-not-in-migration", file, at(`"${b.class_name}"`),
          `class ${b.class_name} is in no migration`);
      }
    }
    for (const k of BINDING_KEYS) {
      if (c[k] !== undefined) {
        this.add("config-unsupported-binding", file, at(`"${k}"`, `[${k}]`, `[[${k}]]`, `${k} =`),
          `"${k}" bindings are not provided by dobj`);
      }
    }
  }

  // Findings the live numbers confirm (the advisor's findings for the
  // namespace the class or binding belongs to).
  // A finding about a class names the binding the config gives it (the
  // namespace its live numbers and its replay are under).
  attachBindings() {
    const bindingOf = new Map();
    for (const b of ((this.input.config || {}).durable_objects || {}).bindings || []) {
      bindingOf.set(b.class_name, b.name);
    }
    for (const f of this.findings) {
      if (!f.binding && f.className && bindingOf.has(f.className)) f.binding = bindingOf.get(f.className);
    }
  }

  attachLive() {
    const live = this.input.live;
    if (!live || !Array.isArray(live.findings)) return;
    for (const f of this.findings) {
      const advisorRule = CONFIRMED_BY[f.rule];
      if (!advisorRule) continue;
      const ns = f.binding;
      const match = live.findings.find((a) => a.rule === advisorRule && (!ns || a.namespace === ns));
      if (match) {
        f.confirmed = { by: advisorRule, namespace: match.namespace, evidence: match.evidence };
      }
    }
  }
}

// "// dobj-review-disable-next-line rule", "// dobj-review-disable-line rule"
// and "/* dobj-review-disable rule */" (the whole file); no rule: all rules.
function suppressions(comments) {
  const byLine = new Map();
  const file = [];
  for (const c of comments) {
    const m = /dobj-review-disable(-next-line|-line)?\b([^\n]*)/.exec(c.value);
    if (!m) continue;
    const rules = m[2].split(/[\s,]+/).filter((r) => /^[a-z][a-z-]+$/.test(r));
    const all = rules.length === 0;
    const entry = { all, rules: new Set(rules) };
    if (!m[1]) file.push(entry);
    else {
      const line = m[1] === "-line" ? c.loc.start.line : c.loc.end.line + 1;
      byLine.set(line, entry);
    }
  }
  const hit = (e, rule) => e && (e.all || e.rules.has(rule));
  return (rule, line) => file.some((e) => hit(e, rule)) || hit(byLine.get(line), rule);
}

// The comments of a wrangler.jsonc (// and /* */) or wrangler.toml (#).
function suppressionsOfText(text, toml = false) {
  const comments = [];
  const re = toml ? /#([^\n]*)/g : /\/\/([^\n]*)|\/\*([\s\S]*?)\*\//g;
  let m;
  while ((m = re.exec(text))) {
    const line = text.slice(0, m.index).split("\n").length;
    const value = m[1] ?? m[2];
    const end = line + (value.match(/\n/g) || []).length;
    comments.push({ value, loc: { start: { line }, end: { line: end } } });
  }
  return suppressions(comments);
}

globalThis.review = (input) => new Review(input).run();
globalThis.reviewRules = () => Object.entries(RULES).map(([id, r]) => ({
  id, severity: r.severity, why: r.why, fix: r.fix, confirmedBy: CONFIRMED_BY[id] || null,
  replayable: !!r.replay,
}));
