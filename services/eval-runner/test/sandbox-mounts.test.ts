import { describe, expect, it } from 'vitest';
import { fstab, fstabEscape, isUnder, SETUP_FAILED, setupScript, shQuote, STAGE, writableMounts, type FstabInput } from '../src/sandbox/mounts.ts';

const base: FstabInput = {
  slotDir: '/var/kiln/sb/slot-0',
  cacheDir: '/var/kiln/sb/slot-0/cache',
  tmpBytes: 1024,
  exposed: [],
  covers: [],
  seeds: [],
  writableCache: false,
};

const lines = (i: Partial<FstabInput>) => fstab({ ...base, ...i }).trimEnd().split('\n');

describe('fstab', () => {
  it('gives a program step a private /dev/shm, its slot dir bound back, and the cache read-only', () => {
    expect(lines({})).toEqual([
      'kiln-shm /dev/shm tmpfs size=1024,nosuid,nodev,mode=1777 0 0',
      `/var/kiln/sb/slot-0 ${STAGE}/slot none bind,X-mount.mkdir=0700 0 0`,
      `${STAGE}/slot /var/kiln/sb/slot-0 none bind,X-mount.mkdir=0755 0 0`,
      `${STAGE}/slot/cache /var/kiln/sb/slot-0/cache none bind,ro,nosuid,nodev 0 0`,
    ]);
  });

  it('stages what a cover hides before covering, and binds it back after', () => {
    const l = lines({ covers: [{ path: '/tmp', mode: '1777', size: 64 }] });
    const stage = l.findIndex((x) => x.startsWith(`/var/kiln/sb/slot-0 ${STAGE}/slot `));
    const cover = l.findIndex((x) => x === 'kiln-cover /tmp tmpfs size=64,mode=1777,nosuid,nodev,X-mount.mkdir 0 0');
    const back = l.findIndex((x) => x.startsWith(`${STAGE}/slot /var/kiln/sb/slot-0 `));
    expect(stage).toBeGreaterThan(0);
    expect(cover).toBeGreaterThan(stage);
    expect(back).toBeGreaterThan(cover);
  });

  it('places the outermost cover of nested ones only, whatever order they come in', () => {
    const l = lines({ covers: [{ path: '/root/.cache', mode: '0755', size: 1 }, { path: '/root', mode: '0755', size: 1 }, { path: '/rootless', mode: '0755', size: 1 }] });
    expect(l.filter((x) => x.startsWith('kiln-cover'))).toEqual([
      'kiln-cover /root tmpfs size=1,mode=0755,nosuid,nodev,X-mount.mkdir 0 0',
      'kiln-cover /rootless tmpfs size=1,mode=0755,nosuid,nodev,X-mount.mkdir 0 0',
    ]);
  });

  it('binds exposed toolchains back read-only, and a vanished one does not fail the mount (nofail)', () => {
    const l = lines({ exposed: ['/root/.rustup'] });
    expect(l).toContain(`/root/.rustup ${STAGE}/e0 none bind,nofail,X-mount.mkdir=0700 0 0`);
    expect(l).toContain(`${STAGE}/e0 /root/.rustup none bind,ro,nosuid,nodev,nofail,X-mount.mkdir=0755 0 0`);
  });

  it('overlays seeded caches in writable steps only; a read-only step binds the cache read-only instead', () => {
    const seeds = [['go-build', '/root/.cache/go-build']] as const;
    const rw = lines({ seeds, writableCache: true });
    expect(rw).toContain(`/root/.cache/go-build ${STAGE}/s0 none bind,X-mount.mkdir=0700 0 0`);
    expect(rw).toContain(`kiln-cache /var/kiln/sb/slot-0/cache/go-build overlay lowerdir=${STAGE}/s0,upperdir=/var/kiln/sb/slot-0/.ovl/go-build/upper,workdir=/var/kiln/sb/slot-0/.ovl/go-build/work,nosuid,nodev 0 0`);
    expect(rw.some((x) => x.includes(' bind,ro') && x.includes('/cache '))).toBe(false);
    const ro = lines({ seeds, writableCache: false });
    expect(ro.some((x) => x.includes('go-build'))).toBe(false);
    expect(ro.at(-1)).toBe(`${STAGE}/slot/cache /var/kiln/sb/slot-0/cache none bind,ro,nosuid,nodev 0 0`);
  });

  it('escapes spaces, tabs, newlines and backslashes in paths as fstab octal', () => {
    expect(fstabEscape('/a b\tc\nd\\e')).toBe('/a\\040b\\011c\\012d\\134e');
    expect(lines({ slotDir: '/x y/slot-0', cacheDir: '/x y/slot-0/cache' })[1]).toBe(`/x\\040y/slot-0 ${STAGE}/slot none bind,X-mount.mkdir=0700 0 0`);
  });
});

describe('setupScript', () => {
  it('mounts the fstab, remounts what is left of the host read-only, then runs the program under a watchdog', () => {
    const s = setupScript('/usr/bin/mount', ['/', '/tmp', '/tmp/x', '/dev/shm', '/home'], ['/tmp']).split('\n');
    expect(s[0]).toBe(`'/usr/bin/mount' -a -T "$1" || { echo '${SETUP_FAILED}' >&2; exit 125; }`);
    const remounts = s.filter((l) => l.includes('remount'));
    // Covered paths and the private /dev/shm have nothing of the host's left under them.
    expect(remounts.map((l) => l.split(' ')[3])).toEqual(["'/'", "'/home'"]);
    expect(s).toContain('( read -r _ <&3; kill -KILL -1 ) &');
    expect(s.slice(-3)).toEqual(['"$@"', 's=$?', 'exit $s']);
  });

  it('quotes paths for the shell', () => {
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(setupScript("/opt/o'mount", [], [])).toContain(`'/opt/o'\\''mount' -a -T`);
  });
});

describe('writableMounts', () => {
  const info = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '23 22 0:5 / /proc rw,nosuid shared:2 - proc proc rw',
    '24 22 0:6 / /sys rw shared:3 - sysfs sysfs rw',
    '25 22 0:7 / /dev rw shared:4 - devtmpfs udev rw',
    '26 22 8:2 / /home rw,relatime shared:5 - ext4 /dev/sda2 rw',
    '27 22 8:3 / /usr ro,relatime shared:6 - ext4 /dev/sda3 ro',
    '28 22 0:30 / /mnt/with\\040space rw shared:7 - xfs /dev/sdb rw',
    '29 22 0:31 / /var/lib/cg rw shared:8 - cgroup2 cgroup2 rw',
    '',
  ].join('\n');

  it('lists every writable real filesystem outside /proc, /sys and /dev, with / always, sorted and unescaped', () => {
    expect(writableMounts(info)).toEqual(['/', '/home', '/mnt/with space']);
  });

  it('still protects / when the table says nothing', () => {
    expect(writableMounts('')).toEqual(['/']);
  });

  it('isUnder compares whole path segments', () => {
    expect(isUnder('/tmp/x', '/tmp')).toBe(true);
    expect(isUnder('/tmp', '/tmp')).toBe(true);
    expect(isUnder('/tmpfoo', '/tmp')).toBe(false);
    expect(isUnder('/anything', '/')).toBe(true);
  });
});
