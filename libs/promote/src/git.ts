/** The git side of a promotion: the stack's config file committed alone, its history read back. `git` runs as a child process. */
import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';

/** git said no: the command, and what it printed. */
export class GitError extends Error {}

function git(cwd: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const child = execFile('git', args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') rej(new GitError('git is not installed (or not on PATH): kiln promote records promotions as git commits'));
        else rej(new GitError(`git ${args[0]} failed: ${(stderr || stdout || err.message).trim()}`));
      } else res(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The top directory of the git work tree holding `dir`. */
export async function repoRoot(dir: string): Promise<string> {
  try {
    return (await git(dir, ['rev-parse', '--show-toplevel'])).trim();
  } catch (e) {
    if (e instanceof GitError && /not a git repository/i.test(e.message)) throw new GitError(`${dir} is not in a git repository: a promotion is a git commit of the stack's config, so the stacks must be in one`);
    throw e;
  }
}

/** The git directory shared by every work tree of the repository (where kiln keeps its lock files). */
export async function gitCommonDir(repo: string): Promise<string> {
  const d = (await git(repo, ['rev-parse', '--git-common-dir'])).trim();
  return isAbsolute(d) ? d : resolve(repo, d);
}

/** `file` relative to the repository, as git names it (both resolved through symlinks). */
function repoPath(repo: string, file: string): string {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(realpathSync(dirname(p)), p.slice(dirname(p).length + 1));
    }
  };
  return relative(real(repo), real(resolve(repo, file))).split('\\').join('/');
}

async function configValue(repo: string, key: string): Promise<string | undefined> {
  try {
    return (await git(repo, ['config', '--get', key])).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Who commits here: `Name <email>` from git's config; an Error says how to set what is missing. */
export async function gitUser(repo: string): Promise<string> {
  const name = process.env.GIT_AUTHOR_NAME || (await configValue(repo, 'user.name'));
  const email = process.env.GIT_AUTHOR_EMAIL || (await configValue(repo, 'user.email'));
  const missing = [...(name ? [] : ['user.name']), ...(email ? [] : ['user.email'])];
  if (missing.length) {
    const how = missing.map((k) => `git config ${k} ${k === 'user.name' ? '"Your Name"' : 'you@example.com'}`).join(' && ');
    throw new GitError(`git has no ${missing.join(' or ')}: a promotion is a commit whose author is its record of who promoted. Set it: ${how} (add --global for every repository)`);
  }
  return `${name} <${email}>`;
}

/** Whether `file` differs from HEAD (staged or not); a file git does not track yet counts as changed. */
export async function hasChanges(repo: string, file: string): Promise<boolean> {
  const out = await git(repo, ['status', '--porcelain', '--', repoPath(repo, file)]);
  return out.trim() !== '';
}

/**
 * Commits `file` alone (whatever else is staged stays staged, uncommitted) with `message`; returns the new
 * commit's sha. The author is git's configured user.
 */
export async function commitFile(repo: string, file: string, message: string): Promise<string> {
  await gitUser(repo);
  const path = repoPath(repo, file);
  await git(repo, ['add', '--', path]);
  await git(repo, ['commit', '--only', '--cleanup=whitespace', '-F', '-', '--', path], message);
  return (await git(repo, ['rev-parse', 'HEAD'])).trim();
}

/** One commit that changed a file, with the file's content at that commit. */
export interface FileCommit {
  readonly sha: string;
  /** `Name <email>` of the commit's author. */
  readonly author: string;
  /** Author date, ISO 8601. */
  readonly date: string;
  /** The whole commit message. */
  readonly message: string;
  /** The file's content at this commit ('' when the commit deleted it). */
  readonly content: string;
}

/** The commits of the current branch that changed `file`, oldest first, each with the file as it was then. */
export async function fileHistory(repo: string, file: string): Promise<FileCommit[]> {
  const path = repoPath(repo, file);
  let log: string;
  try {
    log = await git(repo, ['log', '--reverse', '--format=%H%x00%an <%ae>%x00%aI%x00%B%x1e', '--', path]);
  } catch (e) {
    // A repository without a commit yet has no history.
    if (e instanceof GitError && /does not have any commits|bad default revision|unknown revision/i.test(e.message)) return [];
    throw e;
  }
  const commits = log
    .split('\x1e')
    .map((r) => r.replace(/^\n/, ''))
    .filter((r) => r.trim())
    .map((r) => {
      const [sha, author, date, message] = r.split('\x00') as [string, string, string, string];
      return { sha, author, date, message: message.trimEnd() };
    });
  return Promise.all(commits.map(async (c) => ({ ...c, content: await git(repo, ['show', `${c.sha}:${path}`]).catch(() => '') })));
}

/** The trailers of a commit message (`Kiln-Run: r-…`), by key; the last value of a repeated key wins. */
export function trailers(message: string): Record<string, string> {
  const paragraphs = message.trim().split(/\n\s*\n/);
  const last = paragraphs.length > 1 ? paragraphs[paragraphs.length - 1]! : '';
  const out: Record<string, string> = {};
  for (const line of last.split('\n')) {
    const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
