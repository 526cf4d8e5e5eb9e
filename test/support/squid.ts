/**
 * A real HTTP proxy for the engine's proxy tests: Debian's squid, on 127.0.0.1 only, with its own config,
 * logs and pid file in a temporary folder, optionally with Basic proxy authentication (basic_ncsa_auth).
 *
 * - ensureSquid() installs the `squid` package when it is missing (root only; `apt-get update` only when the
 *   install fails without it). When it cannot, it throws an Error that says why: the proxy tests then FAIL,
 *   they never pass silently.
 * - Squid.start() writes a config (no cache unless `cacheDir`, access log to a file, pid file and logs in the temp folder),
 *   runs `squid -N -f <conf>` in the foreground, waits until the port accepts connections and returns.
 * - stop() sends SIGTERM to that process (by PID), then SIGKILL if it lingers, and removes the folder.
 *
 * Squid's default configuration refuses most of what tests need (`http_access deny to_localhost`, CONNECT
 * only to port 443); this config allows exactly the test setup: requests from 127.0.0.1 (or, with auth, from
 * clients that authenticate) to anywhere, including 127.0.0.1 origins on any port.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface SquidOptions {
  /** Require Basic proxy authentication with this user and password. */
  auth?: { user: string; password: string };
  /** Cache responses on disk (`cache_dir ufs`, 64 MiB), as a team's caching proxy does; default: no cache at all. */
  cacheDir?: boolean;
}

const SQUID_CANDIDATES = ['/usr/sbin/squid', '/usr/local/sbin/squid', '/usr/bin/squid'];
const NCSA_CANDIDATES = ['/usr/lib/squid/basic_ncsa_auth', '/usr/lib64/squid/basic_ncsa_auth', '/usr/local/libexec/squid/basic_ncsa_auth'];

function findExecutable(candidates: string[]): string | undefined {
  return candidates.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Makes sure squid is installed and returns its path. Installs Debian's package when missing (the squid binary
 * absent: `apt-get install -y squid`, with `apt-get update` first only if the install fails without it).
 * Throws an Error with a clear message when it cannot: the caller's tests must fail, not pass.
 */
export function ensureSquid(log: (m: string) => void = () => undefined): string {
  // Installed (from the .deb, or some other way): use it.
  const found = findExecutable(SQUID_CANDIDATES);
  if (found) {
    return found;
  }
  const why = (m: string) =>
    new Error(
      `The proxy tests need Debian's squid (a real HTTP proxy on 127.0.0.1), and it is not installed: ${m}. ` +
        `Install it with 'apt-get install -y squid' (as root) and run the tests again` +
        (process.env.CI === 'true' ? ' (CI=true: CI machines run as root with apt-get, so this is a CI setup problem).' : '.'),
    );
  if (process.platform !== 'linux') {
    throw why(`automatic installation is only done on Debian/Ubuntu Linux (this is ${process.platform})`);
  }
  if (process.getuid?.() !== 0) {
    throw why('the tests are not running as root, so they cannot install it');
  }
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw why('apt-get is not available on this machine');
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): { ok: boolean; output: string } => {
    const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'squid'], { env, encoding: 'utf8', timeout: 600_000 });
    return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  };
  log('squid is missing: apt-get install -y squid');
  let r = install();
  if (!r.ok) {
    log('apt-get install failed; running apt-get update first');
    const u = spawnSync('apt-get', ['update'], { env, encoding: 'utf8', timeout: 600_000 });
    if (u.status !== 0) {
      throw why(`'apt-get update' failed: ${tail(`${u.stdout ?? ''}${u.stderr ?? ''}`)}`);
    }
    r = install();
  }
  const exe = findExecutable(SQUID_CANDIDATES);
  if (!r.ok || !exe) {
    throw why(`'apt-get install -y squid' failed: ${tail(r.output)}`);
  }
  return exe;
}

function tail(s: string, n = 600): string {
  const t = s.trim();
  return t.length > n ? '…' + t.slice(-n) : t;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** An htpasswd line basic_ncsa_auth accepts: SHA-512 crypt (glibc crypt(3)) made by `openssl passwd -6`. */
function htpasswdLine(user: string, password: string): string {
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password + '\n', encoding: 'utf8' }).trim();
  if (!hash.startsWith('$6$')) {
    throw new Error(`openssl passwd -6 gave an unexpected hash: ${hash}`);
  }
  return `${user}:${hash}\n`;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Squid {
  private exited = false;
  private exitInfo = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    readonly auth: SquidOptions['auth'],
  ) {
    child.once('exit', (code, signal) => {
      this.exited = true;
      this.exitInfo = `exit code ${code}, signal ${signal}`;
    });
  }

  /** Installs squid if needed, starts it on a free 127.0.0.1 port and waits until it accepts connections. */
  static async start(o: SquidOptions = {}, log: (m: string) => void = () => undefined): Promise<Squid> {
    const exe = ensureSquid(log);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await Squid.startOnce(exe, o);
      } catch (e) {
        lastError = e; // most likely the port was taken between freePort() and squid's bind: try another
      }
    }
    throw lastError;
  }

  private static async startOnce(exe: string, o: SquidOptions): Promise<Squid> {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-squid-'));
    const lines = [
      `http_port 127.0.0.1:${port}`,
      `pid_filename ${dir}/squid.pid`,
      `cache_log ${dir}/cache.log`,
      `access_log stdio:${dir}/access.log squid`,
      'logfile_rotate 0',
      `coredump_dir ${dir}`,
      ...(o.cacheDir
        ? [`cache_dir ufs ${dir}/cache 64 4 16`, 'maximum_object_size 32 MB', 'cache_mem 0 MB', 'range_offset_limit 0']
        : ['cache deny all', 'cache_mem 0 MB']),
      'memory_cache_shared off',
      'netdb_filename none',
      'visible_hostname md-test-squid',
      'shutdown_lifetime 0 seconds',
      'forwarded_for on',
      'via on',
      // Predefined ACLs: localhost (src 127.0.0.1/32 ::1), to_localhost, all. No "deny to_localhost" here:
      // the origins of these tests are on 127.0.0.1.
    ];
    if (o.auth) {
      const helper = findExecutable(NCSA_CANDIDATES);
      if (!helper) {
        throw new Error(`squid's basic_ncsa_auth helper was not found (looked in ${NCSA_CANDIDATES.join(', ')}).`);
      }
      fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswdLine(o.auth.user, o.auth.password), { mode: 0o644 });
      lines.push(
        `auth_param basic program ${helper} ${dir}/htpasswd`,
        'auth_param basic children 2 startup=1 idle=1',
        'auth_param basic realm md-test-squid',
        'auth_param basic credentialsttl 1 second',
        'acl authenticated proxy_auth REQUIRED',
        'http_access allow localhost authenticated',
      );
    } else {
      lines.push('http_access allow localhost');
    }
    lines.push('http_access deny all');
    const conf = path.join(dir, 'squid.conf');
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    if (o.cacheDir) {
      fs.mkdirSync(path.join(dir, 'cache'));
    }
    if (process.getuid?.() === 0) {
      // Started as root, squid switches to cache_effective_user (Debian: "proxy"); it must write its logs here.
      const proxyUser = spawnSync('id', ['-u', 'proxy'], { encoding: 'utf8' });
      const proxyGroup = spawnSync('id', ['-g', 'proxy'], { encoding: 'utf8' });
      if (proxyUser.status === 0 && proxyGroup.status === 0) {
        const uid = Number(proxyUser.stdout.trim());
        const gid = Number(proxyGroup.stdout.trim());
        for (const p of [dir, ...fs.readdirSync(dir).map((n) => path.join(dir, n))]) {
          fs.chownSync(p, uid, gid);
        }
      } else {
        fs.chmodSync(dir, 0o777);
      }
    }
    if (o.cacheDir) {
      // -z: create the cache_dir's swap folders first (squid refuses to start on an unprepared one).
      const z = spawnSync(exe, ['-N', '-z', '-f', conf], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      if (z.status !== 0) {
        throw new Error(`squid -z could not prepare its cache_dir: ${tail(`${z.stdout ?? ''}${z.stderr ?? ''}`)}`);
      }
    }
    // -N: foreground, no daemon; -d 1: startup problems also on stderr.
    const child = spawn(exe, ['-N', '-d', '1', '-f', conf], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    const squid = new Squid(port, dir, child, o.auth);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (squid.exited) {
        const cacheLog = fs.existsSync(path.join(dir, 'cache.log')) ? fs.readFileSync(path.join(dir, 'cache.log'), 'utf8') : '';
        fs.rmSync(dir, { recursive: true, force: true });
        throw new Error(`squid exited at start-up (${squid.exitInfo}): ${tail(stderr + '\n' + cacheLog)}`);
      }
      if (await canConnect(port)) {
        return squid;
      }
      if (Date.now() > deadline) {
        await squid.stop();
        throw new Error(`squid did not accept connections on 127.0.0.1:${port} within 30 s: ${tail(stderr)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The proxy URL, with credentials when given (the engine's `network.proxy`). */
  url(credentials?: { user: string; password: string }): string {
    const userinfo = credentials ? `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@` : '';
    return `http://${userinfo}127.0.0.1:${this.port}`;
  }

  get accessLogPath(): string {
    return path.join(this.dir, 'access.log');
  }

  /** Lines of squid's access log so far (squid writes a line when a request ends). */
  accessLog(): string[] {
    try {
      return fs.readFileSync(this.accessLogPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
    } catch {
      return [];
    }
  }

  /** Waits until the access log has a line matching `re` (squid may flush it a moment after the response). */
  async waitForLog(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const line = this.accessLog().find((l) => re.test(l));
      if (line) {
        return line;
      }
      if (Date.now() > end) {
        throw new Error(`squid's access log has no line matching ${re} after ${timeoutMs} ms; it has:\n${this.accessLog().join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM (then SIGKILL after 5 s) to the squid process this object started, by PID; removes its folder. */
  async stop(): Promise<void> {
    if (!this.exited && this.child.pid !== undefined) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      try {
        process.kill(this.child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        if (!this.exited && this.child.pid !== undefined) {
          try {
            process.kill(this.child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, 5_000);
      await gone;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
