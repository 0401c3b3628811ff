// A real headless browser for the report tests: Debian's chromium driven over the Chrome DevTools
// protocol on --remote-debugging-pipe (fd 3: commands in, fd 4: replies out, NUL-delimited JSON).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter((x): x is string => !!x);
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8', timeout: 20000 });
    if (r.status === 0) return c;
  }
  return null;
}

export interface PageResult {
  value: unknown;
  /** console.error / console.assert calls, uncaught exceptions and error log entries (e.g. failed loads) */
  errors: string[];
  screenshotPng: Buffer | null;
}

/** Loads url in a fresh headless chromium, evaluates `expression` (its JSON value comes back), collects errors. */
export async function inspectPage(chromium: string, url: string, expression: string, opts: { timeoutMs?: number; screenshot?: boolean } = {}): Promise<PageResult> {
  const profile = mkdtempSync(join(tmpdir(), 'sw-chromium-'));
  const proc = spawn(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-extensions',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const toBrowser = proc.stdio[3] as Writable;
  const fromBrowser = proc.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const listeners: ((m: { method: string; params: Record<string, unknown>; sessionId?: string }) => void)[] = [];
  let buf = '';
  fromBrowser.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${msg.error.message}`));
        else p?.resolve(msg.result);
      } else for (const l of listeners) l(msg);
    }
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  const errors: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<never>((_, reject) => proc.on('exit', (code) => reject(new Error(`chromium exited (${code}): ${stderr.slice(-2000)}`))));
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`chromium timed out: ${stderr.slice(-2000)}`)), opts.timeoutMs ?? 30000);
    timer.unref();
  });
  const work = async (): Promise<PageResult> => {
    const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    listeners.push((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(String(m.params.type)))
        errors.push(`console.${m.params.type}: ${JSON.stringify((m.params.args as { value?: unknown; description?: string }[]).map((a) => a.value ?? a.description))}`);
      if (m.method === 'Runtime.exceptionThrown') errors.push(`exception: ${JSON.stringify((m.params.exceptionDetails as { text?: string; exception?: { description?: string } }).exception?.description ?? m.params.exceptionDetails)}`);
      if (m.method === 'Log.entryAdded') {
        const e = m.params.entry as { level: string; text: string; url?: string };
        if (e.level === 'error') errors.push(`log: ${e.text}${e.url ? ` (${e.url})` : ''}`);
      }
    });
    await send('Runtime.enable', {}, sessionId);
    await send('Log.enable', {}, sessionId);
    await send('Page.enable', {}, sessionId);
    const loaded = new Promise<void>((resolve) => listeners.push((m) => m.sessionId === sessionId && m.method === 'Page.loadEventFired' && resolve()));
    const nav = (await send('Page.navigate', { url }, sessionId)) as { errorText?: string };
    if (nav.errorText) throw new Error(`navigation to ${url} failed: ${nav.errorText}`);
    await loaded;
    const r = (await send('Runtime.evaluate', { expression: `JSON.stringify((() => { ${expression} })())`, returnByValue: true }, sessionId)) as {
      result: { value?: string };
      exceptionDetails?: unknown;
    };
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${JSON.stringify(r.exceptionDetails)}`);
    let screenshotPng: Buffer | null = null;
    if (opts.screenshot) {
      const s = (await send('Page.captureScreenshot', { format: 'png' }, sessionId)) as { data: string };
      screenshotPng = Buffer.from(s.data, 'base64');
    }
    // a moment for late console messages
    await new Promise((res) => setTimeout(res, 100));
    return { value: r.result.value === undefined ? undefined : JSON.parse(r.result.value), errors: [...errors], screenshotPng };
  };
  try {
    return await Promise.race([work(), exited, timeout]);
  } finally {
    clearTimeout(timer);
    proc.removeAllListeners('exit');
    try {
      await Promise.race([send('Browser.close'), new Promise((res) => setTimeout(res, 2000).unref())]);
    } catch {
      // already gone
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((res) => proc.once('exit', res));
      if (!(await Promise.race([gone.then(() => true), new Promise((res) => setTimeout(() => res(false), 3000).unref())]))) {
        proc.kill('SIGKILL');
        await gone;
      }
    }
    for (const s of [proc.stderr, toBrowser, fromBrowser]) s?.destroy();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}
