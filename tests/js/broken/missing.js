export class Here {}
export default { fetch() { return new Response("ok"); } };
