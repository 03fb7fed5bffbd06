/**
 * A request body handed to oidc-provider after the gateway has read (and checked or rewritten) it: a
 * fresh, unread IncomingMessage on the same socket. oidc-provider then reads and parses the body itself,
 * so it never falls back to a pre-parsed `req.body` (nor prints its "already parsed request body" warning).
 */
import { IncomingMessage } from 'node:http';

export function replayWithBody(original: IncomingMessage, payload: Buffer, contentType: string): IncomingMessage {
  const replay = new IncomingMessage(original.socket);
  replay.method = original.method;
  replay.url = original.url;
  replay.httpVersion = original.httpVersion;
  replay.httpVersionMajor = original.httpVersionMajor;
  replay.httpVersionMinor = original.httpVersionMinor;
  const headers = { ...original.headers, 'content-type': contentType, 'content-length': String(payload.length) };
  delete headers['transfer-encoding'];
  replay.headers = headers;
  replay.rawHeaders = Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, String(v)]));
  // `complete`: the replay is a whole message; an incomplete IncomingMessage destroys its socket on end.
  replay.complete = true;
  replay.push(payload);
  replay.push(null);
  return replay;
}

/** Reads a whole (already size-checked) request body. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
