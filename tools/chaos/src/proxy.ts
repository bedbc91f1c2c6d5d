import net from 'node:net';

/** What a cut link does with connections that arrive while it is cut. */
export type CutMode = 'refuse' | 'blackhole';

export interface LinkProxyStats {
  accepted: number;
  refused: number;
  blackholed: number;
  cuts: number;
}

/**
 * A TCP proxy for one directed replica-to-replica link (the `from` process dials `to` through it).
 * While open it pipes bytes both ways; `cut()` destroys every connection it carries and then either
 * resets new ones at once (`refuse`) or accepts them and swallows everything (`blackhole`, the
 * dialler sees a peer that never answers) until `restore()`.
 */
export class LinkProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket | undefined]>();
  private cutMode: CutMode | undefined;
  readonly stats: LinkProxyStats = { accepted: 0, refused: 0, blackholed: 0, cuts: 0 };

  constructor(
    readonly from: string,
    readonly to: string,
    readonly listenPort: number,
    readonly targetPort: number,
    readonly host = '127.0.0.1',
  ) {}

  get isCut(): boolean {
    return this.cutMode !== undefined;
  }

  async listen(): Promise<void> {
    const server = net.createServer({ pauseOnConnect: false }, (inbound) => this.accept(inbound));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  private accept(inbound: net.Socket): void {
    inbound.on('error', () => undefined);
    if (this.cutMode === 'refuse') {
      this.stats.refused++;
      inbound.resetAndDestroy();
      return;
    }
    if (this.cutMode === 'blackhole') {
      this.stats.blackholed++;
      const pair: [net.Socket, net.Socket | undefined] = [inbound, undefined];
      this.pairs.add(pair);
      inbound.on('data', () => undefined); // swallowed
      inbound.on('close', () => this.pairs.delete(pair));
      return;
    }
    this.stats.accepted++;
    inbound.setNoDelay(true);
    const outbound = net.connect({ host: this.host, port: this.targetPort });
    outbound.setNoDelay(true);
    outbound.on('error', () => undefined);
    const pair: [net.Socket, net.Socket | undefined] = [inbound, outbound];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('close', end);
    outbound.on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  /** Destroys every connection of this link; new ones are refused or blackholed until `restore()`. */
  cut(mode: CutMode = 'refuse'): void {
    this.cutMode = mode;
    this.stats.cuts++;
    this.dropAll();
  }

  /** New connections are piped again; blackholed ones are closed so the dialler reconnects. */
  restore(): void {
    if (this.cutMode === 'blackhole') this.dropAll();
    this.cutMode = undefined;
  }

  private dropAll(): void {
    for (const [a, b] of [...this.pairs]) {
      a.resetAndDestroy();
      b?.resetAndDestroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
