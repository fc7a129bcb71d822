/**
 * The state-dir guards of the runner, checked again at execution time:
 * whatever the plan says, a state dir is never removed through a symlink,
 * outside the state root, under a name that is not a plain bottle name, or
 * once a `.preserve` marker (of any kind) is there.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DockerEngine, DockerError } from "../src/observers/DockerEngine.js"
import { Smolvm, SmolvmError } from "../src/observers/Smolvm.js"
import { Action } from "../src/reconcilers/actions.js"
import { makeRunner } from "../src/reconcilers/runAction.js"
import { makeNames } from "../src/resources/names.js"

const runnerOptions = { log: () => undefined, names: makeNames("claude-bottle"), probeImage: "probe:1", localEngine: true, readySeconds: 5, endpoint: { display: "unix:///nonexistent", socketPath: "/nonexistent", baseUrl: "http://docker" } }

// The state-dir actions must not touch either backend.
const NoBackends = Layer.mergeAll(
  Layer.succeed(DockerEngine, new Proxy({}, { get: () => { throw new Error("docker must not be used") } }) as never),
  Layer.succeed(Smolvm, new Proxy({}, { get: () => { throw new Error("smolvm must not be used") } }) as never)
)

/** Runs one action against stand-ins for the backends; using anything a stand-in lacks is an error. */
const strict = (what: string, impl: object) =>
  new Proxy(impl, { get: (t, k) => { if (k in t) return t[k as keyof typeof t]; throw new Error(`${what}.${String(k)} must not be used`) } }) as never
const runWith = (engine: object, smolvm: object, action: Action) =>
  Effect.gen(function* () {
    const run = yield* makeRunner(runnerOptions)
    return yield* Effect.either(run(action))
  }).pipe(Effect.provide(Layer.mergeAll(Layer.succeed(DockerEngine, strict("docker", engine)), Layer.succeed(Smolvm, strict("smolvm", smolvm)), NodeContext.layer)))
const createInternal = Action.CreateNetwork({
  id: "n", bottle: "b", resource: "claude-bottle-b_internal", cause: "test", after: [], replaces: false, subnets: [],
  spec: { bottle: "b", name: "claude-bottle-b_internal", role: "internal", hash: "h", facts: { driver: "bridge", internal: true, options: {} }, body: {} }
})

const remove = (root: string, name: string) =>
  Effect.gen(function* () {
    const run = yield* makeRunner(runnerOptions)
    return yield* Effect.either(run(Action.RemoveStateDir({ id: "x", bottle: name, resource: join(root, name), cause: "test", after: [], root, name })))
  }).pipe(Effect.provide(Layer.merge(NoBackends, NodeContext.layer)))

const setup = () => {
  const root = mkdtempSync(join(tmpdir(), "bottle-state-"))
  const outside = mkdtempSync(join(tmpdir(), "bottle-outside-"))
  writeFileSync(join(outside, "precious"), "keep")
  return { root, outside }
}

describe("RemoveStateDir at execution time", () => {
  it.effect("removes a plain orphan dir", () =>
    Effect.gen(function* () {
      const { root } = setup()
      mkdirSync(join(root, "orphan", "workspace"), { recursive: true })
      expect(Either.isRight(yield* remove(root, "orphan"))).toBe(true)
      expect(existsSync(join(root, "orphan"))).toBe(false)
    }))

  it.effect("counts an already-gone dir as done", () =>
    Effect.gen(function* () {
      const { root } = setup()
      expect(yield* remove(root, "never-was")).toEqual(Either.right("already gone"))
    }))

  for (const kind of ["file", "directory", "dangling symlink"] as const) {
    it.effect(`refuses when a .preserve ${kind} appeared after planning`, () =>
      Effect.gen(function* () {
        const { root } = setup()
        const d = join(root, "late")
        mkdirSync(d)
        if (kind === "file") writeFileSync(join(d, ".preserve"), "")
        if (kind === "directory") mkdirSync(join(d, ".preserve"))
        if (kind === "dangling symlink") symlinkSync("/nonexistent", join(d, ".preserve"))
        const r = yield* remove(root, "late")
        expect(Either.isLeft(r) && r.left.message).toContain("a .preserve marker appeared")
        expect(existsSync(d)).toBe(true)
      }))
  }

  it.effect("refuses a state dir that is a symlink out of the root", () =>
    Effect.gen(function* () {
      const { root, outside } = setup()
      symlinkSync(outside, join(root, "escape"))
      const r = yield* remove(root, "escape")
      expect(Either.isLeft(r) && r.left.message).toContain("symlink")
      expect(existsSync(join(outside, "precious"))).toBe(true)
    }))

  it.effect("removes symlinks inside a state dir without following them", () =>
    Effect.gen(function* () {
      const { root, outside } = setup()
      const d = join(root, "linked")
      mkdirSync(join(d, "workspace"), { recursive: true })
      symlinkSync(outside, join(d, "workspace", "out"))
      symlinkSync(join(outside, "precious"), join(d, "precious-link"))
      expect(Either.isRight(yield* remove(root, "linked"))).toBe(true)
      expect(existsSync(d)).toBe(false)
      expect(existsSync(join(outside, "precious"))).toBe(true)
    }))

  for (const name of ["..", ".", "", "a/b", ".hidden", "../outside", "Name With Spaces"]) {
    it.effect(`refuses the id ${JSON.stringify(name)}`, () =>
      Effect.gen(function* () {
        const { root } = setup()
        const r = yield* remove(join(root, "state"), name)
        expect(Either.isLeft(r) && r.left.message).toContain("not a plain bottle name")
        expect(existsSync(root)).toBe(true)
      }))
  }
})

describe("CreateNetwork at execution time", () => {
  const conflict = new DockerError({ reason: "Conflict", endpoint: "e", method: "POST", path: "/networks/create", status: 409, detail: "network with name claude-bottle-b_internal already exists" })
  const withNetworks = (hashes: ReadonlyArray<string>) => ({
    createNetwork: () => Effect.fail(conflict),
    listNetworks: () => Effect.succeed(hashes.map((h, i) => ({ Id: `n${i}`, Name: "claude-bottle-b_internal", Labels: { "dev.bottle.spec-hash": h } }))),
    removeNetwork: () => Effect.die("nothing to fold")
  })

  it.effect("a name conflict with ours already there is done", () =>
    Effect.gen(function* () {
      const r = yield* runWith(withNetworks(["h"]), {}, createInternal)
      expect(Either.isRight(r) ? r.right : r.left.message).toBe("already there")
    }))

  it.effect("a name conflict with only someone else's network there is the failure", () =>
    Effect.gen(function* () {
      const r = yield* runWith(withNetworks(["other"]), {}, createInternal)
      expect(Either.isLeft(r) ? r.left.message : "done").toContain("already exists")
    }))
})

describe("RemoveContainer at execution time", () => {
  const inProgress = new DockerError({
    reason: "InProgress", endpoint: "unix:///var/run/docker.sock", method: "DELETE", path: "/containers/c1", status: 409,
    detail: "removal of container c1 is already in progress"
  })
  const notFound = new DockerError({ reason: "NotFound", endpoint: "unix:///var/run/docker.sock", method: "DELETE", path: "/containers/c1", status: 404, detail: "No such container: c1" })
  const removeWith = (answers: Array<DockerError | "ok">) => {
    let calls = 0
    const engine = {
      removeContainer: () => Effect.suspend(() => {
        const a = answers[Math.min(calls++, answers.length - 1)]!
        return a === "ok" ? Effect.void : Effect.fail(a)
      })
    }
    return Effect.gen(function* () {
      const result = yield* runWith(engine, {}, Action.RemoveContainer({ id: "c", bottle: "b", resource: "claude-bottle-b-agent-1", cause: "test", after: [], containerId: "c1", replaced: false }))
      return { result, calls }
    })
  }

  it.live("a removal still in progress (left by a killed run) is waited out, and gone counts as done", () =>
    Effect.gen(function* () {
      const { result, calls } = yield* removeWith([inProgress, inProgress, notFound])
      expect(Either.isRight(result)).toBe(true)
      expect(calls).toBe(3)
    }))

  it.live("a removal in progress that then fails for another reason is reported as that failure", () =>
    Effect.gen(function* () {
      const other = new DockerError({ reason: "Server", endpoint: "e", method: "DELETE", path: "/containers/c1", status: 500, detail: "driver failed to remove root filesystem" })
      const { result, calls } = yield* removeWith([inProgress, other])
      expect(Either.isLeft(result) ? result.left.message : "succeeded").toContain("driver failed to remove root filesystem")
      expect(calls).toBe(2)
    }))
})

describe("machines and state dirs at execution time", () => {
  it.effect("stopping a machine that is already gone counts as done", () =>
    Effect.gen(function* () {
      const smolvm = { stop: () => Effect.fail(new SmolvmError({ reason: "NotFound", command: "smolvm machine stop --name claude-bottle-vm", detail: "Error: vm not found: claude-bottle-vm" })) }
      const result = yield* runWith({}, smolvm, Action.StopMachine({ id: "s", bottle: "vm", resource: "claude-bottle-vm", cause: "test", after: [], replaced: false }))
      expect(Either.isRight(result)).toBe(true)
    }))

  it.effect("a state dir path that is a symlink is not written through", () =>
    Effect.gen(function* () {
      const { root, outside } = setup()
      symlinkSync(outside, join(root, "a"))
      const spec = {
        bottle: "a", path: join(root, "a"), specHash: "h", preserve: false,
        metadata: { managedBy: "bottle" as const, prefix: "claude-bottle", name: "a", backend: "docker", set: "default", specHash: "h" },
        files: { "agent/prompt.md": { content: "hi", mode: 0o644 } }, dirs: [{ path: "workspace", mode: 0o755 }, { path: "agent", mode: 0o755 }], managed: ["agent"], ca: false, upstreamTrust: []
      }
      const result = yield* Effect.gen(function* () {
        const run = yield* makeRunner(runnerOptions)
        return yield* Effect.either(run(Action.EnsureStateDir({ id: "e", bottle: "a", resource: spec.path, cause: "test", after: [], spec, exists: false })))
      }).pipe(Effect.provide(Layer.merge(NoBackends, NodeContext.layer)))
      expect(Either.isLeft(result) ? result.left.message : "written").toContain("symlink")
      expect(existsSync(join(outside, "workspace"))).toBe(false)
      expect(existsSync(join(outside, "metadata.json"))).toBe(false)
    }))
})

describe("CreateNetwork racing a killed run's create", () => {
  it.effect("folds copies of the same network into one (lowest id), leaving other networks of that name alone", () =>
    Effect.gen(function* () {
      const removed: Array<string> = []
      const labels = (hash: string) => ({ "dev.bottle.spec-hash": hash })
      const engine = {
        createNetwork: () => Effect.succeed("b2"),
        listNetworks: () => Effect.succeed([
          { Id: "b2", Name: "claude-bottle-b_internal", Labels: labels("h") },
          { Id: "a1", Name: "claude-bottle-b_internal", Labels: labels("h") },
          { Id: "00", Name: "claude-bottle-b_internal", Labels: labels("other") },
          { Id: "c3", Name: "claude-bottle-b_internal2", Labels: labels("h") }
        ]),
        removeNetwork: (id: string) => Effect.sync(() => { removed.push(id) })
      }
      const result = yield* runWith(engine, {}, createInternal)
      expect(Either.isRight(result)).toBe(true)
      expect(removed).toEqual(["b2"])
    }))
})

describe("already there counts as done only with our spec hash", () => {
  const conflict = new DockerError({ reason: "Conflict", endpoint: "e", method: "POST", path: "/containers/create", status: 409, detail: 'Conflict. The container name "/claude-bottle-b-agent-1" is already in use' })
  const createAgent = Action.CreateContainer({
    id: "c", bottle: "b", resource: "claude-bottle-b-agent-1", cause: "test", after: [], replaces: false,
    spec: { name: "claude-bottle-b-agent-1", hash: "h", image: "img", body: {}, connect: [] } as never
  })
  const withExisting = (hash: string) => ({
    createContainer: () => Effect.fail(conflict),
    listContainers: () => Effect.succeed([{ Id: "0123456789abcdef", Names: ["/claude-bottle-b-agent-1"], Labels: { "dev.bottle.spec-hash": hash } }])
  })

  it.effect("a container of that name with our hash (a killed run made it): done, with its id", () =>
    Effect.gen(function* () {
      const r = yield* runWith(withExisting("h"), {}, createAgent)
      expect(Either.isRight(r) ? r.right : r.left.message).toBe("id 0123456789ab")
    }))

  it.effect("a container of that name with another hash: the conflict is the failure", () =>
    Effect.gen(function* () {
      const r = yield* runWith(withExisting("other"), {}, createAgent)
      expect(Either.isLeft(r) ? r.left.message : "done").toContain("already in use")
    }))

  const createVm = Action.CreateMachine({
    id: "m", bottle: "vm", resource: "claude-bottle-vm", cause: "test", after: [], replaces: false,
    spec: { name: "claude-bottle-vm", hash: "h", egress: { bundleContainer: "claude-bottle-sidecars-vm", bundleNetwork: "claude-bottle-bundle-vm" } } as never
  })
  const bundleUp = { listContainers: () => Effect.succeed([{ Id: "b", Names: ["/claude-bottle-sidecars-vm"], NetworkSettings: { Networks: { "claude-bottle-bundle-vm": { IPAddress: "172.30.0.2" } } } }]) }
  const smolvmWith = (hash: string) => ({
    create: () => Effect.fail(new SmolvmError({ reason: "AlreadyExists", command: "smolvm machine create --name claude-bottle-vm", detail: "Error: machine 'claude-bottle-vm' already exists" })),
    list: Effect.succeed([{ name: "claude-bottle-vm", state: "created", labels: { "dev.bottle.spec-hash": hash }, image: null }])
  })

  it.effect("a machine of that name with our hash: done", () =>
    Effect.gen(function* () {
      const r = yield* runWith(bundleUp, smolvmWith("h"), createVm)
      expect(Either.isRight(r) ? r.right : r.left.message).toBe("egress limited to 172.30.0.2/32")
    }))

  it.effect("a machine of that name with another hash: the failure stands", () =>
    Effect.gen(function* () {
      const r = yield* runWith(bundleUp, smolvmWith("other"), createVm)
      expect(Either.isLeft(r) ? r.left.message : "done").toContain("already exists")
    }))

  it.effect("no machine is made while its bundle has no address (no fence, no machine)", () =>
    Effect.gen(function* () {
      const r = yield* runWith({ listContainers: () => Effect.succeed([]) }, {}, createVm)
      expect(Either.isLeft(r) ? r.left.message : "done").toContain("refusing to start a machine without its egress fence")
    }))
})

describe("a container the Engine can no longer start (its own leftover state, after dockerd was killed)", () => {
  const wreck = new DockerError({ reason: "Server", endpoint: "e", method: "POST", path: "/containers/x/start", status: 500, detail: "failed to create task for container: task 1f2e3d already exists: unknown" })
  const startAgent = Action.StartContainer({
    id: "s", bottle: "b", resource: "claude-bottle-b-agent-1", cause: "stopped (exited)", after: [], created: false,
    spec: { name: "claude-bottle-b-agent-1", hash: "h", image: "img", body: { Image: "img", HostConfig: {} }, connect: [] } as never
  })

  it.effect("is made anew from its spec and started, instead of failing forever", () =>
    Effect.gen(function* () {
      const calls: Array<string> = []
      let starts = 0
      const engine = {
        startContainer: (id: string) => Effect.suspend(() => { calls.push(`start ${id}`); return ++starts === 1 ? Effect.fail(wreck) : Effect.void }),
        removeContainer: (id: string) => Effect.sync(() => void calls.push(`remove ${id}`)),
        createContainer: (name: string) => Effect.sync(() => { calls.push(`create ${name}`); return "0123456789abcdef" })
      }
      const r = yield* runWith(engine, {}, startAgent)
      expect(Either.isRight(r) ? r.right : r.left.message).toBe("made anew: the Engine kept a leftover task")
      expect(calls).toEqual(["start claude-bottle-b-agent-1", "remove claude-bottle-b-agent-1", "create claude-bottle-b-agent-1", "start claude-bottle-b-agent-1"])
    }))

  it.effect("any other start failure stands", () =>
    Effect.gen(function* () {
      const other = new DockerError({ reason: "Server", endpoint: "e", method: "POST", path: "/containers/x/start", status: 500, detail: "driver failed programming external connectivity" })
      const r = yield* runWith({ startContainer: () => Effect.fail(other) }, {}, startAgent)
      expect(Either.isLeft(r) ? r.left.message : "started").toContain("driver failed")
    }))
})
