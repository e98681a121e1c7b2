/**
 * A scriptable HTTP proxy for fault tests. It listens on 127.0.0.1 (a free
 * port) in front of one upstream HTTP endpoint, such as the test RGW, and
 * either passes each request through or injects a fault. The faults are an
 * HTTP 500/503, a 503 SlowDown with an S3 XML error body, a connection reset before or in
 * the middle of the response, a stall (the request is read and never
 * answered), a throttled response body, or a request body with one byte
 * changed.
 *
 * Rules are checked in the order they were added, and the first rule that
 * matches a request and still applies decides it. A rule applies to its
 * first `times` matches, or to each match with `probability` drawn from a
 * seeded PRNG, so a run is reproducible from its seed. Every request is
 * recorded (method, path, fault, HTTP status sent), so a test can count the
 * retries a client made.
 *
 * Requests are forwarded with their headers unchanged, including Host, so
 * AWS Signature V4 signatures made for the proxy's address still verify at
 * the upstream server.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { kind: 'pass' }
  /** Responds with this status and a short plain-text body, without contacting the upstream server. */
  | { kind: 'status'; status: number }
  /** Responds 503 with the S3 error code SlowDown in an XML body, as S3 does when throttling. */
  | { kind: 'slow-down' }
  /**
   * Destroys the client connection. 'request': after the first chunk of the
   * request body arrived (or at its end when there is none), so the upstream
   * server never receives the request. 'response': after the upstream server
   * responded, after the headers and half of the body were sent (nothing is
   * sent for a response without a body), so the upstream operation took
   * effect but the client never learns it.
   */
  | { kind: 'reset'; during: 'request' | 'response' }
  /** Reads the request and never responds, so the connection stays open until the client gives up. */
  | { kind: 'stall' }
  /** Passes through, but sends the response body at this many KiB per second. */
  | { kind: 'throttle'; kibPerSecond: number }
  /**
   * Passes through with the middle byte of the request body inverted and
   * every header unchanged, as a faulty link would deliver it. The upstream
   * server decides whether it notices.
   */
  | { kind: 'corrupt-body' };

export type FaultKind = Fault['kind'];

export interface FaultRule {
  /** HTTP method such as 'PUT'. Unset matches any method. */
  method?: string;
  /** Tested against the request path without the query string (for RGW path style: /bucket/key). */
  path?: RegExp;
  fault: Fault;
  /** The rule applies to its first `times` matching requests only. */
  times?: number;
  /** The rule applies to each matching request with this probability (0 to 1), drawn from the seeded PRNG. */
  probability?: number;
}

export interface ProxyRecord {
  method: string;
  /** Request path without the query string. */
  path: string;
  /** Query string without the leading '?', '' when there is none. */
  query: string;
  fault: FaultKind;
  /** HTTP status sent to the client; undefined while pending, or when the connection was reset or stalled. */
  status: number | undefined;
}

interface ActiveRule extends FaultRule {
  matched: number;
}

/** A small, seedable PRNG (mulberry32): returns numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export class FaultProxy {
  /** Every request received, in arrival order. */
  readonly log: ProxyRecord[] = [];

  private readonly rules: ActiveRule[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<Socket>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });
  private readonly random: () => number;

  private constructor(
    private readonly server: Server,
    private readonly upstream: URL,
    readonly endpoint: string,
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  /** Starts a proxy in front of `upstream` (such as 'http://127.0.0.1:7480'). */
  static async start(upstream: string, options: { seed?: number } = {}): Promise<FaultProxy> {
    const target = new URL(upstream);
    if (target.protocol !== 'http:') throw new Error(`fault proxy upstream ${upstream} is not an http:// URL`);

    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const proxy = new FaultProxy(server, target, `http://127.0.0.1:${port}`, options.seed ?? 1);

    server.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    server.on('request', (request, response) => proxy.handle(request, response));
    return proxy;
  }

  addRule(rule: FaultRule): void {
    if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
      throw new Error(`fault rule probability ${rule.probability} is outside 0 to 1`);
    }
    this.rules.push({ ...rule, matched: 0 });
  }

  clearRules(): void {
    this.rules.length = 0;
  }

  clearLog(): void {
    this.log.length = 0;
  }

  /** Counts recorded requests by method and, optionally, by a path pattern. */
  count(method: string, path?: RegExp): number {
    return this.log.filter((record) => record.method === method && (path === undefined || path.test(record.path))).length;
  }

  /** Counts recorded requests per path for one method. */
  countByPath(method: string): Map<string, number> {
    const counts = new Map<string, number>();
    for (const record of this.log) {
      if (record.method === method) counts.set(record.path, (counts.get(record.path) ?? 0) + 1);
    }
    return counts;
  }

  /** Returns how many requests are stalled right now. */
  stalledCount(): number {
    return this.stalled.size;
  }

  /** Resets the connections of all stalled requests, so their clients see ECONNRESET and may retry. */
  resetStalled(): void {
    for (const socket of this.stalled) socket.destroy();
    this.stalled.clear();
  }

  /** Stops listening and destroys every open connection, stalled ones included. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private choose(method: string, path: string): Fault {
    for (const rule of this.rules) {
      if (rule.method !== undefined && rule.method !== method) continue;
      if (rule.path !== undefined && !rule.path.test(path)) continue;
      if (rule.times !== undefined && rule.matched >= rule.times) continue;
      // Draw only for rules that use a probability, so adding a counted rule does not shift the sequence.
      if (rule.probability !== undefined && this.random() >= rule.probability) continue;
      rule.matched += 1;
      return rule.fault;
    }
    return { kind: 'pass' };
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '/';
    const queryStart = url.indexOf('?');
    const path = queryStart === -1 ? url : url.slice(0, queryStart);
    const query = queryStart === -1 ? '' : url.slice(queryStart + 1);
    const method = request.method ?? 'GET';
    const fault = this.choose(method, path);
    const record: ProxyRecord = { method, path, query, fault: fault.kind, status: undefined };
    this.log.push(record);

    switch (fault.kind) {
      case 'status':
        this.answerAfterBody(request, response, record, fault.status, 'text/plain', `fault proxy: injected HTTP ${fault.status}\n`);
        return;
      case 'slow-down':
        this.answerAfterBody(request, response, record, 503, 'application/xml', slowDownBody(path));
        return;
      case 'stall':
        // Read the body so the client finishes sending and then waits for a response that never comes.
        request.resume();
        this.stalled.add(request.socket);
        request.socket.once('close', () => this.stalled.delete(request.socket));
        return;
      case 'reset':
        if (fault.during === 'request') {
          this.resetDuringRequest(request);
          return;
        }
        this.forward(request, response, record, { resetHalfway: true });
        return;
      case 'throttle':
        this.forward(request, response, record, { kibPerSecond: fault.kibPerSecond });
        return;
      case 'corrupt-body':
        this.forward(request, response, record, { corruptBody: true });
        return;
      case 'pass':
        this.forward(request, response, record, {});
        return;
    }
  }

  private answerAfterBody(request: IncomingMessage, response: ServerResponse, record: ProxyRecord, status: number, type: string, body: string): void {
    request.resume();
    request.on('end', () => {
      record.status = status;
      response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      response.end(body);
    });
  }

  private resetDuringRequest(request: IncomingMessage): void {
    let done = false;
    const reset = () => {
      if (done) return;
      done = true;
      request.socket.destroy();
    };
    request.once('data', reset);
    request.once('end', reset);
  }

  private forward(
    request: IncomingMessage,
    response: ServerResponse,
    record: ProxyRecord,
    options: { resetHalfway?: boolean; kibPerSecond?: number; corruptBody?: boolean },
  ): void {
    const headers = { ...request.headers };
    // Node's server already sent 100 Continue to the client, so the upstream receives the body at once.
    delete headers.expect;
    delete headers.connection;

    const upstreamRequest = httpRequest(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: request.method,
        path: request.url,
        headers,
        agent: this.agent,
      },
      (upstreamResponse) => this.relay(upstreamResponse, request, response, record, options),
    );
    upstreamRequest.on('error', (error) => {
      record.status = 502;
      if (!response.headersSent) {
        response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`fault proxy: upstream failed: ${error.message}\n`);
      } else {
        response.destroy();
      }
    });
    if (!options.corruptBody) {
      request.pipe(upstreamRequest);
      return;
    }

    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      if (body.length > 0) body[body.length >> 1] ^= 0xff;
      upstreamRequest.end(body);
    });
  }

  private relay(
    upstreamResponse: IncomingMessage,
    request: IncomingMessage,
    response: ServerResponse,
    record: ProxyRecord,
    options: { resetHalfway?: boolean; kibPerSecond?: number },
  ): void {
    const status = upstreamResponse.statusCode ?? 502;
    const headers = { ...upstreamResponse.headers };
    delete headers.connection;

    if (options.resetHalfway) {
      // Collect the whole body, send the headers and half of it, then cut the connection.
      const chunks: Buffer[] = [];
      upstreamResponse.on('data', (chunk: Buffer) => chunks.push(chunk));
      upstreamResponse.on('end', () => {
        const body = Buffer.concat(chunks);
        // Headers alone complete a response without a body, so then nothing at all is sent.
        if (body.length < 2) {
          request.socket.destroy();
          return;
        }
        response.writeHead(status, headers);
        response.write(body.subarray(0, Math.floor(body.length / 2)), () => request.socket.destroy());
      });
      return;
    }

    record.status = status;
    response.writeHead(status, headers);
    if (options.kibPerSecond === undefined) {
      upstreamResponse.pipe(response);
      return;
    }
    void throttle(upstreamResponse, response, options.kibPerSecond);
  }
}

/** Writes `source` to `response` at about `kibPerSecond`, in slices every 100 ms. */
async function throttle(source: IncomingMessage, response: ServerResponse, kibPerSecond: number): Promise<void> {
  const sliceBytes = Math.max(1, Math.floor((kibPerSecond * 1024) / 10));
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += sliceBytes) {
        if (response.destroyed) return;
        response.write(chunk.subarray(offset, offset + sliceBytes));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    response.end();
  } catch {
    response.destroy();
  }
}

function slowDownBody(path: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<Error><Code>SlowDown</Code><Message>request rate too high (injected by the fault proxy)</Message>' +
    `<Resource>${path.replaceAll('&', '&amp;').replaceAll('<', '&lt;')}</Resource><RequestId>fault-proxy</RequestId></Error>\n`
  );
}
