/**
 * Observes `<BOTTLE_HOME>/state/*`: each bottle's state dir, its metadata and
 * `.preserve` marker. Files here may be hostile: metadata is read only as a
 * regular file, bounded, and only the fields bottle needs are taken.
 */
import { accessSync, lstatSync, readdirSync, statSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { readBoundedSync } from "../resources/hostPaths.js"
import { bottleNameProblem } from "../resources/names.js"
import type { IgnoredStateEntry, ObservedStateDir, Source, StateDirMetadata, StateSnapshot } from "../resources/observed.js"

const str = Schema.optional(Schema.String)
/** bottle's own metadata.json. */
const Metadata = Schema.Struct({ managedBy: str, prefix: str, name: str, backend: str, set: str, specHash: str, createdAt: str, namespace: str })
/** The older tool's metadata.json (exact types unknown: only strings are taken). */
const LegacyMetadata = Schema.Struct({ compose_project: str, identity: str, agent_name: str, backend: str })

const Verdict = Schema.Struct({
  ok: Schema.Boolean,
  at: Schema.String,
  properties: Schema.Array(Schema.Struct({ name: Schema.String, ok: Schema.Boolean }))
})
/** A bottle's last verification, as `verify.json` records it; undefined when missing or unreadable. */
const readVerdict = (text: string) => {
  try {
    const v = Schema.decodeUnknownSync(Verdict)(JSON.parse(text))
    return { ok: v.ok, at: v.at, failed: v.properties.filter((p) => !p.ok).map((p) => p.name) }
  } catch {
    return undefined
  }
}

/** The most of a metadata.json bottle reads: its own are a few hundred bytes. */
const MAX_METADATA_BYTES = 64 * 1024

/** What a metadata.json says about who wrote it; undefined when it is missing, unreadable or neither bottle's nor the older tool's. */
export const readMetadata = (text: string): StateDirMetadata | undefined => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined
  }
  const ours = Either.getOrUndefined(Schema.decodeUnknownEither(Metadata)(json))
  if (ours !== undefined && ours.managedBy !== undefined) return ours
  const legacy = Either.getOrUndefined(Schema.decodeUnknownEither(LegacyMetadata)(json))
  if (legacy?.compose_project !== undefined) {
    return { legacyProject: legacy.compose_project, ...(legacy.backend !== undefined ? { backend: legacy.backend } : {}) }
  }
  // bottle before it recorded its prefix: its fields, but whose it is cannot be told.
  return ours !== undefined && ours.specHash !== undefined ? ours : undefined
}

/** The entry's own status (a symlink is not followed); undefined when there is none or it cannot be read. */
const lstatOf = (path: string) => {
  try {
    return lstatSync(path)
  } catch {
    return undefined
  }
}

/**
 * True for any entry at the path: a file, a directory, or a symlink, even a
 * dangling one; and true when it cannot be told (a `.preserve` that cannot
 * be looked at protects its dir: only "there is none" says it is not there).
 */
const present = (path: string) => {
  try {
    lstatSync(path)
    return true
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return code !== "ENOENT" && code !== "ENOTDIR"
  }
}

/**
 * Reads the state root with node's synchronous calls: each entry takes a
 * few small ones, and each call to node's promise API would be a trip
 * through its thread pool (a no-op apply of 20 bottles made 320 of them).
 * Throws when the root exists but cannot be listed.
 */
export const readState = (root: string): StateSnapshot => {
  try {
    accessSync(root)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { root, dirs: [], ignored: [] }
    throw e
  }
  const entries = readdirSync(root).sort()
  const dirs: Array<ObservedStateDir> = []
  const ignored: Array<IgnoredStateEntry> = []
  for (const name of entries) {
    const path = `${root}/${name}`
    if (name.startsWith(".")) { ignored.push({ name, reason: "hidden entry" }); continue }
    const problem = bottleNameProblem(name)
    if (problem !== undefined) { ignored.push({ name, reason: "not a bottle name" }); continue }
    // Never follow a symlink out of the state root: such an entry is not ours to judge.
    if (lstatOf(path)?.isSymbolicLink() === true) { ignored.push({ name, reason: "a symlink, not a directory" }); continue }
    let info
    try {
      info = statSync(path)
    } catch {
      ignored.push({ name, reason: "unreadable" })
      continue
    }
    if (!info.isDirectory()) { ignored.push({ name, reason: "not a directory" }); continue }
    const text = (file: string) => {
      try {
        return readBoundedSync(`${path}/${file}`, MAX_METADATA_BYTES).toString("utf8")
      } catch {
        return undefined
      }
    }
    const raw = text("metadata.json")
    const verdict = text("verify.json")
    dirs.push({
      name,
      path,
      metadata: raw !== undefined ? readMetadata(raw) : undefined,
      preserve: present(`${path}/.preserve`),
      verdict: verdict !== undefined ? readVerdict(verdict) : undefined
    })
  }
  return { root, dirs, ignored }
}

/** The state root as a Source: one that cannot be listed is Failed, never empty. */
export const stateSource = (root: string): Effect.Effect<Source<StateSnapshot>> =>
  Effect.try({ try: () => readState(root), catch: (e) => (e instanceof Error ? e.message : String(e)) }).pipe(
    Effect.map((value): Source<StateSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchAll((message) => Effect.succeed<Source<StateSnapshot>>({ _tag: "Failed", source: "state dirs", error: `cannot list ${root}: ${message}` }))
  )
