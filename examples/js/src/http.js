// Small helpers the examples share.

export const error = (status, message) => Response.json({ error: message }, { status });

// The path's segments, decoded; null when an escape is malformed.
// A trailing slash adds no segment.
export function segments(url) {
  try {
    const parts = new URL(url).pathname.split("/").slice(1).map(decodeURIComponent);
    if (parts.length && parts[parts.length - 1] === "") parts.pop();
    return parts;
  } catch {
    return null;
  }
}

// The whole text as an integer, or null.
export function parseIntStrict(text) {
  if (text === null || !/^[+-]?\d+$/.test(text.trim()) || text.trim() !== text) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

export async function readJson(request) {
  try {
    return { value: JSON.parse(await request.text()) };
  } catch (e) {
    return { error: error(400, `invalid JSON: ${e.message}`) };
  }
}
