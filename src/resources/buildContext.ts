/**
 * A build context as the Engine would see it: every file under the context
 * directory that its `.dockerignore` lets through (Docker's own matching,
 * from @balena/dockerignore), hashed by content so the image is rebuilt only
 * when what the build sees changes, and sent as a tar through the Engine's
 * `/build`. The Dockerfile and `.dockerignore` always go (as Docker does).
 */
import dockerignoreModule from "@balena/dockerignore"
import { createReadStream } from "node:fs"
import { lstat, readdir, readFile, readlink } from "node:fs/promises"
import { join, relative, sep } from "node:path"
import type { Readable } from "node:stream"
import { pack } from "tar-stream"
import { sha256 } from "./hash.js"

/** The most a build context may hold: beyond this it is almost always a forgotten .dockerignore. */
// A CommonJS module whose declarations say `export default`: at run time the default import is the factory itself.
const dockerignore = dockerignoreModule as unknown as (typeof dockerignoreModule)["default"]

export const CONTEXT_LIMITS = { maxBytes: 1024 * 1024 ** 2, maxEntries: 100_000 }

export interface ContextEntry {
  /** POSIX path inside the context. */
  readonly path: string
  readonly type: "file" | "directory" | "symlink"
  readonly mode: number
  readonly size: number
  /** For a symlink: where it points (sent as is, like Docker). */
  readonly target?: string
}

export class ContextError extends Error {}

/** Lists what a build sees, in a stable order, and its hash. */
export const readContext = async (context: string, dockerfile: string, args: Readonly<Record<string, string>>): Promise<{ readonly entries: ReadonlyArray<ContextEntry>; readonly hash: string }> => {
  let patterns: ReadonlyArray<string> = []
  try {
    patterns = (await readFile(join(context, ".dockerignore"), "utf8")).split(/\r?\n/)
  } catch { /* none */ }
  const ig = dockerignore({ ignorecase: false }).add([...patterns])
  const always = new Set([dockerfile, ".dockerignore"])
  const entries: Array<ContextEntry> = []
  const digest: Array<string> = []
  let bytes = 0
  const visit = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name)
      const rel = relative(context, abs).split(sep).join("/")
      const info = await lstat(abs)
      const isDir = info.isDirectory()
      if (!always.has(rel) && ig.ignores(isDir ? `${rel}/` : rel)) continue
      if (entries.length >= CONTEXT_LIMITS.maxEntries) throw new ContextError(`holds more than ${CONTEXT_LIMITS.maxEntries} entries: add a .dockerignore`)
      if (isDir) {
        entries.push({ path: rel, type: "directory", mode: info.mode & 0o7777, size: 0 })
        digest.push(`d ${rel} ${info.mode & 0o7777}`)
        await visit(abs)
      } else if (info.isSymbolicLink()) {
        const target = await readlink(abs)
        entries.push({ path: rel, type: "symlink", mode: info.mode & 0o7777, size: 0, target })
        digest.push(`l ${rel} ${target}`)
      } else if (info.isFile()) {
        bytes += info.size
        if (bytes > CONTEXT_LIMITS.maxBytes) throw new ContextError(`is larger than ${CONTEXT_LIMITS.maxBytes / 1024 ** 2} MiB: add a .dockerignore`)
        entries.push({ path: rel, type: "file", mode: info.mode & 0o7777, size: info.size })
        digest.push(`f ${rel} ${info.mode & 0o111 ? "x" : "-"} ${sha256((await readFile(abs)).toString("base64"))}`)
      }
      // Sockets, FIFOs and devices are not sent (Docker skips them too).
    }
  }
  await visit(context)
  if (!entries.some((e) => e.path === dockerfile && e.type === "file")) throw new ContextError(`has no ${dockerfile}`)
  return { entries, hash: sha256(JSON.stringify({ digest, dockerfile, args: Object.entries(args).sort() })) }
}

/** The context as a tar stream, for `POST /build`. */
export const tarContext = (context: string, entries: ReadonlyArray<ContextEntry>): Readable => {
  const p = pack()
  void (async () => {
    try {
      for (const e of entries) {
        if (e.type === "directory") p.entry({ name: e.path, type: "directory", mode: e.mode })
        else if (e.type === "symlink") p.entry({ name: e.path, type: "symlink", linkname: e.target!, mode: e.mode })
        else {
          await new Promise<void>((resolve, reject) => {
            const entry = p.entry({ name: e.path, type: "file", mode: e.mode, size: e.size }, (err) => (err ? reject(err) : resolve()))
            createReadStream(join(context, e.path)).on("error", reject).pipe(entry)
          })
        }
      }
      p.finalize()
    } catch (err) {
      p.destroy(err as Error)
    }
  })()
  return p as unknown as Readable
}
