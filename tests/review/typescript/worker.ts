// TypeScript is reviewed from its compiled output (review_test checks that
// `dobj review` says so for this file).
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    const n: number = ((await this.ctx.storage.get<number>("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return new Response(String(n));
  }
}
