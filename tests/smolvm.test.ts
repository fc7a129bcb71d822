/**
 * The smolvm client (src/observers/Smolvm.ts) against the fake `smolvm` in
 * tests/fake-smolvm, which follows /work/shared/smolvm-cli.md. Every test has
 * its own state file; the fake's switches reach the child through the layer's
 * `env` option, so process.env is never touched.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { MachineSpec } from "../src/resources/realiseSmolmachines.js"
import { layer, Smolvm, smolvmSource } from "../src/observers/Smolvm.js"

const FAKE = join(import.meta.dirname, "fake-smolvm", "smolvm")

interface Sandbox { readonly dir: string; readonly state: string; readonly log: string }

const sandbox = (): Sandbox => {
  const dir = mkdtempSync(join(tmpdir(), "bottle-smolvm-test-"))
  return { dir, state: join(dir, "state.json"), log: join(dir, "calls.log") }
}

const smolvmLayer = (sb: Sandbox, env: Record<string, string> = {}, opts: { binary?: string; timeout?: Duration.DurationInput; pullTimeout?: Duration.DurationInput } = {}) =>
  layer({
    binary: opts.binary ?? FAKE,
    timeout: opts.timeout ?? "20 seconds",
    ...(opts.pullTimeout !== undefined ? { pullTimeout: opts.pullTimeout } : {}),
    env: { FAKE_SMOLVM_STATE: sb.state, FAKE_SMOLVM_LOG: sb.log, ...env }
  }).pipe(Layer.provide(NodeContext.layer))

/** Seeds the fake's state file: missing keys get the fake's defaults, extra keys are printed as they are. */
const seed = (sb: Sandbox, machines: Record<string, Record<string, unknown>>) =>
  writeFileSync(sb.state, JSON.stringify({ machines }))

/** What the fake's own `ls --json` says, extra keys (allow_cidrs, env, volumes, workdir) included. */
const fakeLs = (sb: Sandbox): Array<Record<string, any>> => {
  const r = spawnSync(FAKE, ["machine", "ls", "--json"], { env: { ...process.env, FAKE_SMOLVM_STATE: sb.state }, encoding: "utf8" })
  expect(r.status).toBe(0)
  return JSON.parse(r.stdout)
}
const stateOf = (sb: Sandbox, name: string) => fakeLs(sb).find((m) => m.name === name)?.state

/** The argv of every invocation, from FAKE_SMOLVM_LOG. */
const calls = (sb: Sandbox): Array<{ argv: Array<string>; pid: number }> =>
  readFileSync(sb.log, "utf8").trim().split("\n").map((l) => JSON.parse(l))

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** A stand-in executable that is not the fake: for output the fake never prints. */
const script = (sb: Sandbox, name: string, body: string): string => {
  const path = join(sb.dir, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return path
}

const machineSpec = (sb: Sandbox, name: string): MachineSpec => ({
  bottle: "researcher",
  name,
  image: "ghcr.io/example/agent:1",
  cpus: 2,
  memMiB: 1536,
  env: ["BOTTLE_NAME=researcher", "GREETING=hello world"],
  volumes: [`${sb.dir}:/workspace`],
  workdir: "/workspace",
  labels: { "dev.bottle.managed-by": "bottle", "dev.bottle.spec-hash": "abc123" },
  hash: "abc123",
  egress: { bundleContainer: "bottle-researcher-sidecars", bundleNetwork: "bottle-researcher-egress" }
})

describe("version", () => {
  it.effect("reads `smolvm X.Y.Z`", () =>
    Effect.gen(function* () {
      expect(yield* (yield* Smolvm).version).toBe("1.9.0")
    }).pipe(Effect.provide(smolvmLayer(sandbox()))))

  it.effect("1.8.0 itself is enough", () =>
    Effect.gen(function* () {
      expect(yield* (yield* Smolvm).version).toBe("1.8.0")
    }).pipe(Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_VERSION: "1.8.0" }))))

  it.effect("below 1.8.0 is TooOld, naming the version seen and the one needed", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).version)
      expect(e.reason).toBe("TooOld")
      expect(e.message).toContain("smolvm 1.7.9 is too old")
      expect(e.message).toContain("≥ 1.8.0")
    }).pipe(Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_VERSION: "1.7.9" }))))

  it.effect.each([
    ["1.8.0-rc.1", "TooOld"],
    ["1.8.0+build.5", "ok"],
    ["1.8.1-beta", "ok"]
  ] as const)("%s is %s (a pre-release of 1.8.0 comes before it)", ([v, want]) =>
    Effect.gen(function* () {
      const got = yield* Effect.either((yield* Smolvm).version)
      expect(got._tag === "Right" ? "ok" : got.left.reason).toBe(want)
    }).pipe(Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_VERSION: v }))))

  it.effect("an unparseable version is BadOutput, quoting what was printed", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).version)
      expect(e.reason).toBe("BadOutput")
      expect(e.message).toContain(`"smolvm nightly-2026"`)
      expect(e.message).toContain("≥ 1.8.0")
    }).pipe(Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_VERSION: "nightly-2026" }))))
})

/** What the fake reports for a machine seeded without resources: smolvm's defaults. */
const FAKE_DEFAULTS = { cpus: 4, memoryMiB: 8192, mounts: 0, network: false, ports: 0 }

describe("list", () => {
  it.effect("decodes name, state, labels and image; keeps unknown states and ignores unknown keys", () => {
    const sb = sandbox()
    seed(sb, {
      a: { state: "running", image: "ghcr.io/example/agent:1", labels: { "dev.bottle.managed-by": "bottle" }, future_key: { nested: [1, 2] } },
      b: { state: "hibernating" },
      c: { state: "unreachable", labels: { x: "y" } }
    })
    return Effect.gen(function* () {
      const machines = yield* (yield* Smolvm).list
      expect([...machines].sort((x, y) => x.name.localeCompare(y.name))).toEqual([
        { name: "a", state: "running", labels: { "dev.bottle.managed-by": "bottle" }, image: "ghcr.io/example/agent:1", ...FAKE_DEFAULTS },
        { name: "b", state: "hibernating", labels: {}, image: null, ...FAKE_DEFAULTS },
        { name: "c", state: "unreachable", labels: { x: "y" }, image: null, ...FAKE_DEFAULTS }
      ])
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("does not depend on key order", () => {
    const sb = sandbox()
    const json = JSON.stringify([
      { zzz: true, storage_gb: null, state: "stopped", name: "m2", labels: { k: "v" }, image: null, cpus: 4 },
      { state: "created", labels: {}, image: "img:1", ephemeral: false, name: "m1", aaa: 1 }
    ])
    writeFileSync(join(sb.dir, "ls.json"), json)
    const binary = script(sb, "smolvm", `cat "$(dirname "$0")/ls.json"`)
    return Effect.gen(function* () {
      expect(yield* (yield* Smolvm).list).toEqual([
        // What a release leaves out stays undefined: it is not compared.
        { name: "m2", state: "stopped", labels: { k: "v" }, image: null, cpus: 4 },
        { name: "m1", state: "created", labels: {}, image: "img:1" }
      ])
    }).pipe(Effect.provide(smolvmLayer(sb, {}, { binary })))
  })

  it.effect("skips ephemeral machines: they belong to `smolvm machine run`", () => {
    const sb = sandbox()
    seed(sb, { mine: { state: "running" }, theirs: { state: "running", ephemeral: true } })
    return Effect.gen(function* () {
      expect((yield* (yield* Smolvm).list).map((m) => m.name)).toEqual(["mine"])
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("an empty list is []", () =>
    Effect.gen(function* () {
      expect(yield* (yield* Smolvm).list).toEqual([])
    }).pipe(Effect.provide(smolvmLayer(sandbox()))))
})

describe("create, start, stop, delete", () => {
  it.effect("create passes image, resources, env, labels, allow-cidr, volumes and workdir", () => {
    const sb = sandbox()
    return Effect.gen(function* () {
      const smolvm = yield* Smolvm
      yield* smolvm.create(machineSpec(sb, "bottle-researcher"), {
        allowCidr: "172.30.0.2",
        env: ["HTTPS_PROXY=http://172.30.0.2:8888"],
        labels: { "dev.bottle.egress-ip": "172.30.0.2" }
      })
      const [m] = fakeLs(sb)
      expect(m).toMatchObject({
        name: "bottle-researcher",
        state: "created",
        image: "ghcr.io/example/agent:1",
        cpus: 2,
        memory_mib: 1536,
        network: true,
        allow_cidrs: ["172.30.0.2/32"],
        env: { BOTTLE_NAME: "researcher", GREETING: "hello world", HTTPS_PROXY: "http://172.30.0.2:8888" },
        labels: { "dev.bottle.managed-by": "bottle", "dev.bottle.spec-hash": "abc123", "dev.bottle.egress-ip": "172.30.0.2" },
        volumes: [{ guest: "/workspace", read_only: false }],
        workdir: "/workspace"
      })
      expect(yield* smolvm.list).toEqual([{
        name: "bottle-researcher",
        state: "created",
        image: "ghcr.io/example/agent:1",
        labels: { "dev.bottle.managed-by": "bottle", "dev.bottle.spec-hash": "abc123", "dev.bottle.egress-ip": "172.30.0.2" },
        cpus: 2,
        memoryMiB: 1536,
        network: true,
        mounts: 1,
        ports: 0
      }])
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("create of an existing name is AlreadyExists; the error names the command, not the env", () => {
    const sb = sandbox()
    const extra = { allowCidr: "10.0.0.0/8", env: ["SECRET_TOKEN=s3cr3t"], labels: {} }
    return Effect.gen(function* () {
      const smolvm = yield* Smolvm
      yield* smolvm.create(machineSpec(sb, "dup"), extra)
      const e = yield* Effect.flip(smolvm.create(machineSpec(sb, "dup"), extra))
      expect(e.reason).toBe("AlreadyExists")
      expect(e.message).toBe(`${FAKE} machine create --name dup failed: Error: config operation failed: create machine: machine 'dup' already exists`)
      expect(e.message).not.toContain("s3cr3t")
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("another create failure is Failed with the Error line", () => {
    const sb = sandbox()
    return Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).create(machineSpec(sb, "nope"), { allowCidr: "10.0.0.1", env: [], labels: {} }))
      expect(e.reason).toBe("Failed")
      expect(e.detail).toBe("Error: vm creation failed: nope: injected by FAKE_SMOLVM_FAIL_CREATE")
    }).pipe(Effect.provide(smolvmLayer(sb, { FAKE_SMOLVM_FAIL_CREATE: "nope" })))
  })

  it.effect("start and stop are idempotent", () => {
    const sb = sandbox()
    seed(sb, { m: { state: "created" } })
    return Effect.gen(function* () {
      const smolvm = yield* Smolvm
      yield* smolvm.start("m")
      yield* smolvm.start("m")
      expect(stateOf(sb, "m")).toBe("running")
      yield* smolvm.stop("m")
      yield* smolvm.stop("m")
      expect(stateOf(sb, "m")).toBe("stopped")
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("delete of a running machine stops and deletes it, always with -f", () => {
    const sb = sandbox()
    seed(sb, { m: { state: "running", pid: 4242 }, other: { state: "running" } })
    return Effect.gen(function* () {
      yield* (yield* Smolvm).delete("m")
      expect(fakeLs(sb).map((m) => m.name)).toEqual(["other"])
      expect(calls(sb).map((c) => c.argv)).toEqual([["machine", "delete", "--name", "m", "-f"]])
    }).pipe(Effect.provide(smolvmLayer(sb)))
  })

  it.effect("an unknown name is NotFound for start, stop and delete", () =>
    Effect.gen(function* () {
      const smolvm = yield* Smolvm
      for (const op of [smolvm.start, smolvm.stop, smolvm.delete]) {
        const e = yield* Effect.flip(op("ghost"))
        expect(e.reason).toBe("NotFound")
        expect(e.detail).toBe("Error: vm not found: ghost")
      }
    }).pipe(Effect.provide(smolvmLayer(sandbox()))))

  it.effect("other failures are Failed with the Error line", () => {
    const sb = sandbox()
    seed(sb, { m: { state: "created" } })
    return Effect.gen(function* () {
      const smolvm = yield* Smolvm
      const del = yield* Effect.flip(smolvm.delete("m"))
      expect(del.reason).toBe("Failed")
      expect(del.message).toBe(`${FAKE} machine delete --name m -f failed: Error: agent operation failed: delete machine: m: injected by FAKE_SMOLVM_FAIL_DELETE`)
      const start = yield* Effect.flip(smolvm.start("m"))
      expect(start.reason).toBe("Failed")
      expect(start.detail).toContain("injected by FAKE_SMOLVM_FAIL_START")
      expect(stateOf(sb, "m")).toBe("created")
    }).pipe(Effect.provide(smolvmLayer(sb, { FAKE_SMOLVM_FAIL_DELETE: "*", FAKE_SMOLVM_FAIL_START: "m" })))
  })
})

describe("smolvmSource", () => {
  it.effect("Ok: the version and the machines", () => {
    const sb = sandbox()
    seed(sb, { m: { state: "stopped", labels: { a: "b" } } })
    return smolvmSource.pipe(
      Effect.map((s) => expect(s).toEqual({ _tag: "Ok", value: { version: "1.9.0", machines: [{ name: "m", state: "stopped", labels: { a: "b" }, image: null, ...FAKE_DEFAULTS }] } })),
      Effect.provide(smolvmLayer(sb))
    )
  })

  it.effect("ls failing is Failed with smolvm's error text, not an empty snapshot", () =>
    smolvmSource.pipe(
      Effect.map((s) => expect(s).toEqual({
        _tag: "Failed",
        source: "smolvm",
        error: `${FAKE} machine ls --json failed: Error: database operation failed: open: database is locked (injected by FAKE_SMOLVM_FAIL_LS)`
      })),
      Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_FAIL_LS: "1" }))
    ))

  it.effect("garbage from ls is BadOutput, reported as Failed", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).list)
      expect(e.reason).toBe("BadOutput")
      const s = yield* smolvmSource
      expect(s._tag).toBe("Failed")
      expect(s._tag === "Failed" && s.error).toMatch(new RegExp(`^${FAKE} machine ls --json: unexpected output: not JSON \\(.*\\): warning: smolvm database`))
    }).pipe(Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_GARBAGE_LS: "1" }))))

  it.effect("JSON of the wrong shape is BadOutput, naming the element and key", () => {
    const sb = sandbox()
    const binary = script(sb, "smolvm", `echo '[{"name": "ok", "state": "running", "labels": {}}, {"name": "bad", "state": 5}]'`)
    return Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).list)
      expect(e.reason).toBe("BadOutput")
      expect(e.message).toBe(`${binary} machine ls --json: unexpected output: at [1].state: Expected string, actual 5`)
    }).pipe(Effect.provide(smolvmLayer(sb, {}, { binary })))
  })

  it.effect("too old is Unavailable (bottle cannot have made machines with it), with the version in the reason", () =>
    smolvmSource.pipe(
      Effect.map((s) => {
        expect(s._tag).toBe("Unavailable")
        expect(s._tag === "Unavailable" && s.reason).toContain("smolvm 1.2.3 is too old")
      }),
      Effect.provide(smolvmLayer(sandbox(), { FAKE_SMOLVM_VERSION: "1.2.3" }))
    ))

  it.effect("a missing binary is Unavailable", () => {
    const sb = sandbox()
    const binary = join(sb.dir, "no-such-smolvm")
    return Effect.gen(function* () {
      const e = yield* Effect.flip((yield* Smolvm).version)
      expect(e.reason).toBe("NotInstalled")
      const s = yield* smolvmSource
      expect(s).toEqual({ _tag: "Unavailable", source: "smolvm", reason: e.message })
      expect(e.message).toContain("smolvm is not installed")
      expect(e.message).toContain(binary)
    }).pipe(Effect.provide(smolvmLayer(sb, {}, { binary })))
  })
})

describe("timeouts", () => {
  // Real time: the child runs on the wall clock, not on TestClock.
  it.live("a hanging smolvm is Timeout, returns promptly and leaves no process behind", () => {
    const sb = sandbox()
    return Effect.gen(function* () {
      const started = Date.now()
      const e = yield* Effect.flip((yield* Smolvm).list)
      const elapsed = Date.now() - started
      expect(e.reason).toBe("Timeout")
      expect(e.message).toBe(`${FAKE} machine ls --json did not finish within 1s and was stopped`)
      expect(elapsed).toBeLessThan(5_000)
      const [call] = calls(sb)
      expect(call!.argv).toEqual(["machine", "ls", "--json"])
      expect(isAlive(call!.pid)).toBe(false)
    }).pipe(Effect.provide(smolvmLayer(sb, { FAKE_SMOLVM_HANG: "ls" }, { timeout: "1 second" })))
  })

  it.live("create and start, which may pull the image, get the longer bound", () => {
    const sb = sandbox()
    return Effect.gen(function* () {
      const smolvm = yield* Smolvm
      for (const run of [smolvm.create(machineSpec(sb, "slow"), { env: [], labels: {}, allowCidr: "10.0.0.1/32" }), smolvm.start("slow")]) {
        const started = Date.now()
        const e = yield* Effect.flip(run)
        expect(e.reason).toBe("Timeout")
        expect(e.message).toContain("within 2s")
        expect(Date.now() - started).toBeGreaterThanOrEqual(1_900)
      }
    }).pipe(Effect.provide(smolvmLayer(sb, { FAKE_SMOLVM_HANG: "create,start" }, { timeout: "500 millis", pullTimeout: "2 seconds" })))
  }, 20_000)

  it.live("a background process left holding stdout does not keep the call waiting", () => {
    const sb = sandbox()
    const pidFile = join(sb.dir, "bg.pid")
    const binary = script(sb, "smolvm", `sleep 30 &\necho $! > "${pidFile}"\necho "smolvm 1.9.0"`)
    return Effect.gen(function* () {
      const started = Date.now()
      expect(yield* (yield* Smolvm).version).toBe("1.9.0")
      expect(Date.now() - started).toBeLessThan(8_000)
    }).pipe(
      Effect.provide(smolvmLayer(sb, {}, { binary, timeout: "20 seconds" })),
      Effect.ensuring(Effect.sync(() => {
        try { process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL") } catch { /* already gone */ }
      }))
    )
  })
})
