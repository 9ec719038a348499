import * as grpc from "@grpc/grpc-js";

/**
 * The grpc-js channels of one client object (LedgerClient, KvClient), one per replica address,
 * opened on first use and closed together. Also the one place a unary call is made, so that both
 * clients send with the same deadline and message-size settings.
 */
export class ChannelPool {
  readonly #clients = new Map<string, grpc.Client>();
  #closed = false;

  /** `owner` names the client in the error after close(). */
  constructor(private readonly owner: string) {}

  get(address: string): grpc.Client {
    if (this.#closed) throw new Error(`${this.owner} is closed`);
    let c = this.#clients.get(address);
    if (c === undefined) {
      c = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
      this.#clients.set(address, c);
    }
    return c;
  }

  /** One unary call with a deadline; never rejects: the callback's error and value come back as they are. */
  unary<Req, Res>(address: string, m: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs: number): Promise<{ readonly err: grpc.ServiceError | null; readonly value: Res | undefined }> {
    return new Promise((resolve) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.get(address).makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline }, (err, value) => resolve({ err, value }));
    });
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
