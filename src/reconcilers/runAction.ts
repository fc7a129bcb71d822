/**
 * How each action is carried out on the live backends. No decisions about
 * what to do: only how, and which errors mean "already converged".
 */
import { chmod, lstat, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { DockerEngine, type DockerError } from "../observers/DockerEngine.js"
import type { Endpoint } from "../observers/endpoint.js"
import { afterLastRun, awaitLogLine, buildImage, execCapture, type RunStart } from "../observers/DockerStreams.js"
import { isEventLine } from "../resources/egressAddon.js"
import { KubeApi, refOf, type KubeApiShape, type KubeError } from "../observers/KubeApi.js"
import { Smolvm, type SmolvmError } from "../observers/Smolvm.js"
import { Applyset } from "../resources/realiseKubernetes.js"
import { readMetadata } from "../observers/stateObserver.js"
import { readBoundedFile } from "../resources/hostPaths.js"
import { probeImageFor } from "../resources/probeScript.js"
import { Bottle as BL, MANAGED_BY } from "../resources/labels.js"
import { bottleNameProblem, type Names } from "../resources/names.js"
import { GENERATED_FILES, proxyEnv, type ReadySpec, type StateDirSpec } from "../resources/realise.js"
import { EGRESS_IP_LABEL } from "../resources/realiseSmolmachines.js"
import { Action, type AwaitReady } from "./actions.js"
import { certificateOf, hostCaBundle } from "./bottleCa.js"
import type { RunAction } from "./execute.js"
import { ProbeError, verdictText, verifyFence, type Verdict } from "./verify.js"
import { byText } from "../resources/order.js"

/** A state-dir operation refused or failed. */
export class StateDirError extends Data.TaggedError("StateDirError")<{ readonly path: string; readonly detail: string }> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/** A fence that did not hold: the agent was stopped. */
export class FenceBroken extends Data.TaggedError("FenceBroken")<{ readonly bottle: string; readonly detail: string }> {
  override get message(): string {
    return `${this.detail}; the agent was stopped, not left running unfenced`
  }
}

/** A Kubernetes action refused before it was sent (a name taken by someone else's object, no cluster configured). */
export class KubeRefused extends Data.TaggedError("KubeRefused")<{ readonly resource: string; readonly detail: string }> {
  override get message(): string {
    return `${this.resource}: ${this.detail}`
  }
}

type RunError = DockerError | SmolvmError | StateDirError | ProbeError | FenceBroken | KubeError | KubeRefused

export interface RunnerOptions {
  /** Progress of image pulls and similar, for the person watching. */
  readonly log: (line: string) => void
  readonly names: Names
  /** The image probes run in when the bottle's own proxy image has no python (pipelock, or no proxy). */
  readonly probeImage: string
  /** The Engine runs on this host (a unix socket): verification also listens on the host's own addresses. */
  readonly localEngine: boolean
  /** Seconds a proxy may take to answer; past that its start fails and its agent is not started. */
  readonly readySeconds: number
  /** The Engine, for what streams (builds). */
  readonly endpoint: Endpoint
}

/** Where a bottle's last verification is kept (the agent cannot write there: only workspace/ is mounted read-write). */
export const VERIFY_FILE = "verify.json"

export const makeRunner = (opts: RunnerOptions) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    const smolvm = yield* Smolvm
    const fs = yield* FileSystem.FileSystem
    const kube = yield* Effect.serviceOption(KubeApi)

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
            Effect.catchIf((e) => /already exists|already connected/i.test(e.detail), () => Effect.void),
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
        // Each subnet in turn: one the Engine finds taken (a network made meanwhile, a bridge a crashed engine left) gives way to the next.
        const podman = a.spec.podman
        const create = (subnet: string | undefined) =>
          podman !== undefined
            ? docker.createPodmanNetwork(subnet !== undefined ? { ...podman, subnets: [{ subnet }] } : podman)
            : docker.createNetwork(subnet !== undefined ? { ...a.spec.body, IPAM: { Driver: "default", Config: [{ Subnet: subnet }] } } : a.spec.body)
        const tries: ReadonlyArray<string | undefined> = a.subnets.length === 0 ? [undefined] : a.subnets
        let made = yield* Effect.either(create(tries[0]))
        for (const subnet of tries.slice(1)) {
          if (Either.isRight(made) || !/overlap|address.*(in use|already)|conflicts with/i.test(made.left.detail)) break
          opts.log(`${name}: subnet ${tries[tries.indexOf(subnet) - 1]} is taken on the Engine; trying ${subnet}`)
          made = yield* Effect.either(create(subnet))
        }
        if (Either.isLeft(made) && made.left.reason !== "Conflict") return yield* Effect.fail(made.left)
        const ours = (yield* docker.listNetworks({ name: [name] }))
          .filter((n) => n.Name === name && n.Labels?.[BL.specHash] === hash)
          .sort((x, y) => byText(x.Id, y.Id))
        if (Either.isLeft(made) && ours.length === 0) return yield* Effect.fail(made.left)
        yield* Effect.forEach(ours.slice(1), (n) => docker.removeNetwork(n.Id).pipe(Effect.ignore), { discard: true })
        return Either.isRight(made) ? `id ${made.right.slice(0, 12)}` : "already there"
      })

    const ensureStateDir = (a: Extract<Action, { _tag: "EnsureStateDir" }>) =>
      Effect.tryPromise({ try: () => writeStateDir(a.spec, opts.names.prefix), catch: (e) => (e instanceof StateDirError ? e : new StateDirError({ path: a.spec.path, detail: String((e as Error)?.message ?? e) })) })

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
        // Everything else first, its metadata.json last, then the dir: a removal cut off part way (the command
        // killed, a disk error) leaves a dir that still says it is bottle's, which the next run finishes, not one
        // that is "unknown, left alone" for ever. (A recursive remove takes small files, metadata.json among
        // them, long before a big workspace.)
        const entries = yield* fs.readDirectory(path).pipe(Effect.mapError(err))
        yield* Effect.forEach(entries.filter((e) => e !== "metadata.json"), (e) => fs.remove(`${path}/${e}`, { recursive: true }), { concurrency: 4, discard: true }).pipe(Effect.mapError(err))
        yield* fs.remove(path, { recursive: true }).pipe(Effect.mapError(err))
      })

    const createMachine = (a: Extract<Action, { _tag: "CreateMachine" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        let ip: string | undefined
        if (spec.egress !== undefined) {
          const { bundleContainer, bundleNetwork } = spec.egress
          const bundles = yield* docker.listContainers({ name: [bundleContainer] })
          const bundle = bundles.find((c) => c.Names.some((n) => n.replace(/^\//, "") === bundleContainer))
          ip = bundle?.NetworkSettings?.Networks?.[bundleNetwork]?.IPAddress
          if (!ip) {
            return yield* Effect.fail(new StateDirError({ path: bundleContainer, detail: `sidecar bundle has no address on ${bundleNetwork}; refusing to start a machine without its egress fence` }))
          }
        }
        yield* smolvm.create(spec, { allowCidr: ip !== undefined ? `${ip}/32` : undefined, env: ip !== undefined ? proxyEnv(ip) : [], labels: ip !== undefined ? { [EGRESS_IP_LABEL]: ip } : {} }).pipe(
          Effect.catchIf((e) => e.reason === "AlreadyExists", (e) =>
            smolvm.list.pipe(Effect.flatMap((ms) => ms.some((m) => m.name === spec.name && m.labels[BL.specHash] === spec.hash) ? Effect.void : Effect.fail(e))))
        )
        return ip !== undefined ? `egress limited to ${ip}/32` : "no network"
      })


    /** Where a proxy's current or next run begins in its log (see afterLastRun), from an inspection. */
    const lastRunEnd = (target: string): Effect.Effect<Either.Either<RunStart, DockerError | ProbeError>, DockerError> =>
      docker.inspectContainer(target).pipe(
        Effect.map((c) => Either.fromNullable(afterLastRun(c.State?.FinishedAt), () => new ProbeError({ target, detail: "the Engine gave no time its last run ended" }))),
        Effect.catchIf((e) => e.reason !== "NotFound", (e) => Effect.succeed(Either.left(e)))
      )

    /**
     * Waits until a proxy answers, for up to the ready timeout; returns how long that took. A proxy that
     * says so in its log is heard there, in what it wrote since its last run ended (`since`, read before a
     * fresh start: a line of an earlier run is not this one's). One this action started (`fresh`) is
     * followed: if it stops first, or says nothing in time, it has failed. One left running by an earlier
     * run is read as far as it has written; where its line is not (still starting, or gone from a log its
     * logging driver trims), it is asked from inside, as is any proxy without such a line or whose log or
     * times cannot be read (an exec in its own image, no container of its own).
     */
    const becomeReady = (target: string, ready: ReadySpec, fresh: boolean, run: Either.Either<RunStart, DockerError | ProbeError>) =>
      Effect.gen(function* () {
        const started = Date.now()
        const bound = opts.readySeconds * 1000
        if (ready.event !== undefined) {
          const event = ready.event
          const heard = yield* Effect.either(run.pipe(Effect.flatMap(({ since, afterMs }) =>
            awaitLogLine(opts.endpoint, target, { since, follow: fresh }, (line) => isEventLine(line, event, afterMs), bound))))
          if (Either.isRight(heard)) {
            const { outcome, last } = heard.right
            if (outcome === "seen") return Date.now() - started
            if (fresh) {
              // A proxy restarted by its policy says the same again: each line once.
              const said = [...new Set(last.filter((l) => l.trim() !== ""))].slice(-2).join(" | ").slice(0, 300)
              return yield* Effect.fail(new ProbeError({
                target,
                detail: outcome === "ended"
                  ? `stopped before it answered on port ${ready.port}${said !== "" ? ` (${said})` : ""}`
                  : `no '${event}' line in its log within ${opts.readySeconds}s: it is not answering on port ${ready.port} as bottle's proxy${said !== "" ? ` (it said: ${said})` : ""}`
              }))
            }
          } else {
            if (heard.left._tag === "DockerError" && heard.left.reason === "NotFound") return yield* Effect.fail(heard.left)
            opts.log(`${target}: ${heard.left._tag === "ProbeError" ? "where its run begins in its log is unknown" : "its log cannot be read"} (${heard.left.message.slice(0, 200)}); asking it from inside`)
          }
        }
        for (;;) {
          const left = bound - (Date.now() - started)
          const r = yield* execCapture(opts.endpoint, target, ready.check, Math.max(left, 1000), 30_000)
          if (r.code === 0) return Date.now() - started
          if (!ready.repeat || left <= 0) {
            const why = r.stdout.trim().split("\n").pop() || r.stderr.trim().split("\n").pop() || `exit ${r.code}`
            return yield* Effect.fail(new ProbeError({ target, detail: `nothing answered on port ${ready.port} within ${opts.readySeconds}s (${why.slice(0, 200)})` }))
          }
          yield* Effect.sleep("100 millis")
        }
      })

    /** Waits until a proxy left running answers (it may have been started moments ago by a run that was killed). */
    const awaitProxy = (w: AwaitReady | undefined) =>
      w === undefined ? Effect.void : lastRunEnd(w.target).pipe(Effect.flatMap((run) => becomeReady(w.target, w.ready, false, run)), Effect.asVoid)

    /**
     * Starts a container. One the Engine can no longer start because of its own leftover state
     * (after dockerd was killed: "task … already exists") is made anew from its spec. A proxy is
     * started only once it answers: what waits on this start (its agent) must never run before.
     */
    const startContainer = (a: Extract<Action, { _tag: "StartContainer" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        yield* awaitProxy(a.awaitReady)
        // Read before the start: after it, the end of the last run is this one's beginning.
        const event = spec.ready?.event !== undefined
        let run: Either.Either<RunStart, DockerError | ProbeError> = event ? yield* lastRunEnd(a.resource) : Either.right({ since: "0", afterMs: 0 })
        const started = yield* Effect.either(docker.startContainer(a.resource))
        let note: string | undefined
        if (Either.isLeft(started)) {
          if (!/task .* already exists|already exists in task|OCI runtime create failed: .*exists/i.test(started.left.detail)) return yield* Effect.fail(started.left)
          opts.log(`${a.resource}: the Engine kept a leftover task from a crash; making the container anew`)
          yield* docker.removeContainer(a.resource).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void))
          yield* createContainer(Action.CreateContainer({ ...a, id: `${a.id}:repair`, cause: "engine wreckage", spec, replaces: true }))
          // Made anew, or taken over from a same-spec container made under the name meanwhile (which may have run).
          if (event) run = yield* lastRunEnd(a.resource)
          yield* docker.startContainer(a.resource)
          note = "made anew: the Engine kept a leftover task"
        }
        if (spec.ready !== undefined) {
          const ms = yield* becomeReady(a.resource, spec.ready, true, run)
          note = [note, `answering after ${ms} ms`].filter(Boolean).join("; ")
        }
        return note
      })

    /** Builds an agent image from its context, if the context is still what the plan saw (its hash is the image's tag). */
    const buildAgentImage = (a: Extract<Action, { _tag: "BuildImage" }>) =>
      Effect.gen(function* () {
        const { build } = a
        // Loaded only for a build: the tar and .dockerignore libraries are no part of other commands.
        const ctx = yield* Effect.promise(() => import("../resources/buildContext.js"))
        const read = yield* Effect.tryPromise({
          try: () => ctx.readContext(build.context, build.dockerfile, build.args),
          catch: (e) => new StateDirError({ path: build.context, detail: e instanceof Error ? e.message : String(e) })
        })
        if (read.hash !== build.hash) {
          return yield* Effect.fail(new StateDirError({ path: build.context, detail: "changed since the spec was read: run the command again" }))
        }
        opts.log(`building ${a.resource} from ${build.context}`)
        let last = 0
        yield* buildImage(opts.endpoint, a.resource, ctx.tarContext(build.context, read.entries), { dockerfile: build.dockerfile, args: build.args }, (line) => {
          const now = Date.now()
          if (now - last > 1000 || /^Step \d+\/\d+/.test(line)) { last = now; opts.log(`  ${line}`) }
        }, 30 * 60 * 1000)
        return `tagged ${a.resource}`
      })

    const verifyBottle = (a: Extract<Action, { _tag: "VerifyBottle" }>) =>
      Effect.gen(function* () {
        const { spec } = a
        const verdict = yield* verifyFence({ names: opts.names, bottle: spec.bottle, image: probeImageFor(spec.proxyImage, opts.probeImage), target: spec.target }, spec, opts.localEngine).pipe(
          Effect.provideService(DockerEngine, docker)
        )
        yield* Effect.tryPromise(() => writeVerdict(spec.stateDir, verdict)).pipe(Effect.ignore)
        if (!verdict.ok) {
          // Never left running unfenced.
          yield* docker.stopContainer(spec.target, 0).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void))
          return yield* Effect.fail(new FenceBroken({ bottle: spec.bottle, detail: verdictText(verdict) }))
        }
        return verdictText(verdict)
      })

    const withKube = <A>(resource: string, f: (api: KubeApiShape) => Effect.Effect<A, KubeError | KubeRefused>) =>
      Option.match(kube, {
        onNone: () => Effect.fail(new KubeRefused({ resource, detail: "no Kubernetes cluster is configured for this command" })),
        onSome: f
      })

    /** Server-side apply; a create first makes sure the name was not taken since, by an object not of this set. */
    const applyObject = (a: Extract<Action, { _tag: "ApplyObject" }>) =>
      withKube(a.resource, (api) =>
        Effect.gen(function* () {
          const m = a.manifest
          const ref = refOf(m.apiVersion, m.kind)
          if (ref === undefined) return yield* Effect.fail(new KubeRefused({ resource: a.resource, detail: `bottle does not apply ${m.apiVersion} ${m.kind}` }))
          if (a.create) {
            const live = yield* api.get(ref, m.metadata.namespace, m.metadata.name).pipe(
              Effect.map(Option.some),
              Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(Option.none()))
            )
            const mark = (l: Readonly<Record<string, string>> | null | undefined) => l?.[Applyset.partOf] ?? l?.[Applyset.id]
            const want = mark(m.metadata.labels)
            if (Option.isSome(live) && mark(live.value.metadata.labels) !== want) {
              return yield* Effect.fail(new KubeRefused({ resource: a.resource, detail: "exists and is not bottle's (it is not of this set's ApplySet); bottle leaves it alone: rename the bottle, or remove it yourself" }))
            }
          }
          yield* api.apply(m)
        })
      )

    const deleteObject = (a: Extract<Action, { _tag: "DeleteObject" }>) =>
      withKube(a.resource, (api) => {
        const ref = refOf(a.apiVersion, a.objectKind)
        if (ref === undefined) return Effect.fail(new KubeRefused({ resource: a.resource, detail: `bottle does not delete ${a.apiVersion} ${a.objectKind}` }))
        return api.remove(ref, a.namespace, a.name, a.uid).pipe(
          // Already gone is success; one made anew under the name since it was observed is not the one bottle meant.
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void),
          Effect.catchIf((e) => e.reason === "Conflict", () => Effect.fail(new KubeRefused({ resource: a.resource, detail: "was made anew since it was observed (another UID); bottle leaves it alone" })))
        )
      })

    const run = (a: Action): Effect.Effect<string | void, RunError> => {
      switch (a._tag) {
        case "CreateNetwork": return createNetwork(a)
        case "RemoveNetwork": return gone(docker.removeNetwork(a.networkId))
        case "CreateContainer": return createContainer(a)
        case "StartContainer": return startContainer(a)
        case "RemoveContainer": return gone(docker.removeContainer(a.containerId))
        case "RemoveVolume": return gone(docker.removeVolume(a.resource))
        case "CreateMachine": return createMachine(a)
        case "StartMachine": return awaitProxy(a.awaitReady).pipe(Effect.zipRight(smolvm.start(a.resource)))
        case "StopMachine": return gone(smolvm.stop(a.resource))
        case "DeleteMachine": return gone(smolvm.delete(a.resource))
        case "EnsureStateDir": return ensureStateDir(a)
        case "RemoveStateDir": return removeStateDir(a)
        case "VerifyBottle": return verifyBottle(a)
        case "BuildImage": return buildAgentImage(a)
        case "ApplyObject": return applyObject(a)
        case "DeleteObject": return deleteObject(a)
        case "Unchanged":
        case "Blocked":
          return Effect.void
      }
    }
    return run satisfies RunAction
  })

/**
 * Writes a state dir as the spec has it. Never through a symlink (one put
 * where a directory bottle writes goes would land the files, and the mounts,
 * elsewhere); never over a state dir another install (or the older tool, for
 * another prefix) wrote; directories bottle alone writes (`agent/`,
 * `egress/`) hold exactly the spec's files afterwards.
 */
export const writeStateDir = async (spec: StateDirSpec, prefix: string): Promise<void> => {
  const refuse = (path: string, detail: string): never => { throw new StateDirError({ path, detail }) }
  const kind = async (p: string) => lstat(p).then((s) => (s.isSymbolicLink() ? "symlink" : s.isDirectory() ? "dir" : "other"), () => "none")
  const root = spec.path
  const rootKind = await kind(root)
  if (rootKind === "symlink") refuse(root, "is a symlink; bottle will not write through it or mount it: move it away")
  if (rootKind === "other") refuse(root, "exists and is not a directory: move it away")
  const meta = await readBounded(`${root}/metadata.json`)
  const previous = meta !== undefined ? readMetadata(meta) : undefined
  if (previous?.managedBy === MANAGED_BY && previous.prefix !== undefined && previous.prefix !== prefix) {
    refuse(root, `was written by a bottle install with prefix '${previous.prefix}'; bottle will not take it over`)
  }
  await mkdir(root, { recursive: true, mode: 0o700 })
  for (const d of spec.dirs) {
    const p = `${root}/${d.path}`
    const k = await kind(p)
    if (k === "symlink" || k === "other") refuse(p, `is a ${k === "symlink" ? "symlink" : "file"} where bottle keeps a directory: move it away`)
    if (k === "none") await mkdir(p, { mode: d.mode })
    await chmod(p, d.mode)
  }
  // Whatever bottle alone writes and the spec no longer has goes (a removed skill, a file planted there).
  const generated = [
    ...(spec.ca ? [GENERATED_FILES.caKey, GENERATED_FILES.caCert, GENERATED_FILES.caBundle] : []),
    ...(spec.upstreamTrust.length > 0 ? [GENERATED_FILES.upstream] : [])
  ]
  const wanted = new Set([...Object.keys(spec.files), ...spec.dirs.map((d) => d.path), ...generated])
  const prune = async (rel: string): Promise<void> => {
    for (const e of await readdir(`${root}/${rel}`, { withFileTypes: true })) {
      const child = `${rel}/${e.name}`
      if (!wanted.has(child)) await rm(`${root}/${child}`, { recursive: true, force: true })
      else if (e.isDirectory()) await prune(child)
    }
  }
  for (const m of spec.managed) if ((await kind(`${root}/${m}`)) === "dir") await prune(m)
  /** Written whole, then renamed into place; a symlink where the file belongs is removed, never written through. */
  const writeFileAtomically = async (rel: string, content: string | Uint8Array, mode: number) => {
    const target = `${root}/${rel}`
    if ((await kind(target)) === "symlink") await rm(target)
    const tmp = `${target}.tmp-${process.pid}`
    await writeFile(tmp, content, { mode })
    await chmod(tmp, mode)
    await rename(tmp, target)
  }
  for (const [rel, f] of Object.entries(spec.files)) await writeFileAtomically(rel, f.content, f.mode)
  if (spec.ca) {
    // Made once and kept: a new CA at every apply would break what the agent already trusts.
    let ca = await readBounded(`${root}/${GENERATED_FILES.caKey}`)
    if (ca === undefined || certificateOf(ca) === undefined) {
      // node-forge is loaded only when a CA is made (once per bottle).
      const made = (await import("./bottleCaMake.js")).makeBottleCa(spec.bottle)
      ca = `${made.keyPem}${made.certPem}`
      await writeFileAtomically(GENERATED_FILES.caKey, ca, 0o600)
    }
    const cert = certificateOf(ca)!
    await writeFileAtomically(GENERATED_FILES.caCert, cert, 0o644)
    await writeFileAtomically(GENERATED_FILES.caBundle, `${hostCaBundle()}${cert}`, 0o644)
  }
  if (spec.upstreamTrust.length > 0) {
    await writeFileAtomically(GENERATED_FILES.upstream, `${hostCaBundle()}${spec.upstreamTrust.map((t) => (t.endsWith("\n") ? t : `${t}\n`)).join("")}`, 0o600)
  }
  let createdAt = new Date().toISOString()
  if (meta !== undefined) {
    try {
      const p = JSON.parse(meta) as { createdAt?: unknown }
      if (typeof p.createdAt === "string" && p.createdAt.length < 64) createdAt = p.createdAt
    } catch { /* rewritten below */ }
  }
  const tmp = `${root}/metadata.json.tmp-${process.pid}`
  await writeFile(tmp, `${JSON.stringify({ ...spec.metadata, createdAt }, null, 2)}\n`, { mode: 0o644 })
  await rename(tmp, `${root}/metadata.json`)
  // A `.preserve` marker is only ever added: one placed by hand must survive `preserve: false`.
  if (spec.preserve && (await kind(`${root}/.preserve`)) === "none") await writeFile(`${root}/.preserve`, "kept by bottle: spec says preserve: true\n")
}

/** Records a bottle's last verification in its state dir, for `bottle get`. */
export const writeVerdict = async (stateDir: string, verdict: Verdict): Promise<void> => {
  if ((await lstat(stateDir).catch(() => undefined))?.isDirectory() !== true) return
  const tmp = `${stateDir}/${VERIFY_FILE}.tmp-${process.pid}`
  await writeFile(tmp, `${JSON.stringify(verdict, null, 2)}\n`, { mode: 0o644 })
  await rename(tmp, `${stateDir}/${VERIFY_FILE}`)
}

/** A small file's text, or undefined when it is missing or not a regular file. */
const readBounded = (path: string): Promise<string | undefined> =>
  Effect.runPromise(readBoundedFile(path, 64 * 1024).pipe(Effect.map((b) => b.toString("utf8")), Effect.orElseSucceed(() => undefined)))
