// End to end with the official MCP TypeScript SDK client: connect to a real
// dobj server's /_dobj/mcp (streamable HTTP) and to `dobj mcp` (stdio),
// initialize, list the tools and call each one.
//   node mcp_sdk_test.mjs <server url> <token> <dobj cli binary>
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [server, token, cli] = process.argv.slice(2);

async function exercise(client, label) {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(),
                   ["advise", "forkObject", "getDOMetrics", "inspectObject", "listObjects", "objectHistory",
                    "querySql", "restoreObject", "reviewCode", "searchDocs"]);
  const metrics = await client.callTool({ name: "getDOMetrics", arguments: { namespace: "KV" } });
  assert.equal(metrics.isError, false);
  const m = JSON.parse(metrics.content[0].text);
  for (const f of ["activeObjects", "requestsPerSecond", "cpuTimeP95", "stateOperations"]) {
    assert.ok(f in m, `${label}: getDOMetrics has ${f}`);
  }
  assert.ok(m.requests >= 2, `${label}: requests counted`);
  const list = await client.callTool({ name: "listObjects", arguments: { namespace: "KV" } });
  const objects = JSON.parse(list.content[0].text).objects;
  assert.ok(objects.some((o) => o.name === "sdk"), `${label}: listObjects finds sdk`);
  const inspect = await client.callTool({ name: "inspectObject", arguments: { namespace: "KV", name: "sdk" } });
  const keys = JSON.parse(inspect.content[0].text).keys;
  assert.deepEqual(keys.map((k) => [k.key, k.value]), [["answer", 42]]);
  const sql = await client.callTool({
    name: "querySql",
    arguments: { namespace: "KV", name: "sdk", query: "SELECT count(*) AS n FROM _dobj_kv" },
  });
  assert.deepEqual(JSON.parse(sql.content[0].text).rows, [[1]]);
  const refused = await client.callTool({
    name: "querySql", arguments: { namespace: "KV", name: "sdk", query: "DELETE FROM _dobj_kv" },
  });
  assert.equal(refused.isError, true);
  // This server runs without --history: the history tools say so; a fork needs none.
  const history = await client.callTool({ name: "objectHistory", arguments: { namespace: "KV", name: "sdk" } });
  assert.equal(history.isError, true);
  assert.match(history.content[0].text, /history is off/);
  const restore = await client.callTool({
    name: "restoreObject", arguments: { namespace: "KV", name: "sdk", time: Date.now() },
  });
  assert.equal(restore.isError, true);
  const fork = await client.callTool({
    name: "forkObject", arguments: { namespace: "KV", name: "sdk", as: `sdk-${label}`, replace: true },
  });
  assert.equal(fork.isError, false, fork.content[0].text);
  const copy = await client.callTool({ name: "inspectObject", arguments: { namespace: "KV", name: `sdk-${label}` } });
  assert.deepEqual(JSON.parse(copy.content[0].text).keys.map((k) => [k.key, k.value]), [["answer", 42]]);
  const advice = await client.callTool({ name: "advise", arguments: {} });
  assert.ok(Array.isArray(JSON.parse(advice.content[0].text).findings));
  const docs = await client.callTool({ name: "searchDocs", arguments: { query: "hibernation" } });
  assert.equal(docs.isError, false);
  assert.ok(JSON.parse(docs.content[0].text).sections.length > 0, `${label}: searchDocs finds sections`);
  // The C++ example server has no reviewer (dobj-js has); `dobj mcp` reviews in its own process.
  const review = await client.callTool({
    name: "reviewCode", arguments: { source: "export default { fetch() { while (true) {} } };" },
  });
  if (label === "stdio") {
    assert.equal(review.isError, false);
    assert.deepEqual(JSON.parse(review.content[0].text).findings.map((f) => f.rule), ["blocking-loop"]);
  } else {
    assert.equal(review.isError, true);
    assert.match(review.content[0].text, /built without the reviewer/);
  }
  console.log(`${label}: ok (${tools.length} tools)`);
}

await fetch(`${server}/kv/sdk/answer`, { method: "PUT", body: "42" });
await fetch(`${server}/kv/sdk/answer`);

const http = new Client({ name: "dobj-test", version: "1.0.0" });
await http.connect(new StreamableHTTPClientTransport(new URL(`${server}/_dobj/mcp`), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
}));
await exercise(http, "http");
await http.close();

const stdio = new Client({ name: "dobj-test", version: "1.0.0" });
await stdio.connect(new StdioClientTransport({
  command: cli, args: ["mcp"],
  env: { ...process.env, DOBJ_SERVER: server, DOBJ_ADMIN_TOKEN: token },
}));
await exercise(stdio, "stdio");
await stdio.close();
