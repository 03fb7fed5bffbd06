/**
 * What a test reads back from the code under test: the gateway's log lines (a `logStream`, audit events
 * among them) and the command line's output (`main(args, output)`).
 */
import { Writable } from 'node:stream';

/** A log stream for `createGateway({ logStream })`: the raw text, and the audit events (optionally filtered). */
export function captureLog(keep: (event: Record<string, unknown>) => boolean = () => true) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const text = () => chunks.join('');
  const events = () =>
    text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.audit === true && keep(l));
  return { stream, text, events };
}

/** The `output` the CLI's `main` writes to, and what it wrote to each side. */
export function captureOutput() {
  const out: string[] = [];
  const err: string[] = [];
  return { output: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }, out, err, text: () => out.join('\n') };
}
