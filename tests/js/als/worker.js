// Only the nodejs_als flag: node:async_hooks is there, node:buffer is not.
import { AsyncLocalStorage } from "node:async_hooks";

const als = new AsyncLocalStorage();

export default {
  async fetch() {
    return als.run("kept", async () => {
      await new Promise((r) => setTimeout(r, 1));
      return new Response(`${als.getStore()} ${typeof Buffer}`);
    });
  },
};
