/** Observes `<BOTTLE_HOME>/state/*`: each bottle's state dir, its metadata and `.preserve` marker. */
import { FileSystem } from "@effect/platform"
import { Effect, Either, Schema } from "effect"
import { bottleNameProblem } from "../resources/names.js"
import type { IgnoredStateEntry, ObservedStateDir, Source, StateSnapshot } from "../resources/observed.js"

const Metadata = Schema.Struct({
  name: Schema.optional(Schema.String),
  backend: Schema.optional(Schema.String),
  set: Schema.optional(Schema.String),
  specHash: Schema.optional(Schema.String),
  createdAt: Schema.optional(Schema.String)
})

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
      const raw = yield* Effect.either(fs.readFileString(`${path}/metadata.json`))
      const metadata = Either.isRight(raw)
        ? Either.getOrUndefined(Schema.decodeUnknownEither(Schema.parseJson(Metadata))(raw.right))
        : undefined
      dirs.push({ name, path, metadata, preserve: yield* present(`${path}/.preserve`) })
    }
    return { root, dirs, ignored } satisfies StateSnapshot
  })

export const stateSource = (root: string): Effect.Effect<Source<StateSnapshot>, never, FileSystem.FileSystem> =>
  observeState(root).pipe(
    Effect.map((value): Source<StateSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchAll((e) => Effect.succeed<Source<StateSnapshot>>({ _tag: "Failed", source: "state dirs", error: `cannot list ${root}: ${e.message}` }))
  )
