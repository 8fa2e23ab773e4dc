import { nothing } from "./does-not-exist.js";
export default { fetch() { return new Response(nothing); } };
