/**
 * How each action is carried out on the live backends. No decisions about
 * what to do: only how, and which errors mean "already converged".
 */
import { FileSystem } from "@effect/platform"
import { Data, Effect, Either, Schedule } from "effect"
import { DockerEngine, type DockerError } from "../observers/DockerEngine.js"
import { Smolvm, type SmolvmError } from "../observers/Smolvm.js"
import { Bottle as BL } from "../resources/labels.js"
import { bottleNameProblem } from "../resources/names.js"
import { proxyEnv } from "../resources/realise.js"
import { EGRESS_IP_LABEL } from "../resources/realiseSmolmachines.js"
import type { Action } from "./actions.js"
import type { RunAction } from "./execute.js"

/** A state-dir operation refused or failed. */
export class StateDirError extends Data.TaggedError("StateDirError")<{ readonly path: string; readonly detail: string }> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

type RunError = DockerError | SmolvmError | StateDirError

export interface RunnerOptions {
  /** Progress of image pulls and similar, for the person watching. */
  readonly log: (line: string) => void
}

export const makeRunner = (opts: RunnerOptions) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    const smolvm = yield* Smolvm
    const fs = yield* FileSystem.FileSystem

    const fsError = (path: string) => (e: { readonly message: string }) => new StateDirError({ path, detail: e.message })
    const gone = <A, E extends { readonly _tag: string; readonly reason: string }>(eff: Effect.Effect<A, E>) =>
      eff.pipe(
        // A removal the Engine is still doing (for a run that was killed
        // mid-way) is asked again until it is over, for up to 30 s.
        Effect.retry({ while: (e) => e.reason === "InProgress", schedule: Schedule.spaced("250 millis"), times: 120 }),
        // Already gone is success: a re-run after a crash converges.
        Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void)
      )

    /** An existing container with our exact hash counts as created. */
    const existingWithHash = (name: string, hash: string) =>
      docker.listContainers({ name: [name] }).pipe(
        Effect.map((cs) => cs.find((c) => c.Names.some((n) => n.replace(/^\//, "") === name) && c.Labels?.[BL.specHash] === hash))
      )

    const createContainer = (a: Extract<Action, { _tag: "CreateContainer" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        const create = docker.createContainer(spec.name, spec.body)
        const id = yield* create.pipe(
          Effect.catchIf((e) => e.reason === "NotFound" && /image/i.test(e.detail), () =>
            Effect.gen(function* () {
              opts.log(`pulling ${spec.image} for ${spec.name}`)
              let last = 0
              yield* docker.pullImage(spec.image, (line) => {
                const now = Date.now()
                if (now - last > 1000) { last = now; opts.log(`  ${spec.image}: ${line}`) }
              })
              return yield* create
            })),
          Effect.catchIf((e) => e.reason === "Conflict", (e) =>
            existingWithHash(spec.name, spec.hash).pipe(
              Effect.flatMap((c) => (c !== undefined ? Effect.succeed(c.Id) : Effect.fail(e)))
            ))
        )
        for (const c of spec.connect) {
          yield* docker.connectNetwork(c.network, id, c.aliases).pipe(
            Effect.catchIf((e) => /already exists/i.test(e.detail), () => Effect.void),
            // Half-made is worse than absent: a container missing a network is removed, so the next run makes it whole.
            Effect.tapError(() => docker.removeContainer(id).pipe(Effect.ignore))
          )
        }
        return `id ${id.slice(0, 12)}`
      })

    /**
     * Creates the network, then looks once: a name conflict is success if ours (same spec hash) is
     * there, and copies of ours are folded into one. The Engine allows two networks of one name when
     * two creates overlap (a killed run's request landing after this run looked), and then refuses
     * to attach anything by that name. The copy kept is the same whoever folds: lowest id.
     */
    const createNetwork = (a: Extract<Action, { _tag: "CreateNetwork" }>) =>
      Effect.gen(function* () {
        const { name, hash } = a.spec
        const made = yield* Effect.either(docker.createNetwork(a.spec.body))
        if (Either.isLeft(made) && made.left.reason !== "Conflict") return yield* Effect.fail(made.left)
        const ours = (yield* docker.listNetworks({ name: [name] }))
          .filter((n) => n.Name === name && n.Labels?.[BL.specHash] === hash)
          .sort((x, y) => x.Id.localeCompare(y.Id))
        if (Either.isLeft(made) && ours.length === 0) return yield* Effect.fail(made.left)
        yield* Effect.forEach(ours.slice(1), (n) => docker.removeNetwork(n.Id).pipe(Effect.ignore), { discard: true })
        return Either.isRight(made) ? `id ${made.right.slice(0, 12)}` : "already there"
      })

    const ensureStateDir = (a: Extract<Action, { _tag: "EnsureStateDir" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        const err = fsError(spec.path)
        // Never write through a symlink (or into a file) put where the state dir goes: it would land, and be mounted, elsewhere.
        if (Either.isRight(yield* Effect.either(fs.readLink(spec.path)))) {
          return yield* Effect.fail(new StateDirError({ path: spec.path, detail: "is a symlink; bottle will not write through it or mount it: move it away" }))
        }
        const info = yield* Effect.either(fs.stat(spec.path))
        if (Either.isRight(info) && info.right.type !== "Directory") {
          return yield* Effect.fail(new StateDirError({ path: spec.path, detail: "exists and is not a directory: move it away" }))
        }
        yield* fs.makeDirectory(spec.path, { recursive: true }).pipe(Effect.mapError(err))
        for (const d of spec.dirs) yield* fs.makeDirectory(`${spec.path}/${d}`, { recursive: true }).pipe(Effect.mapError(err))
        const write = (rel: string, content: string) => {
          const target = `${spec.path}/${rel}`
          const tmp = `${target}.tmp-${process.pid}`
          return fs.writeFileString(tmp, content).pipe(Effect.zipRight(fs.rename(tmp, target)), Effect.mapError(err))
        }
        for (const [rel, content] of Object.entries(spec.files)) yield* write(rel, content)
        const previous = yield* Effect.either(fs.readFileString(`${spec.path}/metadata.json`))
        let createdAt = new Date().toISOString()
        if (Either.isRight(previous)) {
          try {
            const p = JSON.parse(previous.right) as { createdAt?: unknown }
            if (typeof p.createdAt === "string") createdAt = p.createdAt
          } catch { /* rewritten below */ }
        }
        yield* write("metadata.json", `${JSON.stringify({ ...spec.metadata, createdAt }, null, 2)}\n`)
        // A `.preserve` marker is only ever added: one placed by hand must survive `preserve: false`.
        if (spec.preserve && !(yield* fs.exists(`${spec.path}/.preserve`).pipe(Effect.mapError(err)))) {
          yield* fs.writeFileString(`${spec.path}/.preserve`, "kept by bottle: spec says preserve: true\n").pipe(Effect.mapError(err))
        }
      })

    const removeStateDir = (a: Extract<Action, { _tag: "RemoveStateDir" }>) =>
      Effect.gen(function* () {
        const path = `${a.root}/${a.name}`
        const refuse = (detail: string) => Effect.fail(new StateDirError({ path, detail }))
        if (bottleNameProblem(a.name) !== undefined || a.name.startsWith(".")) return yield* refuse("refusing: not a plain bottle name")
        const err = fsError(path)
        const link = yield* Effect.either(fs.readLink(path))
        if (Either.isRight(link)) return yield* refuse("refusing: it is a symlink")
        const exists = yield* fs.exists(path).pipe(Effect.mapError(err))
        if (!exists) return "already gone"
        const [root, real] = yield* Effect.all([fs.realPath(a.root), fs.realPath(path)]).pipe(Effect.mapError(err))
        if (real !== `${root}/${a.name}`) return yield* refuse(`refusing: resolves to ${real}, outside ${root}`)
        // Checked again now: a marker added since the plan was made still protects the dir.
        const marker = `${path}/.preserve`
        const preserved = Either.isRight(yield* Effect.either(fs.readLink(marker))) || (yield* fs.exists(marker).pipe(Effect.mapError(err)))
        if (preserved) return yield* refuse("refusing: a .preserve marker appeared")
        yield* fs.remove(path, { recursive: true }).pipe(Effect.mapError(err))
      })

    const createMachine = (a: Extract<Action, { _tag: "CreateMachine" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        const bundles = yield* docker.listContainers({ name: [spec.bundleContainer] })
        const bundle = bundles.find((c) => c.Names.some((n) => n.replace(/^\//, "") === spec.bundleContainer))
        const ip = bundle?.NetworkSettings?.Networks?.[spec.bundleNetwork]?.IPAddress
        if (!ip) {
          return yield* Effect.fail(new StateDirError({ path: spec.bundleContainer, detail: `sidecar bundle has no address on ${spec.bundleNetwork}; refusing to start a machine without its egress fence` }))
        }
        yield* smolvm.create(spec, { allowCidr: `${ip}/32`, env: proxyEnv(ip), labels: { [EGRESS_IP_LABEL]: ip } }).pipe(
          Effect.catchIf((e) => e.reason === "AlreadyExists", (e) =>
            smolvm.list.pipe(Effect.flatMap((ms) => ms.some((m) => m.name === spec.name && m.labels[BL.specHash] === spec.hash) ? Effect.void : Effect.fail(e))))
        )
        return `egress limited to ${ip}/32`
      })

    const run = (a: Action): Effect.Effect<string | void, RunError> => {
      switch (a._tag) {
        case "CreateNetwork": return createNetwork(a)
        case "RemoveNetwork": return gone(docker.removeNetwork(a.networkId))
        case "CreateContainer": return createContainer(a)
        case "StartContainer": return docker.startContainer(a.resource)
        case "RemoveContainer": return gone(docker.removeContainer(a.containerId))
        case "RemoveVolume": return gone(docker.removeVolume(a.resource))
        case "CreateMachine": return createMachine(a)
        case "StartMachine": return smolvm.start(a.resource)
        case "StopMachine": return gone(smolvm.stop(a.resource))
        case "DeleteMachine": return gone(smolvm.delete(a.resource))
        case "EnsureStateDir": return ensureStateDir(a)
        case "RemoveStateDir": return removeStateDir(a)
        case "Unchanged":
        case "Blocked":
          return Effect.void
      }
    }
    return run satisfies RunAction
  })
