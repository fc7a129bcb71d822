/**
 * Observes `<BOTTLE_HOME>/state/*`: each bottle's state dir, its metadata and
 * `.preserve` marker. Files here may be hostile: metadata is read only as a
 * regular file, bounded, and only the fields bottle needs are taken.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { readBoundedFile } from "../resources/hostPaths.js"
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

export const observeState = (root: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    if (!(yield* fs.exists(root))) return { root, dirs: [], ignored: [] } satisfies StateSnapshot
    const entries = (yield* fs.readDirectory(root)).sort()
    const dirs: Array<ObservedStateDir> = []
    const ignored: Array<IgnoredStateEntry> = []
    /** True for any entry at the path: a file, a directory, or a symlink, even a dangling one. */
    const present = (p: string) =>
      Effect.zipWith(Effect.either(fs.stat(p)), Effect.either(fs.readLink(p)), (s, l) => Either.isRight(s) || Either.isRight(l))
    for (const name of entries) {
      const path = `${root}/${name}`
      if (name.startsWith(".")) { ignored.push({ name, reason: "hidden entry" }); continue }
      const problem = bottleNameProblem(name)
      if (problem !== undefined) { ignored.push({ name, reason: "not a bottle name" }); continue }
      // Never follow a symlink out of the state root: such an entry is not ours to judge.
      if (Either.isRight(yield* Effect.either(fs.readLink(path)))) { ignored.push({ name, reason: "a symlink, not a directory" }); continue }
      const info = yield* Effect.either(fs.stat(path))
      if (Either.isLeft(info)) { ignored.push({ name, reason: "unreadable" }); continue }
      if (info.right.type !== "Directory") { ignored.push({ name, reason: "not a directory" }); continue }
      const raw = yield* Effect.either(readBoundedFile(`${path}/metadata.json`, MAX_METADATA_BYTES))
      const metadata = Either.isRight(raw) ? readMetadata(raw.right.toString("utf8")) : undefined
      const verdict = yield* Effect.either(readBoundedFile(`${path}/verify.json`, MAX_METADATA_BYTES))
      dirs.push({ name, path, metadata, preserve: yield* present(`${path}/.preserve`), verdict: Either.isRight(verdict) ? readVerdict(verdict.right.toString("utf8")) : undefined })
    }
    return { root, dirs, ignored } satisfies StateSnapshot
  })

export const stateSource = (root: string): Effect.Effect<Source<StateSnapshot>, never, FileSystem.FileSystem> =>
  observeState(root).pipe(
    Effect.map((value): Source<StateSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchAll((e) => Effect.succeed<Source<StateSnapshot>>({ _tag: "Failed", source: "state dirs", error: `cannot list ${root}: ${e.message}` }))
  )
