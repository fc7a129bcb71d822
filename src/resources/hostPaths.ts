/**
 * Host paths a spec names (spec files, `promptFile`, `skills`, `workspace`):
 * which ones bottle refuses, and reading them with bounds. A host path never
 * reaches the agent raw: what a skill or prompt holds is read here, checked,
 * and later written as a copy into the bottle's state dir, which is all the
 * agent mounts.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from "node:fs"
import { lstat, readdir, realpath, stat } from "node:fs/promises"
import { dirname, isAbsolute, join, resolve, sep } from "node:path"
import * as Effect from "effect/Effect"
import { sha256 } from "./hash.js"

/** What the checks need to know about the host. */
export interface HostContext {
  /** The user's home directory. */
  readonly home: string
  /** BOTTLE_HOME: bottle's own state; never given to an agent. */
  readonly bottleHome: string
  /** Sockets of container engines (the configured one and the usual places): whoever reaches one owns the host. */
  readonly engineSockets: ReadonlyArray<string>
}

/** The usual places of container engine sockets, besides the configured one. */
export const KNOWN_ENGINE_SOCKETS: ReadonlyArray<string> = [
  "/var/run/docker.sock",
  "/run/docker.sock",
  "/run/containerd/containerd.sock",
  "/run/podman/podman.sock",
  "/var/run/podman/podman.sock"
]

/** Directories that are the system, never a skill, prompt or workspace, nor anything under them. */
const SYSTEM_TREES = ["/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/etc", "/var/lib", "/var/log", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/snap"]
/** System directories refused themselves (a project may live below /home, /srv, /opt or /var/tmp). */
const SYSTEM_DIRS = ["/", "/home", "/root", "/srv", "/opt", "/var", "/tmp", "/var/tmp", "/mnt", "/media"]
/** Credentials under a home directory: a spec that names them (or a directory holding them) is refused. */
const HOME_SECRETS = [".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gcloud", ".netrc", ".git-credentials", ".npmrc", ".pypirc", ".claude", ".claude.json", ".config/gh"]

const within = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`)

/** Why `path` (absolute, symlinks resolved) is the system's and never bottle's to use, or undefined. */
export const systemPathProblem = (path: string): string | undefined => {
  if (path === "/") return "is the root of the file system"
  if (SYSTEM_DIRS.includes(path)) return `is the system directory ${path}`
  const tree = SYSTEM_TREES.find((d) => within(path, d))
  if (tree !== undefined) return `is ${path === tree ? "" : "under "}the system directory ${tree}`
  return undefined
}

/**
 * Why bottle refuses to hand `path` (absolute, symlinks resolved) to an
 * agent, or undefined. `what` names the field for the message.
 */
export const hostPathProblem = (path: string, ctx: HostContext): string | undefined => {
  const system = systemPathProblem(path)
  if (system !== undefined) return system
  if (path === ctx.home) return `is your home directory (${ctx.home}): name a directory inside it`
  if (within(path, ctx.bottleHome) || within(ctx.bottleHome, path)) return `${within(path, ctx.bottleHome) ? "is inside" : "holds"} bottle's own state (${ctx.bottleHome})`
  for (const s of ctx.engineSockets) {
    if (within(s, path)) return `${s === path ? "is" : "holds"} a container engine's socket (${s}): whoever reaches it controls the host`
  }
  for (const secret of HOME_SECRETS) {
    const p = join(ctx.home, secret)
    if (within(path, p) || within(p, path)) return `${within(path, p) ? "is inside" : "holds"} ${p}, where credentials live`
  }
  return undefined
}

/** A host path that could not be used; `detail` is written for the user. */
export class HostPathError {
  readonly _tag = "HostPathError"
  constructor(readonly path: string, readonly detail: string) {}
}

/** Resolves symlinks of an existing path; a missing one is an error naming it. */
export const realPathOf = (path: string): Effect.Effect<string, HostPathError> =>
  Effect.tryPromise({ try: () => realpath(path), catch: (e) => new HostPathError(path, errnoText(e, "does not exist")) })

const errnoText = (e: unknown, missing: string): string => {
  const code = (e as NodeJS.ErrnoException)?.code
  if (code === "ENOENT") return missing
  if (code === "EACCES" || code === "EPERM") return "permission denied"
  if (code === "ELOOP") return "too many levels of symlinks"
  return e instanceof Error ? e.message : String(e)
}

const typeOf = (s: Stats): string =>
  s.isFile() ? "file" : s.isDirectory() ? "directory" : s.isSymbolicLink() ? "symlink" : s.isSocket() ? "socket" : s.isFIFO() ? "FIFO" : s.isCharacterDevice() || s.isBlockDevice() ? "device" : "special file"

/**
 * Reads a regular file of at most `limit` bytes. Devices, FIFOs and sockets
 * are refused before they are opened (and the open itself never blocks), and
 * the read stops at the limit, whatever `stat` said.
 */
export const readBoundedFile = (path: string, limit: number): Effect.Effect<Buffer, HostPathError> =>
  Effect.try({ try: () => readBoundedSync(path, limit), catch: asHostPathError(path) })

const asHostPathError = (path: string) => (e: unknown) => (e instanceof HostPathError ? e : new HostPathError(path, errnoText(e, "does not exist")))

/**
 * readBoundedFile's reading, throwing a HostPathError (or node's own error).
 * Synchronous: each call to node's promise API is a trip through its thread
 * pool (a no-op apply of 20 bottles reads 40 files of state: 240 such
 * trips, 30 ms). The price: while a file on a stalled network or FUSE mount
 * is read, the process waits (as a command that runs under the lock already
 * does for the lock file); what is read is bounded, at most the limit given
 * (a skill tree's or the supervisor's few MiB).
 */
export const readBoundedSync = (path: string, limit: number): Buffer => {
  const before = statSync(path)
  if (!before.isFile()) throw new HostPathError(path, `is a ${typeOf(before)}, not a regular file`)
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const info = fstatSync(fd)
    if (!info.isFile()) throw new HostPathError(path, `is a ${typeOf(info)}, not a regular file`)
    const buf = Buffer.alloc(Math.min(limit, info.size) + 1)
    let size = 0
    for (;;) {
      if (size === buf.length) throw new HostPathError(path, size > limit ? `is larger than ${formatBytes(limit)}, the most bottle reads` : "grew while it was read")
      const bytesRead = readSync(fd, buf, size, buf.length - size, null)
      if (bytesRead === 0) break
      size += bytesRead
    }
    return buf.subarray(0, size)
  } finally {
    closeSync(fd)
  }
}

export const formatBytes = (n: number): string =>
  n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(n % 1024 ** 2 === 0 ? 0 : 1)} MiB` : n >= 1024 ? `${Math.round(n / 1024)} KiB` : `${n} bytes`

/** One file of a copied tree: its path relative to the tree's root (POSIX), its bytes, and whether it is executable. */
export interface CopiedFile {
  readonly path: string
  readonly content: Buffer
  readonly executable: boolean
}

/** A skill (a directory or one file) as read from the host. */
export interface CopiedTree {
  /** Where it was read from (absolute). */
  readonly source: string
  /** Directories relative to the root (POSIX), parents first. */
  readonly dirs: ReadonlyArray<string>
  readonly files: ReadonlyArray<CopiedFile>
  /** Hash of every path, mode and content: what decides whether the agent must be replaced. */
  readonly hash: string
}

export interface CopyLimits {
  readonly maxBytes: number
  readonly maxEntries: number
  readonly maxDepth: number
}

export const SKILL_LIMITS: CopyLimits = { maxBytes: 16 * 1024 ** 2, maxEntries: 4096, maxDepth: 16 }

/**
 * Reads a directory tree (or a single file) for copying: regular files and
 * directories only, within the limits. A symlink is followed only when its
 * target lies inside the tree (and is then copied as what it points to);
 * one that leads out, or dangles, is refused, as are sockets, devices and FIFOs.
 */
export const readTree = (source: string, limits: CopyLimits = SKILL_LIMITS): Effect.Effect<CopiedTree, HostPathError> =>
  Effect.tryPromise({
    try: async () => {
      const root = await realpath(source)
      const dirs: Array<string> = []
      const files: Array<CopiedFile> = []
      let bytes = 0
      let entries = 0
      const refuse = (p: string, detail: string): never => { throw new HostPathError(p, detail) }
      /** The real path of a symlink inside the tree, or a refusal. */
      const follow = async (p: string): Promise<string> => {
        const target = await realpath(p).catch(() => refuse(p, "is a symlink that leads nowhere"))
        if (!within(target, root)) refuse(p, `is a symlink leading out of ${source} (to ${target}); bottle copies only what is inside`)
        return target
      }
      const visit = async (p: string, rel: string, depth: number, seen: ReadonlySet<string>): Promise<void> => {
        if (++entries > limits.maxEntries) refuse(source, `holds more than ${limits.maxEntries} entries, the most bottle copies`)
        if (depth > limits.maxDepth) refuse(p, `is nested more than ${limits.maxDepth} levels deep`)
        let info = await lstat(p)
        let real = p
        if (info.isSymbolicLink()) {
          real = await follow(p)
          info = await stat(real)
        }
        if (info.isDirectory()) {
          const key = await realpath(real)
          if (seen.has(key)) refuse(p, "is a symlink to a directory that contains it (a loop)")
          if (rel !== "") dirs.push(rel)
          const names = (await readdir(real)).sort()
          for (const name of names) await visit(join(real, name), rel === "" ? name : `${rel}/${name}`, depth + 1, new Set([...seen, key]))
          return
        }
        if (!info.isFile()) refuse(p, `is a ${typeOf(info)}; bottle copies only regular files and directories`)
        bytes += info.size
        if (bytes > limits.maxBytes) refuse(source, `is larger than ${formatBytes(limits.maxBytes)}, the most bottle copies`)
        const content = readBoundedSync(real, limits.maxBytes)
        files.push({ path: rel === "" ? baseName(source) : rel, content, executable: (info.mode & 0o111) !== 0 })
      }
      await visit(root, "", 0, new Set())
      const hash = sha256(JSON.stringify([dirs, files.map((f) => [f.path, f.executable, sha256Bytes(f.content)])]))
      return { source, dirs, files, hash }
    },
    catch: asHostPathError(source)
  })

const sha256Bytes = (b: Buffer) => sha256(b.toString("base64"))

export const baseName = (p: string) => p.replace(/\/+$/, "").split("/").pop() || "skill"

/** A path from a spec, relative to the spec file's directory. */
export const resolveFrom = (specFile: string, p: string) => (isAbsolute(p) ? resolve(p) : resolve(dirname(resolve(specFile)), p))
