import { Buffer } from "node:buffer";

export default { fetch: () => new Response(Buffer.from("x").toString()) };
