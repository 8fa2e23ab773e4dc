import { DurableObject } from "cloudflare:workers";

export class Visits extends DurableObject {
  count = 0;
  async fetch() {
    this.count++;
    return new Response(String(this.count));
  }
}

export class Stored extends DurableObject {
  async fetch() {
    const count = ((await this.ctx.storage.get("count")) ?? 0) + 1;
    await this.ctx.storage.put("count", count);
    return new Response(String(count));
  }
}

export default {
  async fetch(request, env) {
    const [, kind, name] = new URL(request.url).pathname.split("/");
    const ns = kind === "visits" ? env.VISITS : kind === "stored" ? env.STORED : null;
    if (!ns || !name) return new Response("not found", { status: 404 });
    return ns.getByName(name).fetch(request);
  },
};
